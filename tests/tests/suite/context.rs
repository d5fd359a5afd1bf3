//! Contexts: the cancellation tree, deadlines, `CancelHandle` drops, `done()`, and every
//! `*_ctx` call returning the context's error on time (deadline) and promptly (cancel from
//! another goroutine or a plain thread).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use scheduler::chan::{self, RecvCtxError, RecvError, SendCtxError, TryRecvError};
use scheduler::context::{CancelHandle, Context, ContextError};
use scheduler::sync::Semaphore;
use scheduler::{JoinHandle, WaitGroup, time};
use scheduler_tests::{
    HANG_LIMIT, PROMPT_LIMIT, SPIN_LIMIT, runtime, spin_until, watchdog, yield_until,
};

/// Whether `ctx` has ended, by both of its reports, which must agree.
fn ended(ctx: &Context) -> Option<ContextError> {
    let err = ctx.err();
    let done_closed = match ctx.done().try_recv() {
        Err(TryRecvError::Disconnected) => true,
        Err(TryRecvError::Empty) => false,
        Ok(()) => panic!("nothing is ever sent on done()"),
    };
    assert_eq!(
        err.is_some(),
        done_closed,
        "err() = {err:?} but done() closed = {done_closed}"
    );
    assert_eq!(ctx.is_done(), err.is_some());
    err
}

#[test]
fn cancelling_a_parent_cancels_its_subtree_and_nothing_else() {
    //        root
    //       /    \
    //      a      s
    //     / \
    //    b   a2
    //    |
    //    c
    let root = Context::background();
    let (a, ha) = root.with_cancel();
    let (s, _hs) = root.with_cancel();
    let (b, hb) = a.with_cancel();
    let (a2, _ha2) = a.with_cancel();
    let (c, _hc) = b.with_cancel();
    for ctx in [&root, &a, &s, &b, &a2, &c] {
        assert_eq!(ended(ctx), None);
    }

    hb.cancel();
    assert_eq!(ended(&b), Some(ContextError::Canceled));
    assert_eq!(ended(&c), Some(ContextError::Canceled), "a child of b");
    for ctx in [&root, &a, &s, &a2] {
        assert_eq!(ended(ctx), None, "cancelling b reached beyond its subtree");
    }

    ha.cancel();
    ha.cancel(); // idempotent
    assert_eq!(ended(&a), Some(ContextError::Canceled));
    assert_eq!(ended(&a2), Some(ContextError::Canceled));
    assert_eq!(ended(&root), None, "a child never cancels its parent");
    assert_eq!(ended(&s), None, "nor its parent's other children");

    // A child made from an ended context is born ended.
    let (late, _hl) = a.with_cancel();
    assert_eq!(ended(&late), Some(ContextError::Canceled));
}

#[test]
fn cancellation_reaches_a_deep_and_wide_tree() {
    let root = Context::background();
    let (top, handle) = root.with_cancel();
    let mut handles: Vec<CancelHandle> = Vec::new();
    let mut leaves = Vec::new();
    let mut level = vec![top.clone()];
    for _ in 0..4 {
        let mut next = Vec::new();
        for ctx in &level {
            for _ in 0..4 {
                let (child, h) = ctx.with_cancel();
                handles.push(h);
                next.push(child);
            }
        }
        level = next;
        leaves.extend(level.iter().cloned());
    }
    assert_eq!(leaves.len(), 4 + 16 + 64 + 256);
    assert!(leaves.iter().all(|c| ended(c).is_none()));
    drop(handle);
    assert!(
        leaves
            .iter()
            .all(|c| ended(c) == Some(ContextError::Canceled))
    );
    assert_eq!(ended(&root), None);
}

#[test]
fn dropping_a_cancel_handle_cancels_its_context() {
    let (ctx, handle) = Context::background().with_cancel();
    let (child, _child_handle) = ctx.with_cancel();
    assert_eq!(ended(&ctx), None);
    drop(handle);
    assert_eq!(ended(&ctx), Some(ContextError::Canceled));
    assert_eq!(ended(&child), Some(ContextError::Canceled));

    // `let (ctx, _) = ...` drops the handle at once.
    let (gone, _) = Context::background().with_timeout(Duration::from_secs(3600));
    assert_eq!(ended(&gone), Some(ContextError::Canceled));
}

