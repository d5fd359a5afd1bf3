//! Synchronisation that parks goroutines instead of blocking their worker threads.

pub(crate) mod wait_group;
pub(crate) mod waiter;

pub use wait_group::WaitGroup;
