//! The central API's routes. Each is a list of path segments under the service's base
//! URL; a ticket id is one segment, percent-encoded where it travels (it may hold `/`).

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// Bytes escaped in a path segment: the WHATWG URL standard's path-segment set, so the
/// text [`Route::path`] prints is the path the client's URL has.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'?')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'%');

/// Bytes escaped in an `Idempotency-Key` header: everything but printable ASCII, and `%`.
const HEADER: &AsciiSet = &CONTROLS.add(b' ').add(b'%');

/// The segments every route starts with.
pub const PREFIX: [&str; 3] = ["api", "v1", "tickets"];

/// One route of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/api/v1/tickets`: open (POST), list (GET, an extension of the reference service).
    Tickets,
    /// `/api/v1/tickets/{id}`: a ticket's status (GET).
    Ticket(&'a str),
    /// `/api/v1/tickets/{id}/events`: add an event (POST).
    Events(&'a str),
    /// `/api/v1/tickets/{id}/close`: close (POST).
    Close(&'a str),
    /// `/api/v1/tickets/{id}/acknowledge`: acknowledge (POST, an extension).
    Acknowledge(&'a str),
}

impl<'a> Route<'a> {
    /// The segments after [`PREFIX`], not encoded.
    pub fn segments(&self) -> Vec<&'a str> {
        match *self {
            Route::Tickets => vec![],
            Route::Ticket(id) => vec![id],
            Route::Events(id) => vec![id, "events"],
            Route::Close(id) => vec![id, "close"],
            Route::Acknowledge(id) => vec![id, "acknowledge"],
        }
    }

    /// The path relative to the service's base URL, each segment percent-encoded
    /// (`/api/v1/tickets/a%2Fb/events`).
    pub fn path(&self) -> String {
        let mut path = String::new();
        for segment in PREFIX.iter().copied().chain(self.segments()) {
            path.push('/');
            path.extend(utf8_percent_encode(segment, SEGMENT));
        }
        path
    }
}

/// An idempotency key as an HTTP header value: printable ASCII other than `%` is kept,
/// other bytes (and `%`) are percent-encoded; deterministic, so a key stays stable.
pub fn header_key(key: &str) -> String {
    utf8_percent_encode(key, HEADER).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_encode_each_segment() {
        assert_eq!(Route::Tickets.path(), "/api/v1/tickets");
        assert_eq!(Route::Events("a/b c").path(), "/api/v1/tickets/a%2Fb%20c/events");
        assert_eq!(Route::Close("t-1").path(), "/api/v1/tickets/t-1/close");
        assert_eq!(Route::Ticket("50%").path(), "/api/v1/tickets/50%25");
    }

    #[test]
    fn header_keys_keep_printable_ascii() {
        assert_eq!(header_key("swh-1:overheat:1"), "swh-1:overheat:1");
        assert_eq!(header_key("a b%é"), "a%20b%25%C3%A9");
    }
}
