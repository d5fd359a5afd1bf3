//! `time::Timer`, `time::Ticker` and `time::after_func`: Go's `time.NewTimer`, `NewTicker` and
//! `AfterFunc` with `Stop` and `Reset` as Go 1.23 defines them (no stale value after either),
//! inside goroutines and on plain threads, and `stop`/`reset` racing the firing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use scheduler::chan::{self, RecvTimeoutError, TryRecvError};
use scheduler::select;
use scheduler::time::{self, AfterFunc, Ticker, Timer};
use scheduler_tests::{
    HANG_LIMIT, PROMPT_LIMIT, expect_panic, panic_location, runtime, watchdog, yield_until,
};

/// A timer that comes due during the test.
const SOON: Duration = Duration::from_millis(5);
/// A timer that never comes due during the test.
const NEVER: Duration = Duration::from_secs(3600);
/// How long a test watches for something that must not happen: long past `SOON`.
const QUIET: Duration = Duration::from_millis(60);

/// Runs `check` as the main goroutine of a runtime with two workers, then on a plain thread
/// (whose timers go to the process-wide timer thread), each under a watchdog.
fn in_goroutine_and_thread(what: &str, check: fn()) {
    watchdog(&format!("{what}, in a goroutine"), HANG_LIMIT, move || {
        runtime(2).block_on(check)
    });
    watchdog(&format!("{what}, on a plain thread"), HANG_LIMIT, check);
}

/// Waits, without receiving, until `timer` has fired: its value sits in the channel.
fn until_fired(rx: &chan::Receiver<Instant>) {
    yield_until("the timer fired", PROMPT_LIMIT, || rx.len() == 1);
}

// ---------------------------------------------------------------------------------------
// Timer.
// ---------------------------------------------------------------------------------------

#[test]
fn recv_waits_for_the_firing_and_returns_when_it_fired() {
    in_goroutine_and_thread("recv", || {
        let start = Instant::now();
        let timer = Timer::new(SOON);
        let fired = timer.recv();
        assert!(
            fired >= start + SOON,
            "fired {:?} early",
            start + SOON - fired
        );
        assert!(start.elapsed() >= SOON);
    });
}

#[test]
fn stop_before_the_firing_returns_true_and_nothing_is_delivered() {
    in_goroutine_and_thread("stop before firing", || {
        let timer = Timer::new(SOON);
        assert!(timer.stop(), "stopping a pending timer returned false");
        assert!(!timer.stop(), "stopping a stopped timer returned true");
        assert_eq!(
            timer.c().recv_timeout(QUIET),
            Err(RecvTimeoutError::Timeout),
            "a stopped timer delivered its value"
        );
    });
}

#[test]
fn stop_after_the_value_was_received_returns_false() {
    in_goroutine_and_thread("stop after receive", || {
        let timer = Timer::new(Duration::from_millis(1));
        timer
            .c()
            .recv_timeout(PROMPT_LIMIT)
            .expect("the timer did not fire");
        assert!(
            !timer.stop(),
            "stop claimed a timer whose value was received"
        );
    });
}

#[test]
fn stop_after_an_unreceived_firing_takes_the_value_and_returns_true() {
    in_goroutine_and_thread("stop after unreceived firing", || {
        let timer = Timer::new(Duration::from_millis(1));
        until_fired(timer.c());
        assert!(
            timer.stop(),
            "Go 1.23: a value not yet received counts as pending"
        );
        assert_eq!(
            timer.c().try_recv(),
            Err(TryRecvError::Empty),
            "the stale value stayed in the channel"
        );
    });
}

#[test]
fn reset_before_the_firing_moves_the_deadline() {
    in_goroutine_and_thread("reset before firing", || {
        let timer = Timer::new(NEVER);
        let reset_at = Instant::now();
        assert!(
            timer.reset(SOON),
            "resetting a pending timer returned false"
        );
        let fired = timer
            .c()
            .recv_timeout(PROMPT_LIMIT)
            .expect("the reset timer did not fire");
        assert!(fired >= reset_at + SOON, "fired before the new deadline");
        assert_eq!(
            timer.c().recv_timeout(QUIET),
            Err(RecvTimeoutError::Timeout),
            "a reset timer fired twice"
        );
    });
}

#[test]
fn reset_after_an_unreceived_firing_leaves_no_stale_value() {
    in_goroutine_and_thread("reset after unreceived firing", || {
        let timer = Timer::new(Duration::from_millis(1));
        until_fired(timer.c());
        let reset_at = Instant::now();
        assert!(
            timer.reset(SOON),
            "Go 1.23: a value not yet received counts as pending"
        );
        let fired = timer
            .c()
            .recv_timeout(PROMPT_LIMIT)
            .expect("the reset timer did not fire");
        assert!(
            fired >= reset_at + SOON,
            "received the stale value of the first arming"
        );
    });
}

