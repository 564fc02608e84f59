//! [`NodeProcess`]: one `bkv-node` process of a test cluster, with its ports, configuration,
//! data dir, SoftHSM token and log file, and the signals a test sends it.

use std::fs::OpenOptions;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::process::ChildGuard;

/// The four ports of a node, all on its host address (127.0.0.1, or its address in a
/// network namespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// `listen.client` (bkv.v1.Vault, TLS).
    pub client: u16,
    /// `listen.peer` (bkv.v1.Raft, mutual TLS).
    pub peer: u16,
    /// `listen.admin` (bkv.v1.Admin, mutual TLS).
    pub admin: u16,
    /// `listen.http` (`/healthz`, `/readyz`, `/metrics`).
    pub http: u16,
}

/// What the harness last did to a node's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    /// Started (and not signalled since).
    Running,
    /// Frozen by SIGSTOP.
    Stopped,
    /// Not running: killed, terminated, or exited.
    Down,
}

/// One `bkv-node` of a test cluster.
#[derive(Debug)]
pub struct NodeProcess {
    id: u64,
    ports: Ports,
    config: PathBuf,
    data_dir: PathBuf,
    token_dir: PathBuf,
    log: PathBuf,
    binary: PathBuf,
    child: Option<ChildGuard>,
    state: ProcessState,
    starts: u32,
    env: Vec<(String, String)>,
    http_token: Option<String>,
    host: IpAddr,
    netns: Option<String>,
}

/// An HTTP answer of the node's small HTTP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: String,
}

impl NodeProcess {
    /// A node that is not started yet. `config` must already be written.
    pub fn new(
        id: u64,
        ports: Ports,
        config: PathBuf,
        data_dir: PathBuf,
        token_dir: PathBuf,
        log: PathBuf,
        binary: PathBuf,
    ) -> Self {
        Self {
            id,
            ports,
            config,
            data_dir,
            token_dir,
            log,
            binary,
            child: None,
            state: ProcessState::Down,
            starts: 0,
            env: Vec::new(),
            http_token: None,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            netns: None,
        }
    }

    /// The bearer token the node's `http.write_token_file` holds: [`Self::http_send`] and
    /// [`Self::http_put`] send it with every request.
    pub fn set_http_token(&mut self, token: impl Into<String>) {
        self.http_token = Some(token.into());
    }

    /// Runs the process inside network namespace `ns`, where it listens on `host` (set
    /// before the first start).
    pub fn in_namespace(&mut self, host: IpAddr, ns: impl Into<String>) {
        self.host = host;
        self.netns = Some(ns.into());
    }

    /// The address the node listens on.
    pub fn host(&self) -> IpAddr {
        self.host
    }

    /// The node id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The node's ports.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// `https://<host>:<client port>`.
    pub fn client_url(&self) -> String {
        format!("https://{}:{}", self.host, self.ports.client)
    }

    /// `<host>:<admin port>`.
    pub fn admin_addr(&self) -> String {
        format!("{}:{}", self.host, self.ports.admin)
    }

    /// `<host>:<peer port>`.
    pub fn peer_addr(&self) -> String {
        format!("{}:{}", self.host, self.ports.peer)
    }

    /// The node's data dir (Raft log, state, audit file).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The node's token dir (`softhsm2.conf`, PIN files, token files).
    pub fn token_dir(&self) -> &Path {
        &self.token_dir
    }

    /// The node's configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The node's log file (stdout and stderr of every start, appended).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// What the harness last did to the process.
    pub fn state(&self) -> ProcessState {
        self.state
    }

    /// Whether the process runs and is not frozen.
    pub fn is_up(&mut self) -> bool {
        self.refresh();
        self.state == ProcessState::Running
    }

