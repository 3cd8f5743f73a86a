//! Group commit, shared by every backend: the writes of the delivery path (messages, acks,
//! device logins, recalls) are queued on one channel, and a single writer takes everything
//! that has arrived, writes it in one transaction with one fsync, announces what committed to
//! the `CommitListener`, then answers every caller.
//!
//! Under load this turns N fsyncs into one; with a single caller it costs nothing extra. Acks
//! start no transaction of their own: they wait (at most [`ACK_DELAY`]) for the next write
//! that does. The loop ([`run`]) and the job types ([`QueueJob`]) are the same for SQLite and
//! PostgreSQL; a backend only says how a batch is written ([`BatchWriter`]); which jobs go
//! into a batch is decided by the [`Batcher`], free of I/O. Announcing before answering keeps
//! commit order: listeners hear of commits in the order they happened, so the sessions of the
//! node that wrote them rarely see a sequence gap (a gap is still handled: see the sequence
//! rule in `missive_core::store::queues`).

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use missive_core::id::MsgId;
use missive_core::model::{DeviceInfo, QueuedMessage};
use missive_core::store::{AckReceipt, CommitListener, EnqueueRequest, RecallOutcome, StoreError, StoreResult};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// A device moved its cursor in one queue.
#[derive(Clone, Debug)]
pub(crate) struct AckWrite {
    pub app: Uuid,
    pub owner: String,
    pub resource: String,
    pub queue: String,
    pub seq: u64,
}

/// A device logged in.
#[derive(Clone, Debug)]
pub(crate) struct DeviceWrite {
    pub app: Uuid,
    pub owner: String,
    pub device: DeviceInfo,
    pub now: i64,
}

/// A write on the delivery path, as a backend performs it.
#[derive(Debug)]
pub(crate) enum QueueWrite {
    Enqueue(EnqueueRequest),
    Ack(AckWrite),
    Device(DeviceWrite),
    Recall { app: Uuid, id: MsgId },
}

/// What a `QueueWrite` produced, once its transaction committed.
#[derive(Debug)]
pub(crate) enum Written {
    Enqueued(Vec<Arc<QueuedMessage>>),
    Acked,
    /// Whether the device was seen for the first time.
    Device(bool),
    Recalled(RecallOutcome),
}

/// Where a job's caller waits for its answer.
enum Reply {
    Enqueue(oneshot::Sender<StoreResult<Vec<Arc<QueuedMessage>>>>),
    Ack(oneshot::Sender<StoreResult<()>>),
    Device(oneshot::Sender<StoreResult<bool>>),
    Recall(oneshot::Sender<StoreResult<RecallOutcome>>),
}

/// A delivery-path write and the caller waiting for it.
pub(crate) struct QueueJob {
    pub write: QueueWrite,
    reply: Reply,
}

impl QueueJob {
    /// An ack: its caller does not wait for the commit, so it may wait for company.
    pub fn deferrable(&self) -> bool {
        matches!(self.write, QueueWrite::Ack(_))
    }

    /// Rows this job writes, roughly: what a batch's size limit counts.
    pub fn weight(&self) -> usize {
        match &self.write {
            QueueWrite::Enqueue(e) => e.messages.len().max(1),
            _ => 1,
        }
    }

    /// Answers the caller. A result that does not match the job's kind is a backend bug,
    /// answered as an error rather than a panic.
    pub fn answer(self, result: StoreResult<Written>) {
        fn mismatch() -> StoreError {
            StoreError::Backend("group commit answered a job with the wrong result".into())
        }
        match self.reply {
            Reply::Enqueue(tx) => {
                let _ = tx.send(result.and_then(|w| match w {
                    Written::Enqueued(m) => Ok(m),
                    _ => Err(mismatch()),
                }));
            }
            Reply::Ack(tx) => {
                let _ = tx.send(result.and_then(|w| match w {
                    Written::Acked => Ok(()),
                    _ => Err(mismatch()),
                }));
            }
            Reply::Device(tx) => {
                let _ = tx.send(result.and_then(|w| match w {
                    Written::Device(first) => Ok(first),
                    _ => Err(mismatch()),
                }));
            }
            Reply::Recall(tx) => {
                let _ = tx.send(result.and_then(|w| match w {
                    Written::Recalled(r) => Ok(r),
                    _ => Err(mismatch()),
                }));
            }
        }
    }
}

