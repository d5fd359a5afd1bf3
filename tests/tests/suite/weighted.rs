//! The weighted semaphore (Go's `x/sync/semaphore.Weighted`): requests of `n` permits served
//! in arrival order (a large request is not starved by small ones that arrive after it),
//! permits counted through drops, splits, merges and forgets, requests bigger than the
//! semaphore, owned permits moved into goroutines, and the bounded variants, from goroutines
//! and from plain threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use scheduler::context::{Context, ContextError};
use scheduler::sync::{OwnedSemaphorePermit, Semaphore};
use scheduler::{JoinHandle, WaitGroup};
use scheduler_tests::{
    HANG_LIMIT, PROMPT_LIMIT, SPIN_LIMIT, runtime, spin_until, watchdog, yield_times, yield_until,
};

/// A goroutine that asks for `n` permits of `sem`: `arrived` is set just before it blocks,
/// `served` once it holds them. It keeps them until `release` is set.
struct Request {
    arrived: Arc<AtomicBool>,
    served: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Request {
    /// Spawns the request and, on a runtime of one worker, returns once it has queued.
    fn queue(sem: &Arc<Semaphore>, n: usize) -> Request {
        let flags = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (sem, (arrived, served, release)) = (sem.clone(), flags.clone());
        let handle = scheduler::spawn(move || {
            arrived.store(true, Ordering::SeqCst);
            let permit = sem.acquire_many(n);
            assert_eq!(permit.num_permits(), n);
            served.store(true, Ordering::SeqCst);
            yield_until("the test lets the permits go", SPIN_LIMIT, || {
                release.load(Ordering::SeqCst)
            });
        });
        let (arrived, served, release) = flags;
        // One worker: a goroutine that said it arrives and then blocks has parked by the time
        // this goroutine runs again.
        yield_until("the request queues", SPIN_LIMIT, || {
            arrived.load(Ordering::SeqCst)
        });
        Request {
            arrived,
            served,
            release,
            handle,
        }
    }

    fn served(&self) -> bool {
        self.served.load(Ordering::SeqCst)
    }

    fn finish(self) {
        assert!(self.arrived.load(Ordering::SeqCst));
        self.release.store(true, Ordering::SeqCst);
        self.handle.join().unwrap();
    }
}

#[test]
fn weighted_large_request_queued_first_is_served_before_later_small_ones() {
    watchdog("weighted FIFO", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let sem = Arc::new(Semaphore::new(10));
            let mut held = sem.acquire_many(8); // 2 left
            let big = Request::queue(&sem, 5);
            let small = Request::queue(&sem, 1);
            yield_times(10);
            assert!(!big.served(), "5 permits are not free");
            assert!(
                !small.served(),
                "a small request that fits waits behind the large one"
            );
            assert!(sem.try_acquire().is_none(), "a newcomer does not overtake");
            assert_eq!(sem.available_permits(), 2);

            drop(held.split(3).unwrap()); // 5 free: exactly the large request
            yield_until("the large request is served", SPIN_LIMIT, || big.served());
            assert_eq!(sem.available_permits(), 0);
            yield_times(10);
            assert!(!small.served(), "nothing was left for the small one");

            drop(held); // 5 more
            yield_until("the small request is served", SPIN_LIMIT, || small.served());
            assert_eq!(sem.available_permits(), 4);
            big.finish();
            small.finish();
            assert_eq!(sem.available_permits(), 10, "every permit came back");
        });
    });
}

#[test]
fn weighted_large_request_leaving_the_front_lets_the_small_ones_through() {
    watchdog("weighted withdrawal", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let sem = Arc::new(Semaphore::new(4));
            let held = sem.acquire_many(3); // 1 left
            let (ctx, cancel) = Context::background().with_cancel();
            let s = sem.clone();
            let big = scheduler::spawn(move || s.acquire_many_ctx(4, &ctx).map(|p| p.forget()));
            yield_times(5);
            let small = Request::queue(&sem, 1);
            yield_times(5);
            assert!(!small.served(), "it waits behind the large request");
            cancel.cancel();
            assert_eq!(big.join().unwrap(), Err(ContextError::Canceled));
            yield_until(
                "the small request is served once the large one left",
                SPIN_LIMIT,
                || small.served(),
            );
            small.finish();
            drop(held);
            assert_eq!(
                sem.available_permits(),
                4,
                "the cancelled request took none"
            );
        });
    });
}

