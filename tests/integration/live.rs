//! `tend run` end to end: a real Mosquitto, the real central service (in process), the
//! real `tend` binary with the real wasm plugins; fixture traces published with QoS 1.

use std::time::{Duration, Instant};

use tend_tests::mosquitto::Mosquitto;

use super::harness::{
    Agent, Central, DeviceTrace, Site, TOKEN, WAIT, device_traces, expect_tickets, publish,
    terminate,
};

/// The test site's three devices, a fixture trace each.
fn fixture_traces() -> Vec<DeviceTrace> {
    device_traces(1)
}

/// Every trace line as (topic, payload bytes), trace by trace.
fn trace_messages() -> Vec<Vec<(String, Vec<u8>)>> {
    fixture_traces().into_iter().map(|t| t.messages).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_tickets_arrive_exactly_once() {
    let mosquitto = Mosquitto::start();
    let central = Central::start_temp().await.unwrap();
    let site = Site::new(mosquitto.port, &central.url);
    let mut agent = Agent(Some(site.start_agent(1)));
    site.wait_subscribed().await;
    let api = site.api_url();
    let status: serde_json::Value =
        reqwest::get(format!("{api}/status")).await.unwrap().json().await.unwrap();
    assert_eq!(status["site"], "test-site");
    assert_eq!(status["mqtt_ready"], true);
    for (i, trace) in trace_messages().iter().enumerate() {
        publish(mosquitto.port, &format!("publisher-{i}"), trace).await;
    }
    expect_tickets(&central, &site, &fixture_traces()).await;
    // The status API tells the same story: everything processed and delivered.
    let published: usize = trace_messages().iter().map(Vec::len).sum();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        let s: serde_json::Value =
            reqwest::get(format!("{api}/status")).await.unwrap().json().await.unwrap();
        if s["pipeline"]["messages"] == published && s["outbox"] == 0 {
            break s;
        }
        assert!(Instant::now() < deadline, "status never caught up: {s:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["health"], "ok", "{status:#}");
    assert_eq!(status["dispatcher"]["sent"], 7, "3 tickets, 4 events: {status:#}");
    // The three equipment plugins and the test site's deliberately bad one (no device uses it).
    assert_eq!(status["plugins"].as_array().unwrap().len(), 4);
    assert!(status["plugins"].as_array().unwrap().iter().all(|p| p["quarantined"] == false));
    let health = reqwest::get(format!("{api}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    let metrics = reqwest::get(format!("{api}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains(&format!("tend_messages_total {published}")), "{metrics}");
    assert!(metrics.contains("tend_requests_sent_total 7"), "{metrics}");
    // Staff close the tamper ticket at the central service: the agent's sync sees it
    // and ends the episode (the agent holds one ticket fewer).
    assert_eq!(status["open_tickets"], 3, "{status:#}");
    let closed = reqwest::Client::new()
        .post(format!("{}/api/v1/tickets/test-site.door-1.tamper.1/close", central.url))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"resolution": "cover refitted", "closed_at": "2026-11-23T10:00:00+08:00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), 200);
    let deadline = Instant::now() + WAIT;
    loop {
        let s: serde_json::Value =
            reqwest::get(format!("{api}/status")).await.unwrap().json().await.unwrap();
        if s["open_tickets"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the closed ticket was never synced: {s:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metrics.contains("tend_plugin_quarantined{equipment_type=\"av-system\"} 0"),
        "{metrics}"
    );
    let status = terminate(agent.0.as_mut().unwrap());
    agent.0 = None;
    assert!(status.success(), "tend run exited with {status}\n{}", site.logs());
    assert!(site.logs().contains("tend agent running"), "{}", site.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_survives_kill_9_midway() {
    let mosquitto = Mosquitto::start();
    let central = Central::start_temp().await.unwrap();
    let site = Site::new(mosquitto.port, &central.url);
    let traces = trace_messages();
    let mut agent = Agent(Some(site.start_agent(1)));
    // Once subscribed, the agent's persistent session holds what it misses.
    site.wait_subscribed().await;
    for (i, trace) in traces.iter().enumerate() {
        let half = trace.len() / 2;
        publish(mosquitto.port, &format!("publisher-a{i}"), &trace[..half]).await;
    }
    // Midway: the agent is killed without warning, with work possibly in flight.
    let mut child = agent.0.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    for (i, trace) in traces.iter().enumerate() {
        let half = trace.len() / 2;
        publish(mosquitto.port, &format!("publisher-b{i}"), &trace[half..]).await;
    }
    agent.0 = Some(site.start_agent(2));
    expect_tickets(&central, &site, &fixture_traces()).await;
    let status = terminate(agent.0.as_mut().unwrap());
    agent.0 = None;
    assert!(status.success(), "tend run exited with {status}\n{}", site.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_central_down_then_up_delivers_everything_in_order() {
    let mosquitto = Mosquitto::start();
    let port = tend_tests::mosquitto::free_port();
    let site = Site::new(mosquitto.port, &format!("http://127.0.0.1:{port}"));
    let mut agent = Agent(Some(site.start_agent(1)));
    site.wait_subscribed().await;
    let api = site.api_url();
    for (i, trace) in trace_messages().iter().enumerate() {
        publish(mosquitto.port, &format!("publisher-{i}"), trace).await;
    }
    // Nothing listens where the central service should be: everything waits in the
    // outbox, and after repeated failures the status API says the agent is degraded.
    let deadline = Instant::now() + WAIT;
    loop {
        let s: serde_json::Value =
            reqwest::get(format!("{api}/status")).await.unwrap().json().await.unwrap();
        if s["outbox"] == 7 && s["health"] == "degraded" {
            assert!(s["dispatcher"]["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{s:#}");
            assert!(s["dead_letters"].as_array().unwrap().is_empty(), "nothing dropped: {s:#}");
            break;
        }
        assert!(Instant::now() < deadline, "requests never queued: {s:#}\n{}", site.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The service comes up: every ticket arrives once, its events in order.
    let central = Central::start_temp_on(port).await.unwrap();
    expect_tickets(&central, &site, &fixture_traces()).await;
    let status = terminate(agent.0.as_mut().unwrap());
    agent.0 = None;
    assert!(status.success(), "tend run exited with {status}\n{}", site.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_broker_restart_loses_no_message() {
    // A site broker that keeps sessions across restarts (persistence on).
    let mut mosquitto = Mosquitto::start_with(
        |dir, _| format!("persistence true\npersistence_location {}/\n", dir.display()),
        0,
    );
    let central = Central::start_temp().await.unwrap();
    let site = Site::new(mosquitto.port, &central.url);
    let traces = trace_messages();
    let mut agent = Agent(Some(site.start_agent(1)));
    site.wait_subscribed().await;
    let api = site.api_url();
    for (i, trace) in traces.iter().enumerate() {
        publish(mosquitto.port, &format!("publisher-a{i}"), &trace[..trace.len() / 2]).await;
    }
    // The broker restarts; the second halves are published as soon as it is back,
    // while the agent may still be reconnecting: the session holds them.
    mosquitto.stop();
    mosquitto.launch();
    for (i, trace) in traces.iter().enumerate() {
        publish(mosquitto.port, &format!("publisher-b{i}"), &trace[trace.len() / 2..]).await;
    }
    expect_tickets(&central, &site, &fixture_traces()).await;
    let published: usize = traces.iter().map(Vec::len).sum();
    let s: serde_json::Value =
        reqwest::get(format!("{api}/status")).await.unwrap().json().await.unwrap();
    // Messages whose PUBACK was lost with the broker come again; they are recognised
    // and change nothing. Every published message was processed exactly once.
    let p = &s["pipeline"];
    let received = p["messages"].as_u64().unwrap();
    let duplicates = p["duplicates"].as_u64().unwrap();
    assert_eq!(received - duplicates, published as u64, "{s:#}");
    assert!(s["mqtt"]["connects"].as_u64().unwrap() >= 2, "reconnected: {s:#}");
    let status = terminate(agent.0.as_mut().unwrap());
    agent.0 = None;
    assert!(status.success(), "tend run exited with {status}\n{}", site.logs());
}

/// The maintenance desk closes a ticket the way staff do (sign in, then the close
/// form); the agent's sync sees the close and ends the episode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_close_on_the_desk_ends_the_agents_episode() {
    let mosquitto = Mosquitto::start();
    let central = Central::start_temp().await.unwrap();
    let site = Site::new(mosquitto.port, &central.url);
    let mut agent = Agent(Some(site.start_agent(1)));
    site.wait_subscribed().await;
    let api = site.api_url();
    for (i, trace) in trace_messages().iter().enumerate() {
        publish(mosquitto.port, &format!("publisher-{i}"), trace).await;
    }
    expect_tickets(&central, &site, &fixture_traces()).await;
    let open_tickets = || async {
        let s: serde_json::Value =
            reqwest::get(format!("{api}/status")).await.unwrap().json().await.unwrap();
        s["open_tickets"].as_u64().unwrap()
    };
    let deadline = Instant::now() + WAIT;
    while open_tickets().await != 3 {
        assert!(Instant::now() < deadline, "the agent never held 3 tickets\n{}", site.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Staff sign in to the desk (the desk token defaults to the service token) and
    // close the tamper ticket with the form.
    let browser =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signed_in = browser
        .post(format!("{}/desk/login", central.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}&next=%2Fdesk"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie =
        signed_in.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let ticket = "test-site.door-1.tamper.1";
    let closed = browser
        .post(format!("{}/desk/tickets/{ticket}/close", central.url))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("resolution=Cover+refitted%2C+switch+tested")
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), 303, "{:?}", closed.text().await);
    let record =
        central.tickets().await.into_iter().find(|t| t.ticket.ticket_id == ticket).unwrap();
    assert_eq!(record.resolution.as_deref(), Some("Cover refitted, switch tested"));
    let closed_at = record.closed_at.unwrap();

    // The agent's sync reads the close: it holds one ticket fewer and logs the
    // close with the desk's closed_at.
    let deadline = Instant::now() + WAIT;
    while open_tickets().await != 2 {
        assert!(
            Instant::now() < deadline,
            "the desk's close never reached the agent\n{}",
            site.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = site.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("ticket closed by staff") && l.contains(ticket))
        .unwrap_or_else(|| panic!("no close logged\n{logs}"));
    let logged: serde_json::Value = serde_json::from_str(line).unwrap();
    let logged: jiff::Timestamp = logged["fields"]["closed_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(logged, closed_at.timestamp(), "{line}");
    let status = terminate(agent.0.as_mut().unwrap());
    agent.0 = None;
    assert!(status.success(), "tend run exited with {status}\n{}", site.logs());
}
