//! The dispatcher against a foreign ticketing system: an axum server in the test
//! that answers as services other than the reference one do (integer ticket
//! numbers, bodies that are not the API's answer, a 500 for one ticket only, a small
//! body limit). Regression tests of issue 15, findings 3 and 8, named after the
//! attack.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::tests::{Agent, Running, TOKEN, event, eventually, fast, fault, open};
use super::*;
use crate::tickets::model::EventKind;

/// How the foreign service answers a request about `ticket_id`, the number it gave
/// that ticket: status and body.
type Answer = Arc<dyn Fn(&str, u64) -> (StatusCode, String) + Send + Sync>;

/// What the foreign service saw.
#[derive(Debug, Default)]
struct Seen {
    /// Requests per ticket id (creates and events), whatever was answered.
    requests: HashMap<String, u32>,
    /// The number each ticket id got, on its first request.
    numbers: HashMap<String, u64>,
    /// Tickets whose creation was answered 2xx (an event for any other is a 404).
    created: HashSet<String>,
    /// Idempotency keys of the accepted events, per ticket, in arrival order.
    events: HashMap<String, Vec<String>>,
    /// Requests answered 5xx so far.
    failed: u32,
    /// Requests being answered now.
    in_flight: u32,
    /// The most requests in flight with a failing one, after `outage_after` 5xx
    /// answers.
    most_in_outage: u32,
    /// The accepted bodies, per idempotency key.
    bodies: HashMap<String, serde_json::Value>,
}

/// The shared state of the foreign service's handlers.
#[derive(Clone)]
struct Shared {
    seen: Arc<Mutex<Seen>>,
    answer: Answer,
    /// How long each answer takes.
    delay: Duration,
    /// After this many 5xx answers, `most_in_outage` is measured.
    outage_after: u32,
    /// Bodies longer than this are refused with 413.
    max_body: usize,
}

impl Shared {
    fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts the request, decides the answer, waits `delay`, answers; `accepted`
    /// runs on a 2xx answer.
    async fn answer(&self, ticket_id: &str, accepted: impl FnOnce(&mut Seen)) -> Response {
        let (status, body) = {
            let mut seen = self.seen();
            *seen.requests.entry(ticket_id.to_owned()).or_default() += 1;
            let next = seen.numbers.len() as u64 + 1;
            let number = *seen.numbers.entry(ticket_id.to_owned()).or_insert(next);
            seen.in_flight += 1;
            let (status, body) = (self.answer)(ticket_id, number);
            seen.outage_overlap(status, self.outage_after);
            (status, body)
        };
        tokio::time::sleep(self.delay).await;
        let mut seen = self.seen();
        seen.outage_overlap(status, self.outage_after);
        seen.in_flight -= 1;
        if status.is_success() {
            accepted(&mut seen);
        } else if status.is_server_error() {
            seen.failed += 1;
        }
        (status, [(CONTENT_TYPE, "application/json")], body).into_response()
    }
}

impl Seen {
    /// When a request that fails (`status`) arrives or is answered, after
    /// `outage_after` failures: how many requests are in flight with it.
    fn outage_overlap(&mut self, status: StatusCode, outage_after: u32) {
        if status.is_server_error() && self.failed >= outage_after {
            self.most_in_outage = self.most_in_outage.max(self.in_flight);
        }
    }
}

