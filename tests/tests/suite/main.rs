//! The integration tests that need no process of their own, linked into one test binary (each
//! file below is a module, named as its file). Tests that count the process's threads, memory
//! or mappings, re-run their binary as a child process, set the environment, or measure time
//! slices keep binaries of their own: `deadlock`, `stack_overflow`, `stack_limits`,
//! `contained_drops`, `procs_env`, `thread_cleanup`, `blocking`, `drop_from_own_goroutine`,
//! `live_goroutines`, `runtime_cycles`, `preemption`, `spare_workers`, `stress_random`,
//! `stall_warnings`, `drop_warning` and `sigquit_and_panics` (these read a child's stderr),
//! and
//! `deadlock_in_tests` (deadlock detection beside nothing but its own tests' threads).

mod admission;
mod cancel;
mod cancellation;
mod channels;
mod context;
mod context_values;
mod errgroup;
mod errors;
mod go_fairness;
mod goroutine_local;
mod join_bounded;
mod join_set;
mod layers;
mod lost_wakeup;
mod metrics;
mod misuse_locations;
mod mixed_threads;
mod net_deadlines;
mod net_io;
mod net_shutdown;
mod net_tcp;
mod panic_abort;
mod panics;
mod pinning;
mod runtime_api;
mod scope;
mod select;
mod shutdown;
mod shutdown_from_own_goroutine;
mod spawn_join;
mod stealing;
mod sync_primitives;
mod timer_api;
mod timers;
mod trace;
mod wait_group;
mod wait_sites;
mod weighted;