/// The listener a store announces commits to; replaceable while the store runs.
#[derive(Default)]
pub(crate) struct ListenerSlot(RwLock<Option<Arc<dyn CommitListener>>>);

impl ListenerSlot {
    pub fn set(&self, listener: Arc<dyn CommitListener>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(listener);
    }

    pub fn get(&self) -> Option<Arc<dyn CommitListener>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Announces what a committed batch wrote, in batch order, then answers every caller.
/// `results` holds one result per job; a failed commit passes its error for every job.
/// `batch` is what the listener hears about the transaction as a whole (see
/// `CommitListener::batch_committed`); a failed commit reports none.
pub(crate) fn finish(
    jobs: Vec<QueueJob>,
    results: Vec<StoreResult<Written>>,
    listener: Option<&dyn CommitListener>,
    batch: Option<BatchTiming>,
) {
    if let Some(listener) = listener {
        let mut messages = 0u64;
        for result in &results {
            match result {
                Ok(Written::Enqueued(stored)) if !stored.is_empty() => {
                    messages += stored.len() as u64;
                    listener.committed(stored)
                }
                Ok(Written::Recalled(RecallOutcome::RemovedDelivered(m) | RecallOutcome::RemovedUndelivered(m))) => {
                    listener.removed(m)
                }
                _ => {}
            }
        }
        if let Some(BatchTiming { ops, started }) = batch {
            listener.batch_committed(ops, messages, started.elapsed());
        }
    }
    for (job, result) in jobs.into_iter().zip(results) {
        job.answer(result);
    }
}

/// A transaction's size and start, for `CommitListener::batch_committed`.
pub(crate) struct BatchTiming {
    pub ops: usize,
    pub started: Instant,
}

/// How one backend writes a batch. `commit` must write every job in one transaction, contain
/// a job's own failure to that job where it can, commit, and then call [`finish`] (directly or
/// through its own wrapper) so every job is answered exactly once.
pub(crate) trait BatchWriter: Send + 'static {
    type Job: Send + 'static;
    fn weight(job: &Self::Job) -> usize;
    /// Whether the job may wait for a later one's transaction (see [`run`]).
    fn deferrable(job: &Self::Job) -> bool;
    fn commit(&mut self, batch: Vec<Self::Job>) -> impl Future<Output = ()> + Send;
}

/// How long an ack may wait for a transaction to ride in. Acks are answered without waiting
/// for their fsync (an ack lost in a crash only means a redelivery), so none needs a
/// transaction of its own: under load each one joins the next batch of messages, and when
/// nothing else is written they commit together this much later. Before, every delivered
/// message cost a second commit — a second fsync and the cursor's pages written again — and
/// an idle send often found the writer busy with the previous message's ack.
pub(crate) const ACK_DELAY: Duration = Duration::from_millis(20);

/// Which jobs go into the next transaction: the group commit's rule, free of I/O. Jobs the
/// writer calls deferrable (acks) start no transaction of their own: they wait, at most
/// [`ACK_DELAY`], for the next job that does, and go first in its batch, so jobs still commit
/// in the order they arrived. A batch holds at most `max_batch` rows' worth.
pub(crate) struct Batcher<W: BatchWriter> {
    waiting: Vec<W::Job>,
    waiting_weight: usize,
    due: Option<tokio::time::Instant>,
    max_batch: usize,
}

impl<W: BatchWriter> Batcher<W> {
    pub fn new(max_batch: usize) -> Self {
        Batcher { waiting: Vec::new(), waiting_weight: 0, due: None, max_batch: max_batch.max(1) }
    }

    /// When the deferred jobs must be committed even if nothing else arrives.
    pub fn due(&self) -> Option<tokio::time::Instant> {
        self.due
    }