/// 413 for a body over the service's limit, as a web server in front of it would.
fn too_large(shared: &Shared, body: &Bytes) -> Option<Response> {
    (body.len() > shared.max_body).then(|| {
        let text = format!(r#"{{"error":"body over {} bytes"}}"#, shared.max_body);
        (StatusCode::PAYLOAD_TOO_LARGE, [(CONTENT_TYPE, "application/json")], text).into_response()
    })
}

fn keep_body(seen: &mut Seen, headers: &HeaderMap, body: &Bytes) {
    let key = headers
        .get(crate::tickets::client::IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    seen.bodies.insert(key, serde_json::from_slice(body).unwrap_or_default());
}

async fn create(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = too_large(&shared, &body) {
        return refused;
    }
    let ticket_id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("ticket_id").and_then(|id| id.as_str()).map(str::to_owned))
        .unwrap_or_default();
    let id = ticket_id.clone();
    shared
        .answer(&ticket_id, move |seen| {
            seen.created.insert(id);
            keep_body(seen, &headers, &body);
        })
        .await
}

async fn add_event(
    State(shared): State<Shared>,
    Path(ticket_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = too_large(&shared, &body) {
        return refused;
    }
    if !shared.seen().created.contains(&ticket_id) {
        let body = r#"{"error":"no such ticket"}"#;
        return (StatusCode::NOT_FOUND, [(CONTENT_TYPE, "application/json")], body).into_response();
    }
    let key = headers
        .get(crate::tickets::client::IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let id = ticket_id.clone();
    shared
        .answer(&ticket_id, move |seen| {
            keep_body(seen, &headers, &body);
            seen.events.entry(id).or_default().push(key);
        })
        .await
}

/// A foreign ticketing system on 127.0.0.1.
struct Foreign {
    url: String,
    shared: Shared,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Foreign {
    async fn start(answer: Answer) -> anyhow::Result<Self> {
        Self::start_with(answer, Duration::ZERO, u32::MAX, usize::MAX).await
    }

    async fn start_with(
        answer: Answer,
        delay: Duration,
        outage_after: u32,
        max_body: usize,
    ) -> anyhow::Result<Self> {
        let shared = Shared { seen: Arc::default(), answer, delay, outage_after, max_body };
        let app = Router::new()
            .route("/api/v1/tickets", post(create))
            .route("/api/v1/tickets/{ticket_id}/events", post(add_event))
            .route("/api/v1/tickets/{ticket_id}", axum::routing::get(closed))
            .with_state(shared.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Self { url, shared, stop, task })
    }

    fn client(&self) -> anyhow::Result<CentralClient> {
        Ok(CentralClient::new(&self.url, TOKEN, Duration::from_secs(5))?)
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        self.shared.seen()
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(5), self.task).await???;
        Ok(())
    }
}

/// `GET /api/v1/tickets/{id}`: every ticket reads back closed, with the number the
/// service gave it (for the sync).
async fn closed(State(shared): State<Shared>, Path(ticket_id): Path<String>) -> Response {
    let number = shared.seen().numbers.get(&ticket_id).copied();
    let Some(number) = number else { return StatusCode::NOT_FOUND.into_response() };
    let body = serde_json::json!({
        "ticket_id": ticket_id, "number": number, "status": "closed",
        "closed_at": "2026-11-23T15:30:00+08:00", "resolution": "done",
    });
    ([(CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// `count` tickets `swh-01`…, each opened and then recovered, queued in that order.
fn tickets_with_events(count: usize) -> anyhow::Result<Vec<OutboxEntry>> {
    let mut entries = Vec::new();
    for n in 1..=count {
        entries.push(open(fault(&format!("swh-{n:02}"), 2)?));
    }
    for n in 1..=count {
        entries.push(event(&format!("swh-{n:02}"), "recovered", EventKind::Recovered)?);
    }
    Ok(entries)
}

fn ticket_id(device: &str) -> String {
    format!("huaihai-138/{device}/tank_leak/1")
}

/// Most ticketing systems number their tickets with integers: `"number": 17`.
#[tokio::test]
async fn integer_ticket_numbers_are_accepted() -> anyhow::Result<()> {
    let foreign = Foreign::start(Arc::new(|ticket_id, number| {
        (
            StatusCode::CREATED,
            serde_json::json!({"ticket_id": ticket_id, "number": number}).to_string(),
        )
    }))
    .await?;
    let agent = Agent::new()?;
    let entries = tickets_with_events(35)?;
    agent.queue(&entries)?;
    let running = Running::start(&agent.store, foreign.client()?, fast());
    eventually("all 35 tickets and their events are delivered", || {
        agent.store.outbox_len() == 0 && running.status.snapshot().sent == 70
    })
    .await?;
    let held = agent.store.open_tickets()?;
    assert_eq!(held.len(), 35);
    {
        let seen = foreign.seen();
        for (ticket_id, ticket) in &held {
            let number = seen.numbers.get(ticket_id).map(u64::to_string);
            assert_eq!(ticket.number, number, "{ticket_id}: the number, as decimal text");
            assert_eq!(seen.requests.get(ticket_id), Some(&2), "{ticket_id}: sent once each");
            assert_eq!(seen.events.get(ticket_id).map(Vec::len), Some(1), "{ticket_id}");
        }
    }
    let status = running.status.snapshot();
    assert_eq!((status.retried, status.dead_lettered), (0, 0), "{status:?}");
    running.stop().await?;
    foreign.stop().await
}

/// A service that accepts the request but answers with something else than
/// `{"ticket_id", "number"}`: an empty body, HTML, JSON of its own shape, a number
/// that is neither a string nor an integer.
#[tokio::test]
async fn a_2xx_with_an_unreadable_body_is_delivered_not_retried() -> anyhow::Result<()> {
    let foreign = Foreign::start(Arc::new(|ticket_id, number| {
        let body = match number % 4 {
            0 => String::new(),
            1 => "<html><body>Ticket created</body></html>".into(),
            2 => serde_json::json!({"id": number, "ok": true}).to_string(),
            _ => serde_json::json!({"ticket_id": ticket_id, "number": 1.5}).to_string(),
        };
        let status = if number % 2 == 0 { StatusCode::OK } else { StatusCode::CREATED };
        (status, body)
    }))
    .await?;
    let agent = Agent::new()?;
    agent.queue(&tickets_with_events(12)?)?;
    let running = Running::start(&agent.store, foreign.client()?, fast());
    eventually("everything is delivered", || {
        agent.store.outbox_len() == 0 && running.status.snapshot().sent == 24
    })
    .await?;
    {
        let seen = foreign.seen();
        assert_eq!(seen.requests.len(), 12);
        for (ticket_id, requests) in &seen.requests {
            assert_eq!(*requests, 2, "{ticket_id}: one create and one event, each sent once");
        }
    }
    let held = agent.store.open_tickets()?;
    assert!(held.values().all(|t| t.number.is_none()), "no number could be read: {held:?}");
    let status = running.status.snapshot();
    assert_eq!((status.retried, status.dead_lettered), (0, 0), "{status:?}");
    running.stop().await?;
    assert!(agent.store.dead_letters()?.is_empty());
    foreign.stop().await
}

/// A service that fails every request about one ticket (a 500 with an HTML page):
/// the other tickets, and their events, still go out.
#[tokio::test]
async fn one_failing_ticket_does_not_hold_back_the_others() -> anyhow::Result<()> {
    let bad = ticket_id("swh-03");
    let poisoned = bad.clone();
    let foreign = Foreign::start(Arc::new(move |ticket_id, number| {
        if ticket_id == poisoned {
            let page = "<html><body><h1>500 Internal Server Error</h1></body></html>";
            (StatusCode::INTERNAL_SERVER_ERROR, page.into())
        } else {
            // String numbers: only the failing ticket is foreign here.
            let body = serde_json::json!({"ticket_id": ticket_id, "number": format!("F-{number}")});
            (StatusCode::CREATED, body.to_string())
        }
    }))
    .await?;
    let agent = Agent::new()?;
    agent.queue(&tickets_with_events(35)?)?;
    let running = Running::start(&agent.store, foreign.client()?, fast());
    eventually("all but the failing ticket are delivered", || {
        agent.store.outbox_len() == 2 && running.status.snapshot().sent == 68
    })
    .await?;
    eventually("the failing ticket is retried", || {
        foreign.seen().requests.get(&bad).is_some_and(|n| *n >= 3)
    })
    .await?;
    running.stop().await?;
    {
        let seen = foreign.seen();
        for n in 1..=35 {
            let id = ticket_id(&format!("swh-{n:02}"));
            if id == bad {
                assert!(!seen.created.contains(&id));
                assert!(!seen.events.contains_key(&id), "its event waits for its creation");
            } else {
                assert!(seen.created.contains(&id), "{id}");
                assert_eq!(seen.events.get(&id).map(Vec::len), Some(1), "{id}");
            }
        }
    }
    // Still queued, in order: the creation, then the event.
    let left = agent.store.outbox(10)?;
    let kinds: Vec<_> =
        left.iter().map(|(_, e)| (e.ticket_id().to_owned(), e.key.clone())).collect();
    assert_eq!(kinds, [(bad.clone(), bad.clone()), (bad.clone(), format!("{bad}/recovered"))]);
    assert!(agent.store.dead_letters()?.is_empty());
    foreign.stop().await
}

/// The probe rule still holds for a service that is really down: once failures
/// came from several tickets, one request at a time goes out until one succeeds.
#[tokio::test]
async fn an_outage_is_probed_one_request_at_a_time() -> anyhow::Result<()> {
    let down = Arc::new(AtomicBool::new(true));
    let is_down = Arc::clone(&down);
    let config = DispatcherConfig { batch: 64, in_flight: 4, ..fast() };
    let foreign = Foreign::start_with(
        Arc::new(move |ticket_id, number| {
            if is_down.load(Ordering::SeqCst) {
                (StatusCode::SERVICE_UNAVAILABLE, "<html>down for maintenance</html>".into())
            } else {
                let number = format!("F-{number}");
                let body = serde_json::json!({"ticket_id": ticket_id, "number": number});
                (StatusCode::CREATED, body.to_string())
            }
        }),
        Duration::from_millis(10),
        // The requests in flight when the outage began are left to finish.
        3 * 4,
        usize::MAX,
    )
    .await?;
    let agent = Agent::new()?;
    agent.queue(&tickets_with_events(12)?)?;
    let running = Running::start(&agent.store, foreign.client()?, config);
    eventually("the outage was probed a while", || foreign.seen().failed >= 30).await?;
    down.store(false, Ordering::SeqCst);
    eventually("everything is delivered", || agent.store.outbox_len() == 0).await?;
    running.stop().await?;
    {
        let seen = foreign.seen();
        assert_eq!(seen.most_in_outage, 1, "one probe at a time during the outage");
        assert_eq!(seen.created.len(), 12);
        assert!(seen.events.values().all(|keys| keys.len() == 1), "{:?}", seen.events);
    }
    assert!(agent.store.dead_letters()?.is_empty());
    foreign.stop().await
}

/// A ticket whose creation answer could not be read is still the service's ticket:
/// the sync follows it, and staff closing it ends the episode at the site.
#[tokio::test]
async fn a_ticket_whose_answer_could_not_be_read_is_still_followed_by_the_sync()
-> anyhow::Result<()> {
    use crate::tickets::{SyncConfig, TicketSync};
    let foreign =
        Foreign::start(Arc::new(|_, _| (StatusCode::CREATED, "<html>created</html>".into())))
            .await?;
    let agent = Agent::new()?;
    agent.queue(&[open(fault("swh-01", 2)?)])?;
    let running = Running::start(&agent.store, foreign.client()?, fast());
    eventually("the ticket is delivered", || agent.store.outbox_len() == 0).await?;
    running.stop().await?;
    let held = agent.store.open_tickets()?;
    let t = held.values().next().ok_or_else(|| anyhow::anyhow!("no ticket held"))?;
    assert!(t.delivered && t.number.is_none(), "{t:?}");

    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let config = SyncConfig {
        interval: Duration::from_millis(20),
        backoff: crate::tickets::Backoff::new(Duration::from_millis(1), Duration::from_millis(20)),
    };
    let sync = TicketSync::new(agent.store.clone(), foreign.client()?, tx, config);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(sync.run(async move {
        let _ = stopped.await;
    }));
    let got = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await?;
    let got = got.ok_or_else(|| anyhow::anyhow!("the sync ended"))?;
    assert_eq!(got.ticket_id, ticket_id("swh-01"));
    assert_eq!(got.resolution.as_deref(), Some("done"));
    let _ = stop.send(());
    task.await?;
    foreign.stop().await
}

/// A number-answering service.
fn numbering() -> Answer {
    Arc::new(|ticket_id, number| {
        (
            StatusCode::CREATED,
            serde_json::json!({"ticket_id": ticket_id, "number": number.to_string()}).to_string(),
        )
    })
}

/// Issue 15, finding 8: a ticket the service refused as too large (413: a plugin's
/// long description, an event's long note) went to the dead letters, lost to the
/// desk. It now goes again at once with its texts and lists cut, counted and
/// reported; only what is still too large when cut is dead-lettered.
#[tokio::test]
async fn a_ticket_too_large_for_the_service_is_sent_cut_not_dropped() -> anyhow::Result<()> {
    let foreign = Foreign::start_with(numbering(), Duration::ZERO, u32::MAX, 8 << 10).await?;
    let agent = Agent::new()?;
    let mut ticket = fault("swh-01", 2)?;
    ticket.description = Some("The plugin explains at length. ".repeat(4_000));
    let mut note = event("swh-01", "recovered", EventKind::Recovered)?;
    if let Request::Event { event, .. } = &mut note.request {
        event.note = Some("n".repeat(100_000));
    }
    agent.queue(&[open(ticket), note, open(fault("swh-02", 3)?)])?;
    let running = Running::start(&agent.store, foreign.client()?, fast());
    eventually("the ticket and its event are delivered", || {
        agent.store.outbox_len() == 0 && running.status.snapshot().sent == 3
    })
    .await?;
    let status = running.status.snapshot();
    assert_eq!((status.cut_to_fit, status.dead_lettered), (2, 0), "{status:?}");
    assert!(status.last_error.as_deref().is_some_and(|e| e.contains("too large")), "{status:?}");
    {
        let seen = foreign.seen();
        let opened = &seen.bodies[&ticket_id("swh-01")];
        let description = opened["description"].as_str().unwrap_or_default();
        assert!(description.ends_with(" [cut]") && description.len() < 4096, "{opened}");
        assert_eq!(opened["code"], "tank_leak");
        assert_eq!(opened["severity"], 2);
        let recovered = &seen.bodies[&format!("{}/recovered", ticket_id("swh-01"))];
        assert!(recovered["note"].as_str().is_some_and(|n| n.ends_with(" [cut]")), "{recovered}");
        assert!(seen.bodies[&ticket_id("swh-02")].get("description").is_none(), "small: uncut");
    }
    running.stop().await?;
    assert!(agent.store.dead_letters()?.is_empty());
    foreign.stop().await
}

/// What the service refuses even cut is dead-lettered (with the 413 named), and the
/// other tickets go on.
#[tokio::test]
async fn a_ticket_too_large_even_cut_is_dead_lettered_with_the_reason() -> anyhow::Result<()> {
    let foreign = Foreign::start_with(numbering(), Duration::ZERO, u32::MAX, 900).await?;
    let agent = Agent::new()?;
    let mut big = fault("swh-01", 2)?;
    big.description = Some("x".repeat(50_000));
    agent.queue(&[open(big), open(fault("swh-02", 3)?)])?;
    let running = Running::start(&agent.store, foreign.client()?, fast());
    eventually("one delivered, one dead-lettered", || {
        let s = running.status.snapshot();
        s.sent == 1 && s.dead_lettered == 1
    })
    .await?;
    running.stop().await?;
    let letters = agent.store.dead_letters()?;
    assert_eq!(letters.len(), 1);
    assert!(letters[0].reason.starts_with("413"), "{:?}", letters[0].reason);
    foreign.stop().await
}