#[test]
fn reset_after_the_value_was_received_returns_false_and_fires_again() {
    in_goroutine_and_thread("reset after receive", || {
        let timer = Timer::new(Duration::from_millis(1));
        timer.recv();
        let reset_at = Instant::now();
        assert!(
            !timer.reset(SOON),
            "reset claimed a timer whose value was received"
        );
        assert!(timer.recv() >= reset_at + SOON);
    });
}

#[test]
fn a_zero_duration_fires_at_once_on_new_and_on_reset() {
    in_goroutine_and_thread("zero duration", || {
        let before = Instant::now();
        let timer = Timer::new(Duration::ZERO);
        let fired = timer
            .c()
            .try_recv()
            .expect("a zero timer had not fired when new returned");
        assert!(fired >= before);
        assert!(!timer.reset(Duration::ZERO), "its value was received");
        assert!(
            timer.c().try_recv().is_ok(),
            "a zero reset did not fire at once"
        );
        assert!(!timer.stop());
    });
}

#[test]
fn select_takes_a_ready_channel_before_a_pending_timer_then_the_timer() {
    in_goroutine_and_thread("select over a timer", || {
        let start = Instant::now();
        let (tx, rx) = chan::bounded(1);
        tx.send(7).unwrap();
        let timer = Timer::new(SOON);
        let first = select! {
            recv(rx) -> v => v.unwrap(),
            recv(timer.c()) -> _ => panic!("the timer fired before {SOON:?}"),
        };
        assert_eq!(first, 7);
        // `tx` lives on, so only the timer can end this select.
        let fired = select! {
            recv(rx) -> v => panic!("the channel delivered {v:?}"),
            recv(timer) -> at => at.expect("a timer's channel never closes"),
        };
        assert!(fired >= start + SOON);
        drop(tx);
    });
}

// ---------------------------------------------------------------------------------------
// Stop and reset racing the firing.
// ---------------------------------------------------------------------------------------

/// How far off each stress timer is: long enough that a stop right after it was set wins.
const FIRE_AFTER: Duration = Duration::from_millis(2);
const ROUNDS: usize = 150;

/// When a round stops the timer: at once, around its deadline, or well after it, so that
/// both sides win some rounds.
fn delay_of(round: usize) -> Duration {
    match round % 3 {
        0 => Duration::ZERO,
        1 => FIRE_AFTER * (round % 7) as u32 / 3,
        _ => FIRE_AFTER + Duration::from_millis(20),
    }
}

/// Receives the timer's value (true) or the quit signal (false), whichever comes.
fn receive_or_quit(timer: &Timer, quit: &chan::Receiver<()>) -> bool {
    select! {
        recv(timer) -> at => {
            at.expect("a timer's channel never closes");
            true
        }
        recv(quit) -> _ => false,
    }
}

/// Rounds of a receiver (made by `spawn_receiver`, returning its join) against a stop (even
/// rounds) or a reset to `NEVER` (odd ones) of the same timer, made after a delay spent in
/// `pause`. Each round exactly one side must have the firing: the call returns true, or the
/// receiver got the value. Returns how often each side had it.
fn race_rounds(
    spawn_receiver: &dyn Fn(Arc<Timer>, chan::Receiver<()>) -> Box<dyn FnOnce() -> bool>,
    pause: fn(),
) -> (usize, usize) {
    let (mut stopped, mut received) = (0, 0);
    for round in 0..ROUNDS {
        let timer = Arc::new(Timer::new(FIRE_AFTER));
        let (quit_tx, quit_rx) = chan::bounded(1);
        let join = spawn_receiver(timer.clone(), quit_rx);
        let until = Instant::now() + delay_of(round);
        while Instant::now() < until {
            pause();
        }
        let claimed = if round % 2 == 0 {
            timer.stop()
        } else {
            timer.reset(NEVER)
        };
        // After a true, the value is gone for good; after a false, it was received already
        // (and the receiver may have dropped `quit` since: the send then fails).
        let _ = quit_tx.send(());
        let got = join();
        assert_ne!(
            claimed, got,
            "round {round}: the call returned {claimed} and the receiver got the value: {got}"
        );
        if claimed {
            stopped += 1;
        } else {
            received += 1;
        }
    }
    (stopped, received)
}

