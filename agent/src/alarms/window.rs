//! Maintenance windows (maintenance.md section 8): while a technician works on a
//! device, its faults are judged and archived as *suppressed (maintenance)* but page
//! nobody; what is still active when the window ends opens its ticket then.
//!
//! Pure and in event time: [`Windows`] filters one device's transitions before the
//! site outage rule sees them, and is stored with the site's alarm state.
//!
//! # Rules
//! - A device is under maintenance while site staff declared a window for it
//!   ([`Windows::declare`], ending at its `until` or at [`Windows::end_declared`]) or
//!   while one of its inspection tickets is `in_progress` at the central service
//!   ([`Windows::inspection`]); the window lasts while either holds.
//! - Under maintenance, a new episode ([`Transition::Opened`]) is held: no ticket,
//!   an archive entry. Escalations are not sent, of held episodes or of tickets
//!   already open. Recoveries and recurrences of tickets already open still go out:
//!   they page nobody and keep the desk's ticket true. (Reading of "send no
//!   escalation": a ticket the desk already has is kept up to date except for a
//!   worse level.)
//! - A held episode that clears during the window is discarded (never a ticket).
//! - When the window ends, each held episode still open (active, or inactive for
//!   less than the clear hold: it has not cleared yet) opens its ticket dated at the
//!   end, its description saying it was first seen during maintenance and when.
//! - The codes that always page ([`WindowSettings::always_page`]) are never held.
//! - A device under maintenance does not count toward a site outage (its
//!   `device_offline` is held like any other code).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::Transition;

/// The numbers and lists of the rule (config `[maintenance]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSettings {
    /// Codes never suppressed (`tank_leak`, `forced_open`).
    pub always_page: BTreeSet<String>,
    /// Length of a declared window when none is given (2 h), ms.
    pub default_ms: i64,
    /// Longest declared window (24 h), ms.
    pub max_ms: i64,
}

impl Default for WindowSettings {
    fn default() -> Self {
        Self {
            always_page: ["tank_leak", "forced_open"].into_iter().map(str::to_owned).collect(),
            default_ms: 2 * 3_600_000,
            max_ms: 24 * 3_600_000,
        }
    }
}

/// A window site staff declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declared {
    /// When it started (ms).
    pub from: i64,
    /// When it ends by itself (ms).
    pub until: i64,
    /// What staff wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An episode held back by a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The episode.
    pub episode: u32,
    /// When it was first seen (ms).
    pub first_seen: i64,
}

/// One device's maintenance state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceWindow {
    /// The declared window, while it lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared: Option<Declared>,
    /// Inspection tickets in progress at the central service.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub inspections: BTreeSet<String>,
    /// When the current window started (ms).
    #[serde(default)]
    pub since: i64,
    /// Episodes held back, by code.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub held: BTreeMap<String, Held>,
}

impl DeviceWindow {
    fn active(&self) -> bool {
        self.declared.is_some() || !self.inspections.is_empty()
    }
}

/// What the host must do after [`Windows`] judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowEffect {
    /// A window began (archive).
    Started {
        /// `declared` or `inspection`.
        source: &'static str,
        /// The inspection ticket, for `inspection`.
        ticket_id: Option<String>,
        /// A declared window's end.
        until: Option<i64>,
        /// Staff's note.
        note: Option<String>,
        /// When.
        at: i64,
    },
    /// A window ended (archive).
    Ended {
        /// `declared` or `inspection`.
        source: &'static str,
        /// When.
        at: i64,
    },
    /// A condition became active under maintenance: archive it as suppressed.
    Suppressed {
        /// Fault code.
        code: String,
        /// Severity.
        severity: u8,
        /// When.
        at: i64,
    },
    /// A held episode cleared: end it without a ticket.
    Discard {
        /// Fault code.
        code: String,
        /// Episode.
        episode: u32,
    },
    /// The window ended with the episode still open: open its ticket now.
    Open {
        /// Fault code.
        code: String,
        /// Episode.
        episode: u32,
        /// When it was first seen, under maintenance.
        first_seen: i64,
        /// The window's end.
        at: i64,
    },
}

/// Every device's maintenance state (only devices that had a window are kept).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Windows {
    devices: BTreeMap<String, DeviceWindow>,
}

