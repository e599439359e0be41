//! Who may use the desk: people sign in once with the desk token and get a session
//! cookie; scripts may send `Authorization: Bearer <desk token>` instead.
//!
//! Why this and not "open on loopback": the desk changes tickets (closing one ends
//! the agent's episode and restarts inspection schedules), and a reference service
//! is often reached through a port forward or a reverse proxy, where "loopback"
//! says nothing about who is asking. So the desk always asks for a secret.
//!
//! - The cookie (`tend_desk`) holds SHA-256 of a fixed label and the desk token,
//!   never the token itself. It is `HttpOnly` (no script reads it),
//!   `SameSite=Strict` (no other site's page can send it along), `Path=/desk`, and
//!   lasts 12 hours (one shift). Changing the token signs everyone out; so does
//!   `POST /desk/logout` for one browser. It is not `Secure`, because the reference
//!   service speaks plain HTTP; put it behind TLS for anything beyond a LAN (the
//!   agents' bearer token needs that too).
//! - Writes (`POST`) carrying the cookie must also come from the desk's own
//!   origin when the browser says where they come from (`Origin`): a second guard
//!   against cross-site form posts besides `SameSite`.

use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use axum::http::{HeaderMap, Method};
use cookie::Cookie;
use sha2::{Digest, Sha256};

use crate::api::same;

/// Name of the session cookie.
pub(crate) const COOKIE_NAME: &str = "tend_desk";

/// How long a sign-in lasts, in seconds (one 12-hour shift).
pub(crate) const SESSION_SECONDS: i64 = 12 * 3600;

/// The desk's secret and the session value derived from it.
#[derive(Clone)]
pub(crate) struct DeskAuth {
    /// The token people type in (and scripts send as a bearer token).
    token: String,
    /// The cookie value that proves a sign-in.
    session: String,
}

/// Whether a request may use the desk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Signed in (cookie) or a script with the token.
    Allowed,
    /// No valid cookie nor token: sign in first.
    SignIn,
    /// A cookie-carrying write from another origin.
    ForeignOrigin,
}

impl DeskAuth {
    /// The desk's authentication for `token`.
    pub(crate) fn new(token: &str) -> Self {
        let digest = Sha256::new()
            .chain_update(b"tend desk session v1\0")
            .chain_update(token.as_bytes())
            .finalize();
        Self { token: token.to_owned(), session: hex::encode(digest) }
    }

    /// Whether `token` (typed into the sign-in form) is the desk token.
    pub(crate) fn token_matches(&self, token: &str) -> bool {
        same(token.trim().as_bytes(), self.token.as_bytes())
    }

    /// The `Set-Cookie` value that signs a browser in.
    pub(crate) fn sign_in_cookie(&self) -> String {
        format!(
            "{COOKIE_NAME}={}; Path=/desk; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}",
            self.session
        )
    }

    /// The `Set-Cookie` value that signs a browser out.
    pub(crate) fn sign_out_cookie() -> String {
        format!("{COOKIE_NAME}=; Path=/desk; HttpOnly; SameSite=Strict; Max-Age=0")
    }

    /// Decides on a request from its method and headers.
    pub(crate) fn check(&self, method: &Method, headers: &HeaderMap) -> Verdict {
        if let Some(token) = bearer(headers) {
            return if self.token_matches(token) { Verdict::Allowed } else { Verdict::SignIn };
        }
        let signed_in = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok)
            .any(|c| {
                c.name() == COOKIE_NAME && same(c.value().as_bytes(), self.session.as_bytes())
            });
        if !signed_in {
            return Verdict::SignIn;
        }
        if *method != Method::GET && *method != Method::HEAD && !same_origin(headers) {
            return Verdict::ForeignOrigin;
        }
        Verdict::Allowed
    }
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
    fn cookie_token_and_origin() {
        let auth = DeskAuth::new("secret");
        let cookie = auth.sign_in_cookie();
        let pair = cookie.split(';').next().unwrap_or_default().to_owned();
        assert!(!cookie.contains("secret"), "the cookie never carries the token");
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(auth.check(&get, &headers(&[])), Verdict::SignIn);
        assert_eq!(
            auth.check(&get, &headers(&[(COOKIE, &format!("a=b; {pair}"))])),
            Verdict::Allowed
        );
        assert_eq!(auth.check(&get, &headers(&[(COOKIE, "tend_desk=forged")])), Verdict::SignIn);
        assert_eq!(
            auth.check(&get, &headers(&[(AUTHORIZATION, "Bearer secret")])),
            Verdict::Allowed
        );
        assert_eq!(
            auth.check(&post, &headers(&[(AUTHORIZATION, "bearer wrong")])),
            Verdict::SignIn
        );
        let from =
            |origin: &str| headers(&[(COOKIE, &pair), (HOST, "127.0.0.1:8080"), (ORIGIN, origin)]);
        assert_eq!(auth.check(&post, &from("http://127.0.0.1:8080")), Verdict::Allowed);
        assert_eq!(auth.check(&post, &from("http://evil.example")), Verdict::ForeignOrigin);
        assert_eq!(auth.check(&post, &from("null")), Verdict::ForeignOrigin);
        assert_eq!(auth.check(&get, &from("http://evil.example")), Verdict::Allowed);
        assert!(auth.token_matches(" secret ") && !auth.token_matches("secre"));
        assert_ne!(
            DeskAuth::new("other").sign_in_cookie(),
            cookie,
            "a new token signs everyone out"
        );
    }
}
