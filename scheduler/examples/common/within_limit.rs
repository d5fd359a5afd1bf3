//! What the examples' tests share: a time limit, so that a hang fails a test instead of
//! hanging the run. Included by each example's tests with `#[path]` (an example is a crate of
//! its own); `examples/common/` holds no `main.rs`, so Cargo makes no example of it.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The longest a test may take.
pub const TEST_LIMIT: Duration = Duration::from_secs(30);

/// Runs `f` on a thread of its own and fails if it takes longer than [`TEST_LIMIT`].
pub fn within_limit(f: impl FnOnce() + Send + 'static) {
    let (done_tx, done_rx) = mpsc::channel();
    let body = thread::spawn(move || {
        f();
        let _ = done_tx.send(());
    });
    match done_rx.recv_timeout(TEST_LIMIT) {
        // `f` returned, or panicked (the sender is dropped): join says which.
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = body.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the test hung for {TEST_LIMIT:?}"),
    }
}
