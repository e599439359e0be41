//! The two inline SVG charts of the HTML register, written with maud (every splice
//! escaped): faults per ISO week stacked by level, and SLA compliance per level.
//! Plain SVG 1.1, no script, no external fonts. Also [`LEVEL_COLOURS`], which the
//! HTML tables share.

use std::fmt;

use maud::{Markup, html};

use super::model::{LEVEL_NAMES, LevelStats, SlaCounts, WeekBucket};

/// Fill colours of levels 1..=4 (index 0 is level 1): red, orange, amber, blue.
/// Distinct in hue and lightness, so they also separate in greyscale print.
pub const LEVEL_COLOURS: [&str; 4] = ["#b71c1c", "#ef6c00", "#f4b400", "#4a7fb5"];

/// SLA outcome segments: (label, colour), in drawing order.
const SLA_PARTS: [(&str, &str); 6] = [
    ("met", "#2e7d32"),
    ("open, within", "#90a4ae"),
    ("missed", "#e53935"),
    ("open, past due", "#7f0000"),
    ("unknown", "#cfcfcf"),
    ("no target", "#f1f1f1"),
];

/// The charts' `font-family`: the page's system font stack.
const FONT_FAMILY: &str =
    "system-ui, -apple-system, 'Segoe UI', Roboto, 'Noto Sans', 'DejaVu Sans', sans-serif";

/// A coordinate or length, written with one decimal.
#[derive(Clone, Copy)]
struct Coord(f64);

impl fmt::Display for Coord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}", self.0)
    }
}

/// Bar chart of faults opened per ISO week, stacked by level (level 1 at the bottom).
pub fn faults_per_week(weeks: &[WeekBucket]) -> Markup {
    let (w, h) = (560.0, 290.0);
    let (left, right, bottom) = (34.0, 6.0, 40.0);
    let (legend, legend_y) = legend(
        left,
        14.0,
        w,
        LEVEL_NAMES.iter().enumerate().map(|(i, n)| (format!("L{} {n}", i + 1), LEVEL_COLOURS[i])),
    );
    let top = legend_y + 24.0;
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let base = top + plot_h;
    let max = weeks.iter().map(WeekBucket::total).max().unwrap_or(0);
    let step = if max <= 5 { 1 } else { max.div_ceil(5) };
    let y_max = (max.div_ceil(step) * step).max(1);
    let n = weeks.len().max(1);
    let slot = plot_w / n as f64;
    let bar = (slot * 0.7).min(48.0);
    let label_every = n.div_ceil(16);
    // The Monday's date under every other labelled week when slots are narrow.
    let date_every = if slot * label_every as f64 >= 44.0 { 1 } else { 2 };
    html! {
        svg.chart #chart-faults-per-week xmlns="http://www.w3.org/2000/svg"
            viewBox={ "0 0 " (w) " " (h) } role="img" aria-labelledby="cfw-title"
            font-family=(FONT_FAMILY) font-size="12" {
            title #cfw-title { "Faults opened per ISO week, by level" }
            (legend)
            // Grid and y axis.
            @for v in (0..=y_max).filter(|v| v % step == 0) {
                @let y = base - plot_h * f64::from(v) / f64::from(y_max);
                line x1=(left) x2=(w - right) y1=(Coord(y)) y2=(Coord(y))
                    stroke=(if v == 0 { "#888" } else { "#e4e4e4" }) stroke-width="1" {}
                text x=(left - 6.0) y=(Coord(y + 4.0)) text-anchor="end" fill="#555" { (v) }
            }
            @for (i, wk) in weeks.iter().enumerate() {
                @let x = left + slot * i as f64 + (slot - bar) / 2.0;
                @let cx = x + bar / 2.0;
                @let segments = stack(wk, base, plot_h, y_max);
                @for &(l, count, y, bh) in &segments {
                    rect class={ "bar level-" (l + 1) } x=(Coord(x)) y=(Coord(y))
                        width=(Coord(bar)) height=(Coord(bh)) fill=(LEVEL_COLOURS[l])
                        stroke="#fff" stroke-width="0.5" {
                        title {
                            (week_label(wk.week)) " (from " (wk.monday) "): " (count) " "
                            (LEVEL_NAMES[l])
                        }
                    }
                }
                @if let Some(&(_, _, y, _)) = segments.last() {
                    text x=(Coord(cx)) y=(Coord(y - 4.0)) text-anchor="middle" font-weight="600"
                        fill="#222" { (wk.total()) }
                }
                @if i % label_every == 0 {
                    text x=(Coord(cx)) y=(Coord(base + 16.0)) text-anchor="middle" fill="#333" {
                        (week_label(wk.week))
                    }
                }
                @if i % (label_every * date_every) == 0 {
                    text x=(Coord(cx)) y=(Coord(base + 30.0)) text-anchor="middle" fill="#777"
                        font-size="10" { (wk.monday.strftime("%d %b")) }
                }
            }
            @if max == 0 {
                text x=(Coord(left + plot_w / 2.0)) y=(Coord(top + plot_h / 2.0))
                    text-anchor="middle" fill="#777" font-size="14" {
                    "No faults opened in this period"
                }
            }
        }
    }
}