#[test]
fn with_timeout_ends_with_deadline_exceeded_after_the_timeout() {
    const TIMEOUT: Duration = Duration::from_millis(30);
    watchdog("with_timeout", HANG_LIMIT, || {
        let check = || {
            let start = Instant::now();
            let (ctx, _handle) = Context::background().with_timeout(TIMEOUT);
            let deadline = ctx.deadline().expect("a timeout sets a deadline");
            assert!(deadline >= start + TIMEOUT && deadline <= Instant::now() + TIMEOUT);
            assert_eq!(ended(&ctx), None);
            assert_eq!(ctx.done().recv(), Err(RecvError), "done() closes");
            assert!(Instant::now() >= deadline, "ended before its deadline");
            assert!(start.elapsed() < PROMPT_LIMIT);
            assert_eq!(ended(&ctx), Some(ContextError::DeadlineExceeded));
        };
        check(); // a plain thread: the process-wide timer thread fires it
        runtime(2).block_on(check);
    });
}

#[test]
fn a_childs_deadline_is_never_later_than_its_parents() {
    watchdog("deadline inheritance", HANG_LIMIT, || {
        let now = Instant::now();
        let root = Context::background();
        assert_eq!(root.deadline(), None);
        assert_eq!(root.with_cancel().0.deadline(), None);

        let (parent, _hp) = root.with_deadline(now + Duration::from_millis(60));
        let parent_deadline = parent.deadline().unwrap();
        let (later, _h1) = parent.with_timeout(Duration::from_secs(3600));
        assert_eq!(
            later.deadline(),
            Some(parent_deadline),
            "capped by the parent"
        );
        let (plain, _h2) = parent.with_cancel();
        assert_eq!(plain.deadline(), Some(parent_deadline), "inherited");
        let (sooner, _h3) = parent.with_deadline(now + Duration::from_millis(10));
        assert_eq!(sooner.deadline(), Some(now + Duration::from_millis(10)));

        // The sooner child ends alone; then the parent's deadline ends the rest.
        assert_eq!(sooner.done().recv(), Err(RecvError));
        assert_eq!(ended(&sooner), Some(ContextError::DeadlineExceeded));
        assert_eq!(
            ended(&parent),
            None,
            "a child's deadline does not end the parent"
        );
        assert_eq!(later.done().recv(), Err(RecvError));
        assert!(Instant::now() >= parent_deadline);
        for ctx in [&parent, &later, &plain] {
            assert_eq!(ended(ctx), Some(ContextError::DeadlineExceeded));
        }

        // A deadline that has passed ends the context at once.
        let (past, _h4) = root.with_deadline(now);
        assert_eq!(ended(&past), Some(ContextError::DeadlineExceeded));
    });
}

#[test]
fn err_reports_a_passed_deadline_even_before_its_timer_fires() {
    // On one worker, a goroutine that blocks its thread keeps the worker from firing the
    // timer it set; the deadline has still passed, and err() and done() must say so.
    watchdog("deadline without its timer", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let (ctx, _handle) = Context::background().with_timeout(Duration::from_millis(10));
            // Blocking the thread (not parking) is the point: the worker cannot fire timers.
            thread::sleep(Duration::from_millis(30));
            assert_eq!(ended(&ctx), Some(ContextError::DeadlineExceeded));
        });
    });
}

#[test]
fn context_made_in_a_runtime_still_expires_after_the_runtime_is_gone() {
    watchdog("context outlives runtime", HANG_LIMIT, || {
        let rt = runtime(1);
        let (ctx, handle) =
            rt.block_on(|| Context::background().with_timeout(Duration::from_millis(50)));
        drop(rt);
        assert_eq!(
            ctx.done().recv_timeout(PROMPT_LIMIT),
            Err(chan::RecvTimeoutError::Disconnected)
        );
        assert_eq!(ended(&ctx), Some(ContextError::DeadlineExceeded));
        drop(handle);
        assert_eq!(
            ctx.err(),
            Some(ContextError::DeadlineExceeded),
            "the first end stays"
        );
    });
}

/// Something blocking that a context can cut short: each variant runs one `*_ctx` call that
/// would otherwise block for an hour or for ever, and returns its context error.
#[derive(Clone, Copy, Debug)]
enum Op {
    Recv,
    Send,
    Sleep,
    WaitGroup,
    Semaphore,
}

const OPS: [Op; 5] = [Op::Recv, Op::Send, Op::Sleep, Op::WaitGroup, Op::Semaphore];

