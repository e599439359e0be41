//! Config and inventory tests: the example files, every problem at once, unknown
//! keys, syntax errors, environment overrides, inventory rules, paths.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};

use jiff::SignedDuration;
use jiff::civil::{Weekday, date, time};

use super::*;
use crate::maintenance::Span;

type TestResult = Result<(), Box<dyn Error>>;

const TODAY: Date = date(2026, 11, 24);

const MIN_CONFIG: &str = r#"
[central]
url = "http://central.example:8080/"
token = "t0k3n"
"#;

const MIN_INVENTORY: &str = r#"
site = "s1"
timezone = "Asia/Shanghai"

[[device]]
id = "d1"
type = "door-controller"
model = "AC-300"
serial = "1"
location = "Lobby"
commissioned = 2025-01-01
"#;

/// In-memory files and environment.
#[derive(Default)]
struct World {
    files: BTreeMap<PathBuf, String>,
    env: BTreeMap<String, String>,
}

impl World {
    fn new(config: &str, inventory: &str) -> Self {
        Self::default().file("/site/agent.toml", config).file("/site/site.toml", inventory)
    }

    fn file(mut self, path: &str, text: &str) -> Self {
        self.files.insert(PathBuf::from(path), text.to_owned());
        self
    }

    fn env(mut self, k: &str, v: &str) -> Self {
        self.env.insert(k.to_owned(), v.to_owned());
        self
    }

    fn load(&self, path: &str) -> Result<Config, ConfigErrors> {
        let read = |p: &Path| {
            self.files
                .get(p)
                .cloned()
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"))
        };
        let env = |k: &str| self.env.get(k).cloned();
        Config::load_with(Path::new(path), &Sources { env: &env, read: &read, today: TODAY })
    }

    fn errors(&self) -> Result<Vec<String>, Box<dyn Error>> {
        match self.load("/site/agent.toml") {
            Ok(_) => Err("expected problems, the config loaded".into()),
            Err(e) => Ok(e.lines()),
        }
    }
}

