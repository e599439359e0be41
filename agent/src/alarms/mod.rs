//! The alarm engine: a pure state machine that turns fault *conditions* into ticket
//! *transitions*, in event time.
//!
//! Plugins judge conditions ("`tank_leak` is active at this message's `ts`"); this
//! module decides what that means for tickets. It does no I/O, reads no clock and
//! holds no tasks: the host hands it event times and stores [`DeviceAlarms`] (serde)
//! in the same transaction as the plugin state and the outbox, so a crash or a
//! replay gives the same transitions.
//!
//! # Semantics (telemetry.md "Precise semantics", maintenance.md section 1)
//! - One *episode* per (device, code) at a time; an episode is one ticket. An active
//!   report with no open episode opens one ([`Transition::Opened`]).
//! - An inactive report starts the *clear hold* at that report's time (only the first
//!   inactive report of a run counts). Active again before the hold elapses: nothing
//!   happens, so flapping never opens a second ticket. The hold elapsing gives
//!   [`Transition::Recovered`] dated `clear_since + hold`, never "now".
//! - Active again after `Recovered`, while the ticket is open: [`Transition::Recurred`]
//!   on the same ticket. Only [`DeviceAlarms::ticket_closed`] ends an episode.
//! - A severity that worsens within an episode gives [`Transition::Escalated`]; a
//!   fault that interrupts service and stays active for `escalate_after` is escalated
//!   to level 1, once per episode.
//! - [`DEVICE_OFFLINE`] is the engine's own condition: silence for `offline_after`,
//!   or a status "offline", makes it active; any later message clears it.
//! - Across devices, [`site::SiteAlarms`] turns many devices going offline together
//!   into one `site_outage` ticket, and [`window::Windows`] holds back the tickets of
//!   a device under maintenance (maintenance.md section 8).
//!
//! # Time
//! Every call takes an event time. Timers (hold expiry, escalation, silence) fire in
//! time order whenever time advances; a timer that falls due exactly at a message's
//! time is judged *after* that message, because the message tells the state at that
//! instant (a fault cleared exactly at its escalation deadline does not escalate; a
//! device heard from exactly at its offline deadline is not offline). Time never runs
//! backwards: a late message is applied, but no transition of a code is dated before
//! one already emitted for it.

pub mod site;
pub mod window;

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use crate::vecmap::VecMap;

use serde::{Deserialize, Serialize};

/// The engine's own condition code: the device has not been heard from.
pub const DEVICE_OFFLINE: &str = "device_offline";

/// Severity of [`DEVICE_OFFLINE`] (telemetry.md "Any device": level 2).
pub const DEVICE_OFFLINE_SEVERITY: u8 = 2;

/// The highest severity (critical).
const SEVERITY_CRITICAL: u8 = 1;
/// The mildest severity (warning).
const SEVERITY_WARNING: u8 = 4;

const MINUTE_MS: i64 = 60_000;

/// Default clear hold: 2 minutes.
const fn default_clear_hold_ms() -> i64 {
    2 * MINUTE_MS
}

/// Default escalation delay for faults that interrupt service: 10 minutes.
const fn default_escalate_after_ms() -> i64 {
    10 * MINUTE_MS
}

/// Default silence after which a device is offline: 5 minutes.
const fn default_offline_after_ms() -> i64 {
    5 * MINUTE_MS
}

/// Durations that drive the engine, in milliseconds of event time (all non-negative).
///
/// The host builds one per device: `offline_after_ms` is configurable per equipment
/// type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmSettings {
    /// How long a condition must stay inactive before it counts as cleared.
    pub clear_hold_ms: i64,
    /// How long a service-interrupting fault stays active before it becomes level 1.
    pub escalate_after_ms: i64,
    /// Silence after which the device is offline.
    pub offline_after_ms: i64,
}

impl Default for AlarmSettings {
    fn default() -> Self {
        Self {
            clear_hold_ms: default_clear_hold_ms(),
            escalate_after_ms: default_escalate_after_ms(),
            offline_after_ms: default_offline_after_ms(),
        }
    }
}

/// What the engine needs to know about a fault code (from the plugin's description).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultMeta {
    /// The fault interrupts service, so it escalates to level 1 after
    /// [`AlarmSettings::escalate_after_ms`].
    pub interrupts_service: bool,
}

/// One condition as a plugin judged it on one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation<'a> {
    /// The fault code.
    pub code: &'a str,
    /// Whether the condition holds at the message's time.
    pub active: bool,
    /// Current severity 1 (critical) ..= 4 (warning); only read when `active`.
    /// Out-of-range values are clamped into 1..=4 so no impossible ticket can result.
    pub severity: u8,
}

/// What happened to a ticket; the ticket builder turns each into a request.
///
/// Times are event time, milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Transition {
    /// A new episode: open a ticket.
    Opened {
        /// The fault code.
        code: String,
        /// Episode number of this (device, code), from 1; part of the idempotency key.
        episode: u32,
        /// Severity reported at the opening.
        severity: u8,
        /// When the condition was first reported active.
        at: i64,
        /// Episodes of this code whose tickets were closed before this one opened
        /// (the repeat-fault rule recommends replacement at the fourth occurrence).
        closed_before: u32,
    },
    /// The episode's severity got worse: update the ticket, never open a second one.
    Escalated {
        /// The fault code.
        code: String,
        /// The episode (ticket) concerned.
        episode: u32,
        /// The new, worse severity.
        severity: u8,
        /// When it became worse.
        at: i64,
    },
    /// The condition cleared (held inactive for the clear hold); a person still closes.
    Recovered {
        /// The fault code.
        code: String,
        /// The episode (ticket) concerned.
        episode: u32,
        /// The first inactive report plus the clear hold.
        at: i64,
    },
    /// The condition came back after recovering, before the ticket was closed.
    Recurred {
        /// The fault code.
        code: String,
        /// The episode (ticket) concerned.
        episode: u32,
        /// Occurrences on this ticket so far, this one included (2 at the first
        /// recurrence).
        count: u32,
        /// When the condition was reported active again.
        at: i64,
    },
}

impl Transition {
    /// The fault code the transition is about.
    pub fn code(&self) -> &str {
        match self {
            Self::Opened { code, .. }
            | Self::Escalated { code, .. }
            | Self::Recovered { code, .. }
            | Self::Recurred { code, .. } => code,
        }
    }

