//! Client side of registration (protocol v2): harden the password with a fresh OPRF key,
//! register OPAQUE on the hardened password, split the OPRF key over the share map the
//! cluster identity key signed, and seal K under the export key.

use std::fmt;

use bkv_core::ids::AccountId;
use bkv_core::opaque::Suite;
use bkv_core::oprf::{self, OprfKey, P256PublicKey, ResetKey, ShareContext};
use bkv_core::protocol::{self, BackupKey, ExportKey, KsfParams, REGISTRATION_RESPONSE_LEN};
use bkv_core::{ShareMap, SignedShareMap};
use bkv_proto::v1::{
    KsfParams as KsfProto, RegisterFinishRequest, RegisterStartResponse,
    ShareUpload as ShareUploadProto,
};
use opaque_ke::errors::ProtocolError as OpaqueError;
use opaque_ke::{ClientRegistration, ClientRegistrationFinishParameters, RegistrationResponse};
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};

use super::parse_server_message;
use crate::ClientError;

/// A registration in progress: holds the OPRF key and the hardened password until
/// [`Registration::finish`]. `Debug` shows nothing of it.
pub struct Registration {
    state: ClientRegistration<Suite>,
    key: OprfKey,
    hardened: oprf::HardenedPassword,
}

/// What the vault answered to `RegisterStart`, as the registration needs it.
#[derive(Debug, Clone)]
pub struct RegisterStarted {
    /// OPAQUE `RegistrationResponse`.
    pub registration_response: Vec<u8>,
    /// The share map, as signed.
    pub share_map: SignedShareMap,
    /// The cluster's default guess limit.
    pub default_guess_limit: u32,
    /// The cluster's largest guess limit.
    pub max_guess_limit: u32,
}

/// Who the client registers with: the cluster name (the account token's audience) and the
/// cluster identity key the client pins, which must have signed the share map.
#[derive(Debug, Clone, Copy)]
pub struct ClusterTrust<'a> {
    /// The cluster name.
    pub cluster_name: &'a str,
    /// The pinned cluster identity key (Ed25519 public key).
    pub identity_key: &'a [u8; 32],
}

/// One share for `RegisterFinish`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareUpload {
    /// The share-holder.
    pub node_id: u64,
    /// `K_i`.
    pub commitment: [u8; 32],
    /// The share encrypted to the holder's share-receiving key.
    pub ciphertext: Vec<u8>,
}

/// What `RegisterFinish` sends, besides the client's `request_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterUpload {
    /// Serialized OPAQUE `RegistrationUpload`.
    pub registration_upload: Vec<u8>,
    /// K sealed under this registration's export key.
    pub sealed_key: Vec<u8>,
    /// The guess limit the shares are bound to (the cluster default if none was asked).
    pub guess_limit: u32,
    /// The Argon2id parameters used.
    pub ksf: KsfParams,
    /// The share map epoch the shares follow.
    pub share_map_epoch: u64,
    /// One share per holder of that map, in its order.
    pub shares: Vec<ShareUpload>,
    /// The reset public key derived from the export key.
    pub reset_public_key: [u8; 32],
}

impl RegisterStarted {
    /// The parts of a `RegisterStart` answer the registration needs; an error names what is
    /// missing or malformed.
    pub fn from_response(response: RegisterStartResponse) -> Result<Self, String> {
        let map = response
            .share_map
            .ok_or_else(|| "RegisterStart returned no share map".to_string())?;
        Ok(Self {
            registration_response: response.registration_response,
            share_map: SignedShareMap::try_from(map).map_err(|e| format!("RegisterStart's {e}"))?,
            default_guess_limit: response.default_guess_limit,
            max_guess_limit: response.max_guess_limit,
        })
    }
}

impl RegisterUpload {
    /// The `RegisterFinish` request of this upload, under the client's `request_id`.
    pub fn into_request(self, request_id: Vec<u8>) -> RegisterFinishRequest {
        RegisterFinishRequest {
            request_id,
            registration_upload: self.registration_upload,
            sealed_key: self.sealed_key,
            guess_limit: self.guess_limit,
            ksf: Some(KsfProto {
                m_cost_kib: self.ksf.m_cost_kib,
                t_cost: self.ksf.t_cost,
                p_cost: self.ksf.p_cost,
            }),
            share_map_epoch: self.share_map_epoch,
            shares: self
                .shares
                .into_iter()
                .map(|s| ShareUploadProto {
                    node_id: s.node_id,
                    commitment: s.commitment.to_vec(),
                    ciphertext: s.ciphertext,
                })
                .collect(),
            reset_public_key: self.reset_public_key.to_vec(),
        }
    }
}

