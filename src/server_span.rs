//! The server span of every gRPC call, as the OpenTelemetry RPC conventions
//! name it: `{service}/{method}`, with `rpc.system`, `rpc.service`,
//! `rpc.method` and, once the call has ended, `rpc.grpc.status_code` (from
//! the trailers, so a stream's is its last word); `accord.tenant` is
//! recorded by authentication (`crate::auth`), and the store's statements
//! are its children. A call carrying a W3C `traceparent` continues the
//! caller's trace.
//!
//! Only `traceparent` and `tracestate` are read from the metadata: nothing
//! else a caller sends, its API key least of all, reaches a span. The span
//! exists only when a layer of the subscriber wants it (`crate::telemetry`);
//! otherwise a call pays for one look at the callsite's interest.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http_body::{Body as _, Frame, SizeHint};
use opentelemetry::propagation::Extractor;
use tonic::Code;
use tonic::body::Body;
use tonic::codegen::Bytes;
use tracing::field::Empty;
use tracing::{Instrument as _, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The target of the server spans, which filters name.
pub const TARGET: &str = "accord::rpc";

/// The target, under `TARGET`, of the server spans of calls that carry no
/// `traceparent`, which start a trace: a filter can leave them out (JSON
/// logs without a collector want only the ids of a caller's trace).
pub const ROOT_TARGET: &str = "accord::rpc::root";

/// Wraps every call in its server span.
#[derive(Clone, Default)]
pub struct ServerSpanLayer;

impl<S> tower::Layer<S> for ServerSpanLayer {
    type Service = ServerSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerSpan { inner }
    }
}

#[derive(Clone)]
pub struct ServerSpan<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for ServerSpan<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
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
        let span = server_span(&request);
        if span.is_disabled() {
            return Box::pin(self.inner.call(request));
        }
        let call = span.in_scope(|| self.inner.call(request));
        Box::pin(async move {
            match call.instrument(span.clone()).await {
                Ok(response) => Ok(follow(response, span)),
                Err(error) => {
                    // The connection resets the stream: the caller sees no
                    // status, which gRPC clients report as UNKNOWN.
                    ended(&span, Code::Unknown);
                    Err(error)
                }
            }
        })
    }
}

/// The call's span, a child of the caller's when `request` carries a
/// `traceparent`.
fn server_span<B>(request: &http::Request<B>) -> Span {
    let path = request.uri().path();
    let name = path.strip_prefix('/').unwrap_or(path);
    let (service, method) = name.split_once('/').unwrap_or((name, ""));
    // One callsite per target: a span's target is fixed where it is written.
    macro_rules! span {
        ($target:expr) => {
            tracing::info_span!(
                target: $target,
                "rpc",
                otel.name = name,
                otel.kind = "server",
                otel.status_code = Empty,
                rpc.system = "grpc",
                rpc.service = service,
                rpc.method = method,
                rpc.grpc.status_code = Empty,
                accord.tenant = Empty,
            )
        };
    }
    let span = if request.headers().contains_key("traceparent") {
        span!(TARGET)
    } else {
        span!(ROOT_TARGET)
    };
    if !span.is_disabled() {
        let caller = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&TraceHeaders(request.headers()))
        });
        // Fails only when no OpenTelemetry layer sees the span (the log
        // asked for it), which then has no parent to take.
        let _ = span.set_parent(caller);
    }
    span
}

/// The trace context headers of a request, and nothing else.
struct TraceHeaders<'a>(&'a http::HeaderMap);

const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

impl Extractor for TraceHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let key = TRACE_HEADERS
            .into_iter()
            .find(|k| k.eq_ignore_ascii_case(key))?;
        self.0.get(key)?.to_str().ok()
    }

    fn keys(&self) -> Vec<&str> {
        TRACE_HEADERS
            .into_iter()
            .filter(|key| self.0.contains_key(*key))
            .collect()
    }
}

/// Records how the call ended. By the conventions, a server span is in error
/// only for the codes that say the server failed, not the caller.
fn ended(span: &Span, code: Code) {
    span.record("rpc.grpc.status_code", code as i64);
    if matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    ) {
        span.record("otel.status_code", "error");
    }
}

/// The `grpc-status` of `headers`, if they have one.
fn status_of(headers: &http::HeaderMap) -> Option<Code> {
    let code = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    Some(Code::from_i32(code))
}

/// Ends the span with the call: at once for an answer that is only headers
/// (an error before any message), else when its body's trailers go out.
fn follow(response: http::Response<Body>, span: Span) -> http::Response<Body> {
    if let Some(code) = status_of(response.headers()) {
        ended(&span, code);
        return response;
    }
    response.map(|body| {
        if body.is_end_stream() {
            // Neither a status in the headers nor trailers to come.
            ended(&span, Code::Unknown);
            return body;
        }
        Body::new(Followed {
            inner: body,
            span: Some(span),
        })
    })
}

/// A response body that ends its call's span with the status of its
/// trailers, or as CANCELLED when it is dropped before them (the caller
/// went away).
struct Followed {
    inner: Body,
    /// `None` once the status is recorded.
    span: Option<Span>,
}

impl Followed {
    fn end(&mut self, code: Code) {
        if let Some(span) = self.span.take() {
            ended(&span, code);
        }
    }
}

impl http_body::Body for Followed {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let inner = Pin::new(&mut this.inner);
        let polled = match &this.span {
            Some(span) => span.in_scope(|| inner.poll_frame(cx)),
            None => inner.poll_frame(cx),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status_of) {
                    this.end(code);
                }
            }
            Poll::Ready(Some(Err(status))) => this.end(status.code()),
            // Trailers always end a gRPC response; a body ending without
            // them is a broken one.
            Poll::Ready(None) => this.end(Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Followed {
    fn drop(&mut self) {
        self.end(Code::Cancelled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_trace_context_headers_are_read() {
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", "00-abc-def-01".parse().unwrap());
        headers.insert("authorization", "Bearer secret".parse().unwrap());
        headers.insert("baggage", "key=secret".parse().unwrap());
        let extracted = TraceHeaders(&headers);
        assert_eq!(extracted.get("traceparent"), Some("00-abc-def-01"));
        assert_eq!(extracted.get("authorization"), None);
        assert_eq!(extracted.get("baggage"), None);
        assert_eq!(extracted.keys(), vec!["traceparent"]);
    }

    #[test]
    fn the_status_is_read_from_grpc_status() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(status_of(&headers), None);
        headers.insert("grpc-status", "5".parse().unwrap());
        assert_eq!(status_of(&headers), Some(Code::NotFound));
    }
}
