//! The client's key-stretching function: Argon2id (version 0x13) with parameters of the
//! client's choice, which the vault stores with the record and returns at recovery.
//!
//! The same parameters must be used at registration and at every recovery: they are part of
//! what turns the (hardened) password into OPAQUE's keys. The vault never runs Argon2id; it
//! only keeps the parameters so that any client can find them again.

use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

/// Argon2id parameters: memory in KiB, passes and lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KsfParams {
    /// Memory cost in KiB (`m`).
    pub m_cost_kib: u32,
    /// Passes (`t`).
    pub t_cost: u32,
    /// Lanes (`p`).
    pub p_cost: u32,
}

/// Why Argon2id parameters are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KsfError {
    /// Outside Argon2's own range.
    #[error("out of range")]
    OutOfRange,
    /// Above what a client agrees to run (a vault naming huge parameters would make
    /// recovering clients run out of memory or time).
    #[error("too costly: at most {max_m_cost_kib} KiB, {max_t_cost} passes, {max_p_cost} lanes")]
    TooCostly {
        /// Largest memory, KiB.
        max_m_cost_kib: u32,
        /// Most passes.
        max_t_cost: u32,
        /// Most lanes.
        max_p_cost: u32,
    },
}

impl KsfParams {
    /// Most memory a registration may name: 1 GiB.
    pub const MAX_M_COST_KIB: u32 = 1 << 20;
    /// Most passes a registration may name.
    pub const MAX_T_COST: u32 = 64;
    /// Most lanes a registration may name.
    pub const MAX_P_COST: u32 = 16;

    /// INSECURE: the smallest Argon2id there is (8 KiB, one pass, one lane). Password
    /// guesses against it cost almost nothing. For tests and benchmarks only; never register
    /// a real password with it.
    pub const fn light() -> Self {
        Self {
            m_cost_kib: 8,
            t_cost: 1,
            p_cost: 1,
        }
    }

    /// Checks the parameters are within Argon2's range and within the limits a client
    /// accepts ([`Self::MAX_M_COST_KIB`], [`Self::MAX_T_COST`], [`Self::MAX_P_COST`]).
    pub fn check(&self) -> Result<(), KsfError> {
        if self.m_cost_kib > Self::MAX_M_COST_KIB
            || self.t_cost > Self::MAX_T_COST
            || self.p_cost > Self::MAX_P_COST
        {
            return Err(KsfError::TooCostly {
                max_m_cost_kib: Self::MAX_M_COST_KIB,
                max_t_cost: Self::MAX_T_COST,
                max_p_cost: Self::MAX_P_COST,
            });
        }
        Params::new(self.m_cost_kib, self.t_cost, self.p_cost, None)
            .map(|_| ())
            .map_err(|_| KsfError::OutOfRange)
    }

    /// The Argon2id instance (version 0x13) for these parameters.
    pub fn argon2(&self) -> Result<Argon2<'static>, KsfError> {
        self.check()?;
        let params = Params::new(self.m_cost_kib, self.t_cost, self.p_cost, None)
            .map_err(|_| KsfError::OutOfRange)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

impl Default for KsfParams {
    /// OWASP's recommended Argon2id setting: m = 19456 KiB (19 MiB), t = 2, p = 1.
    fn default() -> Self {
        Self {
            m_cost_kib: 19 * 1024,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_owasp_and_light_is_minimal() {
        let d = KsfParams::default();
        assert_eq!((d.m_cost_kib, d.t_cost, d.p_cost), (19456, 2, 1));
        assert!(d.argon2().is_ok());
        assert!(KsfParams::light().argon2().is_ok());
        let bad = KsfParams {
            m_cost_kib: 1,
            ..KsfParams::light()
        };
        assert_eq!(bad.argon2().err(), Some(KsfError::OutOfRange));
        let zero_lanes = KsfParams {
            p_cost: 0,
            ..KsfParams::light()
        };
        assert!(zero_lanes.argon2().is_err());
        let huge = KsfParams {
            m_cost_kib: KsfParams::MAX_M_COST_KIB + 1,
            ..KsfParams::light()
        };
        assert!(matches!(huge.check(), Err(KsfError::TooCostly { .. })));
    }
}
