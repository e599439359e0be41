//! Who may use the desk: desk users (`tend central user add NAME`) sign in with their
//! password and get a session; scripts may send `Authorization: Bearer <desk token>`
//! when the service has a desk token, and people may sign in with that token and an
//! empty user name (the demo's shortcut).
//!
//! Why this and not "open on loopback": the desk changes tickets (closing one ends
//! the agent's episode and restarts inspection schedules), and a reference service
//! is often reached through a port forward or a reverse proxy, where "loopback"
//! says nothing about who is asking. So the desk always asks who you are.
//!
//! - Sessions are server-side: the cookie (`tend_desk`) holds 32 random bytes; the
//!   database holds their SHA-256, the user and the expiry (12 hours, one shift).
//!   Logout deletes the row, so a copied cookie dies with it; a new password (`user
//!   passwd`) or removing the user ends all their sessions. The cookie is
//!   `HttpOnly`, `SameSite=Strict`, `Path=/desk`, and `Secure` when the service is
//!   told it sits behind TLS (`--behind-tls`).
//! - Wrong sign-ins are slowed down per user name and per client address: after
//!   [`FREE_FAILURES`] wrong ones, the next attempt must wait 1 s, then 2 s, 4 s, …
//!   up to 15 minutes after the last wrong one; earlier attempts get 429 with
//!   `Retry-After` and their password is not even checked. A right sign-in clears
//!   the user's count. Counts live in the database, so every process agrees.
//!   Behind a reverse proxy every client has the proxy's address, so the address
//!   count becomes one for everybody: a spray of wrong sign-ins then slows every
//!   sign-in down (never lets one through).
//! - Passwords are argon2id hashes (the `argon2` crate's defaults); unknown users
//!   cost the same verification as known ones.
//! - Writes (`POST`) carrying the cookie must also come from the desk's own
//!   origin when the browser says where they come from (`Origin`): a second guard
//!   against cross-site form posts besides `SameSite`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use axum::http::{HeaderMap, Method};
use cookie::Cookie;
use tend_wire::model::WireTime;

use crate::api::same;
use crate::store::{Store, StoreError, digest, random_token};

/// Name of the session cookie.
pub(crate) const COOKIE_NAME: &str = "tend_desk";

/// How long a sign-in lasts, in seconds (one 12-hour shift).
pub(crate) const SESSION_SECONDS: i64 = 12 * 3600;

/// Wrong sign-ins allowed before the slow-down starts.
pub(crate) const FREE_FAILURES: u32 = 3;

/// The longest wait the slow-down imposes.
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);

/// After this long without a wrong sign-in, earlier ones are forgotten.
const FORGET_AFTER_MS: i64 = 3600 * 1000;

/// The user name a desk-token sign-in is recorded under.
pub(crate) const TOKEN_USER: &str = "desk token";

/// Who may use the desk, and the sessions.
#[derive(Clone)]
pub(crate) struct DeskAuth {
    /// Users, sessions, failure counts.
    store: Store,
    /// The desk token, if the service has one.
    token: Option<Arc<str>>,
    /// Cookies are `Secure`.
    secure: bool,
    /// A hash verified for unknown users, so they cost what known ones do.
    decoy: Arc<str>,
}

/// Whether a request may use the desk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Signed in (session) or a script with the desk token: as this user.
    Allowed(String),
    /// No live session nor token: sign in first.
    SignIn,
    /// A cookie-carrying write from another origin.
    ForeignOrigin,
}

/// Outcome of a sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SignIn {
    /// Signed in: the `Set-Cookie` value.
    Session(String),
    /// Wrong user or password.
    Wrong,
    /// Too many wrong sign-ins: try again after this long (not checked).
    Slowed(Duration),
}

/// A password hash in PHC format (argon2id, random salt).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())?;
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

