//! A hundred thousand goroutines blocked at once, each on its own channel, then released: the
//! CI-sized form of the million-goroutine benchmark (`bench live 1000000 <procs>`). Every stack
//! keeps its guard page, yet the process stays far below the kernel's mapping limit, since the
//! guards do not split the stack regions (Linux 6.13+; on older kernels the runtime refuses
//! goroutines at the limit instead, which the test accepts).

use scheduler::chan;
use scheduler::{SpawnError, WaitGroup};
use scheduler_tests::{HANG_LIMIT, runtime, watchdog};

const N: usize = 100_000;

/// Lines of `/proc/self/maps`: the number of mappings of this process.
fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

#[test]
fn hundred_thousand_goroutines_blocked_at_once_then_released() {
    watchdog("100k blocked goroutines", HANG_LIMIT * 2, || {
        let rt = runtime(2);
        let (released, mapped) = rt.block_on(|| {
            let ready = WaitGroup::new();
            let done = WaitGroup::new();
            let mut senders = Vec::with_capacity(N);
            for i in 0..N {
                let (tx, rx) = chan::bounded::<usize>(0);
                let (r, d) = (ready.clone(), done.clone());
                ready.add(1);
                done.add(1);
                let spawned = scheduler::try_spawn(move || {
                    r.done();
                    let v = rx.recv().expect("released with a value");
                    assert_eq!(v, i, "goroutine {i} got another's value");
                    d.done();
                });
                match spawned {
                    Ok(_) => senders.push(tx),
                    Err(err @ SpawnError::Stacks { .. }) => {
                        // Only where guard pages split mappings (older kernels).
                        let message = err.to_string();
                        assert!(message.contains("vm.max_map_count"), "{message}");
                        ready.done();
                        done.done();
                        break;
                    }
                    Err(err) => panic!("unexpected refusal: {err}"),
                }
            }
            ready.wait();
            // Every admitted goroutine is blocked now, each on its stack.
            assert_eq!(scheduler::num_goroutines(), senders.len() + 1);
            let mapped = mappings();
            for (i, tx) in senders.iter().enumerate() {
                tx.send(i).unwrap();
            }
            done.wait();
            (senders.len(), mapped)
        });
        if released == N {
            // 100k guarded stacks in a few thousand mappings at most (64 stacks a region).
            assert!(mapped < 10_000, "{mapped} mappings for {N} stacks");
        }
        assert_eq!(rt.num_goroutines(), 0);
    });
}
