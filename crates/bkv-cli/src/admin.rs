//! `bkv admin ...`: operator commands over the admin API, and the health check of a
//! node's client port.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use bkv_admin::AdminClient;
use bkv_client::proto::{
    AddNodePhase, AuditRecord, ClusterStatusResponse, MemberRole, NodeInfoResponse,
};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::conn::{AdminConn, read_file};
use crate::exit::{self, Failure};
use crate::parse::parse_secs;

/// Most progress messages accepted from one AddNode stream.
const PROGRESS_LIMIT: usize = 100_000;

/// `bkv admin ...`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Initialise a new cluster on a node (its HSM makes the cluster key)
    Init(InitArgs),
    /// Show a node's identity: node id, addresses, enrollment key fingerprint
    NodeInfo(NodeInfoArgs),
    /// Add a node: confirm its enrollment fingerprint, provision the cluster key, catch up,
    /// promote
    #[command(long_about = "Add a node to the cluster.\n\n\
        First fetches the new node's identity from --admin-addr and prints its enrollment \
        key fingerprint. Goes on only if it equals --fingerprint (compared out of band), or \
        with --yes, or after you type \"yes\" on a terminal. Then asks the leader to run the \
        ceremony (wrap the cluster key to the node's enrollment key, add it as a learner, \
        wait until it has caught up, promote it to voter) and shows its progress. Then signs \
        the new share map (every voter with the share-receiving key its token holds) with \
        the cluster identity key and puts it in force.")]
    AddNode(AddNodeArgs),
    /// Remove a node from the membership, sign and publish the new share map, then ask the
    /// removed node to erase its shares (its share keys destroyed in its token)
    RemoveNode(RemoveNodeArgs),
    /// Ask a node that was removed from the cluster to erase its shares (done by
    /// remove-node; run it by hand if the node was down then)
    EraseShares(EraseSharesArgs),
    /// Sign and publish the share map of the current voters (done by init, add-node and
    /// remove-node; run it by hand if one of them stopped before)
    ShareMap(ShareMapArgs),
    /// The cluster as the nodes see it: roles, leader, term, log indexes, key check values
    Status(StatusArgs),
    /// Hand leadership to another voter
    TransferLeader(TransferArgs),
    /// Refresh every account's OPRF key shares (old shares stop combining with new ones)
    #[command(long_about = "Refresh the OPRF key shares of every account.\n\n\
        The node at --endpoint runs the pass: for each active record, its share-holders that \
        are voters of the share map add a random sharing of zero to their shares, and the new \
        shares are committed once every replica has checked them against the record's \
        commitments. The key and every password stay the same; shares taken before the \
        refresh no longer combine with shares taken after it, each holder erases its old \
        share once its new one is installed, and every evaluation counted before still \
        counts. Paced like share repair. Prints progress, then a summary; exits 1 if any \
        record was skipped (it keeps its shares: run it again).")]
    RefreshShares(RefreshSharesArgs),
    /// Build a snapshot on a node now
    Snapshot(SnapshotArgs),
    /// Print a node's audit events as JSON lines
    Audit(AuditArgs),
    /// gRPC health check of a node's client port; exit 0 only when SERVING
    #[command(
        long_about = "gRPC health check (grpc.health.v1) of a node's client port, \
        over TLS with the cluster CA. Prints the status and exits 0 only when it is SERVING, \
        1 otherwise (not serving, unknown service, unreachable): usable as a container \
        healthcheck."
    )]
    Health(HealthArgs),
}

/// `bkv admin init`
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The cluster name: the audience account tokens must carry
    #[arg(long, value_name = "NAME")]
    pub cluster_name: String,
    /// Guess limit of registrations that ask for none (default: the node's, 10)
    #[arg(long, value_name = "N")]
    pub default_guess_limit: Option<u32>,
    /// Highest guess limit a registration may ask for (default: the node's, 100)
    #[arg(long, value_name = "N")]
    pub max_guess_limit: Option<u32>,
    /// The node to initialise (default: the first admin endpoint)
    #[arg(long, value_name = "ADDR")]
    pub endpoint: Option<String>,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: AdminConn,
}

