//! The demo site's devices (`tend demo`, and `tend simulate` without `--inventory`).

/// The demo site (`configs/demo-site.toml`), used when no `--inventory` is given.
pub const DEMO_INVENTORY: &str = include_str!("../../configs/demo-site.toml");
/// The built-in demo site, with two devices' commissioning moved so that an
/// inspection is due this week (the desk shows inspection tickets at once):
/// `swh-roof-1`'s semiannual and `av-hall`'s quarterly plan, due in three days.
pub fn demo_inventory(now: jiff::Timestamp) -> String {
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap_or(jiff::tz::TimeZone::UTC);
    let due = now.to_zoned_datetime(tz).date().checked_add(jiff::Span::new().days(3)).ok();
    let back = |months: i64| {
        due.and_then(|d| d.checked_sub(jiff::Span::new().months(months)).ok())
            .map(|d| format!("commissioned = {d}"))
    };
    let mut text = DEMO_INVENTORY.to_owned();
    for (line, months) in [("commissioned = 2025-03-01", 6), ("commissioned = 2025-04-01", 3)] {
        if let Some(moved) = back(months) {
            text = text.replacen(line, &moved, 1);
        }
    }
    text
}
