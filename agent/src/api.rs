//! The local status API (`[api]`): `GET /health`, `GET /status` (JSON) and
//! `GET /metrics` (Prometheus text); for site staff's commands (`crate::local`),
//! `GET /archive[?device=ID]`, `POST /inspections/complete` and `POST /maintenance`.
//! Binds to loopback
//! by default: whoever can reach it is on the agent's machine.
//!
//! A web page in a browser on that machine can reach it too, so:
//! - every request's `Host` must be an IP address or `localhost` (a DNS-rebinding
//!   page has a name of its own), and an `Origin`, when sent, must be the API's own
//!   (`http://{Host}`): other pages are refused with 403;
//! - a state-changing request (`POST`) needs `Content-Type: application/json` (415
//!   otherwise: a form or `text/plain` post is not taken) and the local token
//!   (`Authorization: Bearer …`, 401 otherwise). The agent writes a fresh token at
//!   every start to `{store.data_dir}/api-token`, readable only by its own user
//!   ([`crate::local::write_token`]); the `tend` commands read it from there.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::ingest::MqttMonitor;
use crate::local::{Completion, LocalCommand, TOKEN_FILE};
use crate::pipeline::{Counters, PluginReport};
use crate::store::{DeadLetter, Store};
use crate::tickets::DispatcherStatus;

/// What the pipeline thread publishes after each commit.
#[derive(Debug, Clone, Default)]
pub struct PipelineSnapshot {
    /// The pipeline's counters.
    pub counters: Counters,
    /// The plugins' health.
    pub plugins: Vec<PluginReport>,
}

/// Everything the API reads.
#[derive(Clone)]
pub struct Sources {
    /// Site name.
    pub site: String,
    /// When the agent started.
    pub started: Instant,
    /// The pipeline's latest snapshot.
    pub pipeline: Arc<Mutex<PipelineSnapshot>>,
    /// The MQTT ingest.
    pub mqtt: MqttMonitor,
    /// The outbox dispatcher.
    pub dispatcher: DispatcherStatus,
    /// The store (outbox length, dead letters, open tickets).
    pub store: Store,
    /// The pipeline thread's command queue (archive, local completions).
    pub commands: Option<tokio::sync::mpsc::Sender<LocalCommand>>,
    /// The local token state-changing requests must carry ([`crate::local::write_token`]).
    pub token: Arc<str>,
}

/// Whether a `Host` (or an `Origin`'s host) names this machine by address: an IP
/// literal or `localhost`, with or without a port.
fn local_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => {
            return v6
                .split_once(']')
                .is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok());
        }
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) { name } else { host }
        }),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// Whether a request may reach the routes (the checks of the module docs): `Err`
/// with the status and message to answer otherwise. Pure; the fuzz target
/// `local_api` drives it.
pub fn admit(
    method: &Method,
    headers: &HeaderMap,
    token: &str,
) -> Result<(), (StatusCode, String)> {
    let text = |name: header::HeaderName| {
        headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}").to_owned())
    };
    let host = text(header::HOST).unwrap_or_default();
    if !local_host(&host) {
        return Err((StatusCode::FORBIDDEN, format!("refused: Host `{host}` is not this machine")));
    }
    if let Some(origin) = text(header::ORIGIN)
        && origin != format!("http://{host}")
    {
        return Err((
            StatusCode::FORBIDDEN,
            format!("refused: requests from {origin} are not taken"),
        ));
    }
    if method != Method::GET && method != Method::HEAD {
        let json = text(header::CONTENT_TYPE).is_some_and(|c| {
            c.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
        if !json {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as application/json".into(),
            ));
        }
        let given = text(header::AUTHORIZATION);
        let given = given.as_deref().and_then(|a| a.strip_prefix("Bearer ")).unwrap_or("");
        if !bool::from(subtle::ConstantTimeEq::ct_eq(given.as_bytes(), token.as_bytes())) {
            return Err((
                StatusCode::UNAUTHORIZED,
                format!(
                    "the local token is required (`{TOKEN_FILE}` in the agent's data directory)"
                ),
            ));
        }
    }
    Ok(())
}

/// [`admit`] before any route runs.
async fn guard(
    State(token): State<Arc<str>>,
    request: Request,
    next: Next,
) -> axum::response::Response {
    match admit(request.method(), request.headers(), &token) {
        Ok(()) => next.run(request).await,
        Err((code, message)) => error(code, message),
    }
}

