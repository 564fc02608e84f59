//! [`RecoveryLoad`]: a client recovering one account without a pause while a test changes
//! the cluster under it (share repair, share refresh), counting recoveries that gave the
//! right key and those that failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bkv_client::{SecretString, VaultClient};
use bkv_core::ids::AccountId;

/// Recoveries of one account, one after the other, until [`RecoveryLoad::finish`] (at most
/// 2,000 of them or 5 minutes).
#[derive(Debug)]
pub struct RecoveryLoad {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RecoveryLoad {
    /// Starts recovering `account` with `password` through `client`; a recovery counts as
    /// good only if it gives `key`. Each failure is printed.
    pub fn start(
        client: VaultClient,
        account: AccountId,
        password: SecretString,
        key: Vec<u8>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let task = {
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                let began = Instant::now();
                // Bounded: at most 2,000 recoveries or 5 minutes.
                for _ in 0..2_000 {
                    if stop.load(Ordering::SeqCst) || began.elapsed() > Duration::from_secs(300) {
                        break;
                    }
                    match client.recover(&account, password.clone()).await {
                        Ok(r) if r.key.expose()[..] == key[..] => ok.fetch_add(1, Ordering::SeqCst),
                        Ok(_) => failed.fetch_add(1, Ordering::SeqCst),
                        Err(e) => {
                            eprintln!("recovery under load failed: {e}");
                            failed.fetch_add(1, Ordering::SeqCst)
                        }
                    };
                }
            })
        };
        Self {
            stop,
            ok,
            failed,
            task,
        }
    }

    /// Stops the load and waits for the recovery under way: how many gave the right key,
    /// how many failed.
    pub async fn finish(self) -> anyhow::Result<(u64, u64)> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await?;
        Ok((
            self.ok.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        ))
    }
}
