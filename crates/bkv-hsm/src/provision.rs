//! Token provisioning: initialise a token with a label on the module's free slot and set its
//! user PIN, in-process through cryptoki, so that no PIN ever appears on a command line.
//! Used by the `bkv-token` tool and by the test support.

use std::path::Path;

use cryptoki::session::UserType;

use crate::module;
use crate::worker::login;
use crate::{HsmError, Pin};

/// What [`init_token`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioned {
    /// A new token was initialised.
    Created,
    /// A token with that label was already there; nothing was changed.
    Existed,
}

/// Longest token label PKCS#11 stores (32 bytes, blank padded).
pub const MAX_LABEL_LEN: usize = 32;

/// Initialises a token labelled `label` on the module's free slot (SoftHSM always offers
/// one uninitialised slot) and sets its user PIN; does nothing if a token with that label
/// exists. Callers in one process must not run this concurrently for the same module.
pub fn init_token(
    module_path: &Path,
    label: &str,
    so_pin: &Pin,
    user_pin: &Pin,
) -> Result<Provisioned, HsmError> {
    if label.is_empty() || label.len() > MAX_LABEL_LEN || label.trim() != label {
        return Err(HsmError::InvalidLabel {
            label: label.into(),
        });
    }
    let ctx = module::context(module_path)?;
    match module::find_token(&ctx, label) {
        Ok(_) => return Ok(Provisioned::Existed),
        Err(HsmError::TokenNotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    let mut free = None;
    for slot in ctx
        .get_slots_with_token()
        .map_err(HsmError::at("C_GetSlotList"))?
    {
        let info = ctx
            .get_token_info(slot)
            .map_err(HsmError::at("C_GetTokenInfo"))?;
        if !info.token_initialized() {
            free = Some(slot);
            break;
        }
    }
    let slot = free.ok_or(HsmError::Pkcs11 {
        call: "C_GetSlotList",
        rv: "no free slot to initialise".into(),
    })?;
    ctx.init_token(slot, so_pin.auth(), label)
        .map_err(HsmError::at("C_InitToken"))?;
    // Re-list: SoftHSM moves the new token to a slot of its own and offers a new free slot.
    let slot = module::find_token(&ctx, label)?;
    let session = ctx
        .open_rw_session(slot)
        .map_err(HsmError::at("C_OpenSession"))?;
    login(&session, UserType::So, so_pin)?;
    session
        .init_pin(user_pin.auth())
        .map_err(HsmError::at("C_InitPIN"))?;
    session.logout().map_err(HsmError::at("C_Logout"))?;
    Ok(Provisioned::Created)
}
