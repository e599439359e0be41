//! Site outages (maintenance.md section 8): when many of a site's devices go offline
//! together, the desk gets one `site_outage` ticket instead of a `device_offline`
//! ticket for each of them.
//!
//! Pure and in event time, like the rest of the alarm layer: [`SiteAlarms`] sits
//! between the devices' [`DeviceAlarms`](super::DeviceAlarms) and the ticket builder
//! and filters their [`DEVICE_OFFLINE`] transitions. The host stores it (serde) with
//! each batch that changes it, so a restart or a replay decides the same.
//!
//! # Rules
//! - A device that goes offline (its [`DEVICE_OFFLINE`] episode opens) is *pending*
//!   for [`OutageSettings::window_ms`]: its ticket is held back that long, because
//!   only then is it known whether the devices that follow make it an outage.
//! - When the pending devices still offline that went offline within one window
//!   number at least [`OutageSettings::min_devices`] and at least
//!   [`OutageSettings::min_percent`] of the site's devices, the outage opens, dated
//!   when the last of them went offline; their held tickets are never sent. A
//!   pending device whose window passes without an outage gets its own ticket, with
//!   its real opening time (sent up to one window late).
//! - While the outage lasts, a device that goes offline joins it (no ticket).
//! - The outage recovers when fewer than `min_percent` of the site's devices are
//!   still offline among those that joined it. Each member still offline then gets
//!   its own `device_offline` ticket, opened at that moment; a member that came back
//!   before never gets one (its episode is discarded when it clears).
//!   Reading of the spec: after a power cut devices come back one by one, seconds
//!   apart, and the outage ends at the first few; the rest are a window from coming
//!   back too. So a member still offline at the end is a *straggler* for one more
//!   window: back within it, no ticket; still offline after it, its ticket opens,
//!   dated at the outage's end as the spec says (sent one window later).
//! - A device whose offline episode already had a ticket (a recurrence on an open
//!   ticket) still counts toward the outage, but its ticket is updated as usual: that
//!   ticket is already on the desk.
//! - Other codes are never touched here.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{DEVICE_OFFLINE, Transition};

/// The code of the site's own ticket.
pub const SITE_OUTAGE: &str = "site_outage";

/// Severity of [`SITE_OUTAGE`]: critical (maintenance.md section 8).
pub const SITE_OUTAGE_SEVERITY: u8 = 1;

/// The numbers of the site outage rule (config `[outage]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutageSettings {
    /// Off: every device's offline ticket goes out as before, at once.
    pub enabled: bool,
    /// Devices going offline within this much event time count together (2 min).
    pub window_ms: i64,
    /// At least this many devices (3) ...
    pub min_devices: u32,
    /// ... and at least this percentage of the site's devices (50).
    pub min_percent: u32,
    /// How many devices the site has (its inventory).
    pub site_devices: u32,
}

impl OutageSettings {
    /// The defaults of maintenance.md section 8 for a site of `site_devices`.
    pub fn defaults(site_devices: u32) -> Self {
        Self { enabled: true, window_ms: 2 * 60_000, min_devices: 3, min_percent: 50, site_devices }
    }

    /// How many devices going offline together make an outage.
    fn threshold(&self) -> usize {
        let pct = u64::from(self.min_percent) * u64::from(self.site_devices);
        let by_share = pct.div_ceil(100);
        (u64::from(self.min_devices).max(by_share).max(1)) as usize
    }

    /// Whether `offline` devices are fewer than `min_percent` of the site.
    fn below_share(&self, offline: usize) -> bool {
        (offline as u64) * 100 < u64::from(self.min_percent) * u64::from(self.site_devices)
    }
}

/// A device whose offline ticket is held back until its window shows whether an
/// outage follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    /// When it went offline.
    since: i64,
    /// Its [`DEVICE_OFFLINE`] transitions since then, in order (the first is the
    /// opening, unless the device recurred on a ticket it already had).
    held: Vec<Transition>,
}

/// The outage going on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outage {
    /// Outage number on this site, from 1: part of its ticket id.
    pub number: u32,
    /// When it opened (event time, ms).
    pub started: i64,
    /// Every device that took part (the ones that opened it and the ones that
    /// joined), whether or not still offline.
    pub members: BTreeSet<String>,
}

