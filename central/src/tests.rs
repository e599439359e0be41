//! The reference service over real HTTP: every status path, idempotency under
//! concurrency, persistence across restarts, fault injection.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::testing::{TOKEN, TestDatabase, TestServer};
use super::{CentralConfig, TicketList, serve};

/// Runs each contract test twice: on SQLite and on a real PostgreSQL.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() -> anyhow::Result<()> {
                super::$name(super::TestDatabase::sqlite()?).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() -> anyhow::Result<()> {
                super::$name(super::TestDatabase::postgres().await?).await
            }
        }
    )*};
}

on_both_databases!(
    every_request_needs_the_bearer_token,
    create_answers_201_then_200_for_the_same_key,
    bad_requests_are_400_and_invalid_tickets_422,
    same_ticket_id_under_another_key,
    events_are_recorded_once_per_key,
    read_acknowledge_and_close,
    tickets_survive_a_restart,
    injected_failures_and_delays,
    concurrent_duplicates_create_exactly_one_ticket,
    deeply_nested_evidence_is_refused,
    a_reused_idempotency_key_with_another_body_is_422,
    a_site_token_cannot_touch_another_sites_ticket,
    events_per_ticket_are_capped,
    a_row_that_does_not_decode_is_skipped,
    a_site_outage_leads_the_queue,
);

/// A valid fault body.
fn fault(ticket_id: &str) -> Value {
    json!({
        "ticket_id": ticket_id,
        "kind": "fault",
        "site": "huaihai-138",
        "device": {"id": "swh-roof-01", "type": "solar-water-heater", "model": "SWH-300",
                   "serial": "A1234", "location": "Roof, block A"},
        "code": "tank_leak",
        "severity": 2,
        "title": "Tank level falling with no draw",
        "opened_at": "2026-11-22T10:04:00+08:00",
        "evidence": [{"ts": "2026-11-22T10:04:00+08:00", "field": "tank_level_pct", "value": 71}],
        "occurrence": 1,
        "replacement_recommended": false
    })
}

/// Sends a request; answers the status and the JSON body (`null` when none).
struct Call<'a> {
    http: &'a reqwest::Client,
    token: Option<&'a str>,
    key: Option<&'a str>,
}

impl<'a> Call<'a> {
    fn new(http: &'a reqwest::Client) -> Self {
        Self { http, token: Some(TOKEN), key: None }
    }

    fn key(mut self, key: &'a str) -> Self {
        self.key = Some(key);
        self
    }

    fn token(mut self, token: Option<&'a str>) -> Self {
        self.token = token;
        self
    }

    async fn send(self, method: reqwest::Method, url: &str, body: Option<String>) -> (u16, Value) {
        let mut request = self.http.request(method, url);
        if let Some(token) = self.token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = self.key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.bytes().await.unwrap_or_default();
                (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
            }
            Err(e) => (0, json!({"transport": e.to_string()})),
        }
    }

    async fn post(self, url: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, url, Some(body.to_string())).await
    }

    async fn post_raw(self, url: &str, body: &str) -> (u16, Value) {
        self.send(reqwest::Method::POST, url, Some(body.to_owned())).await
    }

    async fn get(self, url: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, url, None).await
    }
}

fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or("<no error message>")
}

async fn list(http: &reqwest::Client, server: &TestServer) -> anyhow::Result<TicketList> {
    let (status, body) = Call::new(http).get(&server.at("/api/v1/tickets")).await;
    anyhow::ensure!(status == 200, "list answered {status}: {body}");
    Ok(serde_json::from_value(body)?)
}

async fn every_request_needs_the_bearer_token(db: TestDatabase) -> anyhow::Result<()> {
    let server = db.start().await?;
    let http = reqwest::Client::new();
    let tickets = server.at("/api/v1/tickets");
    for token in [None, Some("wrong"), Some("")] {
        let (status, body) =
            Call::new(&http).token(token).key("k").post(&tickets, &fault("a")).await;
        assert_eq!(status, 401, "{token:?}: {body}");
        assert!(error_of(&body).contains("token"), "{body}");
    }
    let basic = http.get(&tickets).header("authorization", "Basic dGVzdA==").send().await?;
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(basic.headers().get("www-authenticate").map(|v| v.as_bytes()), Some(&b"Bearer"[..]));
    let lower =
        http.get(&tickets).header("authorization", format!("bearer {TOKEN}")).send().await?;
    assert_eq!(lower.status(), StatusCode::OK, "the scheme is case-insensitive");
    for path in ["/api/v1/tickets/a", "/nowhere"] {
        let (status, _) = Call::new(&http).token(None).get(&server.at(path)).await;
        assert_eq!(status, 401, "{path}");
    }
    assert!(list(&http, &server).await?.tickets.is_empty(), "nothing was created");
    server.stop().await
}

