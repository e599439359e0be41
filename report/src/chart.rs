//! The two inline SVG charts of the HTML register: faults per ISO week stacked by
//! level, and SLA compliance per level. Plain SVG 1.1, no script, no external fonts.

use std::fmt::Write;

use super::html::escape;
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

const FONT: &str = "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, 'Noto Sans', 'DejaVu Sans', sans-serif\"";

/// Bar chart of faults opened per ISO week, stacked by level (level 1 at the bottom).
pub fn faults_per_week(weeks: &[WeekBucket]) -> String {
    let (w, h) = (560.0, 290.0);
    let (left, right, bottom) = (34.0, 6.0, 40.0);
    let mut s = String::new();
    let legend_y = legend(
        &mut s,
        left,
        14.0,
        w,
        LEVEL_NAMES.iter().enumerate().map(|(i, n)| (format!("L{} {n}", i + 1), LEVEL_COLOURS[i])),
    );
    let top = legend_y + 24.0;
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let max = weeks.iter().map(WeekBucket::total).max().unwrap_or(0);
    let step = if max <= 5 { 1 } else { max.div_ceil(5) };
    let y_max = (max.div_ceil(step) * step).max(1);
    // Grid and y axis.
    let mut v = 0;
    while v <= y_max {
        let y = top + plot_h - plot_h * f64::from(v) / f64::from(y_max);
        let _ = write!(
            s,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{}\" stroke-width=\"1\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{v}</text>",
            w - right,
            if v == 0 { "#888" } else { "#e4e4e4" },
            left - 6.0,
            y + 4.0
        );
        v += step;
    }
    let n = weeks.len().max(1);
    let slot = plot_w / n as f64;
    let bar = (slot * 0.7).min(48.0);
    let label_every = n.div_ceil(16);
    let date_every = if slot * label_every as f64 >= 44.0 { 1 } else { 2 };
    for (i, wk) in weeks.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let mut y = top + plot_h;
        for (l, &count) in wk.by_level.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let bh = plot_h * f64::from(count) / f64::from(y_max);
            y -= bh;
            let _ = write!(
                s,
                "<rect class=\"bar level-{}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{bh:.1}\" fill=\"{}\" stroke=\"#fff\" stroke-width=\"0.5\"><title>W{:02} (from {}): {count} {}</title></rect>",
                l + 1,
                LEVEL_COLOURS[l],
                wk.week,
                wk.monday,
                LEVEL_NAMES[l]
            );
        }
        let cx = x + bar / 2.0;
        if wk.total() > 0 {
            let _ = write!(
                s,
                "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-weight=\"600\" fill=\"#222\">{}</text>",
                y - 4.0,
                wk.total()
            );
        }
        if i % label_every == 0 {
            let _ = write!(
                s,
                "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#333\">W{:02}</text>",
                top + plot_h + 16.0,
                wk.week,
            );
        }
        // The Monday's date under every other labelled week when slots are narrow.
        if i % (label_every * date_every) == 0 {
            let _ = write!(
                s,
                "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#777\" font-size=\"10\">{}</text>",
                top + plot_h + 30.0,
                wk.monday.strftime("%d %b")
            );
        }
    }
    if max == 0 {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#777\" font-size=\"14\">No faults opened in this period</text>",
            left + plot_w / 2.0,
            top + plot_h / 2.0
        );
    }
    format!(
        "<svg class=\"chart\" id=\"chart-faults-per-week\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-labelledby=\"cfw-title\" {FONT} font-size=\"12\">\
         <title id=\"cfw-title\">Faults opened per ISO week, by level</title>{s}</svg>"
    )
}

