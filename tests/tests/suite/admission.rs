//! Admission control: `Builder::max_goroutines`. `try_spawn` fails fast at the limit, `spawn`
//! waits for room (back pressure), and the count never goes over.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use scheduler::chan;
use scheduler::{BuildError, Runtime, SpawnError, WaitGroup};
use scheduler_tests::{HANG_LIMIT, watchdog};

fn limited(procs: usize, max: usize) -> Runtime {
    Runtime::builder()
        .procs(procs)
        .max_goroutines(max)
        .build()
        .unwrap()
}

#[test]
fn try_spawn_fails_fast_at_the_limit_and_succeeds_once_one_finishes() {
    watchdog("try_spawn at capacity", HANG_LIMIT, || {
        const MAX: usize = 8;
        let rt = limited(2, MAX);
        rt.block_on(|| {
            // Seven goroutines, each waiting for its own release.
            let (releases, held): (Vec<_>, Vec<_>) = (0..MAX - 1)
                .map(|_| {
                    let (tx, rx) = chan::bounded::<()>(0);
                    let h =
                        scheduler::try_spawn(move || rx.recv().unwrap()).expect("below the limit");
                    (tx, h)
                })
                .unzip();
            // With the main goroutine: full.
            assert_eq!(scheduler::num_goroutines(), MAX);
            for _ in 0..3 {
                match scheduler::try_spawn(|| ()) {
                    Err(SpawnError::AtCapacity) => {}
                    other => panic!("expected AtCapacity, got {:?}", other.map(|_| ())),
                }
            }
            let message = scheduler::try_spawn(|| ()).err().unwrap().to_string();
            assert!(message.contains("max_goroutines"), "{message}");
            // One finishes: room for exactly one.
            let mut held = held.into_iter();
            releases[0].send(()).unwrap();
            held.next().unwrap().join().unwrap();
            // It holds until released, so that the runtime stays full while we look.
            let (extra_tx, extra_rx) = chan::bounded::<()>(0);
            let extra =
                scheduler::try_spawn(move || extra_rx.recv().unwrap()).expect("room for one");
            assert!(matches!(
                scheduler::try_spawn(|| ()),
                Err(SpawnError::AtCapacity)
            ));
            extra_tx.send(()).unwrap();
            extra.join().unwrap();
            for (tx, h) in releases[1..].iter().zip(held) {
                tx.send(()).unwrap();
                h.join().unwrap();
            }
            assert_eq!(scheduler::num_goroutines(), 1);
        });
    });
}

#[test]
fn spawn_waits_for_room_and_the_count_never_goes_over() {
    watchdog("spawn waits for room", HANG_LIMIT, || {
        const MAX: usize = 5;
        const SPAWNS: usize = 200;
        for procs in [1, 2] {
            let rt = limited(procs, MAX);
            let ran = Arc::new(AtomicUsize::new(0));
            let r = ran.clone();
            let most = rt.block_on(move || {
                let wg = WaitGroup::new();
                // Spawns returned minus goroutines past their last step: never more than the
                // goroutines live besides this one (those may still be finishing), so at most
                // MAX - 1 if `spawn` waits for room, and far more if it does not.
                let mut most = 0;
                for admitted in 1..=SPAWNS {
                    let ended = r.clone();
                    // `go` spawns with `spawn`: at the limit it parks this goroutine until one
                    // of the others has finished.
                    wg.go(move || {
                        scheduler::yield_now();
                        ended.fetch_add(1, Ordering::SeqCst);
                    });
                    most = most.max(admitted - r.load(Ordering::SeqCst));
                }
                wg.wait();
                most
            });
            assert!(
                most < MAX,
                "procs {procs}: {most} goroutines at once besides the main one, limit {MAX}"
            );
            assert_eq!(ran.load(Ordering::SeqCst), SPAWNS);
        }
    });
}

#[test]
fn a_plain_thread_spawning_waits_for_room_too() {
    watchdog("outside spawn waits", HANG_LIMIT, || {
        const MAX: usize = 3;
        const SPAWNS: usize = 20;
        let rt = limited(2, MAX);
        let (tx, rx) = chan::bounded::<usize>(0);
        // Another thread takes the values, one at a time, so goroutines end one by one.
        let receiver = std::thread::spawn(move || rx.iter().sum::<usize>());
        // As in the test above: spawns returned minus goroutines past their last step bounds
        // the live goroutines from below.
        let ended = Arc::new(AtomicUsize::new(0));
        let mut most = 0;
        for i in 0..SPAWNS {
            let (tx, ended_too) = (tx.clone(), ended.clone());
            // Each goroutine lives until its value is taken; past the third, this thread waits
            // here for one of them to end.
            drop(rt.spawn(move || {
                tx.send(i).unwrap();
                ended_too.fetch_add(1, Ordering::SeqCst);
            }));
            most = most.max(i + 1 - ended.load(Ordering::SeqCst));
        }
        drop(tx);
        assert_eq!(receiver.join().unwrap(), (0..SPAWNS).sum());
        assert!(most <= MAX, "{most} goroutines at once, limit {MAX}");
    });
}

#[test]
fn the_main_goroutine_counts() {
    let rt = limited(1, 1);
    rt.block_on(|| {
        assert!(matches!(
            scheduler::try_spawn(|| ()),
            Err(SpawnError::AtCapacity)
        ));
    });
}

#[test]
fn zero_max_goroutines_is_rejected() {
    let err = Runtime::builder()
        .procs(1)
        .max_goroutines(0)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::ZeroMaxGoroutines));
    assert!(err.to_string().contains("max_goroutines"), "{err}");
}
