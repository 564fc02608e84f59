//! The HSM worker pool. A PKCS#11 session is `Send` but not `Sync`, so each worker thread
//! owns one logged-in read/write session and runs jobs from a shared channel; async callers
//! await a oneshot with the result. A worker holds the token's gate shared while it runs a
//! job, so that a security-officer step (which logs the user out of the whole token) can
//! wait for every job to finish and keep new ones out.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::object::ObjectHandle;
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use tokio::sync::oneshot;

use crate::error::rv_of;
use crate::module::TokenState;
use crate::{ClusterKeyInfo, HsmError, Pin};

/// A unit of work for a worker.
type Job = Box<dyn FnOnce(&mut Worker) + Send + 'static>;

/// The sending side of the pool; dropping it stops the workers, which close their sessions,
/// and waits for them to have done so: a worker still closing its session while the
/// process exits races the module's own teardown (SoftHSM then crashes the exiting
/// process, as `bkv-node --reset-watermark` once did under load).
#[derive(Debug)]
pub(crate) struct Pool {
    jobs: Option<mpsc::Sender<Job>>,
    workers: usize,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        drop(self.jobs.take());
        let me = std::thread::current().id();
        for t in self.threads.drain(..) {
            // A pool dropped by one of its own jobs cannot wait for itself.
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

impl Pool {
    /// Starts `workers` threads, each with a logged-in session. Blocks until all are ready
    /// or one has failed (then all are stopped and its error is returned).
    pub(crate) fn spawn(
        ctx: &Pkcs11,
        slot: Slot,
        token: &Arc<TokenState>,
        user_pin: &Pin,
        workers: usize,
    ) -> Result<Self, HsmError> {
        let workers = workers.max(1);
        let (jobs, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), HsmError>>();
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let (ctx, token, pin) = (ctx.clone(), token.clone(), user_pin.clone());
            let (rx, ready) = (rx.clone(), ready_tx.clone());
            let thread = std::thread::Builder::new()
                .name(format!("bkv-hsm-{i}"))
                .spawn(move || {
                    let session = {
                        let _gate = token.gate.read().unwrap_or_else(PoisonError::into_inner);
                        open_session(&ctx, slot, &pin)
                    };
                    drop(pin);
                    match session {
                        Ok(session) => {
                            let _ = ready.send(Ok(()));
                            drop(ready);
                            Worker::new(session, token).run(&rx);
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                        }
                    }
                })
                .map_err(|_| HsmError::WorkerGone)?;
            threads.push(thread);
        }
        drop(ready_tx);
        // From here on, dropping the pool (also on an error below) stops and joins the
        // workers started.
        let pool = Self {
            jobs: Some(jobs),
            workers,
            threads,
        };
        for _ in 0..workers {
            // A worker that died without reporting closes the channel: WorkerGone.
            ready_rx.recv().map_err(|_| HsmError::WorkerGone)??;
        }
        Ok(pool)
    }

    /// Number of worker threads.
    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    /// Runs `f` on a worker and returns its result.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, HsmError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Worker) -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |w| {
            let _ = tx.send(f(w));
        });
        self.jobs
            .as_ref()
            .ok_or(HsmError::WorkerGone)?
            .send(job)
            .map_err(|_| HsmError::WorkerGone)?;
        rx.await.map_err(|_| HsmError::WorkerGone)
    }
}

/// Opens a read/write session and logs the user in (already logged in counts as success:
/// PKCS#11 login state is per token).
pub(crate) fn open_session(ctx: &Pkcs11, slot: Slot, pin: &Pin) -> Result<Session, HsmError> {
    let session = ctx
        .open_rw_session(slot)
        .map_err(HsmError::at("C_OpenSession"))?;
    login(&session, UserType::User, pin)?;
    Ok(session)
}

