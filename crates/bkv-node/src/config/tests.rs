//! Tests of configuration loading: file, then environment, then flags; errors name the key.

use std::io::Write as _;

use super::*;

const MINIMAL: &str = r#"
node_id = 3
data_dir = "data"

[tls]
ca_cert = "ca.pem"
cert = "node3.pem"
key = "node3.key"

[hsm]
token_label = "bkv-node3"
user_pin_file = "user.pin"

[[auth.issuers]]
name = "dev"
public_key_file = "issuer.pub.pem"
"#;

fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("node.toml");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    path
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_fill_what_the_file_leaves_out_and_paths_are_relative_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), MINIMAL);
    let c = NodeConfig::load(Some(&file), env(&[]), &FlagOverrides::default()).unwrap();
    assert_eq!(c.node_id, 3);
    assert_eq!(c.data_dir, dir.path().join("data"));
    assert_eq!(c.tls.cert, dir.path().join("node3.pem"));
    assert_eq!(c.hsm.user_pin_file, Some(dir.path().join("user.pin")));
    assert_eq!(c.listen.client.port(), 7101);
    assert_eq!(c.raft.heartbeat_ms, 100);
    assert_eq!(c.client_addr(), "127.0.0.1:7101");
    assert_eq!(c.log.format, LogFormat::Human);
}

#[test]
fn environment_overrides_the_file_and_flags_override_both() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), MINIMAL);
    let vars = env(&[
        ("BKV_NODE_ID", "7"),
        ("BKV_HSM__TOKEN_LABEL", "from-env"),
        ("BKV_LISTEN__CLIENT", "127.0.0.1:9101"),
        ("BKV_RAFT__HEARTBEAT_MS", "50"),
        ("BKV_RAFT__MAX_COMMANDS_PER_ENTRY", "1"),
        // Empty is as good as unset.
        ("BKV_LIMITS__RECOVER_PER_ACCOUNT_PER_MIN", ""),
        // The CLI's variables live in the same namespace and are not config keys.
        ("BKV_ENDPOINTS", "https://127.0.0.1:7101"),
        ("BKV_TOKEN", "abc"),
        ("PATH", "/bin"),
    ]);
    let flags = FlagOverrides {
        node_id: Some(9),
        listen: ListenFlags {
            peer: Some("127.0.0.1:9201".parse().unwrap()),
            ..Default::default()
        },
        ..Default::default()
    };
    let c = NodeConfig::load(Some(&file), vars, &flags).unwrap();
    assert_eq!(c.node_id, 9, "flag beats env");
    assert_eq!(c.hsm.token_label, "from-env");
    assert_eq!(c.listen.client.port(), 9101);
    assert_eq!(c.listen.peer.port(), 9201);
    assert_eq!(c.raft.heartbeat_ms, 50);
    assert_eq!(c.raft.max_commands_per_entry, 1);
    assert_eq!(
        c.limits.recover_per_account_per_min,
        Limits::default().recover_per_account_per_min
    );
}

#[test]
fn errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        ("node_id = 0\n", "node_id"),
        ("[raft]\nheartbeat_ms = \"fast\"\n", "raft.heartbeat_ms"),
        (
            "[raft]\nelection_timeout_min_ms = 50\n",
            "raft.election_timeout_min_ms",
        ),
        ("[hsm]\nworkers = 0\n", "hsm.workers"),
        (
            "[raft]\nmax_commands_per_entry = 0\n",
            "raft.max_commands_per_entry",
        ),
        (
            "[raft]\nmax_commands_per_entry = 257\n",
            "raft.max_commands_per_entry",
        ),
        ("[raft]\nentries_in_flight = 0\n", "raft.entries_in_flight"),
        ("[listen]\nclient = \"not an address\"\n", "listen.client"),
        (
            "[recovery]\nticket_ttl_secs = 0\n",
            "recovery.ticket_ttl_secs",
        ),
        ("[advertise]\npeer = \"nohostport\"\n", "advertise.peer"),
        ("[audit]\nmax_file_mib = 0\n", "audit.max_file_mib"),
        ("[audit]\nkeep_files = 1001\n", "audit.keep_files"),
        ("[audit]\nkeep_files = 0\n", "audit.keep_files"),
        (
            "[limits]\nmax_client_connections = 0\n",
            "limits.max_client_connections",
        ),
        (
            "[limits]\nmax_client_connections_per_address = 5000\n",
            "limits.max_client_connections_per_address",
        ),
        (
            "[limits]\nmax_connection_age_secs = 5\n",
            "limits.max_connection_age_secs",
        ),
        (
            "[limits]\nmax_connection_age_grace_secs = 7200\n",
            "limits.max_connection_age_grace_secs",
        ),
        (
            "[limits]\nmax_client_requests_in_flight = 0\n",
            "limits.max_client_requests_in_flight",
        ),
        (
            "[limits]\nrecover_per_account_burst = 0\n",
            "limits.recover_per_account_burst",
        ),
        (
            "[limits]\nrecover_per_address_per_min = 2000000\n",
            "limits.recover_per_address_per_min",
        ),
        ("[http]\nwrite_token_file = 3\n", "http.write_token_file"),
        ("unknown_key = 1\n", "unknown_key"),
    ];
    for (extra, key) in cases {
        // Later tables of the same name would be a TOML error, so put overrides first.
        let text = if extra.starts_with('[') {
            let (table, body) = extra.split_once('\n').unwrap();
            if MINIMAL.contains(table) {
                MINIMAL.replace(&format!("{table}\n"), &format!("{table}\n{body}"))
            } else {
                format!("{MINIMAL}\n{extra}")
            }
        } else {
            format!("{extra}{}", MINIMAL.replace("node_id = 3\n", ""))
        };
        let file = write(dir.path(), &text);
        let err = NodeConfig::load(Some(&file), env(&[]), &FlagOverrides::default())
            .expect_err(key)
            .to_string();
        assert!(err.contains(key), "error for {key} should name it: {err}");
    }
}