/// `bkv admin node-info`
#[derive(Debug, Args)]
pub struct NodeInfoArgs {
    /// The node's admin address (default: the first admin endpoint)
    #[arg(long, value_name = "ADDR")]
    pub endpoint: Option<String>,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: AdminConn,
}

/// `bkv admin add-node`
#[derive(Debug, Args)]
pub struct AddNodeArgs {
    /// The new node's id
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub node_id: u64,
    /// The new node's admin address, as the leader will reach it
    #[arg(long, value_name = "HOST:PORT")]
    pub admin_addr: String,
    /// The enrollment fingerprint confirmed out of band (hex; colons and case ignored)
    #[arg(long, value_name = "FP", conflicts_with = "yes")]
    pub fingerprint: Option<String>,
    /// Trust the fingerprint the node shows without confirming it
    #[arg(long)]
    pub yes: bool,
    /// Stop when the node has caught up as a learner; do not promote it
    #[arg(long)]
    pub learner_only: bool,
    /// Longest wait for the whole ceremony, in seconds
    #[arg(long, default_value = "600", value_parser = parse_secs, value_name = "SECS")]
    pub wait: Duration,
    #[command(flatten)]
    pub conn: AdminConn,
}

/// `bkv admin remove-node`
#[derive(Debug, Args)]
pub struct RemoveNodeArgs {
    /// The node to remove
    #[arg(long, value_name = "N")]
    pub node_id: u64,
    /// Leave the removed node's shares in its token (by default the node is asked to erase
    /// them once it is out of the cluster)
    #[arg(long)]
    pub keep_shares: bool,
    #[command(flatten)]
    pub conn: AdminConn,
}

/// `bkv admin erase-shares`
#[derive(Debug, Args)]
pub struct EraseSharesArgs {
    /// The node whose shares to erase (it must have been removed from the cluster)
    #[arg(long, value_name = "N")]
    pub node_id: u64,
    /// That node's admin address (host:port)
    #[arg(long, value_name = "ADDR")]
    pub node_admin: String,
    #[command(flatten)]
    pub conn: AdminConn,
}

/// `bkv admin share-map`
#[derive(Debug, Args)]
pub struct ShareMapArgs {
    #[command(flatten)]
    pub conn: AdminConn,
}

/// `bkv admin status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
    /// Also show each node's state digest (equal on nodes at the same applied index). Each
    /// node encodes its whole state for it and applies nothing meanwhile: about 0.7 s per
    /// million accounts
    #[arg(long)]
    pub digests: bool,
    #[command(flatten)]
    pub conn: AdminConn,
}

/// `bkv admin transfer-leader`
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// The voter that should lead
    #[arg(long, value_name = "N")]
    pub to: u64,
    #[command(flatten)]
    pub conn: AdminConn,
}

/// `bkv admin refresh-shares`
#[derive(Debug, Args)]
pub struct RefreshSharesArgs {
    /// The node that runs the pass (default: the first admin endpoint)
    #[arg(long, value_name = "ADDR")]
    pub endpoint: Option<String>,
    #[command(flatten)]
    pub conn: AdminConn,
}

/// `bkv admin snapshot`
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The node (default: the first admin endpoint)
    #[arg(long, value_name = "ADDR")]
    pub endpoint: Option<String>,
    #[command(flatten)]
    pub conn: AdminConn,
}

/// `bkv admin audit`
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Keep printing new events as they are applied
    #[arg(long)]
    pub follow: bool,
    /// First sequence number to print
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub from_seq: u64,
    /// The node (default: the first admin endpoint)
    #[arg(long, value_name = "ADDR")]
    pub endpoint: Option<String>,
    #[command(flatten)]
    pub conn: AdminConn,
}

/// `bkv admin health`
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The node's client endpoint (default: the first of BKV_ENDPOINTS)
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Client endpoints; the first is checked when --endpoint is not given
    #[arg(long, env = "BKV_ENDPOINTS", value_delimiter = ',', hide = true)]
    pub endpoints: Vec<String>,
    /// The cluster CA certificate (PEM)
    #[arg(long, env = "BKV_CA_CERT", value_name = "FILE")]
    pub ca_cert: PathBuf,
    /// The service to check; "" asks about the server as a whole
    #[arg(long, default_value = "bkv.v1.Vault", value_name = "NAME")]
    pub service: String,
    /// Longest wait, in seconds
    #[arg(long, default_value = "3", value_parser = parse_secs, value_name = "SECS")]
    pub timeout: Duration,
}