async fn create_answers_201_then_200_for_the_same_key(db: TestDatabase) -> anyhow::Result<()> {
    let server = db.start().await?;
    let http = reqwest::Client::new();
    let tickets = server.at("/api/v1/tickets");
    let (status, first) =
        Call::new(&http).key("site/dev/tank_leak/1").post(&tickets, &fault("a")).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first, json!({"ticket_id": "a", "number": "T-000001"}));
    let (status, again) =
        Call::new(&http).key("site/dev/tank_leak/1").post(&tickets, &fault("a")).await;
    assert_eq!((status, &again), (200, &first));
    let (status, second) =
        Call::new(&http).key("site/dev/tank_leak/2").post(&tickets, &fault("b")).await;
    assert_eq!(status, 201);
    assert_eq!(second["number"], "T-000002");
    let stored = list(&http, &server).await?;
    assert_eq!(stored.tickets.len(), 2);
    assert_eq!(stored.tickets[0].ticket, serde_json::from_value(fault("a"))?);
    assert_eq!(stored.tickets[0].idempotency_key, "site/dev/tank_leak/1");
    server.stop().await
}

async fn bad_requests_are_400_and_invalid_tickets_422(db: TestDatabase) -> anyhow::Result<()> {
    let server = db.start().await?;
    let http = reqwest::Client::new();
    let tickets = server.at("/api/v1/tickets");

    let (status, body) = Call::new(&http).post(&tickets, &fault("a")).await;
    assert_eq!(status, 400, "{body}");
    assert!(error_of(&body).contains("Idempotency-Key"), "{body}");
    let (status, _) = Call::new(&http).key("  ").post(&tickets, &fault("a")).await;
    assert_eq!(status, 400);
    for raw in ["{\"ticket_id\": ", "not json", ""] {
        let (status, body) = Call::new(&http).key("k").post_raw(&tickets, raw).await;
        assert_eq!(status, 400, "{raw:?}: {body}");
        assert!(error_of(&body).starts_with("invalid JSON"), "{body}");
    }

    let with = |field: &str, value: Value| {
        let mut body = fault("a");
        body[field] = value;
        body
    };
    let mut no_site = fault("a");
    no_site.as_object_mut().map(|o| o.remove("site"));
    let mut no_severity = fault("a");
    no_severity.as_object_mut().map(|o| o.remove("severity"));
    let cases = [
        (no_site, "missing field `site`"),
        (no_severity, "severity is required for faults"),
        (with("severity", json!(0)), "severity must be 1..=4"),
        (with("severity", json!(5)), "severity must be 1..=4"),
        (with("severity", json!(300)), "invalid ticket"),
        (with("kind", json!("complaint")), "unknown variant `complaint`"),
        (with("opened_at", json!("2026-11-22 10:04")), "RFC 3339"),
        (with("title", json!("")), "title must not be empty"),
        (with("coverage", json!("free")), "unknown variant `free`"),
        (json!([1, 2]), "invalid ticket"),
    ];
    for (body, expected) in cases {
        let (status, answer) = Call::new(&http).key("k").post(&tickets, &body).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(error_of(&answer).contains(expected), "{expected:?} not in {answer}");
    }
    let mut inspection = with("kind", json!("inspection"));
    inspection.as_object_mut().map(|o| o.remove("severity"));
    let (status, body) = Call::new(&http).key("k").post(&tickets, &inspection).await;
    assert_eq!(status, 201, "inspections need no severity: {body}");
    assert_eq!(list(&http, &server).await?.tickets.len(), 1);
    server.stop().await
}

async fn same_ticket_id_under_another_key(db: TestDatabase) -> anyhow::Result<()> {
    let server = db.start().await?;
    let http = reqwest::Client::new();
    let tickets = server.at("/api/v1/tickets");
    let (status, first) = Call::new(&http).key("k1").post(&tickets, &fault("a")).await;
    assert_eq!(status, 201);
    let (status, same) = Call::new(&http).key("k2").post(&tickets, &fault("a")).await;
    assert_eq!((status, &same), (200, &first), "same body: the same ticket");
    let mut other = fault("a");
    other["title"] = json!("something else");
    let (status, body) = Call::new(&http).key("k3").post(&tickets, &other).await;
    assert_eq!(status, 409, "{body}");
    assert!(error_of(&body).contains("T-000001"), "{body}");
    let (status, again) = Call::new(&http).key("k2").post(&tickets, &fault("a")).await;
    assert_eq!((status, &again), (200, &first), "k2 was recorded");
    assert_eq!(list(&http, &server).await?.tickets.len(), 1);
    server.stop().await
}

