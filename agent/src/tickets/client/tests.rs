//! The client against the real reference service.

use std::time::Duration;

use axum::http::StatusCode;

use super::*;
use crate::tickets::model::{Device, EventKind, Status, TicketKind, WireTime};
use tend_central::testing::{TOKEN, TestServer};

fn time(text: &str) -> anyhow::Result<WireTime> {
    Ok(WireTime::parse(text)?)
}

fn ticket(ticket_id: &str) -> anyhow::Result<NewTicket> {
    Ok(NewTicket {
        ticket_id: ticket_id.into(),
        kind: TicketKind::Fault,
        site: "huaihai-138".into(),
        device: Device {
            id: "swh-roof-01".into(),
            device_type: "solar-water-heater".into(),
            model: Some("SWH-300".into()),
            serial: None,
            location: None,
        },
        code: "tank_leak".into(),
        severity: Some(2),
        title: "Tank level falling with no draw".into(),
        description: None,
        opened_at: time("2026-11-22T10:04:00+08:00")?,
        sla: None,
        coverage: None,
        diagnosis: None,
        checklist: vec![],
        due_at: None,
        evidence: vec![],
        occurrence: Some(1),
        replacement_recommended: false,
    })
}

fn client(server: &TestServer, token: &str) -> anyhow::Result<CentralClient> {
    Ok(CentralClient::new(&server.url, token, Duration::from_secs(5))?)
}

#[tokio::test]
async fn open_event_get_close() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let central = client(&server, TOKEN)?;
    // A ticket id with a slash, a space and non-ASCII travels as one path segment.
    let id = "huaihai-138/swh-roof-01/tank leak/1 水";
    let created = central.open(&ticket(id)?, "huaihai-138/swh-roof-01/tank_leak/1").await?;
    assert_eq!(
        created,
        Accepted::Read(Created { ticket_id: id.into(), number: "T-000001".into() })
    );
    let again = central.open(&ticket(id)?, "huaihai-138/swh-roof-01/tank_leak/1").await?;
    assert_eq!(again, created);

    let event = TicketEvent {
        kind: EventKind::Escalated { severity: 1 },
        at: time("2026-11-22T10:14:00+08:00")?,
        note: None,
    };
    assert_eq!(central.event(id, &event, "esc-1 水").await?, created);
    assert_eq!(central.event(id, &event, "esc-1 水").await?, created);

    let status = central.get(id).await?;
    assert_eq!((status.status, status.number.as_str()), (Status::Open, "T-000001"));
    assert_eq!(central.acknowledge(id).await?.read()?.status, Status::Acknowledged);
    let close = CloseRequest {
        resolution: "Gasket replaced".into(),
        closed_at: time("2026-11-22T15:00:00+08:00")?,
    };
    let closed = central.close(id, &close).await?.read()?;
    assert_eq!(closed.status, Status::Closed);
    assert_eq!(central.get(id).await?.closed_at, Some(close.closed_at));

    let http = reqwest::Client::new();
    let list: tend_central::TicketList =
        http.get(server.at("/api/v1/tickets")).bearer_auth(TOKEN).send().await?.json().await?;
    assert_eq!(list.tickets.len(), 1);
    assert_eq!(list.tickets[0].events.len(), 1, "the event key deduplicated");
    assert_eq!(list.tickets[0].events[0].idempotency_key, "esc-1%20%E6%B0%B4");
    server.stop().await
}