/// Runs `bkv admin ...`.
pub async fn run(command: AdminCommand) -> Result<(), Failure> {
    match command {
        AdminCommand::Init(a) => init(a).await,
        AdminCommand::NodeInfo(a) => node_info(a).await,
        AdminCommand::AddNode(a) => add_node(a).await,
        AdminCommand::RemoveNode(a) => {
            let identity = a.conn.identity()?;
            let admin = a.conn.client(None).await?;
            // Where the node is, read before it leaves the membership.
            let node_admin = admin.status().await.ok().and_then(|s| {
                s.members
                    .into_iter()
                    .find(|m| m.node_id == a.node_id)
                    .map(|m| m.admin_addr)
            });
            let r = admin.remove_node(a.node_id).await?;
            println!(
                "removed node {}; voters {:?}, learners {:?}",
                a.node_id, r.voters, r.learners
            );
            publish_share_map(&admin, &identity).await?;
            if a.keep_shares {
                return Ok(());
            }
            match node_admin {
                Some(addr) if !addr.is_empty() => {
                    erase_removed_node_shares(&admin, a.node_id, &addr).await
                }
                _ => {
                    eprintln!(
                        "node {}'s admin address is unknown: erase its shares with `bkv admin \
                         erase-shares --node-id {} --node-admin ADDR`, or destroy its token",
                        a.node_id, a.node_id
                    );
                    Ok(())
                }
            }
        }
        AdminCommand::EraseShares(a) => {
            let admin = a.conn.client(Some(vec![a.node_admin.clone()])).await?;
            Ok(erase_shares(&admin, a.node_id, &a.node_admin).await?)
        }
        AdminCommand::ShareMap(a) => {
            let identity = a.conn.identity()?;
            let admin = a.conn.client(None).await?;
            publish_share_map(&admin, &identity).await
        }
        AdminCommand::Status(a) => status(a).await,
        AdminCommand::TransferLeader(a) => {
            let admin = a.conn.client(None).await?;
            let r = admin.transfer_leader(a.to).await?;
            println!("leader is now node {}", r.leader_id);
            Ok(())
        }
        AdminCommand::RefreshShares(a) => refresh_shares(a).await,
        AdminCommand::Snapshot(a) => {
            let admin = a.conn.client(a.endpoint.map(|e| vec![e])).await?;
            let r = admin.snapshot().await?;
            println!(
                "snapshot at log index {} ({} bytes)",
                r.last_log_index, r.size_bytes
            );
            Ok(())
        }
        AdminCommand::Audit(a) => audit(a).await,
        AdminCommand::Health(a) => health(a).await,
    }
}

/// Asks the removed node at `addr` to erase its shares, and says what it did.
async fn erase_shares(
    admin: &AdminClient,
    node_id: u64,
    addr: &str,
) -> Result<(), bkv_admin::AdminError> {
    let r = admin.at(addr)?.erase_shares(node_id).await?;
    println!(
        "node {node_id} erased its shares: {} key objects destroyed in its token, {} share \
         ledgers removed",
        r.keys_destroyed, r.ledgers_erased
    );
    Ok(())
}

/// [`erase_shares`] after a removal: a node that cannot be reached (it may be down for
/// good) or refuses does not fail the removal, which is done; says what to do instead.
async fn erase_removed_node_shares(
    admin: &AdminClient,
    node_id: u64,
    addr: &str,
) -> Result<(), Failure> {
    if let Err(e) = erase_shares(admin, node_id, addr).await {
        eprintln!(
            "node {node_id} did not erase its shares ({e}): when it is up again run `bkv admin \
             erase-shares --node-id {node_id} --node-admin {addr}`, or destroy its token"
        );
    }
    Ok(())
}

