//! `WaitGroup`: the last `done` wakes every waiter, exactly the waiters registered before it,
//! and each waiter sees what every `done`'s caller wrote before calling it.
//!
//! Mirrors `sync/wait_group.rs`: `WaitGroup::add`, `done`, `wait`, `count`, and `WaitOp`'s
//! `try_complete`, `enqueue`, `withdraw` and `collect`; and `select/mod.rs`'s `select_one` with
//! `Mode::Block`. Waiters are plain threads (`waiter.rs`'s model); a goroutine's wake is the
//! `park_wake` model's.

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

use crate::block_kind::BlockKind;
use crate::check;
use crate::waiter::{Waiter, WaiterQueue};

#[derive(Clone)]
struct WaitGroup {
    inner: Arc<Inner>,
}

struct Inner {
    count: AtomicUsize,
    waiters: Mutex<WaiterQueue>,
}

impl WaitGroup {
    fn new() -> WaitGroup {
        WaitGroup {
            inner: Arc::new(Inner {
                count: AtomicUsize::new(0),
                waiters: Mutex::new(WaiterQueue::default()),
            }),
        }
    }

    fn add(&self, n: usize) {
        // Relaxed as in wait_group.rs: an add publishes nothing.
        let prev = self.inner.count.fetch_add(n, Ordering::Relaxed);
        if prev.checked_add(n).is_none() {
            self.inner.count.fetch_sub(n, Ordering::Relaxed);
            panic!("scheduler: WaitGroup counter overflow");
        }
    }

    fn done(&self) {
        let above_one = self
            .inner
            .count
            // Release/Relaxed as in wait_group.rs: the caller's writes reach whoever reads a
            // later value of the count (the final `done`'s AcqRel, a waiter's Acquire).
            .fetch_update(Ordering::Release, Ordering::Relaxed, |c| {
                (c > 1).then(|| c - 1)
            })
            .is_ok();
        if above_one {
            return;
        }
        let waiters = {
            let mut waiters = self.inner.waiters.lock().unwrap();
            let released = self.inner.count.fetch_update(
                // AcqRel/Relaxed as in wait_group.rs: acquires the earlier `done`s' writes,
                // releases them with this caller's to the waiters.
                Ordering::AcqRel,
                Ordering::Relaxed,
                |c| c.checked_sub(1),
            );
            match released {
                Err(_) => None,
                Ok(1) => Some(waiters.take_all()),
                Ok(_) => Some(WaiterQueue::default()),
            }
        };
        let Some(waiters) = waiters else {
            panic!("scheduler: negative WaitGroup counter");
        };
        waiters.notify_all();
    }

    fn wait(&self) {
        if self.count() != 0 {
            select_one(&mut WaitOp::new(self));
        }
    }

    fn count(&self) -> usize {
        // Acquire as in wait_group.rs: pairs with the `done`s' Release.
        self.inner.count.load(Ordering::Acquire)
    }
}

struct WaitOp<'a> {
    group: &'a Inner,
    registered: Option<std::sync::Arc<Waiter>>,
}

impl<'a> WaitOp<'a> {
    fn new(group: &'a WaitGroup) -> WaitOp<'a> {
        WaitOp {
            group: &group.inner,
            registered: None,
        }
    }

    fn try_complete(&mut self, _queue: &mut WaiterQueue) -> bool {
        // Acquire as in wait_group.rs: as in `count`.
        self.group.count.load(Ordering::Acquire) == 0
    }

    fn enqueue(&mut self, queue: &mut WaiterQueue, waiter: &std::sync::Arc<Waiter>, token: usize) {
        queue.push(waiter, token);
        self.registered = Some(waiter.clone());
    }

    fn withdraw(&mut self, queue: &mut WaiterQueue) {
        if let Some(waiter) = self.registered.take() {
            queue.withdraw(&waiter);
        }
    }

    fn collect(&mut self) {
        self.registered = None;
    }
}

/// `select_one(op, Mode::Block)` for a `WaitOp`: the lock is the group's waiter lock.
fn select_one(op: &mut WaitOp<'_>) -> bool {
    let mut queue = op.group.waiters.lock().unwrap();
    if op.try_complete(&mut queue) {
        return true;
    }
    let waiter = Waiter::for_thread(BlockKind::Other);
    op.enqueue(&mut queue, &waiter, 0);
    drop(queue);
    let won = waiter.wait_thread_until(None) == Some(0);
    if won {
        op.collect();
    } else {
        let mut queue = op.group.waiters.lock().unwrap();
        op.withdraw(&mut queue);
    }
    won
}

/// Two `done`s race a `wait`: it returns only after both, sees both callers' writes, and is
/// woken by the last (a lost wake-up would leave it parked: a deadlock).
#[test]
fn last_done_releases_the_waiter() {
    check(|| {
        let wg = WaitGroup::new();
        wg.add(2);
        let cells: Vec<Arc<UnsafeCell<u32>>> =
            (0..2).map(|_| Arc::new(UnsafeCell::new(0))).collect();
        let doers: Vec<_> = cells
            .iter()
            .map(|cell| {
                let (wg, cell) = (wg.clone(), cell.clone());
                thread::spawn(move || {
                    // SAFETY: read by the waiter only after `wait` returns.
                    cell.with_mut(|p| unsafe { *p = 1 });
                    wg.done();
                })
            })
            .collect();
        wg.wait();
        assert_eq!(wg.count(), 0);
        for cell in &cells {
            // SAFETY: written before a `done` that `wait` waited for; loom checks the edge.
            assert_eq!(cell.with(|p| unsafe { *p }), 1);
        }
        for doer in doers {
            doer.join().unwrap();
        }
    });
}

/// Reuse: a waiter that saw zero, returned, added one and waits again is released by the new
/// `done`, not by a late part of the `done` that released it the first time.
#[test]
fn done_does_not_release_a_later_wait() {
    check(|| {
        let wg = WaitGroup::new();
        wg.add(1);
        let first = {
            let wg = wg.clone();
            thread::spawn(move || wg.done())
        };
        wg.wait();
        wg.add(1);
        let cell = Arc::new(UnsafeCell::new(0));
        let second = {
            let (wg, cell) = (wg.clone(), cell.clone());
            thread::spawn(move || {
                // SAFETY: read by the waiter only after its second `wait` returns.
                cell.with_mut(|p| unsafe { *p = 1 });
                wg.done();
            })
        };
        wg.wait();
        assert_eq!(wg.count(), 0, "released by the second done");
        // SAFETY: written before the `done` that the second `wait` waited for.
        assert_eq!(cell.with(|p| unsafe { *p }), 1);
        first.join().unwrap();
        second.join().unwrap();
    });
}
