//! The demo's `--trace`: Chrome trace-event JSON that Perfetto opens, and what it shows about
//! the counters on one proc and on two.

mod common;

use serde_json::{Map, Value};

use common::demo_file;

/// The JSON the demo writes with `--trace` and `args`.
fn trace_of(args: &[&str]) -> Value {
    let bytes = demo_file("--trace", "trace.json", args);
    serde_json::from_slice(&bytes).expect("--trace writes JSON")
}

/// A run of a goroutine: a complete event (`"ph":"X"`).
#[derive(Debug, Clone, Copy)]
struct Run<'a> {
    name: &'a str,
    worker: u64,
    start: f64,
    end: f64,
}

/// The runs of goroutines named `A` and `B`.
fn counter_runs(trace: &Value) -> Vec<Run<'_>> {
    events(trace)
        .filter(|e| e["ph"] == "X")
        .filter_map(|e| {
            let name = e["args"]["name"].as_str()?;
            let start = e["ts"].as_f64().unwrap();
            Some(Run {
                name,
                worker: e["tid"].as_u64().unwrap(),
                start,
                end: start + e["dur"].as_f64().unwrap(),
            })
        })
        .filter(|run| run.name == "A" || run.name == "B")
        .collect()
}

fn events(trace: &Value) -> impl Iterator<Item = &Map<String, Value>> {
    trace["traceEvents"]
        .as_array()
        .expect("traceEvents is an array")
        .iter()
        .map(|e| e.as_object().expect("every event is an object"))
}

/// The pairs of a run of A and a run of B on different workers that overlap in time.
fn parallel_pairs<'a>(runs: &[Run<'a>]) -> Vec<(Run<'a>, Run<'a>)> {
    let of = |name| runs.iter().filter(move |r| r.name == name);
    of("A")
        .flat_map(|a| of("B").map(move |b| (*a, *b)))
        .filter(|(a, b)| a.worker != b.worker && a.start.max(b.start) < a.end.min(b.end))
        .collect()
}

#[test]
fn trace_json_has_the_trace_event_format_s_required_fields() {
    for args in [&["--procs", "1"][..], &["--procs", "2"], &["--yield"]] {
        let trace = trace_of(args);
        let mut complete = 0;
        for event in events(&trace) {
            let ph = event
                .get("ph")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{args:?}: no ph in {event:?}"));
            assert_eq!(ph.len(), 1, "{args:?}: ph {ph:?}");
            assert!(event.get("name").is_some_and(Value::is_string), "{event:?}");
            assert!(event.get("pid").is_some_and(Value::is_u64), "{event:?}");
            assert!(event.get("tid").is_some_and(Value::is_u64), "{event:?}");
            // Metadata events (`M`) carry no time; every other kind does.
            if ph != "M" {
                let ts = event.get("ts").and_then(Value::as_f64);
                assert!(ts.is_some_and(|ts| ts >= 0.0), "{args:?}: ts of {event:?}");
            }
            if ph == "X" {
                complete += 1;
                let dur = event.get("dur").and_then(Value::as_f64);
                assert!(dur.is_some_and(|d| d >= 0.0), "{args:?}: dur of {event:?}");
            }
        }
        // At least the main goroutine's first run and one run of each counter.
        assert!(complete >= 3, "{args:?}: {complete} runs");
        let names: Vec<&str> = counter_runs(&trace).iter().map(|r| r.name).collect();
        assert!(
            names.contains(&"A") && names.contains(&"B"),
            "{args:?}: {names:?}"
        );
    }
}

#[test]
fn two_procs_run_the_counters_at_the_same_moment_on_two_workers() {
    // Guaranteed by the start line, not by luck: on two procs the first counter there spins
    // without suspending, so its run (one run: it never parks, yields or is preempted, since
    // it reaches no checkpoint) lasts from before it arrives until it has seen the second
    // arrive and printed its lines. The second cannot start on the spinner's worker, and its
    // run covers its arrival, which the spinner's run covers too. So some run of A and some
    // run of B, on two workers, overlap, however the OS schedules the threads.
    for _ in 0..10 {
        let trace = trace_of(&["--procs", "2"]);
        let runs = counter_runs(&trace);
        assert!(!parallel_pairs(&runs).is_empty(), "no overlap: {runs:#?}");
    }
}

#[test]
fn one_proc_runs_everything_on_worker_0_and_nothing_at_once() {
    for args in [&["--procs", "1"][..], &["--yield"]] {
        let trace = trace_of(args);
        let mut runs: Vec<(f64, f64)> = Vec::new();
        for e in events(&trace).filter(|e| e["ph"] == "X") {
            assert_eq!(e["tid"], 0, "{args:?}: {e:?}");
            let start = e["ts"].as_f64().unwrap();
            runs.push((start, start + e["dur"].as_f64().unwrap()));
        }
        for pair in runs.windows(2) {
            // Sorted by start; a run's end is rounded to the nanosecond, as is the next start.
            assert!(pair[0].1 <= pair[1].0 + 0.001, "{args:?}: {pair:?}");
        }
        assert_eq!(trace["otherData"]["procs"], 1);
    }
}
