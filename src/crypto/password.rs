//! argon2id password hashing on its own threads, one per core (a slot each), fed from one
//! queue: a login flood waits in the queue instead of starving token and userinfo traffic,
//! and a thread done with one hash starts the next at once.
//!
//! Protocol traffic comes first: while the protocol endpoints' handlers take half a core or
//! more (the cores are contended), hashing keeps to one hash at a time and pauses after each
//! for twice its duration, so a login flood takes at most a third of one core from token and
//! userinfo requests. Sign-ins then wait longer; nothing is refused.
//!
//! Each thread keeps its 19 MiB of argon2 memory and reuses it: allocating it per hash let
//! glibc's malloc (whose mmap threshold rises after the first large free) keep a copy per
//! thread arena, and the server grew to hundreds of MB under a login load (bench/compare).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use super::random_bytes;

/// OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
fn params() -> Params {
    Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters")
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed")]
    Hash,
    #[error("the password hashing pool is shut down")]
    Pool,
}

/// How long hashing pauses, in units of the hash's own duration, while protocol requests
/// contend for the cores.
const YIELD_FACTOR: u32 = 2;

/// The time protocol requests (token, userinfo, revocation, introspection, user API) spend
/// working in their handlers, which hashing yields to when it adds up to contention.
#[derive(Clone, Debug, Default)]
pub struct ProtocolLoad(Arc<LoadInner>);

#[derive(Debug, Default)]
struct LoadInner {
    busy_nanos: AtomicU64,
    /// The last judgement: when it was made, the busy time then, and whether it was contended.
    window: Mutex<Option<(Instant, u64, bool)>>,
}

/// The judgement is renewed at most this often, over the time since the last one.
const WINDOW: Duration = Duration::from_millis(50);
/// Protocol work of at least half a core counts as contention.
const CONTENDED_SHARE: f64 = 0.5;

impl ProtocolLoad {
    /// Runs a protocol request's handler, adding the time spent in its polls (its work, not
    /// its waits: a slow client or a database round trip is no contention) to the load.
    pub async fn measure<F: Future>(&self, handler: F) -> F::Output {
        let mut handler = std::pin::pin!(handler);
        std::future::poll_fn(|cx| {
            let started = Instant::now();
            let poll = handler.as_mut().poll(cx);
            let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.0.busy_nanos.fetch_add(nanos, Ordering::Relaxed);
            poll
        })
        .await
    }

    /// Whether protocol requests took at least half a core recently.
    fn contended(&self) -> bool {
        let now = Instant::now();
        let busy = self.0.busy_nanos.load(Ordering::Relaxed);
        let mut window = self.0.window.lock().unwrap_or_else(PoisonError::into_inner);
        match *window {
            Some((at, _, contended)) if now.duration_since(at) < WINDOW => contended,
            last => {
                let contended = last.is_some_and(|(at, before, _)| (busy - before) as f64 >= CONTENDED_SHARE * now.duration_since(at).as_nanos() as f64);
                *window = Some((now, busy, contended));
                contended
            }
        }
    }
}

/// A job for a hashing thread: runs with that thread's argon2 memory.
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

#[derive(Clone, Debug)]
pub struct PasswordHasher {
    /// The queue of the hashing threads, one per slot. Each thread takes the next job as soon
    /// as it is done with one: no hand-off through the async runtime between two hashes.
    jobs: flume::Sender<Job>,
    load: ProtocolLoad,
    /// Verified against when the account does not exist, so both cases cost the same.
    dummy_hash: Arc<String>,
}