impl Op {
    /// Runs the call under `ctx`; before it blocks, sets `about_to_block`.
    fn run(self, ctx: &Context, about_to_block: &AtomicBool) -> ContextError {
        match self {
            Op::Recv => {
                let (_tx, rx) = chan::bounded::<u32>(0);
                about_to_block.store(true, Ordering::SeqCst);
                match rx.recv_ctx(ctx) {
                    Err(RecvCtxError::Context(err)) => err,
                    other => panic!("recv_ctx: {other:?}"),
                }
            }
            Op::Send => {
                let (tx, _rx) = chan::bounded::<String>(0);
                about_to_block.store(true, Ordering::SeqCst);
                match tx.send_ctx("value".into(), ctx) {
                    Err(SendCtxError::Context(err, value)) => {
                        assert_eq!(value, "value", "send_ctx gives the value back");
                        err
                    }
                    other => panic!("send_ctx: {other:?}"),
                }
            }
            Op::Sleep => {
                about_to_block.store(true, Ordering::SeqCst);
                time::sleep_ctx(Duration::from_secs(3600), ctx).expect_err("sleep_ctx")
            }
            Op::WaitGroup => {
                let wg = WaitGroup::new();
                wg.add(1);
                about_to_block.store(true, Ordering::SeqCst);
                let err = wg.wait_ctx(ctx).expect_err("wait_ctx");
                wg.done();
                err
            }
            Op::Semaphore => {
                let sem = Semaphore::new(1);
                let held = sem.acquire();
                about_to_block.store(true, Ordering::SeqCst);
                let err = sem.acquire_ctx(ctx).expect_err("acquire_ctx");
                drop(held);
                assert_eq!(
                    sem.available_permits(),
                    1,
                    "the failed acquire took a permit"
                );
                err
            }
        }
    }
}

#[test]
fn ctx_calls_return_deadline_exceeded_on_time() {
    const TIMEOUT: Duration = Duration::from_millis(40);
    watchdog("*_ctx deadlines", HANG_LIMIT, || {
        let check = move |op: Op| {
            let start = Instant::now();
            let (ctx, _handle) = Context::background().with_timeout(TIMEOUT);
            let err = op.run(&ctx, &AtomicBool::new(false));
            let took = start.elapsed();
            assert_eq!(err, ContextError::DeadlineExceeded, "{op:?}");
            assert!(took >= TIMEOUT, "{op:?} returned after {took:?}");
            assert!(took < PROMPT_LIMIT, "{op:?} returned after {took:?}");
        };
        let rt = runtime(2);
        let in_goroutines: Vec<JoinHandle<()>> =
            OPS.iter().map(|&op| rt.spawn(move || check(op))).collect();
        let in_threads: Vec<thread::JoinHandle<()>> = OPS
            .iter()
            .map(|&op| thread::spawn(move || check(op)))
            .collect();
        for h in in_goroutines {
            h.join().unwrap();
        }
        for t in in_threads {
            t.join().unwrap();
        }
    });
}

#[test]
fn ctx_calls_return_canceled_promptly_when_another_goroutine_cancels() {
    // One worker: the canceller sees "about to block" only once the call has parked.
    watchdog("*_ctx cancel from a goroutine", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            for op in OPS {
                let (ctx, handle) = Context::background().with_cancel();
                let about = Arc::new(AtomicBool::new(false));
                let blocked = {
                    let about = about.clone();
                    scheduler::spawn(move || {
                        let start = Instant::now();
                        (op.run(&ctx, &about), start.elapsed())
                    })
                };
                yield_until("the call blocks", SPIN_LIMIT, || {
                    about.load(Ordering::SeqCst)
                });
                assert!(!blocked.is_finished(), "{op:?} returned before the cancel");
                handle.cancel();
                let (err, took) = blocked.join().unwrap();
                assert_eq!(err, ContextError::Canceled, "{op:?}");
                assert!(took < PROMPT_LIMIT, "{op:?} took {took:?}");
            }
        });
    });
}

#[test]
fn ctx_calls_return_canceled_promptly_when_a_plain_thread_cancels() {
    watchdog("*_ctx cancel from a thread", HANG_LIMIT, || {
        let rt = runtime(2);
        for op in OPS {
            let (ctx, handle) = Context::background().with_cancel();
            let about = Arc::new(AtomicBool::new(false));
            let blocked = {
                let about = about.clone();
                rt.spawn(move || {
                    let start = Instant::now();
                    (op.run(&ctx, &about), start.elapsed())
                })
            };
            spin_until("the call is about to block", SPIN_LIMIT, || {
                about.load(Ordering::SeqCst)
            });
            // Dropping the handle is the cancel.
            drop(handle);
            let (err, took) = blocked.join().unwrap();
            assert_eq!(err, ContextError::Canceled, "{op:?}");
            assert!(took < PROMPT_LIMIT, "{op:?} took {took:?}");
        }
    });
}

