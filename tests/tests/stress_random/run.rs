//! Runs a generated program on a runtime and records what every goroutine saw.
//!
//! Goroutines do not assert: a failed assertion would end a goroutine early, and the others
//! could then wait for it forever, turning a clear failure into a watchdog timeout. They
//! note what they find wrong as a *problem* in their log and carry on; the checker reports
//! the problems with the rest.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scheduler::chan::{
    self, Receiver, RecvError, RecvTimeoutError, SendError, SendTimeoutError, Sender, TryRecvError,
    TrySendError,
};
use scheduler::{JoinHandle, Runtime, WaitGroup, select};

use crate::program::{Default, Drainer, NEVER, Program, Select, Spawn, Start, Step, Wait, tag};

/// Who received the values of a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Who {
    /// A script goroutine, by number.
    Goroutine(usize),
    /// A drainer, by index.
    Drainer(usize),
    /// The main goroutine, emptying each channel at the end.
    Leftovers,
}

/// What became of a tag a goroutine offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// The send completed: the tag must arrive exactly once.
    Sent,
    /// The send failed because its channel was closed, and gave the tag back.
    Closed,
    /// The send failed because there was no room (`try_send`, a timeout) and gave it back.
    NoRoom,
    /// Its `select!` arm was not the one chosen: the tag was dropped.
    NotChosen,
}

/// What one goroutine did and saw.
#[derive(Debug)]
pub struct Log {
    /// Whose log it is.
    pub who: Who,
    /// Every tag it offered, with its fate.
    pub offered: Vec<(u64, Fate)>,
    /// Every value it received, with the channel it came from, in the order received.
    pub received: Vec<(usize, u64)>,
    /// What it found wrong on the way.
    pub problems: Vec<String>,
}