    /// The episode (ticket) the transition is about.
    pub fn episode(&self) -> u32 {
        match self {
            Self::Opened { episode, .. }
            | Self::Escalated { episode, .. }
            | Self::Recovered { episode, .. }
            | Self::Recurred { episode, .. } => *episode,
        }
    }

    /// When the transition happened (event time, ms).
    pub fn at(&self) -> i64 {
        match self {
            Self::Opened { at, .. }
            | Self::Escalated { at, .. }
            | Self::Recovered { at, .. }
            | Self::Recurred { at, .. } => *at,
        }
    }
}

/// Where an open episode's condition stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The condition holds.
    Active {
        /// Start of the current active run (escalation is never dated before it).
        since: i64,
    },
    /// Reported inactive; recovers at `since + clear hold` unless active again first.
    Clearing {
        /// The first inactive report of this run.
        since: i64,
    },
    /// Cleared; the ticket stays open until closed centrally, and an active report
    /// recurs on it.
    Recovered {
        /// When it recovered.
        at: i64,
    },
}

/// One open episode (one ticket) of a (device, code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    number: u32,
    opened_at: i64,
    /// The worst severity reported so far: the ticket's severity. Only a worse report
    /// changes it, so an improvement never downgrades a ticket.
    severity: u8,
    /// Occurrences on this ticket (1 + recurrences), the `count` of `Recurred`.
    occurrences: u32,
    /// Copied from [`FaultMeta`] at the opening and refreshed at every report of the
    /// code, so [`DeviceAlarms::advance`] and [`DeviceAlarms::next_deadline`] can judge
    /// escalation without asking the plugin.
    interrupts_service: bool,
    /// Where the escalation delay counts from: the opening, then the latest
    /// recurrence. Counting from the opening only would escalate a short recurrence
    /// the moment it appears when the ticket has been open (and recovered) for long;
    /// the seeds escalate a service that has been *interrupted* for 10 minutes.
    escalation_from: i64,
    phase: Phase,
}

impl Episode {
    /// Episode number, from 1 per (device, code).
    pub fn number(&self) -> u32 {
        self.number
    }

    /// When the episode opened (event time, ms).
    pub fn opened_at(&self) -> i64 {
        self.opened_at
    }

    /// The ticket's current severity (the worst reported or escalated to).
    pub fn severity(&self) -> u8 {
        self.severity
    }

    /// Occurrences on this ticket so far (1 + recurrences).
    pub fn occurrences(&self) -> u32 {
        self.occurrences
    }

    /// Where the condition stands.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The next time this episode's own timer fires, if any: the end of the clear
    /// hold, or the level-1 escalation (due at the deadline, or at the start of the
    /// current active run when the condition was only clearing at the deadline).
    fn due(&self, s: &AlarmSettings) -> Option<i64> {
        match self.phase {
            Phase::Active { since }
                if self.interrupts_service && self.severity > SEVERITY_CRITICAL =>
            {
                Some(self.escalation_from.saturating_add(s.escalate_after_ms).max(since))
            }
            Phase::Active { .. } | Phase::Recovered { .. } => None,
            Phase::Clearing { since } => Some(since.saturating_add(s.clear_hold_ms)),
        }
    }
}

/// A fault code as a device's alarm state keys it: interned, so the ten thousand
/// devices of a site share one allocation per code instead of a string each.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Code(Arc<str>);

/// Every code interned so far (a plugin's declared codes and the host's own: a few
/// dozen).
static INTERNED: LazyLock<Mutex<BTreeSet<Arc<str>>>> = LazyLock::new(Mutex::default);

impl Code {
    /// The interned code.
    pub fn new(code: &str) -> Self {
        let mut set = INTERNED.lock().unwrap_or_else(PoisonError::into_inner);
        match set.get(code) {
            Some(a) => Self(a.clone()),
            None => {
                let a: Arc<str> = Arc::from(code);
                set.insert(a.clone());
                Self(a)
            }
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Code {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Self::new(&s))
    }
}

/// One code's history on one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CodeState {
    /// The latest event time applied to this code (a report or a transition). Reports
    /// and timers are dated no earlier, so a late message never produces a transition
    /// dated before one already emitted.
    clock: i64,
    /// Episodes opened so far (the last episode number).
    opened: u32,
    /// Episodes whose ticket was closed (the repeat-fault rule).
    closed: u32,
    /// When the last ticket was closed (central's clock), for status and the archive;
    /// not used by the rules, which run on event time.
    last_closed_at: Option<i64>,
    /// Boxed: most codes of most devices never open one, and a device keeps a state
    /// for each code its plugin reports.
    episode: Option<Box<Episode>>,
}

impl CodeState {
    fn new() -> Self {
        Self { clock: i64::MIN, opened: 0, closed: 0, last_closed_at: None, episode: None }
    }

    /// Fires this code's timers due at or before `until`, in time order.
    fn run_timers(&mut self, code: &str, until: i64, s: &AlarmSettings, out: &mut Vec<Transition>) {
        while let Some(ep) = self.episode.as_mut()
            && let Some(due) = ep.due(s)
            && due <= until
        {
            let at = due.max(self.clock);
            match ep.phase {
                Phase::Active { .. } => {
                    ep.severity = SEVERITY_CRITICAL;
                    out.push(Transition::Escalated {
                        code: code.to_owned(),
                        episode: ep.number,
                        severity: SEVERITY_CRITICAL,
                        at,
                    });
                }
                Phase::Clearing { .. } => {
                    ep.phase = Phase::Recovered { at };
                    out.push(Transition::Recovered {
                        code: code.to_owned(),
                        episode: ep.number,
                        at,
                    });
                }
                // `due` is None for a recovered episode; nothing to fire.
                Phase::Recovered { .. } => break,
            }
            self.clock = at;
        }
    }

