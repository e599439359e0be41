//! `tend central` on a real PostgreSQL (Debian's `postgresql`, started in a temp dir
//! on a free port by `tend_central::testing::Postgres`): two processes on one
//! database behind a client that spreads requests over both, the way a load
//! balancer does; sites and desk users administered with the CLI.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tend_central::Database;
use tend_central::testing::Postgres;

const WAIT: Duration = Duration::from_secs(60);

/// A child process killed when the test ends, however it ends.
struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `tend central ARGS --database-url URL`; answers stdout (asserting success).
fn admin(url: &str, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tend"))
        .arg("central")
        .args(args)
        .args(["--database-url", url])
        .env_remove("TEND_CENTRAL_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "tend central {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A `tend central` process on `url` with no shared token (sites' tokens only).
fn serve(url: &str, log: &std::path::Path) -> (String, Process) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(["central", "--listen", &format!("127.0.0.1:{port}"), "--database-url", url])
        .env_remove("TEND_CENTRAL_TOKEN")
        .env("TEND_DESK_TOKEN", "desk-secret")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    (format!("http://127.0.0.1:{port}"), Process(child))
}

async fn ready(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + WAIT;
    let url = format!("{base}/api/v1/openapi.json");
    while !http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "{base} did not answer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fault(id: &str) -> Value {
    json!({
        "ticket_id": id, "kind": "fault", "site": "huaihai-138",
        "device": {"id": "swh-roof-01", "type": "solar-water-heater"},
        "code": "tank_leak", "severity": 2, "title": "Tank level falling",
        "opened_at": "2026-11-22T10:04:00+08:00",
        "evidence": [{"ts": "2026-11-22T10:04:00+08:00", "field": "tank_level_pct", "value": 71}],
    })
}

async fn create(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> (u16, Value) {
    let response = http
        .post(format!("{base}/api/v1/tickets"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_on_one_postgresql_agree() {
    let server = tokio::task::spawn_blocking(Postgres::shared).await.unwrap().unwrap();
    let Database::Url(url) = server.database().await.unwrap() else { unreachable!() };
    let dir = tempfile::tempdir().unwrap();

    // Sites and a desk user, through the CLI.
    let added = admin(&url, &["site", "add", "huaihai-138"], "");
    let token = added.lines().last().unwrap().trim().to_owned();
    assert_eq!(token.len(), 64, "{added}");
    let other = admin(&url, &["site", "add", "other-site"], "");
    let other = other.lines().last().unwrap().trim().to_owned();
    admin(&url, &["user", "add", "mei"], "a long desk password\n");
    let listed = admin(&url, &["site", "list"], "");
    assert!(listed.contains("huaihai-138\t") && listed.contains("active"), "{listed}");
    assert!(!listed.contains(&token), "the token is never shown again");

    let (a, _a) = serve(&url, &dir.path().join("a.log"));
    let (b, _b) = serve(&url, &dir.path().join("b.log"));
    let http = reqwest::Client::new();
    ready(&http, &a).await;
    ready(&http, &b).await;
    let bases = [a.clone(), b.clone()];

    // 64 identical creates at once, spread over both processes.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let (http, base, token) = (http.clone(), bases[i % 2].clone(), token.clone());
        tasks.spawn(async move {
            create(&http, &base, &token, "huaihai-138/swh/tank_leak/1", &fault("dup")).await
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer.unwrap());
    }
    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    let replayed = answers.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!((created, replayed), (1, 63), "{answers:?}");
    assert!(answers.iter().all(|(_, body)| body["number"] == "T-000001"), "{answers:?}");

    // 100 different tickets at once over both: numbers unique and without gaps.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let (http, base, token) = (http.clone(), bases[i % 2].clone(), token.clone());
        tasks.spawn(async move {
            create(&http, &base, &token, &format!("k{i}"), &fault(&format!("t{i}"))).await
        });
    }
    let mut numbers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        let (status, body) = answer.unwrap();
        assert_eq!(status, 201, "{body}");
        numbers.push(body["number"].as_str().unwrap().to_owned());
    }
    numbers.sort();
    let expected: Vec<String> = (2..=101).map(|n| format!("T-{n:06}")).collect();
    assert_eq!(numbers, expected);

    // The other site's token touches nothing of this site, on either process.
    for base in &bases {
        let response = http
            .get(format!("{base}/api/v1/tickets/dup"))
            .bearer_auth(&other)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
    }

    // A desk session made on one process is the same session on the other, and
    // logging out on that one ends it on both.
    let browserless =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signed = browserless
        .post(format!("{a}/desk/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("user=mei&password=a+long+desk+password")
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    let cookie =
        signed.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let desk =
        |base: &str| browserless.get(format!("{base}/desk")).header("cookie", &cookie).send();
    assert_eq!(desk(&b).await.unwrap().status(), 200);
    let out = browserless
        .post(format!("{b}/desk/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(desk(&a).await.unwrap().status(), 303, "sent to sign in");

    // Revoked with the CLI while both run: refused at once by both.
    admin(&url, &["site", "revoke", "huaihai-138"], "");
    for base in &bases {
        let (status, _) = create(&http, base, &token, "after", &fault("after")).await;
        assert_eq!(status, 401);
    }
}
