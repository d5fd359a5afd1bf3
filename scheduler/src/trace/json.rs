//! A [`Trace`] in the Trace Event Format (the JSON object form) that Perfetto and
//! `chrome://tracing` open.
//!
//! One process (`pid` 1, "scheduler"); one thread per worker (`tid` = the worker's index,
//! named "worker N"), and one more (`tid` = the number of workers, "other threads") for events
//! of threads that are no worker. Each run of a goroutine is a complete event (`"ph":"X"`)
//! on its worker, named `g7` or `g7 name`, with the goroutine's id, its name and why the run
//! ended in `args`. Spawns, wakes, steals, sleeps and spare starts are thread-scoped instant
//! events (`"ph":"i"`). A wake is also a flow: `"ph":"s"` where the waker was, and
//! `"ph":"f"` with `"bp":"e"` at the start of the woken goroutine's next run, sharing an
//! `id`. Times (`ts`, `dur`) are microseconds, written with nanosecond digits.

use std::io::{self, Write};
use std::time::Duration;

use super::{Mark, Thread, Trace};

const PID: u32 = 1;

impl Trace {
    /// Writes the trace as JSON in the Trace Event Format, which
    /// [Perfetto](https://ui.perfetto.dev) and `chrome://tracing` open: a lane per worker,
    /// a slice per run of a goroutine, and arrows from each wake to the run it led to. Also
    /// in the JSON, under `otherData`: the runtime's `procs` and the number of events
    /// [dropped](Self::dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(1).trace(true).build()?;
    /// rt.block_on(|| scheduler::spawn(|| 6 * 7).join().unwrap());
    /// let mut json = Vec::new();
    /// rt.stop_trace().write_json(&mut json)?;
    /// let json = String::from_utf8(json)?;
    /// assert!(json.contains(r#""ph":"X""#));
    /// // std::fs::write("trace.json", json) and open it in https://ui.perfetto.dev
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_json(&self, w: impl Write) -> io::Result<()> {
        let mut out = Json {
            w: io::BufWriter::new(w),
            first: true,
        };
        out.w.write_all(b"{\"traceEvents\":[")?;
        out.metadata(self)?;
        for run in &self.runs {
            out.event(
                &self.label(run.goroutine),
                "goroutine",
                "X",
                run.start,
                run.worker,
                |w| {
                    write!(w, ",\"dur\":{}", micros(run.end.saturating_sub(run.start)))?;
                    write!(w, ",\"args\":{{\"goroutine\":{},\"name\":", run.goroutine)?;
                    match self.name(run.goroutine) {
                        Some(name) => string(w, name)?,
                        None => w.write_all(b"null")?,
                    }
                    w.write_all(b",\"stop\":")?;
                    string(w, &run.stop.to_string())?;
                    w.write_all(b"}")
                },
            )?;
        }
        let other = self.workers;
        let tid = |thread: Thread| match thread {
            Thread::Worker(n) => n,
            Thread::Other => other,
        };
        for spawn in &self.spawns {
            out.instant(
                &format!("spawn {}", self.label(spawn.goroutine)),
                "spawn",
                spawn.at,
                tid(spawn.from),
                |w| match spawn.parent {
                    Some(parent) => write!(
                        w,
                        "{{\"goroutine\":{},\"parent\":{parent}}}",
                        spawn.goroutine
                    ),
                    None => write!(w, "{{\"goroutine\":{}}}", spawn.goroutine),
                },
            )?;
        }
        for (index, (wake, run)) in self.wakes.iter().zip(self.woken_runs()).enumerate() {
            let from = tid(wake.from);
            out.instant(
                &format!("wake {}", self.label(wake.goroutine)),
                "wake",
                wake.at,
                from,
                |w| match wake.by {
                    Some(by) => write!(w, "{{\"goroutine\":{},\"by\":{by}}}", wake.goroutine),
                    None => write!(w, "{{\"goroutine\":{}}}", wake.goroutine),
                },
            )?;
            let Some(run) = run.map(|i| self.runs[i]) else {
                continue;
            };
            let id = index + 1;
            out.event("wake", "wake", "s", wake.at, from, |w| {
                write!(w, ",\"id\":{id}")
            })?;
            out.event("wake", "wake", "f", run.start, run.worker, |w| {
                write!(w, ",\"id\":{id},\"bp\":\"e\"")
            })?;
        }
        for (at, worker, mark) in self.marks() {
            let name = match mark {
                Mark::Steal { victim, count } => format!("steal {count} from worker {victim}"),
                Mark::Sleep => "sleep".to_owned(),
                Mark::Woke => "wake up".to_owned(),
                Mark::SpareStart => "spare worker starts".to_owned(),
            };
            out.instant(&name, "worker", at, worker, |w| w.write_all(b"{}"))?;
        }
        write!(
            out.w,
            "],\"displayTimeUnit\":\"ns\",\"otherData\":{{\"procs\":{},\"dropped\":{}}}}}",
            self.procs, self.dropped
        )?;
        out.w.flush()
    }
}

