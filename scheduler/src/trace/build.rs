//! Making a [`Trace`] out of what the recorder kept: pairing each worker's run starts with
//! their stops, and merging the threads' events in time order.

use std::time::Duration;

use super::{Mark, Run, Spawn, Stop, Thread, Trace, WaitReason, Wake};
use crate::sched::trace::{RawKind, RawStop, Recorded};

impl Trace {
    /// An empty trace of a runtime with `procs` workers: what `stop_trace` returns when no
    /// trace was being recorded.
    pub(crate) fn empty(procs: usize) -> Trace {
        Trace {
            procs,
            workers: procs,
            ..Trace::default()
        }
    }

    /// The trace of what `recorded` holds.
    pub(crate) fn from_recorded(recorded: Recorded) -> Trace {
        let Recorded {
            procs,
            buffers,
            dropped,
            span,
        } = recorded;
        let span = Duration::from_nanos(span);
        let other = buffers.len().saturating_sub(1);
        let mut trace = Trace {
            procs,
            workers: procs,
            span,
            dropped,
            ..Trace::default()
        };
        for (index, events) in buffers.into_iter().enumerate() {
            let thread = if index == other {
                Thread::Other
            } else {
                Thread::Worker(index)
            };
            if !events.is_empty() && index != other {
                trace.workers = trace.workers.max(index + 1);
            }
            // The run in progress on this worker: its goroutine and start.
            let mut open: Option<(u64, Duration)> = None;
            for event in events {
                let at = Duration::from_nanos(event.at);
                match event.kind {
                    RawKind::Created {
                        goroutine,
                        parent,
                        name,
                    } => {
                        trace.goroutines.insert(goroutine, name);
                        trace.spawns.push(Spawn {
                            goroutine,
                            parent,
                            from: thread,
                            at,
                        });
                    }
                    RawKind::RunStart { goroutine } => {
                        if let Some((previous, start)) = open.take() {
                            // Its stop did not fit in the buffer: end it here.
                            trace.push_run(index, previous, start, at, Stop::Running);
                        }
                        open = Some((goroutine, at));
                    }
                    RawKind::RunStop { goroutine, why } => {
                        // A run with no start began before the trace did.
                        let start = match open.take() {
                            Some((started, start)) if started == goroutine => start,
                            _ => Duration::ZERO,
                        };
                        trace.push_run(index, goroutine, start, at, stop_of(why));
                    }
                    RawKind::Wake { goroutine, by } => {
                        trace.goroutines.entry(goroutine).or_default();
                        trace.wakes.push(Wake {
                            goroutine,
                            by,
                            from: thread,
                            at,
                        });
                    }
                    RawKind::Steal { victim, count } => {
                        trace.marks.push((at, index, Mark::Steal { victim, count }));
                    }
                    RawKind::Sleep => trace.marks.push((at, index, Mark::Sleep)),
                    RawKind::Woke => trace.marks.push((at, index, Mark::Woke)),
                    RawKind::SpareStart { worker } => {
                        trace.workers = trace.workers.max(worker + 1);
                        trace.marks.push((at, worker, Mark::SpareStart));
                    }
                }
            }
            if let Some((goroutine, start)) = open {
                trace.push_run(index, goroutine, start, span.max(start), Stop::Running);
            }
        }
        // Stable sorts: events of one thread keep their order at equal times.
        trace.runs.sort_by_key(|run| (run.start, run.end));
        trace.wakes.sort_by_key(|wake| wake.at);
        trace.spawns.sort_by_key(|spawn| spawn.at);
        trace.marks.sort_by_key(|&(at, worker, _)| (at, worker));
        trace
    }

    fn push_run(
        &mut self,
        worker: usize,
        goroutine: u64,
        start: Duration,
        end: Duration,
        stop: Stop,
    ) {
        self.goroutines.entry(goroutine).or_default();
        self.runs.push(Run {
            worker,
            goroutine,
            start,
            end,
            stop,
        });
    }

    /// For each wake, the index in `runs` of the woken goroutine's first run that starts at or
    /// after it, if the trace has one.
    pub(super) fn woken_runs(&self) -> Vec<Option<usize>> {
        let mut by_goroutine: std::collections::HashMap<u64, Vec<usize>> = Default::default();
        for (index, run) in self.runs.iter().enumerate() {
            by_goroutine.entry(run.goroutine).or_default().push(index);
        }
        self.wakes
            .iter()
            .map(|wake| {
                let runs = by_goroutine.get(&wake.goroutine)?;
                let first = runs.partition_point(|&i| self.runs[i].start < wake.at);
                runs.get(first).copied()
            })
            .collect()
    }

    /// The spans in which goroutine runs were blocked, per goroutine: from the end of a run
    /// that stopped to wait until the start of its next run (or the end of the trace).
    pub(super) fn blocked_spans(&self) -> Vec<(u64, Duration, Duration)> {
        let mut last: std::collections::HashMap<u64, Duration> = Default::default();
        let mut spans = Vec::new();
        for run in &self.runs {
            if let Some(since) = last.remove(&run.goroutine) {
                spans.push((run.goroutine, since, run.start));
            }
            if matches!(run.stop, Stop::Blocked(_)) {
                last.insert(run.goroutine, run.end);
            }
        }
        spans.extend(last.into_iter().map(|(g, since)| (g, since, self.span)));
        spans.sort_by_key(|&(g, since, _)| (g, since));
        spans
    }