    /// Takes `first` and, while the batch has room, what `more` yields; answers the batch
    /// to commit now, or `None` when `first` was deferred.
    pub fn arrive(&mut self, first: W::Job, mut more: impl FnMut() -> Option<W::Job>) -> Option<Vec<W::Job>> {
        let weight = W::weight(&first);
        if W::deferrable(&first) && self.waiting_weight + weight < self.max_batch {
            self.waiting.push(first);
            self.waiting_weight += weight;
            self.due.get_or_insert_with(|| tokio::time::Instant::now() + ACK_DELAY);
            return None;
        }
        let mut weight = self.waiting_weight + weight;
        let mut batch = self.expire();
        batch.push(first);
        while weight < self.max_batch {
            match more() {
                Some(job) => {
                    weight += W::weight(&job);
                    batch.push(job);
                }
                None => break,
            }
        }
        Some(batch)
    }

    /// The deferred jobs, to be committed now (their delay is over, or the writer stops).
    pub fn expire(&mut self) -> Vec<W::Job> {
        (self.due, self.waiting_weight) = (None, 0);
        std::mem::take(&mut self.waiting)
    }
}

/// The group-commit loop: take what has queued up, write it in one transaction (the
/// [`Batcher`] decides what goes in), repeat. Ends when every sender is gone, after
/// committing what waits.
pub(crate) async fn run<W: BatchWriter>(mut writer: W, mut jobs: mpsc::Receiver<W::Job>, max_batch: usize) {
    let mut batcher = Batcher::<W>::new(max_batch);
    loop {
        let first = match batcher.due() {
            None => jobs.recv().await,
            Some(at) => tokio::select! {
                job = jobs.recv() => job,
                _ = tokio::time::sleep_until(at) => {
                    writer.commit(batcher.expire()).await;
                    continue;
                }
            },
        };
        let Some(first) = first else { break };
        if let Some(batch) = batcher.arrive(first, || jobs.try_recv().ok()) {
            writer.commit(batch).await;
        }
    }
    let waiting = batcher.expire();
    if !waiting.is_empty() {
        writer.commit(waiting).await;
    }
}

pub(crate) fn writer_stopped<E>(_: E) -> StoreError {
    StoreError::Backend("the store's writer stopped".into())
}

/// The sending side of a backend's job channel: builds a `QueueJob`, queues it and (except
/// for acks, see `submit_ack`) waits for its answer.
pub(crate) struct QueueJobs<J> {
    tx: mpsc::Sender<J>,
}

impl<J> Clone for QueueJobs<J> {
    fn clone(&self) -> Self {
        QueueJobs { tx: self.tx.clone() }
    }
}