async fn init(a: InitArgs) -> Result<(), Failure> {
    let identity = a.conn.identity()?;
    let admin = a.conn.client(a.endpoint.map(|e| vec![e])).await?;
    let r = admin
        .init(
            &a.cluster_name,
            a.default_guess_limit.unwrap_or(0),
            a.max_guess_limit.unwrap_or(0),
            &identity,
        )
        .await?;
    if a.json {
        println!(
            "{}",
            json!({
                "cluster_name": a.cluster_name,
                "cluster_id": hex::encode(&r.cluster_id),
                "key_check_value": hex::encode(&r.key_check_value),
                "node_id": r.node_id,
            })
        );
    } else {
        println!(
            "initialised cluster {} on node {}",
            a.cluster_name, r.node_id
        );
        println!("cluster id       {}", hex::encode(&r.cluster_id));
        println!("key check value  {}", hex::encode(&r.key_check_value));
    }
    Ok(())
}

/// The fingerprint of a NodeInfo, checked against its key: a node cannot show one
/// fingerprint and enroll another key.
fn checked_fingerprint(info: &NodeInfoResponse) -> Result<String, Failure> {
    let computed = hex::encode(Sha256::digest(&info.enrollment_public_key));
    if info.enrollment_public_key.is_empty() || computed != normalize(&info.enrollment_fingerprint)
    {
        return Err(Failure::other(format!(
            "node {} shows a fingerprint that is not the SHA-256 of its enrollment key",
            info.node_id
        )));
    }
    Ok(computed)
}

fn normalize(fingerprint: &str) -> String {
    fingerprint
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .collect::<String>()
        .to_ascii_lowercase()
}

async fn node_info(a: NodeInfoArgs) -> Result<(), Failure> {
    let admin = a.conn.client(a.endpoint.map(|e| vec![e])).await?;
    let info = admin.node_info().await?;
    let fingerprint = checked_fingerprint(&info)?;
    if a.json {
        println!(
            "{}",
            json!({
                "node_id": info.node_id,
                "raft_addr": info.raft_addr,
                "client_addr": info.client_addr,
                "admin_addr": info.admin_addr,
                "enrollment_fingerprint": fingerprint,
                "has_cluster_key": info.has_cluster_key,
                "key_check_value": hex::encode(&info.key_check_value),
                "cluster_id": hex::encode(&info.cluster_id),
                "software_version": info.software_version,
            })
        );
    } else {
        let or_dash = |s: String| if s.is_empty() { "-".to_string() } else { s };
        println!("node id                 {}", info.node_id);
        println!("raft address            {}", or_dash(info.raft_addr));
        println!("client address          {}", or_dash(info.client_addr));
        println!("admin address           {}", or_dash(info.admin_addr));
        println!("enrollment fingerprint  {fingerprint}");
        println!(
            "cluster key             {}",
            if info.has_cluster_key {
                format!("yes, check value {}", hex::encode(&info.key_check_value))
            } else {
                "no".into()
            }
        );
        println!(
            "cluster id              {}",
            or_dash(hex::encode(&info.cluster_id))
        );
        println!("software version        {}", or_dash(info.software_version));
    }
    Ok(())
}

fn phase_name(phase: i32) -> &'static str {
    match AddNodePhase::try_from(phase) {
        Ok(AddNodePhase::Enrolled) => "enrolled",
        Ok(AddNodePhase::KeyProvisioned) => "key provisioned",
        Ok(AddNodePhase::CatchingUp) => "catching up",
        Ok(AddNodePhase::Done) => "done",
        _ => "unknown phase",
    }
}

