//! A runtime's settings, validated by the `Builder` and fixed once the runtime starts.

use std::time::Duration;

use super::blocking;

/// Everything a runtime is started with. Built (and checked) by `Builder::config`; read by
/// `Runtime::start` and `Shared::new`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    /// Worker threads running goroutines in parallel (Go's `GOMAXPROCS`); at least 1.
    pub(crate) procs: usize,
    /// The most spare workers (`super::spare`) running at once.
    pub(crate) max_spare_workers: usize,
    /// Usable bytes of each goroutine stack, within the crate's bounds.
    pub(crate) stack_size: usize,
    /// The most goroutines admitted at once (`super::admission`), if bounded.
    pub(crate) max_goroutines: Option<usize>,
    /// The blocking pool's settings.
    pub(crate) blocking: blocking::Config,
    /// How long a goroutine runs before the monitor asks it to yield; not zero.
    pub(crate) time_slice: Duration,
    /// The stall threshold (`None`: no stall warnings), and whether the builder set it
    /// explicitly (else `SCHEDULER_STALL_WARNINGS` may turn warnings off): `super::stall`.
    pub(crate) stall_warnings: (Option<Duration>, bool),
    /// Whether the runtime records an execution trace from its start (`super::trace`).
    pub(crate) trace: bool,
}