impl PasswordHasher {
    /// Starts `workers` hashing threads (0: one per core). They end when the last clone of the
    /// hasher is dropped.
    pub fn new(workers: usize) -> Self {
        let workers = if workers == 0 { std::thread::available_parallelism().map_or(2, |n| n.get()) } else { workers };
        let dummy_hash = hash_blocking("not a real password, only spends time", &mut Vec::new()).expect("hash");
        let (jobs, queue) = flume::unbounded::<Job>();
        let load = ProtocolLoad::default();
        // Held by the one hash allowed while protocol requests contend, and through its pause.
        let yielding = Arc::new(Mutex::new(()));
        for _ in 0..workers {
            let (queue, load, yielding) = (queue.clone(), load.clone(), yielding.clone());
            let spawned = std::thread::Builder::new().name("sluis-hash".into()).spawn(move || hash_jobs(&queue, &load, &yielding));
            if let Err(e) = spawned {
                tracing::error!("cannot start a password hashing thread: {e}");
            }
        }
        Self { jobs, load, dummy_hash: Arc::new(dummy_hash) }
    }

    /// The counter the protocol endpoints keep, which hashing yields to.
    pub fn protocol_load(&self) -> &ProtocolLoad {
        &self.load
    }

    /// Runs `work` on a hashing thread, with that thread's memory, once one is free.
    async fn in_slot<T: Send + 'static>(&self, work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static) -> Result<T, PasswordError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            // A caller gone while its job waited (a closed connection, a timed-out sign-in)
            // costs no hash: under a flood, the queue holds many of them.
            if !answer.is_closed() {
                let _ = answer.send(work(memory));
            }
        });
        self.jobs.send(job).map_err(|_| PasswordError::Pool)?;
        answered.await.map_err(|_| PasswordError::Pool)
    }

    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.in_slot(move |memory| hash_blocking(&password, memory)).await?
    }

    /// Verifies `password` against `hash`, or against a dummy hash when there is no
    /// account, so the answer takes comparable time either way.
    pub async fn verify(&self, hash: Option<String>, password: String) -> Result<bool, PasswordError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.as_ref().clone());
        let ok = self.in_slot(move |memory| verify_blocking(&hash, &password, memory)).await?;
        Ok(known && ok)
    }
}

/// A hashing thread: takes jobs until the hasher is dropped, keeping its argon2 memory from
/// one to the next. While protocol requests contend, it hashes only when it holds the turn,
/// and keeps the turn through a pause of twice the hash's duration after it (the caller has
/// its answer at once).
fn hash_jobs(queue: &flume::Receiver<Job>, load: &ProtocolLoad, yielding: &Mutex<()>) {
    let mut memory = Vec::new();
    while let Ok(job) = queue.recv() {
        let turn = load.contended().then(|| yielding.lock().unwrap_or_else(PoisonError::into_inner));
        let started = Instant::now();
        // A panicking job must not take the thread, and the pool's capacity, with it; its
        // caller sees its answer dropped (`PasswordError::Pool`).
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut memory))).is_err() {
            memory = Vec::new();
        }
        if turn.is_some() {
            std::thread::sleep(started.elapsed() * YIELD_FACTOR);
        }
    }
}

/// Hashes into `memory`, grown to what `params` need (hashes made with other parameters).
fn hash_into(argon2: &Argon2<'_>, params: &Params, password: &str, salt: &[u8], out: &mut [u8], memory: &mut Vec<Block>) -> Result<(), argon2::Error> {
    if memory.len() < params.block_count() {
        if memory.capacity() < params.block_count() {
            *memory = Vec::with_capacity(params.block_count());
            ask_for_huge_pages(memory);
        }
        memory.resize(params.block_count(), Block::default());
    }
    argon2.hash_password_into_with_memory(password.as_bytes(), salt, out, &mut memory[..params.block_count()])
}