    /// Applies one report of the condition at `ts` (dated no earlier than the code's
    /// clock), after firing the timers due strictly before it.
    fn report(
        &mut self,
        code: &str,
        report: Report,
        ts: i64,
        s: &AlarmSettings,
        out: &mut Vec<Transition>,
    ) {
        let at = ts.max(self.clock);
        self.run_timers(code, at.saturating_sub(1), s, out);
        let at = at.max(self.clock);
        self.clock = at;
        let severity = report.severity.clamp(SEVERITY_CRITICAL, SEVERITY_WARNING);
        let Some(ep) = self.episode.as_mut() else {
            if report.active {
                self.opened = self.opened.saturating_add(1);
                self.episode = Some(Box::new(Episode {
                    number: self.opened,
                    opened_at: at,
                    severity,
                    occurrences: 1,
                    interrupts_service: report.meta.interrupts_service,
                    escalation_from: at,
                    phase: Phase::Active { since: at },
                }));
                out.push(Transition::Opened {
                    code: code.to_owned(),
                    episode: self.opened,
                    severity,
                    at,
                    closed_before: self.closed,
                });
            }
            return;
        };
        ep.interrupts_service = report.meta.interrupts_service;
        match (ep.phase, report.active) {
            (Phase::Active { .. }, false) => ep.phase = Phase::Clearing { since: at },
            // The hold keeps its first start, and an inactive recovered condition
            // stays recovered.
            (Phase::Clearing { .. } | Phase::Recovered { .. }, false) => {}
            (Phase::Active { .. }, true) => {}
            // Flapping within the hold: the same occurrence goes on, silently.
            (Phase::Clearing { .. }, true) => ep.phase = Phase::Active { since: at },
            (Phase::Recovered { .. }, true) => {
                ep.occurrences = ep.occurrences.saturating_add(1);
                ep.escalation_from = at;
                ep.phase = Phase::Active { since: at };
                out.push(Transition::Recurred {
                    code: code.to_owned(),
                    episode: ep.number,
                    count: ep.occurrences,
                    at,
                });
            }
        }
        if report.active && severity < ep.severity {
            ep.severity = severity;
            out.push(Transition::Escalated {
                code: code.to_owned(),
                episode: ep.number,
                severity,
                at,
            });
        }
    }
}

/// A condition report as the state machine consumes it.
#[derive(Debug, Clone, Copy)]
struct Report {
    active: bool,
    severity: u8,
    meta: FaultMeta,
}

/// One device's alarm state: every code's episode and history, and whether the device
/// is online. The host stores it (serde) with the device's plugin state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAlarms {
    /// The latest event time the state has been advanced to; never moves backwards.
    now: i64,
    /// The latest message time, or the start time given to [`DeviceAlarms::new`]:
    /// the silence that makes the device offline counts from here.
    last_seen: i64,
    /// When [`DEVICE_OFFLINE`] became active, while it is. Kept apart from the
    /// episode because a closed ticket ends the episode, not the silence.
    offline_since: Option<i64>,
    /// Per code, ordered so iteration (and so output order) is deterministic.
    codes: VecMap<Code, CodeState>,
}

impl DeviceAlarms {
    /// A device with no history, considered heard from at `start_ms`: if it never
    /// publishes it goes offline `offline_after` later (the agent's start when live,
    /// the trace's first message in replay).
    pub fn new(start_ms: i64) -> Self {
        Self { now: start_ms, last_seen: start_ms, offline_since: None, codes: VecMap::new() }
    }

