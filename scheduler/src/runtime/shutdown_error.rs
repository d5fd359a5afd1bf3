//! Why [`Runtime::shutdown_timeout`](crate::Runtime::shutdown_timeout) failed, and how long a
//! drop waits before it says what it waits for.

use std::fmt;
use std::time::Duration;

use crate::dump::GoroutineDump;

/// How long dropping a runtime waits for its goroutines before it says which are still live
/// (it then goes on waiting).
pub(crate) const DROP_WARNING_AFTER: Duration = Duration::from_secs(5);

/// [`Runtime::shutdown_timeout`](crate::Runtime::shutdown_timeout) ran out of time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownError {
    /// Goroutines unfinished at the deadline.
    pub(super) remaining: usize,
    /// Blocking jobs unfinished (running or queued) when the shutdown stopped waiting.
    pub(super) blocking: usize,
    /// The goroutines unfinished at the deadline, as they were then.
    pub(super) unfinished: GoroutineDump,
}

impl ShutdownError {
    /// How many goroutines were unfinished at the deadline, when cancellation began (a few
    /// may have finished normally while it ran).
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// How many [`spawn_blocking`](crate::spawn_blocking) jobs were unfinished, running or
    /// queued, when the shutdown stopped waiting for them: at the deadline, or after the
    /// cancellation of the goroutines if that came later. The queued ones were dropped
    /// without running (their `join` returns `Err` with a [`Cancelled`](crate::Cancelled)
    /// payload); the running ones could not be interrupted, and the shutdown waited for them.
    pub fn remaining_blocking(&self) -> usize {
        self.blocking
    }

    /// The goroutines unfinished at the deadline, as they were just before they were
    /// cancelled: what each waited for and where. `Display` prints them too.
    pub fn unfinished(&self) -> &GoroutineDump {
        &self.unfinished
    }
}

impl fmt::Display for ShutdownError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (goroutines, jobs) = (self.remaining, self.blocking);
        match jobs {
            0 => write!(
                f,
                "scheduler: shutdown timed out with {goroutines} goroutine(s) unfinished; they \
                 were cancelled"
            ),
            _ if goroutines == 0 => write!(
                f,
                "scheduler: shutdown timed out with {jobs} blocking job(s) unfinished; the \
                 queued ones were dropped, the running ones awaited"
            ),
            _ => write!(
                f,
                "scheduler: shutdown timed out with {goroutines} goroutine(s) and {jobs} \
                 blocking job(s) unfinished; the goroutines were cancelled, the queued jobs \
                 dropped, the running ones awaited"
            ),
        }?;
        if !self.unfinished.is_empty() {
            write!(f, ":\n\n{}", self.unfinished)?;
        }
        Ok(())
    }
}

impl std::error::Error for ShutdownError {}