async fn concurrent_duplicates_create_exactly_one_ticket(db: TestDatabase) -> anyhow::Result<()> {
    let server = db.start().await?;
    let http = reqwest::Client::new();
    let tickets = server.at("/api/v1/tickets");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (http, tickets) = (http.clone(), tickets.clone());
        tasks.spawn(async move {
            Call::new(&http).key("site/dev/code/1").post(&tickets, &fault("dup")).await
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer?);
    }
    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    let replayed = answers.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!((created, replayed), (1, 19), "{answers:?}");
    assert!(answers.iter().all(|(_, body)| body["number"] == "T-000001"), "{answers:?}");
    assert_eq!(list(&http, &server).await?.tickets.len(), 1);
    server.stop().await
}

async fn events_are_recorded_once_per_key(db: TestDatabase) -> anyhow::Result<()> {
    let server = db.start().await?;
    let http = reqwest::Client::new();
    let (status, _) =
        Call::new(&http).key("k").post(&server.at("/api/v1/tickets"), &fault("a")).await;
    assert_eq!(status, 201);
    let events = server.at("/api/v1/tickets/a/events");
    let recurred = json!({"type": "recurred", "count": 2, "at": "2026-11-22T11:00:00+08:00"});
    let (status, body) = Call::new(&http).key("e1").post(&events, &recurred).await;
    assert_eq!((status, &body), (201, &json!({"ticket_id": "a", "number": "T-000001"})));
    let (status, again) = Call::new(&http).key("e1").post(&events, &recurred).await;
    assert_eq!((status, &again), (200, &body));
    let escalated = json!({"type": "escalated", "severity": 1,
                           "at": "2026-11-22T11:10:00+08:00", "note": "still leaking"});
    let (status, _) = Call::new(&http).key("e2").post(&events, &escalated).await;
    assert_eq!(status, 201);

    let unknown = server.at("/api/v1/tickets/nope/events");
    let (status, body) = Call::new(&http).key("e3").post(&unknown, &recurred).await;
    assert_eq!(status, 404, "{body}");
    assert!(error_of(&body).contains("nope"), "{body}");
    let bad = [
        json!({"type": "exploded", "at": "2026-11-22T11:00:00+08:00"}),
        json!({"type": "recurred", "at": "2026-11-22T11:00:00+08:00"}),
        json!({"type": "escalated", "severity": 7, "at": "2026-11-22T11:00:00+08:00"}),
        json!({"type": "recovered"}),
    ];
    for body in bad {
        let (status, answer) = Call::new(&http).key("e4").post(&events, &body).await;
        assert_eq!(status, 422, "{body}: {answer}");
    }
    let (status, _) = Call::new(&http).post(&events, &recurred).await;
    assert_eq!(status, 400, "no key");
    let (status, _) = Call::new(&http).key("e5").post_raw(&events, "{").await;
    assert_eq!(status, 400, "not JSON");

    let stored = list(&http, &server).await?;
    let record = &stored.tickets[0];
    assert_eq!(record.events.len(), 2);
    assert_eq!(record.events[1].idempotency_key, "e2");
    assert_eq!(record.events[1].event.note.as_deref(), Some("still leaking"));
    assert_eq!(record.severity, Some(1), "escalated");
    assert_eq!(record.ticket.severity, Some(2), "the original body is kept");
    server.stop().await
}