/// Whether `password` matches the PHC `hash` (false for a malformed hash).
fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// How long the next attempt must still wait after `failures` wrong sign-ins, the
/// last at `last_ms` (pure).
pub(crate) fn wait_needed(failures: u32, last_ms: i64, now_ms: i64) -> Option<Duration> {
    if failures < FREE_FAILURES || now_ms - last_ms > FORGET_AFTER_MS {
        return None;
    }
    let doublings = (failures - FREE_FAILURES).min(20);
    let wait = Duration::from_secs(1u64 << doublings).min(MAX_WAIT);
    let until = last_ms.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
    let left = until - now_ms;
    (left > 0).then(|| Duration::from_millis(u64::try_from(left).unwrap_or(0)))
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn now_wire() -> WireTime {
    WireTime::from_timestamp(jiff::Timestamp::now(), jiff::tz::Offset::UTC)
}

impl DeskAuth {
    /// The desk's authentication over `store`, with the desk `token` if any.
    pub(crate) fn new(store: Store, token: Option<&str>, secure: bool) -> Self {
        let decoy = hash_password(&random_token()).unwrap_or_default();
        Self { store, token: token.map(Arc::from), secure, decoy: decoy.into() }
    }

    /// Whether the desk token may sign in (with an empty user name).
    pub(crate) fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Signs `user` in with `password` from `peer`.
    pub(crate) async fn sign_in(
        &self,
        user: &str,
        password: &str,
        peer: Option<IpAddr>,
    ) -> Result<SignIn, StoreError> {
        let user = user.trim();
        let scopes: Vec<String> = std::iter::once(format!("user:{user}"))
            .chain(peer.map(|ip| format!("ip:{ip}")))
            .collect();
        let now = now_ms();
        let mut wait = None;
        for scope in &scopes {
            if let Some((failures, last)) = self.store.failures(scope).await?
                && let Some(left) = wait_needed(failures, last, now)
            {
                wait = wait.max(Some(left));
            }
        }
        if let Some(wait) = wait {
            tracing::warn!(user, ?peer, "desk sign-in refused: too many wrong ones");
            return Ok(SignIn::Slowed(wait));
        }
        let right = if user.is_empty() {
            self.token
                .as_ref()
                .is_some_and(|token| same(password.trim().as_bytes(), token.as_bytes()))
        } else {
            let hash = self.store.password_hash(user).await?;
            let known = hash.is_some();
            let hash = hash.unwrap_or_else(|| self.decoy.to_string());
            let password = password.to_owned();
            let matches = tokio::task::spawn_blocking(move || verify_password(&hash, &password))
                .await
                .unwrap_or(false);
            known && matches
        };
        if !right {
            for scope in &scopes {
                self.store.record_failure(scope, now).await?;
            }
            tracing::warn!(user, ?peer, "desk sign-in with a wrong user or password");
            return Ok(SignIn::Wrong);
        }
        self.store.clear_failures(&scopes[0]).await?;
        let id = random_token();
        let name = if user.is_empty() { TOKEN_USER } else { user };
        let expires = now + SESSION_SECONDS * 1000;
        self.store.start_session(&digest(id.as_bytes()), name, &now_wire(), expires).await?;
        tracing::info!(user = name, "desk sign-in");
        Ok(SignIn::Session(self.cookie(&id, SESSION_SECONDS)))
    }

    /// Ends the session of the request's cookie, if any.
    pub(crate) async fn sign_out(&self, headers: &HeaderMap) -> Result<(), StoreError> {
        for id in session_ids(headers) {
            self.store.end_session(&digest(id.as_bytes())).await?;
        }
        Ok(())
    }

    fn cookie(&self, value: &str, max_age: i64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{COOKIE_NAME}={value}; Path=/desk; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
        )
    }

    /// The `Set-Cookie` value that signs a browser out.
    pub(crate) fn sign_out_cookie(&self) -> String {
        self.cookie("", 0)
    }

    /// Decides on a request from its method and headers.
    pub(crate) async fn check(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Verdict, StoreError> {
        if let Some(presented) = bearer(headers) {
            let right = self
                .token
                .as_ref()
                .is_some_and(|token| same(presented.as_bytes(), token.as_bytes()));
            return Ok(if right {
                Verdict::Allowed(TOKEN_USER.to_owned())
            } else {
                Verdict::SignIn
            });
        }
        let mut user = None;
        for id in session_ids(headers) {
            if let Some(found) = self.store.session_user(&digest(id.as_bytes()), now_ms()).await? {
                user = Some(found);
                break;
            }
        }
        let Some(user) = user else {
            return Ok(Verdict::SignIn);
        };
        if *method != Method::GET && *method != Method::HEAD && !same_origin(headers) {
            return Ok(Verdict::ForeignOrigin);
        }
        Ok(Verdict::Allowed(user))
    }
}

/// The session ids of the request's cookies (well-formed ones only).
fn session_ids(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|c| c.name() == COOKIE_NAME && c.value().len() == 64)
        .map(|c| c.value().to_owned())
        .collect()
}

/// The bearer token of an `Authorization` header, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// True unless the browser says the request comes from another origin than the
/// host it is addressed to. No `Origin` (older browsers, same-origin GETs): true.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(host)) = (origin.to_str(), headers.get(HOST)) else {
        return false;
    };
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    host.to_str().is_ok_and(|host| host.eq_ignore_ascii_case(origin_host))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(axum::http::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                name.clone(),
                HeaderValue::from_str(value).unwrap_or_else(|e| unreachable!("{e}")),
            );
        }
        map
    }

    #[test]
    fn the_slow_down_doubles_after_the_free_failures_and_forgets() {
        let at = 1_000_000;
        assert_eq!(wait_needed(2, at, at), None);
        assert_eq!(wait_needed(3, at, at), Some(Duration::from_secs(1)));
        assert_eq!(wait_needed(4, at, at + 500), Some(Duration::from_millis(1500)));
        assert_eq!(wait_needed(5, at, at + 4000), None);
        assert_eq!(wait_needed(40, at, at), Some(MAX_WAIT));
        assert_eq!(wait_needed(40, at, at + FORGET_AFTER_MS + 1), None);
    }

    #[test]
    fn passwords_verify_against_their_hash_only() {
        let hash = hash_password("correct horse").unwrap_or_default();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horse "));
        assert!(!verify_password("not a hash", "x"));
        assert_ne!(hash_password("correct horse").unwrap_or_default(), hash, "salted");
    }

    #[test]
    fn origin_checks() {
        let from = |origin: &str| headers(&[(HOST, "127.0.0.1:8080"), (ORIGIN, origin)]);
        assert!(same_origin(&from("http://127.0.0.1:8080")));
        assert!(!same_origin(&from("http://evil.example")));
        assert!(!same_origin(&from("null")));
        assert!(same_origin(&headers(&[])));
        assert_eq!(bearer(&headers(&[(AUTHORIZATION, "bearer x")])), Some("x"));
        let id = "a".repeat(64);
        let cookies =
            headers(&[(COOKIE, &format!("a=b; {COOKIE_NAME}={id}; {COOKIE_NAME}=short"))]);
        assert_eq!(session_ids(&cookies), vec![id]);
    }
}
