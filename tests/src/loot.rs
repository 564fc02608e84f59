//! The offline attacker: what it takes of nodes at rest (data directory, SoftHSM token, PIN
//! file) and what bkv's own library code opens with it: the node's state, the OPAQUE server
//! setup and an account's record (with the cluster key), the node's own OPRF key share (with
//! its share-receiving key); then an offline dictionary attack with whatever shares it has.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bkv_core::opaque::{ServerSecrets, Suite};
use bkv_core::oprf::{
    self, Blind, Commitment, KeyShare, P256PublicKey, ShareCiphertext, ShareContext,
};
use bkv_core::protocol::{self, CONTEXT};
use bkv_core::record::unseal_record;
use bkv_core::{AccountId, ClusterConfig, RecordView};
use bkv_hsm::testing::{module, use_softhsm_conf, write_softhsm_conf};
use bkv_hsm::{HsmConfig, Partition, Pin};
use bkv_raft::{DiscardAudit, SledStateMachine};
use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ServerLogin, ServerLoginParameters,
    ServerRegistration,
};
use rand::rngs::OsRng;

use crate::Cluster;

/// What the attacker holds of one node, opened with the project's own code, for one account.
pub struct Stolen {
    /// The node.
    pub node_id: u64,
    hsm: Partition,
    cluster: ClusterConfig,
    account: AccountId,
    /// The account's active record, as the node's state holds it.
    pub record: RecordView,
}

/// Copies `from` into `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Copies the material of nodes `ids` of a stopped `cluster` (data directory, token, PIN)
/// into `loot`, points this process's SoftHSM at the copied tokens, and opens each node's
/// state for `account`.
pub async fn steal(
    cluster: &Cluster,
    ids: &[u64],
    loot: &Path,
    account: &AccountId,
) -> anyhow::Result<Vec<Stolen>> {
    let conf = write_softhsm_conf(loot)?;
    let mut data: Vec<(u64, PathBuf, PathBuf)> = Vec::new();
    for id in ids {
        let node = cluster.node(*id)?;
        let to = loot.join(format!("node{id}"));
        copy_dir(node.data_dir(), &to.join("data"))?;
        copy_dir(&node.token_dir().join("tokens"), &loot.join("tokens"))?;
        std::fs::copy(node.token_dir().join("user.pin"), to.join("user.pin"))?;
        data.push((*id, to.join("data"), to.join("user.pin")));
    }
    use_softhsm_conf(&conf);
    let mut stolen = Vec::new();
    for (id, data_dir, pin) in &data {
        stolen.push(Stolen::open(*id, data_dir, pin, account).await?);
    }
    Ok(stolen)
}

