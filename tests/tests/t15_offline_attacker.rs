//! The attacker who holds everything of one node of three cannot test a password offline;
//! with two nodes' material (a majority: the threshold) it can, so the test is not vacuous.
//!
//! A real three-node cluster registers an account and recovers it once (so the shares are
//! installed where they were evaluated), every node writes a snapshot, and the cluster
//! stops. The attacker then takes, of each node it holds, what is at rest: its data
//! directory (the Raft log, the snapshot, the share ledgers), its SoftHSM token and its PIN
//! file. With bkv's own library code it rebuilds the node's state, unseals what that node's
//! process can unseal (the OPAQUE server setup and the account's record with the cluster
//! key, its own OPRF key share with its share-receiving key), and for every password of a
//! small dictionary computes the best hardened password its shares allow and runs the whole
//! OPAQUE login against the stolen record, offline. With one node no guess logs in, the
//! right one included (and running OPAQUE on the raw password, protocol v1's attack, fails
//! too); with two nodes exactly the right password logs in.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bkv_client::SecretString;
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
use bkv_tests::Cluster;
use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ServerLogin, ServerLoginParameters,
    ServerRegistration,
};
use rand::rngs::OsRng;

const ACCOUNT: &str = "victim@example.com";
const PASSWORD: &str = "correct horse battery staple";

/// What the attacker holds of one node, opened with the project's own code.
struct Stolen {
    node_id: u64,
    hsm: Partition,
    cluster: ClusterConfig,
    record: RecordView,
}

/// Copies `from` into `to`, recursively.
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
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

impl Stolen {
    /// Opens node `node_id`'s copied data directory and its token (already copied into the
    /// attacker's SoftHSM token directory) with the node's PIN.
    async fn open(node_id: u64, data: &Path, pin_file: &Path) -> anyhow::Result<Self> {
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
        let account = AccountId::parse(ACCOUNT)?;
        let (cluster, record) = sm
            .handle()
            .read(|s| (s.cluster().cloned(), s.active_record(&account)));
        Ok(Self {
            node_id,
            hsm,
            cluster: cluster
                .ok_or_else(|| anyhow::anyhow!("no cluster in node {node_id}'s state"))?,
            record: record.ok_or_else(|| anyhow::anyhow!("no record in node {node_id}'s state"))?,
        })
    }

    /// This node's OPRF key share, opened from the record with its own token.
    async fn share(&self) -> anyhow::Result<KeyShare> {
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
            account: AccountId::parse(ACCOUNT)?,
            node_id: self.node_id,
            guess_limit: self.record.guess_limit.get(),
            reset_key: self.record.oprf.reset_key,
            commitment: Commitment::parse(&stored.commitment)?,
        };
        Ok(oprf::open_share(&z, &ciphertext, &receive, &context)?)
    }

    /// The OPAQUE server secrets and the account's password file, unsealed with this node's
    /// cluster key.
    async fn opaque(&self) -> anyhow::Result<(ServerSecrets, ServerRegistration<Suite>)> {
        let c = &self.cluster;
        let secrets =
            ServerSecrets::unseal(&self.hsm, &c.cluster_id, &c.sealed_server_setup).await?;
        let record = unseal_record(
            &self.hsm,
            &c.cluster_id,
            &AccountId::parse(ACCOUNT)?,
            &self.record.request_id,
            &self.record.sealed_record,
        )
        .await?;
        let file = ServerRegistration::<Suite>::deserialize(&record.password_file.to_bytes())
            .map_err(|_| anyhow::anyhow!("password file"))?;
        Ok((secrets, file))
    }
}

/// Runs the whole OPAQUE login of `password_input` against the stolen record, offline, as
/// both the client and the server: whether it logs in.
fn logs_in(
    secrets: &ServerSecrets,
    file: &ServerRegistration<Suite>,
    ksf: &protocol::KsfParams,
    password_input: &[u8],
) -> anyhow::Result<bool> {
    let account = AccountId::parse(ACCOUNT)?;
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
            identifiers: protocol::identifiers(&account),
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
                protocol::identifiers(&account),
                Some(&argon2),
            ),
        )
        .is_ok())
}

