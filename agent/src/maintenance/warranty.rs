//! Warranty and coverage (maintenance.md §5) and the repeat-fault rule (§6).
//!
//! Conventions, chosen to match how Chinese contracts count periods (Civil Code
//! arts. 201-202: a period in months or years starts the day after the start date
//! and its last day is the same-numbered day of the final month, or that month's
//! last day when it has none):
//! - a warranty of span `s` from commissioning date `c` covers every date up to and
//!   **including** `s.after(c)`: one year from 2026-03-01 covers 2027-03-01, one
//!   year from 2024-02-29 covers 2025-02-28;
//! - a maintenance contract `until` a date covers that date too;
//! - dates before commissioning count as in warranty (installation defects are the
//!   installer's to fix for free).

use crate::vecmap::VecMap;
use std::fmt;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::span::Span;

/// Component name whose term applies to components that have none of their own.
///
/// When a service plan states one term it states it for the product as a whole
/// (a door: "质保期二年"), so a part nobody listed gets the whole unit's warranty
/// rather than none. A plugin that wants a part billable lists it with a short term.
pub const MAIN_UNIT: &str = "main_unit";

/// Key of a contract-wide grant in the inventory's `warranty` table (one seed:
/// four years for everything). It can only lengthen warranties, never shorten them.
pub const ALL: &str = "all";

/// Who pays for a fault's repair; every fault ticket states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Coverage {
    /// Free: inside the component's warranty.
    Warranty,
    /// Covered by a maintenance contract.
    Contract,
    /// Parts and labour charged.
    Billable,
}

impl Coverage {
    /// The wire name: `warranty`, `contract` or `billable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Coverage::Warranty => "warranty",
            Coverage::Contract => "contract",
            Coverage::Billable => "billable",
        }
    }
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-component warranty spans of one device.
///
/// Built from the plugin's defaults (component -> months), then overridden by the
/// inventory's `warranty` table (component -> span; the key [`ALL`] is the
/// contract-wide grant).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarrantyTerms {
    /// Component -> its own warranty span.
    components: VecMap<String, Span>,
    /// Contract-wide minimum for every component, listed or not.
    all: Option<Span>,
}

impl WarrantyTerms {
    /// Terms from a plugin's defaults, in months per component.
    pub fn from_plugin_defaults<K: Into<String>>(
        defaults: impl IntoIterator<Item = (K, u32)>,
    ) -> Self {
        WarrantyTerms::default()
            .with_overrides(defaults.into_iter().map(|(k, months)| (k, Span::Months(months))))
    }

    /// Applies the inventory's `warranty` table: each entry replaces the component's
    /// term (longer or shorter); the key [`ALL`] sets the contract-wide grant.
    pub fn with_overrides<K: Into<String>>(
        mut self,
        table: impl IntoIterator<Item = (K, Span)>,
    ) -> Self {
        for (component, span) in table {
            let component = component.into();
            if component == ALL {
                self.all = Some(span);
            } else {
                self.components.insert(component, span);
            }
        }
        self
    }

    /// Sets the contract-wide grant (the same as an [`ALL`] override).
    pub fn with_contract_wide(mut self, span: Span) -> Self {
        self.all = Some(span);
        self
    }

    /// The contract-wide grant, if any.
    pub fn contract_wide(&self) -> Option<Span> {
        self.all
    }