#[test]
fn a_missing_file_or_missing_required_key_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let err = NodeConfig::load(Some(&missing), env(&[]), &FlagOverrides::default()).unwrap_err();
    assert!(err.to_string().contains("does not exist"));
    let file = write(
        dir.path(),
        &MINIMAL.replace("[hsm]\ntoken_label = \"bkv-node3\"\n", "[hsm]\n"),
    );
    let err = NodeConfig::load(Some(&file), env(&[]), &FlagOverrides::default()).unwrap_err();
    assert!(err.to_string().contains("hsm.token_label"), "{err}");
}

#[test]
fn the_documented_example_config_loads() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cluster/node.example.toml");
    let c = NodeConfig::load(Some(&file), env(&[]), &FlagOverrides::default()).unwrap();
    let d = NodeConfig::load(Some(&file), env(&[]), &FlagOverrides::default()).unwrap();
    // Every default in the file equals the code's default.
    assert_eq!(c.raft.heartbeat_ms, Raft::default().heartbeat_ms);
    assert_eq!(
        c.raft.snapshot_every_logs,
        Raft::default().snapshot_every_logs
    );
    assert_eq!(
        c.recovery.ticket_ttl_secs,
        Recovery::default().ticket_ttl_secs
    );
    assert_eq!(
        c.limits.max_client_message_bytes,
        Limits::default().max_client_message_bytes
    );
    assert_eq!(c.hsm.workers, Hsm::default().workers);
    assert_eq!(
        c.auth.max_token_lifetime_secs,
        Auth::default().max_token_lifetime_secs
    );
    assert_eq!(c.listen.client, Listen::default().client);
    assert_eq!(c.audit.rotation(), Audit::default().rotation());
    assert_eq!(c.limits, Limits::default(), "every [limits] key");
    assert_eq!(c.http, Http::default());
    assert_eq!(d.node_id, 1);
}

#[test]
fn limits_are_on_by_default_and_zero_turns_a_rate_limit_off() {
    let l = Limits::default();
    assert!(l.recover_per_account_per_min > 0 && l.recover_per_account_burst > 0);
    assert!(l.recover_per_address_per_min > 0 && l.recover_per_address_burst > 0);
    assert!(l.max_client_connections_per_address > 0);
    assert!(l.max_connection_age().is_some());
    assert!(l.validate().is_ok());
    let off = Limits {
        recover_per_account_per_min: 0,
        recover_per_account_burst: 0,
        recover_per_address_per_min: 0,
        recover_per_address_burst: 0,
        max_client_connections_per_address: 0,
        max_connection_age_secs: 0,
        ..Limits::default()
    };
    assert!(off.validate().is_ok());
    assert_eq!(off.max_connection_age(), None);
}

#[test]
fn the_http_write_token_path_is_relative_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        &format!("{MINIMAL}\n[http]\nwrite_token_file = \"http.token\"\n"),
    );
    let c = NodeConfig::load(Some(&file), env(&[]), &FlagOverrides::default()).unwrap();
    assert_eq!(c.http.write_token_file, Some(dir.path().join("http.token")));
}