#[test]
fn example_files_parse_and_validate() -> TestResult {
    let world = World::default()
        .file("configs/agent.toml", EXAMPLE_CONFIG)
        .file("configs/site.toml", EXAMPLE_INVENTORY);
    let c = world.load("configs/agent.toml")?;
    assert_eq!(c.inventory.site, "huaihai-138");
    assert_eq!(c.inventory.timezone_name(), "Asia/Shanghai");
    assert_eq!(c.inventory.path, Path::new("configs/site.toml"));
    let count = |t: &str| c.inventory.devices.iter().filter(|d| d.equipment_type == t).count();
    assert_eq!(count("solar-water-heater"), 3);
    assert_eq!(count("door-controller"), 3);
    assert_eq!(count("av-system"), 3);

    let a2 = c.inventory.device("swh-roof-a2").ok_or("swh-roof-a2")?;
    assert_eq!(a2.settings_json(), r#"{"overheat_c":90}"#);
    assert_eq!(a2.contract_until, Some(date(2029, 2, 28)));
    let a1 = c.inventory.device("swh-roof-a1").ok_or("swh-roof-a1")?;
    assert_eq!(a1.warranty.get("main_unit"), Some(&Span::Months(48)));
    assert_eq!(a1.settings_json(), "{}");
    let door = c.inventory.device("door-stair-a2").ok_or("door-stair-a2")?;
    assert_eq!(door.settings_json(), r#"{"battery_low_v":11.8,"fire_door":true}"#);

    assert_eq!(c.mqtt.url.to_string(), "mqtt://127.0.0.1:1883");
    assert_eq!(c.mqtt.client_id, "tend-huaihai-138");
    assert_eq!(c.mqtt.topic, "tend/{site}/{device_id}/{kind}");
    assert_eq!(c.ingest.max_clock_skew, Some(SignedDuration::from_mins(5)));
    assert_eq!(c.central.url, "http://127.0.0.1:8080");
    assert_eq!(c.store.data_dir, Path::new("configs/../target/tend-data"));
    assert_eq!(c.plugins.dir, Path::new("configs/../target/plugins"));
    assert_eq!(c.plugins.cache_dir, Path::new("configs/../target/tend-data/plugin-cache"));
    assert_eq!(c.plugins.call_deadline, SignedDuration::from_millis(250));
    assert_eq!(c.offline.after_for("door-controller", None), SignedDuration::from_mins(3));
    assert_eq!(
        c.offline.after_for("av-system", Some(SignedDuration::from_mins(7))),
        SignedDuration::from_mins(7)
    );
    assert_eq!(c.offline.after_for("av-system", None), DEFAULT_OFFLINE_AFTER);
    let major = c.sla.level(2).ok_or("level 2")?;
    assert_eq!(major.onsite_workday, Due::After(SignedDuration::from_hours(3)));
    assert_eq!(major.onsite_offhours, Due::After(SignedDuration::from_hours(8)));
    assert_eq!(c.sla.level(4).map(|l| l.resolve), Some(Due::NextInspection));
    assert_eq!(c.sla.level(0), None);
    assert_eq!(c.calendar.holidays.len(), 1 + 7 + 1 + 5 + 1 + 1 + 7);
    assert!(!c.calendar.is_workday(date(2026, 10, 2)));
    assert!(c.calendar.is_workday(date(2026, 10, 10)));
    assert!(c.calendar.is_workday(date(2026, 10, 12)));
    assert!(!c.calendar.is_workday(date(2026, 10, 11)));
    assert_eq!(c.inspections.lead_time, Span::Days(7));
    let po = c.inspections.plan_override("door-lobby-main", "door-controller", "hardware-service");
    assert_eq!(po.meter_threshold, Some(40000.0));
    let po = c.inspections.plan_override("av-training-3", "av-system", "filter-clean");
    assert_eq!(po.meter_threshold, Some(300.0));
    Ok(())
}

#[test]
fn example_files_load_from_disk_with_paths_relative_to_the_config() -> TestResult {
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf)?;
    std::fs::write(conf.join("agent.toml"), EXAMPLE_CONFIG)?;
    std::fs::write(conf.join("site.toml"), EXAMPLE_INVENTORY)?;
    let read = |p: &Path| std::fs::read_to_string(p);
    let sources = Sources { env: &|_| None, read: &read, today: TODAY };
    let c = Config::load_with(&conf.join("agent.toml"), &sources)?;
    assert_eq!(c.inventory.path, conf.join("site.toml"));
    assert_eq!(c.store.data_dir, conf.join("../target/tend-data"));
    assert_eq!(c.plugins.dir, conf.join("../target/plugins"));
    assert_eq!(c.inventory.devices.len(), 9);
    // The inventory on its own, too.
    assert_eq!(Inventory::load(&conf.join("site.toml"))?.devices.len(), 9);
    Ok(())
}

#[test]
fn minimal_config_takes_the_defaults() -> TestResult {
    let c = World::new(MIN_CONFIG, MIN_INVENTORY).load("/site/agent.toml")?;
    assert_eq!(c.central.url, "http://central.example:8080");
    assert_eq!(c.central.token.expose(), "t0k3n");
    assert_eq!(format!("{:?}", c.central.token), "Secret(***)");
    assert_eq!(c.mqtt.url, MqttUrl { tls: false, host: "127.0.0.1".into(), port: 1883 });
    assert_eq!(c.mqtt.protocol, Protocol::V311);
    assert_eq!(c.mqtt.keep_alive, SignedDuration::from_secs(30));
    assert_eq!(c.mqtt.client_id, "tend-s1");
    assert_eq!(c.ingest.max_clock_skew, Some(DEFAULT_MAX_CLOCK_SKEW));
    assert_eq!(DEFAULT_MAX_CLOCK_SKEW, SignedDuration::from_mins(5));
    assert!(!c.broker.enabled);
    assert_eq!(c.central.timeout, SignedDuration::from_secs(10));
    assert_eq!(c.central.backoff_max, SignedDuration::from_mins(5));
    assert_eq!(c.central.in_flight, 8);
    assert_eq!(c.store.data_dir, Path::new("/site/data"));
    assert_eq!(c.store.cache_capacity_bytes(), 8 << 20);
    assert_eq!(c.plugins.dir, Path::new("/site/plugins"));
    assert_eq!(c.plugins.memory_mib, 64);
    assert_eq!(c.plugins.quarantine_failures, 3);
    assert_eq!(c.plugins.quarantine_window, SignedDuration::from_mins(10));
    assert_eq!(c.alarms.clear_hold, SignedDuration::from_mins(2));
    assert_eq!(c.alarms.escalate_after, SignedDuration::from_mins(10));
    assert_eq!(c.offline.after, None);
    assert_eq!(c.sla, Sla::defaults());
    assert_eq!(
        c.calendar.workdays,
        [Weekday::Monday, Weekday::Tuesday, Weekday::Wednesday, Weekday::Thursday, Weekday::Friday]
    );
    assert_eq!((c.calendar.start, c.calendar.end), (time(9, 0, 0, 0), time(18, 0, 0, 0)));
    assert_eq!(c.inspections.lead_time, Span::Days(7));
    assert_eq!(c.warranty.replace_after_repairs, 3);
    assert_eq!(c.log.format, LogFormat::Human);
    assert_eq!(c.api.listen.to_string(), "127.0.0.1:9464");
    Ok(())
}

#[test]
fn many_problems_are_reported_at_once_with_file_and_key() -> TestResult {
    let config = r#"
colour = "blue"

[mqtt]
url = "ftp://broker"
keep_alive = "2 parsecs"
client_cert = "agent.crt"

[central]
token = "t"
timeout = 10

[plugins]
memory_mib = 0

[[plugins.pin]]
path = "a.wasm"
sha256 = "xyz"

[calendar]
workdays = ["mon", "funday"]
hours = "18:00-09:00"

[offline.types]
elevator = "5m"

[inspections.devices.nope.semiannual]
enabled = false

[api]
listen = "localhost"
"#;
    let inventory = r#"
site = "s1"
timezone = "Mars/Olympus_Mons"

[[device]]
id = "d1"
type = "door-controller"
model = "AC-300"
serial = "1"
location = "Lobby"
commissioned = 2025-01-01

[[device]]
id = "d1"
type = "door-controller"
model = "AC-300"
serial = "2"
location = "Lobby"
commissioned = "2025-13-01"
"#;
    let got = World::new(config, inventory).errors()?;
    let want = [
        "/site/agent.toml: calendar.hours: `18:00-09:00` is not working hours like \"09:00-18:00\": the end must be after the start (line 22)",
        "/site/agent.toml: calendar.workdays: `funday` is not a weekday: write mon, tue, wed, thu, fri, sat or sun (line 21)",
        "/site/agent.toml: central.timeout: expected a duration like \"30s\", \"10m\" or \"7d\", found the integer 10 (line 11)",
        "/site/agent.toml: colour: unknown key `colour`, expected one of `inventory`, `mqtt`, `ingest`, `broker`, `central`, `store`, `plugins`, `alarms`, `offline`, `sla`, `calendar`, `inspections`, `warranty`, `log`, `api` (line 2)",
        "/site/agent.toml: mqtt.keep_alive: `2 parsecs` is not a duration: write a number and a unit, like 30s, 10m, 2h or 7d (line 6)",
        "/site/agent.toml: mqtt.url: `ftp://broker` is not a broker address like mqtt://host:1883: it must start with mqtt:// or mqtts:// (line 5)",
        "/site/agent.toml: mqtt.client_key: required with mqtt.client_cert",
        "/site/agent.toml: central.url: required: the central ticket service, e.g. \"https://tickets.example.com\" (or TEND_CENTRAL_URL)",
        "/site/agent.toml: plugins.memory_mib: must be 1 ..= 4096 (a 32-bit instance has 4 GiB at most) (line 14)",
        "/site/agent.toml: plugins.pin[0].sha256: `xyz` is not 64 hex digits (line 18)",
        "/site/agent.toml: api.listen: `localhost` is not an address like 127.0.0.1:9464 or [::]:9464 (line 31)",
        "/site/site.toml: device[1].commissioned: `2025-13-01` is not a date: write YYYY-MM-DD, like 2025-03-01 (line 19)",
        "/site/site.toml: timezone: unknown time zone `Mars/Olympus_Mons`: use an IANA name like \"Asia/Shanghai\" (line 3)",
        "/site/site.toml: device[1].id: duplicate id `d1`: device[0] has it too (line 14)",
    ];
    assert_eq!(got, want);
    Ok(())
}

#[test]
fn unknown_keys_are_reported_in_every_section() -> TestResult {
    let sections = [
        "mqtt",
        "ingest",
        "broker",
        "central",
        "store",
        "plugins",
        "alarms",
        "offline",
        "sla",
        "sla.critical",
        "calendar",
        "inspections",
        "inspections.types.door-controller.semiannual",
        "warranty",
        "log",
        "api",
    ];
    for section in sections {
        // The central service comes from the environment, so every section is free.
        // A plan override must set something besides.
        let text = format!("[{section}]\nbogus = 1\n");
        let text = if section.starts_with("inspections.types") {
            text + "enabled = false\n"
        } else {
            text
        };
        let got = World::new(&text, MIN_INVENTORY)
            .env("TEND_CENTRAL_URL", "http://c")
            .env("TEND_CENTRAL_TOKEN", "t")
            .errors()?;
        assert_eq!(got.len(), 1, "{section}: {got:?}");
        let prefix = format!("/site/agent.toml: {section}.bogus: unknown key `bogus`");
        assert!(got[0].starts_with(&prefix), "{section}: {got:?}");
        assert!(got[0].ends_with("(line 2)"), "{section}: {got:?}");
    }
    // An array-of-tables element.
    let text = format!("{MIN_CONFIG}\n[[plugins.pin]]\npath = \"a.wasm\"\nsha = \"x\"\n");
    let got = World::new(&text, MIN_INVENTORY).errors()?;
    assert!(got[0].starts_with("/site/agent.toml: plugins.pin[0].sha: unknown key `sha`"));
    // A top-level key.
    let got = World::new(&format!("bogus = 1\n{MIN_CONFIG}"), MIN_INVENTORY).errors()?;
    assert!(got[0].starts_with("/site/agent.toml: bogus: unknown key `bogus`, expected one of"));
    Ok(())
}

#[test]
fn central_in_flight_is_1_to_64() -> TestResult {
    for (value, ok) in [(0, false), (1, true), (64, true), (65, false)] {
        let text = format!("{MIN_CONFIG}in_flight = {value}\n");
        let world = World::new(&text, MIN_INVENTORY);
        if ok {
            assert_eq!(world.load("/site/agent.toml")?.central.in_flight, value);
        } else {
            let got = world.errors()?;
            assert_eq!(got.len(), 1, "{got:?}");
            assert!(got[0].starts_with("/site/agent.toml: central.in_flight: must be 1 to 64"));
        }
    }
    Ok(())
}

#[test]
fn ingest_max_clock_skew_is_a_duration_of_at_least_1s_or_off() -> TestResult {
    let load = |value: &str| {
        let text = format!("{MIN_CONFIG}\n[ingest]\nmax_clock_skew = {value}\n");
        let world = World::new(&text, MIN_INVENTORY);
        world.load("/site/agent.toml").map(|c| c.ingest.max_clock_skew).map_err(|e| e.lines())
    };
    assert_eq!(load("\"90s\""), Ok(Some(SignedDuration::from_secs(90))));
    assert_eq!(load("\"1s\""), Ok(Some(SignedDuration::from_secs(1))));
    assert_eq!(load("\"off\""), Ok(None));
    let expect = |value: &str, message: &str| {
        let got = load(value).err().unwrap_or_default();
        assert_eq!(got.len(), 1, "{value}: {got:?}");
        let prefix = format!("/site/agent.toml: ingest.max_clock_skew: {message}");
        assert!(got[0].starts_with(&prefix), "{value}: {got:?}");
        assert!(got[0].ends_with("(line 7)"), "{value}: {got:?}");
    };
    expect("\"0s\"", "must be at least 1s");
    expect("\"500ms\"", "must be at least 1s");
    expect("\"soon\"", "`soon` is not a duration");
    expect("5", "expected a duration like \"5m\", or \"off\", found the integer 5");
    Ok(())
}

#[test]
fn toml_syntax_errors_name_file_and_line() -> TestResult {
    let text = "[central]\nurl = \"http://c\"\ntoken = \"unterminated\n";
    let got = World::new(text, MIN_INVENTORY).errors()?;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("/site/agent.toml: line 3:22: TOML syntax: invalid basic string"),
        "{got:?}"
    );

    let got = World::new(MIN_CONFIG, "site = \"s1\"\nsite = \"s2\"\n").errors()?;
    assert!(got[0].starts_with("/site/site.toml: line 2:1: TOML syntax: "), "{got:?}");
    Ok(())
}

