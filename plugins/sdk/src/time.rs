//! Durations in event time.
//!
//! Plugins never read a clock: "for N minutes" is measured between the `ts` of
//! readings, so a replayed trace gives the same conditions as the live stream.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::types::TimestampMs;

/// One second in milliseconds.
pub const SECOND_MS: i64 = 1_000;
/// One minute in milliseconds.
pub const MINUTE_MS: i64 = 60 * SECOND_MS;
/// One hour in milliseconds.
pub const HOUR_MS: i64 = 60 * MINUTE_MS;

/// `n` seconds in milliseconds.
pub const fn seconds(n: i64) -> i64 {
    n * SECOND_MS
}

/// `n` minutes in milliseconds.
pub const fn minutes(n: i64) -> i64 {
    n * MINUTE_MS
}

/// `n` hours in milliseconds.
pub const fn hours(n: i64) -> i64 {
    n * HOUR_MS
}

/// How long a condition has held continuously.
///
/// Counted from the first reading at which it holds; a reading where it does not
/// hold restarts the count, so flapping never accumulates (telemetry.md, "Precise
/// semantics").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    since_ms: Option<TimestampMs>,
}

impl Held {
    /// Records whether the condition holds at `ts`; returns for how long it has
    /// held (0 at the first reading), or `None` when it does not hold.
    pub fn update(&mut self, holds: bool, ts: TimestampMs) -> Option<i64> {
        if holds {
            let since = *self.since_ms.get_or_insert(ts);
            Some(ts.saturating_sub(since).max(0))
        } else {
            self.since_ms = None;
            None
        }
    }

    /// When the current run started.
    pub fn since(&self) -> Option<TimestampMs> {
        self.since_ms
    }

    /// For how long it has held at `now`, without recording a reading.
    pub fn held_for(&self, now: TimestampMs) -> Option<i64> {
        self.since_ms.map(|s| now.saturating_sub(s).max(0))
    }

    /// Forgets the current run.
    pub fn reset(&mut self) {
        self.since_ms = None;
    }
}

/// How a value changed since a switch turned on: "inlet valve open for 30 min and
/// the level rose < 2 points", "heater on for 60 min and the tank rose < 1 °C".
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeSinceOn {
    on: Held,
    start: Option<f64>,
}

/// One reading of a [`ChangeSinceOn`] while the switch is on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OnRun {
    /// When the switch turned on.
    pub since: TimestampMs,
    /// For how long it has been on.
    pub held_ms: i64,
    /// The value when it turned on.
    pub start: f64,
    /// The value now minus `start`.
    pub change: f64,
}

impl ChangeSinceOn {
    /// Records the switch and the value at `ts`; `None` while the switch is off
    /// (which also forgets the run).
    pub fn update(&mut self, on: bool, value: f64, ts: TimestampMs) -> Option<OnRun> {
        if !on {
            self.on.reset();
            self.start = None;
            return None;
        }
        let held_ms = self.on.update(true, ts).unwrap_or(0);
        let since = self.on.since().unwrap_or(ts);
        let start = *self.start.get_or_insert(value);
        Some(OnRun { since, held_ms, start, change: value - start })
    }
}

/// Timestamped values kept for a sliding time window (oldest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub struct Window<T> {
    items: VecDeque<(TimestampMs, T)>,
}

impl<T> Default for Window<T> {
    fn default() -> Self {
        Self { items: VecDeque::new() }
    }
}

impl<T> Window<T> {
    /// Appends a value and drops those older than `span` before `ts`.
    pub fn push(&mut self, ts: TimestampMs, value: T, span: i64) {
        self.items.push_back((ts, value));
        self.expire(ts.saturating_sub(span));
    }

    /// Drops values older than `cutoff`.
    pub fn expire(&mut self, cutoff: TimestampMs) {
        while self.items.front().is_some_and(|(t, _)| *t < cutoff) {
            self.items.pop_front();
        }
    }

    /// Values, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &(TimestampMs, T)> {
        self.items.iter()
    }

    /// Oldest entry.
    pub fn first(&self) -> Option<&(TimestampMs, T)> {
        self.items.front()
    }

    /// Newest entry.
    pub fn last(&self) -> Option<&(TimestampMs, T)> {
        self.items.back()
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Empties the window.
    pub fn clear(&mut self) {
        self.items.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_counts_from_first_reading_and_restarts() {
        let mut h = Held::default();
        assert_eq!(h.update(true, 1_000), Some(0));
        assert_eq!(h.update(true, 61_000), Some(60_000));
        assert_eq!(h.update(false, 62_000), None);
        assert_eq!(h.update(true, 63_000), Some(0));
        assert_eq!(h.held_for(73_000), Some(10_000));
    }

    #[test]
    fn change_since_on_measures_from_the_switch_on() {
        let mut c = ChangeSinceOn::default();
        assert_eq!(c.update(false, 50.0, 0), None);
        let first = c.update(true, 50.0, minutes(1)).unwrap();
        assert_eq!((first.since, first.held_ms, first.change), (minutes(1), 0, 0.0));
        let later = c.update(true, 51.5, minutes(31)).unwrap();
        assert_eq!(
            (later.since, later.held_ms, later.start, later.change),
            (minutes(1), minutes(30), 50.0, 1.5)
        );
        assert_eq!(c.update(false, 52.0, minutes(32)), None);
        assert_eq!(c.update(true, 40.0, minutes(33)).unwrap().start, 40.0);
    }

    #[test]
    fn window_expires_old_values() {
        let mut w = Window::default();
        w.push(0, 1, minutes(60));
        w.push(minutes(30), 2, minutes(60));
        w.push(minutes(61), 3, minutes(60));
        let v: Vec<_> = w.iter().map(|(_, v)| *v).collect();
        assert_eq!(v, vec![2, 3]);
    }
}