/// Asks the operator on the terminal; true only for "yes".
fn confirm_on_tty(node_id: u64) -> Result<bool, Failure> {
    eprint!("Type \"yes\" to add node {node_id} with this enrollment fingerprint: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::other(format!("cannot read the answer: {e}")))?;
    Ok(line.trim() == "yes")
}

async fn refresh_shares(a: RefreshSharesArgs) -> Result<(), Failure> {
    let admin = a.conn.client(a.endpoint.map(|e| vec![e])).await?;
    let mut progress = admin.refresh_shares().await?;
    for _ in 0..PROGRESS_LIMIT {
        let Some(p) = progress.next().await? else {
            return Err(Failure::other(
                "the node ended the refresh pass before it was done: run it again",
            ));
        };
        let line = refresh_line(&p);
        if !p.done {
            println!("{line}");
            continue;
        }
        println!("done: {line}");
        return if p.skipped.is_empty() {
            Ok(())
        } else {
            Err(Failure::other(
                "some records were skipped and keep their shares: run it again",
            ))
        };
    }
    Err(Failure::other(
        "refresh-shares sent too many progress messages",
    ))
}

/// One line of refresh progress: `refreshed 64 of 65 records seen in 1.2 s; skipped
/// holder_unreachable=1`.
fn refresh_line(p: &bkv_proto::v1::RefreshSharesProgress) -> String {
    let mut line = format!(
        "refreshed {} of {} records seen in {:.1} s",
        p.refreshed,
        p.records_seen,
        p.elapsed_ms as f64 / 1000.0
    );
    if !p.skipped.is_empty() {
        let mut skipped: Vec<_> = p.skipped.iter().collect();
        skipped.sort();
        line.push_str("; skipped");
        for (reason, n) in skipped {
            line.push_str(&format!(" {reason}={n}"));
        }
    }
    line
}

async fn add_node(a: AddNodeArgs) -> Result<(), Failure> {
    // Checked first: a voter added without a new share map would hold no shares.
    let identity = (!a.learner_only).then(|| a.conn.identity()).transpose()?;
    let admin = a.conn.client(None).await?;
    // Phase 1: who is the new node, and is its key the one the operator expects?
    let new_node = admin.at(&a.admin_addr)?;
    let info = new_node.node_info().await?;
    if info.node_id != a.node_id {
        return Err(Failure::other(format!(
            "{} is node {}, not node {}",
            a.admin_addr, info.node_id, a.node_id
        )));
    }
    let fingerprint = checked_fingerprint(&info)?;
    println!("node {} at {}", info.node_id, a.admin_addr);
    println!("enrollment fingerprint  {fingerprint}");
    let confirmed = match (&a.fingerprint, a.yes) {
        (Some(expected), _) => {
            if normalize(expected) != fingerprint {
                return Err(Failure::other(format!(
                    "fingerprint mismatch: the node shows {fingerprint}, expected {}; not adding it",
                    normalize(expected)
                )));
            }
            true
        }
        (None, true) => true,
        (None, false) if std::io::stdin().is_terminal() => confirm_on_tty(a.node_id)?,
        (None, false) => {
            return Err(Failure::usage(
                "confirm the fingerprint with --fingerprint FP (or --yes); no terminal to ask on",
            ));
        }
    };
    if !confirmed {
        return Err(Failure::other("not confirmed; node not added"));
    }

    // Phase 2: the leader runs the ceremony; show its progress.
    let ceremony = async {
        let mut progress = admin
            .add_node(a.node_id, &a.admin_addr, &fingerprint, a.learner_only)
            .await?;
        let bar = progress_bar();
        let mut last_phase = "not started";
        for _ in 0..PROGRESS_LIMIT {
            let Some(p) = progress.next().await? else {
                bar.abandon();
                return Err(Failure::other(format!(
                    "the leader ended add-node before it was done (last phase: {last_phase})"
                )));
            };
            let phase = phase_name(p.phase);
            let line = if phase == "catching up" {
                format!(
                    "[{phase}] matched {} of {}{}",
                    p.matched_index,
                    p.leader_index,
                    suffix(&p.message)
                )
            } else {
                format!("[{phase}]{}", suffix(&p.message))
            };
            if bar.is_hidden() {
                // Not a terminal: every step as a line on stdout.
                println!("{line}");
            } else {
                if phase == "catching up" {
                    bar.set_length(p.leader_index.max(1));
                    bar.set_position(p.matched_index);
                    bar.set_message(phase);
                }
                if phase != last_phase {
                    bar.println(line);
                }
            }
            last_phase = phase;
            if p.phase == AddNodePhase::Done as i32 {
                bar.finish_and_clear();
                return Ok(());
            }
        }
        Err(Failure::other("add-node sent too many progress messages"))
    };
    match tokio::time::timeout(a.wait, ceremony).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(Failure::other(format!(
                "add-node did not finish within {} s; check `bkv admin status`",
                a.wait.as_secs()
            ))
            .with_code(exit::UNAVAILABLE, "timeout"));
        }
    }
    println!(
        "node {} added{}",
        a.node_id,
        if a.learner_only {
            " as a learner"
        } else {
            " as a voter"
        }
    );
    if let Some(identity) = identity {
        publish_share_map(&admin, &identity).await?;
    }
    Ok(())
}

