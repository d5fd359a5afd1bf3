//! A [`Trace`] drawn as an SVG timeline, by hand.
//!
//! # Geometry
//!
//! The picture is [`SVG_WIDTH`] pixels wide on a white background. Time runs left to right
//! over the plot, from x = [`PLOT_LEFT`] (the start of the trace) to x = `PLOT_LEFT +
//! PLOT_WIDTH` (its end); labels sit left of it. Worker `n`'s lane is the group with
//! `id="worker-n"`: a box from y = `LANE_TOP + n * LANE_HEIGHT` down [`LANE_BOX_HEIGHT`]
//! pixels, filled with [`IDLE_FILL`] where the worker runs nothing and with the colour of
//! the goroutine where it runs one. Below the lanes: the time axis, one thin row per
//! goroutine (its runs solid, its blocked spans hatched) and the legend. Runs narrower than a
//! pixel are merged with their neighbours into boxes at least a pixel wide (grey when they
//! mix goroutines); at most [`MAX_ROWS`] goroutine rows and legend entries are drawn, and a
//! line says how many more there were.

use std::collections::HashMap;
use std::io::{self, Write};
use std::time::Duration;

use super::Trace;

/// The width of the picture, in pixels.
pub const SVG_WIDTH: u32 = 1200;
/// Where the plot (time zero) starts, in pixels from the left; labels are left of it.
pub const PLOT_LEFT: u32 = 120;
/// The width of the plot, in pixels: the whole trace.
pub const PLOT_WIDTH: u32 = 1050;
/// The top of worker 0's lane, in pixels.
pub const LANE_TOP: u32 = 40;
/// From the top of one worker's lane to the next, in pixels.
pub const LANE_HEIGHT: u32 = 36;
/// The height of a worker's lane box, in pixels.
pub const LANE_BOX_HEIGHT: u32 = 28;
/// The fill of a lane where its worker runs no goroutine.
pub const IDLE_FILL: &str = "#e8ebf0";
/// The most goroutines drawn with a row and a legend entry of their own.
const MAX_ROWS: usize = 40;
/// The height of a goroutine's row, and of its box in it.
const ROW_HEIGHT: u32 = 14;
const ROW_BOX_HEIGHT: u32 = 10;
/// The fill of boxes that merge runs of several goroutines too short to draw alone.
const MIXED_FILL: &str = "#6b6b6b";
/// Saturated, distinct colours: goroutines take them in order of their id.
const PALETTE: [&str; 12] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#393b79", "#e6550d", "#31a354",
];

/// A box to draw: its pixel span, and the goroutine it shows (`None` when merged runs of
/// several goroutines).
struct Span {
    x0: f64,
    x1: f64,
    goroutine: Option<u64>,
    /// What its tooltip says; empty for merged boxes.
    title: String,
}