/// The `/status` body.
#[derive(Debug, Serialize)]
pub struct Status {
    /// Site name.
    pub site: String,
    /// Seconds since start.
    pub uptime_s: u64,
    /// "ok", or "degraded" when the broker is not connected, a plugin is quarantined,
    /// requests were dead-lettered or the central service keeps failing.
    pub health: &'static str,
    /// Connected and subscribed.
    pub mqtt_ready: bool,
    /// The ingest's counters.
    pub mqtt: crate::ingest::MqttStats,
    /// The pipeline's counters.
    pub pipeline: Counters,
    /// Plugins.
    pub plugins: Vec<PluginReport>,
    /// The dispatcher.
    pub dispatcher: crate::tickets::dispatcher::DispatcherSnapshot,
    /// Requests waiting for the central service.
    pub outbox: usize,
    /// Tickets the agent holds open.
    pub open_tickets: usize,
    /// Requests the central service refused for good, with the reason.
    pub dead_letters: Vec<DeadLetter>,
}

impl Sources {
    fn status(&self) -> Status {
        let snap = self.pipeline.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let dispatcher = self.dispatcher.snapshot();
        let dead_letters = self.store.dead_letters().unwrap_or_default();
        let mqtt_ready = self.mqtt.is_ready();
        let degraded = !mqtt_ready
            || snap.plugins.iter().any(|p| p.quarantined)
            || !dead_letters.is_empty()
            || dispatcher.consecutive_failures >= 3;
        Status {
            site: self.site.clone(),
            uptime_s: self.started.elapsed().as_secs(),
            health: if degraded { "degraded" } else { "ok" },
            mqtt_ready,
            mqtt: self.mqtt.stats(),
            pipeline: snap.counters,
            plugins: snap.plugins,
            dispatcher,
            outbox: self.store.outbox_len(),
            open_tickets: self.store.open_tickets().map(|t| t.len()).unwrap_or(0),
            dead_letters,
        }
    }
}

/// The API's routes, behind the checks of the module docs.
pub fn router(sources: Sources) -> Router {
    let token = Arc::clone(&sources.token);
    Router::new()
        .route("/health", get(health))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/archive", get(archive))
        .route("/inspections/complete", post(complete))
        .route("/maintenance", post(maintenance))
        .with_state(sources)
        .layer(axum::middleware::from_fn_with_state(token, guard))
}

/// Serves the API until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    sources: Sources,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(sources)).with_graceful_shutdown(shutdown).await
}

async fn health(State(s): State<Sources>) -> impl IntoResponse {
    let st = s.status();
    let code = if st.health == "ok" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, axum::Json(serde_json::json!({ "health": st.health, "mqtt_ready": st.mqtt_ready })))
}

fn error(code: StatusCode, message: impl std::fmt::Display) -> axum::response::Response {
    (code, axum::Json(serde_json::json!({ "error": message.to_string() }))).into_response()
}

/// Sends a command to the pipeline thread and waits for its answer.
async fn ask<T>(
    s: &Sources,
    make: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> LocalCommand,
) -> Result<T, axum::response::Response> {
    let unavailable = || error(StatusCode::SERVICE_UNAVAILABLE, "the pipeline is not running");
    let Some(commands) = &s.commands else { return Err(unavailable()) };
    let (tx, rx) = tokio::sync::oneshot::channel();
    commands.send(make(tx)).await.map_err(|_| unavailable())?;
    rx.await.map_err(|_| unavailable())
}

#[derive(serde::Deserialize)]
struct ArchiveQuery {
    device: Option<String>,
}

async fn archive(
    State(s): State<Sources>,
    axum::extract::Query(q): axum::extract::Query<ArchiveQuery>,
) -> axum::response::Response {
    match ask(&s, |reply| LocalCommand::Archive { device: q.device, reply }).await {
        Ok(Ok(a)) => axum::Json(a).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(r) => r,
    }
}

async fn complete(State(s): State<Sources>, body: axum::body::Bytes) -> axum::response::Response {
    let completion: Completion = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid completion: {e}")),
    };
    match ask(&s, |reply| LocalCommand::Complete { completion, reply }).await {
        Ok(Ok(queued)) => axum::Json(serde_json::json!({ "queued": queued })).into_response(),
        Ok(Err(e)) if e.bad_request => error(StatusCode::UNPROCESSABLE_ENTITY, e),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(r) => r,
    }
}

