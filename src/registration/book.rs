//! The reservation book: the in-memory stock and reservations behind one
//! lock, and the single writer thread that makes them durable.
//!
//! A reservation takes its seat under the lock (so the count never exceeds
//! the planned seats), is handed to the writer in the same critical section
//! (so the writer's queue is in lock order), and is acknowledged only after
//! the writer has written it in a batch with everything else pending and
//! flushed that batch once (group commit). On start-up the counts are
//! rebuilt from disk, so after a crash exactly the flushed reservations
//! hold seats: every acknowledged one, and never more than planned.
//!
//! A failed write is "in doubt": sled may or may not have it on disk, so
//! its seat stays taken and its key stays used (a retry answers UNAVAILABLE)
//! until a restart reads what is really on disk. Cancellations give their
//! seat back only once the cancelled record is flushed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use chrono::NaiveDate;
use tokio::sync::oneshot;

use super::stock::{Clock, Stock};
use crate::store::{ReservationRecord, Store, StoreError};

/// At most this many records per write batch.
const MAX_BATCH: usize = 4096;

/// Where a reservation stands on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Queued for the writer.
    Pending,
    /// Flushed.
    Committed,
    /// The write failed; on disk or not, only a restart tells.
    InDoubt,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub rec: ReservationRecord,
    pub durability: Durability,
}

/// Everything under the lock.
#[derive(Default)]
pub struct State {
    pub stock: Option<Stock>,
    pub reservations: BTreeMap<u64, Entry>,
    /// Reservations by [`scoped_key`].
    pub by_key: HashMap<String, u64>,
    pub next_seq: u64,
}

/// The index key of an idempotency key in the scope of the system that
/// used it. Token names have no control characters, so the separator
/// cannot be forged; records without a maker share the scope "".
pub fn scoped_key(made_by: &str, idempotency_key: &str) -> String {
    format!("{made_by}\u{1f}{idempotency_key}")
}

impl ReservationRecord {
    fn scoped_key(&self) -> String {
        scoped_key(&self.made_by, &self.idempotency_key)
    }
}

impl State {
    /// Adds a reservation and indexes its key.
    fn insert(&mut self, rec: ReservationRecord, durability: Durability) {
        self.by_key.insert(rec.scoped_key(), rec.seq);
        self.reservations.insert(rec.seq, Entry { rec, durability });
    }

    /// The reservation made under `idempotency_key` by `made_by`, or by a
    /// record from before keys were scoped (whose maker is unknown).
    pub fn by_key(&self, made_by: &str, idempotency_key: &str) -> Option<(u64, &Entry)> {
        [made_by, ""]
            .iter()
            .find_map(|m| self.by_key.get(&scoped_key(m, idempotency_key)))
            .and_then(|seq| self.reservations.get_key_value(seq))
            .map(|(&seq, e)| (seq, e))
    }

    /// Counts every active reservation into `stock` (a fresh one).
    fn count_into(&self, stock: &mut Stock) {
        for e in self.reservations.values() {
            if !e.rec.cancelled {
                stock.count(stock.place(&e.rec));
            }
        }
    }
}

/// What the writer does with a job.
enum Job {
    /// Write a new reservation.
    Reserve(ReservationRecord),
    /// Write the reservation with `cancelled` set.
    Cancel(ReservationRecord),
    /// Nothing to write: answered once everything queued before is flushed.
    Barrier,
}

/// What a waiter hears back: `Ok(changed)`, or the storage error. For a
/// cancellation `changed` is false when another call cancelled it first.
pub type Ack = Result<bool, String>;

struct Queued {
    job: Job,
    done: oneshot::Sender<Ack>,
}

/// What the handlers share; the writer thread shares only the state, and
/// ends when the book (the queue's sender) is dropped.
pub struct Book {
    state: Arc<Mutex<State>>,
    /// What "today" is when a cell's sessions may already have begun.
    clock: Clock,
    queue: Mutex<mpsc::Sender<Queued>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Book {
    /// Closes the queue and waits for the writer to finish what is queued,
    /// so the store is released when the server has stopped (a restart in
    /// the same process can open the data directory again).
    fn drop(&mut self) {
        let (closed, _) = mpsc::channel();
        let queue = self
            .queue
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        drop(std::mem::replace(queue, closed));
        if let Some(w) = self.writer.take() {
            if w.join().is_err() {
                tracing::error!("the reservation writer panicked");
            }
        }
    }
}

/// Why the book did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the published plan {plan_id} cannot be loaded: {message}")]
    Published { plan_id: String, message: String },
    #[error("cannot start the reservation writer: {0}")]
    Writer(std::io::Error),
}