#[tokio::test]
async fn failures_are_classified() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let central = client(&server, TOKEN)?;

    let bad_token = client(&server, "wrong")?;
    let error = bad_token.open(&ticket("a")?, "k").await.err();
    assert!(matches!(error, Some(SendError::Unauthorized { status: 401, .. })), "{error:?}");

    let mut invalid = ticket("a")?;
    invalid.severity = Some(9);
    match central.open(&invalid, "k").await {
        Err(SendError::Rejected { status: 422, reason }) => {
            assert!(reason.contains("severity must be 1..=4"), "{reason}");
        }
        other => anyhow::bail!("expected 422, got {other:?}"),
    }
    let error = central.get("nope").await.err();
    assert!(matches!(error, Some(SendError::Rejected { status: 404, .. })), "{error:?}");
    assert_eq!(error.and_then(|e| e.status()), Some(404));
    let event =
        TicketEvent { kind: EventKind::Recovered, at: time("2026-11-22T10:14:00Z")?, note: None };
    let error = central.event("nope", &event, "k").await.err();
    assert!(matches!(error, Some(SendError::Rejected { status: 404, .. })), "{error:?}");

    server.control.fail_next(1, StatusCode::SERVICE_UNAVAILABLE, Some(Duration::from_secs(7)));
    let error = central.open(&ticket("a")?, "k").await.err();
    assert!(
        matches!(&error, Some(SendError::Retry { after: Some(after), .. }) if *after == Duration::from_secs(7)),
        "{error:?}"
    );
    assert!(error.is_some_and(|e| e.is_retryable()));
    server.control.fail_next(1, StatusCode::TOO_MANY_REQUESTS, Some(Duration::from_secs(3)));
    let error = central.get("a").await.err();
    assert!(matches!(error, Some(SendError::Retry { after: Some(_), .. })), "{error:?}");
    server.control.fail_next(1, StatusCode::BAD_GATEWAY, None);
    let error = central.get("a").await.err();
    assert!(matches!(error, Some(SendError::Retry { after: None, .. })), "{error:?}");
    server.control.fail_next(1, StatusCode::FORBIDDEN, None);
    let error = central.get("a").await.err();
    assert!(matches!(error, Some(SendError::Unauthorized { status: 403, .. })), "{error:?}");
    server.control.fail_next(1, StatusCode::CONFLICT, None);
    let error = central.get("a").await.err();
    assert!(matches!(error, Some(SendError::Rejected { status: 409, .. })), "{error:?}");

    // Nothing above created a ticket.
    assert_eq!(central.open(&ticket("a")?, "k").await?.read()?.number, "T-000001");
    server.stop().await
}

#[tokio::test]
async fn a_timeout_is_retried_and_the_retry_finds_the_ticket() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let slow = CentralClient::new(&server.url, TOKEN, Duration::from_millis(200))?;
    server.control.delay_for(Duration::from_secs(60), Duration::from_secs(2));
    match slow.open(&ticket("a")?, "k").await {
        Err(SendError::Retry { after: None, reason }) => {
            assert!(reason.contains("timed out"), "{reason}")
        }
        other => anyhow::bail!("expected a timeout, got {other:?}"),
    }
    server.control.clear();
    // The first request was committed although its answer never came: the retry
    // gets the same ticket, and no second one exists.
    let created = slow.open(&ticket("a")?, "k").await?.read()?;
    assert_eq!(created.number, "T-000001");
    assert_eq!(slow.open(&ticket("b")?, "k2").await?.read()?.number, "T-000002");
    server.stop().await
}

#[tokio::test]
async fn no_server_is_retryable() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    drop(listener);
    let central = CentralClient::new(&format!("http://{addr}/"), TOKEN, Duration::from_secs(2))?;
    match central.get("a").await {
        Err(SendError::Retry { after: None, reason }) => {
            assert!(reason.contains("connect"), "{reason}")
        }
        other => anyhow::bail!("expected a connection error, got {other:?}"),
    }
    Ok(())
}

