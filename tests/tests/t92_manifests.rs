//! The container and Kubernetes files parse, reference only files that exist, and agree with
//! the node's configuration. (No Kubernetes cluster runs here: what can be checked without
//! one is checked; `cluster/up`, which t90 runs, starts its nodes through the image's entry
//! point script, and `make compose-test` runs docker-compose.yml for real.)

use std::path::{Path, PathBuf};
use std::process::Command;

use bkv_node::config::{FlagOverrides, NodeConfig};
use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load_yaml(rel: &str) -> Vec<Yaml> {
    let text = std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{rel} does not parse: {e}"))
}

/// Where a path inside the image comes from in the repository (the Dockerfile's COPY lines).
fn image_source(path: &str) -> PathBuf {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    let mut best: Option<(String, String)> = None;
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().skip(1).collect();
        let (dest, sources) = parts.split_last().expect("COPY has a destination");
        for src in sources {
            let name = Path::new(src.trim_end_matches('/'))
                .file_name()
                .map(|n| n.to_string_lossy().to_string());
            // A directory copied into a directory: dest/<rest>; a file into a dir: dest/<name>.
            let candidate = if src.ends_with('/') {
                path.strip_prefix(dest).map(|rest| format!("{src}{rest}"))
            } else {
                name.filter(|n| path == format!("{dest}{n}"))
                    .map(|_| src.to_string())
            };
            if let Some(c) = candidate
                && best.as_ref().is_none_or(|(d, _)| dest.len() > d.len())
            {
                best = Some((dest.to_string(), c));
            }
        }
    }
    let (_, src) = best.unwrap_or_else(|| panic!("{path} is not copied into the image"));
    repo().join(src)
}

/// A service's field, looking through a YAML merge key (`<<: *node`) as compose does.
fn field<'a>(service: &'a Yaml, key: &str) -> &'a Yaml {
    match &service[key] {
        Yaml::BadValue => &service["<<"][key],
        v => v,
    }
}

fn load_config(path: &Path, env: &[(&str, String)]) -> NodeConfig {
    let env = env.iter().map(|(k, v)| (k.to_string(), v.clone()));
    NodeConfig::load(Some(path), env, &FlagOverrides::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_file_the_dockerfile_copies_exists_and_scripts_are_valid_bash() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    let dockerignore =
        std::fs::read_to_string(repo().join(".dockerignore")).expect(".dockerignore");
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().skip(1).collect();
        for src in &parts[..parts.len() - 1] {
            if let Some(built) = src.strip_prefix("target/") {
                // Binaries built on the host (cluster/compose-image): in the build context
                // only if .dockerignore, which leaves out target/, lets them back in.
                let dir = built.split('/').next().unwrap_or_default();
                assert!(
                    dockerignore
                        .lines()
                        .any(|l| l.trim() == format!("!target/{dir}")),
                    "Dockerfile copies {src}, which .dockerignore leaves out"
                );
            } else if *src != "." {
                assert!(repo().join(src).exists(), "Dockerfile copies missing {src}");
            }
        }
    }
    assert!(
        dockerfile.contains("USER bkv"),
        "the image runs as a non-root user"
    );
    for script in [
        "cluster/up",
        "cluster/down",
        "cluster/mk-token",
        "cluster/entrypoint",
        "cluster/docker/init",
        "cluster/docker/pki",
        "cluster/compose-lib",
        "cluster/compose-env",
        "cluster/compose-image",
        "cluster/compose-test",
        "cluster/compose-upgrade",
    ] {
        let ok = Command::new("bash")
            .arg("-n")
            .arg(repo().join(script))
            .status()
            .expect("bash");
        assert!(ok.success(), "{script} is not valid bash");
    }
    let up = std::fs::read_to_string(repo().join("cluster/up")).expect("cluster/up");
    assert!(
        up.contains("cluster/entrypoint"),
        "cluster/up starts nodes through the image's entry point"
    );
}

#[test]
fn docker_compose_references_what_exists() {
    let docs = load_yaml("docker-compose.yml");
    let doc = &docs[0];
    let services = doc["services"].as_hash().expect("services");
    let volumes = doc["volumes"].as_hash().expect("volumes");
    let declared: Vec<&str> = volumes.keys().filter_map(Yaml::as_str).collect();
    let mut nodes = 0;
    for (name, service) in services {
        let name = name.as_str().expect("service name");
        if let Some(entry) = service["entrypoint"].as_vec() {
            let path = entry[0].as_str().expect("entrypoint path");
            assert!(
                image_source(path).exists(),
                "{name}: entrypoint {path} has no source"
            );
        }
        for v in service["volumes"].as_vec().into_iter().flatten() {
            let v = v.as_str().expect("volume");
            let vol = v.split(':').next().unwrap_or_default();
            assert!(
                declared.contains(&vol),
                "{name}: volume {vol} is not declared"
            );
        }
        if let Some(config) = service["environment"]["BKV_CONFIG"].as_str() {
            nodes += 1;
            let label = service["environment"]["BKV_TOKEN_LABEL"]
                .as_str()
                .expect("token label");
            let source = image_source(config);
            let c = load_config(&source, &[]);
            assert_eq!(
                c.hsm.token_label, label,
                "{name}: BKV_TOKEN_LABEL matches the config"
            );
            assert_eq!(
                format!("bkv-node{}", c.node_id),
                name,
                "{name}: node id matches the name"
            );
            let health = field(service, "healthcheck")["test"]
                .as_vec()
                .expect("healthcheck");
            let words: Vec<&str> = health.iter().filter_map(Yaml::as_str).collect();
            assert_eq!(
                &words[1..4],
                ["bkv", "admin", "health"],
                "{name}: health via the CLI"
            );
        }
    }
    assert_eq!(nodes, 3, "three nodes, one volume each");
    // The healthcheck command exists in the CLI.
    let bkv = bkv_tests::process::workspace_binary("bkv").expect("bkv built");
    let help = Command::new(bkv)
        .args(["admin", "health", "--help"])
        .output()
        .expect("bkv");
    assert!(help.status.success());
}