#[test]
fn environment_overrides_win() -> TestResult {
    let world = World::new(MIN_CONFIG, "not used")
        .file("/elsewhere/inv.toml", MIN_INVENTORY)
        .env("TEND_MQTT_URL", "mqtts://broker.example:8884")
        .env("TEND_CENTRAL_URL", "https://tickets.example")
        .env("TEND_CENTRAL_TOKEN", "from-env")
        .env("TEND_DATA_DIR", "var/tend")
        .env("TEND_INVENTORY", "/elsewhere/inv.toml");
    let c = world.load("/site/agent.toml")?;
    assert_eq!(c.mqtt.url, MqttUrl { tls: true, host: "broker.example".into(), port: 8884 });
    assert_eq!(c.central.url, "https://tickets.example");
    assert_eq!(c.central.token.expose(), "from-env");
    // Paths from the environment are taken as given (relative to the current directory).
    assert_eq!(c.store.data_dir, Path::new("var/tend"));
    assert_eq!(c.plugins.cache_dir, Path::new("var/tend/plugin-cache"));
    assert_eq!(c.inventory.path, Path::new("/elsewhere/inv.toml"));

    // The token from the environment also replaces a token_file.
    let config = "[central]\nurl = \"http://c\"\ntoken_file = \"missing.token\"\n";
    let c = World::new(config, MIN_INVENTORY)
        .env("TEND_CENTRAL_TOKEN", "x")
        .load("/site/agent.toml")?;
    assert_eq!(c.central.token.expose(), "x");
    Ok(())
}