/// The best hardened password the shares allow for `guess`: their evaluations combined
/// (with fewer shares than the threshold, that is the OPRF under another key).
fn harden(shares: &[KeyShare], guess: &str) -> anyhow::Result<oprf::HardenedPassword> {
    let input = oprf::oprf_input(&AccountId::parse(ACCOUNT)?, guess.as_bytes())?;
    let (blind, blinded) = Blind::start(&input, &mut OsRng)?;
    let evaluations: Vec<_> = shares
        .iter()
        .map(|s| (s.index(), oprf::evaluate_share(s, &blinded, &mut OsRng).0))
        .collect();
    Ok(blind.finish(&input, &oprf::combine(&evaluations)?))
}

/// For each guess, whether the attacker holding `nodes` finds it right.
async fn attack(nodes: &[&Stolen], dictionary: &[&str]) -> anyhow::Result<Vec<bool>> {
    let (secrets, file) = nodes[0].opaque().await?;
    let mut shares = Vec::new();
    for node in nodes {
        shares.push(node.share().await?);
    }
    let ksf = nodes[0].record.oprf.ksf;
    let mut found = Vec::new();
    for guess in dictionary {
        let hardened = harden(&shares, guess)?;
        found.push(logs_in(&secrets, &file, &ksf, hardened.expose())?);
    }
    Ok(found)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_cannot_test_a_password_offline_and_two_can() -> anyhow::Result<()> {
    // Phase: a real cluster registers and recovers the victim's key.
    let mut cluster = Cluster::start(3).await?;
    let account = AccountId::parse(ACCOUNT)?;
    let vault = cluster.vault(&[1, 2, 3], ACCOUNT).await?;
    let registered = vault
        .register(&account, SecretString::from(PASSWORD.to_string()), Some(10))
        .await?;
    let recovered = vault
        .recover(&account, SecretString::from(PASSWORD.to_string()))
        .await?;
    assert_eq!(recovered.key, registered.key);
    for id in 1..=3 {
        cluster.admin_at(id).await?.snapshot().await?;
    }
    for id in 1..=3 {
        cluster.sigterm(id).await?;
    }

    // Phase: the attacker copies the material of nodes 1 and 2 (data, token, PIN).
    let loot = tempfile::Builder::new().prefix("bkv-loot-").tempdir()?;
    let conf = write_softhsm_conf(loot.path())?;
    let mut data: Vec<(u64, PathBuf, PathBuf)> = Vec::new();
    for id in [1u64, 2] {
        let node = cluster.node(id)?;
        let to = loot.path().join(format!("node{id}"));
        copy_dir(node.data_dir(), &to.join("data"))?;
        copy_dir(
            &node.token_dir().join("tokens"),
            &loot.path().join("tokens"),
        )?;
        std::fs::copy(node.token_dir().join("user.pin"), to.join("user.pin"))?;
        data.push((id, to.join("data"), to.join("user.pin")));
    }
    use_softhsm_conf(&conf);
    let mut stolen = Vec::new();
    for (id, data_dir, pin) in &data {
        stolen.push(Stolen::open(*id, data_dir, pin).await?);
    }

    let dictionary = [
        "123456",
        "password",
        "correct horse battery",
        PASSWORD,
        "Correct horse battery staple",
        "letmein",
    ];
    let right: Vec<bool> = dictionary.iter().map(|g| *g == PASSWORD).collect();

    // Phase: one node's material. Every guess fails alike, the right one too: the
    // attacker cannot tell it from the others.
    for node in &stolen {
        let found = attack(&[node], &dictionary).await?;
        println!("node {} alone: {found:?}", node.node_id);
        assert!(
            found.iter().all(|f| !f),
            "node {} alone told guesses apart: {found:?}",
            node.node_id
        );
    }
    // Nor does OPAQUE on the raw password (protocol v1's offline attack) log in.
    let (secrets, file) = stolen[0].opaque().await?;
    let ksf = stolen[0].record.oprf.ksf;
    assert!(!logs_in(&secrets, &file, &ksf, PASSWORD.as_bytes())?);

    // Phase: two nodes' material, the threshold: exactly the right password logs in.
    let found = attack(&[&stolen[0], &stolen[1]], &dictionary).await?;
    println!("nodes 1 and 2: {found:?}");
    assert_eq!(
        found, right,
        "two nodes' shares should find exactly the password"
    );
    Ok(())
}