    /// The listed components and their own spans, by name.
    pub fn components(&self) -> impl Iterator<Item = (&str, Span)> {
        self.components.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// The component's own span, else the [`MAIN_UNIT`] span (ignores [`ALL`]).
    pub fn span_for(&self, component: &str) -> Option<Span> {
        self.components.get(component).or_else(|| self.components.get(MAIN_UNIT)).copied()
    }

    /// Last day of warranty of `component` (inclusive): the later of its own (or
    /// main-unit) term and the contract-wide grant, extended by `downtime_days`.
    /// `None` when neither applies: the component has no warranty.
    pub fn end_for(&self, component: &str, commissioned: Date, downtime_days: u32) -> Option<Date> {
        let own = self.span_for(component).map(|s| warranty_end(commissioned, s, downtime_days));
        let all = self.all.map(|s| warranty_end(commissioned, s, downtime_days));
        own.max(all)
    }
}

/// Last day of a warranty (inclusive) of `span` from `commissioned`, extended by
/// `downtime_days` (days with a level-1 fault open during the warranty).
///
/// Month spans clamp at month end (2026-01-31 + 1m = 2026-02-28); the downtime is
/// added after, to the end date. Saturates at `Date::MAX` past year 9999.
pub fn warranty_end(commissioned: Date, span: Span, downtime_days: u32) -> Date {
    span.after(commissioned)
        .and_then(|end| Span::Days(downtime_days).after(end))
        .unwrap_or(Date::MAX)
}

/// Whole days of downtime that extend a warranty whose last day, without extension,
/// is `base_end` (maintenance.md section 5: days out of service during the warranty
/// extend it by as many days).
///
/// `intervals` are level-1 periods `(start, end)` in ms, oldest first. A period
/// counts when it starts on or before the warranty's last day, extension so far
/// included (downtime that pushed the end out lets later downtime count too). The
/// total is rounded up to whole days: a maintenance engineer counts a day the unit
/// was down as a day lost (reading of the seeds' "停机时间顺延").
pub fn downtime_extension_days(intervals: &[(i64, i64)], base_end: Date, tz: &TimeZone) -> u32 {
    const DAY_MS: i64 = 86_400_000;
    let mut total_ms: i64 = 0;
    let days = |total: i64| u32::try_from((total + DAY_MS - 1) / DAY_MS).unwrap_or(u32::MAX);
    for &(start, end) in intervals {
        let extended = Span::Days(days(total_ms)).after(base_end).unwrap_or(Date::MAX);
        let Ok(ts) = Timestamp::from_millisecond(start) else { continue };
        if tz.to_datetime(ts).date() > extended {
            break;
        }
        total_ms = total_ms.saturating_add(end.saturating_sub(start).max(0));
    }
    days(total_ms)
}

/// Whether `component` is under warranty on `at` (see the module conventions).
pub fn in_warranty(
    at: Date,
    commissioned: Date,
    component: &str,
    terms: &WarrantyTerms,
    downtime_days: u32,
) -> bool {
    terms.end_for(component, commissioned, downtime_days).is_some_and(|end| at <= end)
}

/// Coverage of a fault on `component` on `at`: warranty wins over a maintenance
/// contract (running through `contract_until`, inclusive), otherwise billable.
///
/// A component without its own term takes the [`MAIN_UNIT`] term; with neither and
/// no [`ALL`] grant it has no warranty.
pub fn coverage(
    at: Date,
    commissioned: Date,
    component: &str,
    terms: &WarrantyTerms,
    contract_until: Option<Date>,
    downtime_days: u32,
) -> Coverage {
    if in_warranty(at, commissioned, component, terms, downtime_days) {
        Coverage::Warranty
    } else if contract_until.is_some_and(|until| at <= until) {
        Coverage::Contract
    } else {
        Coverage::Billable
    }
}

/// The repeat-fault rule (§6): the same fault repaired three times inside warranty
/// and back again entitles the customer to a new unit.
///
/// `occurrence` counts this one; `closed_before` counts the earlier tickets for the
/// same (device, fault code) closed inside warranty. True from the fourth occurrence
/// after three closed tickets on (a fifth failure still leaves the unit due for
/// replacement), and only inside warranty.
pub fn replacement_recommended(occurrence: u32, closed_before: u32, in_warranty: bool) -> bool {
    in_warranty && occurrence >= 4 && closed_before >= 3
}

/// A sentence for the ticket description when [`replacement_recommended`] is true.
pub fn replacement_reason(code: &str, closed_before: u32, warranty_until: Date) -> String {
    format!(
        "Fault `{code}` has been repaired {closed_before} times within warranty (until \
         {warranty_until}) and has occurred again: the service plan entitles the customer \
         to a new unit of the same brand and model instead of another repair."
    )
}

/// A component whose warranty is about to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiring {
    /// Component name (or [`ALL`] when only the contract-wide grant is listed).
    pub component: String,
    /// Last day of warranty (inclusive).
    pub ends: Date,
}

