//! The accelerated clock: event time = `start + elapsed real time × speed`.

/// Maps real elapsed time to event time. Pure: the caller supplies the elapsed time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimClock {
    start_ms: i64,
    speed: f64,
}

/// A speed that is not a positive finite number, or absurdly high.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("speed must be a number from 1 to {MAX_SPEED} (event seconds per real second), got {0}")]
pub struct BadSpeed(pub f64);

/// The fastest clock: 10,000 × (about a week of event time per real minute).
pub const MAX_SPEED: f64 = 10_000.0;

impl SimClock {
    /// A clock starting at event time `start_ms` running `speed` times real time.
    /// Slower than real time is refused: event time must never fall behind the wall
    /// clock (the agent would take the devices for silent).
    pub fn new(start_ms: i64, speed: f64) -> Result<Self, BadSpeed> {
        if !speed.is_finite() || !(1.0..=MAX_SPEED).contains(&speed) {
            return Err(BadSpeed(speed));
        }
        Ok(Self { start_ms, speed })
    }

    /// Event time at the start.
    pub fn start_ms(&self) -> i64 {
        self.start_ms
    }

    /// The speed.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Event time after `elapsed` of real time.
    pub fn event_ms(&self, elapsed: std::time::Duration) -> i64 {
        self.start_ms + (elapsed.as_secs_f64() * 1000.0 * self.speed) as i64
    }
}
