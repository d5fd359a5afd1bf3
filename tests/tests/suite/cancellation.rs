//! Cancellation by a forced shutdown:
//!
//! * cancellation is sticky: a goroutine that catches its `Cancelled` unwind and waits again
//!   unwinds again, so `shutdown_timeout` returns;
//! * nothing granted just before a cancellation is lost: a lock handed over is released, a
//!   permit comes back, a value handed to a receiver is received or still in the channel;
//! * the same invariants under a seeded random mix of waits cancelled at a random moment.

use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::thread;
use std::time::{Duration, Instant};

use scheduler::chan::{self, Receiver, Sender};
use scheduler::sync::{Mutex, RwLock, Semaphore};
use scheduler::time::sleep;
use scheduler::{Cancelled, WaitGroup, select};
use scheduler_tests::{
    Counted, DropCounter, HANG_LIMIT, PROMPT_LIMIT, SPIN_LIMIT, describe_payload, runtime,
    settle_parked, watchdog, yield_until,
};

/// Forever, for the waits in these tests: only a cancellation ends them.
const FOREVER: Duration = Duration::from_secs(3600);
/// The deadline of shutdowns that must cancel: what they wait for never happens.
const SHORT: Duration = Duration::from_millis(10);

// --- Cancellation is sticky. ---

/// On one proc, a goroutine catches the `Cancelled` unwind of its first wait (a plain
/// receive) and calls `second`, which waits again. The shutdown must return, and `second`
/// must unwind with `Cancelled` too.
fn assert_the_second_wait_unwinds(what: &str, second: impl FnOnce() + Send + 'static) {
    let what = format!("a cancelled goroutine that waits again ({what})");
    watchdog(&what, HANG_LIMIT, || cancel_twice(second));
}

fn cancel_twice(second: impl FnOnce() + Send + 'static) {
    let rt = runtime(1);
    let (_keep, first) = chan::bounded::<u32>(0);
    // 1: the first wait unwound with Cancelled; 2: the second wait returned.
    let stage = Arc::new(AtomicUsize::new(0));
    let s = stage.clone();
    let handle = rt.spawn(move || {
        let caught = panic::catch_unwind(AssertUnwindSafe(|| first.recv()));
        if matches!(&caught, Err(p) if p.is::<Cancelled>()) {
            s.store(1, SeqCst);
        }
        second();
        s.store(2, SeqCst);
    });
    settle_parked(&rt, 1, || true);
    let err = rt.shutdown_timeout(SHORT).expect_err("it waits forever");
    assert_eq!(err.remaining(), 1);
    match stage.load(SeqCst) {
        0 => panic!("the first wait did not unwind with Cancelled"),
        2 => panic!("the second wait returned normally after the cancellation"),
        _ => {}
    }
    let payload = handle.join().expect_err("it was cancelled");
    let what = describe_payload(&*payload);
    assert!(
        payload.is::<Cancelled>(),
        "the second wait unwound with {what}"
    );
}

#[test]
fn a_goroutine_that_catches_cancelled_and_receives_again_is_cancelled_again() {
    let (_keep, again) = chan::bounded::<u32>(0);
    assert_the_second_wait_unwinds("recv", move || assert!(again.recv().is_err()));
}

#[test]
fn a_goroutine_that_catches_cancelled_and_sleeps_is_cancelled_again() {
    assert_the_second_wait_unwinds("sleep", || sleep(FOREVER));
}

#[test]
fn a_goroutine_that_catches_cancelled_and_locks_a_held_mutex_is_cancelled_again() {
    let mutex = Arc::new(Mutex::new(0u32));
    let held = mutex.lock(); // by this plain thread, across the shutdown
    let m = mutex.clone();
    assert_the_second_wait_unwinds("mutex", move || *m.lock() += 1);
    drop(held);
    let free = mutex.try_lock().is_some();
    assert!(free, "the mutex stayed locked after its waiter left");
}

#[test]
fn a_goroutine_that_catches_cancelled_and_waits_on_a_wait_group_is_cancelled_again() {
    let never = WaitGroup::new();
    never.add(1);
    let n = never.clone();
    assert_the_second_wait_unwinds("wait group", move || n.wait());
    assert_eq!(never.count(), 1);
}

// --- Grants survive cancellation. ---