#[test]
fn bad_overrides_name_the_variable() -> TestResult {
    let got = World::new(MIN_CONFIG, MIN_INVENTORY)
        .env("TEND_MQTT_URL", "tcp://broker:1883")
        .env("TEND_CENTRAL_URL", "tickets.example")
        .env("TEND_CENTRAL_TOKEN", " ")
        .env("TEND_DATA_DIR", "")
        .env("TEND_INVENTORY", "/nowhere.toml")
        .errors()?;
    let want = [
        "/site/agent.toml: inventory: cannot read the inventory `/nowhere.toml`: no such file (set by TEND_INVENTORY)",
        "/site/agent.toml: mqtt.url: `tcp://broker:1883` is not a broker address like mqtt://host:1883: it must start with mqtt:// or mqtts:// (set by TEND_MQTT_URL)",
        "/site/agent.toml: central.url: `tickets.example` is not a base URL like https://tickets.example.com: it must start with http:// or https:// (set by TEND_CENTRAL_URL)",
        "/site/agent.toml: central.token: must not be empty (set by TEND_CENTRAL_TOKEN)",
        "/site/agent.toml: store.data_dir: must name a directory (set by TEND_DATA_DIR)",
    ];
    assert_eq!(got, want);
    Ok(())
}

#[test]
fn secrets_come_from_files_relative_to_the_config() -> TestResult {
    let config = r#"
[mqtt]
url = "mqtts://broker"
username = "tend"
password_file = "secrets/mqtt.pw"
ca_file = "ca.pem"
client_cert = "/pki/agent.crt"
client_key = "/pki/agent.key"

[central]
url = "https://c"
token_file = "secrets/central.token"
"#;
    let world = World::new(config, MIN_INVENTORY)
        .file("/site/secrets/mqtt.pw", "hunter2\n")
        .file("/site/secrets/central.token", "abc\r\n");
    let c = world.load("/site/agent.toml")?;
    assert_eq!(c.mqtt.password.as_ref().map(Secret::expose), Some("hunter2"));
    assert_eq!(c.central.token.expose(), "abc");
    assert_eq!(c.mqtt.ca_file.as_deref(), Some(Path::new("/site/ca.pem")));
    assert_eq!(
        c.mqtt.client_auth,
        Some(ClientAuth { cert: "/pki/agent.crt".into(), key: "/pki/agent.key".into() })
    );

    let config = r#"
[mqtt]
password = "p"
password_file = "p.txt"
ca_file = "ca.pem"

[central]
url = "https://c"
token_file = "nope.token"
"#;
    let got = World::new(config, MIN_INVENTORY).errors()?;
    let want = [
        "/site/agent.toml: mqtt.password_file: set mqtt.password or mqtt.password_file, not both (line 4)",
        "/site/agent.toml: mqtt.ca_file: only used with TLS: make mqtt.url mqtts:// (line 5)",
        "/site/agent.toml: central.token_file: cannot read `/site/nope.token`: no such file (line 9)",
    ];
    assert_eq!(got, want);
    Ok(())
}