/// What the host must do after [`SiteAlarms`] judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteEffect {
    /// Turn this transition of `device` into a request as usual.
    Device {
        /// The device.
        device: String,
        /// The transition.
        transition: Transition,
    },
    /// The device's [`DEVICE_OFFLINE`] episode never had a ticket and has cleared:
    /// end it in the device's alarms without counting it as a closed ticket.
    Discard {
        /// The device.
        device: String,
        /// The episode.
        episode: u32,
    },
    /// The outage ended while the device is still offline: open its own
    /// [`DEVICE_OFFLINE`] ticket (the held episode) now.
    Reopen {
        /// The device.
        device: String,
        /// The episode.
        episode: u32,
        /// The outage's end.
        at: i64,
    },
    /// Open the site's ticket.
    OutageOpened {
        /// Outage number.
        number: u32,
        /// When the threshold was reached.
        at: i64,
        /// The devices and when each went offline, earliest first.
        devices: Vec<(String, i64)>,
    },
    /// A device went offline during the outage and joined it (archive only).
    Joined {
        /// Outage number.
        number: u32,
        /// The device.
        device: String,
        /// When it went offline.
        at: i64,
    },
    /// The outage is over: `recovered` on the site's ticket.
    OutageRecovered {
        /// Outage number.
        number: u32,
        /// When it opened.
        started: i64,
        /// When it ended.
        at: i64,
        /// Every device that took part.
        devices: Vec<String>,
        /// The members still offline (each gets its own ticket now).
        still_offline: Vec<String>,
    },
}

/// The site's outage state. The host keeps one per site, stored with the batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteAlarms {
    /// Devices offline for less than a window, tickets held back.
    pending: BTreeMap<String, Pending>,
    /// Devices whose open [`DEVICE_OFFLINE`] episode was swallowed by an outage (no
    /// ticket): episode number.
    absorbed: BTreeMap<String, u32>,
    /// The outage going on, if any.
    outage: Option<Outage>,
    /// Outages opened so far.
    outages: u32,
    /// Members still offline when the last outage ended: device -> the outage's end.
    /// Their ticket opens a window later if they are still offline then.
    #[serde(default)]
    stragglers: BTreeMap<String, i64>,
}

impl SiteAlarms {
    /// The outage going on.
    pub fn outage(&self) -> Option<&Outage> {
        self.outage.as_ref()
    }

    /// Outages opened so far.
    pub fn outages(&self) -> u32 {
        self.outages
    }

    /// Whether `device` is part of the outage going on.
    pub fn is_member(&self, device: &str) -> bool {
        self.outage.as_ref().is_some_and(|o| o.members.contains(device))
    }

    /// The earliest time at which [`SiteAlarms::release`] has something to do.
    pub fn next_deadline(&self, s: &OutageSettings) -> Option<i64> {
        let held = self.pending.values().map(|p| p.since);
        held.chain(self.stragglers.values().copied()).min().map(|t| t.saturating_add(s.window_ms))
    }

    /// Filters one device's transitions (in the order the device's alarms gave them).
    /// `offline` tells whether a device is offline now (its alarms' `offline_since`).
    pub fn transitions(
        &mut self,
        device: &str,
        transitions: Vec<Transition>,
        offline: &dyn Fn(&str) -> bool,
        s: &OutageSettings,
    ) -> Vec<SiteEffect> {
        let mut out = Vec::new();
        for t in transitions {
            if !s.enabled || t.code() != DEVICE_OFFLINE {
                out.push(SiteEffect::Device { device: device.to_owned(), transition: t });
                continue;
            }
            if self.swallow(device, &t, &mut out) {
                continue;
            }
            if let Some(p) = self.pending.get_mut(device) {
                p.held.push(t);
                continue;
            }
            let (at, opening) = match &t {
                Transition::Opened { at, .. } => (*at, true),
                Transition::Recurred { at, .. } => (*at, false),
                _ => {
                    out.push(SiteEffect::Device { device: device.to_owned(), transition: t });
                    continue;
                }
            };
            if let Some(o) = &mut self.outage {
                o.members.insert(device.to_owned());
                out.push(SiteEffect::Joined { number: o.number, device: device.to_owned(), at });
                if opening {
                    self.absorbed.insert(device.to_owned(), t.episode());
                } else {
                    out.push(SiteEffect::Device { device: device.to_owned(), transition: t });
                }
                continue;
            }
            let held = if opening {
                vec![t]
            } else {
                // A ticket already on the desk: updated at once, counted all the same.
                out.push(SiteEffect::Device { device: device.to_owned(), transition: t });
                Vec::new()
            };
            self.pending.insert(device.to_owned(), Pending { since: at, held });
            self.check_outage(offline, s, &mut out);
        }
        out
    }

