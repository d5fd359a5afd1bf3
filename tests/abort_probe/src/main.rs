//! Runs one case, named by the first argument, in a process built with `panic = "abort"`:
//!
//! * `finish`: a runtime whose goroutines all finish shuts down normally (exit 0);
//! * `shutdown`: `shutdown_timeout` must cancel a goroutine parked forever: a message naming
//!   `panic = "abort"`, then SIGABRT;
//! * `deadlock`: the main goroutine can never finish: Go's deadlock message, then SIGABRT.

use std::time::Duration;

use scheduler::{Runtime, chan};

fn main() {
    let case = std::env::args().nth(1).expect("usage: abort-probe CASE");
    match case.as_str() {
        "finish" => {
            let rt = Runtime::builder().procs(2).build().unwrap();
            let (tx, rx) = chan::bounded::<u32>(0);
            let receiver = rt.spawn(move || rx.recv().unwrap());
            rt.block_on(move || tx.send(7).unwrap());
            assert_eq!(receiver.join().unwrap(), 7);
            rt.shutdown_timeout(Duration::from_secs(10)).unwrap();
            println!("finished");
        }
        "shutdown" => {
            let rt = Runtime::builder().procs(1).build().unwrap();
            let (tx, rx) = chan::bounded::<u32>(0);
            let (parked_tx, parked_rx) = std::sync::mpsc::channel();
            rt.spawn(move || {
                parked_tx.send(()).unwrap();
                rx.recv()
            });
            parked_rx.recv().unwrap();
            let _ = rt.shutdown_timeout(Duration::from_millis(10));
            drop(tx);
            println!("survived");
        }
        "deadlock" => {
            let rt = Runtime::builder().procs(2).build().unwrap();
            rt.block_on(|| {
                let (_tx, rx) = chan::bounded::<u32>(0);
                rx.recv()
            })
            .unwrap();
            println!("survived");
        }
        other => panic!("unknown case {other:?}"),
    }
}