async fn read_acknowledge_and_close(db: TestDatabase) -> anyhow::Result<()> {
    let server = db.start().await?;
    let http = reqwest::Client::new();
    let (status, _) =
        Call::new(&http).key("k").post(&server.at("/api/v1/tickets"), &fault("a")).await;
    assert_eq!(status, 201);
    let ticket = server.at("/api/v1/tickets/a");
    let (status, body) = Call::new(&http).get(&ticket).await;
    assert_eq!(
        (status, body),
        (200, json!({"ticket_id": "a", "number": "T-000001", "status": "open"}))
    );

    let (status, body) = Call::new(&http).post(&format!("{ticket}/acknowledge"), &json!({})).await;
    assert_eq!((status, &body["status"]), (200, &json!("acknowledged")), "{body}");
    // Work under way (the desk's "Start work"): in_progress, read back as such; a
    // second start changes nothing.
    for _ in 0..2 {
        let (status, body) = Call::new(&http).post(&format!("{ticket}/start"), &json!({})).await;
        assert_eq!((status, &body["status"]), (200, &json!("in_progress")), "{body}");
    }
    let (status, body) = Call::new(&http).get(&ticket).await;
    assert_eq!((status, &body["status"]), (200, &json!("in_progress")), "{body}");

    let close = format!("{ticket}/close");
    for bad in [
        json!({"resolution": "x"}),
        json!({"resolution": "", "closed_at": "2026-11-22T15:00:00+08:00"}),
    ] {
        let (status, body) = Call::new(&http).post(&close, &bad).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let (status, _) = Call::new(&http).post_raw(&close, "resolution=x").await;
    assert_eq!(status, 400);
    let done = json!({"resolution": "Gasket replaced", "closed_at": "2026-11-22T15:00:00+08:00"});
    let (status, body) = Call::new(&http).post(&close, &done).await;
    let closed = json!({"ticket_id": "a", "number": "T-000001", "status": "closed",
                        "closed_at": "2026-11-22T15:00:00+08:00", "resolution": "Gasket replaced"});
    assert_eq!((status, &body), (200, &closed));
    let (status, body) = Call::new(&http).get(&ticket).await;
    assert_eq!((status, &body), (200, &closed));
    let again = json!({"resolution": "other", "closed_at": "2026-11-23T15:00:00+08:00"});
    let (status, body) = Call::new(&http).post(&close, &again).await;
    assert_eq!((status, &body), (200, &closed), "closing twice changes nothing");
    let (status, body) = Call::new(&http).post(&format!("{ticket}/acknowledge"), &json!({})).await;
    assert_eq!((status, &body), (200, &closed), "acknowledging a closed ticket changes nothing");
    let (status, body) = Call::new(&http).post(&format!("{ticket}/start"), &json!({})).await;
    assert_eq!((status, &body), (200, &closed), "starting a closed ticket changes nothing");

    for path in [
        "/api/v1/tickets/nope/close",
        "/api/v1/tickets/nope/acknowledge",
        "/api/v1/tickets/nope/start",
    ] {
        let (status, body) = Call::new(&http).post(&server.at(path), &done).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, body) = Call::new(&http).get(&server.at("/api/v1/tickets/nope")).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = Call::new(&http).get(&server.at("/api/v2/whatever")).await;
    assert_eq!((status, error_of(&body)), (404, "no such endpoint"));
    let (status, body) = Call::new(&http).send(reqwest::Method::DELETE, &ticket, None).await;
    assert_eq!(status, 405, "{body}");
    assert!(body["error"].is_string(), "{body}");
    server.stop().await
}

async fn tickets_survive_a_restart(db: TestDatabase) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let server = db.start().await?;
    let (status, first) =
        Call::new(&http).key("k1").post(&server.at("/api/v1/tickets"), &fault("a")).await;
    assert_eq!(status, 201);
    let recovered = json!({"type": "recovered", "at": "2026-11-22T12:00:00+08:00"});
    let (status, _) =
        Call::new(&http).key("e1").post(&server.at("/api/v1/tickets/a/events"), &recovered).await;
    assert_eq!(status, 201);
    server.stop().await?;

    let server = db.start().await?;
    let (status, body) = Call::new(&http).get(&server.at("/api/v1/tickets/a")).await;
    assert_eq!((status, &body["number"]), (200, &json!("T-000001")), "{body}");
    let (status, again) =
        Call::new(&http).key("k1").post(&server.at("/api/v1/tickets"), &fault("a")).await;
    assert_eq!((status, &again), (200, &first), "the key is remembered");
    let (status, _) =
        Call::new(&http).key("e1").post(&server.at("/api/v1/tickets/a/events"), &recovered).await;
    assert_eq!(status, 200, "the event key is remembered");
    let (status, next) =
        Call::new(&http).key("k2").post(&server.at("/api/v1/tickets"), &fault("b")).await;
    assert_eq!((status, &next["number"]), (201, &json!("T-000002")), "numbering continues");
    let stored = list(&http, &server).await?;
    assert_eq!(stored.tickets.len(), 2);
    assert_eq!(stored.tickets[0].events.len(), 1);
    server.stop().await
}

