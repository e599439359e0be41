//! Shared drivers of the fuzz targets (`fuzz_targets/*.rs`), kept here so each
//! target is one line and the invariants they check are written once.
//!
//! Input formats (so the seeds are the repository's own fixtures):
//! - plugin targets: trace lines (`{"topic": ..., "payload": ...}`, the format of
//!   `plugins/*/traces/*.jsonl`); a line that is not a trace line is taken as a raw
//!   telemetry payload; an optional first line `#settings {...}` sets the device's
//!   settings. The lines are evaluated in order on one device, its state carried.
//! - config: the agent config text, then a line `#--inventory--`, then the inventory.

use std::collections::HashSet;
use std::path::Path;

use tend_plugin_sdk::runner;
use tend_plugin_sdk::{Device, Message, MessageKind, Plugin};

/// Evaluates the input's messages in order on one device of plugin `P`; panics if
/// the plugin breaks its contract (an undeclared code or meter, a severity outside
/// 1..=4, a meter that is not finite, a state it cannot read back).
pub fn plugin_messages<P: Plugin>(data: &[u8]) {
    let description = P::describe();
    let codes: HashSet<&str> = description.faults.iter().map(|f| f.code.as_str()).collect();
    let meters: HashSet<&str> = description.meters.iter().map(|m| m.name.as_str()).collect();
    let mut device = Device::new("dev-1", "M1");
    let mut lines = data.split(|b| *b == b'\n').peekable();
    if let Some(first) = lines.peek()
        && let Some(settings) = first.strip_prefix(b"#settings ")
    {
        device.settings = String::from_utf8_lossy(settings).into_owned();
        lines.next();
    }
    let mut state: Option<Vec<u8>> = None;
    let mut ts_ms: i64 = 1_784_000_000_000;
    for line in lines.take(256) {
        let (topic, payload) = match serde_json::from_slice::<tend_agent::trace::TraceLine>(line) {
            Ok(t) => {
                let payload = t.payload_bytes();
                (t.topic, payload)
            }
            Err(_) => ("tend/site/dev-1/telemetry".to_owned(), line.to_vec()),
        };
        let kind = match tend_agent::ingest::topic::split_device_kind(&topic) {
            Some((_, tend_agent::ingest::topic::MessageKind::Event)) => MessageKind::Event,
            Some((_, tend_agent::ingest::topic::MessageKind::Status)) => MessageKind::Status,
            _ => MessageKind::Telemetry,
        };
        // Event time as the host parses it; a payload without one keeps time moving.
        ts_ms = tend_agent::ingest::event_time::event_time_ms(&payload)
            .unwrap_or_else(|_| ts_ms.saturating_add(60_000));
        let message = Message { kind, topic, payload, ts_ms };
        let Ok(evaluation) = runner::evaluate::<P>(&device, &message, state.as_deref()) else {
            continue;
        };
        for c in &evaluation.outcome.conditions {
            assert!(codes.contains(c.code.as_str()), "undeclared fault code {:?}", c.code);
            assert!(
                !c.active || (1..=4).contains(&c.severity),
                "severity {} of {}",
                c.severity,
                c.code
            );
        }
        for m in &evaluation.outcome.meters {
            assert!(meters.contains(m.meter.as_str()), "undeclared meter {:?}", m.meter);
            assert!(m.value.is_finite(), "meter {} is {}", m.meter, m.value);
        }
        if let Err(e) = runner::load_state::<P>(Some(&evaluation.state)) {
            panic!("the plugin cannot read back the state it saved: {e:?}");
        }
        state = Some(evaluation.state);
    }
}

/// The separator between the config text and the inventory text in `config` inputs.
pub const INVENTORY_SEPARATOR: &str = "\n#--inventory--\n";

/// Parses the input as config + inventory, as `tend check` does; every problem must
/// name the file it is about and say something.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (config_text, inventory_text) = text.split_once(INVENTORY_SEPARATOR).unwrap_or((text, ""));
    let inventory_text2 = inventory_text.to_owned();
    let inventory_text = inventory_text.to_owned();
    let read = move |_: &Path| -> std::io::Result<String> { Ok(inventory_text.clone()) };
    let env = |_: &str| None;
    let today = jiff::civil::date(2026, 11, 24);
    let sources = tend_agent::config::Sources { env: &env, read: &read, today };
    let path = Path::new("/site/agent.toml");
    if let Err(errors) = tend_agent::config::Config::from_str(config_text, path, &sources) {
        assert!(!errors.problems.is_empty(), "an error without problems");
        for p in &errors.problems {
            assert!(!p.file.as_os_str().is_empty(), "a problem naming no file: {p:?}");
            assert!(!p.message.trim().is_empty(), "a problem saying nothing: {p:?}");
        }
    }
    let inventory_path = Path::new("/site/site.toml");
    if let Err(errors) = tend_agent::config::Inventory::from_str(&inventory_text2, inventory_path, today)
    {
        assert!(!errors.problems.is_empty(), "an error without problems");
    }
}