    /// The marks (steals, sleeps, spare starts), for the writers.
    pub(super) fn marks(&self) -> impl Iterator<Item = (Duration, usize, Mark)> + '_ {
        self.marks.iter().copied()
    }
}

fn stop_of(why: RawStop) -> Stop {
    match why {
        RawStop::Yield => Stop::Yield,
        RawStop::Preempted => Stop::Preempted,
        RawStop::Park(kind) => Stop::Blocked(WaitReason::from_kind(kind)),
        RawStop::Finished => Stop::Finished,
    }
}

/// A small trace for the writers' tests: two workers, goroutine 1 ("main") on worker 0
/// blocks on a channel, goroutine 2 runs on worker 1 and wakes it, goroutine 3 is spawned,
/// stolen and runs on worker 0, and a plain thread wakes nobody in particular.
#[cfg(test)]
pub(super) fn sample() -> Trace {
    use crate::sched::trace::RawEvent;
    use crate::wait::BlockKind;

    let ev = |at: u64, kind: RawKind| RawEvent { at, kind };
    let worker0 = vec![
        ev(100, RawKind::RunStart { goroutine: 1 }),
        ev(
            200,
            RawKind::Created {
                goroutine: 2,
                parent: Some(1),
                name: Some("pinger <&>".into()),
            },
        ),
        ev(
            300,
            RawKind::Created {
                goroutine: 3,
                parent: Some(1),
                name: None,
            },
        ),
        ev(
            1_000,
            RawKind::RunStop {
                goroutine: 1,
                why: RawStop::Park(BlockKind::ChannelReceive),
            },
        ),
        ev(1_100, RawKind::RunStart { goroutine: 3 }),
        ev(
            1_500,
            RawKind::RunStop {
                goroutine: 3,
                why: RawStop::Finished,
            },
        ),
        ev(1_600, RawKind::Sleep),
        ev(2_400, RawKind::Woke),
        ev(2_500, RawKind::RunStart { goroutine: 1 }),
        ev(
            3_000,
            RawKind::RunStop {
                goroutine: 1,
                why: RawStop::Finished,
            },
        ),
    ];
    let worker1 = vec![
        ev(
            400,
            RawKind::Steal {
                victim: 0,
                count: 1,
            },
        ),
        ev(500, RawKind::RunStart { goroutine: 2 }),
        ev(
            2_000,
            RawKind::Wake {
                goroutine: 1,
                by: Some(2),
            },
        ),
        ev(
            2_200,
            RawKind::RunStop {
                goroutine: 2,
                why: RawStop::Preempted,
            },
        ),
        ev(2_300, RawKind::RunStart { goroutine: 2 }),
    ];
    let other = vec![ev(50, RawKind::SpareStart { worker: 2 })];
    Trace::from_recorded(Recorded {
        procs: 2,
        buffers: vec![worker0, worker1, Vec::new(), other],
        dropped: 5,
        span: 4_000,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_pair_starts_with_stops_per_worker() {
        let trace = sample();
        let runs: Vec<(usize, u64, u64, u64, Stop)> = trace
            .runs()
            .map(|r| {
                let ns = |d: Duration| d.as_nanos() as u64;
                (r.worker, r.goroutine, ns(r.start), ns(r.end), r.stop)
            })
            .collect();
        assert_eq!(
            runs,
            [
                (0, 1, 100, 1_000, Stop::Blocked(WaitReason::ChannelReceive)),
                (1, 2, 500, 2_200, Stop::Preempted),
                (0, 3, 1_100, 1_500, Stop::Finished),
                (1, 2, 2_300, 4_000, Stop::Running),
                (0, 1, 2_500, 3_000, Stop::Finished),
            ]
        );
        assert_eq!(trace.workers(), 3, "the spare started in slot 2 shows");
        assert_eq!(trace.procs(), 2);
        assert_eq!(trace.dropped(), 5);
        assert_eq!(trace.name(2), Some("pinger <&>"));
        assert_eq!(trace.goroutines().collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn a_wake_leads_to_the_next_run_of_the_goroutine_woken() {
        let trace = sample();
        let wake = trace.wakes().next().unwrap();
        assert_eq!(
            (wake.goroutine, wake.by, wake.from),
            (1, Some(2), Thread::Worker(1))
        );
        let runs: Vec<Run> = trace.runs().collect();
        let woken = trace.woken_runs();
        assert_eq!(woken.len(), 1);
        assert_eq!(runs[woken[0].unwrap()].start, Duration::from_nanos(2_500));
        assert_eq!(
            trace.blocked_spans(),
            [(1, Duration::from_nanos(1_000), Duration::from_nanos(2_500))]
        );
    }

    #[test]
    fn a_run_that_began_before_the_trace_starts_at_zero() {
        let trace = Trace::from_recorded(Recorded {
            procs: 1,
            buffers: vec![
                vec![crate::sched::trace::RawEvent {
                    at: 70,
                    kind: RawKind::RunStop {
                        goroutine: 4,
                        why: RawStop::Yield,
                    },
                }],
                Vec::new(),
            ],
            dropped: 0,
            span: 100,
        });
        let run = trace.runs().next().unwrap();
        assert_eq!(
            (run.start, run.end),
            (Duration::ZERO, Duration::from_nanos(70))
        );
    }
}
