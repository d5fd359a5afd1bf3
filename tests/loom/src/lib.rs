//! Loom models of the scheduler's wake-up protocols.
//!
//! Stress tests only sample interleavings; [loom](https://docs.rs/loom) explores all of them
//! (up to a bound on preemptions) under the C11 memory model, so a lost wakeup shows as a
//! deadlock, a missing happens-before edge as a data race on a `loom::cell::UnsafeCell`, and a
//! value delivered twice or not at all as a failed assertion.
//!
//! Goroutines run on corosensei stacks, which loom cannot run, so most protocols are modelled:
//! each model's module doc names the functions of the scheduler it mirrors, and every atomic
//! operation in it has the same ordering, in the same sequence, as the real one. Five files are
//! compiled here unchanged instead, importing their atomics, threads, lock and
//! `parking_lot_core` from [`shim`] under `cfg(loom)`: `sched/idle.rs` (the searching/unparked
//! bookkeeping), `sched/parker.rs` (a worker's sleep/wake word), `goroutine/state.rs` (a
//! goroutine's state word: the worker's park CAS and the waker's CAS), and the wait kernel's
//! `wait/waiter.rs` (the one-CAS end of every wait, `WaiterQueue`, and a thread's wait) with
//! `wait/block_kind.rs`. Changing an ordering in those files can fail a model.
//!
//! | model | protocol |
//! |---|---|
//! | [`park_wake`] | goroutine state word (`ACTIVE`/`NOTIFIED`/`PARKED`), the worker's park CAS, `unpark`, the worker's `Parker` |
//! | [`idle_workers`] | `Idle`'s counters, notify_work, the searcher rules and the final look before a worker sleeps |
//! | [`wait_group`] | `WaitGroup::add`/`done`/`wait` |
//! | [`chan_handoff`] | a value handed to a blocked receiver (or taken from a blocked sender) that times out |
//! | [`join_state`] | `JoinState::complete` against `JoinState::wait` |
//!
//! Run them with
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p loom-models --release
//! ```
//!
//! Without `--cfg loom`, and outside its tests, this crate is empty. `LOOM_MAX_PREEMPTIONS=n`
//! explores deeper than the default bound of [`check`].
#![cfg(all(loom, test))]

pub(crate) mod shim;

#[path = "../../../scheduler/src/sched/idle.rs"]
pub(crate) mod idle;
#[path = "../../../scheduler/src/sched/parker.rs"]
pub(crate) mod parker;

#[path = "../../../scheduler/src/goroutine/state.rs"]
pub(crate) mod task_state;

pub(crate) mod goroutine;
pub(crate) mod queues;

// The real files hold more than the models use.
#[allow(dead_code)]
#[path = "../../../scheduler/src/wait/block_kind.rs"]
pub(crate) mod block_kind;
#[allow(dead_code)]
#[path = "../../../scheduler/src/wait/waiter.rs"]
pub(crate) mod waiter;

pub(crate) mod clock;

mod chan_handoff;
mod idle_workers;
mod io_edges;
mod join_state;
mod park_wake;
mod wait_group;

/// Explores every interleaving of `f` with at most `LOOM_MAX_PREEMPTIONS` (default
/// [`PREEMPTION_BOUND`]) preemptions per execution.
pub(crate) fn check(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(PREEMPTION_BOUND);
    }
    builder.check(f);
}

/// Each mutation that docs/design.md (section 20) says a model catches is caught within this
/// bound, and at this bound the whole set runs in seconds.
pub(crate) const PREEMPTION_BOUND: usize = 3;
