//! Test support (cargo feature `testing`): fresh SoftHSM2 tokens with unique labels in a
//! process-wide temporary token directory, so that tests of this crate and of the crates
//! above it run against real tokens.
//!
//! SoftHSM reads `SOFTHSM2_CONF` once, at `C_Initialize`; [`use_softhsm_conf`] points it at
//! the chosen configuration before the first initialisation of the process. Tokens are
//! initialised in-process on SoftHSM's free slot, so they can be made at any time, also
//! after other tests have opened partitions.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use cryptoki::session::Session;
use secrecy::SecretString;

use crate::provision::{self, Provisioned};
use crate::{DEFAULT_MODULE, HsmConfig, HsmError, Partition, Pin};

/// The configuration SoftHSM was pointed at in this process.
static CONF: OnceLock<PathBuf> = OnceLock::new();
/// The process-wide test token directory (holding `softhsm2.conf` and `tokens/`).
static DIR: OnceLock<PathBuf> = OnceLock::new();
/// Serialises token initialisation (C_InitToken on the one free slot).
static INIT: Mutex<()> = Mutex::new(());
/// Makes labels unique within the process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The PKCS#11 module tests use: `$BKV_PKCS11_MODULE` or SoftHSM's default path.
pub fn module() -> PathBuf {
    std::env::var_os("BKV_PKCS11_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MODULE))
}

/// Points SoftHSM at `conf` for the rest of this process. Must be called before anything in
/// the process initialises PKCS#11; panics if another configuration was chosen before.
pub fn use_softhsm_conf(conf: &Path) {
    let chosen = CONF.get_or_init(|| {
        // SAFETY: this runs once per process (OnceLock), in test support only, before this
        // process initialises PKCS#11 (every path to `module::context` in tests goes
        // through here first). No other code of ours reads or writes the environment
        // concurrently; the agreed exception to `unsafe_code = "deny"`.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("SOFTHSM2_CONF", conf);
        }
        conf.to_path_buf()
    });
    assert_eq!(
        chosen, conf,
        "SoftHSM already points at another configuration in this process"
    );
}

/// Writes a SoftHSM configuration for `dir` (tokens in `dir/tokens`, file backend, errors
/// only) and returns its path.
pub fn write_softhsm_conf(dir: &Path) -> std::io::Result<PathBuf> {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens)?;
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )?;
    Ok(conf)
}

/// The process-wide token directory, made (and SoftHSM pointed at it) on first use.
/// Directories left by earlier test processes that are no longer running are removed.
pub fn token_root() -> &'static Path {
    DIR.get_or_init(|| {
        let base = std::env::temp_dir().join("bkv-hsm-tests");
        std::fs::create_dir_all(&base).expect("create test token base dir");
        remove_stale(&base);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = base.join(format!("{}-{nanos}", std::process::id()));
        let conf = write_softhsm_conf(&dir).expect("write softhsm2.conf");
        use_softhsm_conf(&conf);
        dir
    })
}

/// Removes `<pid>-*` directories of processes that have exited.
fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.split('-').next()) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Random PIN text from the OS (hex).
fn random_pin() -> Pin {
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    read.expect("read /dev/urandom");
    Pin::from_secret(SecretString::from(hex::encode(bytes)))
}

/// A fresh, initialised SoftHSM2 token with a unique label and random PINs.
#[derive(Debug)]
pub struct TestToken {
    label: String,
    user_pin: Pin,
    so_pin: Pin,
}

impl TestToken {
    /// Makes a new token in the process-wide test token directory.
    pub fn new() -> Self {
        let root = token_root();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let label = format!("t{}-{n}", std::process::id());
        let (user_pin, so_pin) = (random_pin(), random_pin());
        let _serial = INIT.lock().unwrap_or_else(PoisonError::into_inner);
        let made = provision::init_token(&module(), &label, &so_pin, &user_pin)
            .unwrap_or_else(|e| panic!("init test token in {}: {e}", root.display()));
        assert_eq!(made, Provisioned::Created, "label {label} already taken");
        Self {
            label,
            user_pin,
            so_pin,
        }
    }

    /// Two fresh tokens in the same directory (for ceremony tests).
    pub fn pair() -> (Self, Self) {
        (Self::new(), Self::new())
    }

    /// The token's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Configuration to open this token, with both PINs.
    pub fn config(&self) -> HsmConfig {
        let mut cfg = HsmConfig::new(self.label.clone(), self.user_pin.clone());
        cfg.module = module();
        cfg.so_pin = Some(self.so_pin.clone());
        cfg
    }

    /// Opens the token.
    pub async fn open(&self) -> Partition {
        Partition::open(self.config())
            .await
            .unwrap_or_else(|e| panic!("open test token {}: {e}", self.label))
    }

    /// The PINs' text, for tests that scan token files for them.
    pub fn pin_texts(&self) -> [String; 2] {
        [
            self.user_pin.expose().to_string(),
            self.so_pin.expose().to_string(),
        ]
    }

    /// The directory holding all test tokens' files (`<root>/tokens`).
    pub fn tokens_dir(&self) -> PathBuf {
        token_root().join("tokens")
    }
}

impl Default for TestToken {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `f` with a worker's raw, user-logged-in session: for tests that inspect objects
/// or try what the partition's API never does.
pub async fn with_session<T, F>(partition: &Partition, f: F) -> Result<T, HsmError>
where
    T: Send + 'static,
    F: FnOnce(&Session) -> T + Send + 'static,
{
    partition.with_session(f).await
}

/// Imports a peer's enrollment public key as an ordinary user would: without CKA_TRUSTED.
/// The token must then refuse to wrap the cluster key under it.
pub async fn import_untrusted_peer(
    partition: &Partition,
    spki_der: &[u8],
) -> Result<String, HsmError> {
    let key = crate::spki::RsaPublic::from_spki_der(spki_der)?;
    let fingerprint = crate::spki::fingerprint(spki_der);
    let fp = crate::spki::parse_fingerprint(&fingerprint).ok_or(HsmError::UnknownPeer)?;
    use cryptoki::object::Attribute;
    let mut template = crate::template::peer_public_so(&key.modulus, &key.exponent, fp);
    template.retain(|a| {
        !matches!(
            a,
            Attribute::Trusted(_) | Attribute::Private(_) | Attribute::Label(_)
        )
    });
    template.extend(crate::template::peer_public_private_copy());
    partition
        .with_session(move |s| s.create_object(&template))
        .await?
        .map_err(HsmError::at("C_CreateObject"))?;
    Ok(fingerprint)
}
