//! The desk over real HTTP (no browser; tests/integration/central.rs drives it in
//! headless Chromium): sign-in, the queue's order and filters, escaping, and every
//! way an action can fail without losing anything.

use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::testing::{TOKEN, TestDatabase, TestServer};

/// `application/x-www-form-urlencoded` bodies, the way a browser sends a form
/// (reqwest's own `form` needs a feature the workspace does not enable).
trait Urlencoded {
    fn urlencoded(self, pairs: &[(&str, &str)]) -> Self;
}

impl Urlencoded for reqwest::RequestBuilder {
    fn urlencoded(self, pairs: &[(&str, &str)]) -> Self {
        let body: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", super::page::encode(k), super::page::encode(v)))
            .collect();
        self.header("content-type", "application/x-www-form-urlencoded").body(body.join("&"))
    }
}

/// A fault body: `n` picks the id, `severity` the level, `respond_min` the minutes
/// until (negative: since) the response was due.
fn fault(n: u32, severity: u8, respond_min: i64, site: &str, device_type: &str) -> Value {
    let now = jiff::Timestamp::now();
    let at = |minutes: i64| {
        let t = now + jiff::SignedDuration::from_mins(minutes);
        t.display_with_offset(jiff::tz::Offset::constant(8)).to_string()
    };
    json!({
        "ticket_id": format!("{site}.dev-{n}.code.1"),
        "kind": "fault",
        "site": site,
        "device": {"id": format!("dev-{n}"), "type": device_type, "location": "Roof, block A"},
        "code": "tank_leak",
        "severity": severity,
        "title": format!("Fault number {n}"),
        "opened_at": at(-30),
        "sla": {"respond_by": at(respond_min), "onsite_by": at(respond_min + 240), "resolve_by": at(respond_min + 2880)},
        "coverage": "warranty",
        "evidence": [{"ts": at(-30), "field": "tank_level_pct", "value": 71}],
        "occurrence": 1,
    })
}