    /// One message of the device at event time `ts` with the conditions the plugin
    /// judged on it.
    ///
    /// Call it for *every* message of the device (telemetry, event, status "online",
    /// invalid payloads with no observations): each proves the device online. Codes
    /// absent from `obs` keep their state. Observations of [`DEVICE_OFFLINE`] are
    /// ignored: the engine owns that code. Timers due before `ts` fire first.
    #[must_use]
    pub fn observe(
        &mut self,
        ts: i64,
        obs: &[Observation<'_>],
        meta: &dyn Fn(&str) -> FaultMeta,
        s: &AlarmSettings,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        self.now = self.now.max(ts);
        self.run_timers(ts.saturating_sub(1), meta, s, &mut out);
        self.last_seen = self.last_seen.max(ts);
        if self.offline_since.take().is_some() {
            let report = Report {
                active: false,
                severity: DEVICE_OFFLINE_SEVERITY,
                meta: meta(DEVICE_OFFLINE),
            };
            self.code_mut(DEVICE_OFFLINE).report(DEVICE_OFFLINE, report, ts, s, &mut out);
        }
        for o in obs.iter().filter(|o| o.code != DEVICE_OFFLINE) {
            let report = Report { active: o.active, severity: o.severity, meta: meta(o.code) };
            self.code_mut(o.code).report(o.code, report, ts, s, &mut out);
        }
        self.finish(meta, s, out)
    }

    /// The device's retained status says "offline" (status messages carry no `ts`: the
    /// host passes the arrival time live, the watermark in replay).
    ///
    /// [`DEVICE_OFFLINE`] becomes active at once, dated no earlier than the device's
    /// last message. If the device is already offline but its ticket was closed, this
    /// report opens a new episode.
    #[must_use]
    pub fn status_offline(
        &mut self,
        ts: i64,
        meta: &dyn Fn(&str) -> FaultMeta,
        s: &AlarmSettings,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        self.now = self.now.max(ts);
        self.run_timers(ts.saturating_sub(1), meta, s, &mut out);
        self.go_offline(ts.max(self.last_seen), meta, s, &mut out);
        self.finish(meta, s, out)
    }

    /// Time has reached `now` with no message from this device: fires the timers due
    /// at or before `now` (clear holds, escalations, silence). A `now` older than the
    /// state has seen changes nothing.
    #[must_use]
    pub fn advance(
        &mut self,
        now: i64,
        meta: &dyn Fn(&str) -> FaultMeta,
        s: &AlarmSettings,
    ) -> Vec<Transition> {
        self.now = self.now.max(now);
        self.finish(meta, s, Vec::new())
    }

    /// The central service reports the ticket of `code`'s `episode` closed at `at`:
    /// the episode ends, and the code's next active report opens a new episode.
    ///
    /// Returns false (and changes nothing) when that episode is not the open one,
    /// e.g. a stale or repeated poll. A condition still active when its ticket closes
    /// opens the new episode at its next *active report*; for [`DEVICE_OFFLINE`] that
    /// is the next status "offline", or the next silence after the device is back.
    pub fn ticket_closed(&mut self, code: &str, episode: u32, at: i64) -> bool {
        let Some(cs) = self.codes.get_mut(code) else {
            return false;
        };
        if cs.episode.as_deref().map(Episode::number) != Some(episode) {
            return false;
        }
        cs.episode = None;
        cs.closed = cs.closed.saturating_add(1);
        cs.last_closed_at = Some(at);
        true
    }

    /// Ends `code`'s open `episode` when no ticket was ever sent for it (a
    /// [`DEVICE_OFFLINE`] episode a site outage swallowed, see [`site`]): unlike
    /// [`DeviceAlarms::ticket_closed`] it does not count toward the repeat-fault rule.
    /// Returns false (and changes nothing) when that episode is not the open one.
    pub fn discard_episode(&mut self, code: &str, episode: u32) -> bool {
        let Some(cs) = self.codes.get_mut(code) else {
            return false;
        };
        if cs.episode.as_deref().map(Episode::number) != Some(episode) {
            return false;
        }
        cs.episode = None;
        true
    }

    /// The earliest event time at which [`DeviceAlarms::advance`] could emit something,
    /// for a live timer; `None` when only a message can change anything.
    pub fn next_deadline(&self, s: &AlarmSettings) -> Option<i64> {
        let silence = match self.offline_since {
            None => Some(self.last_seen.saturating_add(s.offline_after_ms)),
            Some(_) => None,
        };
        self.codes.values().filter_map(|cs| cs.episode.as_ref()?.due(s)).chain(silence).min()
    }

    /// The open episodes (one per code at most), in code order.
    pub fn open_episodes(&self) -> impl Iterator<Item = (&str, &Episode)> {
        self.codes.iter().filter_map(|(code, cs)| Some((code.as_str(), cs.episode.as_deref()?)))
    }

    /// Episodes of `code` whose tickets were closed (the repeat-fault count).
    pub fn closed_episodes(&self, code: &str) -> u32 {
        self.codes.get(code).map_or(0, |cs| cs.closed)
    }

    /// The latest message time (or the start time, if none yet).
    pub fn last_seen(&self) -> i64 {
        self.last_seen
    }

    /// When the device went offline, while it is offline.
    pub fn offline_since(&self) -> Option<i64> {
        self.offline_since
    }

    fn code_mut(&mut self, code: &str) -> &mut CodeState {
        // A code seen before reuses its key (no interner lookup on the hot path).
        let key = match self.codes.find_index(code) {
            Ok(i) => self.codes.get_indexed(i).map(|(k, _)| k.clone()),
            Err(_) => None,
        };
        let key = key.unwrap_or_else(|| Code::new(code));
        self.codes.entry(key).or_insert_with(CodeState::new)
    }

    /// Marks the device offline at `at` (if it is not already) and reports
    /// [`DEVICE_OFFLINE`] active.
    fn go_offline(
        &mut self,
        at: i64,
        meta: &dyn Fn(&str) -> FaultMeta,
        s: &AlarmSettings,
        out: &mut Vec<Transition>,
    ) {
        let since = *self.offline_since.get_or_insert(at);
        let report =
            Report { active: true, severity: DEVICE_OFFLINE_SEVERITY, meta: meta(DEVICE_OFFLINE) };
        self.code_mut(DEVICE_OFFLINE).report(DEVICE_OFFLINE, report, since.max(at), s, out);
    }

    /// Fires every timer due at or before `until`. Codes are independent of each
    /// other, so firing them code by code and sorting the output by time gives the
    /// same result as a global time order. The silence timer goes first because it
    /// feeds [`DEVICE_OFFLINE`]'s report, which fires that code's earlier timers.
    fn run_timers(
        &mut self,
        until: i64,
        meta: &dyn Fn(&str) -> FaultMeta,
        s: &AlarmSettings,
        out: &mut Vec<Transition>,
    ) {
        if self.offline_since.is_none() {
            let due = self.last_seen.saturating_add(s.offline_after_ms);
            if due <= until {
                self.go_offline(due, meta, s, out);
            }
        }
        for (code, cs) in &mut self.codes {
            cs.run_timers(code.as_str(), until, s, out);
        }
    }

    /// Fires the timers due up to `now` and puts the output in time order (stable, so
    /// one code's transitions keep their order).
    fn finish(
        &mut self,
        meta: &dyn Fn(&str) -> FaultMeta,
        s: &AlarmSettings,
        mut out: Vec<Transition>,
    ) -> Vec<Transition> {
        self.run_timers(self.now, meta, s, &mut out);
        out.sort_by_key(Transition::at);
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const M: i64 = 60_000;
    const S: i64 = 1_000;
    /// 2026-11-22T10:00:00+08:00.
    const T0: i64 = 1_795_312_800_000;

    /// Event time `min` minutes after T0.
    fn t(min: i64) -> i64 {
        T0 + min * M
    }

    fn plain(_: &str) -> FaultMeta {
        FaultMeta::default()
    }

    fn av_meta(code: &str) -> FaultMeta {
        FaultMeta { interrupts_service: matches!(code, "amp_protect" | "signal_loss") }
    }

    /// Settings where silence never makes the device offline within a test.
    fn quiet() -> AlarmSettings {
        AlarmSettings { offline_after_ms: 1_000 * 24 * 60 * M, ..AlarmSettings::default() }
    }

    fn on(code: &str, severity: u8) -> Observation<'_> {
        Observation { code, active: true, severity }
    }

    fn off(code: &str) -> Observation<'_> {
        Observation { code, active: false, severity: 4 }
    }

    fn opened(code: &str, episode: u32, severity: u8, at: i64, closed_before: u32) -> Transition {
        Transition::Opened { code: code.into(), episode, severity, at, closed_before }
    }

    fn escalated(code: &str, episode: u32, severity: u8, at: i64) -> Transition {
        Transition::Escalated { code: code.into(), episode, severity, at }
    }

    fn recovered(code: &str, episode: u32, at: i64) -> Transition {
        Transition::Recovered { code: code.into(), episode, at }
    }

    fn recurred(code: &str, episode: u32, count: u32, at: i64) -> Transition {
        Transition::Recurred { code: code.into(), episode, count, at }
    }

