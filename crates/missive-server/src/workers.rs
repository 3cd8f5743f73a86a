//! Dedicated worker threads for jobs that are heavy in CPU and memory (Argon2 hashing,
//! image decoding), with admission decided before any work is queued.
//!
//! Why not tokio's blocking pool: it grows to 512 threads, so a burst of hashes or decodes
//! runs hundreds at once, each with its own working set (19 MiB per Argon2 hash), and glibc
//! gives busy threads their own malloc arenas, which keep the freed memory. Measured before
//! this module: 1,000 registrations, 500 logins and 10 image uploads took a server from
//! 13 MiB to 16 GiB (docs/reliability.md, "Bursts").
//!
//! A [`WorkerPool`] has `workers` OS threads and at most `workers + queue` admitted
//! requests. A request takes a [`Slot`] first ([`WorkerPool::try_admit`] fails at once when
//! all are taken: the caller refuses with 503 rather than queueing without limit), then runs
//! its jobs through it one at a time, each on a turn: at most `workers` turns are out, and a
//! job's input is loaded only once its turn has come ([`Slot::run_after`]: an image is read
//! from the blob store then, not while it waits). So what waits holds only its request, a
//! burst adds at most `workers` × one job's working set, and a batch (a registration of 60
//! users) is one request, not 60. Each worker owns a state (its Argon2 memory block) reused
//! from job to job and released by [`WorkerState::on_idle`] once it has been idle for a
//! while. A job whose caller has gone away (the client disconnected) is skipped, and a job
//! that panics costs its caller an error, never a worker.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// What a worker keeps between jobs.
pub trait WorkerState: Send + 'static {
    /// Called after the pool's idle time without a job: give memory back.
    fn on_idle(&mut self) {}
}

impl WorkerState for () {}

type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

/// Why a job did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Every slot is taken: refuse the request.
    #[error("every worker is busy and the queue is full")]
    Busy,
    /// The job panicked, or the pool is shutting down.
    #[error("the job failed")]
    Failed,
}

/// A fixed set of threads and a bounded number of admitted requests. Cheap to clone.
pub struct WorkerPool<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for WorkerPool<S> {
    fn clone(&self) -> Self {
        WorkerPool { inner: self.inner.clone() }
    }
}

struct Inner<S> {
    /// Never full: a job is sent only with a turn, and there are as many turns as places.
    jobs: flume::Sender<Job<S>>,
    /// Admitted requests (running or waiting).
    slots: Arc<Semaphore>,
    capacity: usize,
    /// Turns on a worker: one per worker.
    turns: Arc<Semaphore>,
    /// Jobs waiting for a turn: the queue depth operators watch.
    queued: AtomicUsize,
    workers: usize,
}

impl<S: WorkerState> WorkerPool<S> {
    /// Starts `workers` threads named `{name}-{i}` (at least one), each with a state from
    /// `state` that is told to release its memory after `idle` without a job, admitting
    /// `workers + queue` requests.
    pub fn start(name: &str, workers: usize, queue: usize, idle: Duration, state: impl Fn() -> S) -> WorkerPool<S> {
        let workers = workers.max(1);
        let capacity = workers.saturating_add(queue);
        let (jobs, rx) = flume::bounded::<Job<S>>(workers);
        let inner = Arc::new(Inner {
            jobs,
            slots: Arc::new(Semaphore::new(capacity)),
            capacity,
            turns: Arc::new(Semaphore::new(workers)),
            queued: AtomicUsize::new(0),
            workers,
        });
        for i in 0..workers {
            let (rx, mut state) = (rx.clone(), state());
            let spawned = std::thread::Builder::new().name(format!("{name}-{i}")).spawn(move || {
                loop {
                    match rx.recv_timeout(idle) {
                        Ok(job) => {
                            // A panicking job drops its reply sender: its caller sees `Failed`.
                            let _ = catch_unwind(AssertUnwindSafe(|| job(&mut state)));
                        }
                        Err(flume::RecvTimeoutError::Timeout) => state.on_idle(),
                        // Every sender is gone: the server has stopped.
                        Err(flume::RecvTimeoutError::Disconnected) => return,
                    }
                }
            });
            if let Err(e) = spawned {
                tracing::error!(%e, pool = name, "could not start a worker thread");
            }
        }
        WorkerPool { inner }
    }

    /// Admits one request, or `Busy` at once when `workers + queue` are admitted already.
    pub fn try_admit(&self) -> Result<Slot<S>, PoolError> {
        let permit = self.inner.slots.clone().try_acquire_owned().map_err(|_| PoolError::Busy)?;
        Ok(Slot { pool: self.clone(), _permit: permit })
    }

    /// Jobs waiting for a turn on a worker.
    pub fn queued(&self) -> usize {
        self.inner.queued.load(Ordering::Relaxed)
    }