/// What the ticket builder fuzz target varies.
#[derive(Debug, arbitrary::Arbitrary)]
pub struct BuilderInput {
    /// Opened, escalated, recovered, recurred (mod 4).
    pub transition: u8,
    /// Fault code.
    pub code: String,
    /// Episode number.
    pub episode: u32,
    /// Severity (any byte: the builder gets what the alarm machine passes on).
    pub severity: u8,
    /// Event time, ms.
    pub at: i64,
    /// `closed_before` or `count`.
    pub n: u32,
    /// Which device of the example site.
    pub device: u8,
    /// Warranty component of the fault.
    pub component: String,
    /// What the plugin said, if anything.
    pub condition: Option<ConditionInput>,
    /// Level-1 periods (start, end) so far.
    pub downtime: Vec<(i64, i64)>,
    /// Next planned inspection.
    pub next_inspection: Option<i64>,
}

/// A plugin's condition, as the builder receives it.
#[derive(Debug, arbitrary::Arbitrary)]
pub struct ConditionInput {
    /// One line for people.
    pub summary: String,
    /// (ts, field, value).
    pub evidence: Vec<(i64, String, f64)>,
    /// (probable cause, software?, parts).
    pub diagnosis: Option<(String, bool, Vec<String>)>,
}

/// The example site (`configs/agent.toml`, `configs/site.toml`) as the builder sees it.
pub struct ExampleSite {
    /// Site name, calendar, SLA table.
    pub facts: tend_agent::pipeline::builder::SiteFacts,
    /// The inventory's devices.
    pub devices: Vec<tend_agent::config::Device>,
}

impl ExampleSite {
    /// Loads the example config and inventory; `None` if they do not validate.
    pub fn load() -> Option<Self> {
        let text = include_str!("../../configs/agent.toml");
        let read = |_: &Path| -> std::io::Result<String> {
            Ok(tend_agent::config::EXAMPLE_INVENTORY.to_owned())
        };
        let env = |_: &str| None;
        let sources = tend_agent::config::Sources {
            env: &env,
            read: &read,
            today: jiff::civil::date(2026, 11, 24),
        };
        let config =
            tend_agent::config::Config::from_str(text, Path::new("/site/agent.toml"), &sources).ok()?;
        let facts = tend_agent::pipeline::site_facts(&config).ok()?;
        Some(Self { facts, devices: config.inventory.devices.clone() })
    }
}

/// Builds the request of one transition; the result must be valid JSON of the
/// central API's shape, stable (the same input gives the same idempotency key and
/// body), and keyed by the episode.
pub fn ticket_builder(site: &ExampleSite, input: BuilderInput) {
    use tend_agent::alarms::Transition;
    use tend_agent::pipeline::builder::{DeviceFacts, FaultFacts, build, episode_ticket_id};
    use tend_agent::plugins::bindings::{Category, Condition, Diagnosis, Evidence};
    use tend_agent::store::Request;

    let Some(device) = site.devices.get(usize::from(input.device) % site.devices.len().max(1))
    else {
        return;
    };
    use tend_agent::ingest::event_time::{EARLIEST_MS, LATEST_MS};
    // Times as the pipeline makes them: event times the ingest accepted, plus at most
    // a hold (evidence times come from the plugin unchecked: any i64).
    let in_range = |ms: i64| EARLIEST_MS + ms.rem_euclid(LATEST_MS - EARLIEST_MS + 43_200_000);
    let input = BuilderInput {
        at: in_range(input.at),
        downtime: input.downtime.iter().map(|(a, b)| (in_range(*a), in_range(*b))).collect(),
        next_inspection: input.next_inspection.map(in_range),
        ..input
    };
    let code = input.code;
    let transition = match input.transition % 4 {
        0 => Transition::Opened {
            code: code.clone(),
            episode: input.episode,
            severity: input.severity,
            at: input.at,
            closed_before: input.n,
        },
        1 => Transition::Escalated {
            code: code.clone(),
            episode: input.episode,
            severity: input.severity,
            at: input.at,
        },
        2 => Transition::Recovered { code: code.clone(), episode: input.episode, at: input.at },
        _ => Transition::Recurred {
            code: code.clone(),
            episode: input.episode,
            count: input.n,
            at: input.at,
        },
    };
    let condition = input.condition.map(|c| Condition {
        code: code.clone(),
        active: true,
        severity: input.severity,
        summary: c.summary,
        evidence: c
            .evidence
            .into_iter()
            .map(|(ts_ms, field, value)| Evidence { ts_ms, field, value })
            .collect(),
        diagnosis: c.diagnosis.map(|(probable_cause, software, suggested_parts)| Diagnosis {
            probable_cause,
            category: if software { Category::Software } else { Category::Hardware },
            suggested_parts,
        }),
    });
    let warranty = tend_agent::maintenance::warranty::WarrantyTerms::from_plugin_defaults([(
        input.component.clone(),
        24,
    )]);
    let facts = DeviceFacts {
        inventory: device,
        warranty: &warranty,
        downtime: &input.downtime,
        next_inspection: input.next_inspection,
    };
    let fault = FaultFacts { title: "Fault", component: &input.component };
    let entry = build(&site.facts, &facts, &fault, &transition, condition.as_ref());
    let again = build(&site.facts, &facts, &fault, &transition, condition.as_ref());
    assert_eq!(entry, again, "the builder is not deterministic");
    let body = entry.body();
    let text = serde_json::to_string(&body).unwrap_or_default();
    let ticket_id = episode_ticket_id(&site.facts.site, &device.id, &code, input.episode);
    match &entry.request {
        Request::Open { ticket } => {
            assert_eq!(ticket.ticket_id, ticket_id);
            let back: tend_wire::model::NewTicket = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("the ticket body does not read back: {e}\n{text}"));
            assert_eq!(back.ticket_id, ticket.ticket_id);
        }
        Request::Close { .. } => panic!("the builder closed a ticket: {entry:?}"),
        Request::Event { ticket_id: id, .. } => {
            assert_eq!(id, &ticket_id);
            let _: tend_wire::model::TicketEvent = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("the event body does not read back: {e}\n{text}"));
        }
    }
}

