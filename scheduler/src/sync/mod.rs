//! Synchronisation that parks goroutines instead of blocking their worker threads.
//!
//! Every type here works from goroutines and plain threads alike: a goroutine that has to wait
//! parks (its worker runs other goroutines), a thread blocks.
//!
//! | type | Go | what for |
//! | --- | --- | --- |
//! | [`WaitGroup`] | `sync.WaitGroup` | wait for a set of goroutines |
//! | [`Mutex`] | `sync.Mutex` | exclusive access; starvation mode after 1 ms |
//! | [`RwLock`] | `sync.RWMutex` | many readers or one writer, FIFO hand-over |
//! | [`Condvar`] | `sync.Cond` | wait for a condition under a `Mutex` |
//! | [`Semaphore`] | `x/sync/semaphore.Weighted` | bound concurrency, or units of a resource (`acquire_many`); shed load with `try_acquire` |
//! | [`OnceLock`] | `sync.Once` | one-time initialisation |

mod condvar;
mod join_ctx;
mod mutex;
mod once;
mod rwlock;
mod semaphore;
pub(crate) mod wait_group;

pub use condvar::Condvar;
pub use join_ctx::JoinCtxError;
pub use mutex::{Mutex, MutexGuard};
pub use once::OnceLock;
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use semaphore::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};
pub use wait_group::WaitGroup;