    /// Releases the held tickets of devices whose window passed by `now` without an
    /// outage (earliest first), and opens the tickets of stragglers still offline a
    /// window after the outage ended. Call it after every device due by `now` was
    /// advanced, so the devices that went offline in time are counted first.
    pub fn release(
        &mut self,
        now: i64,
        offline: &dyn Fn(&str) -> bool,
        s: &OutageSettings,
    ) -> Vec<SiteEffect> {
        let mut out = Vec::new();
        let late: Vec<(String, i64)> = self
            .stragglers
            .iter()
            .filter(|(_, end)| end.saturating_add(s.window_ms) <= now)
            .map(|(d, end)| (d.clone(), *end))
            .collect();
        for (d, end) in late {
            self.stragglers.remove(&d);
            // Back meanwhile: its episode is discarded when it clears. (Offline again
            // after clearing is a new episode, judged on its own.)
            if offline(&d)
                && let Some(episode) = self.absorbed.remove(&d)
            {
                out.push(SiteEffect::Reopen { device: d, episode, at: end });
            }
        }
        let mut due: Vec<(i64, String)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.since.saturating_add(s.window_ms) <= now)
            .map(|(id, p)| (p.since, id.clone()))
            .collect();
        due.sort();
        for (_, id) in due {
            if let Some(p) = self.pending.remove(&id) {
                for t in p.held {
                    out.push(SiteEffect::Device { device: id.clone(), transition: t });
                }
            }
        }
        out
    }

    /// A device came back online at `at`: the outage recovers if fewer than
    /// `min_percent` of the site's devices are still offline among its members.
    pub fn device_online(
        &mut self,
        at: i64,
        offline: &dyn Fn(&str) -> bool,
        s: &OutageSettings,
    ) -> Vec<SiteEffect> {
        let mut out = Vec::new();
        let Some(o) = &self.outage else { return out };
        let still: Vec<String> = o.members.iter().filter(|d| offline(d)).cloned().collect();
        if !s.below_share(still.len()) {
            return out;
        }
        let Some(o) = self.outage.take() else { return out };
        let at = at.max(o.started);
        out.push(SiteEffect::OutageRecovered {
            number: o.number,
            started: o.started,
            at,
            devices: o.members.iter().cloned().collect(),
            still_offline: still.clone(),
        });
        for d in still {
            if self.absorbed.contains_key(&d) {
                self.stragglers.insert(d, at);
            }
        }
        out
    }

    /// Handles a transition of an episode an outage swallowed; true when it did.
    fn swallow(&mut self, device: &str, t: &Transition, out: &mut Vec<SiteEffect>) -> bool {
        if self.absorbed.get(device) != Some(&t.episode()) {
            return false;
        }
        if let Transition::Recovered { .. } = t {
            self.absorbed.remove(device);
            self.stragglers.remove(device);
            out.push(SiteEffect::Discard { device: device.to_owned(), episode: t.episode() });
        }
        // Anything else of that episode has no ticket to update.
        true
    }

    /// Opens the outage when enough pending devices, still offline, went offline
    /// within one window.
    fn check_outage(
        &mut self,
        offline: &dyn Fn(&str) -> bool,
        s: &OutageSettings,
        out: &mut Vec<SiteEffect>,
    ) {
        let mut candidates: Vec<(i64, String)> = self
            .pending
            .iter()
            .filter(|(id, _)| offline(id))
            .map(|(id, p)| (p.since, id.clone()))
            .collect();
        let k = s.threshold();
        if candidates.len() < k {
            return;
        }
        candidates.sort();
        // The first time the threshold is reached: the k-th offline within a window.
        let Some(end) = (k - 1..candidates.len())
            .find(|&i| candidates[i].0.saturating_sub(candidates[i + 1 - k].0) <= s.window_ms)
        else {
            return;
        };
        let started = candidates[end].0;
        let from = started.saturating_sub(s.window_ms);
        let members: Vec<(i64, String)> =
            candidates.into_iter().filter(|(since, _)| *since >= from).collect();
        self.outages = self.outages.saturating_add(1);
        let number = self.outages;
        let mut outage = Outage { number, started, members: BTreeSet::new() };
        let mut released = Vec::new();
        for (_, id) in &members {
            outage.members.insert(id.clone());
            let Some(p) = self.pending.remove(id) else { continue };
            let mut held = p.held.into_iter();
            match held.next() {
                Some(first @ Transition::Opened { .. }) => {
                    self.absorbed.insert(id.clone(), first.episode());
                    for t in held {
                        self.swallow(id, &t, &mut released);
                    }
                }
                Some(other) => {
                    released.push(SiteEffect::Device { device: id.clone(), transition: other });
                    released.extend(
                        held.map(|t| SiteEffect::Device { device: id.clone(), transition: t }),
                    );
                }
                None => {}
            }
        }
        self.outage = Some(outage);
        out.push(SiteEffect::OutageOpened {
            number,
            at: started,
            devices: members.into_iter().map(|(since, id)| (id, since)).collect(),
        });
        out.extend(released);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const M: i64 = 60_000;

    fn opened(episode: u32, at: i64) -> Transition {
        Transition::Opened {
            code: DEVICE_OFFLINE.into(),
            episode,
            severity: 2,
            at,
            closed_before: 0,
        }
    }

    fn recovered(episode: u32, at: i64) -> Transition {
        Transition::Recovered { code: DEVICE_OFFLINE.into(), episode, at }
    }

    /// A site of 9 devices with the default rule; `off` is the set offline now.
    struct Site {
        alarms: SiteAlarms,
        s: OutageSettings,
        off: BTreeSet<String>,
    }

    impl Site {
        fn new() -> Self {
            Self {
                alarms: SiteAlarms::default(),
                s: OutageSettings::defaults(9),
                off: BTreeSet::new(),
            }
        }

        fn offline(&mut self, d: &str, at: i64) -> Vec<SiteEffect> {
            self.off.insert(d.to_owned());
            let off = self.off.clone();
            self.alarms.transitions(d, vec![opened(1, at)], &|x| off.contains(x), &self.s)
        }

        fn online(&mut self, d: &str, at: i64) -> Vec<SiteEffect> {
            self.off.remove(d);
            let off = self.off.clone();
            self.alarms.device_online(at, &|x| off.contains(x), &self.s)
        }
    }

    fn kinds(effects: &[SiteEffect]) -> Vec<String> {
        effects
            .iter()
            .map(|e| match e {
                SiteEffect::Device { device, transition } => {
                    format!("{device}:{}", transition.at() / M)
                }
                SiteEffect::Discard { device, .. } => format!("discard {device}"),
                SiteEffect::Reopen { device, at, .. } => format!("reopen {device}:{}", at / M),
                SiteEffect::OutageOpened { at, devices, .. } => {
                    format!("outage {} {}", at / M, devices.len())
                }
                SiteEffect::Joined { device, .. } => format!("join {device}"),
                SiteEffect::OutageRecovered { at, still_offline, .. } => {
                    format!("outage over {} {}", at / M, still_offline.join(","))
                }
            })
            .collect()
    }

    #[test]
    fn threshold_is_the_larger_of_count_and_share() {
        assert_eq!(OutageSettings::defaults(9).threshold(), 5);
        assert_eq!(OutageSettings::defaults(4).threshold(), 3);
        assert_eq!(OutageSettings::defaults(100).threshold(), 50);
        assert!(OutageSettings::defaults(9).below_share(4));
        assert!(!OutageSettings::defaults(9).below_share(5));
    }

    #[test]
    fn five_of_nine_within_the_window_open_one_outage_and_no_device_ticket() {
        let mut site = Site::new();
        for (i, d) in ["a", "b", "c", "d"].iter().enumerate() {
            assert_eq!(site.offline(d, 10 * M + i as i64 * 10_000), []);
        }
        assert_eq!(kinds(&site.offline("e", 11 * M)), ["outage 11 5"]);
        let off = site.off.clone();
        assert_eq!(
            kinds(&site.alarms.release(20 * M, &|x| off.contains(x), &site.s)),
            Vec::<String>::new()
        );
        assert_eq!(kinds(&site.offline("f", 12 * M)), ["join f"]);
        assert_eq!(site.online("a", 13 * M), []);
        // 4 of 9 still offline: fewer than half.
        assert_eq!(kinds(&site.online("b", 14 * M)), ["outage over 14 c,d,e,f"]);
        // c, d and e come back within the window; f is a straggler.
        for d in ["c", "d", "e"] {
            assert_eq!(site.online(d, 15 * M), []);
        }
        assert_eq!(site.alarms.next_deadline(&site.s), Some(16 * M));
        let off = site.off.clone();
        assert_eq!(
            kinds(&site.alarms.release(16 * M - 1, &|x| off.contains(x), &site.s)),
            Vec::<String>::new()
        );
        assert_eq!(
            kinds(&site.alarms.release(16 * M, &|x| off.contains(x), &site.s)),
            ["reopen f:14"]
        );
        // a and b clear later: their episodes are discarded, never sent.
        let off = site.off.clone();
        let e =
            site.alarms.transitions("a", vec![recovered(1, 16 * M)], &|x| off.contains(x), &site.s);
        assert_eq!(kinds(&e), ["discard a"]);
    }

    #[test]
    fn two_devices_offline_get_their_own_tickets_after_the_window() {
        let mut site = Site::new();
        assert_eq!(site.offline("a", 10 * M), []);
        assert_eq!(site.offline("b", 10 * M + 30_000), []);
        assert_eq!(site.alarms.next_deadline(&site.s), Some(12 * M));
        let off = site.off.clone();
        assert_eq!(kinds(&site.alarms.release(12 * M, &|x| off.contains(x), &site.s)), ["a:10"]);
    }
}
