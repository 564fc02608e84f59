//! The security-officer step of the enrollment ceremony. Only the SO may set CKA_TRUSTED,
//! and PKCS#11 login is per token: while the SO is logged in, no session of this process
//! is logged in as user. So the step takes the token's gate exclusively (waiting for every
//! worker job to finish and holding new ones back), logs the user out, logs the SO in, does
//! its work, logs the SO out and the user back in, and lets the caller finish as user
//! before the workers resume.
//!
//! SoftHSM lets the SO create only public (non-private) objects, so a step that must leave
//! a private object behind creates it public as SO and copies it to a private object as
//! user (C_CopyObject keeps CKA_TRUSTED), all under the same exclusive gate.

use std::sync::PoisonError;

use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;

use crate::error::rv_of;
use crate::module::TokenState;
use crate::worker::login;
use crate::{HsmError, Pin};

/// Runs `as_so` in a session logged in as security officer, then `as_user` in the same
/// session logged in as user again, with every worker of this token quiesced throughout.
/// Blocking: call it from a blocking thread.
pub(crate) fn as_security_officer<T, U>(
    ctx: &Pkcs11,
    slot: Slot,
    token: &TokenState,
    pins: (&Pin, &Pin),
    as_so: impl FnOnce(&Session) -> Result<T, HsmError>,
    as_user: impl FnOnce(&Session, T) -> Result<U, HsmError>,
) -> Result<U, HsmError> {
    let (so_pin, user_pin) = pins;
    let _gate = token.gate.write().unwrap_or_else(PoisonError::into_inner);
    let session = ctx
        .open_rw_session(slot)
        .map_err(HsmError::at("C_OpenSession"))?;
    match session.logout() {
        Ok(()) => {}
        Err(e) if rv_of(&e) == Some(RvError::UserNotLoggedIn) => {}
        Err(e) => return Err(HsmError::p11("C_Logout", e)),
    }
    // Logging out invalidates handles of private objects in every session.
    token
        .epoch
        .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    let result = match login(&session, UserType::So, so_pin) {
        Ok(()) => {
            let result = as_so(&session);
            match session.logout() {
                Ok(()) => result,
                Err(e) => result.and(Err(HsmError::p11("C_Logout", e))),
            }
        }
        Err(e) => Err(e),
    };
    // Log the user back in whatever happened, so the workers can go on.
    let relogin = login(&session, UserType::User, user_pin);
    let value = result?;
    relogin?;
    as_user(&session, value)
}
