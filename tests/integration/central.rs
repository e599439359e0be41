//! The reference central service as users meet it: the `tend central` command (a
//! real process on a real port and data directory) under a burst of duplicate
//! requests and a restart, and the maintenance desk in headless Chromium (Debian's
//! `chromium` + `chromium-driver`, driven over WebDriver with real clicks).

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tend_central::testing::TestServer;
use tend_central::{CentralConfig, TicketList};

/// Longest wait for anything these tests expect.
const WAIT: Duration = Duration::from_secs(60);
const API_TOKEN: &str = "api-token";
const DESK_TOKEN: &str = "desk-secret";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed when the test ends, however it ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `check` every 50 ms until it answers `Some`, for at most [`WAIT`].
async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Local time as `YYYY-MM-DDTHH:MM:SS+08:00`, `minutes` from now.
fn in_minutes(minutes: i64) -> String {
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_mins(minutes);
    at.round(jiff::Unit::Second)
        .unwrap()
        .display_with_offset(jiff::tz::Offset::constant(8))
        .to_string()
}

/// A fault as the agent sends it, opened `age` minutes ago, with the SLA of
/// maintenance.md (working day): respond 10/10/30/30 min, on site 2/4/12 h (level 4:
/// at the next inspection), resolve 1/2/5 days (level 4: next inspection).
fn fault(id: &str, device: (&str, &str), code: &str, severity: u8, title: &str, age: i64) -> Value {
    let level = usize::from(severity - 1);
    let respond = [10, 10, 30, 30][level];
    let mut body = json!({
        "ticket_id": id, "kind": "fault", "site": "huaihai-138",
        "device": {"id": device.0, "type": device.1, "model": "M-1", "serial": "S-1",
                   "location": "Block A"},
        "code": code, "severity": severity, "title": title,
        "description": "Seen by the agent; details in the evidence.",
        "opened_at": in_minutes(-age),
        "sla": {"respond_by": in_minutes(respond - age)},
        "coverage": if severity.is_multiple_of(2) { "contract" } else { "warranty" },
        "diagnosis": {"probable_cause": "Worn part", "category": "hardware",
                      "suggested_parts": ["gasket"]},
        "evidence": [{"ts": in_minutes(-age), "field": "value", "value": 71.5}],
        "occurrence": 1,
    });
    if severity < 4 {
        body["sla"]["onsite_by"] = in_minutes([120, 240, 720][level] - age).into();
        body["sla"]["resolve_by"] = in_minutes([1440, 2880, 7200][level] - age).into();
    }
    body
}

/// Sends a JSON request with the API token; answers (status, body).
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = http.request(method, url).bearer_auth(API_TOKEN);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (0, json!({"transport": e.to_string()})),
    }
}

async fn open(http: &reqwest::Client, base: &str, body: &Value) -> Value {
    let id = body["ticket_id"].as_str().unwrap();
    let (status, answer) =
        call(http, reqwest::Method::POST, &format!("{base}/api/v1/tickets"), Some(id), Some(body))
            .await;
    assert_eq!(status, 201, "{answer}");
    answer
}