/// Signs and puts in force the share map of the voters as they are now.
async fn publish_share_map(
    admin: &bkv_admin::AdminClient,
    identity: &ed25519_dalek::SigningKey,
) -> Result<(), Failure> {
    let published = admin.publish_share_map(identity).await?;
    let map = published.map;
    let holders: Vec<String> = map.holders.iter().map(|h| h.node_id.to_string()).collect();
    if published.unchanged {
        println!(
            "share map epoch {} already names the voters ({}), threshold {}: unchanged",
            map.epoch,
            holders.join(", "),
            map.threshold
        );
        return Ok(());
    }
    println!(
        "share map epoch {}: holders {}, threshold {} (registrations from now on split over them; \
         earlier records keep their own holders until their shares are repaired)",
        map.epoch,
        holders.join(", "),
        map.threshold
    );
    Ok(())
}

fn suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

/// A bar on stderr when it is a terminal, hidden otherwise (then lines go to stdout).
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(1);
    if let Ok(style) = ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn role_name(role: i32) -> &'static str {
    match MemberRole::try_from(role) {
        Ok(MemberRole::Voter) => "voter",
        Ok(MemberRole::Learner) => "learner",
        _ => "?",
    }
}

/// The status as JSON.
fn status_json(s: &ClusterStatusResponse) -> serde_json::Value {
    let members: Vec<serde_json::Value> = s
        .members
        .iter()
        .map(|m| {
            let view = m.status.as_ref().map(|v| {
                json!({
                    "node_id": v.node_id,
                    "is_leader": v.is_leader,
                    "leader_id": v.leader_id,
                    "term": v.term,
                    "last_log_index": v.last_log_index,
                    "commit_index": v.commit_index,
                    "applied_index": v.applied_index,
                    "key_check_value": hex::encode(&v.key_check_value),
                    "state_digest": (!v.state_digest.is_empty()).then_some(&v.state_digest),
                    "serving": v.serving,
                    "not_serving_reason": v.not_serving_reason,
                    "snapshot_index": v.snapshot_index,
                    "accounts_with_shares": v.accounts_with_shares,
                    "shares_missing": v.shares_missing,
                    "shares_held": v.shares_held,
                    "share_map_epoch": v.share_map_epoch,
                    "in_share_map": v.in_share_map,
                })
            });
            json!({
                "node_id": m.node_id,
                "role": role_name(m.role),
                "raft_addr": m.raft_addr,
                "admin_addr": m.admin_addr,
                "client_addr": m.client_addr,
                "matched_index": m.matched_index,
                "status": view,
                "error": (!m.error.is_empty()).then_some(&m.error),
            })
        })
        .collect();
    json!({
        "cluster_name": s.cluster_name,
        "cluster_id": hex::encode(&s.cluster_id),
        "leader_id": s.leader_id,
        "term": s.term,
        "members": members,
    })
}

