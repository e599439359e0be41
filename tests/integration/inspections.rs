//! Inspections live (`tend run`, Mosquitto, the central service): an inspection due
//! within the lead time opens at start; staff closing it at the central service
//! restarts its schedule from the close time (the sync); site staff recording one
//! with `tend inspection complete` closes its ticket at the central service; `tend
//! device show/list` read the archive through the running agent and, once it is
//! stopped, from the store.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde_json::Value;
use tend_central::{TicketList, TicketRecord};
use tend_tests::mosquitto::{Mosquitto, free_port};
use tend_tests::site::test_site_with;

use tend_central::testing::{TOKEN, TestServer};
const WAIT: Duration = Duration::from_secs(90);

/// Kills the agent for sure when the test fails.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tend(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("TEND_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn device_json(config: &Path, id: &str) -> Value {
    let out = tend(config, &["device", "show", id, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn plan<'a>(device: &'a Value, plan: &str) -> &'a Value {
    device["inspections"].as_array().unwrap().iter().find(|p| p["plan"] == plan).unwrap()
}

async fn tickets(url: &str) -> Vec<TicketRecord> {
    let Ok(resp) =
        reqwest::Client::new().get(format!("{url}/api/v1/tickets")).bearer_auth(TOKEN).send().await
    else {
        return Vec::new();
    };
    resp.json::<TicketList>().await.map(|l| l.tickets).unwrap_or_default()
}