#[test]
fn ctx_calls_on_an_ended_context_fail_at_once_and_take_nothing() {
    watchdog("*_ctx on an ended context", HANG_LIMIT, || {
        runtime(1).block_on(|| {
            let (ctx, handle) = Context::background().with_cancel();
            handle.cancel();
            // Even where the operation could complete, an ended context wins and nothing is
            // consumed.
            let (tx, rx) = chan::bounded::<u32>(1);
            tx.send(1).unwrap();
            assert_eq!(
                rx.recv_ctx(&ctx),
                Err(RecvCtxError::Context(ContextError::Canceled))
            );
            assert_eq!(rx.len(), 1, "recv_ctx took the value anyway");
            assert_eq!(rx.recv(), Ok(1));
            let err = tx.send_ctx(2, &ctx).unwrap_err();
            assert_eq!(err.into_inner(), 2);
            assert!(rx.is_empty(), "send_ctx sent anyway");
            let sem = Semaphore::new(1);
            assert_eq!(sem.acquire_ctx(&ctx).unwrap_err(), ContextError::Canceled);
            assert_eq!(sem.available_permits(), 1);
            assert_eq!(WaitGroup::new().wait_ctx(&ctx), Err(ContextError::Canceled));
            assert_eq!(
                time::sleep_ctx(Duration::ZERO, &ctx),
                Err(ContextError::Canceled)
            );
        });
    });
}

#[test]
fn ctx_calls_succeed_when_the_operation_completes_first() {
    watchdog("*_ctx success", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let (ctx, _handle) = Context::background().with_timeout(Duration::from_secs(3600));
            let (tx, rx) = chan::bounded::<u32>(0);
            let sender = scheduler::spawn(move || tx.send(5));
            assert_eq!(rx.recv_ctx(&ctx), Ok(5));
            sender.join().unwrap().unwrap();

            let (tx, rx) = chan::bounded::<u32>(0);
            let receiver = scheduler::spawn(move || rx.recv());
            tx.send_ctx(6, &ctx).unwrap();
            assert_eq!(receiver.join().unwrap(), Ok(6));

            let start = Instant::now();
            assert_eq!(time::sleep_ctx(Duration::from_millis(10), &ctx), Ok(()));
            assert!(start.elapsed() >= Duration::from_millis(10));

            let wg = WaitGroup::new();
            drop(wg.go(scheduler::yield_now));
            assert_eq!(wg.wait_ctx(&ctx), Ok(()));

            let sem = Arc::new(Semaphore::new(1));
            let held = sem.acquire();
            let s = sem.clone();
            let acquirer = scheduler::spawn(move || {
                let (ctx, _h) = Context::background().with_timeout(Duration::from_secs(3600));
                s.acquire_ctx(&ctx).map(drop)
            });
            drop(held);
            assert_eq!(acquirer.join().unwrap(), Ok(()));
            assert_eq!(sem.available_permits(), 1);
            assert_eq!(ctx.err(), None);
        });
    });
}

#[test]
fn cancelling_a_parent_wakes_a_thousand_goroutines_blocked_on_its_children() {
    const BLOCKED: usize = 1_000;
    watchdog("mass cancel", HANG_LIMIT, || {
        let rt = runtime(2);
        let (parent, handle) = Context::background().with_cancel();
        let (_tx, rx) = chan::bounded::<u32>(0);
        let started = WaitGroup::new();
        started.add(BLOCKED);
        let blocked: Vec<JoinHandle<Result<u32, RecvCtxError>>> = (0..BLOCKED)
            .map(|i| {
                let (parent, rx, started) = (parent.clone(), rx.clone(), started.clone());
                rt.spawn(move || {
                    let (ctx, _h) = if i % 2 == 0 {
                        parent.with_cancel()
                    } else {
                        parent.with_timeout(Duration::from_secs(3600))
                    };
                    started.done();
                    if i % 3 == 0 {
                        // Wait on done() through select instead.
                        scheduler::select! {
                            recv(rx) -> v => v.map_err(|_| RecvCtxError::Disconnected),
                            recv(ctx.done()) -> _ => Err(RecvCtxError::Context(ctx.err().unwrap())),
                        }
                    } else {
                        rx.recv_ctx(&ctx)
                    }
                })
            })
            .collect();
        started.wait();
        handle.cancel();
        for h in blocked {
            assert_eq!(
                h.join().unwrap(),
                Err(RecvCtxError::Context(ContextError::Canceled))
            );
        }
    });
}