/// Horizontal 100 % bars per level: respond and resolve outcomes.
pub fn sla_compliance(levels: &[LevelStats]) -> String {
    let w = 560.0;
    let (label_w, bar_w, row_h, gap) = (150.0, 270.0, 22.0, 12.0);
    let mut s = String::new();
    let legend_y =
        legend(&mut s, 10.0, 14.0, w, SLA_PARTS.iter().map(|(n, c)| ((*n).to_owned(), *c)));
    let top = legend_y + 16.0;
    let h = top + levels.len() as f64 * (2.0 * row_h + gap);
    let mut y = top;
    for l in levels {
        let li = usize::from(l.level.clamp(1, 4) - 1);
        let _ = write!(
            s,
            "<rect x=\"0\" y=\"{y:.1}\" width=\"5\" height=\"{:.1}\" fill=\"{}\"/>\
             <text x=\"12\" y=\"{:.1}\" font-weight=\"600\" fill=\"#222\">L{} {}</text>",
            2.0 * row_h - 4.0,
            LEVEL_COLOURS[li],
            y + 15.0,
            l.level,
            escape(l.name)
        );
        for (k, (what, c)) in
            [("respond", &l.respond), ("resolve", &l.resolve)].into_iter().enumerate()
        {
            let ry = y + k as f64 * row_h;
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{what}</text>",
                label_w - 8.0,
                ry + 14.0
            );
            sla_bar(
                &mut s,
                c,
                label_w,
                ry + 2.0,
                bar_w,
                row_h - 6.0,
                &format!("L{} {what}", l.level),
            );
            let verdict = match c.percent() {
                Some(p) => format!("{}/{} met · {}%", c.met, c.judged(), p.floor()),
                None if c.total() == 0 => "no tickets".to_owned(),
                None => format!("{} not yet judged", c.total()),
            };
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#222\">{}</text>",
                label_w + bar_w + 10.0,
                ry + 14.0,
                escape(&verdict)
            );
        }
        y += 2.0 * row_h + gap;
    }
    format!(
        "<svg class=\"chart\" id=\"chart-sla\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-labelledby=\"csla-title\" {FONT} font-size=\"12\">\
         <title id=\"csla-title\">SLA compliance per level: respond and resolve targets</title>{s}</svg>"
    )
}

/// One 100 % bar of SLA outcomes.
fn sla_bar(s: &mut String, c: &SlaCounts, x: f64, y: f64, w: f64, h: f64, what: &str) {
    let parts = [c.met, c.open_within, c.missed, c.open_past_due, c.unknown, c.no_target];
    let total: u32 = parts.iter().sum();
    let _ = write!(
        s,
        "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"#fafafa\" stroke=\"#ccc\" stroke-width=\"1\"/>"
    );
    if total == 0 {
        return;
    }
    let mut px = x;
    for (count, (name, colour)) in parts.iter().zip(SLA_PARTS) {
        if *count == 0 {
            continue;
        }
        let pw = w * f64::from(*count) / f64::from(total);
        let _ = write!(
            s,
            "<rect class=\"sla-{}\" x=\"{px:.1}\" y=\"{y:.1}\" width=\"{pw:.1}\" height=\"{h:.1}\" fill=\"{colour}\" stroke=\"#fff\" stroke-width=\"0.5\"><title>{}: {count} {name}</title></rect>",
            name.replace([',', ' '], ""),
            escape(what)
        );
        px += pw;
    }
}

/// Colour swatches with names from `(x0, y)`, wrapping before `max_x`; returns the
/// baseline of the last row.
fn legend<'a>(
    s: &mut String,
    x0: f64,
    mut y: f64,
    max_x: f64,
    items: impl Iterator<Item = (String, &'a str)>,
) -> f64 {
    let mut x = x0;
    for (name, colour) in items {
        // About 7 units per character at font size 12 (generous for wide fonts).
        let item_w = 16.0 + 7.0 * name.chars().count() as f64 + 12.0;
        if x > x0 && x + item_w - 12.0 > max_x {
            x = x0;
            y += 18.0;
        }
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{colour}\" stroke=\"#999\" stroke-width=\"0.5\"/>\
             <text x=\"{:.1}\" y=\"{y:.1}\" fill=\"#333\">{}</text>",
            y - 10.0,
            x + 16.0,
            escape(&name)
        );
        x += item_w;
    }
    y
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
        let svg = faults_per_week(&weeks);
        assert_eq!(svg.matches("class=\"bar level-1\"").count(), 1);
        assert_eq!(svg.matches("class=\"bar level-3\"").count(), 1);
        assert_eq!(svg.matches("class=\"bar ").count(), 2);
        assert!(svg.contains(">W27<") && svg.contains(">W28<"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(faults_per_week(&weeks[1..]).contains("No faults opened"));
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
        let svg = sla_compliance(&levels);
        assert!(svg.contains("3/4 met · 75%"), "{svg}");
        assert!(svg.contains("no tickets"));
        assert_eq!(svg.matches("class=\"sla-met\"").count(), 1);
        assert_eq!(svg.matches("class=\"sla-missed\"").count(), 1);
    }
}