async fn maintenance(
    State(s): State<Sources>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let request: crate::local::MaintenanceRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, format!("invalid maintenance request: {e}"));
        }
    };
    match ask(&s, |reply| LocalCommand::Maintenance { request, reply }).await {
        Ok(Ok(done)) => axum::Json(done).into_response(),
        Ok(Err(e)) if e.bad_request => error(StatusCode::UNPROCESSABLE_ENTITY, e),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(r) => r,
    }
}

async fn status(State(s): State<Sources>) -> impl IntoResponse {
    axum::Json(s.status())
}

async fn metrics(State(s): State<Sources>) -> impl IntoResponse {
    let st = s.status();
    let mut r = Registry::with_prefix("tend");
    let counter = |r: &mut Registry, name: &str, help: &str, v: u64| {
        let c: Counter = Counter::default();
        c.inc_by(v);
        r.register(name, help, c);
    };
    let gauge = |r: &mut Registry, name: &str, help: &str, v: i64| {
        let g: Gauge = Gauge::default();
        g.set(v);
        r.register(name, help, g);
    };
    let p = st.pipeline;
    counter(&mut r, "messages", "Messages processed", p.messages);
    counter(&mut r, "messages_bad_topic", "Topics rejected", p.bad_topic);
    counter(
        &mut r,
        "messages_unknown_device",
        "Messages from devices not in the inventory",
        p.unknown_device,
    );
    counter(
        &mut r,
        "messages_invalid",
        "Payloads without a usable ts or rejected by the plugin",
        p.invalid,
    );
    counter(
        &mut r,
        "messages_future",
        "Readings whose ts was more than ingest.max_clock_skew ahead of arrival (also in messages_invalid)",
        p.future,
    );
    counter(&mut r, "messages_duplicate", "Redelivered messages skipped", p.duplicates);
    counter(&mut r, "plugin_failures", "Plugin calls that failed", p.plugin_failures);
    counter(&mut r, "requests_queued", "Requests queued for the central service", p.requests);
    counter(
        &mut r,
        "site_outages",
        "Site outages opened (one site_outage ticket each)",
        p.site_outages,
    );
    gauge(
        &mut r,
        "site_outage_devices",
        "Devices in the site outage going on (0: none)",
        p.outage_devices as i64,
    );
    gauge(
        &mut r,
        "devices_under_maintenance",
        "Devices under maintenance (declared or an inspection in progress)",
        p.under_maintenance as i64,
    );
    counter(
        &mut r,
        "conditions_suppressed",
        "Conditions that became active under maintenance (no ticket then)",
        p.suppressed,
    );
    counter(
        &mut r,
        "requests_sent",
        "Requests delivered to the central service",
        st.dispatcher.sent,
    );
    counter(&mut r, "requests_retried", "Deliveries retried", st.dispatcher.retried);
    counter(
        &mut r,
        "requests_dead_lettered",
        "Requests refused for good",
        st.dispatcher.dead_lettered,
    );
    counter(
        &mut r,
        "requests_cut_to_fit",
        "Requests refused as too large (413) and sent again cut",
        st.dispatcher.cut_to_fit,
    );
    counter(&mut r, "mqtt_connects", "Broker connections", st.mqtt.connects);
    counter(&mut r, "mqtt_acks", "PUBACKs sent", st.mqtt.acks_sent);
    gauge(&mut r, "mqtt_ready", "Connected and subscribed", i64::from(st.mqtt_ready));
    gauge(&mut r, "outbox", "Requests waiting for the central service", st.outbox as i64);
    gauge(&mut r, "open_tickets", "Tickets held open", st.open_tickets as i64);
    gauge(&mut r, "uptime_seconds", "Seconds since start", st.uptime_s as i64);
    let quarantined = Family::<Vec<(String, String)>, Gauge>::default();
    let state_bytes = Family::<Vec<(String, String)>, Gauge>::default();
    for pl in &st.plugins {
        let labels = vec![("equipment_type".to_owned(), pl.equipment_type.clone())];
        quarantined.get_or_create(&labels).set(i64::from(pl.quarantined));
        state_bytes.get_or_create(&labels).set(i64::try_from(pl.state_bytes).unwrap_or(i64::MAX));
    }
    r.register("plugin_quarantined", "1 when the plugin is quarantined", quarantined);
    r.register(
        "plugin_state_bytes",
        "Plugin state held across the plugin's devices (budget: plugins.state_budget_mib)",
        state_bytes,
    );
    let mut body = String::new();
    if encode(&mut body, &r).is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics").into_response();
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
        .into_response()
}