/// The status as a table, one row per member.
fn status_table(s: &ClusterStatusResponse) -> String {
    let header = [
        "NODE",
        "ROLE",
        "LEADER",
        "TERM",
        "LAST",
        "COMMIT",
        "APPLIED",
        "KCV",
        "SERVING",
        "MAP",
        "SHARES",
        "MISSING",
        "INSTALLED",
        "DIGEST",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    let mut notes = Vec::new();
    for m in &s.members {
        let node = if m.node_id == s.leader_id {
            format!("{}*", m.node_id)
        } else {
            m.node_id.to_string()
        };
        let row = match &m.status {
            Some(v) => vec![
                node,
                role_name(m.role).to_string(),
                v.leader_id.to_string(),
                v.term.to_string(),
                v.last_log_index.to_string(),
                v.commit_index.to_string(),
                v.applied_index.to_string(),
                if v.key_check_value.is_empty() {
                    "-".into()
                } else {
                    hex::encode(&v.key_check_value)
                },
                if v.serving { "yes".into() } else { "no".into() },
                match (v.share_map_epoch, v.in_share_map) {
                    (0, _) => "-".into(),
                    (epoch, true) => epoch.to_string(),
                    (epoch, false) => format!("{epoch}(out)"),
                },
                v.accounts_with_shares.to_string(),
                if v.in_share_map {
                    v.shares_missing.to_string()
                } else {
                    "-".into()
                },
                v.shares_held.to_string(),
                if v.state_digest.is_empty() {
                    "-".into()
                } else {
                    v.state_digest.chars().take(12).collect()
                },
            ],
            None => {
                let mut row = vec![node, role_name(m.role).to_string()];
                row.extend(std::iter::repeat_n("-".to_string(), header.len() - 2));
                row
            }
        };
        rows.push(row);
        if let Some(v) = &m.status
            && !v.serving
            && !v.not_serving_reason.is_empty()
        {
            notes.push(format!(
                "node {} not serving: {}",
                m.node_id, v.not_serving_reason
            ));
        }
        if !m.error.is_empty() {
            notes.push(format!("node {} did not answer: {}", m.node_id, m.error));
        }
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = format!(
        "cluster {} ({}), leader {}, term {}\n",
        if s.cluster_name.is_empty() {
            "-"
        } else {
            &s.cluster_name
        },
        if s.cluster_id.is_empty() {
            "not initialised".to_string()
        } else {
            hex::encode(&s.cluster_id)
        },
        if s.leader_id == 0 {
            "unknown".to_string()
        } else {
            s.leader_id.to_string()
        },
        s.term
    );
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    for note in notes {
        out.push_str(&note);
        out.push('\n');
    }
    out
}

async fn status(a: StatusArgs) -> Result<(), Failure> {
    let admin = a.conn.client(None).await?;
    let s = if a.digests {
        admin.status_with_digests().await?
    } else {
        admin.status().await?
    };
    if a.json {
        println!("{}", status_json(&s));
    } else {
        print!("{}", status_table(&s));
    }
    Ok(())
}

/// One audit record as a JSON line: the node's own line when it sent one.
fn audit_line(r: &AuditRecord) -> String {
    if !r.json.is_empty() {
        return r.json.clone();
    }
    json!({
        "seq": r.seq,
        "log_index": r.log_index,
        "kind": r.kind,
        "account_hash": r.account_hash,
        "version": r.version,
        "charge": r.charge,
        "guesses_remaining": r.guesses_remaining,
        "at_unix_ms": r.at_unix_ms,
    })
    .to_string()
}

/// Prints the stream as it arrives, one record in memory at a time: the node ends it at the
/// last line there was when it began, unless `--follow`. Without `--follow` the output is
/// buffered; with it, every line is flushed as it comes.
async fn audit(a: AuditArgs) -> Result<(), Failure> {
    let admin: AdminClient = a.conn.client(a.endpoint.map(|e| vec![e])).await?;
    let mut stream = admin.audit(a.from_seq, a.follow).await?;
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    while let Some(record) = stream.next().await? {
        let written = writeln!(out, "{}", audit_line(&record));
        // A closed stdout (`| head`) ends the command quietly.
        if written
            .and_then(|()| if a.follow { out.flush() } else { Ok(()) })
            .is_err()
        {
            return Ok(());
        }
    }
    let _ = out.flush();
    Ok(())
}

async fn health(a: HealthArgs) -> Result<(), Failure> {
    let endpoint = a
        .endpoint
        .or_else(|| a.endpoints.first().cloned())
        .ok_or_else(|| Failure::usage("no endpoint: set --endpoint or BKV_ENDPOINTS"))?;
    let url = bkv_client::https_url(&endpoint).map_err(|e| Failure::usage(e.to_string()))?;
    let ca = read_file("CA certificate", &a.ca_cert)?;
    let check = async {
        let channel = Channel::from_shared(url.clone())
            .map_err(|e| e.to_string())?
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
            .map_err(|e| e.to_string())?
            .connect_timeout(a.timeout)
            .connect()
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let request = HealthCheckRequest {
            service: a.service.clone(),
        };
        HealthClient::new(channel)
            .check(request)
            .await
            .map(|r| r.into_inner().status)
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    };
    let status = match tokio::time::timeout(a.timeout, check).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Err(Failure::other(format!("{url}: {e}"))),
        Err(_) => {
            return Err(Failure::other(format!(
                "{url}: no answer within {} s",
                a.timeout.as_secs_f64()
            )));
        }
    };
    let name = ServingStatus::try_from(status)
        .map(|s| s.as_str_name())
        .unwrap_or("UNKNOWN");
    println!("{name}");
    if status == ServingStatus::Serving as i32 {
        Ok(())
    } else {
        Err(Failure::other(format!("{url}: {} is {name}", a.service)))
    }
}

#[cfg(test)]
mod tests {
    use bkv_client::proto::{MemberStatus, NodeView};

    use super::*;

    #[test]
    fn status_table_has_a_row_per_member_and_notes() {
        let s = ClusterStatusResponse {
            cluster_name: "bkv-local".into(),
            cluster_id: vec![0xaa; 16],
            leader_id: 1,
            term: 3,
            members: vec![
                MemberStatus {
                    node_id: 1,
                    role: MemberRole::Voter as i32,
                    status: Some(NodeView {
                        node_id: 1,
                        is_leader: true,
                        leader_id: 1,
                        term: 3,
                        last_log_index: 120,
                        commit_index: 120,
                        applied_index: 119,
                        key_check_value: vec![1, 2, 3],
                        state_digest: "00112233445566778899".into(),
                        serving: true,
                        share_map_epoch: 2,
                        in_share_map: true,
                        accounts_with_shares: 40,
                        shares_missing: 3,
                        shares_held: 12,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                MemberStatus {
                    node_id: 2,
                    role: MemberRole::Learner as i32,
                    error: "connection refused".into(),
                    ..Default::default()
                },
            ],
        };
        let table = status_table(&s);
        let want = "\
cluster bkv-local (aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa), leader 1, term 3
NODE  ROLE     LEADER  TERM  LAST  COMMIT  APPLIED  KCV     SERVING  MAP  SHARES  MISSING  INSTALLED  DIGEST
1*    voter    1       3     120   120     119      010203  yes      2    40      3        12         001122334455
2     learner  -       -     -     -       -        -       -        -    -       -        -          -
node 2 did not answer: connection refused
";
        assert_eq!(table, want);
        let j = status_json(&s);
        assert_eq!(j["members"][0]["status"]["key_check_value"], "010203");
        assert_eq!(j["members"][0]["status"]["shares_missing"], 3);
        assert_eq!(j["members"][1]["error"], "connection refused");
        assert_eq!(j["members"][0]["status"]["accounts_with_shares"], 40);
        assert_eq!(j["members"][0]["status"]["shares_held"], 12);
        assert_eq!(j["members"][1]["status"], serde_json::Value::Null);
        assert_eq!(
            j["members"][0]["status"]["state_digest"],
            "00112233445566778899"
        );

        // Without digests (not asked for): a dash in the table, null in JSON.
        let mut plain = s.clone();
        if let Some(v) = plain.members[0].status.as_mut() {
            v.state_digest.clear();
        }
        let table = status_table(&plain);
        assert!(
            table.contains("010203  yes      2    40      3        12         -\n"),
            "no digest column value: {table}"
        );
        let j = status_json(&plain);
        assert_eq!(
            j["members"][0]["status"]["state_digest"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn fingerprints_are_checked_against_the_key_and_normalized() {
        let key = vec![5u8; 300];
        let fp = hex::encode(Sha256::digest(&key));
        let mut info = NodeInfoResponse {
            node_id: 4,
            enrollment_public_key: key,
            enrollment_fingerprint: fp.to_uppercase(),
            ..Default::default()
        };
        assert_eq!(checked_fingerprint(&info).ok(), Some(fp.clone()));
        let colons: String = fp
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(normalize(&colons), fp);
        info.enrollment_fingerprint = "00".repeat(32);
        assert!(checked_fingerprint(&info).is_err());
        info.enrollment_public_key.clear();
        info.enrollment_fingerprint = hex::encode(Sha256::digest([]));
        assert!(checked_fingerprint(&info).is_err());
    }
}