/// On one proc, `waiter` starts first, spawns `holder`, waits until `holder` has called its
/// `raise` argument once, then waits for the resource; `holder` takes the resource, calls
/// `raise` `signals` times in all and ends up sleeping forever. Once both wait, the runtime is
/// shut down. The shutdown wakes them in start order, and the last one woken runs first:
/// `holder` unwinds first and hands the resource to `waiter`, which is cancelled too.
fn cancel_a_hand_over(
    signals: usize,
    waiter: impl FnOnce() + Send + 'static,
    holder: impl FnOnce(&dyn Fn()) + Send + 'static,
) {
    watchdog("a cancelled hand-over", HANG_LIMIT, move || {
        hand_over(signals, waiter, holder)
    });
}

fn hand_over(
    signals: usize,
    waiter: impl FnOnce() + Send + 'static,
    holder: impl FnOnce(&dyn Fn()) + Send + 'static,
) {
    let rt = runtime(1);
    let raised = Arc::new(AtomicUsize::new(0));
    let r = raised.clone();
    rt.spawn(move || {
        let h = r.clone();
        scheduler::spawn(move || holder(&|| _ = h.fetch_add(1, SeqCst)));
        yield_until("the holder holds", SPIN_LIMIT, || r.load(SeqCst) > 0);
        waiter();
    });
    settle_parked(&rt, 2, || raised.load(SeqCst) == signals);
    let err = rt
        .shutdown_timeout(SHORT)
        .expect_err("the holder sleeps forever");
    assert!(err.remaining() >= 1);
}

#[test]
fn a_write_lock_handed_to_a_cancelled_waiter_is_released() {
    let lock = Arc::new(RwLock::new(0u32));
    let (w, h) = (lock.clone(), lock.clone());
    let holder = move |raise: &dyn Fn()| {
        let _guard = h.write();
        raise();
        sleep(FOREVER);
    };
    cancel_a_hand_over(1, move || *w.write() += 1, holder);
    let free = lock.try_write().is_some();
    assert!(
        free,
        "the RwLock stayed locked: handed to a cancelled waiter"
    );
}

#[test]
fn a_permit_handed_to_a_cancelled_waiter_comes_back() {
    let sem = Arc::new(Semaphore::new(1));
    let (w, h) = (sem.clone(), sem.clone());
    let holder = move |raise: &dyn Fn()| {
        let _permit = h.acquire();
        raise();
        sleep(FOREVER);
    };
    cancel_a_hand_over(1, move || drop(w.acquire()), holder);
    let permits = sem.available_permits();
    assert_eq!(permits, 1, "a permit handed to a cancelled waiter was lost");
}

#[test]
fn a_starving_mutex_handed_to_a_cancelled_waiter_is_released() {
    let mutex = Arc::new(Mutex::new(0u32));
    let (w, h) = (mutex.clone(), mutex.clone());
    let holder = move |raise: &dyn Fn()| {
        let guard = h.lock();
        raise();
        // Longer than the 1 ms after which a waiter starves.
        sleep(Duration::from_millis(5));
        // Wakes the waiter, then takes the lock again before the waiter runs: the waiter
        // finds it taken after waiting 5 ms and switches the mutex to starvation mode, where
        // the next unlock hands the lock over.
        drop(guard);
        let _guard = h.lock();
        raise();
        sleep(FOREVER);
    };
    cancel_a_hand_over(2, move || *w.lock() += 1, holder);
    let free = mutex.try_lock().is_some();
    assert!(
        free,
        "the Mutex stayed locked: handed to a cancelled waiter, starving"
    );
}

/// How the receiver of [`a_value_handed_to_a_cancelled_receiver_is_not_lost`] waits.
#[derive(Clone, Copy, Debug)]
enum RecvKind {
    Timeout,
    Select,
    Plain,
}

/// Sends its value with `try_send` when dropped (as its goroutine unwinds); raises its flag
/// if the send succeeded.
struct SendOnDrop(Sender<Counted>, Option<Counted>, Arc<AtomicBool>);

impl Drop for SendOnDrop {
    fn drop(&mut self) {
        let value = self.1.take().expect("dropped once");
        self.2.store(self.0.try_send(value).is_ok(), SeqCst);
    }
}

/// On one proc, a receiver waits (`kind`) on an empty channel of capacity 1, and a goroutine
/// it started after itself sleeps forever. Cancelled, that one unwinds first (the last woken
/// runs first) and sends a value from a destructor, which hands it straight to the waiting
/// receiver, cancelled too. The value must end up received or still in the channel.
fn a_value_handed_to_a_cancelled_receiver_is_not_lost(kind: RecvKind) {
    watchdog(&format!("{kind:?} hand-over"), HANG_LIMIT, move || {
        hand_a_value_over(kind)
    });
}