impl Log {
    fn new(who: Who) -> Log {
        Log {
            who,
            offered: Vec::new(),
            received: Vec::new(),
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, what: String) {
        self.problems.push(format!("{:?}: {what}", self.who));
    }
}

/// Everything a run produced, for the checker.
#[derive(Debug)]
pub struct Outcome {
    /// One log per goroutine that finished, the main goroutine's leftovers last.
    pub logs: Vec<Log>,
    /// What the main goroutine found wrong (the count of live goroutines, closed channels).
    pub problems: Vec<String>,
}

/// What all goroutines of a run share.
struct Shared {
    program: Program,
    /// Logs of the goroutines that have finished.
    logs: Mutex<Vec<Log>>,
    /// Set by each script goroutine as the last thing it does.
    finished: Vec<AtomicBool>,
    /// Never ready to receive: main holds its sender and never sends. For switched-off
    /// receive arms.
    never_rx: Receiver<u64>,
    /// Never ready to send: a rendezvous channel whose receiver main holds and never uses.
    /// For switched-off send arms.
    never_tx: Sender<u64>,
}

/// The channel ends a goroutine holds.
struct Ends {
    /// `Some` for the channels in its script's `senders`.
    tx: Vec<Option<Sender<u64>>>,
    rx: Vec<Receiver<u64>>,
}

fn micros(us: u32) -> Duration {
    Duration::from_micros(u64::from(us))
}

/// Runs `program` on a fresh runtime with `procs` workers and returns what it saw.
pub fn run(program: &Program, procs: usize) -> Outcome {
    let rt = Runtime::builder()
        .procs(procs)
        .build()
        .unwrap_or_else(|err| panic!("cannot build a runtime with {procs} procs: {err}"));
    let program = program.clone();
    let mut outcome = rt.block_on(move || main_goroutine(program));
    let live = rt.num_goroutines();
    if live != 0 {
        outcome.problems.push(format!(
            "{live} goroutines still counted after block_on returned"
        ));
    }
    outcome
}

fn main_goroutine(program: Program) -> Outcome {
    let mut problems = Vec::new();
    let (txs, rxs): (Vec<_>, Vec<_>) = program
        .channels
        .iter()
        .map(|c| {
            let (tx, rx) = match c.capacity {
                Some(n) => chan::bounded::<u64>(n),
                None => chan::unbounded::<u64>(),
            };
            (Some(tx), rx)
        })
        .unzip();
    let (keep_never_tx, never_rx) = chan::bounded::<u64>(0);
    let (never_tx, keep_never_rx) = chan::bounded::<u64>(0);
    let shared = Arc::new(Shared {
        finished: (0..program.goroutines.len())
            .map(|_| AtomicBool::new(false))
            .collect(),
        program,
        logs: Mutex::new(Vec::new()),
        never_rx,
        never_tx,
    });

    let mut handles: Vec<(Start, JoinHandle<usize>)> = Vec::new();
    for &start in &shared.program.start {
        let shared2 = shared.clone();
        let handle = match start {
            Start::Drainer(d) => {
                let rxs = rxs.clone();
                scheduler::spawn(move || drain(&shared2, d, &rxs))
            }
            Start::Goroutine(g) => {
                let ends = ends_for(&shared, g, &txs, &rxs);
                scheduler::spawn(move || script(&shared2, g, ends))
            }
        };
        handles.push((start, handle));
    }
    // The program's channels close when the goroutines holding their senders are done.
    drop(txs);
    for (start, handle) in handles {
        let expected = match start {
            Start::Drainer(d) => d,
            Start::Goroutine(g) => g,
        };
        match handle.join() {
            Ok(value) if value == expected => {}
            Ok(value) => problems.push(format!("join of {start:?} returned {value}")),
            Err(payload) => std::panic::resume_unwind(payload),
        }
    }
    let live = scheduler::num_goroutines();
    if live != 1 {
        problems.push(format!(
            "{live} goroutines counted after every join returned (expected 1, main)"
        ));
    }

    let mut leftovers = Log::new(Who::Leftovers);
    for (c, rx) in rxs.iter().enumerate() {
        let closed = rx.is_closed();
        if !closed {
            problems.push(format!(
                "channel {c} is still open after every sender was dropped"
            ));
        }
        leftovers.received.extend(rx.try_iter().map(|v| (c, v)));
        if closed && rx.try_recv() != Err(TryRecvError::Disconnected) {
            problems.push(format!(
                "channel {c}: try_recv on closed and empty is not Disconnected"
            ));
        }
    }
    drop((keep_never_tx, keep_never_rx));
    let mut logs = std::mem::take(&mut *shared.logs.lock().unwrap());
    logs.push(leftovers);
    Outcome { logs, problems }
}

/// The ends goroutine `g` starts with, cloned from its spawner's: senders of the channels in
/// its `senders` (a subset of its parent's), a receiver of every channel.
fn ends_for(shared: &Shared, g: usize, txs: &[Option<Sender<u64>>], rxs: &[Receiver<u64>]) -> Ends {
    let mut tx: Vec<Option<Sender<u64>>> = vec![None; txs.len()];
    for &c in &shared.program.goroutines[g].senders {
        tx[c] = Some(
            txs[c]
                .clone()
                .expect("a parent holds every sender its children hold"),
        );
    }
    Ends {
        tx,
        rx: rxs.to_vec(),
    }
}

/// A drainer: receives until its channels are closed and empty. Returns its index.
fn drain(shared: &Shared, d: usize, rxs: &[Receiver<u64>]) -> usize {
    let mut log = Log::new(Who::Drainer(d));
    match shared.program.drainers[d] {
        Drainer::Iter(c) => log.received.extend(rxs[c].iter().map(|v| (c, v))),
        Drainer::Timeout(c, us) => loop {
            match rxs[c].recv_timeout(micros(us)) {
                Ok(v) => log.received.push((c, v)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        },
        Drainer::Pair(a, b) => {
            let rest = loop {
                select! {
                    recv(rxs[a]) -> v => match v {
                        Ok(v) => log.received.push((a, v)),
                        Err(RecvError) => break b,
                    },
                    recv(rxs[b]) -> v => match v {
                        Ok(v) => log.received.push((b, v)),
                        Err(RecvError) => break a,
                    },
                }
            };
            log.received.extend(rxs[rest].iter().map(|v| (rest, v)));
        }
    }
    shared.logs.lock().unwrap().push(log);
    d
}

/// The arm a `select!` step completed.
enum Picked {
    Recv(usize, Result<u64, RecvError>),
    Send(usize, Result<(), SendError<u64>>),
    Default,
}

/// One script goroutine at work.
struct Goroutine<'a> {
    shared: &'a Arc<Shared>,
    me: usize,
    ends: Ends,
    log: Log,
    /// Sequence number of its next tag.
    seq: u32,
    /// Channels it has closed itself: sends on them must fail from then on.
    closed: Vec<usize>,
    wg: WaitGroup,
    children: Vec<(usize, Spawn, JoinHandle<usize>)>,
}

/// Runs script `me` and returns its number.
fn script(shared: &Arc<Shared>, me: usize, ends: Ends) -> usize {
    let mut g = Goroutine {
        shared,
        me,
        ends,
        log: Log::new(Who::Goroutine(me)),
        seq: 0,
        closed: Vec::new(),
        wg: WaitGroup::new(),
        children: Vec::new(),
    };
    for &step in &shared.program.goroutines[me].steps {
        g.step(step);
    }
    for (child, _, handle) in std::mem::take(&mut g.children) {
        match handle.join() {
            Ok(value) if value == child => {}
            Ok(value) => g
                .log
                .problem(format!("join of child {child} returned {value}")),
            Err(payload) => std::panic::resume_unwind(payload),
        }
        if !shared.finished[child].load(Ordering::Acquire) {
            g.log
                .problem(format!("join of child {child} returned before it finished"));
        }
    }
    shared.logs.lock().unwrap().push(g.log);
    // Pairs with the Acquire loads of the parent after its join or WaitGroup wait.
    shared.finished[me].store(true, Ordering::Release);
    me
}

impl Goroutine<'_> {
    fn next_tag(&mut self, chan: usize) -> u64 {
        let tag = tag(self.me, chan, self.seq);
        self.seq += 1;
        tag
    }

    fn sender(&self, chan: usize) -> &Sender<u64> {
        self.ends.tx[chan]
            .as_ref()
            .expect("the generator gives a goroutine the senders of the channels it uses")
    }

    /// Records the fate of a send that gave `back` back (or `None` when it completed).
    fn offered(&mut self, chan: usize, tag: u64, fate: Fate, back: Option<u64>) {
        if let Some(back) = back
            && back != tag
        {
            self.log
                .problem(format!("a failed send of {tag:#x} gave back {back:#x}"));
        }
        let closed = self.sender(chan).is_closed();
        match fate {
            Fate::Closed if !closed => self.log.problem(format!(
                "a send on channel {chan} failed as closed, yet the channel is open"
            )),
            Fate::Sent | Fate::NoRoom if self.closed.contains(&chan) => self.log.problem(format!(
                "a send on channel {chan} ended {fate:?} after this goroutine closed it"
            )),
            Fate::NoRoom if self.shared.program.channels[chan].capacity.is_none() => self
                .log
                .problem(format!("a send on unbounded channel {chan} found no room")),
            _ => {}
        }
        self.log.offered.push((tag, fate));
    }

    /// Records a receive on `chan` that failed as closed.
    fn recv_closed(&mut self, chan: usize) {
        if !self.ends.rx[chan].is_closed() {
            self.log.problem(format!(
                "a receive on channel {chan} failed as closed, yet the channel is open"
            ));
        }
    }

    fn step(&mut self, step: Step) {
        match step {
            Step::Send { chan, wait } => {
                let tag = self.next_tag(chan);
                let tx = self.sender(chan);
                let (fate, back) = match wait {
                    Wait::Block => match tx.send(tag) {
                        Ok(()) => (Fate::Sent, None),
                        Err(SendError(v)) => (Fate::Closed, Some(v)),
                    },
                    Wait::Try => match tx.try_send(tag) {
                        Ok(()) => (Fate::Sent, None),
                        Err(TrySendError::Full(v)) => (Fate::NoRoom, Some(v)),
                        Err(TrySendError::Disconnected(v)) => (Fate::Closed, Some(v)),
                    },
                    Wait::Timeout(us) => match tx.send_timeout(tag, micros(us)) {
                        Ok(()) => (Fate::Sent, None),
                        Err(SendTimeoutError::Timeout(v)) => (Fate::NoRoom, Some(v)),
                        Err(SendTimeoutError::Disconnected(v)) => (Fate::Closed, Some(v)),
                    },
                };
                self.offered(chan, tag, fate, back);
            }
            Step::Recv { chan, wait } => {
                let rx = &self.ends.rx[chan];
                let got = match wait {
                    Wait::Block => rx.recv().map_err(|RecvError| true),
                    Wait::Try => rx.try_recv().map_err(|e| e == TryRecvError::Disconnected),
                    Wait::Timeout(us) => rx
                        .recv_timeout(micros(us))
                        .map_err(|e| e == RecvTimeoutError::Disconnected),
                };
                match got {
                    Ok(v) => self.log.received.push((chan, v)),
                    Err(true) => self.recv_closed(chan),
                    Err(false) => {}
                }
            }
            Step::Select(select) => self.select(select),
            Step::Yield => scheduler::yield_now(),
            Step::Sleep(us) => scheduler::sleep(micros(us)),
            Step::Spawn { child, how } => {
                let ends = ends_for(self.shared, child, &self.ends.tx, &self.ends.rx);
                let shared = self.shared.clone();
                let f = move || script(&shared, child, ends);
                let handle = match how {
                    Spawn::Join => scheduler::spawn(f),
                    Spawn::WaitGroup => self.wg.go(f),
                };
                self.children.push((child, how, handle));
            }
            Step::Wait => {
                self.wg.wait();
                for &(child, how, _) in &self.children {
                    if how == Spawn::WaitGroup
                        && !self.shared.finished[child].load(Ordering::Acquire)
                    {
                        self.log.problem(format!(
                            "WaitGroup::wait returned before child {child} finished"
                        ));
                    }
                }
            }
            Step::Close(chan) => {
                let tx = self.sender(chan);
                tx.close();
                if !tx.is_closed() {
                    self.log
                        .problem(format!("channel {chan} is open right after close"));
                }
                self.closed.push(chan);
            }
        }
    }

    fn select(&mut self, select: Select) {
        let tags = select
            .send
            .map(|slot| slot.map_or(NEVER, |c| self.next_tag(c)));
        let shared = self.shared;
        let rx = |slot: Option<usize>| slot.map_or(&shared.never_rx, |c| &self.ends.rx[c]);
        let tx = |slot: Option<usize>| slot.map_or(&shared.never_tx, |c| self.sender(c));
        let (r0, r1) = (rx(select.recv[0]), rx(select.recv[1]));
        let (s0, s1) = (tx(select.send[0]), tx(select.send[1]));
        let picked = match select.default {
            Default::None => select! {
                recv(r0) -> v => Picked::Recv(0, v),
                recv(r1) -> v => Picked::Recv(1, v),
                send(s0, tags[0]) -> r => Picked::Send(0, r),
                send(s1, tags[1]) -> r => Picked::Send(1, r),
            },
            Default::Now => select! {
                recv(r0) -> v => Picked::Recv(0, v),
                recv(r1) -> v => Picked::Recv(1, v),
                send(s0, tags[0]) -> r => Picked::Send(0, r),
                send(s1, tags[1]) -> r => Picked::Send(1, r),
                default => Picked::Default,
            },
            Default::After(us) => select! {
                recv(r0) -> v => Picked::Recv(0, v),
                recv(r1) -> v => Picked::Recv(1, v),
                send(s0, tags[0]) -> r => Picked::Send(0, r),
                send(s1, tags[1]) -> r => Picked::Send(1, r),
                default(micros(us)) => Picked::Default,
            },
        };
        let mut chosen_send = None;
        match picked {
            Picked::Recv(arm, v) => match (select.recv[arm], v) {
                (None, v) => self.log.problem(format!(
                    "switched-off receive arm {arm} completed with {v:?}"
                )),
                (Some(c), Ok(v)) => self.log.received.push((c, v)),
                (Some(c), Err(RecvError)) => self.recv_closed(c),
            },
            Picked::Send(arm, r) => match select.send[arm] {
                None => self
                    .log
                    .problem(format!("switched-off send arm {arm} completed with {r:?}")),
                Some(c) => {
                    chosen_send = Some(arm);
                    match r {
                        Ok(()) => self.offered(c, tags[arm], Fate::Sent, None),
                        Err(SendError(v)) => self.offered(c, tags[arm], Fate::Closed, Some(v)),
                    }
                }
            },
            Picked::Default => {}
        }
        for (arm, (slot, tag)) in select.send.into_iter().zip(tags).enumerate() {
            if let Some(c) = slot
                && chosen_send != Some(arm)
            {
                self.offered(c, tag, Fate::NotChosen, None);
            }
        }
    }
}