#[track_caller]
fn assert_both_sides_won((stopped, received): (usize, usize)) {
    assert!(
        stopped > 0 && received > 0,
        "{stopped} rounds stopped, {received} received: the race was never run both ways"
    );
}

#[test]
fn stop_racing_the_firing_gives_it_to_exactly_one_side_in_goroutines() {
    let counts = watchdog("stop racing the firing, goroutines", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            // The pause yields, so that the stopper's worker fires its due timers meanwhile.
            race_rounds(
                &|timer, quit| {
                    let receiver = scheduler::spawn(move || receive_or_quit(&timer, &quit));
                    Box::new(move || receiver.join().unwrap())
                },
                scheduler::yield_now,
            )
        })
    });
    assert_both_sides_won(counts);
}

#[test]
fn stop_racing_the_firing_gives_it_to_exactly_one_side_on_threads() {
    let counts = watchdog("stop racing the firing, threads", HANG_LIMIT, || {
        race_rounds(
            &|timer, quit| {
                let receiver = std::thread::spawn(move || receive_or_quit(&timer, &quit));
                Box::new(move || receiver.join().unwrap())
            },
            std::thread::yield_now,
        )
    });
    assert_both_sides_won(counts);
}

// ---------------------------------------------------------------------------------------
// after_func.
// ---------------------------------------------------------------------------------------

#[test]
fn after_func_runs_once_in_a_new_goroutine() {
    watchdog("after_func runs once", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let (tx, rx) = chan::unbounded();
            let start = Instant::now();
            let timer = time::after_func(SOON, move || {
                tx.send((scheduler::in_goroutine(), Instant::now()))
                    .unwrap();
            });
            // This goroutine is blocked here while `f` runs: `f` has a goroutine of its own.
            let (in_goroutine, at) = rx.recv_timeout(PROMPT_LIMIT).expect("f did not run");
            assert!(in_goroutine, "f ran outside a goroutine");
            assert!(at >= start + SOON, "f ran early");
            assert_eq!(
                rx.recv_timeout(QUIET),
                Err(RecvTimeoutError::Timeout),
                "f ran twice"
            );
            assert!(!timer.stop(), "stop claimed a timer that had fired");
        });
    });
}

/// A stopped `after_func` (set by `set`) never runs, and a reset one runs again.
fn stop_prevents_and_reset_repeats(
    set: &dyn Fn(Duration, Box<dyn Fn() + Send + Sync>) -> AfterFunc,
) {
    let (tx, rx) = chan::unbounded();
    let timer = set(
        SOON,
        Box::new(move || tx.send(scheduler::in_goroutine()).unwrap()),
    );
    assert!(timer.stop(), "stopping a pending after_func returned false");
    assert_eq!(
        rx.recv_timeout(QUIET),
        Err(RecvTimeoutError::Timeout),
        "a stopped after_func ran"
    );
    assert!(!timer.reset(SOON), "a stopped after_func was pending");
    assert_eq!(
        rx.recv_timeout(PROMPT_LIMIT),
        Ok(true),
        "the reset after_func did not run"
    );
    assert!(!timer.clone().reset(SOON), "it had fired");
    assert_eq!(
        rx.recv_timeout(PROMPT_LIMIT),
        Ok(true),
        "a reset after the run did not run it again"
    );
}

#[test]
fn after_func_stop_prevents_it_and_reset_runs_it_again_in_a_goroutine() {
    watchdog("after_func stop and reset", HANG_LIMIT, || {
        runtime(2).block_on(|| stop_prevents_and_reset_repeats(&|d, f| time::after_func(d, f)));
    });
}

#[test]
fn runtime_after_func_from_a_plain_thread_stops_and_runs_in_a_goroutine() {
    watchdog("Runtime::after_func", HANG_LIMIT, || {
        let rt = runtime(2);
        stop_prevents_and_reset_repeats(&|d, f| rt.after_func(d, f));
    });
}

#[test]
fn after_func_stop_racing_the_firing_runs_it_exactly_when_stop_says_so() {
    watchdog("after_func stop racing the firing", HANG_LIMIT, || {
        runtime(2).block_on(|| {
            let (tx, rx) = chan::unbounded();
            let (mut stopped, mut ran) = (0, 0);
            for round in 0..ROUNDS {
                let tx = tx.clone();
                let timer = time::after_func(FIRE_AFTER, move || tx.send(round).unwrap());
                let until = Instant::now() + delay_of(round);
                while Instant::now() < until {
                    scheduler::yield_now();
                }
                if timer.stop() {
                    stopped += 1;
                } else {
                    // A run of an earlier round that stop claimed would show up here instead.
                    assert_eq!(rx.recv_timeout(PROMPT_LIMIT), Ok(round), "round {round}");
                    ran += 1;
                }
            }
            assert_eq!(
                rx.recv_timeout(QUIET),
                Err(RecvTimeoutError::Timeout),
                "an after_func ran after stop returned true"
            );
            assert_both_sides_won((stopped, ran));
        });
    });
}