/// Logs in as `user`, mapping PIN failures to their own errors.
pub(crate) fn login(session: &Session, user: UserType, pin: &Pin) -> Result<(), HsmError> {
    match session.login(user, Some(pin.auth())) {
        Ok(()) => Ok(()),
        Err(e) => match rv_of(&e) {
            Some(RvError::UserAlreadyLoggedIn) if matches!(user, UserType::User) => Ok(()),
            Some(RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange) => {
                Err(HsmError::WrongPin)
            }
            Some(RvError::PinLocked) => Err(HsmError::PinLocked),
            _ => Err(HsmError::p11("C_Login", e)),
        },
    }
}

/// The cluster key as a worker caches it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClusterKeyHandle {
    /// Object handle in this worker's session.
    pub handle: ObjectHandle,
    /// Its id and check value.
    pub info: ClusterKeyInfo,
}

impl ClusterKeyHandle {
    /// The cluster key as a key that seals blobs.
    pub(crate) fn sealing(&self) -> SealingKey {
        SealingKey {
            handle: self.handle,
            key_id: self.info.key_id,
        }
    }
}

/// An AES key that seals blobs (the cluster key or the share-sealing key): its handle in
/// this worker's session and the id its blobs carry in their header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SealingKey {
    /// Object handle in this worker's session.
    pub handle: ObjectHandle,
    /// The key's CKA_ID, written in every blob it seals.
    pub key_id: [u8; 8],
}

/// One worker thread's session and its cache of key handles.
#[derive(Debug)]
pub(crate) struct Worker {
    pub(crate) session: Session,
    pub(crate) token: Arc<TokenState>,
    cluster: Option<ClusterKeyHandle>,
    share_seal: Option<SealingKey>,
    share_receive: Option<ObjectHandle>,
    seen_epoch: u64,
}

impl Worker {
    fn new(session: Session, token: Arc<TokenState>) -> Self {
        let seen_epoch = token.epoch.load(Ordering::Acquire);
        Self {
            session,
            token,
            cluster: None,
            share_seal: None,
            share_receive: None,
            seen_epoch,
        }
    }

    /// Runs jobs until the pool is dropped.
    fn run(mut self, rx: &Mutex<mpsc::Receiver<Job>>) {
        loop {
            let job = {
                let rx = rx.lock().unwrap_or_else(PoisonError::into_inner);
                match rx.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                }
            };
            let token = self.token.clone();
            let _gate = token.gate.read().unwrap_or_else(PoisonError::into_inner);
            let epoch = token.epoch.load(Ordering::Acquire);
            if epoch != self.seen_epoch {
                self.forget_keys();
                self.seen_epoch = epoch;
            }
            // A panicking job drops its reply sender (the caller sees WorkerGone); the worker
            // forgets its cached handles and goes on.
            if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut self))).is_err() {
                self.forget_keys();
            }
        }
    }

    /// The cached cluster key, if any.
    pub(crate) fn cached_cluster_key(&self) -> Option<ClusterKeyHandle> {
        self.cluster
    }

    /// Caches the cluster key.
    pub(crate) fn cache_cluster_key(&mut self, key: ClusterKeyHandle) {
        self.cluster = Some(key);
    }

    /// The cached share-sealing key, if any.
    pub(crate) fn cached_share_seal_key(&self) -> Option<SealingKey> {
        self.share_seal
    }

    /// Caches the share-sealing key.
    pub(crate) fn cache_share_seal_key(&mut self, key: SealingKey) {
        self.share_seal = Some(key);
    }

    /// The cached private half of the share-receiving key pair, if any.
    pub(crate) fn cached_share_receive_key(&self) -> Option<ObjectHandle> {
        self.share_receive
    }

    /// Caches the private half of the share-receiving key pair.
    pub(crate) fn cache_share_receive_key(&mut self, handle: ObjectHandle) {
        self.share_receive = Some(handle);
    }

    /// Drops cached handles (after an error or a change of keys).
    pub(crate) fn forget_keys(&mut self) {
        self.cluster = None;
        self.share_seal = None;
        self.share_receive = None;
    }

    /// Tells every worker of this token to drop its cached handles.
    pub(crate) fn keys_changed(&mut self) {
        self.token.epoch.fetch_add(1, Ordering::AcqRel);
        self.forget_keys();
    }
}