    /// A device under test with its settings and fault metadata.
    struct Dev {
        alarms: DeviceAlarms,
        s: AlarmSettings,
        meta: fn(&str) -> FaultMeta,
    }

    impl Dev {
        fn new(s: AlarmSettings, meta: fn(&str) -> FaultMeta) -> Self {
            Self { alarms: DeviceAlarms::new(T0), s, meta }
        }

        fn quiet() -> Self {
            Self::new(quiet(), plain)
        }

        fn obs(&mut self, ts: i64, obs: &[Observation<'_>]) -> Vec<Transition> {
            self.alarms.observe(ts, obs, &self.meta, &self.s)
        }

        fn adv(&mut self, now: i64) -> Vec<Transition> {
            self.alarms.advance(now, &self.meta, &self.s)
        }

        fn status_offline(&mut self, ts: i64) -> Vec<Transition> {
            self.alarms.status_offline(ts, &self.meta, &self.s)
        }

        fn next(&self) -> Option<i64> {
            self.alarms.next_deadline(&self.s)
        }
    }

    #[test]
    fn active_report_opens_an_episode_once() {
        let mut d = Dev::quiet();
        assert_eq!(d.obs(t(0), &[on("overheat", 2)]), [opened("overheat", 1, 2, t(0), 0)]);
        assert_eq!(d.obs(t(1), &[on("overheat", 2)]), []);
        let open: Vec<_> = d.alarms.open_episodes().map(|(c, e)| (c, e.number())).collect();
        assert_eq!(open, [("overheat", 1)]);
        let ep = d.alarms.open_episodes().next().map(|(_, e)| e.clone());
        assert_eq!(ep.as_ref().map(Episode::opened_at), Some(t(0)));
        assert_eq!(ep.as_ref().map(Episode::phase), Some(Phase::Active { since: t(0) }));
    }

    #[test]
    fn inactive_report_without_episode_does_nothing() {
        let mut d = Dev::quiet();
        assert_eq!(d.obs(t(0), &[off("overheat")]), []);
        assert_eq!(d.adv(t(60)), []);
        assert_eq!(d.alarms.open_episodes().count(), 0);
    }

    #[test]
    fn active_again_within_hold_does_nothing() {
        let mut d = Dev::quiet();
        assert_eq!(d.obs(t(0), &[on("overheat", 2)]), [opened("overheat", 1, 2, t(0), 0)]);
        assert_eq!(d.obs(t(5), &[off("overheat")]), []);
        assert_eq!(d.obs(t(6), &[on("overheat", 2)]), []);
        // The hold that started at t(5) no longer runs.
        assert_eq!(d.adv(t(30)), []);
        assert_eq!(d.obs(t(31), &[off("overheat")]), []);
        assert_eq!(d.adv(t(33)), [recovered("overheat", 1, t(33))]);
    }

    #[test]
    fn recovers_exactly_at_clear_since_plus_hold() {
        let mut d = Dev::quiet();
        let _ = d.obs(t(0), &[on("tamper", 2)]);
        let clear_since = t(1) + 30 * S;
        assert_eq!(d.obs(clear_since, &[off("tamper")]), []);
        // Only the first inactive report of a run starts the hold.
        assert_eq!(d.obs(t(2), &[off("tamper")]), []);
        assert_eq!(d.adv(clear_since + 2 * M - 1), []);
        assert_eq!(d.adv(clear_since + 2 * M), [recovered("tamper", 1, clear_since + 2 * M)]);
        assert_eq!(d.adv(t(60)), []);
    }

    #[test]
    fn recovery_found_by_a_later_message_is_dated_at_hold_expiry() {
        let mut d = Dev::quiet();
        let _ = d.obs(t(0), &[on("tamper", 2)]);
        let _ = d.obs(t(1), &[off("tamper")]);
        assert_eq!(d.obs(t(9), &[off("tamper")]), [recovered("tamper", 1, t(3))]);
    }

    #[test]
    fn active_report_exactly_at_hold_expiry_keeps_the_occurrence() {
        // The message tells the state at its instant, before timers due then.
        let mut d = Dev::quiet();
        let _ = d.obs(t(0), &[on("tamper", 2)]);
        let _ = d.obs(t(1), &[off("tamper")]);
        assert_eq!(d.obs(t(3), &[on("tamper", 2)]), []);
        assert_eq!(d.adv(t(10)), []);
    }

    #[test]
    fn recurrence_counts_occurrences_on_the_ticket() {
        let mut d = Dev::quiet();
        let _ = d.obs(t(0), &[on("pump_failure", 2)]);
        let _ = d.obs(t(1), &[off("pump_failure")]);
        assert_eq!(d.adv(t(3)), [recovered("pump_failure", 1, t(3))]);
        assert_eq!(d.obs(t(10), &[on("pump_failure", 2)]), [recurred("pump_failure", 1, 2, t(10))]);
        assert_eq!(d.obs(t(11), &[off("pump_failure")]), []);
        assert_eq!(
            d.obs(t(20), &[on("pump_failure", 2)]),
            [recovered("pump_failure", 1, t(13)), recurred("pump_failure", 1, 3, t(20))]
        );
        let ep = d.alarms.open_episodes().next().map(|(_, e)| e.occurrences());
        assert_eq!(ep, Some(3));
    }

    #[test]
    fn flapping_for_an_hour_opens_one_ticket() {
        let mut d = Dev::quiet();
        let mut all = Vec::new();
        // Active and inactive alternating every 30 s for an hour.
        for i in 0..120 {
            let obs = if i % 2 == 0 { on("door_held_open", 3) } else { off("door_held_open") };
            all.extend(d.obs(T0 + i * 30 * S, &[obs]));
        }
        let last_off = T0 + 119 * 30 * S;
        all.extend(d.adv(t(120)));
        assert_eq!(
            all,
            [
                opened("door_held_open", 1, 3, T0, 0),
                recovered("door_held_open", 1, last_off + 2 * M)
            ]
        );
    }