/// `W07`.
fn week_label(week: i8) -> String {
    format!("W{week:02}")
}

/// The segments of one week's bar, bottom up from `base`: (level index, count, top,
/// height), levels without faults left out.
fn stack(wk: &WeekBucket, base: f64, plot_h: f64, y_max: u32) -> Vec<(usize, u32, f64, f64)> {
    let mut y = base;
    let mut segments = Vec::new();
    for (l, &count) in wk.by_level.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let bh = plot_h * f64::from(count) / f64::from(y_max);
        y -= bh;
        segments.push((l, count, y, bh));
    }
    segments
}

/// Horizontal 100 % bars per level: respond and resolve outcomes.
pub fn sla_compliance(levels: &[LevelStats]) -> Markup {
    let w = 560.0;
    let (label_w, bar_w, row_h, gap) = (150.0, 270.0, 22.0, 12.0);
    let (legend, legend_y) =
        legend(10.0, 14.0, w, SLA_PARTS.iter().map(|(n, c)| ((*n).to_owned(), *c)));
    let top = legend_y + 16.0;
    let h = top + levels.len() as f64 * (2.0 * row_h + gap);
    html! {
        svg.chart #chart-sla xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (w) " " (h) }
            role="img" aria-labelledby="csla-title" font-family=(FONT_FAMILY) font-size="12" {
            title #csla-title { "SLA compliance per level: respond and resolve targets" }
            (legend)
            @for (i, l) in levels.iter().enumerate() {
                @let y = top + i as f64 * (2.0 * row_h + gap);
                rect x="0" y=(Coord(y)) width="5" height=(Coord(2.0 * row_h - 4.0))
                    fill=(LEVEL_COLOURS[usize::from(l.level.clamp(1, 4) - 1)]) {}
                text x="12" y=(Coord(y + 15.0)) font-weight="600" fill="#222" {
                    "L" (l.level) " " (l.name)
                }
                @for (k, (what, c)) in
                    [("respond", &l.respond), ("resolve", &l.resolve)].into_iter().enumerate()
                {
                    @let ry = y + k as f64 * row_h;
                    text x=(Coord(label_w - 8.0)) y=(Coord(ry + 14.0)) text-anchor="end"
                        fill="#555" { (what) }
                    (sla_bar(c, label_w, ry + 2.0, bar_w, row_h - 6.0, &format!("L{} {what}", l.level)))
                    text x=(Coord(label_w + bar_w + 10.0)) y=(Coord(ry + 14.0)) fill="#222" {
                        (verdict(c))
                    }
                }
            }
        }
    }
}

/// `3/4 met · 75%`, or why there is no share yet.
fn verdict(c: &SlaCounts) -> String {
    match c.percent() {
        Some(p) => format!("{}/{} met · {}%", c.met, c.judged(), p.floor()),
        None if c.total() == 0 => "no tickets".to_owned(),
        None => format!("{} not yet judged", c.total()),
    }
}