async fn injected_failures_and_delays(db: TestDatabase) -> anyhow::Result<()> {
    let server = db.start().await?;
    let http = reqwest::Client::new();
    let tickets = server.at("/api/v1/tickets");

    server.control.fail_next(2, StatusCode::SERVICE_UNAVAILABLE, Some(Duration::from_millis(1500)));
    for _ in 0..2 {
        let response = http
            .post(&tickets)
            .bearer_auth(TOKEN)
            .header("idempotency-key", "k")
            .json(&fault("a"))
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"2"[..]));
        let body: Value = response.json().await?;
        assert!(error_of(&body).contains("injected"), "{body}");
    }
    let (status, _) = Call::new(&http).key("k").post(&tickets, &fault("a")).await;
    assert_eq!(status, 201);
    assert_eq!(server.control.requests(), 3);

    server.control.fail_for(Duration::from_secs(60), StatusCode::TOO_MANY_REQUESTS, None);
    let (status, _) = Call::new(&http).get(&tickets).await;
    assert_eq!(status, 429);
    server.control.clear();
    let (status, _) = Call::new(&http).get(&tickets).await;
    assert_eq!(status, 200);

    server.control.fail_for(Duration::from_millis(50), StatusCode::INTERNAL_SERVER_ERROR, None);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = Call::new(&http).get(&tickets).await;
    assert_eq!(status, 200, "the failure period is over");

    server.control.delay_for(Duration::from_secs(60), Duration::from_millis(300));
    let started = Instant::now();
    let (status, _) = Call::new(&http).key("k2").post(&tickets, &fault("b")).await;
    assert_eq!(status, 201);
    assert!(started.elapsed() >= Duration::from_millis(300));
    server.control.clear();
    server.stop().await
}

#[tokio::test]
async fn an_empty_token_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let result = serve(listener, CentralConfig::new(dir.path(), " "), async {}).await;
    assert!(result.is_err());
    Ok(())
}

