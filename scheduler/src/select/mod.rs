//! `select`: wait on several operations at once and complete exactly one of them.
//!
//! The driver follows Go's `selectgo`. It takes the locks of every arm in address order (each
//! lock once), then
//!
//! 1. looks at the arms in a random order and completes the first that is ready, so that when
//!    several are ready each is chosen with equal probability;
//! 2. if none is ready and the caller may wait, registers one [`Waiter`] with every arm, each
//!    with its own token (the arm's index), and releases the locks;
//! 3. sleeps until one arm's counterparty ends the wait with that arm's token (or the deadline
//!    passes), since a wait ends exactly once, no other arm can complete;
//! 4. takes the locks again and withdraws the other arms' registrations, collecting the
//!    winner's outcome. A one-arm select that won needs no lock for this.
//!
//! Holding every lock during steps 1 and 2 is what makes them atomic: no arm can become ready
//! unnoticed between the look and the registration, and nobody can end the wait while it is
//! being registered. Plain `send`, `recv` and their time-outs are a `select` of one arm.

mod join;
mod macros;

pub(crate) use join::JoinOp;
pub use join::JoinTimeoutError;

use std::cell::Cell;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::sched::wait::WaitHere;
use crate::wait::lock::RawLock;
use crate::wait::waiter::Waiter;
use crate::wait::{BlockKind, Site};

/// How long [`select`] may wait when no arm is ready.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// Until an arm is ready.
    Block,
    /// Not at all (a `default` arm).
    NonBlock,
    /// Until the deadline (a `default(timeout)` arm).
    Until(Instant),
}

impl Mode {
    /// A `default(timeout)` arm's mode.
    pub fn after(timeout: Duration) -> Mode {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => Mode::Until(deadline),
            None => Mode::Block,
        }
    }
}

pub(crate) mod sealed {
    /// Keeps [`Selectable`](super::Selectable) implemented by this crate only.
    pub trait Sealed {}
}

/// The queue-side token a selecting waiter registers with. Opaque outside this crate.
#[doc(hidden)]
pub struct SelectWaiter(pub(crate) Arc<Waiter>);

/// One arm of a `select`: an operation that is ready now, or can queue a waiter to be told
/// when it completes. Implemented by this crate's channel and wait operations only.
///
/// Every method but `lock` requires the caller to hold the arm's lock (they are called by the
/// select driver only).
#[doc(hidden)]
pub trait Selectable: sealed::Sealed {
    /// The lock guarding the arm's state; arms may share one.
    fn lock(&self) -> &RawLock;
    /// Completes the operation if it can complete now, keeping the outcome.
    ///
    /// # Safety
    /// The caller holds the lock.
    unsafe fn try_complete(&mut self) -> bool;
    /// Queues `waiter`, to be notified with `token` when the operation completes.
    ///
    /// # Safety
    /// The caller holds the lock.
    unsafe fn enqueue(&mut self, waiter: &SelectWaiter, token: usize);
    /// Withdraws the registration of an arm that did not win.
    ///
    /// # Safety
    /// The caller holds the lock.
    unsafe fn withdraw(&mut self);
    /// Collects the outcome the notifier left for the arm that won. Needs no lock: the
    /// notifier finished with the arm's registration before it ended the wait, and the wait's
    /// Release/Acquire makes its writes visible.
    fn collect(&mut self);
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

/// A different seed for every thread: a process-wide counter, mixed with the address of a
/// local (which differs between processes under ASLR).
fn seed() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let local = 0u8;
    let addr = &local as *const u8 as u64;
    // Relaxed: the counter only needs distinct values.
    splitmix(NEXT.fetch_add(1, Ordering::Relaxed) ^ addr.rotate_left(32))
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniformly random number below `n` (n > 0).
fn random_below(n: usize) -> usize {
    let x = RNG.with(|rng| {
        let x = splitmix(rng.get());
        rng.set(x);
        x
    });
    ((x as u128 * n as u128) >> 64) as usize
}

/// Arm indices in the order to visit them: a random permutation for fairness, and the
/// distinct locks in address order for deadlock-free locking.
struct Plan {
    poll: Vec<usize>,
    locks: Vec<usize>,
}

impl Plan {
    fn new(ops: &[&mut dyn Selectable]) -> Plan {
        let n = ops.len();
        let mut poll: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            poll.swap(i, random_below(i + 1));
        }
        let mut locks: Vec<usize> = (0..n).collect();
        locks.sort_by_key(|&i| ops[i].lock().addr());
        locks.dedup_by_key(|i| ops[*i].lock().addr());
        Plan { poll, locks }
    }

    fn lock(&self, ops: &[&mut dyn Selectable]) {
        lock_all(ops, &self.locks);
    }

    fn unlock(&self, ops: &[&mut dyn Selectable]) {
        // SAFETY: `lock` took exactly these locks, once each.
        unsafe { unlock_all(ops, &self.locks) };
    }
}

/// Takes the locks of `ops` named by `locks` (distinct, in address order).
fn lock_all(ops: &[&mut dyn Selectable], locks: &[usize]) {
    for &i in locks {
        ops[i].lock().lock();
    }
}

/// Releases what [`lock_all`] took, in reverse order.
///
/// # Safety
/// The caller holds exactly these locks, taken by `lock_all` with the same `locks`.
unsafe fn unlock_all(ops: &[&mut dyn Selectable], locks: &[usize]) {
    for &i in locks.iter().rev() {
        // SAFETY: held by the caller (contract).
        unsafe { ops[i].lock().unlock() };
    }
}

