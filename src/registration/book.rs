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
//! until a restart reads what is really on disk. A write the store refused
//! before sled saw it (too little disk left, [`StoreError::nothing_written`])
//! is not in doubt: its reservations are dropped and their seats given back
//! at once, so a retry books anew. Cancellations give their seat back only
//! once the cancelled record is flushed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
    /// Reservations (their seqs) by candidate: ListReservations' lookup of
    /// one candidate, the way to find a booking after a lost reply, reads
    /// these instead of every reservation under the lock (at 98k
    /// reservations the scan took 20 ms and held Reserve up as long).
    pub by_candidate: HashMap<String, BTreeSet<u64>>,
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
        self.by_candidate
            .entry(rec.ask.candidate_ref.clone())
            .or_default()
            .insert(rec.seq);
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
    /// The writer's store, asked before a seat is taken whether a write
    /// would be refused ([`Book::writable`]).
    store: Arc<dyn Store>,
}

impl Drop for Book {
    /// Closes the queue and waits for the writer to finish what is queued,
    /// so the store is released when the server has stopped (a restart in
    /// the same process can open the data directory again).
    ///
    /// At most [`crate::store::CLOSE_WAIT`]: a writer stuck in sled (whose
    /// flush never returns after the disk filled up) is left behind, as the
    /// store's own close leaves it, so a server told to stop still exits.
    /// Every acknowledged write was flushed before it was acknowledged.
    fn drop(&mut self) {
        let (closed, _) = mpsc::channel();
        let queue = self
            .queue
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        drop(std::mem::replace(queue, closed));
        let Some(w) = self.writer.take() else {
            return;
        };
        if !crate::store::finished_within(&w, crate::store::CLOSE_WAIT) {
            tracing::error!(
                seconds = crate::store::CLOSE_WAIT.as_secs(),
                "the reservation writer did not finish in time (is the disk full?): \
                 leaving it; every acknowledged reservation is on disk"
            );
            return;
        }
        if w.join().is_err() {
            tracing::error!("the reservation writer panicked");
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
        let for_writer = store.clone();
        let writer = std::thread::Builder::new()
            .name("reservation-writer".into())
            .spawn(move || write_loop(&shared, &*for_writer, &rx))
            .map_err(OpenError::Writer)?;
        Ok(Book {
            state,
            clock,
            queue: Mutex::new(tx),
            writer: Some(writer),
            store,
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

    /// `Err` when the store would refuse a write now (it failed, or a
    /// write has stalled, so the writer is stuck behind it): a reservation
    /// or cancellation is refused before it takes or frees anything,
    /// instead of waiting on that write for as long as it hangs.
    pub fn writable(&self) -> Result<(), StoreError> {
        self.store.check_writable()
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
        let outcome = match &written {
            Ok(()) => Outcome::Written,
            Err(e) if e.nothing_written() => Outcome::NotWritten,
            Err(_) => Outcome::InDoubt,
        };
        let acks = settle(state, &batch, outcome);
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

/// What became of a batch's write.
#[derive(Clone, Copy, PartialEq)]
enum Outcome {
    Written,
    /// Refused before anything reached the disk.
    NotWritten,
    /// Failed: on disk or not, only a restart tells.
    InDoubt,
}

/// Applies a written (or failed) batch to the state; per job, whether
/// it changed something.
fn settle(state: &Mutex<State>, batch: &[Queued], outcome: Outcome) -> Vec<bool> {
    let ok = outcome == Outcome::Written;
    let mut state = lock(state);
    let state = &mut *state;
    batch
        .iter()
        .map(|q| match &q.job {
            Job::Reserve(r) if outcome == Outcome::NotWritten => {
                // Never on disk: as if it had not been asked.
                if let Some(e) = state.reservations.remove(&r.seq) {
                    state.by_key.remove(&e.rec.scoped_key());
                    let cand = &e.rec.ask.candidate_ref;
                    if let Some(seqs) = state.by_candidate.get_mut(cand) {
                        seqs.remove(&r.seq);
                        if seqs.is_empty() {
                            state.by_candidate.remove(cand);
                        }
                    }
                    if let (Some(stock), false) = (&mut state.stock, e.rec.cancelled) {
                        stock.release(stock.place(&e.rec));
                    }
                }
                false
            }
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

    /// A write the store refuses for want of disk space reached no disk:
    /// its seat comes back and its key is free at once (it stayed taken
    /// until a restart: 4,395 seats of 37,148 in 3 s under load, found by
    /// a reviewer), and once there is space the same key books.
    #[test]
    fn a_write_refused_for_disk_space_gives_its_seat_back() {
        use crate::store::SledStore;
        let (sc, plan) = crate::store::tiny_solved();
        let stock = Stock::build("p", &plan, &sc).unwrap();
        let (e, l) = (stock.exam("E").unwrap(), stock.location("L").unwrap());
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let book = Book::open(store.clone(), Some(stock), Clock::pinned(day)).unwrap();
        let free = || book.lock().stock.as_ref().unwrap().free(e, l, 1);
        let before = free();
        assert!(before > 0);
        let reserve = |seq: u64| {
            let mut st = book.lock();
            assert!(st.stock.as_mut().unwrap().take(e, l, 1));
            book.add(&mut st, rec(seq, "sys", "k1"))
        };

        store.set_disk_reserve(u64::MAX);
        let ack = reserve(0).blocking_recv().unwrap();
        assert!(ack.as_ref().unwrap_err().contains("free space"), "{ack:?}");
        assert_eq!(free(), before);
        assert!(book.lock().by_key("sys", "k1").is_none());
        assert!(book.lock().reservations.is_empty());
        assert!(book.lock().by_candidate.is_empty());

        store.set_disk_reserve(0);
        assert_eq!(reserve(1).blocking_recv().unwrap(), Ok(true));
        assert_eq!(free(), before - 1);
        let st = book.lock();
        let (seq, entry) = st.by_key("sys", "k1").unwrap();
        assert_eq!((seq, entry.durability), (1, Durability::Committed));
        let cand = &entry.rec.ask.candidate_ref;
        assert_eq!(st.by_candidate[cand].iter().collect::<Vec<_>>(), [&1]);
        drop(st);
        let on_disk: Vec<u64> = store
            .list_reservations()
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(on_disk, [1]);
    }

    /// While a store write hangs, the book says so before anything is
    /// taken (its writer is stuck behind that write); once it returns,
    /// reservations are written again.
    #[test]
    fn a_stalled_store_write_makes_the_book_unwritable_until_it_returns() {
        use crate::store::SledStore;
        let (sc, plan) = crate::store::tiny_solved();
        let stock = Stock::build("p", &plan, &sc).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        store.set_stall_limit(std::time::Duration::from_millis(50));
        let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let book = Book::open(store.clone(), Some(stock), Clock::pinned(day)).unwrap();
        assert!(book.writable().is_ok());
        let stalled = store.start_write();
        std::thread::sleep(std::time::Duration::from_millis(60));
        let e = book.writable().unwrap_err();
        assert!(matches!(e, StoreError::Stalled { .. }), "{e}");
        drop(stalled);
        assert!(book.writable().is_ok());
        let ack = {
            let mut st = book.lock();
            book.add(&mut st, rec(0, "sys", "k1"))
        };
        assert_eq!(ack.blocking_recv().unwrap(), Ok(true));
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