#[test]
fn weighted_fifo_holds_for_plain_threads() {
    watchdog("weighted FIFO on threads", HANG_LIMIT, || {
        let sem = Arc::new(Semaphore::new(6));
        let held = sem.acquire_many(4); // 2 left
        let s = sem.clone();
        let big = thread::spawn(move || s.acquire_many(3).num_permits());
        // Queued once a permit that is free can no longer be taken by a newcomer.
        spin_until("the large request queues", SPIN_LIMIT, || {
            sem.try_acquire().is_none()
        });
        assert_eq!(sem.available_permits(), 2);
        let start = Instant::now();
        assert!(
            sem.acquire_many_timeout(1, Duration::from_millis(20))
                .is_none(),
            "a request that fits still waits its turn"
        );
        assert!(start.elapsed() >= Duration::from_millis(20));
        drop(held);
        assert_eq!(big.join().unwrap(), 3);
        assert_eq!(sem.available_permits(), 6);
    });
}

#[test]
fn weighted_permits_are_counted_through_drop_split_merge_and_forget() {
    let sem = Semaphore::new(10);
    let mut a = sem.acquire_many(4);
    assert_eq!((a.num_permits(), sem.available_permits()), (4, 6));
    let b = sem.try_acquire_many(6).expect("exactly the rest");
    assert!(sem.try_acquire_many(1).is_none());
    assert!(sem.try_acquire_many(0).is_some(), "nothing is always free");
    let c = a.split(3).unwrap();
    assert_eq!((a.num_permits(), c.num_permits()), (1, 3));
    assert!(a.split(2).is_none(), "a holds only one");
    drop(c);
    assert_eq!(sem.available_permits(), 3, "a split part returns its own");
    a.merge(b);
    assert_eq!(a.num_permits(), 7);
    a.split(2).unwrap().forget();
    assert_eq!(
        sem.available_permits(),
        3,
        "forgotten permits are not returned"
    );
    drop(a);
    assert_eq!(
        sem.available_permits(),
        8,
        "the semaphore has two fewer for good"
    );
    assert!(sem.try_acquire_many(9).is_none());
    sem.add_permits(2);
    assert_eq!(sem.acquire_many(10).num_permits(), 10);
}

#[test]
fn weighted_merging_permits_of_different_semaphores_panics() {
    let (one, two) = (Semaphore::new(1), Semaphore::new(1));
    let mut a = one.acquire();
    let message = scheduler_tests::expect_panic(|| a.merge(two.acquire()));
    assert!(message.contains("different semaphores"), "{message}");
    assert_eq!(two.available_permits(), 1, "the other permit went back");
}

#[test]
fn weighted_request_bigger_than_the_semaphore_waits_aside_without_blocking_others() {
    watchdog("weighted oversize", HANG_LIMIT, || {
        let check = || {
            let sem = Arc::new(Semaphore::new(3));
            assert!(sem.try_acquire_many(4).is_none());
            let start = Instant::now();
            assert!(
                sem.acquire_many_timeout(4, Duration::from_millis(20))
                    .is_none()
            );
            let waited = start.elapsed();
            assert!(
                waited >= Duration::from_millis(20) && waited < PROMPT_LIMIT,
                "waited {waited:?}"
            );
            let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(20));
            assert_eq!(
                sem.acquire_many_ctx(4, &ctx).unwrap_err(),
                ContextError::DeadlineExceeded
            );

            // One waits for 5; meanwhile smaller requests go through untouched.
            let s = sem.clone();
            let waiting = thread::spawn(move || s.acquire_many(5).num_permits());
            for _ in 0..3 {
                let permit = sem
                    .acquire_many_timeout(3, PROMPT_LIMIT)
                    .expect("not held back by the oversize request");
                drop(permit);
            }
            sem.add_permits(2); // now 5: it queues and is served
            assert_eq!(waiting.join().unwrap(), 5);
            assert_eq!(sem.available_permits(), 5);
        };
        check(); // a plain thread
        runtime(2).block_on(check);
    });
}