impl Windows {
    /// Whether `device` is under maintenance.
    pub fn under(&self, device: &str) -> bool {
        self.devices.get(device).is_some_and(DeviceWindow::active)
    }

    /// The device's window, if it has one (or held episodes).
    pub fn get(&self, device: &str) -> Option<&DeviceWindow> {
        self.devices.get(device)
    }

    /// Devices under maintenance now.
    pub fn under_maintenance(&self) -> impl Iterator<Item = (&str, &DeviceWindow)> {
        self.devices.iter().filter(|(_, w)| w.active()).map(|(d, w)| (d.as_str(), w))
    }

    /// The earliest end of a declared window.
    pub fn next_deadline(&self) -> Option<i64> {
        self.devices.values().filter_map(|w| w.declared.as_ref().map(|d| d.until)).min()
    }

    /// Filters one device's transitions: returns the ones that go out as usual.
    pub fn filter(
        &mut self,
        device: &str,
        transitions: Vec<Transition>,
        s: &WindowSettings,
        effects: &mut Vec<WindowEffect>,
    ) -> Vec<Transition> {
        let Some(w) = self.devices.get_mut(device) else { return transitions };
        let active = w.active();
        let mut out = Vec::with_capacity(transitions.len());
        for t in transitions {
            let code = t.code();
            if s.always_page.contains(code) {
                out.push(t);
                continue;
            }
            let held = w.held.get(code).is_some_and(|h| h.episode == t.episode());
            match &t {
                Transition::Opened { severity, at, .. } if active => {
                    let h = Held { episode: t.episode(), first_seen: *at };
                    w.held.insert(code.to_owned(), h);
                    effects.push(WindowEffect::Suppressed {
                        code: code.to_owned(),
                        severity: *severity,
                        at: *at,
                    });
                }
                Transition::Recovered { .. } if held => {
                    w.held.remove(code);
                    effects.push(WindowEffect::Discard {
                        code: code.to_owned(),
                        episode: t.episode(),
                    });
                }
                // No ticket to update for a held episode.
                _ if held => {}
                Transition::Escalated { .. } if active => {}
                _ => out.push(t),
            }
        }
        if !w.active() && w.held.is_empty() {
            self.devices.remove(device);
        }
        out
    }

    /// Site staff declared a window from `at` to `until`; a window already declared
    /// is replaced (extended or shortened).
    pub fn declare(
        &mut self,
        device: &str,
        at: i64,
        until: i64,
        note: Option<String>,
    ) -> Vec<WindowEffect> {
        let w = self.devices.entry(device.to_owned()).or_default();
        if !w.active() {
            w.since = at;
        }
        w.declared = Some(Declared { from: at, until, note: note.clone() });
        vec![WindowEffect::Started {
            source: "declared",
            ticket_id: None,
            until: Some(until),
            note,
            at,
        }]
    }

    /// Site staff ended the declared window at `at` (or it ran out). Empty when there
    /// was none.
    pub fn end_declared(&mut self, device: &str, at: i64) -> Vec<WindowEffect> {
        let Some(w) = self.devices.get_mut(device) else { return Vec::new() };
        if w.declared.take().is_none() {
            return Vec::new();
        }
        let mut out = vec![WindowEffect::Ended { source: "declared", at }];
        self.settle(device, at, &mut out);
        out
    }

    /// An inspection ticket of the device is `in_progress` (`true`) or no longer
    /// (`false`) at the central service, as the ticket sync saw at `at`.
    pub fn inspection(
        &mut self,
        device: &str,
        ticket_id: &str,
        in_progress: bool,
        at: i64,
    ) -> Vec<WindowEffect> {
        let mut out = Vec::new();
        if in_progress {
            let w = self.devices.entry(device.to_owned()).or_default();
            if w.inspections.contains(ticket_id) {
                return out;
            }
            if !w.active() {
                w.since = at;
            }
            w.inspections.insert(ticket_id.to_owned());
            out.push(WindowEffect::Started {
                source: "inspection",
                ticket_id: Some(ticket_id.to_owned()),
                until: None,
                note: None,
                at,
            });
        } else {
            let Some(w) = self.devices.get_mut(device) else { return out };
            if !w.inspections.remove(ticket_id) {
                return out;
            }
            out.push(WindowEffect::Ended { source: "inspection", at });
            self.settle(device, at, &mut out);
        }
        out
    }

