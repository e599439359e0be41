//! Fault injection: a handle tests hold to make the running service fail or stall,
//! the way a real central service does on a bad day.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header::RETRY_AFTER};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use super::error::ApiError;

/// Shared handle on the service's fault injection. Clone it before passing the
/// config to [`serve`](super::serve); every clone steers the same service.
///
/// Injected failures are answered before authentication and before any handler
/// runs (nothing is stored), like an overloaded proxy in front of the service.
/// Injected delays are served *after* the handler ran: the request takes effect
/// but the answer comes late, so a client with a short timeout sees "no answer"
/// for a request that was in fact committed (the case idempotency keys exist for).
#[derive(Debug, Clone, Default)]
pub struct CentralControl {
    /// The plan, shared with the middleware.
    inner: Arc<Mutex<Faults>>,
}

/// An injected failing answer.
#[derive(Debug, Clone, Copy)]
struct Failure {
    /// The status to answer (503, 429, 500, …).
    status: StatusCode,
    /// The `Retry-After` to send, in whole seconds (rounded up).
    retry_after: Option<Duration>,
}

#[derive(Debug, Default)]
struct Faults {
    /// Fail the next `n` requests.
    fail_next: Option<(u32, Failure)>,
    /// Fail every request until the deadline.
    fail_until: Option<(Instant, Failure)>,
    /// Delay every answer until the deadline.
    delay_until: Option<(Instant, Duration)>,
    /// Requests received, failed or not (lets tests count a client's retries).
    requests: u64,
    /// Requests being handled or answered right now.
    in_flight: u64,
    /// The most requests ever in flight at once.
    max_in_flight: u64,
}

impl CentralControl {
    /// A handle with nothing injected.
    pub fn new() -> Self {
        Self::default()
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        // Nothing panics while holding the lock; recover the data if it ever did.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Answers the next `count` requests with `status` (and `Retry-After` when
    /// given), without handling them.
    pub fn fail_next(&self, count: u32, status: StatusCode, retry_after: Option<Duration>) {
        self.faults().fail_next = (count > 0).then_some((count, Failure { status, retry_after }));
    }

    /// Answers every request with `status` for `period` from now.
    pub fn fail_for(&self, period: Duration, status: StatusCode, retry_after: Option<Duration>) {
        self.faults().fail_until = Some((Instant::now() + period, Failure { status, retry_after }));
    }

    /// Holds every answer back by `delay` for `period` from now (the request is
    /// handled first).
    pub fn delay_for(&self, period: Duration, delay: Duration) {
        self.faults().delay_until = Some((Instant::now() + period, delay));
    }

    /// Removes every injected failure and delay.
    pub fn clear(&self) {
        let mut faults = self.faults();
        faults.fail_next = None;
        faults.fail_until = None;
        faults.delay_until = None;
    }

    /// How many requests the service received so far (injected failures included).
    pub fn requests(&self) -> u64 {
        self.faults().requests
    }

    /// The most requests the service was handling at once so far (lets tests see
    /// how many a client sends in parallel).
    pub fn max_in_flight(&self) -> u64 {
        self.faults().max_in_flight
    }

    /// Counts a request and says what to do with it.
    fn on_request(&self) -> (Option<Failure>, Option<Duration>) {
        let now = Instant::now();
        let mut faults = self.faults();
        faults.requests += 1;
        faults.in_flight += 1;
        faults.max_in_flight = faults.max_in_flight.max(faults.in_flight);
        let mut failure = None;
        if let Some((left, planned)) = faults.fail_next.as_mut() {
            failure = Some(*planned);
            *left = left.saturating_sub(1);
            if *left == 0 {
                faults.fail_next = None;
            }
        }
        match faults.fail_until {
            Some((until, _)) if until <= now => faults.fail_until = None,
            Some((_, planned)) => failure = failure.or(Some(planned)),
            None => {}
        }
        let delay = match faults.delay_until {
            Some((until, _)) if until <= now => {
                faults.delay_until = None;
                None
            }
            Some((_, delay)) => Some(delay),
            None => None,
        };
        (failure, delay)
    }
}

/// Middleware applying the plan to each request.
pub(crate) async fn inject_faults(
    State(control): State<CentralControl>,
    request: Request,
    next: Next,
) -> Response {
    let (failure, delay) = control.on_request();
    // Counts the request out when its answer is sent or the client went away.
    let _in_flight = InFlight(&control);
    if let Some(Failure { status, retry_after }) = failure {
        let mut response =
            ApiError::new(status, format!("injected failure ({status})")).into_response();
        if let Some(after) = retry_after {
            let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        return response;
    }
    let response = next.run(request).await;
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    response
}

/// Ends a request's count in flight when dropped.
struct InFlight<'a>(&'a CentralControl);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut faults = self.0.faults();
        faults.in_flight = faults.in_flight.saturating_sub(1);
    }
}