/// The writer, and whether the next event is the first of the array.
struct Json<W: Write> {
    w: io::BufWriter<W>,
    first: bool,
}

impl<W: Write> Json<W> {
    /// Writes one event with the fields every event has, then `rest` (which starts with a
    /// comma), then the closing brace.
    fn event(
        &mut self,
        name: &str,
        category: &str,
        phase: &str,
        at: Duration,
        tid: usize,
        rest: impl FnOnce(&mut io::BufWriter<W>) -> io::Result<()>,
    ) -> io::Result<()> {
        if !std::mem::replace(&mut self.first, false) {
            self.w.write_all(b",\n")?;
        }
        self.w.write_all(b"{\"name\":")?;
        string(&mut self.w, name)?;
        write!(
            self.w,
            ",\"cat\":\"{category}\",\"ph\":\"{phase}\",\"ts\":{},\"pid\":{PID},\"tid\":{tid}",
            micros(at)
        )?;
        rest(&mut self.w)?;
        self.w.write_all(b"}")
    }

    /// A thread-scoped instant event with `args`.
    fn instant(
        &mut self,
        name: &str,
        category: &str,
        at: Duration,
        tid: usize,
        args: impl FnOnce(&mut io::BufWriter<W>) -> io::Result<()>,
    ) -> io::Result<()> {
        self.event(name, category, "i", at, tid, |w| {
            w.write_all(b",\"s\":\"t\",\"args\":")?;
            args(w)
        })
    }

    /// The process's and the threads' names, and the threads' order.
    fn metadata(&mut self, trace: &Trace) -> io::Result<()> {
        let name = |w: &mut io::BufWriter<W>, name: &str| {
            w.write_all(b",\"args\":{\"name\":")?;
            string(w, name)?;
            w.write_all(b"}")
        };
        self.event("process_name", "__metadata", "M", Duration::ZERO, 0, |w| {
            name(w, "scheduler")
        })?;
        for tid in 0..=trace.workers {
            let label = if tid == trace.workers {
                "other threads".to_owned()
            } else if tid >= trace.procs {
                format!("worker {tid} (spare)")
            } else {
                format!("worker {tid}")
            };
            self.event("thread_name", "__metadata", "M", Duration::ZERO, tid, |w| {
                name(w, &label)
            })?;
            self.event(
                "thread_sort_index",
                "__metadata",
                "M",
                Duration::ZERO,
                tid,
                |w| write!(w, ",\"args\":{{\"sort_index\":{tid}}}"),
            )?;
        }
        Ok(())
    }
}

/// A duration in microseconds, with its nanoseconds as decimals: `12.345`.
fn micros(d: Duration) -> String {
    let ns = d.as_nanos();
    format!("{}.{:03}", ns / 1000, ns % 1000)
}