    /// Requests admitted now (running or waiting).
    pub fn admitted(&self) -> usize {
        self.inner.capacity - self.inner.slots.available_permits()
    }

    pub fn workers(&self) -> usize {
        self.inner.workers
    }
}

/// One admitted request: runs its jobs on the pool, one at a time (hence `&mut self`).
pub struct Slot<S> {
    pool: WorkerPool<S>,
    _permit: OwnedSemaphorePermit,
}

impl<S: WorkerState> Slot<S> {
    /// Runs `job` on a worker with that worker's state and returns its result.
    pub async fn run<R: Send + 'static>(
        &mut self,
        job: impl FnOnce(&mut S) -> R + Send + 'static,
    ) -> Result<R, PoolError> {
        self.run_after(async {}, |state, ()| job(state)).await
    }

    /// Waits for a turn on a worker, then awaits `load` (reading the job's input, so that
    /// inputs are in memory only for the jobs about to run) and runs `job` with it.
    pub async fn run_after<I: Send + 'static, R: Send + 'static>(
        &mut self,
        load: impl Future<Output = I>,
        job: impl FnOnce(&mut S, I) -> R + Send + 'static,
    ) -> Result<R, PoolError> {
        let inner = &self.pool.inner;
        inner.queued.fetch_add(1, Ordering::Relaxed);
        let turn = inner.turns.clone().acquire_owned().await;
        inner.queued.fetch_sub(1, Ordering::Relaxed);
        let turn = turn.map_err(|_| PoolError::Failed)?;
        let input = load.await;
        let (reply, answer) = oneshot::channel();
        let job: Job<S> = Box::new(move |state| {
            // The turn ends with the job, even if the caller stopped waiting for it.
            let _turn = turn;
            if reply.is_closed() {
                return;
            }
            let _ = reply.send(job(state, input));
        });
        inner.jobs.try_send(job).map_err(|_| PoolError::Failed)?;
        answer.await.map_err(|_| PoolError::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn admits_workers_plus_queue_then_refuses_at_once() {
        let pool = WorkerPool::start("test", 2, 1, Duration::from_secs(5), || ());
        let slots: Vec<_> = (0..3).map(|_| pool.try_admit().expect("within capacity")).collect();
        assert_eq!(pool.admitted(), 3);
        assert_eq!(pool.try_admit().err(), Some(PoolError::Busy));
        drop(slots);
        assert_eq!(pool.admitted(), 0);
        assert!(pool.try_admit().is_ok());
    }

    #[tokio::test]
    async fn state_is_reused_and_released_when_idle() {
        #[derive(Default)]
        struct Counter(u32);
        impl WorkerState for Counter {
            fn on_idle(&mut self) {
                self.0 = 0;
            }
        }
        let idle = Duration::from_millis(50);
        let pool = WorkerPool::start("test", 1, 0, idle, Counter::default);
        let mut slot = pool.try_admit().unwrap();
        let bump = |c: &mut Counter| {
            c.0 += 1;
            c.0
        };
        for expected in 1..=3 {
            assert_eq!(slot.run(bump).await, Ok(expected));
        }
        // Idle for longer than `idle` is exactly the condition under test.
        tokio::time::sleep(idle * 4).await;
        assert_eq!(slot.run(bump).await, Ok(1));
    }

    #[tokio::test]
    async fn a_panicking_job_fails_its_caller_and_keeps_the_worker() {
        let pool = WorkerPool::start("test", 1, 0, Duration::from_secs(5), || ());
        let mut slot = pool.try_admit().unwrap();
        assert_eq!(slot.run(|_| -> u8 { panic!("boom") }).await, Err(PoolError::Failed));
        assert_eq!(slot.run(|_| 7u8).await, Ok(7));
        assert_eq!(pool.queued(), 0);
    }

    /// Polls `cond` (bounded: 5 s).
    async fn until(what: &str, cond: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn inputs_load_only_when_a_turn_is_free() {
        let pool = WorkerPool::start("test", 1, 2, Duration::from_secs(5), || ());
        let (mut first, mut second) = (pool.try_admit().unwrap(), pool.try_admit().unwrap());
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let running = tokio::spawn(async move { first.run(move |_| hold.recv().is_ok()).await });
        until("the worker runs the first job", || pool.inner.turns.available_permits() == 0).await;
        let loaded = Arc::new(AtomicUsize::new(0));
        let seen = loaded.clone();
        let waiting = tokio::spawn(async move {
            second.run_after(async move { seen.fetch_add(1, Ordering::SeqCst) + 1 }, |_, n| n).await
        });
        until("the second job waits for a turn", || pool.queued() == 1).await;
        assert_eq!(loaded.load(Ordering::SeqCst), 0, "loaded before its turn");
        release.send(()).unwrap();
        assert_eq!(running.await.unwrap(), Ok(true));
        assert_eq!(waiting.await.unwrap(), Ok(1));
    }
}