/// Asks Linux to back `memory`'s spare capacity (not yet touched) with 2 MiB pages: argon2id
/// reads its 19 MiB at random, and with 4 KiB pages most of those reads also miss the TLB.
/// A hash took 4 % less time here (bench/limits.rs `argon2-all`, 19.85 → 19.08 ms). Only a
/// hint: where transparent huge pages are off, the call fails and nothing changes.
#[cfg(target_os = "linux")]
fn ask_for_huge_pages(memory: &mut Vec<Block>) {
    const PAGE: usize = 4096;
    let start = memory.as_mut_ptr() as usize;
    let end = start + memory.capacity() * std::mem::size_of::<Block>();
    // madvise takes whole pages: those inside the allocation.
    let first = start.next_multiple_of(PAGE);
    let length = end.saturating_sub(first) / PAGE * PAGE;
    if length > 0 {
        // SAFETY: the range lies within `memory`'s own allocation, which outlives the call;
        // MADV_HUGEPAGE changes how the kernel backs those pages, never their contents.
        let _ = unsafe { libc::madvise(first as *mut libc::c_void, length, libc::MADV_HUGEPAGE) };
    }
}

#[cfg(not(target_os = "linux"))]
fn ask_for_huge_pages(_memory: &mut Vec<Block>) {}

fn hash_blocking(password: &str, memory: &mut Vec<Block>) -> Result<String, PasswordError> {
    let salt = random_bytes::<16>();
    let params = params();
    let mut out = [0u8; 32];
    hash_into(&Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone()), &params, password, &salt, &mut out, memory).map_err(|_| PasswordError::Hash)?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| PasswordError::Hash)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|_| PasswordError::Hash)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|_| PasswordError::Hash)?),
    };
    Ok(phc.to_string())
}