    /// Ends the declared windows that ran out by `now`, earliest first.
    pub fn expire(&mut self, now: i64) -> Vec<(String, Vec<WindowEffect>)> {
        let mut due: Vec<(i64, String)> = self
            .devices
            .iter()
            .filter_map(|(d, w)| w.declared.as_ref().map(|x| (x.until, d.clone())))
            .filter(|(until, _)| *until <= now)
            .collect();
        due.sort();
        due.into_iter().map(|(until, d)| (d.clone(), self.end_declared(&d, until))).collect()
    }

    /// After a window ended: if no window is left, the held episodes open.
    fn settle(&mut self, device: &str, at: i64, out: &mut Vec<WindowEffect>) {
        let Some(w) = self.devices.get_mut(device) else { return };
        if w.active() {
            return;
        }
        for (code, h) in std::mem::take(&mut w.held) {
            out.push(WindowEffect::Open { code, episode: h.episode, first_seen: h.first_seen, at });
        }
        self.devices.remove(device);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const M: i64 = 60_000;

    fn opened(code: &str, at: i64) -> Transition {
        Transition::Opened { code: code.into(), episode: 1, severity: 2, at, closed_before: 0 }
    }

    #[test]
    fn a_fault_in_a_declared_window_opens_at_its_end() {
        let mut w = Windows::default();
        let s = WindowSettings::default();
        let _ = w.declare("swh-1", 0, 60 * M, None);
        let mut fx = Vec::new();
        assert_eq!(w.filter("swh-1", vec![opened("overheat", 5 * M)], &s, &mut fx), []);
        assert_eq!(fx.len(), 1);
        assert_eq!(w.next_deadline(), Some(60 * M));
        let ended = w.expire(60 * M);
        assert_eq!(ended.len(), 1);
        assert!(ended[0].1.contains(&WindowEffect::Open {
            code: "overheat".into(),
            episode: 1,
            first_seen: 5 * M,
            at: 60 * M
        }));
        assert!(!w.under("swh-1"));
    }

    #[test]
    fn a_fault_cleared_in_the_window_never_opens() {
        let mut w = Windows::default();
        let s = WindowSettings::default();
        let _ = w.declare("swh-1", 0, 60 * M, None);
        let mut fx = Vec::new();
        let _ = w.filter("swh-1", vec![opened("overheat", 5 * M)], &s, &mut fx);
        let rec = Transition::Recovered { code: "overheat".into(), episode: 1, at: 9 * M };
        assert_eq!(w.filter("swh-1", vec![rec], &s, &mut fx), []);
        assert!(fx.contains(&WindowEffect::Discard { code: "overheat".into(), episode: 1 }));
        let ended = w.end_declared("swh-1", 20 * M);
        assert_eq!(ended, [WindowEffect::Ended { source: "declared", at: 20 * M }]);
    }

    #[test]
    fn codes_that_always_page_are_never_held() {
        let mut w = Windows::default();
        let s = WindowSettings::default();
        let _ = w.declare("swh-1", 0, 60 * M, None);
        let mut fx = Vec::new();
        let t = opened("tank_leak", M);
        assert_eq!(w.filter("swh-1", vec![t.clone()], &s, &mut fx), [t]);
    }

    #[test]
    fn an_inspection_in_progress_holds_until_it_is_no_longer() {
        let mut w = Windows::default();
        let s = WindowSettings::default();
        let _ = w.inspection("door-1", "T1", true, 0);
        assert!(w.under("door-1"));
        let mut fx = Vec::new();
        assert_eq!(w.filter("door-1", vec![opened("tamper", M)], &s, &mut fx), []);
        assert_eq!(w.inspection("door-1", "T1", true, 2 * M), [], "seen again: nothing new");
        let end = w.inspection("door-1", "T1", false, 30 * M);
        assert!(end.contains(&WindowEffect::Open {
            code: "tamper".into(),
            episode: 1,
            first_seen: M,
            at: 30 * M
        }));
    }
}