fn hand_a_value_over(kind: RecvKind) {
    let rt = runtime(1);
    let drops = DropCounter::new();
    let (tx, rx) = chan::bounded::<Counted>(1);
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sent = Arc::new(AtomicBool::new(false));
    let sender = SendOnDrop(tx.clone(), Some(drops.value(1)), sent.clone());
    let (r, got) = (rx.clone(), received.clone());
    rt.spawn(move || {
        scheduler::spawn(move || {
            let _sender = sender;
            sleep(FOREVER);
        });
        let value = match kind {
            RecvKind::Timeout => r.recv_timeout(FOREVER).ok(),
            RecvKind::Select => select! {
                recv(r) -> v => v.ok(),
                default(FOREVER) => None,
            },
            RecvKind::Plain => r.recv().ok(),
        };
        if let Some(value) = value {
            got.lock().unwrap().push(value.id);
        }
        sleep(FOREVER); // unwinds here if cancelled meanwhile
    });
    settle_parked(&rt, 2, || true);
    rt.shutdown_timeout(SHORT).expect_err("both wait forever");
    let sent = sent.load(SeqCst);
    assert!(sent, "the send into an empty channel of capacity 1 failed");
    let received = received.lock().unwrap().clone();
    let kept: Vec<usize> = rx.try_iter().map(|v| v.id).collect();
    assert_eq!(
        received.len() + kept.len(),
        1,
        "{kind:?}: the value sent was received {received:?} and left in the channel {kept:?}; \
         it must be exactly one of the two ({} of 1 values dropped)",
        drops.dropped()
    );
    drop((tx, rx));
    assert_eq!(drops.dropped(), 1);
}

#[test]
fn a_value_handed_to_a_cancelled_recv_timeout_is_received_or_kept() {
    a_value_handed_to_a_cancelled_receiver_is_not_lost(RecvKind::Timeout);
}

#[test]
fn a_value_handed_to_a_cancelled_select_is_received_or_kept() {
    a_value_handed_to_a_cancelled_receiver_is_not_lost(RecvKind::Select);
}

#[test]
fn a_value_handed_to_a_cancelled_plain_recv_is_received_or_kept() {
    a_value_handed_to_a_cancelled_receiver_is_not_lost(RecvKind::Plain);
}

// --- A random mix, cancelled at a random moment. ---

/// Rounds of [`random_round`], each with its own seed.
const ROUNDS: u64 = 200;
/// Goroutines per round.
const CHURNERS: usize = 16;
/// Permits of each round's semaphore.
const PERMITS: usize = 4;

/// xorshift64: a reproducible random stream.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What a round's goroutines share.
#[derive(Default)]
struct Arena {
    sem: Option<Semaphore>,
    rwlock: RwLock<u64>,
    mutex: Mutex<u64>,
    chan: Option<(Sender<Counted>, Receiver<Counted>)>,
    /// Makes every value, each with a fresh id.
    drops: DropCounter,
    next_id: AtomicUsize,
    /// Ids whose send returned `Ok`, and ids a receive returned.
    books: std::sync::Mutex<(Vec<usize>, Vec<usize>)>,
    /// Operations completed, all goroutines together.
    ops: AtomicUsize,
}

/// Loops over random short operations on the arena until cancelled. A wait that returns and
/// the record of what it returned have no suspension point between them, so a cancellation
/// cannot come between the two.
fn churn(a: &Arena, mut rng: Rng) {
    let (sem, (tx, rx)) = (a.sem.as_ref().unwrap(), a.chan.as_ref().unwrap());
    loop {
        let nap = Duration::from_micros(rng.below(50));
        match rng.below(9) {
            0 => drop((sem.acquire(), sleep(nap))),
            1 => drop(sem.acquire_timeout(nap)),
            2 => drop((a.rwlock.read(), sleep(nap))),
            3 => drop((a.rwlock.write(), sleep(nap))),
            4 => drop((a.mutex.lock(), sleep(nap))),
            5 => {
                let value = a.drops.value(a.next_id.fetch_add(1, SeqCst));
                let id = value.id;
                let ok = match rng.below(3) {
                    0 => tx.send(value).is_ok(),
                    1 => tx.send_timeout(value, nap).is_ok(),
                    _ => select! {
                        send(tx, value) -> res => res.is_ok(),
                        default(nap) => false,
                    },
                };
                if ok {
                    a.books.lock().unwrap().0.push(id);
                }
            }
            _ => {
                let got = match rng.below(4) {
                    0 => rx.recv().ok(),
                    1 => rx.recv_timeout(nap).ok(),
                    2 => rx.try_recv().ok(),
                    _ => select! {
                        recv(rx) -> v => v.ok(),
                        default(nap) => None,
                    },
                };
                if let Some(value) = got {
                    a.books.lock().unwrap().1.push(value.id);
                }
            }
        }
        a.ops.fetch_add(1, SeqCst);
        scheduler::yield_now(); // a suspension point every time round
    }
}

