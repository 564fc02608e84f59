//! Value parsers of the command line (for clap): account ids and durations.

use std::time::Duration;

use bkv_core::ids::AccountId;

/// Parses an account id (for clap).
pub fn parse_account(s: &str) -> Result<AccountId, String> {
    AccountId::parse(s).map_err(|e| format!("account id {e}"))
}

/// Parses seconds, fractions allowed (for clap).
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err("must be more than 0 and at most 86400 seconds".into());
    }
    Ok(Duration::from_secs_f64(secs))
}
