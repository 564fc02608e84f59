//! Test builds only (feature `failpoints`): a bug planted on purpose, so that the chaos suite
//! can show that its checkers catch a node that breaks the guess limit. While the failpoint
//! `planted_charge_reuse` fires (any action that fires, e.g. `planted_charge_reuse=50%error`),
//! a `ChargeGuess` is not committed at all: the node answers it with the last charge it saw
//! committed for the account, so a recovery start gets a credential response without a
//! guess being counted. Never compiled into a default or release build; off unless set.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use bkv_core::{AccountId, Command, Outcome};

/// The failpoint that turns the bug on.
pub const FAILPOINT: &str = "planted_charge_reuse";

/// Accounts remembered at most (then forgotten all at once).
const MAX_ACCOUNTS: usize = 10_000;

fn last_charges() -> &'static Mutex<HashMap<AccountId, Outcome>> {
    static LAST: OnceLock<Mutex<HashMap<AccountId, Outcome>>> = OnceLock::new();
    LAST.get_or_init(Mutex::default)
}

/// The account of a `ChargeGuess` on its way to being committed.
#[derive(Debug)]
pub struct Planted(Option<AccountId>);

impl Planted {
    /// Looks at `command` before it is committed.
    pub fn before(command: &Command) -> Self {
        match command {
            Command::ChargeGuess { account, .. } => Self(Some(account.clone())),
            _ => Self(None),
        }
    }

    /// The bug: when the failpoint fires, the account's last charge instead of a commit.
    pub fn reused(&self) -> Option<Outcome> {
        let account = self.0.as_ref()?;
        let last = last_charges()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(account)
            .cloned()?;
        bkv_failpoints::eval(FAILPOINT)?;
        tracing::warn!("planted bug: a guess answered without a committed charge");
        Some(last)
    }

    /// Remembers a committed charge, for the bug to reuse.
    pub fn remember(self, outcome: &Outcome) {
        if let (Some(account), Outcome::Charged { .. }) = (self.0, outcome) {
            let mut last = last_charges()
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.len() >= MAX_ACCOUNTS {
                last.clear();
            }
            last.insert(account, outcome.clone());
        }
    }
}
