//! The site inventory (interfaces.md, "Site inventory"): the site, its time zone and
//! its devices.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Deserialize;

use super::doc::{self, Reporter};
use super::error::{ConfigErrors, Problem};
use super::values::DateValue;
use crate::maintenance::Span;

/// The site inventory: which devices the agent looks after.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    /// The file it came from.
    pub path: PathBuf,
    /// Site id: the `{site}` of the MQTT topics and of ticket keys.
    pub site: String,
    /// The site's time zone: the business calendar's zone.
    pub timezone: TimeZone,
    /// The devices, in file order, ids unique.
    pub devices: Vec<Device>,
}

impl Inventory {
    /// The device with this id.
    pub fn device(&self, id: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.id == id)
    }

    /// The IANA name of the time zone (`Asia/Shanghai`).
    pub fn timezone_name(&self) -> &str {
        self.timezone.iana_name().unwrap_or("UTC")
    }

    /// Parses and validates inventory text; `path` names the file in problems. Dates
    /// more than a year after `today` are refused as typos.
    pub fn from_str(text: &str, path: &Path, today: Date) -> Result<Inventory, ConfigErrors> {
        let (inventory, problems) = parse(text, path, today);
        match inventory {
            Some(inv) if problems.is_empty() => Ok(inv),
            _ => Err(ConfigErrors { problems }),
        }
    }

    /// Reads, parses and validates an inventory file.
    pub fn load(path: &Path) -> Result<Inventory, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Problem::new(path, "", format!("cannot read the inventory: {e}")))?;
        Self::from_str(&text, path, jiff::ZonedDateTime::now().date())
    }
}

/// One device of the site.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// Device id: the `{device_id}` of its MQTT topics (`[A-Za-z0-9_.-]{1,64}`).
    pub id: String,
    /// Equipment type: picks the plugin (`solar-water-heater`, `door-controller`,
    /// `av-system`, or any installed plugin's type). Written `type` in the file.
    pub equipment_type: String,
    /// Model.
    pub model: String,
    /// Serial / device number.
    pub serial: String,
    /// Where it is.
    pub location: String,
    /// What it is for.
    pub purpose: Option<String>,
    /// Commissioning date: warranty and inspection schedules count from here.
    pub commissioned: Date,
    /// Manufacture date.
    pub manufactured: Option<Date>,
    /// A maintenance contract covers the device until this date (inclusive).
    pub contract_until: Option<Date>,
    /// Warranty per component, overriding the plugin's defaults.
    pub warranty: BTreeMap<String, Span>,
    /// Per-type settings for the plugin (threshold overrides), a JSON object.
    pub settings: serde_json::Map<String, serde_json::Value>,
}

impl Device {
    /// The settings as compact JSON object text (`{}` when none): what the plugin gets.
    pub fn settings_json(&self) -> String {
        serde_json::Value::Object(self.settings.clone()).to_string()
    }
}

/// Whether `s` is a valid site or device id: 1 to 64 of `A-Z a-z 0-9 _ . -`
/// (telemetry.md).
pub fn is_valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The inventory as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawInventory {
    /// Site id. Required.
    site: Option<String>,
    /// IANA time zone name. Required.
    timezone: Option<String>,
    /// `[[device]]` tables.
    device: Vec<RawDevice>,
}

/// One `[[device]]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDevice {
    id: Option<String>,
    #[serde(rename = "type")]
    equipment_type: Option<String>,
    model: Option<String>,
    serial: Option<String>,
    location: Option<String>,
    purpose: Option<String>,
    commissioned: Option<DateValue>,
    manufactured: Option<DateValue>,
    contract_until: Option<DateValue>,
    warranty: BTreeMap<String, Span>,
    settings: toml::Table,
}

/// Parses and validates; returns the inventory (when it could be built) and every
/// problem found.
pub(crate) fn parse(text: &str, path: &Path, today: Date) -> (Option<Inventory>, Vec<Problem>) {
    let doc = match doc::parse(text, path) {
        Ok(doc) => doc,
        Err(problems) => return (None, problems),
    };
    let mut problems = Vec::new();
    let raw: Option<RawInventory> = doc::deserialize(&doc, text, path, &mut problems);
    let Some(raw) = raw else { return (None, problems) };
    let mut r = Reporter::new(path, text, Some(doc.get_ref()));
    r.problems = problems;
    let inventory = validate(raw, &mut r, today);
    (inventory, r.problems)
}