/// Writes `s` as a JSON string.
fn string(w: &mut impl Write, s: &str) -> io::Result<()> {
    w.write_all(b"\"")?;
    for c in s.chars() {
        match c {
            '"' => w.write_all(b"\\\"")?,
            '\\' => w.write_all(b"\\\\")?,
            '\n' => w.write_all(b"\\n")?,
            c if (c as u32) < 0x20 => write!(w, "\\u{:04x}", c as u32)?,
            c => write!(w, "{c}")?,
        }
    }
    w.write_all(b"\"")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::Value;

    use super::super::build::sample;
    use super::*;

    fn events(trace: &Trace) -> (Value, Vec<Value>) {
        let mut out = Vec::new();
        trace.write_json(&mut out).unwrap();
        let json: Value = serde_json::from_slice(&out).expect("valid JSON");
        let events = json["traceEvents"].as_array().unwrap().clone();
        (json, events)
    }

    #[test]
    fn every_event_has_the_required_fields() {
        let (json, events) = events(&sample());
        assert_eq!(json["displayTimeUnit"], "ns");
        assert_eq!(json["otherData"]["dropped"], 5);
        for event in &events {
            for field in ["name", "ph", "ts", "pid", "tid"] {
                assert!(event.get(field).is_some(), "{field} missing in {event}");
            }
            assert!(event["ts"].is_number() && event["tid"].is_u64(), "{event}");
            match event["ph"].as_str().unwrap() {
                "X" => assert!(event["dur"].as_f64().unwrap() >= 0.0, "{event}"),
                "s" | "f" => assert!(event["id"].is_u64(), "{event}"),
                "i" => assert_eq!(event["s"], "t"),
                "M" => assert!(
                    event["args"]["name"].is_string() || event["args"]["sort_index"].is_u64()
                ),
                other => panic!("unexpected phase {other}"),
            }
        }
    }

    #[test]
    fn workers_are_named_threads() {
        let (_, events) = events(&sample());
        let names: Vec<(u64, &str)> = events
            .iter()
            .filter(|e| e["name"] == "thread_name")
            .map(|e| {
                (
                    e["tid"].as_u64().unwrap(),
                    e["args"]["name"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                (0, "worker 0"),
                (1, "worker 1"),
                (2, "worker 2 (spare)"),
                (3, "other threads")
            ]
        );
    }

    #[test]
    fn runs_on_one_worker_do_not_overlap() {
        let (_, events) = events(&sample());
        let mut by_tid: HashMap<u64, Vec<(f64, f64)>> = HashMap::new();
        for e in events.iter().filter(|e| e["ph"] == "X") {
            let ts = e["ts"].as_f64().unwrap();
            by_tid
                .entry(e["tid"].as_u64().unwrap())
                .or_default()
                .push((ts, ts + e["dur"].as_f64().unwrap()));
        }
        assert_eq!(by_tid.values().map(Vec::len).sum::<usize>(), 5);
        for runs in by_tid.values_mut() {
            runs.sort_by(|a, b| a.0.total_cmp(&b.0));
            for pair in runs.windows(2) {
                assert!(pair[0].1 <= pair[1].0, "overlapping runs {pair:?}");
            }
        }
        let named = events
            .iter()
            .find(|e| e["name"] == "g2 pinger <&>")
            .unwrap();
        assert_eq!(named["args"]["stop"], "preempted");
        assert_eq!(named["ts"].as_f64().unwrap(), 0.5);
    }

    #[test]
    fn each_flow_start_has_one_finish_at_a_run_start() {
        let (_, events) = events(&sample());
        let flows = |ph: &str| -> Vec<&Value> { events.iter().filter(|e| e["ph"] == ph).collect() };
        let (starts, finishes) = (flows("s"), flows("f"));
        assert_eq!(starts.len(), 1);
        assert_eq!(finishes.len(), 1);
        for start in &starts {
            let matching: Vec<_> = finishes.iter().filter(|f| f["id"] == start["id"]).collect();
            assert_eq!(matching.len(), 1);
            let finish = matching[0];
            assert_eq!(finish["bp"], "e");
            assert!(finish["ts"].as_f64() >= start["ts"].as_f64());
            // The finish is at the start of a run on its thread.
            assert!(
                events.iter().any(|e| e["ph"] == "X"
                    && e["tid"] == finish["tid"]
                    && e["ts"] == finish["ts"])
            );
        }
        assert_eq!(starts[0]["tid"], 1);
        assert_eq!(finishes[0]["tid"], 0);
    }

    #[test]
    fn an_empty_trace_is_valid_json() {
        let (json, events) = events(&Trace::empty(2));
        assert!(events.iter().all(|e| e["ph"] == "M"));
        assert_eq!(json["otherData"]["procs"], 2);
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = Vec::new();
        string(&mut out, "a\"b\\c\nd\u{1}é").unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), r#""a\"b\\c\nd\u0001é""#);
    }
}
