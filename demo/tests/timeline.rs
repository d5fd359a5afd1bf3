//! The demo's `--timeline`, looked at as a person would: the SVG drawn to pixels, and what
//! the worker lanes show on one proc and on two.

mod common;

use std::collections::HashMap;

use resvg::tiny_skia::{Pixmap, Transform};
use resvg::usvg;
use scheduler::trace::{IDLE_FILL, LANE_BOX_HEIGHT, LANE_HEIGHT, LANE_TOP, PLOT_LEFT, PLOT_WIDTH};

use common::demo_file;

type Rgb = [u8; 3];

const WHITE: Rgb = [255, 255, 255];

/// The timeline of one run of the demo, drawn.
struct Picture {
    svg: String,
    pixels: Pixmap,
    /// Each goroutine's colour, by its label in the legend.
    fills: HashMap<String, Rgb>,
}

impl Picture {
    /// Runs the demo with `args` and `--timeline`, and draws what it wrote.
    fn of(args: &[&str]) -> Picture {
        let svg = String::from_utf8(demo_file("--timeline", "timeline.svg", args)).unwrap();
        let tree = usvg::Tree::from_str(&svg, &usvg::Options::default()).expect("valid SVG");
        let size = tree.size().to_int_size();
        let mut pixels = Pixmap::new(size.width(), size.height()).unwrap();
        resvg::render(&tree, Transform::default(), &mut pixels.as_mut());
        Picture {
            fills: legend(&svg),
            svg,
            pixels,
        }
    }

    /// The colour of pixel (`x`, `y`); the background is opaque, so no alpha is left.
    fn at(&self, x: u32, y: u32) -> Rgb {
        let p = self.pixels.pixel(x, y).expect("inside the picture");
        assert_eq!(p.alpha(), 255, "({x}, {y}) is transparent");
        [p.red(), p.green(), p.blue()]
    }

    /// The colours along the middle of worker `n`'s lane, one per pixel column of the plot.
    fn lane(&self, n: u32) -> Vec<Rgb> {
        let y = LANE_TOP + n * LANE_HEIGHT + LANE_BOX_HEIGHT / 2;
        (PLOT_LEFT..PLOT_LEFT + PLOT_WIDTH)
            .map(|x| self.at(x, y))
            .collect()
    }

    /// The boxes drawn in worker `n`'s lane over its idle background: their fills and widths,
    /// in pixels.
    fn boxes(&self, n: u32) -> Vec<(String, f64)> {
        let doc = roxmltree::Document::parse(&self.svg).unwrap();
        let id = format!("worker-{n}");
        let lane = doc
            .descendants()
            .find(|node| node.attribute("id") == Some(id.as_str()))
            .expect("a lane");
        let rects = lane.children().filter(|node| node.has_tag_name("rect"));
        rects
            .skip(1)
            .map(|rect| {
                let fill = rect.attribute("fill").unwrap().to_owned();
                (fill, rect.attribute("width").unwrap().parse().unwrap())
            })
            .collect()
    }

    /// The colour goroutine `name` is drawn in.
    fn fill(&self, name: &str) -> Rgb {
        let named = |label: &String| label.split_once(' ').is_some_and(|(_, n)| n == name);
        let found = self.fills.iter().find(|&(label, _)| named(label));
        *found
            .unwrap_or_else(|| panic!("{name} is not in the legend"))
            .1
    }
}

/// The legend's goroutine colours, by label (`g1`, `g2 A`).
fn legend(svg: &str) -> HashMap<String, Rgb> {
    let doc = roxmltree::Document::parse(svg).unwrap();
    let legend = doc
        .descendants()
        .find(|n| n.attribute("id") == Some("legend"))
        .expect("a legend");
    let rects = legend.children().filter(|n| n.has_tag_name("rect"));
    let labels = legend.children().filter(|n| n.has_tag_name("text"));
    rects
        .zip(labels)
        .filter_map(|(rect, label)| {
            let label = label.text()?;
            let goroutine = label
                .strip_prefix('g')?
                .starts_with(|c: char| c.is_ascii_digit());
            goroutine.then(|| Some((label.to_owned(), hex(rect.attribute("fill")?)?)))?
        })
        .collect()
}