async fn wait_for(url: &str, what: &str, ok: impl Fn(&TicketRecord) -> bool) -> TicketRecord {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(t) = tickets(url).await.into_iter().find(&ok) {
            return t;
        }
        assert!(Instant::now() < deadline, "never saw {what}: {:#?}", tickets(url).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspections_open_and_complete_through_the_central_service_and_locally() {
    let mosquitto = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("central")).await.unwrap();
    let central = server.url.clone();

    // Two devices whose semiannual inspection is due in three days (wall clock).
    let tz = TimeZone::get("Asia/Shanghai").unwrap();
    let today = Timestamp::now().to_zoned_datetime(tz.clone()).date();
    let commissioned = today.checked_add(3.days()).unwrap().checked_sub(6.months()).unwrap();
    let devices = format!(
        "\n[[device]]\nid = \"swh-due\"\ntype = \"solar-water-heater\"\nmodel = \"SWH-300\"\n\
         serial = \"S7\"\nlocation = \"Roof C\"\ncommissioned = \"{commissioned}\"\n\
         \n[[device]]\nid = \"door-due\"\ntype = \"door-controller\"\nmodel = \"FD-2\"\n\
         serial = \"D7\"\nlocation = \"Gate\"\ncommissioned = \"{commissioned}\"\n"
    );
    let mqtt = format!("mqtt://127.0.0.1:{}", mosquitto.port);
    let site = test_site_with(&central, &mqtt, "[offline]\nafter = \"400d\"\n", &devices).unwrap();
    // A fixed port for the local API: the commands find the running agent there.
    let config = site.config.clone();
    let text = std::fs::read_to_string(&config).unwrap();
    let api = free_port();
    std::fs::write(&config, text.replace("127.0.0.1:0", &format!("127.0.0.1:{api}"))).unwrap();

    let log = std::fs::File::create(site.dir.path().join("agent.log")).unwrap();
    let mut agent = Agent(
        Command::new(env!("CARGO_BIN_EXE_tend"))
            .args(["run", "--config"])
            .arg(&config)
            .env("TEND_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let logs = || std::fs::read_to_string(site.dir.path().join("agent.log")).unwrap_or_default();

    // Both open at start (due within the 7-day lead time), with due_at and checklist.
    let swh = wait_for(&central, "the swh-due inspection", |t| {
        t.ticket.ticket_id == "test-site.swh-due.inspection.semiannual.1"
    })
    .await;
    assert_eq!(serde_json::to_value(swh.ticket.kind).unwrap(), "inspection");
    assert!(!swh.ticket.checklist.is_empty());
    let due = swh.ticket.due_at.clone().unwrap().timestamp();
    let until_due = due.duration_since(Timestamp::now());
    assert!(
        until_due > jiff::SignedDuration::ZERO
            && until_due < jiff::SignedDuration::from_hours(4 * 24),
        "{due}"
    );
    wait_for(&central, "the door-due inspection", |t| {
        t.ticket.ticket_id == "test-site.door-due.inspection.semiannual.1"
    })
    .await;

    // Staff close the solar heater's at the central service: the sync completes it
    // and its schedule restarts from the close time.
    let closed_at = Timestamp::now().checked_sub(jiff::SignedDuration::from_hours(1)).unwrap();
    let closed_text = closed_at.display_with_offset(tz.to_offset(closed_at)).to_string();
    let answer = reqwest::Client::new()
        .post(format!("{central}/api/v1/tickets/test-site.swh-due.inspection.semiannual.1/close"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"resolution": "tubes cleaned", "closed_at": closed_text}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let closed_ms = closed_text.parse::<Timestamp>().unwrap().as_millisecond();
    let deadline = Instant::now() + WAIT;
    let swh = loop {
        let d = device_json(&config, "swh-due");
        if plan(&d, "semiannual")["last_completed_ms"] == closed_ms {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "the close never reached the schedule: {d:#}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let semiannual = plan(&swh, "semiannual");
    assert!(semiannual.get("open").is_none(), "{semiannual}");
    // Next due: six months after the close date (or the working day before).
    let next = Timestamp::from_millisecond(semiannual["next_due_ms"].as_i64().unwrap()).unwrap();
    let expected = closed_at.to_zoned_datetime(tz.clone()).date().checked_add(6.months()).unwrap();
    let next_date = next.to_zoned_datetime(tz.clone()).date();
    assert!(
        next_date <= expected && next_date >= expected.checked_sub(2.days()).unwrap(),
        "{next_date} vs {expected}"
    );
    let history = swh["history"].as_array().unwrap();
    assert!(
        history.iter().any(|e| e["event"] == "inspection_completed" && e["source"] == "central"),
        "{history:?}"
    );

    // The desk acknowledges the door's: the archive notes the response.
    let answer = reqwest::Client::new()
        .post(format!(
            "{central}/api/v1/tickets/test-site.door-due.inspection.semiannual.1/acknowledge"
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let deadline = Instant::now() + WAIT;
    loop {
        let d = device_json(&config, "door-due");
        if d["history"].as_array().unwrap().iter().any(|e| e["event"] == "ticket_acknowledged") {
            break;
        }
        assert!(Instant::now() < deadline, "the acknowledgement never reached the archive: {d:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Site staff record the door's visit locally: the agent closes its ticket.
    let wrong = tend(&config, &["inspection", "complete", "door-due", "nope"]);
    assert_eq!(wrong.status.code(), Some(1));
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("no inspection plan `nope`") && err.contains("semiannual"), "{err}");
    let done = tend(
        &config,
        &["inspection", "complete", "door-due", "semiannual", "--note", "hinges oiled"],
    );
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    assert!(String::from_utf8_lossy(&done.stdout).contains("recorded as done"));
    let door = wait_for(&central, "the door inspection closed by the agent", |t| {
        t.ticket.ticket_id == "test-site.door-due.inspection.semiannual.1" && t.closed_at.is_some()
    })
    .await;
    assert!(door.resolution.as_deref().unwrap_or_default().contains("hinges oiled"), "{door:?}");

    // `tend device list` reads the running agent.
    let list = tend(&config, &["device", "list"]);
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("door-due") && text.contains("swh-due"), "{text}");

    // Stopped: the same commands read the store.
    let pid = agent.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + WAIT;
    while agent.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "tend run did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let door = device_json(&config, "door-due");
    let entry = door["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "inspection_completed")
        .cloned()
        .unwrap_or_else(|| panic!("{door:#}"));
    assert_eq!(
        (entry["source"].as_str(), entry["note"].as_str()),
        (Some("local"), Some("hinges oiled"))
    );
    assert!(plan(&door, "semiannual")["last_completed_ms"].is_i64());

    // The register of this quarter counts both inspections done.
    let quarter = format!("{}-Q{}", today.year(), (today.month() - 1) / 3 + 1);
    let out_dir = site.dir.path().join("register");
    let out = out_dir.to_str().unwrap();
    let report = tend(&config, &["report", "--period", &quarter, "--out", out]);
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let summary = String::from_utf8_lossy(&report.stdout);
    assert!(summary.contains("2 inspections done"), "{summary}");
    let md =
        std::fs::read_to_string(out_dir.join(format!("register-test-site-{quarter}.md"))).unwrap();
    assert!(md.contains("door-due") && md.contains("swh-due"), "{md}");
    let html = std::fs::read_to_string(out_dir.join(format!("register-test-site-{quarter}.html")))
        .unwrap();
    assert!(html.contains("<svg") && html.contains("door-due"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_web_page_cannot_record_an_inspection() {
    let mosquitto = Mosquitto::start();
    let central = TestServer::start_temp().await.unwrap();
    let mqtt = format!("mqtt://127.0.0.1:{}", mosquitto.port);
    let site = test_site_with(&central.url, &mqtt, "", "").unwrap();
    let text = std::fs::read_to_string(&site.config).unwrap();
    let api = free_port();
    std::fs::write(&site.config, text.replace("127.0.0.1:0", &format!("127.0.0.1:{api}"))).unwrap();
    let log = std::fs::File::create(site.dir.path().join("agent.log")).unwrap();
    let _agent = Agent(
        Command::new(env!("CARGO_BIN_EXE_tend"))
            .args(["run", "--config"])
            .arg(&site.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{api}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + WAIT;
    while http.get(format!("{base}/status")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the agent's API did not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = r#"{"device":"swh-1","plan":"semiannual","at_ms":1780000000000}"#;
    let post = |content_type: &'static str| {
        http.post(format!("{base}/inspections/complete"))
            .header("content-type", content_type)
            .body(body)
    };
    // What a page on another site can send without a CORS preflight.
    let status = |r: reqwest::Response| r.status().as_u16();
    let attack = post("text/plain")
        .header("origin", "http://evil.example")
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(status(attack), 403, "a foreign Host and Origin are refused");
    let rebinding = post("application/json").header("host", "evil.example").send().await.unwrap();
    assert_eq!(status(rebinding), 403, "a DNS-rebinding name is refused");
    let cross = post("text/plain").header("origin", "http://evil.example").send().await.unwrap();
    assert_eq!(status(cross), 403, "a foreign Origin is refused");
    let form = post("application/x-www-form-urlencoded").send().await.unwrap();
    assert_eq!(status(form), 415, "only JSON is taken");
    let no_token = post("application/json").send().await.unwrap();
    assert_eq!(status(no_token), 401, "the local token is required");
    let wrong = post("application/json").bearer_auth("guess").send().await.unwrap();
    assert_eq!(status(wrong), 401);
    // Nothing was recorded: the device's semiannual plan has no completion.
    let device = device_json(&site.config, "swh-1");
    assert!(plan(&device, "semiannual")["last_completed_ms"].is_null(), "{device:#}");
    // The agent's user (the token file) gets through.
    let token = std::fs::read_to_string(site.dir.path().join("data/api-token")).unwrap();
    let ok = post("application/json").bearer_auth(token.trim()).send().await.unwrap();
    assert_eq!(status(ok), 200, "the token's holder is served");
    let device = device_json(&site.config, "swh-1");
    assert!(!plan(&device, "semiannual")["last_completed_ms"].is_null(), "{device:#}");
}