    #[test]
    fn closed_ticket_starts_a_new_episode_and_counts_toward_repeats() {
        let mut d = Dev::quiet();
        let _ = d.obs(t(0), &[on("pump_failure", 2)]);
        let _ = d.obs(t(1), &[off("pump_failure")]);
        assert_eq!(d.adv(t(3)), [recovered("pump_failure", 1, t(3))]);
        assert!(!d.alarms.ticket_closed("pump_failure", 2, t(4)), "wrong episode");
        assert!(!d.alarms.ticket_closed("overheat", 1, t(4)), "wrong code");
        assert!(d.alarms.ticket_closed("pump_failure", 1, t(4)));
        assert!(!d.alarms.ticket_closed("pump_failure", 1, t(4)), "already closed");
        assert_eq!(d.alarms.open_episodes().count(), 0);
        assert_eq!(d.obs(t(5), &[on("pump_failure", 2)]), [opened("pump_failure", 2, 2, t(5), 1)]);
        // Two more closed episodes: the fourth occurrence sees three closed tickets.
        assert!(d.alarms.ticket_closed("pump_failure", 2, t(6)));
        assert_eq!(d.obs(t(7), &[on("pump_failure", 2)]), [opened("pump_failure", 3, 2, t(7), 2)]);
        assert!(d.alarms.ticket_closed("pump_failure", 3, t(8)));
        assert_eq!(d.alarms.closed_episodes("pump_failure"), 3);
        assert_eq!(
            d.obs(t(40), &[on("pump_failure", 2)]),
            [opened("pump_failure", 4, 2, t(40), 3)]
        );
    }

    #[test]
    fn ticket_closed_while_active_reopens_at_the_next_active_report() {
        let mut d = Dev::quiet();
        let _ = d.obs(t(0), &[on("overheat", 2)]);
        assert!(d.alarms.ticket_closed("overheat", 1, t(5)));
        assert_eq!(d.adv(t(6)), []);
        assert_eq!(d.obs(t(7), &[on("overheat", 2)]), [opened("overheat", 2, 2, t(7), 1)]);
        // Closed during the clear hold: no recovery is sent for the closed ticket.
        let _ = d.obs(t(8), &[off("overheat")]);
        assert!(d.alarms.ticket_closed("overheat", 2, t(9)));
        assert_eq!(d.adv(t(30)), []);
        assert_eq!(d.obs(t(31), &[on("overheat", 2)]), [opened("overheat", 3, 2, t(31), 2)]);
    }

    #[test]
    fn escalates_exactly_at_the_deadline_via_advance() {
        let mut d = Dev::new(quiet(), av_meta);
        assert_eq!(d.obs(t(0), &[on("amp_protect", 2)]), [opened("amp_protect", 1, 2, t(0), 0)]);
        assert_eq!(d.obs(t(5), &[on("amp_protect", 2)]), []);
        assert_eq!(d.adv(t(10) - 1), []);
        assert_eq!(d.adv(t(10)), [escalated("amp_protect", 1, 1, t(10))]);
        assert_eq!(d.alarms.open_episodes().next().map(|(_, e)| e.severity()), Some(1));
    }

    #[test]
    fn escalation_found_by_a_later_message_is_dated_at_the_deadline() {
        let mut d = Dev::new(quiet(), av_meta);
        let _ = d.obs(t(0), &[on("amp_protect", 2)]);
        assert_eq!(d.obs(t(12), &[on("amp_protect", 2)]), [escalated("amp_protect", 1, 1, t(10))]);
        // Active exactly at the deadline escalates too (the report confirms it).
        let mut d = Dev::new(quiet(), av_meta);
        let _ = d.obs(t(0), &[on("signal_loss", 2)]);
        assert_eq!(d.obs(t(10), &[on("signal_loss", 2)]), [escalated("signal_loss", 1, 1, t(10))]);
    }

    #[test]
    fn clearing_at_the_deadline_does_not_escalate_until_active_again() {
        let mut d = Dev::new(quiet(), av_meta);
        let _ = d.obs(t(0), &[on("amp_protect", 2)]);
        assert_eq!(d.obs(t(10), &[off("amp_protect")]), []);
        assert_eq!(d.adv(t(11)), []);
        assert_eq!(d.next(), Some(t(12)), "only the hold is pending");
        assert_eq!(
            d.obs(t(11) + 30 * S, &[on("amp_protect", 2)]),
            [escalated("amp_protect", 1, 1, t(11) + 30 * S)]
        );
    }

    #[test]
    fn clearing_before_the_deadline_recovers_without_escalating() {
        let mut d = Dev::new(quiet(), av_meta);
        let _ = d.obs(t(0), &[on("amp_protect", 2)]);
        let _ = d.obs(t(9), &[off("amp_protect")]);
        assert_eq!(d.adv(t(30)), [recovered("amp_protect", 1, t(11))]);
    }

    #[test]
    fn escalates_once_per_episode() {
        let mut d = Dev::new(quiet(), av_meta);
        let _ = d.obs(t(0), &[on("amp_protect", 2)]);
        assert_eq!(d.adv(t(10)), [escalated("amp_protect", 1, 1, t(10))]);
        let _ = d.obs(t(11), &[off("amp_protect")]);
        assert_eq!(d.adv(t(13)), [recovered("amp_protect", 1, t(13))]);
        assert_eq!(d.obs(t(20), &[on("amp_protect", 2)]), [recurred("amp_protect", 1, 2, t(20))]);
        assert_eq!(d.adv(t(60)), []);
        // Nothing pending but the (distant) silence timer.
        assert_eq!(d.next(), Some(t(20) + quiet().offline_after_ms));
    }

    #[test]
    fn escalation_after_a_recurrence_counts_from_the_recurrence() {
        let mut d = Dev::new(quiet(), av_meta);
        let _ = d.obs(t(0), &[on("signal_loss", 2)]);
        let _ = d.obs(t(1), &[off("signal_loss")]);
        assert_eq!(d.adv(t(3)), [recovered("signal_loss", 1, t(3))]);
        // Long after the opening: a short recurrence must not escalate at once.
        assert_eq!(d.obs(t(30), &[on("signal_loss", 2)]), [recurred("signal_loss", 1, 2, t(30))]);
        assert_eq!(d.next(), Some(t(40)));
        assert_eq!(d.adv(t(40) - 1), []);
        assert_eq!(d.adv(t(40)), [escalated("signal_loss", 1, 1, t(40))]);
    }