async fn open(http: &Client, server: &TestServer, body: &Value) {
    let response = http
        .post(server.at("/api/v1/tickets"))
        .bearer_auth(TOKEN)
        .header("idempotency-key", body["ticket_id"].as_str().unwrap_or_default())
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

/// An HTTP client that does not follow redirects (the tests look at them).
fn browserless() -> Client {
    Client::builder().redirect(Policy::none()).build().unwrap()
}

/// Signs in through the form; answers the `Cookie` header value.
async fn sign_in(http: &Client, server: &TestServer) -> String {
    let response = http
        .post(server.at("/desk/login"))
        .urlencoded(&[("token", TOKEN), ("next", "/desk")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    cookie.split(';').next().unwrap().to_owned()
}

async fn page(
    http: &Client,
    server: &TestServer,
    cookie: &str,
    path: &str,
) -> (StatusCode, String) {
    let response = http.get(server.at(path)).header("cookie", cookie).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

async fn post_form(
    http: &Client,
    server: &TestServer,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    http.post(server.at(path)).header("cookie", cookie).urlencoded(form).send().await.unwrap()
}

async fn api_status(http: &Client, server: &TestServer, ticket_id: &str) -> Value {
    http.get(server.at(&format!("/api/v1/tickets/{ticket_id}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_desk_needs_a_sign_in() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let http = browserless();
    open(&http, &server, &fault(1, 2, 10, "s", "door-controller")).await;

    let root = http.get(server.at("/")).send().await?;
    assert_eq!(
        (root.status(), &root.headers()["location"]),
        (StatusCode::SEE_OTHER, &"/desk".parse()?)
    );
    let desk = http.get(server.at("/desk?site=s")).send().await?;
    assert_eq!(desk.status(), StatusCode::SEE_OTHER);
    assert_eq!(desk.headers()["location"], "/desk/login?next=%2Fdesk%3Fsite%3Ds");
    let login = http.get(server.at("/desk/login?next=%2Fdesk%3Fsite%3Ds")).send().await?;
    assert_eq!(login.status(), StatusCode::OK);
    assert!(login.text().await?.contains(r#"name="next" value="/desk?site=s""#));

    // Wrong token: 401 and the form again; the API token never leaks into a cookie.
    let wrong = http.post(server.at("/desk/login")).urlencoded(&[("token", "nope")]).send().await?;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get("set-cookie").is_none());
    assert!(wrong.text().await?.contains("Wrong user name or password"));
    // An open redirect is not offered.
    let away = http
        .post(server.at("/desk/login"))
        .urlencoded(&[("token", TOKEN), ("next", "https://evil.example/")])
        .send()
        .await?;
    assert_eq!(away.headers()["location"], "/desk");

    // Writes without a sign-in change nothing.
    let close = http
        .post(server.at("/desk/tickets/s.dev-1.code.1/close"))
        .urlencoded(&[("resolution", "done")])
        .send()
        .await?;
    assert_eq!(close.status(), StatusCode::UNAUTHORIZED);
    let forged = post_form(
        &http,
        &server,
        "tend_desk=forged",
        "/desk/tickets/s.dev-1.code.1/acknowledge",
        &[],
    )
    .await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api_status(&http, &server, "s.dev-1.code.1").await["status"], "open");

    let cookie = sign_in(&http, &server).await;
    assert!(!cookie.contains(TOKEN));
    let (status, html) = page(&http, &server, &cookie, "/desk").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Fault number 1"), "{html}");
    // A form posted from another site is refused even with the cookie.
    let foreign = http
        .post(server.at("/desk/tickets/s.dev-1.code.1/acknowledge"))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .send()
        .await?;
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    assert_eq!(api_status(&http, &server, "s.dev-1.code.1").await["status"], "open");
    // Scripts may use the bearer token instead of a cookie.
    let scripted = http.get(server.at("/desk")).bearer_auth(TOKEN).send().await?;
    assert_eq!(scripted.status(), StatusCode::OK);
    assert!(scripted.headers()["content-security-policy"].to_str()?.contains("default-src 'self'"));
    // Signing out clears the cookie.
    let out = post_form(&http, &server, &cookie, "/desk/logout", &[]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(out.headers()["set-cookie"].to_str()?.contains("Max-Age=0"));
    server.stop().await
}

#[tokio::test]
async fn the_queue_is_sorted_by_urgency_and_filtered() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let http = browserless();
    // Opened in this order; urgency is: 3 (overdue), 2 (due in 5 min), 1 (in 1 h,
    // level 1), 4 (in 1 h, level 3), then the inspection (due in 3 days).
    open(&http, &server, &fault(1, 1, 60, "north", "solar-water-heater")).await;
    open(&http, &server, &fault(2, 2, 5, "north", "door-controller")).await;
    open(&http, &server, &fault(3, 4, -20, "south", "av-system")).await;
    open(&http, &server, &fault(4, 3, 60, "south", "door-controller")).await;
    let due = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(72)).to_string();
    let inspection = json!({
        "ticket_id": "north.dev-5.semiannual.1", "kind": "inspection", "site": "north",
        "device": {"id": "dev-5", "type": "door-controller"}, "code": "semiannual",
        "title": "Half-yearly inspection <b>&</b> \"check\" <script>alert(1)</script>",
        "opened_at": "2026-11-22T10:00:00+08:00", "due_at": due,
        "checklist": ["closer <i>force</i>", "hinges"],
    });
    open(&http, &server, &inspection).await;
    let cookie = sign_in(&http, &server).await;

    let (status, html) = page(&http, &server, &cookie, "/desk").await;
    assert_eq!(status, StatusCode::OK);
    let order: Vec<usize> = ["T-000003", "T-000002", "T-000001", "T-000004", "T-000005"]
        .iter()
        .map(|n| html.find(&format!(">{n}<")).unwrap_or_else(|| panic!("{n} missing:\n{html}")))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "not in urgency order: {order:?}\n{html}");
    assert!(html.contains("OVERDUE 20m") || html.contains("OVERDUE 19m"), "{html}");
    assert!(html.contains("1 overdue") || html.contains("<strong>1</strong> overdue"), "{html}");
    // Text from tickets is escaped, never markup.
    assert!(!html.contains("<script>alert(1)</script>"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");

    let shown = |html: &str| -> Vec<String> {
        (1..=5)
            .map(|n| format!("T-00000{n}"))
            .filter(|n| html.contains(&format!(">{n}<")))
            .collect()
    };
    let (_, html) = page(&http, &server, &cookie, "/desk?site=south").await;
    assert_eq!(shown(&html), ["T-000003", "T-000004"]);
    let (_, html) = page(&http, &server, &cookie, "/desk?type=door-controller&kind=fault").await;
    assert_eq!(shown(&html), ["T-000002", "T-000004"]);
    let (_, html) =
        page(&http, &server, &cookie, "/desk?kind=inspection&site=&type=&status=").await;
    assert_eq!(shown(&html), ["T-000005"]);
    let (_, html) = page(&http, &server, &cookie, "/desk?status=closed").await;
    assert!(shown(&html).is_empty() && html.contains("No ticket matches"), "{html}");
    for bad in ["/desk?kind=complaint", "/desk?status=gone", "/desk?colour=red"] {
        let (status, html) = page(&http, &server, &cookie, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(html.contains("filter is not understood"), "{bad}: {html}");
    }

    let (status, html) =
        page(&http, &server, &cookie, "/desk/tickets/north.dev-5.semiannual.1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("closer &lt;i&gt;force&lt;/i&gt;") && !html.contains("<i>force"),
        "{html}"
    );
    let (status, html) = page(&http, &server, &cookie, "/desk/tickets/south.dev-3.code.1").await;
    assert_eq!(status, StatusCode::OK);
    for expected in [
        "Fault number 3",
        "dev-3",
        "Roof, block A",
        "tank_level_pct",
        "warranty",
        "Respond by",
        "Acknowledge",
    ] {
        assert!(html.contains(expected), "{expected:?} missing:\n{html}");
    }
    server.stop().await
}

#[tokio::test]
async fn acknowledging_and_closing_reach_the_api_and_refusals_lose_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let http = browserless();
    open(&http, &server, &fault(1, 2, 10, "s", "door-controller")).await;
    let id = "s.dev-1.code.1";
    let cookie = sign_in(&http, &server).await;
    let base = format!("/desk/tickets/{id}");

    let ack = post_form(&http, &server, &cookie, &format!("{base}/acknowledge"), &[]).await;
    assert_eq!(ack.status(), StatusCode::SEE_OTHER);
    assert_eq!(ack.headers()["location"], format!("{base}?done=acknowledged").as_str());
    assert_eq!(api_status(&http, &server, id).await["status"], "acknowledged");
    let again = post_form(&http, &server, &cookie, &format!("{base}/acknowledge"), &[]).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(again.text().await?.contains("already acknowledged"));

    // An empty (or blank) resolution: 422, the ticket stays open, the text typed is kept.
    for blank in ["", "   \n "] {
        let refused =
            post_form(&http, &server, &cookie, &format!("{base}/close"), &[("resolution", blank)])
                .await;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = refused.text().await?;
        assert!(html.contains("resolution must not be empty"), "{html}");
        assert!(html.contains("<textarea"), "the form is shown again: {html}");
    }
    let missing = post_form(&http, &server, &cookie, &format!("{base}/close"), &[]).await;
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let long = "x".repeat(10_001);
    let too_long =
        post_form(&http, &server, &cookie, &format!("{base}/close"), &[("resolution", &long)])
            .await;
    assert_eq!(too_long.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(too_long.text().await?.contains(&long), "what was typed is kept");
    assert_eq!(api_status(&http, &server, id).await["status"], "acknowledged");

    let resolution = "Gasket <replaced> & tested";
    let closed =
        post_form(&http, &server, &cookie, &format!("{base}/close"), &[("resolution", resolution)])
            .await;
    assert_eq!(closed.status(), StatusCode::SEE_OTHER);
    // What the agent's sync reads: closed, with the resolution and a close time in
    // the site's offset.
    let status = api_status(&http, &server, id).await;
    assert_eq!(status["status"], "closed", "{status}");
    assert_eq!(status["resolution"], resolution);
    let closed_at = status["closed_at"].as_str().unwrap_or_default();
    assert!(closed_at.ends_with("+08:00"), "{closed_at}");
    let age = jiff::Timestamp::now().duration_since(closed_at.parse::<jiff::Timestamp>()?);
    assert!(age.as_secs() < 60, "closed now: {closed_at}");
    let (_, html) = page(&http, &server, &cookie, &format!("{base}?done=closed")).await;
    assert!(
        html.contains("closed. The agent sees it")
            && html.contains("Gasket &lt;replaced&gt; &amp; tested"),
        "{html}"
    );

    // Closing twice: 409, the first resolution stays.
    let twice =
        post_form(&http, &server, &cookie, &format!("{base}/close"), &[("resolution", "other")])
            .await;
    assert_eq!(twice.status(), StatusCode::CONFLICT);
    assert!(twice.text().await?.contains("already closed"));
    assert_eq!(api_status(&http, &server, id).await["resolution"], resolution);
    let ack_closed = post_form(&http, &server, &cookie, &format!("{base}/acknowledge"), &[]).await;
    assert_eq!(ack_closed.status(), StatusCode::CONFLICT);

    // Unknown tickets: 404 pages.
    for (method, path) in [
        ("GET", "/desk/tickets/nope"),
        ("POST", "/desk/tickets/nope/acknowledge"),
        ("POST", "/desk/tickets/nope/close"),
    ] {
        let response = if method == "GET" {
            http.get(server.at(path)).header("cookie", &cookie).send().await?
        } else {
            post_form(&http, &server, &cookie, path, &[("resolution", "x")]).await
        };
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(response.text().await?.contains("There is no ticket &quot;nope&quot;"), "{path}");
    }
    // A body that is not a form.
    let garbage = http
        .post(server.at(&format!("{base}/close")))
        .header("cookie", &cookie)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await?;
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
    assert_eq!(server.list().await?.tickets.len(), 1, "nothing was created or lost");
    server.stop().await
}

/// Ticket ids with characters that need encoding in a URL still work.
#[tokio::test]
async fn ticket_ids_are_encoded_in_links() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = TestServer::start(dir.path()).await?;
    let http = browserless();
    let mut body = fault(1, 2, 10, "s", "door-controller");
    body["ticket_id"] = json!("site a/dev?1#x");
    open(&http, &server, &body).await;
    let cookie = sign_in(&http, &server).await;
    let (_, html) = page(&http, &server, &cookie, "/desk").await;
    let link = "/desk/tickets/site%20a%2Fdev%3F1%23x";
    assert!(html.contains(&format!("href=\"{link}\"")), "{html}");
    let (status, html) = page(&http, &server, &cookie, link).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let closed =
        post_form(&http, &server, &cookie, &format!("{link}/close"), &[("resolution", "ok")]).await;
    assert_eq!(closed.status(), StatusCode::SEE_OTHER);
    assert_eq!(server.list().await?.tickets[0].resolution.as_deref(), Some("ok"));
    server.stop().await
}

/// Adds desk user `name` with `password` to the service's database.
async fn add_user(db: &TestDatabase, name: &str, password: &str) -> anyhow::Result<()> {
    let store = db.store().await?;
    let hash = super::auth::hash_password(password).map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = tend_wire::model::WireTime::parse("2026-11-22T10:00:00Z")?;
    assert!(store.put_user(name, &hash, &now, false).await?);
    store.close().await;
    Ok(())
}

/// Signs `user` in; answers the status and the cookie pair (`tend_desk=…`), if any.
async fn sign_in_as(
    http: &Client,
    server: &TestServer,
    user: &str,
    password: &str,
) -> (StatusCode, Option<String>) {
    let response = http
        .post(server.at("/desk/login"))
        .urlencoded(&[("user", user), ("password", password), ("next", "/desk")])
        .send()
        .await
        .unwrap();
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    (response.status(), cookie)
}

/// Finding: the desk cookie was a fixed hash of the token: the same for every
/// sign-in, never expiring on the server, still valid after logout. Sessions are
/// random, server-side, and end at logout.
#[tokio::test]
async fn a_desk_session_ends_at_logout() -> anyhow::Result<()> {
    let db = TestDatabase::sqlite()?;
    add_user(&db, "mei", "a long desk password").await?;
    let server = db.start().await?;
    let http = browserless();
    open(&http, &server, &fault(1, 2, 10, "s", "door-controller")).await;
    let (status, first) = sign_in_as(&http, &server, "mei", "a long desk password").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, second) = sign_in_as(&http, &server, "mei", "a long desk password").await;
    let (first, second) = (first.unwrap_or_default(), second.unwrap_or_default());
    assert_ne!(first, second, "every sign-in gets its own session");
    assert_eq!(page(&http, &server, &first, "/desk").await.0, StatusCode::OK);
    let out = post_form(&http, &server, &first, "/desk/logout", &[]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    // The copied cookie is dead on the server, not just cleared in the browser.
    assert_eq!(page(&http, &server, &first, "/desk").await.0, StatusCode::SEE_OTHER);
    let ack =
        post_form(&http, &server, &first, "/desk/tickets/s.dev-1.code.1/acknowledge", &[]).await;
    assert_eq!(ack.status(), StatusCode::UNAUTHORIZED);
    // The other session lives on, and its actions carry the user's name.
    let ack =
        post_form(&http, &server, &second, "/desk/tickets/s.dev-1.code.1/acknowledge", &[]).await;
    assert_eq!(ack.status(), StatusCode::SEE_OTHER);
    let close = post_form(
        &http,
        &server,
        &second,
        "/desk/tickets/s.dev-1.code.1/close",
        &[("resolution", "Replaced the lock")],
    )
    .await;
    assert_eq!(close.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(&http, &server, &second, "/desk/tickets/s.dev-1.code.1").await;
    assert!(html.contains("Acknowledged by desk user mei"), "{html}");
    assert!(html.contains("Closed by desk user mei"), "{html}");
    // A session past its expiry is refused too.
    let store = db.store().await?;
    let id = "b".repeat(64);
    let now = tend_wire::model::WireTime::parse("2026-11-22T10:00:00Z")?;
    store.start_session(&crate::store::digest(id.as_bytes()), "mei", &now, 1).await?;
    store.close().await;
    let expired = format!("tend_desk={id}");
    assert_eq!(page(&http, &server, &expired, "/desk").await.0, StatusCode::SEE_OTHER);
    server.stop().await
}

/// Finding: 300 wrong sign-ins in 2.3 s were not slowed down. After three wrong
/// ones, attempts must wait (429 with Retry-After, the password not checked), for
/// the user name and for the client address.
#[tokio::test]
async fn wrong_sign_ins_are_slowed() -> anyhow::Result<()> {
    let db = TestDatabase::sqlite()?;
    add_user(&db, "mei", "a long desk password").await?;
    let server = db.start().await?;
    let http = browserless();
    let (mut wrong, mut slowed) = (0, 0);
    let started = std::time::Instant::now();
    for i in 0..300 {
        let (status, cookie) = sign_in_as(&http, &server, "mei", &format!("guess {i}")).await;
        assert!(cookie.is_none());
        match status {
            StatusCode::UNAUTHORIZED => wrong += 1,
            StatusCode::TOO_MANY_REQUESTS => slowed += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        wrong <= 4 && slowed >= 296,
        "{wrong} checked, {slowed} slowed in {:?}",
        started.elapsed()
    );
    // While slowed, even the right password is not checked.
    let right = http
        .post(server.at("/desk/login"))
        .urlencoded(&[("user", "mei"), ("password", "a long desk password")])
        .send()
        .await?;
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = right.headers()["retry-after"].to_str()?.parse()?;
    assert!((1..=900).contains(&retry), "{retry}");
    // Another user name from the same address is slowed too.
    let (status, _) = sign_in_as(&http, &server, "somebody", "x").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    server.stop().await
}

/// Behind TLS the session cookie is `Secure`.
#[tokio::test]
async fn cookies_are_secure_behind_tls() -> anyhow::Result<()> {
    let db = TestDatabase::sqlite()?;
    let mut cfg = db.config();
    cfg.behind_tls = true;
    let server = db.start_with(cfg).await?;
    let response = browserless()
        .post(server.at("/desk/login"))
        .urlencoded(&[("user", ""), ("password", TOKEN)])
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(response.headers()["set-cookie"].to_str()?.contains("; Secure"));
    server.stop().await
}
