//! Retry delays: exponential backoff with full jitter, honouring a server's
//! `Retry-After`. Pure: the caller passes the attempt number and the random source,
//! so tests are deterministic.

use std::time::Duration;

/// Exponential backoff with full jitter ("AWS full jitter"): before retry number
/// `attempt` (0 for the first retry) wait a uniformly random time in
/// `0 ..= min(max, initial * 2^attempt)`.
///
/// A server's `Retry-After` is a floor: the delay is never shorter than it asks,
/// but it is capped at `max` too, so a server asking for a day does not stall the
/// queue for longer than the agent's own ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Ceiling of the first retry's delay.
    initial: Duration,
    /// Ceiling of every delay, `Retry-After` included.
    max: Duration,
}

impl Default for Backoff {
    /// 1 s initial, 5 min max.
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(300))
    }
}

impl Backoff {
    /// A policy with the given first ceiling and overall cap (a cap below `initial`
    /// is raised to `initial`).
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max: max.max(initial) }
    }

    /// Ceiling of the first retry's delay.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// Cap of every delay.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The jitter window's upper bound before retry `attempt`:
    /// `min(max, initial * 2^attempt)`, without overflow.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        // 2^31 times any useful initial delay is far beyond any useful max.
        let factor = 1u32 << attempt.min(31);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay before retry `attempt`, given `unit` drawn uniformly from `[0, 1)`
    /// (values outside are clamped, NaN counts as 1) and the server's
    /// `Retry-After`, if any.
    pub fn delay_with(&self, attempt: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let unit = if unit.is_nan() { 1.0 } else { unit.clamp(0.0, 1.0) };
        let jittered = self.ceiling(attempt).mul_f64(unit);
        match retry_after {
            Some(floor) => jittered.max(floor).min(self.max),
            None => jittered,
        }
    }

    /// [`Backoff::delay_with`] drawing the unit from `rng`.
    pub fn delay<R: rand::Rng + ?Sized>(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut R,
    ) -> Duration {
        self.delay_with(attempt, retry_after, rng.random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn ceiling_doubles_up_to_max() {
        let b = Backoff::new(S(1), S(60));
        let ceilings: Vec<u64> = (0..8).map(|a| b.ceiling(a).as_secs()).collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.ceiling(u32::MAX), S(60));
        let huge = Backoff::new(Duration::MAX, Duration::MAX);
        assert_eq!(huge.ceiling(40), Duration::MAX);
    }

    #[test]
    fn full_jitter_spans_zero_to_ceiling() {
        let b = Backoff::new(Duration::from_millis(100), S(10));
        assert_eq!(b.delay_with(3, None, 0.0), Duration::ZERO);
        assert_eq!(b.delay_with(3, None, 0.5), Duration::from_millis(400));
        assert_eq!(b.delay_with(3, None, 1.0), Duration::from_millis(800));
        assert_eq!(b.delay_with(3, None, 7.0), Duration::from_millis(800));
        assert_eq!(b.delay_with(3, None, -1.0), Duration::ZERO);
        assert_eq!(b.delay_with(3, None, f64::NAN), Duration::from_millis(800));
    }

    #[test]
    fn retry_after_is_a_floor_capped_at_max() {
        let b = Backoff::new(S(1), S(60));
        assert_eq!(b.delay_with(0, Some(S(30)), 0.5), S(30));
        assert_eq!(b.delay_with(10, Some(S(30)), 0.9), S(54), "jitter above the floor wins");
        assert_eq!(b.delay_with(0, Some(S(3600)), 0.0), S(60), "capped at max");
        assert_eq!(b.delay_with(0, Some(Duration::ZERO), 1.0), S(1));
    }

    #[test]
    fn seeded_rng_is_deterministic_and_bounded() {
        let b = Backoff::default();
        let draw = |seed| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            (0..12).map(|a| b.delay(a, None, &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        for (attempt, delay) in (0..).zip(draw(7)) {
            assert!(delay <= b.ceiling(attempt), "attempt {attempt}: {delay:?}");
        }
    }

    #[test]
    fn max_below_initial_is_raised() {
        let b = Backoff::new(S(5), S(1));
        assert_eq!(b.max(), S(5));
        assert_eq!(b.initial(), S(5));
        assert_eq!(b.delay_with(0, Some(S(9)), 0.0), S(5));
    }
}