/// Components whose warranty ends on `today` or within the next `days` days
/// (`today <= end <= today + days`), soonest first, for the register.
///
/// Lists the named components with their effective ends (contract-wide grant and
/// downtime included); when no component is named, the [`ALL`] grant itself.
pub fn expiring_within(
    today: Date,
    days: u32,
    commissioned: Date,
    terms: &WarrantyTerms,
    downtime_days: u32,
) -> Vec<Expiring> {
    let horizon = Span::Days(days).after(today).unwrap_or(Date::MAX);
    let mut out: Vec<Expiring> = if terms.components.is_empty() {
        terms
            .all
            .map(|s| Expiring {
                component: ALL.to_owned(),
                ends: warranty_end(commissioned, s, downtime_days),
            })
            .into_iter()
            .collect()
    } else {
        terms
            .components
            .keys()
            .filter_map(|c| {
                let ends = terms.end_for(c, commissioned, downtime_days)?;
                Some(Expiring { component: c.clone(), ends })
            })
            .collect()
    };
    out.retain(|e| today <= e.ends && e.ends <= horizon);
    out.sort_by(|a, b| a.ends.cmp(&b.ends).then_with(|| a.component.cmp(&b.component)));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use jiff::civil::date;

    /// Solar water heater seed: main unit 3 years, pipes and electrical 1 year.
    fn solar() -> WarrantyTerms {
        WarrantyTerms::from_plugin_defaults([(MAIN_UNIT, 36), ("pipes", 12), ("electrical", 12)])
    }

    const COMMISSIONED: Date = Date::constant(2026, 3, 1);

    fn cov(at: Date, component: &str, terms: &WarrantyTerms, until: Option<Date>) -> Coverage {
        coverage(at, COMMISSIONED, component, terms, until, 0)
    }

    #[test]
    fn warranty_end_clamps_at_month_end() {
        assert_eq!(warranty_end(date(2026, 3, 31), Span::Months(6), 0), date(2026, 9, 30));
        assert_eq!(warranty_end(date(2026, 1, 31), Span::Months(1), 0), date(2026, 2, 28));
        assert_eq!(warranty_end(date(2024, 2, 29), Span::Months(12), 0), date(2025, 2, 28));
        assert_eq!(warranty_end(date(2024, 2, 29), Span::Months(48), 0), date(2028, 2, 29));
        assert_eq!(warranty_end(date(2026, 3, 1), Span::Days(90), 0), date(2026, 5, 30));
    }

    #[test]
    fn warranty_end_extends_by_downtime() {
        assert_eq!(warranty_end(date(2026, 3, 1), Span::Months(36), 10), date(2029, 3, 11));
        // Clamp first, then extend the end: 2029-02-28 + 2 days.
        assert_eq!(warranty_end(date(2028, 2, 29), Span::Months(12), 2), date(2029, 3, 2));
        assert_eq!(warranty_end(date(2026, 12, 20), Span::Months(12), 15), date(2028, 1, 4));
        assert_eq!(warranty_end(date(9999, 6, 1), Span::Months(12), 0), Date::MAX);
    }

    #[test]
    fn coverage_boundaries_last_day_inclusive() {
        let t = solar();
        let contract = Some(date(2028, 8, 31));
        // Pipes: one year, 2027-03-01 is the last free day.
        assert_eq!(cov(date(2027, 3, 1), "pipes", &t, contract), Coverage::Warranty);
        assert_eq!(cov(date(2027, 3, 2), "pipes", &t, contract), Coverage::Contract);
        assert_eq!(cov(date(2027, 3, 2), "pipes", &t, None), Coverage::Billable);
        // Contract runs through its last day.
        assert_eq!(cov(date(2028, 8, 31), "pipes", &t, contract), Coverage::Contract);
        assert_eq!(cov(date(2028, 9, 1), "pipes", &t, contract), Coverage::Billable);
        // Main unit: three years; warranty wins over an overlapping contract.
        assert_eq!(cov(date(2028, 8, 31), MAIN_UNIT, &t, contract), Coverage::Warranty);
        assert_eq!(cov(date(2029, 3, 1), MAIN_UNIT, &t, contract), Coverage::Warranty);
        assert_eq!(cov(date(2029, 3, 2), MAIN_UNIT, &t, contract), Coverage::Billable);
        // Before commissioning: the installer's to fix.
        assert_eq!(cov(date(2026, 2, 1), "pipes", &t, None), Coverage::Warranty);
    }

    #[test]
    fn downtime_extends_coverage() {
        let t = solar();
        let at = |d| coverage(d, COMMISSIONED, "electrical", &t, None, 10);
        assert_eq!(at(date(2027, 3, 11)), Coverage::Warranty);
        assert_eq!(at(date(2027, 3, 12)), Coverage::Billable);
    }

    #[test]
    fn unlisted_component_takes_the_main_unit_term() {
        let t = solar();
        assert_eq!(t.span_for("controller"), Some(Span::Months(36)));
        assert_eq!(cov(date(2029, 3, 1), "controller", &t, None), Coverage::Warranty);
        assert_eq!(cov(date(2029, 3, 2), "controller", &t, None), Coverage::Billable);
        assert_eq!(cov(date(2028, 1, 1), "", &t, None), Coverage::Warranty);
        // No main unit listed and no contract-wide grant: no warranty.
        let parts = WarrantyTerms::from_plugin_defaults([("pipes", 12)]);
        assert_eq!(parts.span_for("controller"), None);
        assert_eq!(cov(date(2026, 3, 2), "controller", &parts, None), Coverage::Billable);
        let until = Some(date(2026, 12, 31));
        assert_eq!(cov(date(2026, 3, 2), "controller", &parts, until), Coverage::Contract);
    }

    #[test]
    fn inventory_overrides_plugin_defaults() {
        let t =
            solar().with_overrides([("pipes", Span::Months(24)), ("electrical", Span::Months(6))]);
        assert_eq!(t.end_for("pipes", COMMISSIONED, 0), Some(date(2028, 3, 1)));
        assert_eq!(cov(date(2028, 3, 1), "pipes", &t, None), Coverage::Warranty);
        // An override may shorten too: the site's contract is what counts.
        assert_eq!(cov(date(2026, 9, 1), "electrical", &t, None), Coverage::Warranty);
        assert_eq!(cov(date(2026, 9, 2), "electrical", &t, None), Coverage::Billable);
        // Parsed spans, as the inventory writes them.
        let parsed: std::collections::BTreeMap<String, Span> =
            serde_json::from_str(r#"{"main_unit": "5y", "tubes": "90d"}"#).unwrap();
        let t = solar().with_overrides(parsed);
        assert_eq!(t.end_for(MAIN_UNIT, COMMISSIONED, 0), Some(date(2031, 3, 1)));
        assert_eq!(t.end_for("tubes", COMMISSIONED, 0), Some(date(2026, 5, 30)));
        assert_eq!(t.end_for("pipes", COMMISSIONED, 0), Some(date(2027, 3, 1)));
    }

    #[test]
    fn contract_wide_grant_lengthens_never_shortens() {
        let four = solar().with_overrides([(ALL, Span::Months(48))]);
        assert_eq!(four.contract_wide(), Some(Span::Months(48)));
        assert_eq!(four.end_for("pipes", COMMISSIONED, 0), Some(date(2030, 3, 1)));
        assert_eq!(cov(date(2030, 3, 1), "pipes", &four, None), Coverage::Warranty);
        assert_eq!(cov(date(2030, 3, 2), "pipes", &four, None), Coverage::Billable);
        let one = solar().with_contract_wide(Span::Months(12));
        assert_eq!(one.end_for(MAIN_UNIT, COMMISSIONED, 0), Some(date(2029, 3, 1)));
        // It covers components nobody listed.
        let only_all = WarrantyTerms::default().with_contract_wide(Span::Months(48));
        assert_eq!(cov(date(2030, 3, 1), "anything", &only_all, None), Coverage::Warranty);
        assert_eq!(only_all.components().count(), 0);
    }

    #[test]
    fn replacement_only_from_the_fourth_occurrence_in_warranty() {
        assert!(replacement_recommended(4, 3, true));
        assert!(!replacement_recommended(4, 3, false));
        assert!(!replacement_recommended(3, 2, true));
        assert!(!replacement_recommended(4, 2, true));
        assert!(!replacement_recommended(1, 0, true));
        assert!(!replacement_recommended(3, 3, true));
        assert!(replacement_recommended(5, 4, true));
        assert_eq!(
            replacement_reason("tank_leak", 3, date(2029, 3, 1)),
            "Fault `tank_leak` has been repaired 3 times within warranty (until 2029-03-01) and \
             has occurred again: the service plan entitles the customer to a new unit of the \
             same brand and model instead of another repair."
        );
    }

    #[test]
    fn expiring_within_lists_soonest_first() {
        let t = solar();
        let e = |c: &str, d| Expiring { component: c.into(), ends: d };
        let end = date(2027, 3, 1);
        assert_eq!(
            expiring_within(date(2027, 2, 15), 30, COMMISSIONED, &t, 0),
            vec![e("electrical", end), e("pipes", end)]
        );
        assert_eq!(expiring_within(date(2027, 2, 15), 13, COMMISSIONED, &t, 0), vec![]);
        assert_eq!(expiring_within(date(2027, 2, 15), 14, COMMISSIONED, &t, 0).len(), 2);
        assert_eq!(expiring_within(date(2027, 3, 1), 0, COMMISSIONED, &t, 0).len(), 2);
        assert_eq!(expiring_within(date(2027, 3, 2), 30, COMMISSIONED, &t, 0), vec![]);
        // Downtime moves the end.
        assert_eq!(
            expiring_within(date(2027, 3, 2), 30, COMMISSIONED, &t, 5),
            vec![e("electrical", date(2027, 3, 6)), e("pipes", date(2027, 3, 6))]
        );
        let all = WarrantyTerms::default().with_contract_wide(Span::Months(48));
        assert_eq!(
            expiring_within(date(2030, 2, 1), 30, COMMISSIONED, &all, 0),
            vec![e(ALL, date(2030, 3, 1))]
        );
        let mixed = solar().with_contract_wide(Span::Months(48));
        assert_eq!(expiring_within(date(2027, 2, 15), 30, COMMISSIONED, &mixed, 0), vec![]);
    }

    #[test]
    fn coverage_serialises_lowercase() {
        assert_eq!(serde_json::to_string(&Coverage::Warranty).unwrap(), "\"warranty\"");
        assert_eq!(serde_json::to_string(&Coverage::Contract).unwrap(), "\"contract\"");
        assert_eq!(serde_json::to_string(&Coverage::Billable).unwrap(), "\"billable\"");
        assert_eq!(serde_json::from_str::<Coverage>("\"contract\"").unwrap(), Coverage::Contract);
        assert_eq!(Coverage::Billable.to_string(), "billable");
    }

    #[test]
    fn downtime_during_the_warranty_extends_it_by_whole_days() {
        let tz = TimeZone::get("Asia/Shanghai").unwrap();
        let ms = |s: &str| s.parse::<Timestamp>().unwrap().as_millisecond();
        let base_end = date(2029, 2, 28);
        // 30 h down, then 2 h: 32 h -> 2 days (partial days round up).
        let spans = [
            (ms("2027-01-10T08:00:00+08:00"), ms("2027-01-11T14:00:00+08:00")),
            (ms("2028-05-01T08:00:00+08:00"), ms("2028-05-01T10:00:00+08:00")),
        ];
        assert_eq!(downtime_extension_days(&spans, base_end, &tz), 2);
        // Downtime after the warranty ended does not count; downtime on a day the
        // extension added does.
        let late = [
            (ms("2029-02-27T08:00:00+08:00"), ms("2029-02-28T20:00:00+08:00")),
            (ms("2029-03-02T08:00:00+08:00"), ms("2029-03-02T21:00:00+08:00")),
            (ms("2029-03-09T08:00:00+08:00"), ms("2029-03-09T09:00:00+08:00")),
        ];
        assert_eq!(downtime_extension_days(&late, base_end, &tz), 3);
        // The site's date decides: 2029-03-01T07:00+08:00 is 02-28 in UTC, but
        // already past the warranty at the site.
        let edge = [(ms("2029-03-01T07:00:00+08:00"), ms("2029-03-01T08:00:00+08:00"))];
        assert_eq!(downtime_extension_days(&edge, base_end, &tz), 0);
        assert_eq!(downtime_extension_days(&[], base_end, &tz), 0);
        // Coverage with the extension: billable without it, warranty with it.
        let terms = WarrantyTerms::from_plugin_defaults([(MAIN_UNIT, 24)]);
        let at = date(2028, 3, 2);
        assert_eq!(coverage(at, COMMISSIONED, MAIN_UNIT, &terms, None, 0), Coverage::Billable);
        assert_eq!(coverage(at, COMMISSIONED, MAIN_UNIT, &terms, None, 2), Coverage::Warranty);
    }
}
