//! The operations `bkv bench` runs and the weighted mix it draws them from.

use std::fmt;
use std::str::FromStr;

use rand::Rng;

/// One kind of measured operation: one SDK call, end to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// `VaultClient::recover` with the right password (RecoverStart + RecoverFinish).
    Recover,
    /// `VaultClient::register` of a new account (RegisterStart, RegisterFinish, Activate).
    Register,
    /// `VaultClient::recover` with a wrong password (RecoverStart; the client finds out).
    Wrong,
}

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Op; 3] = [Op::Recover, Op::Register, Op::Wrong];

    /// The name used in flags and reports.
    pub fn name(self) -> &'static str {
        match self {
            Op::Recover => "recover",
            Op::Register => "register",
            Op::Wrong => "wrong_guess",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Relative weights of the operations, e.g. `recover=8,register=1,wrong=1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 3],
}

impl Mix {
    /// Draws the next operation.
    pub fn pick(&self, rng: &mut impl Rng) -> Op {
        let total: u32 = self.weights.iter().sum();
        let mut x = rng.gen_range(0..total);
        for (op, w) in Op::ALL.into_iter().zip(self.weights) {
            if x < w {
                return op;
            }
            x -= w;
        }
        // The weights sum to `total` and x < total.
        Op::Recover
    }

    /// Whether the mix draws `op` at all.
    pub fn has(&self, op: Op) -> bool {
        self.weights[op as usize] > 0
    }

    /// Whether some operation needs the registered account pool.
    pub fn needs_pool(&self) -> bool {
        self.has(Op::Recover) || self.has(Op::Wrong)
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = Op::ALL
            .into_iter()
            .zip(self.weights)
            .filter(|(_, w)| *w > 0)
            .map(|(op, w)| format!("{}={w}", flag_name(op)))
            .collect();
        f.write_str(&parts.join(","))
    }
}

fn flag_name(op: Op) -> &'static str {
    match op {
        Op::Wrong => "wrong",
        other => other.name(),
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut weights = [0u32; 3];
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
            let op = match name.trim() {
                "recover" => Op::Recover,
                "register" => Op::Register,
                "wrong" | "wrong_guess" => Op::Wrong,
                other => {
                    return Err(format!(
                        "unknown operation {other:?} (recover, register, wrong)"
                    ));
                }
            };
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("weight of {name} is not a number: {weight:?}"))?;
            if weight > 1_000_000 {
                return Err(format!("weight of {name} is above 1000000"));
            }
            weights[op as usize] = weight;
        }
        if weights.iter().all(|w| *w == 0) {
            return Err("the mix has no operation: give e.g. recover=8,register=1,wrong=1".into());
        }
        Ok(Self { weights })
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn mixes_parse_print_and_draw_in_proportion() {
        let m: Mix = "recover=8, register=1,wrong=1".parse().unwrap();
        assert_eq!(m.to_string(), "recover=8,register=1,wrong=1");
        assert!(m.needs_pool());
        let only: Mix = "register".parse().unwrap();
        assert_eq!(only.to_string(), "register=1");
        assert!(!only.needs_pool() && only.has(Op::Register));
        for bad in ["", "recover=0", "guess=1", "recover=x", "recover=2000000"] {
            assert!(bad.parse::<Mix>().is_err(), "{bad}");
        }
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts = [0u32; 3];
        for _ in 0..10_000 {
            counts[m.pick(&mut rng) as usize] += 1;
        }
        assert!((7_600..8_400).contains(&counts[0]), "{counts:?}");
        assert!((800..1_200).contains(&counts[1]), "{counts:?}");
        assert!((800..1_200).contains(&counts[2]), "{counts:?}");
        let mut rng = StdRng::seed_from_u64(8);
        assert!((0..100).all(|_| only.pick(&mut rng) == Op::Register));
    }
}