#[test]
fn inventory_rules() -> TestResult {
    let device = |extra: &str| {
        format!(
            "[[device]]\nid = \"d1\"\ntype = \"door-controller\"\nmodel = \"m\"\nserial = \"s\"\nlocation = \"l\"\ncommissioned = 2025-01-01\n{extra}\n"
        )
    };
    let head = "site = \"s1\"\ntimezone = \"Asia/Shanghai\"\n";
    let check = |inventory: String, want: &[&str]| -> TestResult {
        let got = World::new(MIN_CONFIG, &inventory).errors()?;
        assert_eq!(got, want);
        Ok(())
    };
    check(
        format!("{head}{}{}", device(""), device("")),
        &["/site/site.toml: device[1].id: duplicate id `d1`: device[0] has it too (line 12)"],
    )?;
    check(
        format!("{head}{}", device("").replace("\"d1\"", "\"roof/1\"")),
        &[
            "/site/site.toml: device[0].id: `roof/1` is not a valid device id: use 1 to 64 letters, digits, `_`, `.` or `-` (line 4)",
        ],
    )?;
    check(
        format!("{}{}", head.replace("Asia/Shanghai", "Asia/Shangai"), device("")),
        &[
            "/site/site.toml: timezone: unknown time zone `Asia/Shangai`: use an IANA name like \"Asia/Shanghai\" (line 2)",
        ],
    )?;
    check(
        format!("{head}{}", device("manufactured = \"2025-02-30\"")),
        &[
            "/site/site.toml: device[0].manufactured: `2025-02-30` is not a date: write YYYY-MM-DD, like 2025-03-01 (line 10)",
        ],
    )?;
    check(
        format!("{head}{}", device("colour = \"red\"")),
        &[
            "/site/site.toml: device[0].colour: unknown key `colour`, expected one of `id`, `type`, `model`, `serial`, `location`, `purpose`, `commissioned`, `manufactured`, `contract_until`, `warranty`, `settings` (line 10)",
        ],
    )?;
    check(
        format!("{head}{}", device("manufactured = 2025-06-01\ncontract_until = 2024-12-31")),
        &[
            "/site/site.toml: device[0].manufactured: 2025-06-01 is after the commissioning date 2025-01-01 (line 10)",
            "/site/site.toml: device[0].contract_until: 2024-12-31 is before the commissioning date 2025-01-01 (line 11)",
        ],
    )?;
    check(
        format!("{head}{}", device("").replace("2025-01-01", "3025-01-01")),
        &[
            "/site/site.toml: device[0].commissioned: 3025-01-01 is in the far future (more than a year after 2026-11-24) (line 9)",
        ],
    )?;
    check(
        format!(
            "{head}{}",
            device("warranty = { main_unit = \"3 fortnights\" }\nsettings = { limit = nan }")
        ),
        &[
            "/site/site.toml: device[0].warranty.main_unit: `3 fortnights` is not a calendar span: write a whole number and a unit, like 3y, 18m, 6w or 90d (line 10)",
            "/site/site.toml: device[0].settings.limit: NaN cannot be handed to a plugin: use a finite number (line 11)",
        ],
    )?;
    check(
        format!("timezone = \"UTC\"\n{}", device("").replace("model = \"m\"\n", "")),
        &[
            "/site/site.toml: site: required: the site id, e.g. site = \"huaihai-138\"",
            "/site/site.toml: device[0].model: required",
        ],
    )?;
    check(
        head.to_owned(),
        &["/site/site.toml: device: the inventory lists no devices: add [[device]] tables"],
    )?;
    Ok(())
}

