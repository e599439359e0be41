//! What the dispatcher knows about the service's health, pure (no I/O, no clock of
//! its own): which tickets wait for a retry of a failed request, and whether the
//! service as a whole is down.
//!
//! A request can fail for one ticket only: a 500 that one ticket's body provokes,
//! an error page for one path. Such a ticket waits for its own retry, with its own
//! backoff, and every other ticket goes on. The service counts as down (an
//! *outage*) only once failures in a row came from more than one ticket with no
//! answer in between; then one request at a time probes it, each probe no sooner
//! than the backoff after the last failed one, until an answer ends the outage.
//! Probes take turns among the tickets, so a ticket that fails on its own never
//! holds the others back, even if it was probing when the service came back. The
//! end of an outage makes every waiting ticket due again at once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use super::super::backoff::Backoff;

/// The outage state and the tickets waiting for a retry; see the module docs.
#[derive(Debug, Default)]
pub(super) struct Health {
    /// Failed attempts in a row, over all tickets (the status API's
    /// `consecutive_failures`).
    failures: u32,
    /// The ticket whose failure began the streak.
    first: Option<String>,
    /// The streak spans more than one ticket: the service itself fails.
    outage: bool,
    /// Probes that failed in this outage (the exponent of its backoff).
    probes_failed: u32,
    /// In an outage: no probe before this.
    probe_at: Option<Instant>,
    /// Tickets whose latest request failed.
    waiting: HashMap<String, Waiting>,
    /// Inside a refused-token outage (already logged).
    pub(super) unauthorized: bool,
    /// Store failures in a row.
    pub(super) store_failures: u32,
}

/// A ticket whose latest request failed.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    /// Its failed attempts in a row (the exponent of its backoff).
    attempts: u32,
    /// Not retried before this.
    until: Instant,
}

/// What one failure changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Failed {
    /// Failed attempts in a row over all tickets, this one included.
    pub(super) streak: u32,
    /// The ticket's failed attempts in a row, this one included.
    pub(super) attempts: u32,
    /// When the ticket is tried again.
    pub(super) retry_in: Duration,
    /// The service counts as down.
    pub(super) outage: bool,
}

/// What an answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Recovered {
    /// Failed attempts in the streak the answer ended, if it ended an outage.
    pub(super) outage_failures: Option<u32>,
    /// The ticket's own failed attempts before this answer.
    pub(super) ticket_attempts: u32,
    /// The service had refused the token.
    pub(super) was_unauthorized: bool,
}

impl Health {
    /// A request for `ticket` failed at `now` (`probe`: it was the outage's probe;
    /// `after`: the server's `Retry-After`). Schedules the ticket's retry, and the
    /// next probe if the service counts as down.
    pub(super) fn failed<R: rand::Rng + ?Sized>(
        &mut self,
        ticket: &str,
        probe: bool,
        after: Option<Duration>,
        now: Instant,
        backoff: &Backoff,
        rng: &mut R,
    ) -> Failed {
        self.failures = self.failures.saturating_add(1);
        match &self.first {
            None => self.first = Some(ticket.to_owned()),
            Some(first) if first != ticket => self.outage = true,
            Some(_) => {}
        }
        let waiting =
            self.waiting.entry(ticket.to_owned()).or_insert(Waiting { attempts: 0, until: now });
        let retry_in = backoff.delay(waiting.attempts, after, rng);
        waiting.attempts = waiting.attempts.saturating_add(1);
        waiting.until = now + retry_in;
        let attempts = waiting.attempts;
        if self.outage {
            // A request already in flight when the outage began is no probe: eight
            // lanes failing at once do not stretch the delay.
            if probe {
                self.probes_failed = self.probes_failed.saturating_add(1);
            }
            let at = now + backoff.delay(self.probes_failed, after, rng);
            self.probe_at = Some(self.probe_at.map_or(at, |earlier| earlier.max(at)));
        }
        Failed { streak: self.failures, attempts, retry_in, outage: self.outage }
    }

    /// The service answered a request for `ticket` (accepted or refused it for
    /// good): the ticket waits no more, an outage ends. The end of an outage ends
    /// every ticket's wait: their failures were the outage's (a ticket that fails
    /// on its own starts its backoff again).
    pub(super) fn answered(&mut self, ticket: &str) -> Recovered {
        let ticket_attempts = self.waiting.remove(ticket).map_or(0, |w| w.attempts);
        let outage_failures = self.outage.then_some(self.failures);
        if self.outage {
            self.waiting.clear();
        }
        let was_unauthorized = self.unauthorized;
        self.failures = 0;
        self.first = None;
        self.outage = false;
        self.probes_failed = 0;
        self.probe_at = None;
        self.unauthorized = false;
        Recovered { outage_failures, ticket_attempts, was_unauthorized }
    }