/// `#rrggbb` as a colour.
fn hex(text: &str) -> Option<Rgb> {
    let digits = text.strip_prefix('#')?;
    let byte = |i: usize| u8::from_str_radix(digits.get(i..i + 2)?, 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

fn idle() -> Rgb {
    hex(IDLE_FILL).unwrap()
}

/// Whether a pixel of a lane shows a goroutine running: neither the idle fill nor the
/// background.
fn busy(colour: Rgb) -> bool {
    colour != idle() && colour != WHITE
}

/// How often the colour changes between `a` and `b` along `lane`, other colours skipped.
fn changes(lane: &[Rgb], a: Rgb, b: Rgb) -> usize {
    let mut seen: Vec<Rgb> = lane.iter().copied().filter(|&c| c == a || c == b).collect();
    seen.dedup();
    seen.len().saturating_sub(1)
}

#[test]
fn two_procs_draw_a_and_b_at_the_same_moment_on_two_lanes() {
    // Why this cannot flake: the first counter at the start line spins there, so the second
    // starts on the other worker, and both runs cover the moment the second arrives; after
    // it, each prints its 20,001 lines in that same run. So the two runs overlap for at least
    // as long as the faster counter takes to print 20,001 lines (milliseconds of work that
    // no scheduling can shorten), and the whole trace would have to last hundreds of times
    // longer than that for the overlap to shrink below a pixel column of the 1,050.
    let picture = Picture::of(&["--procs", "2", "--count", "20000"]);
    let (a, b) = (picture.fill("A"), picture.fill("B"));
    let (lane0, lane1) = (picture.lane(0), picture.lane(1));
    for lane in [&lane0, &lane1] {
        assert!(
            lane.iter().all(|&c| c != WHITE),
            "a lane spans the whole plot"
        );
    }
    let both = lane0
        .iter()
        .zip(&lane1)
        .filter(|&(&top, &bottom)| (top, bottom) == (a, b) || (top, bottom) == (b, a))
        .count();
    assert!(
        both > 0,
        "no pixel column shows A and B on two lanes at once"
    );
}

#[test]
fn one_proc_draws_one_lane_that_runs_one_goroutine_at_a_time() {
    let picture = Picture::of(&["--procs", "1"]);
    let (a, b) = (picture.fill("A"), picture.fill("B"));
    let lane0 = picture.lane(0);
    assert!(
        lane0.iter().all(|&c| c != WHITE),
        "lane 0 spans the whole plot"
    );
    assert!(
        lane0.contains(&a) && lane0.contains(&b),
        "A and B ran on worker 0"
    );
    // Where a second lane would be, the background: no idle fill, nothing running.
    let lane1 = picture.lane(1);
    assert!(
        lane1.iter().all(|&c| c == WHITE),
        "a second lane on one proc"
    );
    let both = lane0
        .iter()
        .zip(&lane1)
        .filter(|&(&top, &bottom)| busy(top) && busy(bottom))
        .count();
    assert_eq!(both, 0);
    // No yield: A once (to open the start line) and then its block, B's block between.
    assert!(changes(&lane0, a, b) <= 3, "{}", changes(&lane0, a, b));
}

#[test]
fn yield_on_one_proc_alternates_a_and_b_along_the_lane() {
    // Each counter's run prints one line and yields: about a microsecond, some 5 px of a
    // trace of about 200 µs. If the OS took the worker's thread away for a millisecond in
    // that window, the one run it interrupted would take most of the picture and the others
    // would shrink below a pixel, drawn as merged grey boxes: such a picture can show no
    // alternation, and proves nothing either way. The SVG says so (a box narrower than 2 px,
    // or not in a goroutine's colour), and the attempt is run again, at most `ATTEMPTS` times.
    // Attempts are separate runs of the demo, and an interruption of one 200 µs window does
    // not make the next more likely: with 2 CPU hogs on 2 cores not one attempt in a hundred
    // was squeezed, so all five are not. A picture that can show the runs must show them
    // alternate, with no second chance.
    const ATTEMPTS: usize = 5;
    const COUNT: usize = 20;
    for _ in 0..ATTEMPTS {
        let picture = Picture::of(&["--procs", "1", "--yield", "--count", &COUNT.to_string()]);
        let fills: Vec<Rgb> = picture.fills.values().copied().collect();
        let drawable = picture
            .boxes(0)
            .iter()
            .all(|(fill, width)| *width >= 2.0 && hex(fill).is_some_and(|c| fills.contains(&c)));
        if !drawable {
            continue;
        }
        let (a, b) = (picture.fill("A"), picture.fill("B"));
        // B arrives and parks, A arrives and yields, then they take turns a line each.
        let n = changes(&picture.lane(0), a, b);
        assert!(n >= 2 * COUNT, "{n} changes between A and B");
        return;
    }
    panic!("in each of {ATTEMPTS} attempts the runs were squeezed below 2 px");
}