#[test]
fn urls_keep_the_base_path_and_encode_segments() -> anyhow::Result<()> {
    let central = CentralClient::new("https://central.example/tend/", "t", Duration::from_secs(1))?;
    assert_eq!(
        central.url(Route::Events("a/b c")).as_str(),
        "https://central.example/tend/api/v1/tickets/a%2Fb%20c/events"
    );
    // The path `tend replay` prints is the one the client sends to.
    for route in [Route::Tickets, Route::Events("a/b c"), Route::Close("x?#%"), Route::Ticket("é")]
    {
        assert_eq!(central.url(route).path(), format!("/tend{}", route.path()), "{route:?}");
    }
    let bare = CentralClient::new("http://127.0.0.1:8080", "t", Duration::from_secs(1))?;
    assert_eq!(bare.url(Route::Tickets).as_str(), "http://127.0.0.1:8080/api/v1/tickets");
    for (url, token) in [
        ("ftp://x/", "t"),
        ("not a url", "t"),
        ("mailto:a@b", "t"),
        ("http://x/", ""),
        ("http://x/", "a b"),
    ] {
        assert!(CentralClient::new(url, token, Duration::from_secs(1)).is_err(), "{url} {token:?}");
    }
    Ok(())
}

#[test]
fn retry_after_reads_seconds_and_http_dates() -> anyhow::Result<()> {
    let now: jiff::Timestamp = "2026-11-22T02:00:00Z".parse()?;
    assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
    assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
    assert_eq!(
        parse_retry_after("Sun, 22 Nov 2026 02:00:30 GMT", now),
        Some(Duration::from_secs(30))
    );
    assert_eq!(parse_retry_after("Sun, 22 Nov 2026 01:00:00 GMT", now), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("-5", now), None);
    assert_eq!(parse_retry_after("soon", now), None);
    Ok(())
}

#[test]
fn answers_are_classified_by_status() {
    let retry = |code: u16| {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT);
        classify(status, None, br#"{"error":"why"}"#)
    };
    for code in [500, 502, 503, 504, 429, 408, 302] {
        assert!(retry(code).is_retryable(), "{code}");
    }
    for code in [400, 404, 409, 410, 413, 422] {
        assert!(matches!(retry(code), SendError::Rejected { .. }), "{code}");
    }
    for code in [401, 403] {
        assert!(matches!(retry(code), SendError::Unauthorized { .. }), "{code}");
    }
    assert_eq!(
        retry(422),
        SendError::Rejected { status: 422, reason: "422 Unprocessable Entity: why".into() }
    );
    let html = classify(StatusCode::BAD_REQUEST, None, b"<html>bad</html>");
    assert_eq!(
        html,
        SendError::Rejected { status: 400, reason: "400 Bad Request: <html>bad</html>".into() }
    );
    let empty = classify(StatusCode::NOT_FOUND, None, b"");
    assert_eq!(empty, SendError::Rejected { status: 404, reason: "404 Not Found".into() });
}

#[test]
fn unreadable_answers_say_what_kind_of_problem() {
    let unreadable = |body: &[u8]| {
        let error = serde_json::from_slice::<Created>(body).err();
        error.map(|e| Unreadable::new(StatusCode::CREATED, &e, body))
    };
    let kind = |body: &[u8]| unreadable(body).map(|u| u.kind);
    assert_eq!(kind(b""), Some("empty body"));
    assert_eq!(kind(b"  \n"), Some("empty body"));
    assert_eq!(kind(b"<html>Created</html>"), Some("not JSON"));
    assert_eq!(kind(br#"{"ticket_id":"a","#), Some("not JSON"));
    assert_eq!(kind(br#"{"id":5}"#), Some("unexpected JSON"));
    assert_eq!(kind(br#"{"ticket_id":"a","number":1.5}"#), Some("unexpected JSON"));
    assert_eq!(kind(br#"{"ticket_id":"a","number":15}"#), None, "an integer is a number");
    let long = format!("<html>{}</html>", "x".repeat(5000));
    let problem = unreadable(long.as_bytes());
    assert!(
        problem.as_ref().is_some_and(|p| p.status == 201 && p.detail.len() < 400),
        "{problem:?}"
    );
    let error = SendError::Unreadable(unreadable(b"").unwrap_or_else(|| unreachable!()));
    assert!(!error.is_retryable());
    assert_eq!(error.status(), Some(201));
    assert!(
        error.to_string().contains("answered 201 with a body that cannot be read (empty body)")
    );
}
