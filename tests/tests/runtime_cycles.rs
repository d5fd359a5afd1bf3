//! A thousand runtimes created, loaded and dropped leave nothing behind: the thread count,
//! the resident memory and the mapped address space come back to where they were. This file
//! holds a single test so that its process runs nothing else meanwhile.

use std::time::Duration;

use scheduler::chan;
use scheduler::{Runtime, WaitGroup};
use scheduler_tests::{HANG_LIMIT, thread_names, watchdog};

/// A field of `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// One runtime's life: goroutines that finish, goroutines blocked on channels and released,
/// and on odd cycles goroutines left blocked for `shutdown_timeout` to unwind.
fn cycle(n: usize) {
    let rt = Runtime::builder().procs(2).build().unwrap();
    let total = rt.block_on(|| {
        let (tx, rx) = chan::bounded::<u64>(0);
        let handles: Vec<_> = (0..32)
            .map(|i| {
                let rx = rx.clone();
                scheduler::spawn(move || rx.recv().unwrap() + i)
            })
            .collect();
        for i in 0..32 {
            tx.send(i).unwrap();
        }
        // Joined, not just counted down: every one has finished before the shutdown below
        // counts what is left.
        for handle in handles {
            handle.join().unwrap();
        }
        32
    });
    assert_eq!(total, 32);
    if n % 2 == 1 {
        let never = WaitGroup::new();
        never.add(1);
        for _ in 0..8 {
            let never = never.clone();
            rt.spawn(move || never.wait());
        }
        let err = rt
            .shutdown_timeout(Duration::from_millis(1))
            .expect_err("blocked forever");
        assert_eq!(err.remaining(), 8);
    } else {
        drop(rt);
    }
}

#[test]
fn a_thousand_runtimes_leave_no_threads_memory_or_mappings_behind() {
    const WARM_UP: usize = 50;
    const CYCLES: usize = 1000;
    watchdog("runtime cycles", HANG_LIMIT * 4, || {
        let threads_before = thread_names().len();
        // Let the allocator and the timer thread reach their steady state first.
        for n in 0..WARM_UP {
            cycle(n);
        }
        let rss_before = status_kib("VmRSS:");
        let vm_before = status_kib("VmSize:");
        for n in 0..CYCLES {
            cycle(n);
        }
        let rss_after = status_kib("VmRSS:");
        let vm_after = status_kib("VmSize:");
        // A leaked worker or stack region would show as a thread, or as 2 MiB of thread stack
        // or a 16 MiB region of stacks per cycle: a thousand of them could not hide in these
        // margins.
        let threads_after = thread_names().len();
        assert!(
            threads_after <= threads_before + 1,
            "threads before {threads_before}, after {threads_after}"
        );
        assert!(
            rss_after <= rss_before + 16 * 1024,
            "resident memory grew from {rss_before} KiB to {rss_after} KiB"
        );
        assert!(
            vm_after <= vm_before + 64 * 1024,
            "address space grew from {vm_before} KiB to {vm_after} KiB"
        );
    });
}