impl Trace {
    /// Writes the trace as an SVG timeline: a lane per worker with a coloured box per run of
    /// a goroutine, a time axis, a row per goroutine with its runs solid and the spans in which
    /// it was blocked hatched, and a legend from colours to goroutines.
    ///
    /// The geometry is fixed, so that a program can find things in the picture: worker `n`'s
    /// lane is the group `id="worker-n"`, whose box spans y from `LANE_TOP + n *
    /// LANE_HEIGHT` to that plus `LANE_BOX_HEIGHT`, and x from `PLOT_LEFT` (the start of the
    /// trace) to `PLOT_LEFT + PLOT_WIDTH` (its end); where the worker runs nothing the box
    /// shows `IDLE_FILL`. (These constants are in this module, hidden from the docs.)
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = scheduler::Runtime::builder().procs(2).trace(true).build()?;
    /// rt.block_on(|| scheduler::spawn(|| 6 * 7).join().unwrap());
    /// let mut svg = Vec::new();
    /// rt.stop_trace().write_svg(&mut svg)?;
    /// let svg = String::from_utf8(svg)?;
    /// assert!(svg.contains(r#"<g id="worker-1">"#));
    /// // std::fs::write("trace.svg", svg) and open it in a browser
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_svg(&self, w: impl Write) -> io::Result<()> {
        let mut w = io::BufWriter::new(w);
        let colours = self.colours();
        let span_ns = self.span.as_nanos().max(1) as f64;
        let x = |t: Duration| PLOT_LEFT as f64 + t.as_nanos() as f64 / span_ns * PLOT_WIDTH as f64;
        let fill = |goroutine: Option<u64>| match goroutine {
            Some(g) => colours.get(&g).copied().unwrap_or(MIXED_FILL),
            None => MIXED_FILL,
        };
        let lanes_bottom = LANE_TOP + self.workers as u32 * LANE_HEIGHT;
        let axis_y = lanes_bottom + 4;
        let rows_top = axis_y + 44;
        let shown: Vec<u64> = self.goroutines().take(MAX_ROWS).collect();
        let hidden = self.goroutines.len() - shown.len();
        let rows_bottom =
            rows_top + 16 + shown.len() as u32 * ROW_HEIGHT + if hidden > 0 { 16 } else { 0 };
        let legend_top = rows_bottom + 20;
        let legend_rows = (shown.len() + 3).div_ceil(LEGEND_COLUMNS) as u32;
        let height = legend_top + 10 + legend_rows * 18 + 20;

        writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
        writeln!(
            w,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{SVG_WIDTH}" height="{height}" viewBox="0 0 {SVG_WIDTH} {height}" font-family="sans-serif" font-size="12">"#
        )?;
        writeln!(
            w,
            r##"<defs><pattern id="hatch" patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/><line x1="0" y1="0" x2="0" y2="6" stroke="#8a8a8a" stroke-width="2"/></pattern></defs>"##
        )?;
        writeln!(w, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##)?;
        let mut title = format!(
            "execution trace: {} worker(s), {} goroutine(s), {}",
            self.workers,
            self.goroutines.len(),
            format_duration(self.span.as_nanos() as f64)
        );
        if self.dropped > 0 {
            title.push_str(&format!(", {} event(s) dropped", self.dropped));
        }
        writeln!(
            w,
            r#"<text x="10" y="24" font-size="14">{}</text>"#,
            escape(&title)
        )?;

        // The worker lanes.
        let mut by_worker: Vec<Vec<Span>> = (0..self.workers).map(|_| Vec::new()).collect();
        for run in &self.runs {
            by_worker[run.worker].push(Span {
                x0: x(run.start),
                x1: x(run.end),
                goroutine: Some(run.goroutine),
                title: format!(
                    "{} on worker {}: {}, {}",
                    self.label(run.goroutine),
                    run.worker,
                    format_duration((run.end - run.start).as_nanos() as f64),
                    run.stop
                ),
            });
        }
        for (worker, runs) in by_worker.into_iter().enumerate() {
            let top = LANE_TOP + worker as u32 * LANE_HEIGHT;
            writeln!(w, r#"<g id="worker-{worker}">"#)?;
            let label = if worker >= self.procs {
                format!("worker {worker} (spare)")
            } else {
                format!("worker {worker}")
            };
            writeln!(
                w,
                r#"<text x="10" y="{}" class="lane-label">{label}</text>"#,
                top + LANE_BOX_HEIGHT / 2 + 4
            )?;
            writeln!(
                w,
                r#"<rect x="{PLOT_LEFT}" y="{top}" width="{PLOT_WIDTH}" height="{LANE_BOX_HEIGHT}" fill="{IDLE_FILL}"/>"#
            )?;
            for span in merge(runs) {
                rect(&mut w, &span, top, LANE_BOX_HEIGHT, fill(span.goroutine))?;
            }
            writeln!(w, "</g>")?;
        }

        self.axis(&mut w, axis_y)?;

        // One row per goroutine: runs solid, blocked spans hatched.
        writeln!(
            w,
            r#"<text x="10" y="{}">goroutines (solid: running, hatched: blocked)</text>"#,
            rows_top + 4
        )?;
        let row_of: HashMap<u64, u32> = shown
            .iter()
            .enumerate()
            .map(|(i, &g)| (g, i as u32))
            .collect();
        let mut row_runs: Vec<Vec<Span>> = shown.iter().map(|_| Vec::new()).collect();
        for run in &self.runs {
            if let Some(&row) = row_of.get(&run.goroutine) {
                row_runs[row as usize].push(Span {
                    x0: x(run.start),
                    x1: x(run.end),
                    goroutine: Some(run.goroutine),
                    title: String::new(),
                });
            }
        }
        let mut row_blocked: Vec<Vec<Span>> = shown.iter().map(|_| Vec::new()).collect();
        for (goroutine, since, until) in self.blocked_spans() {
            if let Some(&row) = row_of.get(&goroutine) {
                row_blocked[row as usize].push(Span {
                    x0: x(since),
                    x1: x(until),
                    goroutine: Some(goroutine),
                    title: String::new(),
                });
            }
        }
        let rows = shown.iter().zip(row_runs).zip(row_blocked);
        for (row, ((&goroutine, runs), blocked)) in rows.enumerate() {
            let top = rows_top + 12 + row as u32 * ROW_HEIGHT;
            writeln!(w, r#"<g id="goroutine-{goroutine}" font-size="10">"#)?;
            writeln!(
                w,
                r#"<text x="10" y="{}">{}</text>"#,
                top + ROW_BOX_HEIGHT - 1,
                escape(&self.label(goroutine))
            )?;
            for span in merge(blocked) {
                rect(&mut w, &span, top, ROW_BOX_HEIGHT, "url(#hatch)")?;
            }
            for span in merge(runs) {
                rect(&mut w, &span, top, ROW_BOX_HEIGHT, fill(span.goroutine))?;
            }
            writeln!(w, "</g>")?;
        }
        if hidden > 0 {
            writeln!(
                w,
                r#"<text x="10" y="{}">… and {hidden} more goroutine(s), not drawn in rows</text>"#,
                rows_top + 12 + shown.len() as u32 * ROW_HEIGHT + 10
            )?;
        }

        self.legend(&mut w, legend_top, &shown, hidden, &colours)?;
        writeln!(w, "</svg>")?;
        w.flush()
    }

    /// The colour of each goroutine: the palette's, in order of their ids.
    fn colours(&self) -> HashMap<u64, &'static str> {
        self.goroutines()
            .enumerate()
            .map(|(i, g)| (g, PALETTE[i % PALETTE.len()]))
            .collect()
    }

    /// The colour goroutine `goroutine` is drawn in, for tests that look at the pixels.
    #[doc(hidden)]
    pub fn svg_fill(&self, goroutine: u64) -> Option<&'static str> {
        self.colours().get(&goroutine).copied()
    }

    /// The time axis under the lanes, with ticks at round times in a unit fit for the span.
    fn axis(&self, w: &mut impl Write, y: u32) -> io::Result<()> {
        let span = self.span.as_nanos().max(1) as f64;
        let step = tick_step(span);
        let (unit, name) = unit_of(span);
        writeln!(w, r##"<g id="axis" stroke="#333333">"##)?;
        writeln!(
            w,
            r#"<line x1="{PLOT_LEFT}" y1="{y}" x2="{}" y2="{y}"/>"#,
            PLOT_LEFT + PLOT_WIDTH
        )?;
        let mut tick = 0.0;
        while tick <= span * 1.000_001 {
            let x = PLOT_LEFT as f64 + tick / span * PLOT_WIDTH as f64;
            writeln!(
                w,
                r#"<line x1="{x:.2}" y1="{y}" x2="{x:.2}" y2="{}"/><text x="{x:.2}" y="{}" stroke="none" text-anchor="middle" class="tick">{} {name}</text>"#,
                y + 5,
                y + 18,
                trim(tick / unit),
            )?;
            tick += step;
        }
        writeln!(w, "</g>")
    }

    /// The legend: what the colours and the hatching mean.
    fn legend(
        &self,
        w: &mut impl Write,
        top: u32,
        shown: &[u64],
        hidden: usize,
        colours: &HashMap<u64, &'static str>,
    ) -> io::Result<()> {
        writeln!(w, r#"<g id="legend" font-size="11">"#)?;
        let entries = shown
            .iter()
            .map(|&g| (colours[&g].to_owned(), self.label(g)))
            .chain([
                (IDLE_FILL.to_owned(), "idle worker".to_owned()),
                ("url(#hatch)".to_owned(), "blocked".to_owned()),
                (
                    MIXED_FILL.to_owned(),
                    "runs shorter than a pixel".to_owned(),
                ),
            ]);
        for (i, (fill, label)) in entries.enumerate() {
            let x = 10 + (i % LEGEND_COLUMNS) as u32 * LEGEND_COLUMN_WIDTH;
            let y = top + (i / LEGEND_COLUMNS) as u32 * 18;
            writeln!(
                w,
                r##"<rect x="{x}" y="{y}" width="12" height="12" fill="{fill}" stroke="#444444" stroke-width="0.5"/><text x="{}" y="{}" class="legend">{}</text>"##,
                x + 16,
                y + 10,
                escape(&label)
            )?;
        }
        if hidden > 0 {
            let rows = (shown.len() + 3).div_ceil(LEGEND_COLUMNS) as u32;
            writeln!(
                w,
                r#"<text x="10" y="{}">… {hidden} more goroutine(s) share the palette</text>"#,
                top + rows * 18 + 10
            )?;
        }
        writeln!(w, "</g>")
    }
}

const LEGEND_COLUMNS: usize = 7;
const LEGEND_COLUMN_WIDTH: u32 = 168;

/// Merges runs narrower than a pixel with their neighbours (sorted by start), so that a lane
/// of thousands of short runs draws as a few boxes; each box is at least a pixel wide.
fn merge(spans: Vec<Span>) -> Vec<Span> {
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        if let Some(last) = merged.last_mut() {
            let small = span.x1 - span.x0 < 1.0 && last.x1 - last.x0 < 1.0;
            if small && span.x0 - last.x1 < 1.0 {
                last.x1 = last.x1.max(span.x1);
                if last.goroutine != span.goroutine {
                    last.goroutine = None;
                }
                last.title.clear();
                continue;
            }
        }
        merged.push(span);
    }
    merged
}

fn rect(w: &mut impl Write, span: &Span, top: u32, height: u32, fill: &str) -> io::Result<()> {
    let width = (span.x1 - span.x0).max(1.0);
    write!(
        w,
        r#"<rect x="{:.2}" y="{top}" width="{width:.2}" height="{height}" fill="{fill}""#,
        span.x0
    )?;
    if span.title.is_empty() {
        writeln!(w, "/>")
    } else {
        writeln!(w, "><title>{}</title></rect>", escape(&span.title))
    }
}

/// A round step between ticks (1, 2 or 5 times a power of ten nanoseconds) that puts 5 to 10
/// ticks on `span` nanoseconds.
fn tick_step(span: f64) -> f64 {
    let rough = span / 8.0;
    let magnitude = 10f64.powf(rough.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&step| step >= rough)
        .unwrap_or(10.0 * magnitude)
        .max(1.0)
}

/// The unit to label ticks on a span of `span` nanoseconds with: its size in nanoseconds,
/// and its symbol.
fn unit_of(span: f64) -> (f64, &'static str) {
    if span >= 1e9 {
        (1e9, "s")
    } else if span >= 1e6 {
        (1e6, "ms")
    } else if span >= 1e3 {
        (1e3, "µs")
    } else {
        (1.0, "ns")
    }
}

fn format_duration(ns: f64) -> String {
    let (unit, name) = unit_of(ns.max(1.0));
    format!("{} {name}", trim(ns / unit))
}

/// A number with at most three decimals, without trailing zeros.
fn trim(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// Escapes text for XML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::build::sample;
    use super::*;

    fn svg_of(trace: &Trace) -> String {
        let mut out = Vec::new();
        trace.write_svg(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_picture_is_well_formed_with_lanes_axis_and_legend() {
        let trace = sample();
        let text = svg_of(&trace);
        let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(root.attribute("width"), Some("1200"));
        let by_id = |id: &str| doc.descendants().find(|n| n.attribute("id") == Some(id));
        for worker in 0..3 {
            let lane = by_id(&format!("worker-{worker}")).expect("a lane per worker");
            let background = lane.children().find(|n| n.has_tag_name("rect")).unwrap();
            let top = LANE_TOP + worker * LANE_HEIGHT;
            assert_eq!(background.attribute("y"), Some(top.to_string().as_str()));
            assert_eq!(background.attribute("fill"), Some(IDLE_FILL));
            let label = lane.children().find(|n| n.has_tag_name("text")).unwrap();
            assert!(
                label
                    .text()
                    .unwrap()
                    .starts_with(&format!("worker {worker}"))
            );
        }
        // Worker 0 ran goroutines 1, 3, 1: three boxes, in their colours.
        let lane0 = by_id("worker-0").unwrap();
        let fills: Vec<&str> = lane0
            .children()
            .filter(|n| n.has_tag_name("rect"))
            .skip(1)
            .map(|n| n.attribute("fill").unwrap())
            .collect();
        let (g1, g3) = (trace.svg_fill(1).unwrap(), trace.svg_fill(3).unwrap());
        assert_eq!(fills, [g1, g3, g1]);
        assert_ne!(g1, g3);
        // The axis: ticks labelled in µs for a span of 4 µs.
        let ticks: Vec<&str> = by_id("axis")
            .unwrap()
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap())
            .collect();
        assert_eq!(ticks.first(), Some(&"0 µs"));
        assert_eq!(ticks.last(), Some(&"4 µs"));
        // The legend names every goroutine, names escaped and read back.
        let legend: Vec<&str> = by_id("legend")
            .unwrap()
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap())
            .collect();
        assert!(
            legend.contains(&"g1") && legend.contains(&"g2 pinger <&>") && legend.contains(&"g3")
        );
        // Goroutine 1's row shows its blocked span hatched.
        let row = by_id("goroutine-1").unwrap();
        assert!(
            row.children()
                .any(|n| n.attribute("fill") == Some("url(#hatch)"))
        );
    }

    #[test]
    fn a_box_spans_its_run_s_pixels() {
        let text = svg_of(&sample());
        let doc = roxmltree::Document::parse(&text).unwrap();
        let lane1 = doc
            .descendants()
            .find(|n| n.attribute("id") == Some("worker-1"))
            .unwrap();
        // Goroutine 2's first run: 500 ns to 2,200 ns of 4,000.
        let first = lane1
            .children()
            .filter(|n| n.has_tag_name("rect"))
            .nth(1)
            .unwrap();
        let x: f64 = first.attribute("x").unwrap().parse().unwrap();
        let width: f64 = first.attribute("width").unwrap().parse().unwrap();
        let expect = |ns: f64| PLOT_LEFT as f64 + ns / 4_000.0 * PLOT_WIDTH as f64;
        assert!((x - expect(500.0)).abs() < 0.01);
        assert!((x + width - expect(2_200.0)).abs() < 0.01);
    }

    #[test]
    fn short_runs_merge_into_boxes_a_pixel_wide() {
        let spans: Vec<Span> = (0..1000)
            .map(|i| Span {
                x0: 100.0 + i as f64 * 0.01,
                x1: 100.0 + i as f64 * 0.01 + 0.005,
                goroutine: Some(i % 2),
                title: "t".into(),
            })
            .collect();
        let merged = merge(spans);
        assert!(merged.len() <= 11, "{} boxes", merged.len());
        assert!(
            merged
                .iter()
                .all(|s| s.goroutine.is_none() && s.title.is_empty())
        );
    }

    #[test]
    fn many_goroutines_are_capped() {
        use crate::sched::trace::{RawEvent, RawKind, RawStop, Recorded};
        let mut events = Vec::new();
        for g in 1..=3000u64 {
            events.push(RawEvent {
                at: g * 10,
                kind: RawKind::RunStart { goroutine: g },
            });
            events.push(RawEvent {
                at: g * 10 + 5,
                kind: RawKind::RunStop {
                    goroutine: g,
                    why: RawStop::Finished,
                },
            });
        }
        let trace = Trace::from_recorded(Recorded {
            procs: 1,
            buffers: vec![events, Vec::new()],
            dropped: 0,
            span: 30_010,
        });
        let text = svg_of(&trace);
        let doc = roxmltree::Document::parse(&text).unwrap();
        let rows = doc
            .descendants()
            .filter(|n| {
                n.attribute("id")
                    .is_some_and(|id| id.starts_with("goroutine-"))
            })
            .count();
        assert_eq!(rows, MAX_ROWS);
        assert!(text.contains("2960 more goroutine(s)"));
        let lane_boxes = doc
            .descendants()
            .find(|n| n.attribute("id") == Some("worker-0"))
            .unwrap()
            .children()
            .filter(|n| n.has_tag_name("rect"))
            .count();
        assert!(lane_boxes < 1200, "{lane_boxes} boxes for 3000 runs");
    }

    #[test]
    fn ticks_are_round_and_units_fit_the_span() {
        assert_eq!(tick_step(4_000.0), 500.0);
        assert_eq!(tick_step(1e9), 2e8);
        assert_eq!(unit_of(20e6), (1e6, "ms"));
        assert_eq!(unit_of(500.0), (1.0, "ns"));
        assert_eq!(trim(2.5), "2.5");
        assert_eq!(trim(3.0), "3");
        assert_eq!(format_duration(1_500_000.0), "1.5 ms");
    }

    #[test]
    fn an_empty_trace_draws_its_lanes() {
        let text = svg_of(&Trace::empty(2));
        let doc = roxmltree::Document::parse(&text).unwrap();
        assert!(
            doc.descendants()
                .any(|n| n.attribute("id") == Some("worker-1"))
        );
    }
}