/// One round: a runtime of 1 to 3 procs, [`CHURNERS`] goroutines churning, a shutdown after a
/// random number of operations with a random short deadline, then the books.
fn random_round(round: u64, seed: u64) {
    let mut rng = Rng(seed | 1);
    let procs = 1 + rng.below(3) as usize;
    let cap = [0, 1, 4][rng.below(3) as usize];
    let context = format!("round {round} (seed {seed:#x}, {procs} procs, capacity {cap})");
    let rt = runtime(procs);
    let arena = Arc::new(Arena {
        sem: Some(Semaphore::new(PERMITS)),
        chan: Some(chan::bounded(cap)),
        ..Arena::default()
    });
    let handles: Vec<_> = (0..CHURNERS)
        .map(|_| {
            let (arena, rng) = (arena.clone(), Rng(rng.below(u64::MAX) | 1));
            rt.spawn(move || churn(&arena, rng))
        })
        .collect();
    // The random moment: after a random number of operations, or a little time if the
    // goroutines all happen to block first (they may: plain sends and receives).
    let target = rng.below(300) as usize;
    let give_up = Instant::now() + Duration::from_millis(200);
    while arena.ops.load(SeqCst) < target && Instant::now() < give_up {
        thread::yield_now();
    }
    let timeout = Duration::from_micros([0, 0, 500, 3000][rng.below(4) as usize]);
    let err = rt.shutdown_timeout(timeout).expect_err("they loop forever");
    assert_eq!(err.remaining(), CHURNERS, "{context}");
    for (i, handle) in handles.into_iter().enumerate() {
        let payload = handle.join().expect_err("a churner loops forever");
        let what = describe_payload(&*payload);
        assert!(
            payload.is::<Cancelled>(),
            "{context}: goroutine {i} ended with {what}"
        );
    }
    let mut a = Arc::into_inner(arena).expect("the goroutines are gone");
    let locked = (a.rwlock.try_write().is_none(), a.mutex.try_lock().is_none());
    assert_eq!(
        locked,
        (false, false),
        "{context}: (RwLock, Mutex) locked after the shutdown"
    );
    let permits = a.sem.as_ref().unwrap().available_permits();
    assert_eq!(permits, PERMITS, "{context}: permits were lost");
    let (sent, received) = std::mem::take(a.books.get_mut().unwrap());
    let kept = a.chan.as_ref().unwrap().1.try_iter().map(|v| v.id);
    let mut accounted = HashSet::new();
    for id in received.into_iter().chain(kept) {
        let once = accounted.insert(id);
        assert!(
            once,
            "{context}: value {id} was received twice, or received and kept"
        );
    }
    let sent: HashSet<usize> = sent.into_iter().collect();
    let mut lost: Vec<_> = sent.difference(&accounted).collect();
    let mut unsent: Vec<_> = accounted.difference(&sent).collect();
    lost.sort();
    unsent.sort();
    assert!(
        lost.is_empty() && unsent.is_empty(),
        "{context}: values whose send returned Ok were neither received nor kept: {lost:?}; \
         values received whose send failed: {unsent:?}"
    );
    let (made, drops) = (a.next_id.load(SeqCst), a.drops.clone());
    drop(a);
    assert_eq!(
        drops.dropped(),
        made,
        "{context}: values made and dropped differ"
    );
}

#[test]
fn a_random_mix_of_waits_cancelled_at_a_random_moment_loses_no_grant() {
    for round in 0..ROUNDS {
        let seed = 0x9E37_79B9_7F4A_7C15_u64 ^ (round + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
        let what = format!("random cancellation round {round} (seed {seed:#x})");
        watchdog(&what, PROMPT_LIMIT, move || random_round(round, seed));
    }
}