fn validate(raw: RawInventory, r: &mut Reporter<'_>, today: Date) -> Option<Inventory> {
    let site = match raw.site {
        None => {
            r.push("site", "required: the site id, e.g. site = \"huaihai-138\"");
            None
        }
        Some(s) if !is_valid_id(&s) => {
            r.push("site", id_message("site id", &s));
            None
        }
        Some(s) => Some(s),
    };
    let timezone = match raw.timezone {
        None => {
            r.push("timezone", "required: an IANA time zone name, e.g. \"Asia/Shanghai\"");
            None
        }
        Some(name) => match TimeZone::get(&name) {
            Ok(tz) => Some(tz),
            Err(_) => {
                r.push(
                    "timezone",
                    format!("unknown time zone `{name}`: use an IANA name like \"Asia/Shanghai\""),
                );
                None
            }
        },
    };
    if raw.device.is_empty() {
        r.push("device", "the inventory lists no devices: add [[device]] tables");
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut devices = Vec::with_capacity(raw.device.len());
    for (i, d) in raw.device.into_iter().enumerate() {
        if let Some(dev) = validate_device(d, i, r, today, &mut seen) {
            devices.push(dev);
        }
    }
    Some(Inventory { path: r.file.clone(), site: site?, timezone: timezone?, devices })
}

fn id_message(what: &str, s: &str) -> String {
    format!("`{s}` is not a valid {what}: use 1 to 64 letters, digits, `_`, `.` or `-`")
}

fn validate_device(
    d: RawDevice,
    i: usize,
    r: &mut Reporter<'_>,
    today: Date,
    seen: &mut HashMap<String, usize>,
) -> Option<Device> {
    let key = |k: &str| format!("device[{i}].{k}");
    let mut ok = true;
    let id = match d.id {
        None => {
            r.push(&key("id"), "required");
            None
        }
        Some(id) if !is_valid_id(&id) => {
            r.push(&key("id"), id_message("device id", &id));
            None
        }
        Some(id) => {
            if let Some(first) = seen.get(&id) {
                r.push(&key("id"), format!("duplicate id `{id}`: device[{first}] has it too"));
                ok = false;
            } else {
                seen.insert(id.clone(), i);
            }
            Some(id)
        }
    };
    let equipment_type = match d.equipment_type {
        None => {
            r.push(&key("type"), "required: the equipment type, e.g. \"solar-water-heater\"");
            None
        }
        Some(t) if !is_valid_id(&t) => {
            r.push(&key("type"), id_message("equipment type", &t));
            None
        }
        Some(t) => Some(t),
    };
    let mut text = |name: &str, v: Option<String>| match v {
        Some(s) if !s.trim().is_empty() => Some(s),
        Some(_) => {
            r.push(&key(name), "must not be empty");
            None
        }
        None => {
            r.push(&key(name), "required");
            None
        }
    };
    let model = text("model", d.model);
    let serial = text("serial", d.serial);
    let location = text("location", d.location);
    let purpose = d.purpose.filter(|p| !p.trim().is_empty());

    let commissioned = d.commissioned.map(|v| v.0);
    if commissioned.is_none() {
        r.push(&key("commissioned"), "required: the commissioning date, e.g. \"2025-03-01\"");
    }
    let manufactured = d.manufactured.map(|v| v.0);
    let contract_until = d.contract_until.map(|v| v.0);
    let horizon = today.checked_add(jiff::Span::new().years(1)).unwrap_or(Date::MAX);
    let epoch = jiff::civil::date(1970, 1, 1);
    for (name, date) in [("commissioned", commissioned), ("manufactured", manufactured)] {
        let Some(date) = date else { continue };
        if date > horizon {
            r.push(
                &key(name),
                format!("{date} is in the far future (more than a year after {today})"),
            );
            ok = false;
        } else if date < epoch {
            r.push(&key(name), format!("{date} is before 1970: a typo?"));
            ok = false;
        }
    }
    if let (Some(m), Some(c)) = (manufactured, commissioned)
        && m > c
    {
        r.push(&key("manufactured"), format!("{m} is after the commissioning date {c}"));
        ok = false;
    }
    if let (Some(until), Some(c)) = (contract_until, commissioned)
        && until < c
    {
        r.push(&key("contract_until"), format!("{until} is before the commissioning date {c}"));
        ok = false;
    }
    for component in d.warranty.keys() {
        if !is_valid_id(component) {
            r.push(
                &format!("{}.{}", key("warranty"), doc::quote_key(component)),
                id_message("warranty component", component),
            );
            ok = false;
        }
    }
    let mut settings = serde_json::Map::new();
    for (k, v) in d.settings {
        let at = format!("{}.{}", key("settings"), doc::quote_key(&k));
        match to_json(v, &at, r) {
            Some(v) => {
                settings.insert(k, v);
            }
            None => ok = false,
        }
    }
    if !ok {
        return None;
    }
    Some(Device {
        id: id?,
        equipment_type: equipment_type?,
        model: model?,
        serial: serial?,
        location: location?,
        purpose,
        commissioned: commissioned?,
        manufactured,
        contract_until,
        warranty: d.warranty,
        settings,
    })
}

/// A TOML value as JSON (dates become strings); `None` after reporting a number JSON
/// cannot carry (nan, inf).
fn to_json(v: toml::Value, key: &str, r: &mut Reporter<'_>) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    Some(match v {
        toml::Value::String(s) => J::String(s),
        toml::Value::Integer(i) => J::from(i),
        toml::Value::Float(f) => match serde_json::Number::from_f64(f) {
            Some(n) => J::Number(n),
            None => {
                r.push(key, format!("{f} cannot be handed to a plugin: use a finite number"));
                return None;
            }
        },
        toml::Value::Boolean(b) => J::Bool(b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                out.push(to_json(item, &format!("{key}[{i}]"), r)?);
            }
            J::Array(out)
        }
        toml::Value::Table(t) => {
            let mut out = serde_json::Map::new();
            for (k, item) in t {
                let at = format!("{key}.{}", doc::quote_key(&k));
                out.insert(k, to_json(item, &at, r)?);
            }
            J::Object(out)
        }
    })
}