/// Topic templates and topics: a template that parses must read back the topics it
/// writes; parsing anything else is an error, never a panic.
pub fn topic(data: &[u8]) {
    use tend_agent::ingest::topic::{TopicTemplate, split_device_kind, valid_device_id};
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(4, '\n');
    let template = parts.next().unwrap_or_default();
    let site = parts.next().unwrap_or_default();
    let device = parts.next().unwrap_or_default();
    let topic = parts.next().unwrap_or_default();
    let _ = split_device_kind(topic);
    let _ = tend_agent::config::MqttUrl::parse(topic);
    let _ = tend_agent::ingest::event_time::event_time_ms(topic.as_bytes());
    let Ok(t) = TopicTemplate::new(template, site) else { return };
    let _ = t.subscription();
    let _ = t.parse(topic);
    // The agent's site names are inventory ids (validated with the config).
    if valid_device_id(device) && tend_agent::config::is_valid_id(site) {
        use tend_agent::ingest::topic::MessageKind as Kind;
        for kind in [Kind::Telemetry, Kind::Event, Kind::Status] {
            let written = t.topic_for(device, kind);
            match t.parse(&written) {
                Ok(p) => {
                    assert_eq!(p.device_id, device, "{written}");
                    assert_eq!(p.kind, kind, "{written}");
                }
                Err(e) => {
                    panic!("template {template:?} cannot read its own topic {written:?}: {e}")
                }
            }
        }
    }
}

/// The central service's answers as the agent reads them (`status\nretry-after\nbody`):
/// any status, header text and body give an `Accepted` or a classified error, never a
/// panic; a 2xx is never an error, anything from 300 up always one.
pub fn central_answer(data: &[u8]) {
    use tend_agent::tickets::client::{Accepted, read_answer};
    use tend_wire::model::{Created, TicketStatus};
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let status = parts.next().and_then(|s| std::str::from_utf8(s).ok()?.trim().parse::<u16>().ok());
    let retry_after = parts.next().and_then(|s| std::str::from_utf8(s).ok());
    let body = parts.next().unwrap_or_default();
    let status = status.unwrap_or(200);
    let now = jiff::Timestamp::UNIX_EPOCH;
    let created = read_answer::<Created>(status, retry_after, body, now);
    let read = read_answer::<TicketStatus>(status, retry_after, body, now);
    if (200..300).contains(&status) {
        assert!(created.is_ok() && read.is_ok(), "a 2xx answer is accepted");
        if let Ok(Accepted::Read(c)) = created {
            // What was read serialises back (the number as text).
            assert!(serde_json::to_string(&c).is_ok(), "{c:?}");
        }
    } else if (100..600).contains(&status) && status >= 300 {
        assert!(created.is_err() && read.is_err(), "a non-2xx answer is an error");
    }
}

/// The local API's admission of a request (`method\nheader: value\n…\n\nbody`) and its
/// completion body: never a panic; a state-changing request without the token is
/// never admitted.
pub fn local_api(data: &[u8]) {
    use http::{HeaderMap, HeaderName, HeaderValue, Method};
    let text = String::from_utf8_lossy(data);
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let method = lines.next().and_then(|m| Method::from_bytes(m.trim().as_bytes()).ok());
    let method = method.unwrap_or(Method::POST);
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':')
            && let (Ok(name), Ok(value)) =
                (HeaderName::from_bytes(name.trim().as_bytes()), HeaderValue::from_str(value.trim()))
        {
            headers.append(name, value);
        }
    }
    let token = "0123456789abcdef";
    let admitted = tend_agent::api::admit(&method, &headers, token).is_ok();
    if admitted && method != Method::GET && method != Method::HEAD {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        assert_eq!(auth, Some("Bearer 0123456789abcdef"), "admitted without the token");
    }
    let _ = serde_json::from_str::<tend_agent::local::Completion>(body);
}