    #[test]
    fn faults_that_do_not_interrupt_service_never_escalate() {
        let mut d = Dev::new(quiet(), av_meta);
        let _ = d.obs(t(0), &[on("amp_overtemp", 2)]);
        assert_eq!(d.next(), Some(t(0) + quiet().offline_after_ms), "only silence");
        assert_eq!(d.adv(t(30)), []);
        assert_eq!(d.obs(t(60), &[on("amp_overtemp", 2)]), []);
    }

    #[test]
    fn interrupting_fault_opened_at_level_one_is_not_escalated_again() {
        let mut d = Dev::new(quiet(), av_meta);
        assert_eq!(d.obs(t(0), &[on("amp_protect", 1)]), [opened("amp_protect", 1, 1, t(0), 0)]);
        assert_eq!(d.adv(t(30)), []);
    }

    #[test]
    fn worsening_severity_escalates_and_improvement_changes_nothing() {
        let mut d = Dev::quiet();
        assert_eq!(d.obs(t(0), &[on("battery_low", 3)]), [opened("battery_low", 1, 3, t(0), 0)]);
        assert_eq!(d.obs(t(1), &[on("battery_low", 2)]), [escalated("battery_low", 1, 2, t(1))]);
        assert_eq!(d.obs(t(2), &[on("battery_low", 3)]), []);
        assert_eq!(d.obs(t(3), &[on("battery_low", 2)]), []);
        assert_eq!(d.alarms.open_episodes().next().map(|(_, e)| e.severity()), Some(2));
        // A worse severity on an inactive report means nothing.
        assert_eq!(
            d.obs(t(4), &[Observation { code: "battery_low", active: false, severity: 1 }]),
            []
        );
        assert_eq!(d.obs(t(5), &[on("battery_low", 1)]), [escalated("battery_low", 1, 1, t(5))]);
    }

    #[test]
    fn worse_severity_on_a_recurrence_escalates_after_recurring() {
        let mut d = Dev::quiet();
        let _ = d.obs(t(0), &[on("battery_low", 3)]);
        let _ = d.obs(t(1), &[off("battery_low")]);
        assert_eq!(
            d.obs(t(10), &[on("battery_low", 2)]),
            [
                recovered("battery_low", 1, t(3)),
                recurred("battery_low", 1, 2, t(10)),
                escalated("battery_low", 1, 2, t(10))
            ]
        );
    }

    #[test]
    fn out_of_range_severity_is_clamped() {
        let mut d = Dev::quiet();
        assert_eq!(d.obs(t(0), &[on("x", 9)]), [opened("x", 1, 4, t(0), 0)]);
        assert_eq!(d.obs(t(1), &[on("x", 0)]), [escalated("x", 1, 1, t(1))]);
    }

    #[test]
    fn silence_makes_the_device_offline_and_a_message_recovers_it() {
        let mut d = Dev::new(AlarmSettings::default(), plain);
        assert_eq!(d.obs(t(1), &[]), []);
        assert_eq!(d.next(), Some(t(6)));
        assert_eq!(d.adv(t(6) - 1), []);
        assert_eq!(d.adv(t(6)), [opened(DEVICE_OFFLINE, 1, 2, t(6), 0)]);
        assert_eq!(d.alarms.offline_since(), Some(t(6)));
        assert_eq!(d.next(), None);
        assert_eq!(d.adv(t(15)), []);
        // Any message, even one the plugin could not use, proves the device online.
        assert_eq!(d.obs(t(20), &[]), []);
        assert_eq!(d.alarms.offline_since(), None);
        assert_eq!(d.next(), Some(t(22)));
        assert_eq!(d.adv(t(22)), [recovered(DEVICE_OFFLINE, 1, t(22))]);
        // Silent again: the same ticket recurs.
        assert_eq!(d.adv(t(25)), [recurred(DEVICE_OFFLINE, 1, 2, t(25))]);
    }

    #[test]
    fn message_exactly_at_the_offline_deadline_keeps_the_device_online() {
        let mut d = Dev::new(AlarmSettings::default(), plain);
        assert_eq!(d.obs(t(5), &[]), []);
        assert_eq!(d.adv(t(9)), []);
    }

    #[test]
    fn offline_again_within_the_hold_is_the_same_occurrence() {
        let s = AlarmSettings { offline_after_ms: M, ..AlarmSettings::default() };
        let mut d = Dev::new(s, plain);
        assert_eq!(d.adv(t(1)), [opened(DEVICE_OFFLINE, 1, 2, t(1), 0)]);
        assert_eq!(d.obs(t(2), &[]), []);
        // Silent for 1 min again, before the 2 min hold elapsed.
        assert_eq!(d.adv(t(3)), []);
        assert_eq!(d.obs(t(4), &[]), []);
        assert_eq!(d.obs(t(4) + 30 * S, &[]), []);
        assert_eq!(d.obs(t(5), &[]), []);
        assert_eq!(d.obs(t(5) + 30 * S, &[]), []);
        assert_eq!(d.adv(t(6)), [recovered(DEVICE_OFFLINE, 1, t(6))]);
    }

    #[test]
    fn status_offline_takes_effect_at_once() {
        let mut d = Dev::new(AlarmSettings::default(), plain);
        let _ = d.obs(t(0), &[]);
        assert_eq!(d.status_offline(t(1)), [opened(DEVICE_OFFLINE, 1, 2, t(1), 0)]);
        assert_eq!(d.status_offline(t(2)), []);
        assert_eq!(d.adv(t(10)), []);
        assert_eq!(d.obs(t(11), &[]), []);
        assert_eq!(d.adv(t(13)), [recovered(DEVICE_OFFLINE, 1, t(13))]);
    }

    #[test]
    fn status_offline_is_never_dated_before_the_last_message() {
        let mut d = Dev::new(AlarmSettings::default(), plain);
        let _ = d.obs(t(3), &[]);
        assert_eq!(d.status_offline(t(2)), [opened(DEVICE_OFFLINE, 1, 2, t(3), 0)]);
    }

    #[test]
    fn status_offline_after_a_closed_offline_ticket_opens_a_new_one() {
        let mut d = Dev::new(AlarmSettings::default(), plain);
        assert_eq!(d.adv(t(5)), [opened(DEVICE_OFFLINE, 1, 2, t(5), 0)]);
        assert!(d.alarms.ticket_closed(DEVICE_OFFLINE, 1, t(30)));
        // Still offline: silence does not reopen, a status "offline" does.
        assert_eq!(d.adv(t(60)), []);
        assert_eq!(d.status_offline(t(61)), [opened(DEVICE_OFFLINE, 2, 2, t(61), 1)]);
    }