#[test]
fn settings_are_json_objects_from_any_toml() -> TestResult {
    let inventory = format!(
        "{}\n[device.settings]\nthreshold = 1.5\nfire_door = true\nzones = [\"a\", \"b\"]\nsince = 2025-01-02\n[device.settings.nested]\nx = 1\n",
        MIN_INVENTORY.trim_end()
    );
    let c = World::new(MIN_CONFIG, &inventory).load("/site/agent.toml")?;
    let d = c.inventory.device("d1").ok_or("d1")?;
    let v: serde_json::Value = serde_json::from_str(&d.settings_json())?;
    assert_eq!(
        v,
        serde_json::json!({"threshold": 1.5, "fire_door": true, "zones": ["a", "b"],
                           "since": "2025-01-02", "nested": {"x": 1}})
    );
    Ok(())
}

#[test]
fn cross_checks_against_the_inventory() -> TestResult {
    let config = format!(
        "{MIN_CONFIG}
[offline.types]
door-controller = \"0s\"

[inspections.types.door-controller.semiannual]
every = \"0m\"
meter_threshold = -1

[inspections.devices.d1.fire-certification]

[calendar]
workdays = [\"mon\", \"mon\"]
holidays = [\"2026-10-01..2026-10-07\"]
extra_workdays = [\"2026-10-03\", \"2026-10-12\"]

[broker]
enabled = true
listen = \"127.0.0.1:9464\"
"
    );
    let got = World::new(&config, MIN_INVENTORY).errors()?;
    let want = [
        "/site/agent.toml: offline.types.door-controller: must be more than 0 (line 7)",
        "/site/agent.toml: calendar.workdays[1]: listed twice (line 16)",
        "/site/agent.toml: calendar.extra_workdays[0]: 2026-10-03 is also a holiday (line 18)",
        "/site/agent.toml: calendar.extra_workdays[1]: 2026-10-12 is a Monday, already a working day (line 18)",
        "/site/agent.toml: inspections.types.door-controller.semiannual.every: must be at least a day (line 10)",
        "/site/agent.toml: inspections.types.door-controller.semiannual.meter_threshold: must be a number above 0 (line 11)",
        "/site/agent.toml: inspections.devices.d1.fire-certification: sets nothing: use enabled, every or meter_threshold (line 13)",
        "/site/agent.toml: api.listen: 127.0.0.1:9464 is also broker.listen",
    ];
    assert_eq!(got, want);
    Ok(())
}

#[test]
fn a_missing_config_file_is_one_problem() -> TestResult {
    let got = World::default().load("/nowhere/agent.toml").map(|_| ()).map_err(|e| e.lines());
    assert_eq!(
        got,
        Err(vec!["/nowhere/agent.toml: cannot read the config file: no such file".to_owned()])
    );
    Ok(())
}

#[test]
fn problems_display_one_per_line() {
    let e = ConfigErrors {
        problems: vec![
            Problem::new("a.toml", "central.url", "required"),
            Problem::new("b.toml", "", "cannot read"),
        ],
    };
    assert_eq!(e.to_string(), "a.toml: central.url: required\nb.toml: cannot read");
}

/// A password in the URL is refused, and no problem, `Debug` text or variable name
/// shows it (issue 15, finding 9).
#[test]
fn url_credentials_are_never_echoed() -> TestResult {
    let config = r#"
[mqtt]
url = "mqtt://tend:S3cret/x?#@broker:1883"

[central]
url = "https://agent:S3cret@tickets.example.com"
token = "t"
"#;
    let got = World::new(config, MIN_INVENTORY).errors()?;
    let want = [
        "/site/agent.toml: mqtt.url: `mqtt://***@broker:1883` is not a broker address like mqtt://host:1883: put credentials in mqtt.username and mqtt.password_file, not in the url (line 3)",
        "/site/agent.toml: central.url: `https://***@tickets.example.com` is not a base URL like https://tickets.example.com: put the credentials in central.token_file, not in the url (line 6)",
    ];
    assert_eq!(got, want);
    let got = World::new(MIN_CONFIG, MIN_INVENTORY)
        .env("TEND_MQTT_URL", "tend:S3cret@broker:1883")
        .env("TEND_CENTRAL_URL", "https://:S3cret@c/x")
        .errors()?;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|l| !l.contains("S3cret") && l.contains("***@")), "{got:?}");

    let mut raw: raw::RawConfig = toml::from_str(config)?;
    raw.mqtt.password = Some(Secret::new("S3cret"));
    let debug = format!("{raw:?}");
    assert!(!debug.contains("S3cret"), "{debug}");
    assert!(debug.contains("mqtt://***@broker:1883"), "{debug}");
    Ok(())
}

#[test]
fn a_secret_of_the_wrong_type_is_refused_without_its_value() -> TestResult {
    let config = "[mqtt]\nusername = \"u\"\npassword = 73310248\n\n[central]\nurl = \"http://c\"\ntoken = 4.25e9\n";
    let got = World::new(config, MIN_INVENTORY).errors()?;
    assert!(got.iter().all(|l| !l.contains("73310248") && !l.contains("425")), "{got:?}");
    assert!(got.iter().any(|l| l.starts_with("/site/agent.toml: mqtt.password: ")), "{got:?}");
    assert!(got.iter().any(|l| l.contains("central.token") && l.contains("(line 7)")), "{got:?}");
    Ok(())
}

#[test]
fn secret_files_are_trimmed_and_their_problems_show_no_content() -> TestResult {
    let config = "[central]\nurl = \"http://c\"\ntoken_file = \"t\"\n";
    let c = World::new(config, MIN_INVENTORY)
        .file("/site/t", " \t tok-1 \n\n")
        .load("/site/agent.toml")?;
    assert_eq!(c.central.token.expose(), "tok-1");
    assert_eq!(c.central.token.file(), Some(Path::new("/site/t")));
    assert_eq!(c.secret_files(), vec![("central.token_file", Path::new("/site/t"))]);
    assert_eq!(format!("{:?}", c.central.token), "Secret(***)");
    // A token that cannot go in a header: the key is named, the token is not shown.
    let got = World::new(config, MIN_INVENTORY).file("/site/t", "to ken\n").errors()?;
    assert_eq!(
        got,
        [
            "/site/agent.toml: central.token_file: must be visible ASCII without spaces (it goes in an HTTP header) (line 3)"
        ]
    );
    // The environment still overrides the key, file or not.
    let c = World::new(config, MIN_INVENTORY)
        .env("TEND_CENTRAL_TOKEN", "env-tok")
        .load("/site/agent.toml")?;
    assert_eq!((c.central.token.expose(), c.central.token.file()), ("env-tok", None));
    Ok(())
}

/// Issue 15, finding 10: the embedded broker beyond loopback needs logins.
#[test]
fn a_lan_broker_needs_logins() -> TestResult {
    let broker = |listen: &str, extra: &str| {
        format!("{MIN_CONFIG}\n[broker]\nenabled = true\nlisten = \"{listen}\"\n{extra}")
    };
    for listen in ["0.0.0.0:1883", "[::]:1883", "10.1.2.3:1883", "[::ffff:10.1.2.3]:1883"] {
        let got = World::new(&broker(listen, ""), MIN_INVENTORY).errors()?;
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("/site/agent.toml: broker.listen: "), "{got:?}");
        assert!(got[0].contains("broker.password_file") && got[0].ends_with("(line 8)"), "{got:?}");
    }
    for listen in ["127.0.0.1:1883", "127.0.0.2:1883", "[::1]:1883", "[::ffff:127.0.0.1]:1883"] {
        let c = World::new(&broker(listen, ""), MIN_INVENTORY).load("/site/agent.toml")?;
        assert_eq!(c.broker.auth, None);
    }
    // Off, the address does not matter.
    let off = format!("{MIN_CONFIG}\n[broker]\nlisten = \"0.0.0.0:1883\"\n");
    World::new(&off, MIN_INVENTORY).load("/site/agent.toml")?;

    let with_logins = broker("0.0.0.0:1884", "password_file = \"broker.passwd\"\n");
    let c = World::new(&with_logins, MIN_INVENTORY)
        .file("/site/broker.passwd", "# devices\n\nsensor-1 : pw one\r\nagent:p:w:2\n")
        .load("/site/agent.toml")?;
    let auth = c.broker.auth.as_ref().ok_or("no logins")?;
    assert_eq!(auth.file, Path::new("/site/broker.passwd"));
    let users: Vec<(&str, &str)> =
        auth.users.iter().map(|(u, p)| (u.as_str(), p.expose())).collect();
    assert_eq!(users, [("agent", "p:w:2"), ("sensor-1", "pw one")]);
    assert!(!format!("{c:?}").contains("pw one"));
    assert_eq!(c.secret_files(), vec![("broker.password_file", Path::new("/site/broker.passwd"))]);
    Ok(())
}