/// The state. A panic while the lock was held cannot leave a count
/// half-updated (each update is one statement), so a poisoned lock is
/// taken over.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Book {
    /// Loads every reservation from `store`, installs `stock` (the
    /// published plan, if any) and starts the writer thread.
    pub fn open(
        store: Arc<dyn Store>,
        stock: Option<Stock>,
        clock: Clock,
    ) -> Result<Book, OpenError> {
        let mut state = State::default();
        for rec in store.list_reservations()? {
            state.next_seq = state.next_seq.max(rec.seq + 1);
            state.insert(rec, Durability::Committed);
        }
        state.stock = stock.map(|mut s| {
            state.count_into(&mut s);
            s
        });
        let (tx, rx) = mpsc::channel::<Queued>();
        let state = Arc::new(Mutex::new(state));
        let shared = state.clone();
        let writer = std::thread::Builder::new()
            .name("reservation-writer".into())
            .spawn(move || write_loop(&shared, &*store, &rx))
            .map_err(OpenError::Writer)?;
        Ok(Book {
            state,
            clock,
            queue: Mutex::new(tx),
            writer: Some(writer),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The booking date now.
    pub fn today(&self) -> NaiveDate {
        self.clock.today()
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Queues a job; call with the state lock held, so that the queue is in
    /// the order the state changed.
    fn enqueue(&self, _held: &MutexGuard<'_, State>, job: Job) -> oneshot::Receiver<Ack> {
        let (done, rx) = oneshot::channel();
        let sent = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(Queued { job, done });
        // A send fails only if the writer is gone; the dropped sender then
        // makes the receiver report it.
        drop(sent);
        rx
    }

    /// Adds a new reservation (its seat already taken in `state.stock`) and
    /// queues its write.
    pub fn add(
        &self,
        state: &mut MutexGuard<'_, State>,
        rec: ReservationRecord,
    ) -> oneshot::Receiver<Ack> {
        state.insert(rec.clone(), Durability::Pending);
        self.enqueue(state, Job::Reserve(rec))
    }

    /// Queues the write of `rec` cancelled.
    pub fn cancel(
        &self,
        state: &MutexGuard<'_, State>,
        mut rec: ReservationRecord,
    ) -> oneshot::Receiver<Ack> {
        rec.cancelled = true;
        self.enqueue(state, Job::Cancel(rec))
    }

    /// Answered once everything queued so far is flushed (or failed).
    pub fn barrier(&self, state: &MutexGuard<'_, State>) -> oneshot::Receiver<Ack> {
        self.enqueue(state, Job::Barrier)
    }

    /// Installs the stock of a newly published plan, counting every active
    /// reservation into it; returns the cells left with more reservations
    /// than seats.
    pub fn install(&self, mut stock: Stock) -> Vec<super::stock::CellCount> {
        let mut state = self.lock();
        state.count_into(&mut stock);
        let conflicts = stock.conflicts();
        state.stock = Some(stock);
        conflicts
    }
}

/// The writer thread: one batch of everything pending, one flush, then
/// every waiter of the batch is answered.
fn write_loop(state: &Mutex<State>, store: &dyn Store, rx: &mpsc::Receiver<Queued>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(q) => batch.push(q),
                Err(_) => break,
            }
        }
        let recs: Vec<ReservationRecord> = batch
            .iter()
            .filter_map(|q| match &q.job {
                Job::Reserve(r) | Job::Cancel(r) => Some(r.clone()),
                Job::Barrier => None,
            })
            .collect();
        let written = if recs.is_empty() {
            Ok(())
        } else {
            store.put_reservations(&recs)
        };
        if let Err(e) = &written {
            tracing::error!(error = %e, records = recs.len(), "reservation write failed");
        }
        let acks = settle(state, &batch, written.is_ok());
        for (q, changed) in batch.into_iter().zip(acks) {
            let ack = match &written {
                Ok(()) => Ok(changed),
                Err(e) => Err(e.to_string()),
            };
            // The caller may have gone away; the record stands anyway.
            let _ = q.done.send(ack);
        }
    }
}

/// Applies a written (or failed) batch to the state; per job, whether
/// it changed something.
fn settle(state: &Mutex<State>, batch: &[Queued], ok: bool) -> Vec<bool> {
    let mut state = lock(state);
    let state = &mut *state;
    batch
        .iter()
        .map(|q| match &q.job {
            Job::Reserve(r) => {
                if let Some(e) = state.reservations.get_mut(&r.seq) {
                    e.durability = if ok {
                        Durability::Committed
                    } else {
                        Durability::InDoubt
                    };
                }
                true
            }
            Job::Cancel(r) => {
                let Some(e) = state.reservations.get_mut(&r.seq) else {
                    return false;
                };
                if !ok || e.rec.cancelled {
                    return false;
                }
                e.rec.cancelled = true;
                if let Some(stock) = &mut state.stock {
                    stock.release(stock.place(&e.rec));
                }
                true
            }
            Job::Barrier => true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, made_by: &str, key: &str) -> ReservationRecord {
        ReservationRecord {
            made_by: made_by.into(),
            ..crate::store::sample_reservation(seq, key)
        }
    }

    #[test]
    fn keys_are_per_system_except_in_records_without_a_maker() {
        let mut st = State::default();
        st.insert(rec(1, "", "old-key"), Durability::Committed);
        st.insert(rec(2, "sys-a", "order-1"), Durability::Committed);
        st.insert(rec(3, "sys-b", "order-1"), Durability::Committed);
        let seq = |by: &str, key: &str| st.by_key(by, key).map(|(s, _)| s);
        assert_eq!(seq("sys-a", "order-1"), Some(2));
        assert_eq!(seq("sys-b", "order-1"), Some(3));
        assert_eq!(seq("sys-c", "order-1"), None);
        // Written before keys were scoped: whoever made it, it is found.
        assert_eq!(seq("sys-a", "old-key"), Some(1));
        assert_eq!(seq("sys-c", "old-key"), Some(1));
    }
}
