//! The client's key-stretching function: Argon2id with parameters of the client's choice.
//!
//! The same parameters must be used at registration and at every recovery: they are part of
//! what turns the password into OPAQUE's keys, and the vault does not store them. An app
//! fixes them once (the default is meant to be that choice) and never changes them for an
//! existing registration.

use argon2::{Algorithm, Argon2, Params, Version};

use crate::ClientError;

/// Argon2id parameters: memory in KiB, iterations and lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KsfParams {
    /// Memory cost in KiB (`m`).
    pub m_cost_kib: u32,
    /// Iterations (`t`).
    pub t_cost: u32,
    /// Parallelism (`p`).
    pub p_cost: u32,
}

impl KsfParams {
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

    /// The Argon2id instance (version 0x13) for these parameters.
    pub fn argon2(&self) -> Result<Argon2<'static>, ClientError> {
        let params = Params::new(self.m_cost_kib, self.t_cost, self.p_cost, None)
            .map_err(|_| ClientError::InvalidKsf("out of range"))?;
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
        assert_eq!(
            bad.argon2().err(),
            Some(ClientError::InvalidKsf("out of range"))
        );
        assert!(
            KsfParams {
                p_cost: 0,
                ..KsfParams::light()
            }
            .argon2()
            .is_err()
        );
    }
}