    /// How many times the process was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(ChildGuard::pid)
    }

    /// Notices a process that exited on its own.
    fn refresh(&mut self) {
        if let Some(child) = self.child.as_mut()
            && !child.is_running()
        {
            self.child = None;
            self.state = ProcessState::Down;
        }
    }

    /// Starts the process (again: same config, data dir and token). Does not wait.
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        self.refresh();
        anyhow::ensure!(self.child.is_none(), "node {} is already running", self.id);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut command = match &self.netns {
            Some(ns) => crate::netns::Lab::command_in(ns, &self.binary),
            None => Command::new(&self.binary),
        };
        command
            .arg("--config")
            .arg(&self.config)
            .env("SOFTHSM2_CONF", self.token_dir.join("softhsm2.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        // The test's own environment must not reconfigure the node.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("BKV_") {
                command.env_remove(key);
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        self.child = Some(ChildGuard::spawn(format!("bkv-node {}", self.id), command)?);
        self.state = ProcessState::Running;
        self.starts += 1;
        Ok(())
    }

    /// Sets an environment variable for the next starts of the process (`BKV_FAILPOINTS`,
    /// ...): the harness otherwise strips every `BKV_*` variable of the test's own.
    pub fn set_env(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.into()));
    }

    /// Removes a variable set with [`Self::set_env`].
    pub fn remove_env(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
    }

    /// `method path` with `body` on the node's HTTP port, within `timeout` (`PUT
    /// /failpoints`, ...), with the node's write token.
    pub async fn http_send(
        &self,
        method: &str,
        path: &str,
        body: &str,
        timeout: Duration,
    ) -> anyhow::Result<HttpAnswer> {
        let authorization = self.http_token.as_ref().map(|t| format!("Bearer {t}"));
        self.http_send_as(method, path, body, authorization.as_deref(), timeout)
            .await
    }

    /// [`Self::http_send`] with `authorization` as the `Authorization` header (none: no
    /// header), whatever the node's token.
    pub async fn http_send_as(
        &self,
        method: &str,
        path: &str,
        body: &str,
        authorization: Option<&str>,
        timeout: Duration,
    ) -> anyhow::Result<HttpAnswer> {
        let port = self.ports.http;
        let authorization = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
             {authorization}Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect((self.host, port)).await?;
            stream.write_all(request.as_bytes()).await?;
            let mut bytes = Vec::new();
            stream.read_to_end(&mut bytes).await?;
            anyhow::Ok(bytes)
        };
        let bytes = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| {
                anyhow::anyhow!("node {}: no HTTP answer on {method} {path}", self.id)
            })??;
        parse_http(&bytes)
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
        self.state = ProcessState::Down;
    }

    /// SIGTERM, then waits up to `timeout` for the process to exit and returns its status.
    /// Kills it if it does not exit in time.
    pub async fn sigterm(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            anyhow::bail!("node {} is not running", self.id);
        };
        if self.state == ProcessState::Stopped {
            child.signal("CONT")?;
        }
        child.signal("TERM")?;
        self.state = ProcessState::Down;
        let until = Instant::now() + timeout;
        loop {
            if let Some(status) = child.wait_timeout(Duration::ZERO)? {
                return Ok(status);
            }
            if Instant::now() >= until {
                child.kill();
                anyhow::bail!(
                    "node {} did not exit within {} ms of SIGTERM",
                    self.id,
                    timeout.as_millis()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGSTOP: the process freezes, its sockets stay open.
    pub fn sigstop(&mut self) -> anyhow::Result<()> {
        let child = self
            .child
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("node {} is not running", self.id))?;
        child.signal("STOP")?;
        self.state = ProcessState::Stopped;
        Ok(())
    }

    /// SIGCONT after [`Self::sigstop`].
    pub fn sigcont(&mut self) -> anyhow::Result<()> {
        let child = self
            .child
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("node {} is not running", self.id))?;
        child.signal("CONT")?;
        self.state = ProcessState::Running;
        Ok(())
    }

    /// `GET path` on the node's HTTP port, within `timeout`.
    pub async fn http_get(&self, path: &str, timeout: Duration) -> anyhow::Result<HttpAnswer> {
        let port = self.ports.http;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect((self.host, port)).await?;
            stream.write_all(request.as_bytes()).await?;
            let mut bytes = Vec::new();
            stream.read_to_end(&mut bytes).await?;
            anyhow::Ok(bytes)
        };
        let bytes = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| anyhow::anyhow!("node {}: no HTTP answer on {path}", self.id))??;
        parse_http(&bytes)
    }

    /// `/readyz`: 200 when the node serves clients, 503 with the reason otherwise.
    pub async fn readyz(&self) -> anyhow::Result<HttpAnswer> {
        self.http_get("/readyz", Duration::from_secs(2)).await
    }

    /// Waits up to `timeout` for `/healthz` to answer 200; fails early if the process exits.
    pub async fn wait_healthy(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + timeout;
        loop {
            self.refresh();
            anyhow::ensure!(
                self.child.is_some(),
                "node {} exited while starting; log:\n{}",
                self.id,
                self.log_tail(30)
            );
            if let Ok(answer) = self.http_get("/healthz", Duration::from_secs(2)).await
                && answer.status == 200
            {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < until,
                "node {} did not answer /healthz within {} s",
                self.id,
                timeout.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `PUT path` with `body` on the node's HTTP port, within `timeout`, with the node's
    /// write token.
    pub async fn http_put(
        &self,
        path: &str,
        body: &str,
        timeout: Duration,
    ) -> anyhow::Result<HttpAnswer> {
        self.http_send("PUT", path, body, timeout).await
    }

    /// `/metrics`, parsed (see [`crate::Metrics`]); fails unless the node answers 200.
    pub async fn metrics(&self) -> anyhow::Result<crate::Metrics> {
        let answer = self.http_get("/metrics", Duration::from_secs(3)).await?;
        anyhow::ensure!(
            answer.status == 200,
            "node {}: /metrics answered {}",
            self.id,
            answer.status
        );
        Ok(crate::Metrics::parse(&answer.body))
    }

    /// The process's resident set size (see [`crate::process::rss_bytes`]).
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow::anyhow!("node {} is not running", self.id))?;
        crate::process::rss_bytes(pid)
    }

    /// The last `lines` lines of the node's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The whole log, for tests that look for a line.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn parse_http(bytes: &[u8]) -> anyhow::Result<HttpAnswer> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| anyhow::anyhow!("not an HTTP answer: {head:?}"))?;
    Ok(HttpAnswer {
        status,
        body: body.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_answers_parse() {
        let a = parse_http(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 5\r\n\r\nnope\n")
            .unwrap();
        assert_eq!(a.status, 503);
        assert_eq!(a.body, "nope\n");
        assert!(parse_http(b"garbage").is_err());
    }
}
