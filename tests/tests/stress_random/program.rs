//! The generator: a small seeded PRNG and the random programs it makes.
//!
//! A program is pure data, a function of its seed alone, so a seed printed by a failing run
//! replays the same program (the interleaving differs from run to run; that is what a stress
//! test samples). Every program terminates by construction; [`generate`] says why.

use std::fmt::Write as _;

/// The most script goroutines a program has (the main goroutine and the drainers aside).
pub const MAX_GOROUTINES: usize = 32;

/// The longest sleep or timeout a program uses, in microseconds.
pub const MAX_MICROS: u32 = 200;

/// The shortest timeout of a drainer's receive loop, in microseconds: a loop of zero timeouts
/// would never wait, and goroutines are not preempted.
const DRAINER_MIN_MICROS: u32 = 10;

/// The most steps a script has.
const MAX_STEPS: usize = 20;

/// How deep goroutines spawn children: a top-level goroutine is at depth 0.
const MAX_DEPTH: usize = 2;

/// SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
/// OOPSLA 2014): one add and two multiply-xorshifts per number, and any seed, zero included,
/// gives a good stream.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose stream is a function of `seed` alone.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (the modulo bias is below 2^-50 for the small `n` used here).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below(0)");
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p` percent.
    pub fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }

    /// A duration in microseconds, uniform in `lo..=MAX_MICROS`.
    pub fn micros(&mut self, lo: u32) -> u32 {
        self.range(lo as usize, MAX_MICROS as usize) as u32
    }

    /// One of `items`, uniformly.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// Shuffles `items` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// A generated program: channels, the scripts of its goroutines, the drainers that empty the
/// channels, and the order in which the main goroutine starts them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// The seed it was generated from.
    pub seed: u64,
    /// Every channel carries `u64` tags (see [`tag`]).
    pub channels: Vec<Channel>,
    /// Script goroutines, indexed by goroutine number, in preorder: a goroutine's children
    /// (spawned by its [`Step::Spawn`] steps) have higher numbers than it.
    pub goroutines: Vec<Script>,
    /// Goroutines that receive from a channel until it is closed and empty.
    pub drainers: Vec<Drainer>,
    /// What the main goroutine spawns, in order; then it drops its senders and joins them all.
    pub start: Vec<Start>,
}

/// One channel of a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channel {
    /// `Some(n)`: `chan::bounded(n)` (0 is a rendezvous channel); `None`: `chan::unbounded()`.
    pub capacity: Option<usize>,
    /// Whether drainers receive from it until it closes. Only sends to a drained or unbounded
    /// channel may block without a bound: on an undrained bounded channel nothing guarantees
    /// room, so its sends try, time out, or sit in a `select!` with another way out.
    pub drained: bool,
}

/// The steps of one goroutine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// The goroutine that spawns it; `None` for one the main goroutine starts.
    pub parent: Option<usize>,
    /// What it does, in order.
    pub steps: Vec<Step>,
    /// The channels it holds a `Sender` of: those that it or one of its descendants sends on
    /// or closes. It drops them when it ends, after joining its children.
    pub senders: Vec<usize>,
}

/// How a send or a receive waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// `send` or `recv`: until it completes or the channel closes.
    Block,
    /// `try_send` or `try_recv`: not at all.
    Try,
    /// `send_timeout` or `recv_timeout`, with this many microseconds.
    Timeout(u32),
}

/// The default arm of a `select!` step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Default {
    /// No default arm: the select blocks until an operation completes.
    None,
    /// `default => ..`: runs if nothing is ready now.
    Now,
    /// `default(timeout) => ..`, with this many microseconds.
    After(u32),
}

/// A `select!` step. It always has four operation arms, receive, receive, send, send; a slot
/// that is `None` is switched off (it points at a channel that is never ready), and two or
/// three slots are on. A channel may appear in several slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Select {
    /// Channels of the two receive arms.
    pub recv: [Option<usize>; 2],
    /// Channels of the two send arms.
    pub send: [Option<usize>; 2],
    /// Its default arm.
    pub default: Default,
}

/// How a goroutine spawns a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spawn {
    /// `scheduler::spawn`; the parent joins it when its script ends.
    Join,
    /// `wg.go` on the parent's `WaitGroup`; [`Step::Wait`] waits for it, and the parent joins
    /// it when its script ends.
    WaitGroup,
}

/// One step of a script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send a fresh tag on a channel.
    Send { chan: usize, wait: Wait },
    /// Receive from a channel.
    Recv { chan: usize, wait: Wait },
    /// A `select!` over two or three operations.
    Select(Select),
    /// `scheduler::yield_now()`.
    Yield,
    /// `scheduler::sleep` for this many microseconds.
    Sleep(u32),
    /// Spawn a child goroutine that runs its own script.
    Spawn { child: usize, how: Spawn },
    /// Wait on the goroutine's `WaitGroup` (its [`Spawn::WaitGroup`] children so far).
    Wait,
    /// `Sender::close` on a channel it holds a sender of.
    Close(usize),
}

/// A goroutine that empties channels until they are closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drainer {
    /// `for v in &rx`.
    Iter(usize),
    /// `recv_timeout` in a loop, with this many microseconds, until the channel is closed.
    Timeout(usize, u32),
    /// A blocking `select!` over both channels until one is closed, then the other alone.
    Pair(usize, usize),
}

/// What the main goroutine spawns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// A drainer, by its index in [`Program::drainers`].
    Drainer(usize),
    /// A top-level script goroutine, by its number.
    Goroutine(usize),
}

/// The value a send in a switched-off `select!` arm offers: it must never arrive anywhere.
pub const NEVER: u64 = u64::MAX;

/// The tag the `seq`-th send attempt of goroutine `sender` puts on channel `chan`: unique in
/// a program, and it names where it comes from and where it may arrive.
pub fn tag(sender: usize, chan: usize, seq: u32) -> u64 {
    ((sender as u64) << 40) | ((chan as u64) << 32) | u64::from(seq)
}

/// The sender, the channel and the sequence number of a tag.
pub fn untag(tag: u64) -> (usize, usize, u32) {
    (
        (tag >> 40) as usize,
        ((tag >> 32) & 0xFF) as usize,
        tag as u32,
    )
}

/// Generates the program of `seed`.
///
/// Why every program terminates. Number the script goroutines in preorder, so that a child
/// comes after its parent, and call the goroutines that hold a sender of a channel its
/// *holders*; a goroutine holds every sender its descendants hold, so a holder's ancestors
/// are holders too. The generator keeps to three rules:
///
/// * a send that may block targets a drained channel, whose drainers wait only to receive
///   from it, or an unbounded one, which never blocks;
/// * a receive that may block (a blocking `recv`, or a blocking `select!` whose only way out
///   is a receive) targets a channel whose holders all come *after* the receiver;
/// * a goroutine waits (join, `WaitGroup`) only for its own children, which come after it.
///
/// Suppose some script goroutine waited forever, and take the highest-numbered one. A send it
/// blocks in completes as soon as a drainer receives, and drainers receive until their
/// channels close. The holders of a channel it receives from come after it, so they do not
/// wait forever, and they are started: their ancestors are holders too, and the top-level
/// ones are started by the main goroutine, which drops its own senders before it waits for
/// anyone; when the last holder ends, the channel closes and the receive returns. Its
/// children come after it too, so its joins and `WaitGroup` waits return. So no script
/// goroutine waits forever, every channel closes in the end, and the drainers end with it.
pub fn generate(seed: u64) -> Program {
    let mut rng = Rng::new(seed);
    let channels: Vec<Channel> = (0..rng.range(1, 6))
        .map(|_| Channel {
            capacity: rng.pick(&[Some(0), Some(1), Some(4), None]),
            drained: rng.percent(80),
        })
        .collect();
    let target = rng.range(4, MAX_GOROUTINES);
    let mut generator = Generator {
        rng,
        channels,
        goroutines: Vec::new(),
        target,
    };
    let mut top_level = Vec::new();
    let all: Vec<usize> = (0..generator.channels.len()).collect();
    while generator.goroutines.len() < target {
        let may_send = generator.subset(&all, 40);
        top_level.push(generator.script(None, 0, &may_send));
    }
    generator.hold_senders();
    generator.settle_blocking_receives();
    let Generator {
        mut rng,
        channels,
        goroutines,
        ..
    } = generator;

    let drainers = drainers(&mut rng, &channels);
    let mut start: Vec<Start> = (0..drainers.len())
        .map(Start::Drainer)
        .chain(top_level.into_iter().map(Start::Goroutine))
        .collect();
    rng.shuffle(&mut start);
    Program {
        seed,
        channels,
        goroutines,
        drainers,
        start,
    }
}

/// One or two drainers per drained channel; some drain two channels with one `select!`.
fn drainers(rng: &mut Rng, channels: &[Channel]) -> Vec<Drainer> {
    let mut drained: Vec<usize> = (0..channels.len())
        .filter(|&c| channels[c].drained)
        .collect();
    rng.shuffle(&mut drained);
    let mut drainers = Vec::new();
    while let Some(c) = drained.pop() {
        let drainer = match drained.last() {
            Some(&other) if rng.percent(30) => {
                drained.pop();
                Drainer::Pair(c, other)
            }
            _ if rng.percent(50) => Drainer::Iter(c),
            _ => Drainer::Timeout(c, rng.micros(DRAINER_MIN_MICROS)),
        };
        drainers.push(drainer);
        if rng.percent(25) {
            drainers.push(Drainer::Iter(c));
        }
    }
    drainers
}

struct Generator {
    rng: Rng,
    channels: Vec<Channel>,
    goroutines: Vec<Script>,
    /// How many script goroutines the program gets.
    target: usize,
}

impl Generator {
    /// Generates goroutine number `goroutines.len()` and, depth first, its children; returns
    /// its number. It sends only on channels in `may_send` (its children on fewer): with
    /// senders spread thin, many channels have no holder before a given goroutine, which
    /// may then block to receive from them.
    fn script(&mut self, parent: Option<usize>, depth: usize, may_send: &[usize]) -> usize {
        let me = self.goroutines.len();
        self.goroutines.push(Script {
            parent,
            steps: Vec::new(),
            senders: Vec::new(),
        });
        let len = self.rng.range(1, MAX_STEPS);
        let mut steps = Vec::with_capacity(len);
        for _ in 0..len {
            let step = self.step(me, depth, may_send);
            steps.push(step);
        }
        self.goroutines[me].steps = steps;
        me
    }

    /// A random non-empty subset of `channels`, each kept with probability `percent`.
    fn subset(&mut self, channels: &[usize], percent: usize) -> Vec<usize> {
        let mut kept: Vec<usize> = channels
            .iter()
            .copied()
            .filter(|_| self.rng.percent(percent))
            .collect();
        if kept.is_empty() {
            kept.push(self.rng.pick(channels));
        }
        kept
    }

    fn step(&mut self, me: usize, depth: usize, may_send: &[usize]) -> Step {
        let can_spawn = depth < MAX_DEPTH && self.goroutines.len() < self.target;
        let rng = &mut self.rng;
        let to = rng.pick(may_send);
        let from = rng.below(self.channels.len());
        match rng.below(100) {
            0..30 => {
                let blocking_ok = self.channels[to].drained || self.channels[to].capacity.is_none();
                let wait = match rng.below(10) {
                    0..6 if blocking_ok => Wait::Block,
                    0..8 => Wait::Try,
                    _ => Wait::Timeout(rng.micros(0)),
                };
                Step::Send { chan: to, wait }
            }
            30..50 => {
                // A blocking receive may be moved or bounded later, once the holders are
                // known (settle_blocking_receives).
                let wait = match rng.below(10) {
                    0..4 => Wait::Block,
                    4..7 => Wait::Try,
                    _ => Wait::Timeout(rng.micros(0)),
                };
                Step::Recv { chan: from, wait }
            }
            50..66 => {
                let on = rng.range(2, 3);
                let mut slots = [false; 4];
                for slot in slots.iter_mut().take(on) {
                    *slot = true;
                }
                rng.shuffle(&mut slots);
                let n = self.channels.len();
                let recv = [0, 1].map(|i| slots[i].then(|| rng.below(n)));
                let send = [2, 3].map(|i| slots[i].then(|| rng.pick(may_send)));
                let default = match rng.below(4) {
                    0 | 1 => Default::None,
                    2 => Default::Now,
                    _ => Default::After(rng.micros(0)),
                };
                Step::Select(Select {
                    recv,
                    send,
                    default,
                })
            }
            66..74 => Step::Yield,
            74..82 => Step::Sleep(rng.micros(0)),
            82..94 if can_spawn => {
                let how = if rng.percent(50) {
                    Spawn::Join
                } else {
                    Spawn::WaitGroup
                };
                let may_send = self.subset(may_send, 70);
                let child = self.script(Some(me), depth + 1, &may_send);
                Step::Spawn { child, how }
            }
            82..99 => Step::Wait,
            // One close in about 300 steps: enough to test sends failing on a closed
            // channel, few enough that most channels close by their senders going away.
            _ if rng.percent(33) => Step::Close(to),
            _ => Step::Yield,
        }
    }

    /// Fills in each script's `senders`: the channels it or a descendant sends on or closes.
    fn hold_senders(&mut self) {
        let mut holds = vec![vec![false; self.channels.len()]; self.goroutines.len()];
        // Children come after their parents: walking backwards sees a child's set complete
        // before it is added to its parent's.
        for g in (0..self.goroutines.len()).rev() {
            for step in &self.goroutines[g].steps {
                match *step {
                    Step::Send { chan, .. } | Step::Close(chan) => holds[g][chan] = true,
                    Step::Select(select) => {
                        for chan in select.send.into_iter().flatten() {
                            holds[g][chan] = true;
                        }
                    }
                    _ => {}
                }
            }
            if let Some(parent) = self.goroutines[g].parent {
                // A parent comes before its child.
                let (before, from_g) = holds.split_at_mut(g);
                for (p, &h) in before[parent].iter_mut().zip(&from_g[0]) {
                    *p |= h;
                }
            }
        }
        for (script, holds) in self.goroutines.iter_mut().zip(holds) {
            script.senders = (0..holds.len()).filter(|&c| holds[c]).collect();
        }
    }

    /// Makes every wait that only a receive can end safe: a blocking receive, and a blocking
    /// `select!` without a send arm that is sure to complete, must be able to count on a
    /// channel whose holders all come after the receiver (see [`generate`]). Where the chosen
    /// channel is not one, another is chosen, or the wait gets a timeout.
    fn settle_blocking_receives(&mut self) {
        let mut first_holder = vec![usize::MAX; self.channels.len()];
        for (g, script) in self.goroutines.iter().enumerate() {
            for &c in &script.senders {
                first_holder[c] = first_holder[c].min(g);
            }
        }
        let channels = &self.channels;
        for g in 0..self.goroutines.len() {
            let closes_in_time: Vec<usize> = (0..channels.len())
                .filter(|&c| first_holder[c] > g)
                .collect();
            let rng = &mut self.rng;
            for step in &mut self.goroutines[g].steps {
                match step {
                    Step::Recv {
                        chan,
                        wait: wait @ Wait::Block,
                    } if first_holder[*chan] <= g => {
                        if !closes_in_time.is_empty() && rng.percent(80) {
                            *chan = rng.pick(&closes_in_time);
                        } else {
                            *wait = Wait::Timeout(rng.micros(0));
                        }
                    }
                    Step::Select(select) if select.default == Default::None => {
                        let send_completes = select
                            .send
                            .into_iter()
                            .flatten()
                            .any(|c| channels[c].drained || channels[c].capacity.is_none());
                        let recv_completes = select
                            .recv
                            .into_iter()
                            .flatten()
                            .any(|c| first_holder[c] > g);
                        if send_completes || recv_completes {
                            continue;
                        }
                        match select.recv.iter_mut().flatten().next() {
                            Some(chan) if !closes_in_time.is_empty() => {
                                *chan = rng.pick(&closes_in_time);
                            }
                            _ => select.default = Default::After(rng.micros(0)),
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

impl Program {
    /// A one-line summary: its size and the kinds of steps it has.
    pub fn summary(&self) -> String {
        let mut counts = [0usize; 8];
        for step in self.goroutines.iter().flat_map(|s| &s.steps) {
            let kind = match step {
                Step::Send { .. } => 0,
                Step::Recv { .. } => 1,
                Step::Select(_) => 2,
                Step::Yield => 3,
                Step::Sleep(_) => 4,
                Step::Spawn { .. } => 5,
                Step::Wait => 6,
                Step::Close(_) => 7,
            };
            counts[kind] += 1;
        }
        let mut out = format!(
            "{} goroutines, {} drainers, channels",
            self.goroutines.len(),
            self.drainers.len()
        );
        for channel in &self.channels {
            let cap = channel.capacity.map_or("inf".to_owned(), |n| n.to_string());
            let drained = if channel.drained { "" } else { " undrained" };
            let _ = write!(out, " [{cap}{drained}]");
        }
        let names = [
            "send", "recv", "select", "yield", "sleep", "spawn", "wait", "close",
        ];
        for (name, count) in names.iter().zip(counts) {
            let _ = write!(out, ", {count} {name}");
        }
        out
    }

    /// The whole program, one line per channel, goroutine and drainer: for replaying it.
    pub fn listing(&self) -> String {
        let mut out = String::new();
        for (c, channel) in self.channels.iter().enumerate() {
            let _ = writeln!(out, "channel {c}: {channel:?}");
        }
        for (g, script) in self.goroutines.iter().enumerate() {
            let _ = writeln!(
                out,
                "goroutine {g} (parent {:?}, senders {:?}): {:?}",
                script.parent, script.senders, script.steps
            );
        }
        for (d, drainer) in self.drainers.iter().enumerate() {
            let _ = writeln!(out, "drainer {d}: {drainer:?}");
        }
        let _ = write!(out, "main starts {:?}", self.start);
        out
    }

    /// A hash of the whole program (FNV-1a over its `Debug` text): equal programs have equal
    /// fingerprints, and a change to the generator changes them.
    pub fn fingerprint(&self) -> u64 {
        format!("{self:?}")
            .bytes()
            .fold(0xCBF2_9CE4_8422_2325, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
            })
    }
}