/// Collects every `$ref` in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                match (key.as_str(), item) {
                    ("$ref", Value::String(target)) => out.push(target),
                    _ => refs(item, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| refs(item, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes() -> anyhow::Result<()> {
    use super::api::{OPENAPI, OPENAPI_PATH, routes};
    use std::collections::BTreeSet;

    let doc: openapiv3::OpenAPI = serde_json::from_str(OPENAPI)?;
    assert!(doc.openapi.starts_with("3."), "{}", doc.openapi);
    let raw: Value = serde_json::from_str(OPENAPI)?;
    let mut targets = Vec::new();
    refs(&raw, &mut targets);
    assert!(!targets.is_empty());
    for target in targets {
        let pointer = target.strip_prefix('#').unwrap_or_else(|| panic!("external ref {target}"));
        assert!(raw.pointer(pointer).is_some(), "dangling $ref {target}");
    }

    // Documented (method, path) pairs versus the routes the router serves.
    let mut documented = BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        let openapiv3::ReferenceOr::Item(item) = item else { panic!("{path} is a reference") };
        for (method, operation) in item.iter() {
            assert!(!operation.responses.responses.is_empty(), "{method} {path}: no responses");
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let mut served: BTreeSet<(String, String)> =
        routes().into_iter().map(|(m, p, _)| (m.to_string(), p.to_owned())).collect();
    served.insert(("GET".into(), OPENAPI_PATH.into()));
    assert_eq!(documented, served, "openapi.json and api::routes() differ");

    // Each documented operation is really served: with a valid token it is never
    // the fallback's 404 nor a 405.
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let http = reqwest::Client::new();
    for (method, path) in &documented {
        let url = server.at(&path.replace("{ticket_id}", "nope"));
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let (status, body) =
            Call::new(&http).key("k").send(method.clone(), &url, Some("{}".into())).await;
        assert!(
            status != 405 && body["error"] != "no such endpoint",
            "{method} {path}: {status} {body}"
        );
    }
    // Served without a token, byte for byte the file.
    let served = http.get(server.at(OPENAPI_PATH)).send().await?;
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(served.headers()["content-type"], "application/json");
    assert_eq!(served.text().await?, OPENAPI);
    server.stop().await
}

/// Finding: an evidence value nested 124 levels deep was accepted, and from then
/// on every listing answered 500. Evidence values are numbers, strings or booleans.
async fn deeply_nested_evidence_is_refused(db: TestDatabase) -> anyhow::Result<()> {
    let server = db.start().await?;
    let http = reqwest::Client::new();
    let tickets = server.at("/api/v1/tickets");
    let mut nested = json!(1);
    for _ in 0..124 {
        nested = json!([nested]);
    }
    let mut body = fault("deep");
    body["evidence"] = json!([{"ts": "2026-11-22T10:04:00+08:00", "field": "f", "value": nested}]);
    let (status, answer) = Call::new(&http).key("deep").post(&tickets, &body).await;
    assert_eq!(status, 422, "{answer}");
    assert!(error_of(&answer).contains("must be a number, a string or a boolean"), "{answer}");
    body["evidence"] =
        json!([{"ts": "2026-11-22T10:04:00+08:00", "field": "f", "value": {"a": 1}}]);
    let (status, _) = Call::new(&http).key("object").post(&tickets, &body).await;
    assert_eq!(status, 422);
    let (status, _) = Call::new(&http).key("fine").post(&tickets, &fault("fine")).await;
    assert_eq!(status, 201);
    assert_eq!(list(&http, &server).await?.tickets.len(), 1, "listing still works");
    let desk = http.get(server.at("/desk")).bearer_auth(TOKEN).send().await?;
    assert_eq!(desk.status(), StatusCode::OK);
    server.stop().await
}

/// Finding: reusing an Idempotency-Key with a different body answered the first
/// ticket, so a predictable key let one request pre-empt another.
async fn a_reused_idempotency_key_with_another_body_is_422(db: TestDatabase) -> anyhow::Result<()> {
    let server = db.start().await?;
    let http = reqwest::Client::new();
    let tickets = server.at("/api/v1/tickets");
    let (status, _) = Call::new(&http).key("k").post(&tickets, &fault("a")).await;
    assert_eq!(status, 201);
    let (status, body) = Call::new(&http).key("k").post(&tickets, &fault("b")).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        error_of(&body).contains("Idempotency-Key was used before with a different body"),
        "{body}"
    );
    // The same body again (formatted differently) is a replay.
    let compact = serde_json::to_string(&fault("a"))?;
    let (status, body) =
        Call::new(&http).key("k").post_raw(&tickets, &format!(" {compact} ")).await;
    assert_eq!((status, &body["number"]), (200, &json!("T-000001")), "{body}");
    // Events too.
    let events = server.at("/api/v1/tickets/a/events");
    let recovered = json!({"type": "recovered", "at": "2026-11-22T12:00:00+08:00"});
    let overdue = json!({"type": "overdue", "at": "2026-11-22T12:00:00+08:00"});
    assert_eq!(Call::new(&http).key("e").post(&events, &recovered).await.0, 201);
    assert_eq!(Call::new(&http).key("e").post(&events, &recovered).await.0, 200);
    let (status, body) = Call::new(&http).key("e").post(&events, &overdue).await;
    assert_eq!(status, 422, "{body}");
    let stored = list(&http, &server).await?;
    assert_eq!((stored.tickets.len(), stored.tickets[0].events.len()), (1, 1));
    server.stop().await
}

/// Finding: every site shared one token. A site's own token creates and touches
/// only that site's tickets; revoked, it opens nothing.
async fn a_site_token_cannot_touch_another_sites_ticket(db: TestDatabase) -> anyhow::Result<()> {
    let store = db.store().await?;
    let now = tend_wire::model::WireTime::parse("2026-11-22T10:00:00Z")?;
    let ours = store.add_site("huaihai-138", &now).await?;
    let theirs = store.add_site("other-site", &now).await?;
    store.close().await;
    let server = db.start().await?;
    let http = reqwest::Client::new();
    let tickets = server.at("/api/v1/tickets");
    let (status, _) =
        Call::new(&http).token(Some(&ours)).key("k").post(&tickets, &fault("a")).await;
    assert_eq!(status, 201);
    // Another site's token: no ticket for this site, no touching this one.
    let (status, body) =
        Call::new(&http).token(Some(&theirs)).key("k2").post(&tickets, &fault("b")).await;
    assert_eq!(status, 403, "{body}");
    let recovered = json!({"type": "recovered", "at": "2026-11-22T12:00:00+08:00"});
    let close = json!({"resolution": "done", "closed_at": "2026-11-22T12:00:00+08:00"});
    let them = Call::new(&http).token(Some(&theirs));
    assert_eq!(them.get(&server.at("/api/v1/tickets/a")).await.0, 403);
    let them = Call::new(&http).token(Some(&theirs)).key("e");
    assert_eq!(them.post(&server.at("/api/v1/tickets/a/events"), &recovered).await.0, 403);
    let them = Call::new(&http).token(Some(&theirs));
    assert_eq!(them.post(&server.at("/api/v1/tickets/a/close"), &close).await.0, 403);
    let them = Call::new(&http).token(Some(&theirs));
    assert_eq!(them.post(&server.at("/api/v1/tickets/a/acknowledge"), &json!({})).await.0, 403);
    let (status, listed) = Call::new(&http).token(Some(&theirs)).get(&tickets).await;
    assert_eq!((status, &listed["tickets"]), (200, &json!([])), "a site lists only its own");
    // A key is the site's own: the other site's identical key is its own ticket.
    let mut other = fault("a");
    other["site"] = json!("other-site");
    let (status, body) =
        Call::new(&http).token(Some(&theirs)).key("k").post(&tickets, &other).await;
    assert_eq!((status, &body["number"]), (201, &json!("T-000002")), "{body}");
    // The owner still can; its close names who closed.
    let (status, body) = Call::new(&http)
        .token(Some(&ours))
        .post(&server.at("/api/v1/tickets/a/close"), &close)
        .await;
    assert_eq!((status, &body["status"]), (200, &json!("closed")), "{body}");
    let record =
        list(&http, &server).await?.tickets.into_iter().find(|t| t.ticket.site == "huaihai-138");
    assert_eq!(record.and_then(|r| r.closed_by).as_deref(), Some("site huaihai-138 (API)"));
    // Revoked: nothing.
    let store = db.store().await?;
    assert!(store.revoke_site("huaihai-138", &now).await?);
    store.close().await;
    assert_eq!(Call::new(&http).token(Some(&ours)).get(&tickets).await.0, 401);
    server.stop().await
}

/// Finding: events per ticket were unlimited and notes unbounded (25 events with
/// 1.9 MB notes made 590 MB). Notes are capped, bodies are capped (413), events per
/// ticket are capped (422), each refusal naming its limit.
async fn events_per_ticket_are_capped(db: TestDatabase) -> anyhow::Result<()> {
    let mut cfg = db.config();
    cfg.limits.max_events_per_ticket = 5;
    let server = db.start_with(cfg).await?;
    let http = reqwest::Client::new();
    assert_eq!(
        Call::new(&http).key("k").post(&server.at("/api/v1/tickets"), &fault("a")).await.0,
        201
    );
    let events = server.at("/api/v1/tickets/a/events");
    let big =
        json!({"type": "recovered", "at": "2026-11-22T12:00:00+08:00", "note": "x".repeat(10_001)});
    let (status, body) = Call::new(&http).key("big").post(&events, &big).await;
    assert_eq!(status, 422, "{body}");
    assert!(error_of(&body).contains("the limit is 10000 bytes"), "{body}");
    let huge = json!({"type": "recovered", "at": "2026-11-22T12:00:00+08:00", "note": "x".repeat(1_900_000)});
    // A client of its own: the service answers 413 without reading the whole body
    // and closes that connection, which a pooled client could otherwise pick for the
    // next request before it sees the close.
    let (status, body) = Call::new(&reqwest::Client::new()).key("huge").post(&events, &huge).await;
    assert_eq!(status, 413, "{body}");
    assert!(error_of(&body).contains("limit of 262144 bytes"), "{body}");
    for i in 1..=5 {
        let event = json!({"type": "recurred", "count": i, "at": "2026-11-22T12:00:00+08:00"});
        assert_eq!(Call::new(&http).key(&format!("e{i}")).post(&events, &event).await.0, 201);
    }
    let sixth = json!({"type": "recurred", "count": 6, "at": "2026-11-22T12:00:00+08:00"});
    let (status, body) = Call::new(&http).key("e6").post(&events, &sixth).await;
    assert_eq!(status, 422, "{body}");
    assert!(error_of(&body).contains("holds 5 events, the limit of events per ticket"), "{body}");
    let again = json!({"type": "recurred", "count": 5, "at": "2026-11-22T12:00:00+08:00"});
    assert_eq!(
        Call::new(&http).key("e5").post(&events, &again).await.0,
        200,
        "replays still answer"
    );
    assert_eq!(list(&http, &server).await?.tickets[0].events.len(), 5);
    server.stop().await
}

/// A stored row that does not decode is skipped and logged; the listing and the
/// desk stay up.
async fn a_row_that_does_not_decode_is_skipped(db: TestDatabase) -> anyhow::Result<()> {
    let server = db.start().await?;
    let http = reqwest::Client::new();
    let tickets = server.at("/api/v1/tickets");
    assert_eq!(Call::new(&http).key("k1").post(&tickets, &fault("a")).await.0, 201);
    assert_eq!(Call::new(&http).key("k2").post(&tickets, &fault("b")).await.0, 201);
    db.store().await?.spoil_for_tests("a").await?;
    let listed = list(&http, &server).await?;
    assert_eq!(
        listed.tickets.iter().map(|t| t.ticket.ticket_id.as_str()).collect::<Vec<_>>(),
        ["b"]
    );
    let desk = http.get(server.at("/desk")).bearer_auth(TOKEN).send().await?;
    assert_eq!(desk.status(), StatusCode::OK);
    let (status, _) = Call::new(&http).get(&server.at("/api/v1/tickets/a")).await;
    assert_eq!(status, 500, "the spoilt ticket alone fails");
    server.stop().await
}

/// Issue 17 (desk side): a whole site down (device type `site`, `site_outage`)
/// stands out at the top of the desk queue, above an overdue level-1 fault.
async fn a_site_outage_leads_the_queue(db: TestDatabase) -> anyhow::Result<()> {
    let server = db.start().await?;
    let http = reqwest::Client::new();
    let tickets = server.at("/api/v1/tickets");
    let mut urgent = fault("urgent");
    urgent["severity"] = json!(1);
    urgent["sla"] = json!({"respond_by": "2026-11-22T10:14:00+08:00"});
    assert_eq!(Call::new(&http).key("k1").post(&tickets, &urgent).await.0, 201);
    let mut outage = fault("outage");
    outage["device"] = json!({"id": "huaihai-138", "type": "site"});
    outage["code"] = json!("site_outage");
    outage["title"] = json!("Whole site silent");
    outage["severity"] = json!(2);
    assert_eq!(Call::new(&http).key("k2").post(&tickets, &outage).await.0, 201);
    let html = http.get(server.at("/desk")).bearer_auth(TOKEN).send().await?.text().await?;
    let first = html.find("data-ticket=").map(|at| &html[at..]).unwrap_or_default();
    assert!(first.starts_with("data-ticket=\"outage\""), "{html}");
    assert!(html.contains("is-site-outage"));
    server.stop().await
}

/// Finding: connections that never finished their headers stayed open. They are
/// closed after the header-read timeout; the connection cap holds further ones in
/// the backlog until one closes.
#[tokio::test]
async fn a_connection_that_never_sends_headers_is_closed() -> anyhow::Result<()> {
    let db = TestDatabase::sqlite()?;
    let mut cfg = db.config();
    cfg.limits.header_read_timeout = Duration::from_millis(500);
    cfg.limits.max_connections = 2;
    let server = db.start_with(cfg).await?;
    let addr = server.url.trim_start_matches("http://").to_owned();
    let silent = TcpStream::connect(&addr).await?;
    let mut partial = TcpStream::connect(&addr).await?;
    partial.write_all(b"GET /api/v1/tickets HTTP/1.1\r\nHost: x\r\n").await?;
    // Both slots are taken: a third connection waits in the backlog, unanswered.
    let started = Instant::now();
    let http = reqwest::Client::new();
    let waiting = tokio::spawn({
        let url = server.at("/api/v1/openapi.json");
        async move { http.get(url).send().await.map(|r| r.status()) }
    });
    for mut stream in [silent, partial] {
        let mut rest = Vec::new();
        // The server closes it: end of stream (possibly after a 408), well before 10 s.
        let read =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(_))), "the connection was not closed: {read:?}");
        let text = String::from_utf8_lossy(&rest);
        assert!(rest.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());
    assert_eq!(
        waiting.await??,
        StatusCode::OK,
        "the waiting connection is served once a slot frees"
    );
    server.stop().await
}

/// A client that sends its headers but never its body gets 503 at the request timeout.
#[tokio::test]
async fn a_request_that_never_ends_times_out() -> anyhow::Result<()> {
    let db = TestDatabase::sqlite()?;
    let mut cfg = db.config();
    cfg.limits.request_timeout = Duration::from_millis(500);
    let server = db.start_with(cfg).await?;
    let addr = server.url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).await?;
    let head = format!(
        "POST /api/v1/tickets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Idempotency-Key: k\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await?;
    let mut answer = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut answer)).await??;
    assert_eq!(&answer, b"HTTP/1.1 503");
    server.stop().await
}