    #[test]
    fn a_device_that_never_publishes_goes_offline_after_start() {
        let mut d = Dev::new(AlarmSettings::default(), plain);
        assert_eq!(d.next(), Some(t(5)));
        assert_eq!(d.adv(t(4)), []);
        assert_eq!(d.adv(t(30)), [opened(DEVICE_OFFLINE, 1, 2, t(5), 0)]);
    }

    #[test]
    fn device_offline_reported_by_a_plugin_is_ignored() {
        let mut d = Dev::quiet();
        assert_eq!(d.obs(t(0), &[on(DEVICE_OFFLINE, 1)]), []);
        assert_eq!(d.alarms.open_episodes().count(), 0);
    }

    #[test]
    fn timers_fire_in_time_order_across_codes() {
        let mut d = Dev::new(AlarmSettings::default(), av_meta);
        let _ = d.obs(t(0), &[on("amp_protect", 2), on("fan_failure", 3)]);
        let _ = d.obs(t(1), &[off("fan_failure")]);
        // Silent from t(1): offline at t(6), escalation at t(10), fan recovered at t(3).
        assert_eq!(
            d.obs(t(20), &[on("amp_protect", 2)]),
            [
                recovered("fan_failure", 1, t(3)),
                opened(DEVICE_OFFLINE, 1, 2, t(6), 0),
                escalated("amp_protect", 1, 1, t(10)),
            ]
        );
        assert_eq!(d.adv(t(22)), [recovered(DEVICE_OFFLINE, 1, t(22))]);
    }

    #[test]
    fn out_of_order_messages_never_date_a_transition_backwards() {
        let mut d = Dev::new(quiet(), av_meta);
        let _ = d.obs(t(0), &[on("amp_protect", 2)]);
        assert_eq!(d.adv(t(10)), [escalated("amp_protect", 1, 1, t(10))]);
        // A late reading from t(8) says inactive: the hold starts at t(10), not t(8).
        assert_eq!(d.obs(t(8), &[off("amp_protect")]), []);
        assert_eq!(d.adv(t(11)), []);
        assert_eq!(d.adv(t(12)), [recovered("amp_protect", 1, t(12))]);
        // Time does not run backwards: an older advance changes nothing.
        assert_eq!(d.adv(t(1)), []);
        // A late reading of a code with no history is dated at its own ts.
        assert_eq!(d.obs(t(5), &[on("fan_failure", 3)]), [opened("fan_failure", 1, 3, t(5), 0)]);
        // ... and its hold, started at a late ts, fires at once: t(8) is already past.
        assert_eq!(d.obs(t(6), &[off("fan_failure")]), [recovered("fan_failure", 1, t(8))]);
    }

    #[test]
    fn late_message_does_not_pull_the_offline_timer_back() {
        let mut d = Dev::new(AlarmSettings::default(), plain);
        let _ = d.obs(t(4), &[]);
        assert_eq!(d.obs(t(2), &[]), []);
        assert_eq!(d.alarms.last_seen(), t(4));
        assert_eq!(d.next(), Some(t(9)));
    }

    #[test]
    fn serde_round_trip_mid_episode_gives_the_same_future() {
        let mut d = Dev::new(AlarmSettings::default(), av_meta);
        let _ = d.obs(t(0), &[on("amp_protect", 2), on("battery_low", 3)]);
        let _ = d.obs(t(4), &[off("battery_low")]);
        let json = serde_json::to_string(&d.alarms).expect("serialise");
        let restored: DeviceAlarms = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(restored, d.alarms);
        let mut e = Dev { alarms: restored, s: d.s, meta: av_meta };
        assert_eq!(e.next(), d.next());
        let future = |x: &mut Dev| {
            let mut all = x.obs(t(5), &[on("amp_protect", 2)]);
            all.extend(x.adv(t(12)));
            all.extend(x.obs(t(13), &[on("battery_low", 2)]));
            all
        };
        let expected = [
            recovered("battery_low", 1, t(6)),
            opened(DEVICE_OFFLINE, 1, 2, t(10), 0),
            escalated("amp_protect", 1, 1, t(10)),
            recurred("battery_low", 1, 2, t(13)),
            escalated("battery_low", 1, 2, t(13)),
        ];
        assert_eq!(future(&mut d), expected);
        assert_eq!(future(&mut e), expected);
        assert_eq!(e.alarms, d.alarms);
    }

    #[test]
    fn next_deadline_is_the_earliest_pending_timer() {
        let mut d = Dev::new(AlarmSettings::default(), av_meta);
        assert_eq!(d.next(), Some(t(5)), "start + offline_after");
        let _ = d.obs(t(1), &[on("amp_protect", 2)]);
        assert_eq!(d.next(), Some(t(6)), "silence before escalation at t(11)");
        let _ = d.obs(t(5), &[on("fan_failure", 3)]);
        assert_eq!(d.next(), Some(t(10)));
        let _ = d.obs(t(9), &[off("fan_failure")]);
        assert_eq!(d.next(), Some(t(11)), "fan hold and escalation both at t(11)");
        let _ = d.obs(t(11), &[on("amp_protect", 2)]);
        assert_eq!(d.next(), Some(t(16)), "only silence left");
        assert_eq!(d.adv(t(16)), [opened(DEVICE_OFFLINE, 1, 2, t(16), 0)]);
        assert_eq!(d.next(), None);
    }

    #[test]
    fn transition_accessors_and_wire_form() {
        let tr = recurred("tamper", 3, 2, t(1));
        assert_eq!((tr.code(), tr.episode(), tr.at()), ("tamper", 3, t(1)));
        let json = serde_json::to_value(&tr).expect("serialise");
        assert_eq!(
            json,
            serde_json::json!({"type": "recurred", "code": "tamper", "episode": 3, "count": 2, "at": t(1)})
        );
        let back: Transition = serde_json::from_value(json).expect("deserialise");
        assert_eq!(back, tr);
    }
}