#[test]
fn broker_password_files_are_user_password_lines() -> TestResult {
    let config = format!(
        "{MIN_CONFIG}\n[broker]\nenabled = true\nlisten = \"0.0.0.0:1883\"\npassword_file = \"b\"\n"
    );
    let errors = |text: &str| World::new(&config, MIN_INVENTORY).file("/site/b", text).errors();
    assert_eq!(
        errors("just-a-Passw0rd\nu:$7$101$abc\n:x\nu2:\nok:1\nok:2\n")?,
        ["/site/agent.toml: broker.password_file: `/site/b`: line 1 is not `user:password`; \
          line 2 holds a password hash (mosquitto_passwd?); write the password itself; \
          line 3 is not `user:password`; line 4 is not `user:password`; \
          line 6 repeats the user of line 5 (line 9)"]
    );
    assert_eq!(
        errors("# nobody\n\n")?,
        ["/site/agent.toml: broker.password_file: `/site/b`: no `user:password` line (line 9)"]
    );
    let got = World::new(&config, MIN_INVENTORY).errors()?;
    assert_eq!(
        got,
        ["/site/agent.toml: broker.password_file: cannot read `/site/b`: no such file (line 9)"]
    );
    Ok(())
}

#[test]
fn the_agent_must_be_able_to_log_in_to_its_embedded_broker() -> TestResult {
    let config = |mqtt: &str| {
        format!(
            "[mqtt]\nurl = \"mqtt://127.0.0.1:1884\"\n{mqtt}\n\n[central]\nurl = \"http://c\"\ntoken = \"t\"\n\n\
             [broker]\nenabled = true\nlisten = \"0.0.0.0:1884\"\npassword_file = \"b\"\n"
        )
    };
    let world = |mqtt: &str| {
        World::new(&config(mqtt), MIN_INVENTORY)
            .file("/site/b", "agent:right\n")
            .file("/site/pw", "wrong\n")
    };
    assert_eq!(
        world("").errors()?,
        [
            "/site/agent.toml: mqtt.username: required: mqtt.url is the embedded broker, which takes logins from broker.password_file (`/site/b`); give the agent one of them"
        ]
    );
    assert_eq!(
        world("username = \"other\"\npassword = \"right\"").errors()?,
        [
            "/site/agent.toml: mqtt.username: `other` has no line in broker.password_file (`/site/b`): the embedded broker at mqtt.url would refuse the agent (line 3)"
        ]
    );
    let got = world("username = \"agent\"\npassword_file = \"pw\"").errors()?;
    assert_eq!(
        got,
        [
            "/site/agent.toml: mqtt.password_file: not the password broker.password_file (`/site/b`) gives `agent`: the embedded broker at mqtt.url would refuse the agent (line 4)"
        ]
    );
    world("username = \"agent\"\npassword = \"right\"").load("/site/agent.toml")?;
    // Another broker (another port, or TLS) is not checked.
    let other = config("").replace("127.0.0.1:1884", "127.0.0.1:1883");
    World::new(&other, MIN_INVENTORY).file("/site/b", "agent:right\n").load("/site/agent.toml")?;
    Ok(())
}

