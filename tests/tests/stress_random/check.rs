//! The model a run is checked against: what must have been delivered, and to whom.

use std::collections::HashMap;

use crate::program::{NEVER, Program, Step, untag};
use crate::run::{Fate, Outcome, Who};

/// How much a run did: to see that the programs exercise delivery, not only failed tries.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Sends that completed (each delivered exactly once).
    pub sent: usize,
    /// Sends that failed on a closed channel.
    pub closed: usize,
    /// Sends that found no room (`try_send`, a timeout).
    pub no_room: usize,
    /// Send arms of `select!` that were not chosen.
    pub not_chosen: usize,
    /// Values still buffered at the end, taken by the main goroutine.
    pub leftovers: usize,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.sent += other.sent;
        self.closed += other.closed;
        self.no_room += other.no_room;
        self.not_chosen += other.not_chosen;
        self.leftovers += other.leftovers;
    }
}

/// Checks `outcome` against the model of `program` and returns what it did, or every
/// violation found.
///
/// The model:
/// * every goroutine the program spawns finished, once (and the runtime counted none left);
/// * every tag whose send completed was received exactly once, by a goroutine or left in
///   its channel's buffer at the end (nothing lost, nothing duplicated), on the channel it
///   was sent on; a tag whose send failed or whose arm was not chosen was received nowhere;
/// * each receiver got the tags of one sender on one channel in the order they were sent;
/// * a send failed as closed only on a channel the program closes explicitly (main keeps a
///   receiver of each channel, and senders stay alive while anyone sends);
/// * a drained channel is empty at the end;
/// * plus what the goroutines noted on the way (see `run`).
pub fn check(program: &Program, outcome: &Outcome) -> Result<Counts, Vec<String>> {
    let mut problems = outcome.problems.clone();
    let mut counts = Counts::default();

    let mut seen: HashMap<Who, usize> = HashMap::new();
    for log in &outcome.logs {
        *seen.entry(log.who).or_default() += 1;
        problems.extend(log.problems.iter().cloned());
    }
    let expected = (0..program.goroutines.len())
        .map(Who::Goroutine)
        .chain((0..program.drainers.len()).map(Who::Drainer))
        .chain([Who::Leftovers]);
    for who in expected {
        match seen.remove(&who).unwrap_or(0) {
            1 => {}
            n => problems.push(format!("{who:?} finished {n} times (expected once)")),
        }
    }
    for (who, n) in seen {
        problems.push(format!(
            "{who:?} is not in the program, yet finished {n} times"
        ));
    }

    let closed_explicitly: Vec<bool> = (0..program.channels.len())
        .map(|c| {
            program
                .goroutines
                .iter()
                .flat_map(|s| &s.steps)
                .any(|step| *step == Step::Close(c))
        })
        .collect();
    let mut fates: HashMap<u64, Fate> = HashMap::new();
    for log in &outcome.logs {
        for &(tag, fate) in &log.offered {
            if fates.insert(tag, fate).is_some() {
                problems.push(format!("tag {tag:#x} was offered twice"));
            }
            match fate {
                Fate::Sent => counts.sent += 1,
                Fate::Closed => {
                    counts.closed += 1;
                    let (_, chan, _) = untag(tag);
                    if !closed_explicitly[chan] {
                        problems.push(format!(
                            "send of {tag:#x} failed as closed, but nothing closes channel {chan}"
                        ));
                    }
                }
                Fate::NoRoom => counts.no_room += 1,
                Fate::NotChosen => counts.not_chosen += 1,
            }
        }
    }

    let mut arrivals: HashMap<u64, Vec<Who>> = HashMap::new();
    for log in &outcome.logs {
        // Per (sender, channel): the sequence number of the last tag this receiver got.
        let mut last: HashMap<(usize, usize), u32> = HashMap::new();
        for &(chan, tag) in &log.received {
            if log.who == Who::Leftovers {
                counts.leftovers += 1;
                if program.channels[chan].drained {
                    problems.push(format!(
                        "drained channel {chan} still held {tag:#x} after its drainers ended"
                    ));
                }
            }
            if tag == NEVER {
                problems.push(format!(
                    "{:?} received the value of a switched-off send arm on channel {chan}",
                    log.who
                ));
                continue;
            }
            let (sender, sent_on, seq) = untag(tag);
            if sent_on != chan {
                problems.push(format!(
                    "{:?} received {tag:#x} on channel {chan}, but it was sent on {sent_on}",
                    log.who
                ));
            }
            if let Some(&prev) = last.get(&(sender, chan))
                && prev >= seq
            {
                problems.push(format!(
                    "{:?} received goroutine {sender}'s tags on channel {chan} out of order: \
                     #{prev} before #{seq}",
                    log.who
                ));
            }
            last.insert((sender, chan), seq);
            arrivals.entry(tag).or_default().push(log.who);
        }
    }
    for (&tag, &fate) in &fates {
        let arrived = arrivals.remove(&tag).unwrap_or_default();
        match (fate, arrived.len()) {
            (Fate::Sent, 1) | (Fate::Closed | Fate::NoRoom | Fate::NotChosen, 0) => {}
            (Fate::Sent, 0) => problems.push(format!("tag {tag:#x} was sent and lost")),
            (fate, _) => problems.push(format!(
                "tag {tag:#x} ({fate:?}) was received by {arrived:?}"
            )),
        }
    }
    for (tag, arrived) in arrivals {
        problems.push(format!(
            "tag {tag:#x} was received by {arrived:?} but never offered"
        ));
    }

    if problems.is_empty() {
        Ok(counts)
    } else {
        problems.sort();
        Err(problems)
    }
}