/// The text with every `${NAME:-default}` replaced by its default, as compose reads it when
/// NAME is unset.
fn with_defaults(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find('}').expect("a closing brace");
        let inner = &rest[start + 2..end];
        let (_, default) = inner
            .split_once(":-")
            .unwrap_or_else(|| panic!("${{{inner}}} has no default"));
        out.push_str(default);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A service's environment variable, looking through a merge key in `environment`.
fn env_var<'a>(service: &'a Yaml, key: &str) -> Option<&'a str> {
    let env = &service["environment"];
    env[key].as_str().or_else(|| env["<<"][key].as_str())
}

#[test]
fn dockerfile_names_images_fully_qualified() {
    // podman refuses a short name (`debian:bookworm-slim`) when no search registry is set.
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    let mut stages: Vec<&str> = Vec::new();
    for line in dockerfile.lines().filter(|l| l.starts_with("FROM ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let image = words[1];
        let registry = image.split('/').next().unwrap_or_default();
        let qualified = image.contains('/') && (registry.contains('.') || registry == "localhost");
        let stage = stages.contains(&image) || image == "${BKV_BINARIES}";
        assert!(
            qualified || stage,
            "FROM {image}: name registry/repository:tag, or an earlier stage"
        );
        if let [.., as_word, name] = words.as_slice()
            && as_word.eq_ignore_ascii_case("as")
        {
            stages.push(name);
        }
    }
    // BKV_BINARIES picks a stage: its default and the value cluster/compose-image gives.
    assert!(dockerfile.contains("ARG BKV_BINARIES=build"));
    for stage in ["build", "prebuilt"] {
        assert!(stages.contains(&stage), "no stage {stage}");
    }
    let image_script =
        std::fs::read_to_string(repo().join("cluster/compose-image")).expect("compose-image");
    assert!(image_script.contains("BKV_COMPOSE_BINARIES=prebuilt"));
}

#[test]
fn compose_nodes_restart_alone_and_advertise_the_host_ports_they_publish() {
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).expect("compose file");
    let docs = YamlLoader::load_from_str(&with_defaults(&text)).expect("parses");
    let services = docs[0]["services"].as_hash().expect("services");

    // One service builds the image; every service runs that image, which is fully qualified.
    let builders: Vec<&Yaml> = services
        .values()
        .filter(|s| !s["build"].is_badvalue())
        .collect();
    assert_eq!(builders.len(), 1, "the image is built by one service only");
    let image = builders[0]["image"]
        .as_str()
        .expect("the built image's name");
    assert!(
        image.starts_with("localhost/"),
        "{image} is fully qualified"
    );
    for (name, service) in services {
        assert_eq!(
            field(service, "image").as_str(),
            Some(image),
            "{name:?} image"
        );
        // podman-compose makes depends_on into podman's --requires: podman then neither
        // restarts a node that requires the exited pki service nor removes (to recreate it on
        // a new image) a node that the init service requires. Each waits by itself instead.
        assert!(
            field(service, "depends_on").is_badvalue(),
            "{name:?}: no depends_on"
        );
    }

    // cluster/up's ports with its default base: clients, peers, admin, HTTP of nodes 1-3.
    let up_ports: Vec<u16> = (71..=74)
        .flat_map(|kind| (1..=3).map(move |n| kind * 100 + n))
        .collect();
    let pki_script = std::fs::read_to_string(repo().join("cluster/docker/pki")).expect("pki");
    let mut host_ports = Vec::new();
    for (name, service) in services {
        let name = name.as_str().expect("service name");
        let Some(config) = env_var(service, "BKV_CONFIG") else {
            continue;
        };
        assert_eq!(
            field(service, "restart").as_str(),
            Some("unless-stopped"),
            "{name}"
        );
        assert_eq!(
            env_var(service, "BKV_WAIT_FOR"),
            Some("/pki/ready"),
            "{name}"
        );
        assert!(
            pki_script.contains("touch \"$dir/ready\""),
            "pki writes /pki/ready"
        );

        let advertised = env_var(service, "BKV_ADVERTISE__CLIENT")
            .unwrap_or_else(|| panic!("{name}: BKV_ADVERTISE__CLIENT"));
        let c = load_config(
            &image_source(config),
            &[("BKV_ADVERTISE__CLIENT", advertised.to_string())],
        );
        assert_eq!(c.client_addr(), advertised);
        let mut published = Vec::new();
        for p in field(service, "ports").as_vec().expect("ports") {
            let p = p.as_str().expect("host_ip:host_port:container_port");
            let parts: Vec<&str> = p.split(':').collect();
            let [ip, host, inside] = parts.as_slice() else {
                panic!("{name}: {p} is not host_ip:host_port:container_port");
            };
            assert_eq!(*ip, "127.0.0.1", "{name}: published on loopback only");
            let host: u16 = host.parse().expect("host port");
            let inside: u16 = inside.parse().expect("container port");
            assert!(
                !up_ports.contains(&host),
                "{name}: host port {host} is one of cluster/up's"
            );
            host_ports.push(host);
            published.push(inside);
            if inside == c.listen.client.port() {
                // Leader hints name this address: the host must reach the node there.
                assert_eq!(advertised, format!("127.0.0.1:{host}"), "{name}");
            }
        }
        published.sort_unstable();
        let mut wanted = vec![
            c.listen.client.port(),
            c.listen.admin.port(),
            c.listen.http.port(),
        ];
        wanted.sort_unstable();
        assert_eq!(
            published, wanted,
            "{name}: client, admin and HTTP published"
        );
    }
    let count = host_ports.len();
    host_ports.sort_unstable();
    host_ports.dedup();
    assert_eq!(host_ports.len(), count, "host ports are distinct");
    assert_eq!(count, 9);
    // The prefix moves every host port (cluster/compose-lib's `port` agrees).
    assert_eq!(
        text.matches("${BKV_COMPOSE_PORT_PREFIX:-17}").count(),
        12,
        "9 ports and 3 advertised addresses follow BKV_COMPOSE_PORT_PREFIX"
    );
}