#[test]
fn an_unreadable_agent_password_is_one_problem_not_two() -> TestResult {
    let config = "[mqtt]\nurl = \"mqtt://127.0.0.1:1884\"\nusername = \"agent\"\npassword_file = \"nope\"\n\n\
                  [central]\nurl = \"http://c\"\ntoken = \"t\"\n\n\
                  [broker]\nenabled = true\nlisten = \"0.0.0.0:1884\"\npassword_file = \"b\"\n";
    let got = World::new(config, MIN_INVENTORY).file("/site/b", "agent:right\n").errors()?;
    assert_eq!(
        got,
        ["/site/agent.toml: mqtt.password_file: cannot read `/site/nope`: no such file (line 4)"]
    );
    Ok(())
}

#[test]
fn outage_and_maintenance_rules_take_the_section_8_defaults() -> TestResult {
    let c = World::new(MIN_CONFIG, MIN_INVENTORY).load("/site/agent.toml")?;
    let o = c.alarms.outage;
    assert!(o.enabled);
    assert_eq!(o.window, SignedDuration::from_mins(2));
    assert_eq!((o.min_devices, o.min_percent), (3, 50));
    let m = &c.alarms.maintenance;
    assert_eq!(m.default_window, SignedDuration::from_hours(2));
    assert_eq!(m.max_window, SignedDuration::from_hours(24));
    assert_eq!(m.always_page, ["tank_leak", "forced_open"]);
    Ok(())
}

#[test]
fn bad_outage_and_maintenance_values_are_all_reported() -> TestResult {
    let text = format!(
        "{MIN_CONFIG}\n[alarms.outage]\nwindow = \"0s\"\nmin_devices = 0\nmin_percent = 101\n\n\
         [alarms.maintenance]\ndefault_window = \"30h\"\nalways_page = [\"\"]\n"
    );
    let got = World::new(&text, MIN_INVENTORY).errors()?;
    let keys: Vec<&str> = got.iter().filter_map(|p| p.split(": ").nth(1)).collect();
    for key in [
        "alarms.outage.window",
        "alarms.outage.min_devices",
        "alarms.outage.min_percent",
        "alarms.maintenance.default_window",
        "alarms.maintenance.always_page[0]",
    ] {
        assert!(keys.contains(&key), "{key} missing from {got:#?}");
    }
    assert!(got.iter().all(|p| p.starts_with("/site/agent.toml: ")), "{got:#?}");
    Ok(())
}
