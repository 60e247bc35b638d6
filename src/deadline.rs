//! Every call's deadline: its `grpc-timeout`, at most the server's
//! `request_timeout`. `DeadlineLayer` runs the call within it and answers
//! DEADLINE_EXCEEDED when it passes; the store asks what is left of it
//! (`remaining`) to bound the statements it sends, so that no query outlives
//! the call that asked for it. Work outside a call (background tasks) has no
//! deadline and gets the store's statement maximum.
//!
//! The deadline rides in a task-local rather than through every registry
//! signature: like the tracing span, it belongs to the call, and the code
//! between the API and the store has nothing to decide about it.

use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::time::Instant;

use crate::error::Error;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// What is left of the deadline of the call being served; `None` outside a
/// call.
pub fn remaining() -> Option<Duration> {
    DEADLINE
        .try_with(|deadline| deadline.saturating_duration_since(Instant::now()))
        .ok()
}

/// How much earlier than its deadline the server gives up on a call: a fifth
/// of the call's time, at most half a second. The client's own timer ends the
/// call at the deadline with a bare CANCELLED (tonic) or DEADLINE_EXCEEDED of
/// its own; answering first tells it the server stopped, its write undone.
fn margin(budget: Duration) -> Duration {
    (budget / 5).min(Duration::from_millis(500))
}

/// Thirty years: tokio's own stand-in for "no deadline", as an `Instant`
/// cannot lie arbitrarily far ahead.
const NEVER: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// A `grpc-timeout` value: at most eight digits and a unit (gRPC over HTTP/2).
/// Anything else is no timeout, as tonic reads it.
fn parse_grpc_timeout(value: &http::HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?;
    if text.len() < 2 || text.len() > 9 {
        return None;
    }
    let (digits, unit) = text.split_at(text.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 60 * 60),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Gives each call its deadline, runs it within it, and answers
/// DEADLINE_EXCEEDED (dropping the call) when the deadline passes.
#[derive(Clone)]
pub struct DeadlineLayer {
    request_timeout: Duration,
}

impl DeadlineLayer {
    /// `request_timeout`: the deadline of a call without `grpc-timeout`, and
    /// the longest any call gets.
    pub fn new(request_timeout: Duration) -> Self {
        Self { request_timeout }
    }
}

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = WithDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithDeadline {
            inner,
            request_timeout: self.request_timeout,
        }
    }
}

#[derive(Clone)]
pub struct WithDeadline<S> {
    inner: S,
    request_timeout: Duration,
}

impl<S, B> tower::Service<http::Request<B>> for WithDeadline<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let budget = request
            .headers()
            .get("grpc-timeout")
            .and_then(parse_grpc_timeout)
            .map_or(self.request_timeout, |t| t.min(self.request_timeout))
            .min(NEVER);
        let deadline = Instant::now() + budget - margin(budget);
        let call = DEADLINE.sync_scope(deadline, || self.inner.call(request));
        Box::pin(DEADLINE.scope(deadline, async move {
            match tokio::time::timeout_at(deadline, call).await {
                Ok(response) => response,
                Err(_) => Ok(tonic::Status::from(Error::DeadlineExceeded(
                    "the call's deadline passed before it completed".into(),
                ))
                .into_http()),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Option<Duration> {
        parse_grpc_timeout(&http::HeaderValue::from_str(text).unwrap())
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_nonsense_is_none() {
        assert_eq!(parse("300m"), Some(Duration::from_millis(300)));
        assert_eq!(parse("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("5M"), Some(Duration::from_secs(300)));
        assert_eq!(parse("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse("99999999n"), Some(Duration::from_nanos(99_999_999)));
        for bad in ["", "m", "123456789S", "12x", "-1S", "+1S", "1.5S"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_server_gives_up_a_fifth_early_and_at_most_half_a_second() {
        assert_eq!(
            margin(Duration::from_millis(300)),
            Duration::from_millis(60)
        );
        assert_eq!(margin(Duration::from_secs(30)), Duration::from_millis(500));
    }

    #[tokio::test]
    async fn the_deadline_is_known_inside_a_call_only() {
        assert_eq!(remaining(), None);
        let deadline = Instant::now() + Duration::from_secs(5);
        let left = DEADLINE.scope(deadline, async { remaining() }).await;
        assert!(left.is_some_and(|left| left <= Duration::from_secs(5)));
    }
}
