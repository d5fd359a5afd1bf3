//! The blocking pool: plain OS threads for work that blocks its thread, so that it does not
//! block a worker and every goroutine queued there.
//!
//! [`spawn`] wraps the closure in a `BlockingTask` (`job.rs`), which is both the job the pool
//! runs and the [`Joinable`](crate::goroutine::task::Joinable) behind the
//! [`JoinHandle`](crate::JoinHandle) the caller gets: a goroutine that joins it parks through
//! the same `JoinState` and `Waiter` as for a goroutine, and the pool thread that finishes
//! the job wakes it.
//!
//! # The pool
//!
//! One [`Pool`] per runtime, in [`Shared`](crate::sched::Shared). Its state is one parking_lot
//! mutex and two condvars; nothing here is lock-free, since a job costs a thread hand-off
//! anyway.
//!
//! - **Elastic.** A job goes to the FIFO queue. If a thread is idle, the submitter claims it
//!   (`idle -= 1`, `wakes += 1`) and notifies `work`; otherwise, below
//!   [`Config::max_threads`], it starts a thread (named `scheduler-blocking`) under the lock.
//!   Claiming keeps a burst of jobs from all counting on the same idle thread.
//! - **Back pressure.** At the maximum, jobs wait in the queue in submission order; a thread
//!   that finishes a job takes the next before it idles.
//! - **Retiring.** A thread idle for [`Config::keep_alive`] without being claimed retires: it
//!   moves its own `JoinHandle` from `threads` to `retired` and exits. It first joins the
//!   threads that retired before it, so `retired` stays short; the rest are joined by the next
//!   deadlock check or by the shutdown.
//! - **Shutdown** ([`Pool::close_and_join`]) comes after every goroutine has finished, so no
//!   job can be submitted any more (only goroutines and `Runtime` handles submit). It waits for
//!   the running and queued jobs, up to the shutdown's deadline; past it, queued jobs are
//!   dropped unstarted and their `join` returns [`Cancelled`](crate::Cancelled). A running job
//!   cannot be interrupted: the shutdown joins its thread when it returns. So no pool thread
//!   outlives its runtime, except in a runtime dropped by its own goroutine or blocking job
//!   (detached), whose pool [`close`](Pool::close)s when its last goroutine finishes and whose
//!   threads exit on their own, like its workers.
//!
//! # Deadlock detection
//!
//! `block_on` counts the threads of the process (`sched/deadlock.rs`). An idle pool thread can
//! only run a job that someone submits, and only a goroutine or another thread can submit, so
//! while no job runs or waits, the pool's threads are counted as expected ones
//! ([`Pool::quiet`]). Two rules keep that check from missing a deadlock: a thread that
//! finishes the last running job, and a thread that retires (after joining older retirees),
//! tell the watchers to look again if every worker sleeps (`poke`); and the check joins the
//! retired threads before it counts, so a thread that has left the pool has also left the
//! process.
//!
//! Invariants (under the lock): `idle + wakes <= threads.len()`; a job is queued only while
//! at least one thread exists that will take it; no thread retires while the queue holds a
//! job or once `closed` is set.

mod job;
mod pool;

pub(crate) use job::spawn;
pub(crate) use pool::{Config, Pool};