    /// True while the service counts as down: requests go one at a time.
    pub(super) fn in_outage(&self) -> bool {
        self.outage
    }

    /// In an outage, when the next probe may go (`None`: no outage).
    pub(super) fn probe_at(&self) -> Option<Instant> {
        if self.outage { self.probe_at } else { None }
    }

    /// The tickets not to be tried at `now`, and the earliest time one of them may
    /// be.
    pub(super) fn waiting_at(&self, now: Instant) -> (HashSet<String>, Option<Instant>) {
        let mut skip = HashSet::new();
        let mut earliest: Option<Instant> = None;
        for (ticket, waiting) in &self.waiting {
            if waiting.until > now {
                skip.insert(ticket.clone());
                earliest = Some(earliest.map_or(waiting.until, |e| e.min(waiting.until)));
            }
        }
        (skip, earliest)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    const SEED: u64 = 15;

    fn backoff() -> Backoff {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(300))
    }

    #[test]
    fn one_failing_ticket_is_no_outage() {
        let mut rng = StdRng::seed_from_u64(SEED);
        let mut health = Health::default();
        let now = Instant::now();
        for round in 1..=5u32 {
            let failed = health.failed("bad", false, None, now, &backoff(), &mut rng);
            assert!(!failed.outage, "round {round}");
            assert_eq!((failed.attempts, failed.streak), (round, round));
            assert!(failed.retry_in <= backoff().ceiling(round - 1));
            assert!(!health.in_outage());
            assert_eq!(health.probe_at(), None);
        }
        // Only the failing ticket waits (until its own retry).
        let (skip, earliest) = health.waiting_at(now);
        assert_eq!(skip, HashSet::from(["bad".to_owned()]));
        assert!(earliest.is_some_and(|at| at <= now + backoff().ceiling(4)));
        // Another ticket's answer ends the streak, not the bad ticket's wait.
        let recovered = health.answered("good");
        assert_eq!(
            recovered,
            Recovered { outage_failures: None, ticket_attempts: 0, was_unauthorized: false }
        );
        assert_eq!(health.waiting_at(now).0.len(), 1);
        // Its next failure counts its own attempts on.
        let failed = health.failed("bad", false, None, now, &backoff(), &mut rng);
        assert_eq!((failed.attempts, failed.streak, failed.outage), (6, 1, false));
        assert_eq!(health.answered("bad").ticket_attempts, 6);
        assert!(health.waiting_at(now).0.is_empty());
    }

    #[test]
    fn failures_across_tickets_are_an_outage_probed_with_backoff() {
        let mut rng = StdRng::seed_from_u64(SEED);
        let mut health = Health::default();
        let now = Instant::now();
        assert!(!health.failed("a", false, None, now, &backoff(), &mut rng).outage);
        // Eight lanes failing at once: an outage, and the first probe's delay is
        // the first retry's.
        for lane in ["b", "c", "d", "e", "f", "g", "h"] {
            assert!(health.failed(lane, false, None, now, &backoff(), &mut rng).outage);
        }
        assert!(health.in_outage());
        let first = health.probe_at();
        assert!(first.is_some_and(|at| at <= now + backoff().ceiling(0)), "{first:?} {now:?}");
        // Failed probes stretch the delay, never shorten it.
        let mut last = first;
        for probe in 1..=6u32 {
            let failed = health.failed("a", true, None, now, &backoff(), &mut rng);
            assert_eq!(failed.streak, 8 + probe);
            let at = health.probe_at();
            assert!(at >= last && at.is_some_and(|at| at <= now + backoff().ceiling(probe)));
            last = at;
        }
        // A Retry-After is a floor for the next probe too.
        health.failed("b", true, Some(Duration::from_secs(120)), now, &backoff(), &mut rng);
        assert!(health.probe_at().is_some_and(|at| at >= now + Duration::from_secs(120)));
        // Any answer ends it.
        let recovered = health.answered("c");
        assert_eq!(recovered.outage_failures, Some(15));
        assert_eq!(recovered.ticket_attempts, 1);
        assert!(!health.in_outage());
        assert_eq!(health.probe_at(), None);
        // The others' failures were the outage's: they are due at once.
        let (skip, earliest) = health.waiting_at(now);
        assert!(skip.is_empty() && earliest.is_none(), "{skip:?}");
        let failed = health.failed("a", false, None, now, &backoff(), &mut rng);
        assert_eq!((failed.attempts, failed.streak, failed.outage), (1, 1, false));
    }

    #[test]
    fn an_answer_ends_a_refused_token_outage() {
        let mut rng = StdRng::seed_from_u64(SEED);
        let mut health = Health { unauthorized: true, ..Health::default() };
        health.failed("a", false, None, Instant::now(), &backoff(), &mut rng);
        assert!(health.answered("a").was_unauthorized);
        assert!(!health.unauthorized);
    }
}