impl Registration {
    /// Starts a registration: draws the account's OPRF key, hardens the password with it, and
    /// returns the state and `registration_request` for `RegisterStart`.
    pub fn start(
        account: &AccountId,
        password: SecretString,
    ) -> Result<(Self, Vec<u8>), ClientError> {
        let key = OprfKey::generate(&mut OsRng);
        let input = oprf::oprf_input(account, password.expose_secret().as_bytes())
            .map_err(|_| ClientError::PasswordTooLong)?;
        let hardened = oprf::evaluate_directly(&key, &input)
            .map_err(|_| ClientError::Internal("hardening the password"))?;
        let start = ClientRegistration::<Suite>::start(&mut OsRng, hardened.expose())
            .map_err(|_| ClientError::Internal("registration start"))?;
        let request = start.message.serialize().to_vec();
        Ok((
            Self {
                state: start.state,
                key,
                hardened,
            },
            request,
        ))
    }

    /// Finishes with the server's answer: checks the share map against the pinned identity
    /// key, runs Argon2id with `ksf`, builds the upload, seals `key` under the export key,
    /// derives the reset key, and splits the OPRF key over the map's holders, each share
    /// encrypted to its holder and bound to the guess limit and the reset key.
    /// `guess_limit` 0 takes the cluster's default.
    pub fn finish(
        self,
        started: &RegisterStarted,
        account: &AccountId,
        backup_key: &BackupKey,
        ksf: &KsfParams,
        guess_limit: u32,
        trust: ClusterTrust<'_>,
    ) -> Result<RegisterUpload, ClientError> {
        let map = check_share_map(&started.share_map, trust)?;
        let guess_limit = match guess_limit {
            0 => started.default_guess_limit,
            n if n > started.max_guess_limit => {
                return Err(ClientError::GuessLimit {
                    asked: n,
                    max: started.max_guess_limit,
                });
            }
            n => n,
        };
        let response = parse_server_message(
            "registration_response",
            &started.registration_response,
            REGISTRATION_RESPONSE_LEN,
            RegistrationResponse::<Suite>::deserialize,
        )?;
        let argon2 = ksf.argon2()?;
        let finish = self
            .state
            .finish(
                &mut OsRng,
                self.hardened.expose(),
                response,
                ClientRegistrationFinishParameters::new(
                    protocol::identifiers(account),
                    Some(&argon2),
                ),
            )
            .map_err(|e| match e {
                OpaqueError::ReflectedValueError => ClientError::Malformed {
                    field: "registration_response",
                    reason: "reflected",
                },
                _ => ClientError::Internal("registration finish"),
            })?;
        let registration_upload = finish.message.serialize().to_vec();
        let mut export = finish.export_key;
        let export_key = ExportKey::take_from(export.as_mut_slice())
            .map_err(|_| ClientError::Internal("export key length"))?;
        let sealed_key = protocol::seal_backup_key(&export_key, account, backup_key)
            .map_err(|_| ClientError::Internal("sealing the backup key"))?;
        let reset_public_key = ResetKey::derive(&export_key).public();
        let holders: Vec<u64> = map.holders.iter().map(|h| h.node_id).collect();
        let split = oprf::split(&self.key, &holders, usize::from(map.threshold), &mut OsRng)
            .map_err(|_| ClientError::Internal("splitting the OPRF key"))?;
        let mut shares = Vec::with_capacity(split.len());
        for ((share, commitment), holder) in split.iter().zip(&map.holders) {
            let recipient =
                P256PublicKey::parse(&holder.receive_key).map_err(|_| ClientError::Malformed {
                    field: "share_map",
                    reason: "a share-receiving key is not a P-256 point",
                })?;
            let context = ShareContext {
                cluster_name: trust.cluster_name.to_string(),
                account: account.clone(),
                node_id: holder.node_id,
                guess_limit,
                reset_key: reset_public_key,
                commitment: *commitment,
            };
            let ciphertext = oprf::encrypt_share(&recipient, share, &context, &mut OsRng);
            shares.push(ShareUpload {
                node_id: holder.node_id,
                commitment: *commitment.as_bytes(),
                ciphertext: ciphertext.as_bytes().to_vec(),
            });
        }
        Ok(RegisterUpload {
            registration_upload,
            sealed_key: sealed_key.into_bytes(),
            guess_limit,
            ksf: *ksf,
            share_map_epoch: map.epoch,
            shares,
            reset_public_key,
        })
    }
}

/// The share map, if the pinned identity key signed it and it names this cluster.
pub fn check_share_map(
    signed: &SignedShareMap,
    trust: ClusterTrust<'_>,
) -> Result<ShareMap, ClientError> {
    let map = signed
        .verify(trust.identity_key)
        .map_err(|_| ClientError::UntrustedShareMap("not signed by the pinned identity key"))?;
    if map.cluster_name != trust.cluster_name {
        return Err(ClientError::UntrustedShareMap("it names another cluster"));
    }
    Ok(map)
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Registration(<redacted>)")
    }
}