/// What a `select` with no arm ready may do, by its mode.
enum Wait {
    /// Wait, until the deadline if there is one.
    Until(Option<Instant>),
    /// Nothing: a `default` arm.
    No,
    /// Nothing: the deadline has passed. Yet a goroutine yields, as if it had parked until
    /// then, so that a loop of waits with tiny time-outs lets the others run.
    Passed,
}

fn wait_for(mode: Mode) -> Wait {
    match mode {
        Mode::Block => Wait::Until(None),
        Mode::NonBlock => Wait::No,
        Mode::Until(deadline) if deadline <= Instant::now() => Wait::Passed,
        Mode::Until(deadline) => Wait::Until(Some(deadline)),
    }
}

/// After a `select` found no arm ready and gave up without waiting, its locks released.
fn gave_up(wait: Wait) {
    if matches!(wait, Wait::Passed) {
        crate::sched::current::yield_current();
    }
}

/// The arms of a `select` registered with one waiter, and the locks they take in order.
///
/// A wait that ends by unwinding (a cancelled goroutine, or its stack torn down) leaves no
/// registration behind: dropping this unfinished withdraws every arm. The normal end is
/// [`finish`](Self::finish).
struct Registered<'a, 'b> {
    ops: &'a mut [&'b mut dyn Selectable],
    locks: &'a [usize],
    finished: bool,
}

impl<'a, 'b> Registered<'a, 'b> {
    fn new(ops: &'a mut [&'b mut dyn Selectable], locks: &'a [usize]) -> Self {
        Registered {
            ops,
            locks,
            finished: false,
        }
    }

    fn lock(&self) {
        lock_all(self.ops, self.locks);
    }

    fn unlock(&self) {
        // SAFETY: `lock` took exactly these locks, once each.
        unsafe { unlock_all(self.ops, self.locks) };
    }

    /// Collects the outcome of the arm that won, if one did, and withdraws the others. A
    /// one-arm select that won needs no lock for this.
    fn finish(mut self, won: Option<usize>) {
        self.finished = true;
        if self.ops.len() == 1 && won == Some(0) {
            self.ops[0].collect();
            return;
        }
        self.lock();
        for (i, op) in self.ops.iter_mut().enumerate() {
            if won == Some(i) {
                op.collect();
            } else {
                // SAFETY: all arms' locks are held.
                unsafe { op.withdraw() };
            }
        }
        self.unlock();
    }
}

impl Drop for Registered<'_, '_> {
    /// Unfinished only when unwinding out of the wait, which has ended then (timed out by its
    /// guard), so no arm can complete any more: take every registration back.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.lock();
        for op in self.ops.iter_mut() {
            // SAFETY: all arms' locks are held.
            unsafe { op.withdraw() };
        }
        self.unlock();
    }
}

/// [`select`] with a single arm, without the bookkeeping: plain `send` and `recv`. A goroutine
/// that waits counts as blocked on `kind`, at `site`.
pub(crate) fn select_one(op: &mut dyn Selectable, mode: Mode, kind: BlockKind, site: Site) -> bool {
    op.lock().lock();
    // SAFETY: the arm's lock is held from here to the matching `unlock` (the same for the
    // blocks below).
    if unsafe { op.try_complete() } {
        // SAFETY: see above.
        unsafe { op.lock().unlock() };
        return true;
    }
    let deadline = match wait_for(mode) {
        Wait::Until(deadline) => deadline,
        other => {
            // SAFETY: see above.
            unsafe { op.lock().unlock() };
            gave_up(other);
            return false;
        }
    };
    let waiter = SelectWaiter(Waiter::for_current(kind));
    // SAFETY: see above.
    unsafe {
        op.enqueue(&waiter, 0);
        op.lock().unlock();
    }
    let mut op = op;
    let registered = Registered::new(std::slice::from_mut(&mut op), &[0]);
    let won = waiter.0.wait_until(deadline, site);
    registered.finish(won);
    won == Some(0)
}

/// Completes exactly one of `ops` and returns its index, or returns `None` if `mode` allowed
/// no (more) waiting. The completed operation holds its outcome.
///
/// `#[track_caller]`: called from the expansion of `select!`, it waits at the line of the
/// macro's invocation.
#[doc(hidden)]
#[track_caller]
pub fn select(ops: &mut [&mut dyn Selectable], mode: Mode) -> Option<usize> {
    select_as(ops, mode, BlockKind::Select, Location::caller())
}

/// [`select`], for a wait that counts as blocked on `kind`, at `site`: the crate's own selects
/// of one operation and a context's `done` count as that operation.
pub(crate) fn select_as(
    ops: &mut [&mut dyn Selectable],
    mode: Mode,
    kind: BlockKind,
    site: Site,
) -> Option<usize> {
    let plan = Plan::new(ops);
    plan.lock(ops);
    for &i in &plan.poll {
        // SAFETY: all arms' locks are held.
        if unsafe { ops[i].try_complete() } {
            plan.unlock(ops);
            return Some(i);
        }
    }
    let deadline = match wait_for(mode) {
        Wait::Until(deadline) => deadline,
        other => {
            plan.unlock(ops);
            gave_up(other);
            return None;
        }
    };
    let waiter = SelectWaiter(Waiter::for_current(kind));
    for &i in &plan.poll {
        // SAFETY: all arms' locks are held.
        unsafe { ops[i].enqueue(&waiter, i) };
    }
    plan.unlock(ops);
    let registered = Registered::new(ops, &plan.locks);
    let won = waiter.0.wait_until(deadline, site);
    registered.finish(won);
    won
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_below_covers_range_uniformly() {
        let mut counts = [0u32; 4];
        for _ in 0..40_000 {
            counts[random_below(4)] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }
}