/// One 100 % bar of SLA outcomes; `what` names it in the segments' tooltips.
fn sla_bar(c: &SlaCounts, x: f64, y: f64, w: f64, h: f64, what: &str) -> Markup {
    let parts = [c.met, c.open_within, c.missed, c.open_past_due, c.unknown, c.no_target];
    let total: u32 = parts.iter().sum();
    let mut px = x;
    let mut segments = Vec::new();
    for (count, (name, colour)) in parts.into_iter().zip(SLA_PARTS) {
        if count == 0 {
            continue;
        }
        let pw = w * f64::from(count) / f64::from(total);
        segments.push((px, pw, count, name, colour));
        px += pw;
    }
    html! {
        rect x=(Coord(x)) y=(Coord(y)) width=(Coord(w)) height=(Coord(h)) fill="#fafafa"
            stroke="#ccc" stroke-width="1" {}
        @for (px, pw, count, name, colour) in segments {
            rect class={ "sla-" (name.replace([',', ' '], "")) } x=(Coord(px)) y=(Coord(y))
                width=(Coord(pw)) height=(Coord(h)) fill=(colour) stroke="#fff"
                stroke-width="0.5" {
                title { (what) ": " (count) " " (name) }
            }
        }
    }
}

/// Colour swatches with names from `(x0, y0)`, wrapping before `max_x`; also returns
/// the baseline of the last row.
fn legend<'a>(
    x0: f64,
    y0: f64,
    max_x: f64,
    items: impl Iterator<Item = (String, &'a str)>,
) -> (Markup, f64) {
    let (mut x, mut y) = (x0, y0);
    let mut placed = Vec::new();
    for (name, colour) in items {
        // About 7 units per character at font size 12 (generous for wide fonts).
        let item_w = 16.0 + 7.0 * name.chars().count() as f64 + 12.0;
        if x > x0 && x + item_w - 12.0 > max_x {
            x = x0;
            y += 18.0;
        }
        placed.push((x, y, name, colour));
        x += item_w;
    }
    let markup = html! {
        @for (x, y, name, colour) in &placed {
            rect x=(Coord(*x)) y=(Coord(y - 10.0)) width="12" height="12" fill=(colour)
                stroke="#999" stroke-width="0.5" {}
            text x=(Coord(x + 16.0)) y=(Coord(*y)) fill="#333" { (name) }
        }
    };
    (markup, y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn stacked_bars_have_one_segment_per_level_present() {
        let weeks = vec![
            WeekBucket {
                iso_year: 2026,
                week: 27,
                monday: date(2026, 6, 29),
                by_level: [1, 0, 2, 0],
            },
            WeekBucket {
                iso_year: 2026,
                week: 28,
                monday: date(2026, 7, 6),
                by_level: [0, 0, 0, 0],
            },
        ];
        let svg = faults_per_week(&weeks).into_string();
        assert_eq!(svg.matches("class=\"bar level-1\"").count(), 1);
        assert_eq!(svg.matches("class=\"bar level-3\"").count(), 1);
        assert_eq!(svg.matches("class=\"bar ").count(), 2);
        assert!(svg.contains(">W27<") && svg.contains(">W28<"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(faults_per_week(&weeks[1..]).into_string().contains("No faults opened"));
    }

    #[test]
    fn sla_bars_show_met_share() {
        let c = SlaCounts { met: 3, missed: 1, ..SlaCounts::default() };
        let levels = vec![LevelStats {
            level: 1,
            name: "critical",
            opened: 4,
            respond: c,
            resolve: SlaCounts::default(),
        }];
        let svg = sla_compliance(&levels).into_string();
        assert!(svg.contains("3/4 met · 75%"), "{svg}");
        assert!(svg.contains("no tickets"));
        assert_eq!(svg.matches("class=\"sla-met\"").count(), 1);
        assert_eq!(svg.matches("class=\"sla-missed\"").count(), 1);
    }
}