#[test]
fn kubernetes_manifests_parse_and_agree_with_the_node_config() {
    let dir = repo().join("cluster/k8s");
    let mut kinds = Vec::new();
    let mut configmap_toml = None;
    let mut statefulset = None;
    for entry in std::fs::read_dir(&dir).expect("cluster/k8s") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let rel = path
            .strip_prefix(repo())
            .expect("in repo")
            .to_string_lossy()
            .to_string();
        for doc in load_yaml(&rel) {
            let kind = doc["kind"].as_str().expect("kind").to_string();
            assert!(doc["apiVersion"].as_str().is_some(), "{rel}: apiVersion");
            if kind == "ConfigMap" {
                configmap_toml = doc["data"]["node.toml"].as_str().map(str::to_string);
            }
            if kind == "StatefulSet" {
                statefulset = Some(doc.clone());
            }
            if kind == "Job" {
                let cmd = &doc["spec"]["template"]["spec"]["containers"][0]["command"][0];
                assert!(image_source(cmd.as_str().expect("job command")).exists());
            }
            kinds.push(kind);
        }
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Job",
            "Namespace",
            "Service",
            "Service",
            "StatefulSet"
        ]
    );

    // The shared node.toml, with the per-pod variables the StatefulSet sets for pod bkv-1.
    let tmp = tempfile::tempdir().expect("tmp");
    let toml = tmp.path().join("node.toml");
    std::fs::write(&toml, configmap_toml.expect("ConfigMap has node.toml")).expect("write");
    let env = [
        ("BKV_NODE_ID", "2".to_string()),
        ("BKV_HSM__TOKEN_LABEL", "bkv-node2".to_string()),
        ("BKV_TLS__CERT", "/pki/node2.pem".to_string()),
        ("BKV_ADVERTISE__PEER", "bkv-1.bkv:7201".to_string()),
    ];
    let c = load_config(&toml, &env);
    assert_eq!(c.node_id, 2);
    assert_eq!(c.hsm.token_label, "bkv-node2");
    assert_eq!(c.peer_addr(), "bkv-1.bkv:7201");
    let health_port = c
        .listen
        .grpc_health
        .expect("grpc_health listener for probes")
        .port();

    let sts = statefulset.expect("StatefulSet");
    let container = &sts["spec"]["template"]["spec"]["containers"][0];
    let script = container["args"][0].as_str().expect("start script");
    for var in [
        "BKV_NODE_ID",
        "BKV_HSM__TOKEN_LABEL",
        "BKV_TLS__CERT",
        "BKV_TLS__KEY",
        "BKV_ADVERTISE__PEER",
    ] {
        assert!(script.contains(var), "the StatefulSet sets {var}");
    }
    let entry = script
        .lines()
        .find_map(|l| l.trim().strip_prefix("exec "))
        .expect("exec line");
    assert!(image_source(entry.split_whitespace().next().unwrap_or_default()).exists());
    let probe = &container["readinessProbe"]["grpc"];
    assert_eq!(probe["port"].as_i64(), Some(i64::from(health_port)));
    assert_eq!(probe["service"].as_str(), Some("bkv.v1.Vault"));
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("k8s README");
    assert!(
        readme.contains("create secret generic bkv-pki"),
        "the README makes the Secret the pods mount"
    );
}
