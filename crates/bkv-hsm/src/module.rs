//! The process-wide PKCS#11 contexts: one [`Pkcs11`] per module path, loaded and initialised
//! once and kept for the life of the process, plus the per-token state that every
//! [`crate::Partition`] on the same token shares (the login gate and the key epoch).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::slot::Slot;

use crate::HsmError;
use crate::error::rv_of;

/// Loaded modules by canonical path.
static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();

/// Per-token shared state by (module path, token label).
type TokenMap = HashMap<(PathBuf, String), Arc<TokenState>>;
static TOKENS: OnceLock<Mutex<TokenMap>> = OnceLock::new();

/// The PKCS#11 context of a module, loading and initialising it on first use.
pub fn context(module: &Path) -> Result<Pkcs11, HsmError> {
    let load_err = |reason: String| HsmError::ModuleLoad {
        path: module.display().to_string(),
        reason,
    };
    let key = module
        .canonicalize()
        .map_err(|e| load_err(e.kind().to_string()))?;
    let mut modules = MODULES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(ctx) = modules.get(&key) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(&key).map_err(|e| load_err(e.to_string()))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) => {}
        Err(e) if rv_of(&e) == Some(RvError::CryptokiAlreadyInitialized) => {}
        Err(e) => return Err(load_err(HsmError::p11("C_Initialize", e).to_string())),
    }
    modules.insert(key, ctx.clone());
    Ok(ctx)
}

/// The slot holding the initialised token with this label. Errors if none or several do.
pub fn find_token(ctx: &Pkcs11, label: &str) -> Result<Slot, HsmError> {
    let mut found = None;
    for slot in ctx
        .get_slots_with_token()
        .map_err(HsmError::at("C_GetSlotList"))?
    {
        let info = ctx
            .get_token_info(slot)
            .map_err(HsmError::at("C_GetTokenInfo"))?;
        if info.token_initialized() && info.label() == label {
            if found.is_some() {
                return Err(HsmError::DuplicateToken {
                    label: label.into(),
                });
            }
            found = Some(slot);
        }
    }
    found.ok_or_else(|| HsmError::TokenNotFound {
        label: label.into(),
    })
}

/// Labels of all initialised tokens of a module.
pub fn token_labels(ctx: &Pkcs11) -> Result<Vec<String>, HsmError> {
    let mut labels = Vec::new();
    for slot in ctx
        .get_slots_with_token()
        .map_err(HsmError::at("C_GetSlotList"))?
    {
        let info = ctx
            .get_token_info(slot)
            .map_err(HsmError::at("C_GetTokenInfo"))?;
        if info.token_initialized() {
            labels.push(info.label().to_string());
        }
    }
    Ok(labels)
}

/// State shared by everything in this process that uses one token. PKCS#11 login state is
/// per token, not per session, so the partitions of one token must agree on when the user
/// is logged out for a security-officer step.
#[derive(Debug, Default)]
pub struct TokenState {
    /// Held shared by a worker while it runs a job, exclusively by a security-officer step.
    pub gate: RwLock<()>,
    /// Bumped whenever key objects change (generate, unwrap, re-login): cached object
    /// handles from an older epoch are dropped.
    pub epoch: AtomicU64,
    /// Serialises find-or-create of keys, so that two calls never make two cluster keys.
    pub keys: Mutex<()>,
}

/// The shared state of a token.
pub fn token_state(module: &Path, label: &str) -> Arc<TokenState> {
    let key = (
        module
            .canonicalize()
            .unwrap_or_else(|_| module.to_path_buf()),
        label.to_string(),
    );
    TOKENS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(key)
        .or_default()
        .clone()
}