#[test]
fn after_func_outside_a_runtime_panics_at_the_call() {
    let (line, (file, at, message)) = (line!(), panic_location(|| time::after_func(SOON, || ())));
    assert!(file.ends_with("timer_api.rs"), "panicked at {file}:{at}");
    assert_eq!(at, line, "{message}");
    assert!(
        message.contains("time::after_func called outside a runtime")
            && message.contains("Runtime::after_func"),
        "{message}"
    );
}

#[test]
fn after_func_at_max_goroutines_waits_for_room_instead_of_dropping_f() {
    watchdog("after_func at capacity", HANG_LIMIT, || {
        let rt = scheduler::Runtime::builder()
            .procs(1)
            .max_goroutines(2)
            .build()
            .unwrap();
        rt.block_on(|| {
            // The main goroutine and this one fill the runtime.
            let (release_tx, release_rx) = chan::bounded::<()>(0);
            let holder = scheduler::spawn(move || release_rx.recv().unwrap());
            let (tx, rx) = chan::unbounded();
            let timer = time::after_func(Duration::from_millis(1), move || tx.send(()).unwrap());
            assert_eq!(
                rx.recv_timeout(QUIET),
                Err(RecvTimeoutError::Timeout),
                "f ran beyond max_goroutines"
            );
            assert!(
                !timer.stop(),
                "the timer had fired; its goroutine waits for room"
            );
            release_tx.send(()).unwrap();
            holder.join().unwrap();
            assert_eq!(
                rx.recv_timeout(PROMPT_LIMIT),
                Ok(()),
                "f was dropped at max_goroutines"
            );
        });
    });
}

// ---------------------------------------------------------------------------------------
// Ticker.
// ---------------------------------------------------------------------------------------

#[test]
fn ticker_reset_changes_its_period() {
    in_goroutine_and_thread("Ticker::reset", || {
        const PERIOD: Duration = Duration::from_millis(2);
        let ticker = Ticker::new(NEVER);
        let reset_at = Instant::now();
        ticker.reset(PERIOD);
        let first = ticker
            .c()
            .recv_timeout(PROMPT_LIMIT)
            .expect("no tick of the new period");
        let second = ticker
            .c()
            .recv_timeout(PROMPT_LIMIT)
            .expect("one tick only");
        assert!(first >= reset_at + PERIOD, "ticked before the new period");
        assert!(
            second >= reset_at + 2 * PERIOD,
            "ticked twice in one period"
        );
        // And back to a long period: the short one's ticks stop, none is left waiting.
        ticker.reset(NEVER);
        assert_eq!(
            ticker.c().recv_timeout(QUIET),
            Err(RecvTimeoutError::Timeout),
            "a tick of the old period came after the reset"
        );
    });
}

#[test]
fn ticker_stop_ends_the_ticks_and_takes_the_waiting_one() {
    in_goroutine_and_thread("Ticker::stop", || {
        let ticker = Ticker::new(Duration::from_millis(1));
        until_fired(ticker.c());
        ticker.stop();
        assert_eq!(
            ticker.c().try_recv(),
            Err(TryRecvError::Empty),
            "a stale tick stayed"
        );
        assert_eq!(
            ticker.c().recv_timeout(QUIET),
            Err(RecvTimeoutError::Timeout),
            "a stopped ticker ticked"
        );
        ticker.reset(Duration::from_millis(1));
        ticker
            .c()
            .recv_timeout(PROMPT_LIMIT)
            .expect("a stopped ticker did not restart on reset");
    });
}

#[test]
fn a_zero_ticker_period_panics_at_the_call() {
    let (line, (file, at, message)) = (line!(), panic_location(|| Ticker::new(Duration::ZERO)));
    assert!(file.ends_with("timer_api.rs"), "panicked at {file}:{at}");
    assert_eq!(at, line, "{message}");
    assert!(message.contains("non-zero period"), "{message}");
    let ticker = Ticker::new(NEVER);
    let message = expect_panic(|| ticker.reset(Duration::ZERO));
    assert!(message.starts_with("scheduler: "), "{message}");
}
