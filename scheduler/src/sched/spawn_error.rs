//! [`SpawnError`]: why a goroutine was not admitted.

use std::error::Error;
use std::fmt;
use std::io;

use crate::goroutine::stack_memory::guards_split_mappings;

/// Why [`try_spawn`](crate::try_spawn) or [`Runtime::try_spawn`](crate::Runtime::try_spawn)
/// refused a goroutine, or [`try_spawn_blocking`](crate::try_spawn_blocking) a blocking job.
/// [`spawn`](crate::spawn) and [`spawn_blocking`](crate::spawn_blocking) panic with the same
/// message.
///
/// # Examples
///
/// ```
/// use scheduler::SpawnError;
///
/// let rt = scheduler::Runtime::builder().procs(1).build().unwrap();
/// let handle = rt.try_spawn(|| 2 + 2).expect("a running runtime admits goroutines");
/// assert_eq!(handle.join().unwrap(), 4);
/// # let _: Option<SpawnError> = None;
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SpawnError {
    /// The runtime is shutting down (`shutdown_timeout` was called): the goroutines and
    /// blocking jobs it has run on, but it takes no new ones.
    ShuttingDown,
    /// The runtime holds as many goroutines as
    /// [`Builder::max_goroutines`](crate::Builder::max_goroutines) allows. `spawn` waits for
    /// room instead.
    AtCapacity,
    /// No stack could be reserved for the goroutine: mapping more stack memory failed.
    Stacks {
        /// What the kernel said.
        source: io::Error,
        /// Goroutines of the runtime that were live (spawned and unfinished) at the time.
        live: usize,
        /// The usable size of each stack, in bytes.
        stack_size: usize,
    },
    /// [`spawn_blocking`](crate::spawn_blocking) found no thread in the blocking pool and
    /// could not start one.
    BlockingThread(io::Error),
}

impl SpawnError {
    pub(crate) fn stacks(source: io::Error, live: usize, stack_size: usize) -> SpawnError {
        SpawnError::Stacks {
            source,
            live,
            stack_size,
        }
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::ShuttingDown => {
                write!(
                    f,
                    "scheduler: the runtime is shutting down: no new goroutines or blocking jobs"
                )
            }
            SpawnError::AtCapacity => write!(
                f,
                "scheduler: the runtime holds max_goroutines goroutines already: no room for \
                 another"
            ),
            SpawnError::Stacks {
                source,
                live,
                stack_size,
            } => {
                let limit = if guards_split_mappings() {
                    "the mapping limit vm.max_map_count (each stack takes two mappings on \
                     this kernel), the address-space limit (ulimit -v) or memory"
                } else {
                    "the address-space limit (ulimit -v) or memory"
                };
                write!(
                    f,
                    "scheduler: cannot reserve a {stack_size}-byte stack for a new goroutine \
                     with {live} live ({source}); the limit is {limit}: lower \
                     Builder::stack_size or the number of goroutines"
                )
            }
            SpawnError::BlockingThread(err) => {
                write!(
                    f,
                    "scheduler: cannot start a thread for blocking work: {err}"
                )
            }
        }
    }
}

/// The handle of a spawn, or a panic with the reason it was refused, reported at the line of
/// the user's call (`#[track_caller]`), for the spawn functions that panic.
#[track_caller]
pub(crate) fn spawned_or_panic<H>(result: Result<H, SpawnError>) -> H {
    match result {
        Ok(handle) => handle,
        Err(err) => panic!("{err}"),
    }
}

impl Error for SpawnError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            SpawnError::ShuttingDown | SpawnError::AtCapacity => None,
            SpawnError::Stacks { source, .. } => Some(source),
            SpawnError::BlockingThread(err) => Some(err),
        }
    }
}