#[test]
fn weighted_ctx_and_timeout_variants_give_up_without_taking_permits() {
    watchdog("weighted ctx", HANG_LIMIT, || {
        let rt = runtime(2);
        let sem = Arc::new(Semaphore::new(4));
        let held = sem.acquire_many(2);
        let (ctx, cancel) = Context::background().with_cancel();
        let s = sem.clone();
        let ctx2 = ctx.clone();
        let waiter = rt.spawn(move || s.acquire_many_owned_ctx(3, &ctx2).map(|p| p.num_permits()));
        spin_until("the request queues", SPIN_LIMIT, || {
            sem.try_acquire().is_none()
        });
        cancel.cancel(); // from a plain thread
        assert_eq!(waiter.join().unwrap(), Err(ContextError::Canceled));
        assert_eq!(
            sem.acquire_many_ctx(1, &ctx).unwrap_err(),
            ContextError::Canceled
        );
        assert_eq!(sem.available_permits(), 2);

        let deadline = Instant::now() + Duration::from_millis(10);
        assert!(sem.acquire_many_deadline(3, deadline).is_none());
        assert!(Instant::now() >= deadline);
        assert!(sem.acquire_many_owned_deadline(3, deadline).is_none());
        assert!(
            sem.acquire_many_owned_timeout(3, Duration::from_millis(5))
                .is_none()
        );
        drop(held);
        let (ctx, _keep) = Context::background().with_cancel();
        assert_eq!(sem.acquire_many_ctx(4, &ctx).unwrap().num_permits(), 4);
        assert_eq!(sem.available_permits(), 4);
    });
}

#[test]
fn owned_permits_moved_into_goroutines_bound_their_concurrency() {
    const LIMIT: usize = 3;
    fn assert_send_static<T: Send + 'static>() {}
    assert_send_static::<OwnedSemaphorePermit>();
    watchdog("owned permits", HANG_LIMIT, || {
        let rt = runtime(4);
        let sem = Arc::new(Semaphore::new(LIMIT));
        let inside = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (s, i, p) = (sem.clone(), inside.clone(), peak.clone());
        rt.block_on(move || {
            let wg = WaitGroup::new();
            for _ in 0..40 {
                let permit = s.acquire_owned(); // taken before the goroutine exists
                let (inside, peak) = (i.clone(), p.clone());
                wg.go(move || {
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    yield_times(3);
                    inside.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                });
            }
            wg.wait();
        });
        let peak = peak.load(Ordering::SeqCst);
        assert!((1..=LIMIT).contains(&peak), "{peak} at once, limit {LIMIT}");
        assert_eq!(sem.available_permits(), LIMIT, "a permit leaked");
    });
}

#[test]
fn weighted_units_in_use_never_exceed_the_size_under_contention() {
    // Goroutines take 1 to 4 units of 5, some with tiny time-outs that race the hand-overs:
    // the units held at once never exceed 5, and every permit comes back.
    const SIZE: usize = 5;
    watchdog("weighted contention", HANG_LIMIT, || {
        let rt = runtime(3);
        let sem = Arc::new(Semaphore::new(SIZE));
        let used = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(AtomicUsize::new(0));
        let handles: Vec<JoinHandle<()>> = (0..12usize)
            .map(|g| {
                let (sem, used, peak, served) =
                    (sem.clone(), used.clone(), peak.clone(), served.clone());
                rt.spawn(move || {
                    for i in 0..200usize {
                        let n = 1 + (g + i) % 4;
                        let permit = if i % 3 == 0 {
                            match sem.acquire_many_owned_timeout(n, Duration::from_micros(20)) {
                                Some(permit) => permit,
                                None => continue,
                            }
                        } else {
                            sem.acquire_many_owned(n)
                        };
                        let now = used.fetch_add(n, Ordering::SeqCst) + n;
                        peak.fetch_max(now, Ordering::SeqCst);
                        if i % 2 == 0 {
                            scheduler::yield_now();
                        }
                        used.fetch_sub(n, Ordering::SeqCst);
                        served.fetch_add(1, Ordering::Relaxed);
                        drop(permit);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak <= SIZE, "{peak} units in use at once, size {SIZE}");
        assert!(served.load(Ordering::Relaxed) > 0);
        assert_eq!(sem.available_permits(), SIZE, "permits lost or made up");
        assert!(sem.try_acquire_many(SIZE).is_some());
    });
}

#[test]
fn weighted_request_bigger_than_the_semaphore_is_not_queued() {
    watchdog("weighted oversize, not queued", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let sem = Arc::new(Semaphore::new(3));
            let big = Request::queue(&sem, 4); // parked, waiting for the semaphore to grow
            // `try_acquire_many` refuses while anyone is queued: nobody is.
            let all = sem
                .try_acquire_many(3)
                .expect("the oversize request is not queued");
            drop(all);
            yield_times(5);
            assert!(!big.served());
            sem.add_permits(1);
            yield_until("the grown semaphore serves it", SPIN_LIMIT, || big.served());
            assert_eq!(sem.available_permits(), 0);
            big.finish();
            assert_eq!(sem.available_permits(), 4);
        });
    });
}