impl<J: From<QueueJob> + Send + 'static> QueueJobs<J> {
    pub fn new(tx: mpsc::Sender<J>) -> Self {
        QueueJobs { tx }
    }

    /// The raw channel, for backend-specific jobs.
    pub fn sender(&self) -> &mpsc::Sender<J> {
        &self.tx
    }

    async fn queue(&self, write: QueueWrite, reply: Reply) -> StoreResult<()> {
        self.tx.send(QueueJob { write, reply }.into()).await.map_err(writer_stopped)
    }

    pub async fn enqueue(&self, request: EnqueueRequest) -> StoreResult<Vec<Arc<QueuedMessage>>> {
        let (tx, rx) = oneshot::channel();
        self.queue(QueueWrite::Enqueue(request), Reply::Enqueue(tx)).await?;
        rx.await.map_err(writer_stopped)?
    }

    pub async fn submit_ack(&self, ack: AckWrite) -> StoreResult<AckReceipt> {
        let (tx, rx) = oneshot::channel();
        self.queue(QueueWrite::Ack(ack), Reply::Ack(tx)).await?;
        Ok(Box::pin(async move { rx.await.map_err(writer_stopped)? }))
    }

    pub async fn device(&self, device: DeviceWrite) -> StoreResult<bool> {
        let (tx, rx) = oneshot::channel();
        self.queue(QueueWrite::Device(device), Reply::Device(tx)).await?;
        rx.await.map_err(writer_stopped)?
    }

    pub async fn recall(&self, app: Uuid, id: MsgId) -> StoreResult<RecallOutcome> {
        let (tx, rx) = oneshot::channel();
        self.queue(QueueWrite::Recall { app, id }, Reply::Recall(tx)).await?;
        rx.await.map_err(writer_stopped)?
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A job of the test writer: its number, weight and whether it may wait.
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct TestJob {
        n: usize,
        weight: usize,
        deferrable: bool,
    }

    struct TestWriter;

    impl BatchWriter for TestWriter {
        type Job = TestJob;
        fn weight(job: &TestJob) -> usize {
            job.weight
        }
        fn deferrable(job: &TestJob) -> bool {
            job.deferrable
        }
        async fn commit(&mut self, _: Vec<TestJob>) {}
    }

    fn job(n: usize, weight: usize, deferrable: bool) -> TestJob {
        TestJob { n, weight, deferrable }
    }

    #[test]
    fn deferred_jobs_wait_and_go_first_in_the_next_batch() {
        let mut b = Batcher::<TestWriter>::new(10);
        let before = tokio::time::Instant::now();
        assert_eq!(b.arrive(job(0, 1, true), || None), None);
        let due = b.due().expect("a deferred job sets a deadline");
        assert!(due >= before + ACK_DELAY && due <= tokio::time::Instant::now() + ACK_DELAY);
        assert_eq!(b.arrive(job(1, 1, true), || None), None);
        assert_eq!(b.due(), Some(due), "a later deferred job does not push the deadline back");
        let mut queued = vec![job(3, 1, false)].into_iter();
        let batch = b.arrive(job(2, 1, false), || queued.next()).expect("a job that cannot wait is a batch");
        assert_eq!(batch.iter().map(|j| j.n).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!(b.due(), None);
        assert!(b.expire().is_empty());
    }

    #[test]
    fn a_batch_takes_queued_jobs_only_while_it_has_room() {
        let mut b = Batcher::<TestWriter>::new(4);
        let mut queued = vec![job(1, 2, false), job(2, 1, false), job(3, 1, false)].into_iter();
        let batch = b.arrive(job(0, 1, false), || queued.next()).unwrap();
        // 1 + 2 = 3 < 4 takes one more; 4 is full.
        assert_eq!(batch.iter().map(|j| j.n).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(queued.next().map(|j| j.n), Some(3));
    }

    #[test]
    fn a_deferrable_job_that_would_overfill_the_wait_starts_a_batch() {
        let mut b = Batcher::<TestWriter>::new(3);
        assert_eq!(b.arrive(job(0, 2, true), || None), None);
        let batch = b.arrive(job(1, 1, true), || None).expect("no room left to wait");
        assert_eq!(batch.iter().map(|j| j.n).collect::<Vec<_>>(), [0, 1]);
    }

    proptest! {
        /// Whatever arrives, however the deadline falls: every job is committed exactly once,
        /// in arrival order, and a batch stops taking jobs once it is full.
        #[test]
        fn every_job_commits_once_in_arrival_order(
            arrivals in proptest::collection::vec((1usize..5, any::<bool>(), any::<bool>(), 0usize..4), 0..60),
            max_batch in 1usize..12,
        ) {
            let mut b = Batcher::<TestWriter>::new(max_batch);
            let mut committed = Vec::new();
            let mut n = 0;
            for (weight, deferrable, expire, queued) in arrivals {
                let first = job(n, weight, deferrable);
                n += 1;
                let mut more = (0..queued).map(|_| { n += 1; job(n - 1, 1, false) }).collect::<Vec<_>>().into_iter();
                let taken_before = more.len();
                if let Some(batch) = b.arrive(first, || more.next()) {
                    let taken = taken_before - more.len();
                    // Before its last job was taken, the batch had room.
                    let before_last: usize = batch[..batch.len() - 1].iter().map(|j| j.weight).sum();
                    prop_assert!(taken == 0 || before_last < max_batch);
                    committed.extend(batch);
                } else {
                    prop_assert!(b.due().is_some());
                }
                // Jobs `more` did not hand out stay queued: they arrive next, in order.
                for rest in more {
                    if let Some(batch) = b.arrive(rest, || None) {
                        committed.extend(batch);
                    }
                }
                if expire {
                    committed.extend(b.expire());
                }
            }
            committed.extend(b.expire());
            prop_assert_eq!(committed.iter().map(|j| j.n).collect::<Vec<_>>(), (0..n).collect::<Vec<_>>());
        }
    }
}