/// What `argon2`'s own verifier does, with the slot's memory: the parameters, salt and
/// length come from the stored hash; `Output` compares in constant time.
fn verify_blocking(hash: &str, password: &str, memory: &mut Vec<Block>) -> bool {
    let mut verify = || -> Option<bool> {
        let parsed = PasswordHash::new(hash).ok()?;
        let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
        let version = parsed.version.map(Version::try_from).transpose().ok()?.unwrap_or_default();
        let params = Params::try_from(&parsed).ok()?;
        let expected = parsed.hash?;
        let mut salt = [0u8; 64];
        let salt = parsed.salt?.decode_b64(&mut salt).ok()?;
        let mut out = vec![0u8; expected.len()];
        hash_into(&Argon2::new(algorithm, version, params.clone()), &params, password, salt, &mut out, memory).ok()?;
        Some(Output::new(&out).ok()? == expected)
    };
    verify().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let hasher = PasswordHasher::new(1);
        let hash = hasher.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hasher.verify(Some(hash.clone()), "correct horse".into()).await.unwrap());
        assert!(!hasher.verify(Some(hash), "wrong".into()).await.unwrap());
        assert!(!hasher.verify(None, "not a real password, only spends time".into()).await.unwrap());
    }

    #[tokio::test]
    async fn reads_and_writes_the_argon2_crates_hashes_whatever_their_parameters() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = PasswordHasher::new(1);
        for params in [params(), Params::new(8 * 1024, 1, 1, None).unwrap(), Params::new(32 * 1024, 3, 2, None).unwrap()] {
            let salt = SaltString::encode_b64(&random_bytes::<16>()).unwrap();
            let hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hash_password(b"correct horse", &salt).unwrap().to_string();
            assert!(hasher.verify(Some(hash.clone()), "correct horse".into()).await.unwrap());
            assert!(!hasher.verify(Some(hash), "wrong".into()).await.unwrap());
        }
        let ours = hasher.hash("correct horse".into()).await.unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &PasswordHash::new(&ours).unwrap()).is_ok());
        assert!(!hasher.verify(Some("not a hash".into()), "correct horse".into()).await.unwrap());
    }

    /// How many of `count` slot jobs, started together, run at the same time at most; and
    /// the gaps between one job's end and the next one's start.
    async fn concurrency(hasher: &PasswordHasher, count: usize) -> (usize, Vec<Duration>) {
        let running = Arc::new(AtomicU64::new(0));
        let most = Arc::new(AtomicU64::new(0));
        let jobs = (0..count).map(|_| {
            let (running, most) = (running.clone(), most.clone());
            hasher.in_slot(move |_| {
                let started = Instant::now();
                most.fetch_max(running.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(40));
                running.fetch_sub(1, Ordering::SeqCst);
                (started, Instant::now())
            })
        });
        let mut spans: Vec<(Instant, Instant)> = futures_util::future::join_all(jobs).await.into_iter().map(Result::unwrap).collect();
        spans.sort();
        let gaps = spans.windows(2).map(|w| w[1].0.saturating_duration_since(w[0].1)).collect();
        (most.load(Ordering::SeqCst) as usize, gaps)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashing_keeps_to_one_slot_and_pauses_while_protocol_work_contends() {
        let hasher = PasswordHasher::new(2);
        let (most, _) = concurrency(&hasher, 2).await;
        assert_eq!(most, 2, "without protocol load both slots hash at once");

        // Protocol handlers busy for the whole of a window: contended.
        let load = hasher.protocol_load();
        assert!(!load.contended(), "the first look only opens a window");
        load.measure(async { std::thread::sleep(WINDOW + Duration::from_millis(10)) }).await;
        assert!(load.contended());
        // And they stay busy (one core's worth) while the hashes run.
        let protocol_busy = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let protocol = tokio::spawn({
            let (load, protocol_busy) = (load.clone(), protocol_busy.clone());
            async move {
                while protocol_busy.load(Ordering::SeqCst) {
                    load.measure(async { std::thread::sleep(Duration::from_millis(5)) }).await;
                    tokio::task::yield_now().await;
                }
            }
        });
        let (most, gaps) = concurrency(&hasher, 3).await;
        protocol_busy.store(false, Ordering::SeqCst);
        protocol.await.unwrap();
        assert_eq!(most, 1, "one hash at a time");
        assert!(gaps.iter().all(|gap| *gap >= Duration::from_millis(40) * YIELD_FACTOR), "each hash is followed by a pause: {gaps:?}");

        // A window without protocol work after the last pause: both slots again.
        tokio::time::sleep(Duration::from_millis(40) * YIELD_FACTOR + WINDOW * 2).await;
        let (most, _) = concurrency(&hasher, 2).await;
        assert_eq!(most, 2, "once the protocol work stops, both slots hash at once");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_whose_caller_left_while_it_waited_is_not_run() {
        let hasher = PasswordHasher::new(1);
        // The only thread is busy until the test releases it.
        let (started, has_started) = tokio::sync::oneshot::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let busy = tokio::spawn({
            let hasher = hasher.clone();
            async move {
                hasher
                    .in_slot(move |_| {
                        let _ = started.send(());
                        let _ = released.recv();
                    })
                    .await
            }
        });
        has_started.await.unwrap();
        let ran = Arc::new(AtomicU64::new(0));
        let waiting = hasher.in_slot({
            let ran = ran.clone();
            move |_| ran.fetch_add(1, Ordering::SeqCst)
        });
        // The sign-in gives up (its connection closed) while its job waits.
        assert!(tokio::time::timeout(Duration::from_millis(20), waiting).await.is_err());
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        // A later job runs: the thread went past the abandoned one.
        hasher.in_slot(|_| ()).await.unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 0, "the abandoned job was run");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_protocol_requests_and_quiet_windows_are_no_contention() {
        let load = ProtocolLoad::default();
        assert!(!load.contended());
        // A handler that waits (a slow client, a database round trip) does no work.
        load.measure(tokio::time::sleep(WINDOW * 2)).await;
        assert!(!load.contended());
        // Work in the window before, then a quiet window: no longer contended.
        load.measure(async { std::thread::sleep(WINDOW + Duration::from_millis(10)) }).await;
        assert!(load.contended());
        std::thread::sleep(WINDOW * 4);
        assert!(!load.contended());
    }
}