async fn list(http: &reqwest::Client, base: &str) -> TicketList {
    let (status, body) =
        call(http, reqwest::Method::GET, &format!("{base}/api/v1/tickets"), None, None).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

/// `tend central` as a process, stopped by SIGTERM/SIGINT like an operator would.
struct CentralProcess {
    url: String,
    process: Process,
}

impl CentralProcess {
    fn start(data_dir: &Path, log: &Path) -> Self {
        let port = free_port();
        let log = std::fs::File::create(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tend"))
            .args(["central", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data_dir)
            .env("TEND_CENTRAL_TOKEN", API_TOKEN)
            .env("TEND_DESK_TOKEN", DESK_TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Self { url: format!("http://127.0.0.1:{port}"), process: Process(child) }
    }

    async fn ready(&self, http: &reqwest::Client) {
        let url = format!("{}/api/v1/openapi.json", self.url);
        until("tend central to answer", || async {
            http.get(&url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())
        })
        .await;
    }

    /// SIGTERM (what systemd sends), then waits for a clean exit.
    fn stop(mut self) {
        let pid = self.process.0.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.process.0.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "tend central did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "tend central exited with {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn central_command_survives_duplicate_bursts_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("central");
    let http = reqwest::Client::new();
    let central = CentralProcess::start(&data, &dir.path().join("central-1.log"));
    central.ready(&http).await;
    let base = central.url.clone();

    // 64 identical creates at once (an agent retrying over a flaky link, times
    // many): exactly one ticket, one 201, every answer naming it.
    let body = fault("burst.1", ("swh-1", "solar-water-heater"), "tank_leak", 2, "Tank leak", 10);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (http, base, body) = (http.clone(), base.clone(), body.clone());
        tasks.spawn(async move {
            call(
                &http,
                reqwest::Method::POST,
                &format!("{base}/api/v1/tickets"),
                Some("site/swh-1/tank_leak/1"),
                Some(&body),
            )
            .await
        });
    }
    let answers = tasks.join_all().await;
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    let replayed = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!((created, replayed), (1, 63), "{answers:?}");
    assert!(
        answers.iter().all(|(_, b)| b == &json!({"ticket_id": "burst.1", "number": "T-000001"}))
    );
    // The same for an event.
    let event = json!({"type": "recurred", "count": 2, "at": in_minutes(0)});
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (http, base, event) = (http.clone(), base.clone(), event.clone());
        tasks.spawn(async move {
            call(
                &http,
                reqwest::Method::POST,
                &format!("{base}/api/v1/tickets/burst.1/events"),
                Some("ev-1"),
                Some(&event),
            )
            .await
            .0
        });
    }
    let mut statuses = tasks.join_all().await;
    statuses.sort_unstable();
    assert_eq!(
        (
            statuses.iter().filter(|s| **s == 201).count(),
            statuses.iter().filter(|s| **s == 200).count()
        ),
        (1, 31),
        "{statuses:?}"
    );
    let second = fault("burst.2", ("door-1", "door-controller"), "tamper", 1, "Tamper", 5);
    assert_eq!(open(&http, &base, &second).await["number"], "T-000002");
    let (status, _) = call(
        &http,
        reqwest::Method::POST,
        &format!("{base}/api/v1/tickets/burst.2/close"),
        None,
        Some(&json!({"resolution": "cover refitted", "closed_at": "2026-11-23T10:00:00+08:00"})),
    )
    .await;
    assert_eq!(status, 200);
    let before = list(&http, &base).await;
    central.stop();

    // Restarted on the same data directory: tickets, events, statuses, keys and
    // numbering all intact.
    let central = CentralProcess::start(&data, &dir.path().join("central-2.log"));
    central.ready(&http).await;
    let base = central.url.clone();
    let after = list(&http, &base).await;
    assert_eq!(after, before, "the restart changed the stored tickets");
    assert_eq!(after.tickets[0].events.len(), 1);
    let (status, answer) = call(
        &http,
        reqwest::Method::POST,
        &format!("{base}/api/v1/tickets"),
        Some("site/swh-1/tank_leak/1"),
        Some(&body),
    )
    .await;
    assert_eq!((status, &answer["number"]), (200, &json!("T-000001")));
    let (status, _) = call(
        &http,
        reqwest::Method::POST,
        &format!("{base}/api/v1/tickets/burst.1/events"),
        Some("ev-1"),
        Some(&event),
    )
    .await;
    assert_eq!(status, 200, "the event key survived the restart");
    let (status, closed) =
        call(&http, reqwest::Method::GET, &format!("{base}/api/v1/tickets/burst.2"), None, None)
            .await;
    assert_eq!(
        (status, &closed["status"], &closed["resolution"]),
        (200, &json!("closed"), &json!("cover refitted"))
    );
    let third = fault("burst.3", ("av-1", "av-system"), "amp_protect", 3, "Amp protect", 30);
    assert_eq!(open(&http, &base, &third).await["number"], "T-000003", "numbering continues");
    // The desk token is not the API token: each opens only its own door.
    let (status, _) = call(&http, reqwest::Method::GET, &format!("{base}/desk"), None, None).await;
    assert_eq!(status, 200, "the redirect to sign-in is followed to a page");
    let desk_with_api_token = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{base}/desk"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(desk_with_api_token.status(), 303, "the API token does not open the desk");
    let desk = http.get(format!("{base}/desk")).bearer_auth(DESK_TOKEN).send().await.unwrap();
    assert_eq!(desk.status(), 200);
    assert!(desk.text().await.unwrap().contains("T-000003"));
    central.stop();
}

/// chromedriver in a process group of its own, with the Chromium it starts: the
/// whole group is killed when the test ends, however it ends (a plain kill of
/// chromedriver would leave Chromium running).
struct DriverGroup(Child);

impl Drop for DriverGroup {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.wait();
    }
}

/// chromedriver on a free port with its own Chromium profile.
struct Browser {
    client: Client,
    _driver: DriverGroup,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: run scripts/setup.sh (installs chromium chromium-driver)"
            );
        }
        let port = free_port();
        let driver = DriverGroup(
            Command::new("/usr/bin/chromedriver")
                .arg(format!("--port={port}"))
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        until("chromedriver to be ready", || async {
            let status: Value =
                http.get(format!("{url}/status")).send().await.ok()?.json().await.ok()?;
            (status["value"]["ready"] == true).then_some(())
        })
        .await;
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-quic".into(),
            "--window-size=1440,1000".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": "/usr/bin/chromium", "args": args}),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector).capabilities(caps).connect(&url).await.unwrap();
        Self { client, _driver: driver, _profile: profile }
    }

    /// Saves a screenshot as `{CARGO_TARGET_TMPDIR}/{name}.png`; answers the path.
    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// The `data-ticket` ids of the queue's rows, top to bottom. Read in one
    /// script call, so the page's own refresh cannot swap rows out halfway.
    async fn try_rows(&self) -> Option<Vec<String>> {
        let script = "return Array.from(document.querySelectorAll('table.queue tbody tr'))\
                      .map(function (row) { return row.getAttribute('data-ticket'); });";
        let value = self.client.execute(script, vec![]).await.ok()?;
        serde_json::from_value(value).ok()
    }

    async fn rows(&self) -> Vec<String> {
        until("the queue's rows", || self.try_rows()).await
    }

    /// Clicks the element matching `css`; found again if the page's refresh
    /// replaced it between finding and clicking.
    async fn click(&self, css: &str) {
        until(&format!("a click on {css}"), || async {
            self.client.find(Locator::Css(css)).await.ok()?.click().await.ok()
        })
        .await;
    }

    /// Types `text` into the element matching `css` (found again like [`Self::click`]).
    async fn type_into(&self, css: &str, text: &str) {
        until(&format!("typing into {css}"), || async {
            self.client.find(Locator::Css(css)).await.ok()?.send_keys(text).await.ok()
        })
        .await;
    }

    /// The text of the first element matching `css` (one script call, as above).
    async fn text(&self, css: &str) -> String {
        let script = "var e = document.querySelector(arguments[0]); return e ? e.innerText : null;";
        until(&format!("text of {css}"), || async {
            let value = self.client.execute(script, vec![json!(css)]).await.ok()?;
            value.as_str().map(str::to_owned)
        })
        .await
    }
}

/// The central service in process (its store is then readable by the test).
async fn central_in_process(dir: &Path) -> (String, TestServer) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg =
        CentralConfig { desk_token: Some(DESK_TOKEN.into()), ..CentralConfig::new(dir, API_TOKEN) };
    let server = TestServer::serve(listener, cfg).unwrap();
    (server.url.clone(), server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desk_in_headless_chromium_shows_acknowledges_and_closes() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _stop) = central_in_process(&dir.path().join("central")).await;
    let http = reqwest::Client::new();

    // A morning's queue: several severities, all three equipment types, an
    // inspection, one overdue, one repeat fault where replacement is recommended.
    let mut leak = fault(
        "huaihai-138.swh-roof-01.tank_leak.3",
        ("swh-roof-01", "solar-water-heater"),
        "tank_leak",
        2,
        "Tank level falling with no draw",
        35,
    );
    leak["occurrence"] = json!(3);
    leak["replacement_recommended"] = json!(true);
    let mut overheat = fault(
        "xuhui-9.swh-2.overheat.1",
        ("swh-2", "solar-water-heater"),
        "overheat",
        2,
        "Collector overheating",
        1,
    );
    overheat["site"] = json!("xuhui-9");
    let tickets = [
        fault(
            "huaihai-138.av-hall.amp_protect.1",
            ("av-hall", "av-system"),
            "amp_protect",
            3,
            "Amplifier in protection mode",
            5,
        ),
        fault(
            "huaihai-138.door-lobby.tamper.1",
            ("door-lobby", "door-controller"),
            "tamper",
            1,
            "Controller cover opened",
            2,
        ),
        leak,
        fault(
            "huaihai-138.av-room2.lamp_hours.1",
            ("av-room2", "av-system"),
            "lamp_hours",
            4,
            "Projector lamp near end of life",
            10,
        ),
        json!({
            "ticket_id": "huaihai-138.door-garage.semiannual.2026-11", "kind": "inspection",
            "site": "huaihai-138", "device": {"id": "door-garage", "type": "door-controller", "location": "Garage gate"},
            "code": "semiannual", "title": "Half-yearly door inspection",
            "opened_at": in_minutes(-60), "due_at": in_minutes(3 * 1440),
            "checklist": ["Closer force", "Hinges and fixings", "Battery backup test"],
        }),
        overheat,
    ];
    for ticket in &tickets {
        open(&http, &base, ticket).await;
    }
    // Someone already took the amplifier ticket: it now works toward being on site.
    let (status, _) = call(
        &http,
        reqwest::Method::POST,
        &format!("{base}/api/v1/tickets/huaihai-138.av-hall.amp_protect.1/acknowledge"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);

    let browser = Browser::start().await;
    let client = &browser.client;
    client.goto(&format!("{base}/desk")).await.unwrap();
    let url = client.current_url().await.unwrap();
    assert_eq!(url.path(), "/desk/login", "not signed in: sent to sign in ({url})");
    client.find(Locator::Id("password")).await.unwrap().send_keys(DESK_TOKEN).await.unwrap();
    client
        .find(Locator::Css("section.login button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client.wait().at_most(WAIT).for_element(Locator::Css("table.queue")).await.unwrap();

    // Most urgent first, by the commitment each works against now: the leak's
    // response (25 min overdue), the tamper's (8 min left), the overheat's (9 min),
    // the lamp's (20 min), the acknowledged amplifier's on-site time (~12 h), then
    // the inspection (3 days).
    let expected = [
        "huaihai-138.swh-roof-01.tank_leak.3",
        "huaihai-138.door-lobby.tamper.1",
        "xuhui-9.swh-2.overheat.1",
        "huaihai-138.av-room2.lamp_hours.1",
        "huaihai-138.av-hall.amp_protect.1",
        "huaihai-138.door-garage.semiannual.2026-11",
    ];
    assert_eq!(browser.rows().await, expected);
    let first = browser.text("table.queue tbody tr:first-child").await;
    assert!(
        first.contains("OVERDUE") && first.contains("replace unit") && first.contains("repeat ×3"),
        "{first}"
    );
    browser.screenshot("desk-queue").await;

    // Filters are links a person can use: by site, then equipment type.
    let site = client.find(Locator::Css("select[name=site]")).await.unwrap();
    site.select_by_value("xuhui-9").await.unwrap();
    until("the site filter to apply", || async {
        (browser.try_rows().await? == ["xuhui-9.swh-2.overheat.1"]).then_some(())
    })
    .await;
    client.goto(&format!("{base}/desk?type=door-controller")).await.unwrap();
    assert_eq!(browser.rows().await, [expected[1], expected[5]]);
    client.goto(&format!("{base}/desk?status=acknowledged")).await.unwrap();
    assert_eq!(browser.rows().await, [expected[4]]);
    client.goto(&format!("{base}/desk")).await.unwrap();

    // The page refreshes itself in place: a ticket opened now appears without a
    // reload (the marker set on this page survives).
    client.execute("window.deskMarker = 42; return 1;", vec![]).await.unwrap();
    let newcomer = fault(
        "huaihai-138.door-roof.forced_open.1",
        ("door-roof", "door-controller"),
        "forced_open",
        1,
        "Roof door forced open",
        0,
    );
    open(&http, &base, &newcomer).await;
    until("the queue to refresh itself", || async {
        browser
            .try_rows()
            .await?
            .contains(&"huaihai-138.door-roof.forced_open.1".to_owned())
            .then_some(())
    })
    .await;
    assert_eq!(
        client.execute("return window.deskMarker;", vec![]).await.unwrap(),
        json!(42),
        "the page was reloaded instead"
    );

    // Open the tamper ticket, acknowledge it, close it with a resolution.
    let tamper = "huaihai-138.door-lobby.tamper.1";
    browser.click(&format!("tr[data-ticket=\"{tamper}\"] td.number a")).await;
    client.wait().at_most(WAIT).for_element(Locator::Css("form.ack button")).await.unwrap();
    let head = browser.text("header.ticket-head").await;
    assert!(head.contains("Controller cover opened") && head.contains("Open"), "{head}");
    browser.screenshot("desk-ticket").await;
    browser.click("form.ack button").await;
    client.wait().at_most(WAIT).for_element(Locator::Css(".notice.ok")).await.unwrap();
    assert!(browser.text(".notice.ok").await.contains("acknowledged"));
    let read = format!("{base}/api/v1/tickets/{tamper}");
    let (_, status) = call(&http, reqwest::Method::GET, &read, None, None).await;
    assert_eq!(status["status"], "acknowledged");

    let resolution = "Cover refitted, tamper switch tested OK";
    browser.type_into("#resolution", resolution).await;
    browser.click("form.close button").await;
    until("the close to be confirmed", || async {
        let notice = client.find(Locator::Css(".notice.ok")).await.ok()?.text().await.ok()?;
        notice.contains("closed").then_some(())
    })
    .await;
    let (_, status) = call(&http, reqwest::Method::GET, &read, None, None).await;
    assert_eq!(
        (&status["status"], &status["resolution"]),
        (&json!("closed"), &json!(resolution)),
        "{status}"
    );
    assert!(status["closed_at"].as_str().unwrap().ends_with("+08:00"), "{status}");
    browser.screenshot("desk-closed").await;

    // Back on the queue the closed ticket is gone; nothing else changed.
    browser.click("p.back a").await;
    client.wait().at_most(WAIT).for_element(Locator::Css("table.queue")).await.unwrap();
    let rows = browser.rows().await;
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert!(!rows.contains(&tamper.to_owned()));
    assert_eq!(list(&http, &base).await.tickets.len(), 7);
    browser.client.clone().close().await.unwrap();
}