impl std::fmt::Debug for Stolen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stolen")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl Stolen {
    /// Opens node `node_id`'s copied data directory and its token (already copied into the
    /// attacker's SoftHSM token directory) with the node's PIN.
    pub async fn open(
        node_id: u64,
        data: &Path,
        pin_file: &Path,
        account: &AccountId,
    ) -> anyhow::Result<Self> {
        let mut config = HsmConfig::new(format!("bkv-node{node_id}"), Pin::from_file(pin_file)?);
        config.module = module();
        let hsm = Partition::open(config).await?;
        let db = sled::Config::new()
            .path(data.join(bkv_raft::storage::RAFT_DB_DIR))
            .open()?;
        let sm = SledStateMachine::open(
            &db,
            &data.join(bkv_raft::storage::SNAPSHOT_DIR),
            Arc::new(DiscardAudit),
        )?;
        let (cluster, record) = sm
            .handle()
            .read(|s| (s.cluster().cloned(), s.active_record(account)));
        Ok(Self {
            node_id,
            hsm,
            cluster: cluster
                .ok_or_else(|| anyhow::anyhow!("no cluster in node {node_id}'s state"))?,
            account: account.clone(),
            record: record.ok_or_else(|| anyhow::anyhow!("no record in node {node_id}'s state"))?,
        })
    }

    /// This node's OPRF key share, opened from the record with its own token.
    pub async fn share(&self) -> anyhow::Result<KeyShare> {
        let stored = self
            .record
            .oprf
            .share_of(self.node_id)
            .ok_or_else(|| anyhow::anyhow!("node {} holds no share", self.node_id))?;
        let ciphertext = ShareCiphertext::parse(&stored.ciphertext)?;
        let z = self.hsm.share_ecdh(ciphertext.ephemeral_public()).await?;
        let receive = P256PublicKey::parse(&self.hsm.share_receive_key().await?.public)?;
        let context = ShareContext {
            cluster_name: self.cluster.cluster_name.clone(),
            account: self.account.clone(),
            node_id: self.node_id,
            guess_limit: self.record.guess_limit.get(),
            reset_key: self.record.oprf.reset_key,
            commitment: Commitment::parse(&stored.commitment)?,
        };
        Ok(oprf::open_share(&z, &ciphertext, &receive, &context)?)
    }

    /// The OPAQUE server secrets and the account's password file, unsealed with this node's
    /// cluster key.
    pub async fn opaque(&self) -> anyhow::Result<(ServerSecrets, ServerRegistration<Suite>)> {
        let c = &self.cluster;
        let secrets =
            ServerSecrets::unseal(&self.hsm, &c.cluster_id, &c.sealed_server_setup).await?;
        let record = unseal_record(
            &self.hsm,
            &c.cluster_id,
            &self.account,
            &self.record.request_id,
            &self.record.sealed_record,
        )
        .await?;
        let file = ServerRegistration::<Suite>::deserialize(&record.password_file.to_bytes())
            .map_err(|_| anyhow::anyhow!("password file"))?;
        Ok((secrets, file))
    }
}

/// Runs the whole OPAQUE login of `password_input` for `account` against the stolen record,
/// offline, as both the client and the server: whether it logs in.
pub fn logs_in(
    account: &AccountId,
    secrets: &ServerSecrets,
    file: &ServerRegistration<Suite>,
    ksf: &protocol::KsfParams,
    password_input: &[u8],
) -> anyhow::Result<bool> {
    let start = ClientLogin::<Suite>::start(&mut OsRng, password_input)
        .map_err(|_| anyhow::anyhow!("login start"))?;
    let server = ServerLogin::start(
        &mut OsRng,
        secrets.setup(),
        Some(file.clone()),
        start.message,
        account.as_bytes(),
        ServerLoginParameters {
            context: Some(CONTEXT),
            identifiers: protocol::identifiers(account),
        },
    )
    .map_err(|_| anyhow::anyhow!("server login start"))?;
    let argon2 = ksf.argon2()?;
    Ok(start
        .state
        .finish(
            &mut OsRng,
            password_input,
            server.message,
            ClientLoginFinishParameters::new(
                Some(CONTEXT),
                protocol::identifiers(account),
                Some(&argon2),
            ),
        )
        .is_ok())
}

/// The best hardened password the shares allow for `guess`: their evaluations combined
/// (with fewer shares than the threshold, that is the OPRF under another key).
pub fn harden(
    account: &AccountId,
    shares: &[KeyShare],
    guess: &str,
) -> anyhow::Result<oprf::HardenedPassword> {
    let input = oprf::oprf_input(account, guess.as_bytes())?;
    let (blind, blinded) = Blind::start(&input, &mut OsRng)?;
    let evaluations: Vec<_> = shares
        .iter()
        .map(|s| (s.index(), oprf::evaluate_share(s, &blinded, &mut OsRng).0))
        .collect();
    Ok(blind.finish(&input, &oprf::combine(&evaluations)?))
}

/// For each guess, whether the attacker holding `nodes` finds it right.
pub async fn attack(nodes: &[&Stolen], dictionary: &[&str]) -> anyhow::Result<Vec<bool>> {
    let (secrets, file) = nodes[0].opaque().await?;
    let mut shares = Vec::new();
    for node in nodes {
        shares.push(node.share().await?);
    }
    let ksf = nodes[0].record.oprf.ksf;
    let account = &nodes[0].account;
    let mut found = Vec::new();
    for guess in dictionary {
        let hardened = harden(account, &shares, guess)?;
        found.push(logs_in(account, &secrets, &file, &ksf, hardened.expose())?);
    }
    Ok(found)
}
