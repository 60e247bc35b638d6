//! Admission: whether a call may start now. A request message must arrive
//! within a deadline before the call counts at all; then each tenant may hold
//! its share of the server's calls in flight and, separately, of its open
//! streams (watches, streams of measurement batches). The excess is refused at once with RESOURCE_EXHAUSTED and a
//! retry hint, never queued. Runs after authentication, which tells the tenant.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tonic::body::Body;

use crate::auth::Principal;
use crate::config::Config;
use crate::domain::names::Id;
use crate::error::{Error, Limit};

/// How long a caller refused for calls in flight should wait: calls last
/// milliseconds, so a slot is soon free unless the overload lasts.
const CALL_RETRY_DELAY: Duration = Duration::from_secs(1);
/// How long a caller refused a watch should wait: a slot frees only when
/// another stream ends.
const WATCH_RETRY_DELAY: Duration = Duration::from_secs(5);
/// The length prefix of a gRPC message on the wire.
const GRPC_FRAME_PREFIX: usize = 5;

/// The limits admission enforces, resolved from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub calls: usize,
    pub calls_per_tenant: usize,
    pub watches: usize,
    pub watches_per_tenant: usize,
    pub body_timeout: Duration,
    pub max_message_bytes: usize,
}

impl Limits {
    /// A tenant's share defaults to a quarter of the server's limit, so one
    /// tenant flooding the server leaves three quarters to the others.
    pub fn from_config(config: &Config) -> Self {
        let quarter = |total: usize| (total / 4).max(1);
        Self {
            calls: config.max_concurrent_requests,
            calls_per_tenant: config
                .max_concurrent_requests_per_tenant
                .unwrap_or_else(|| quarter(config.max_concurrent_requests)),
            watches: config.max_watch_streams,
            watches_per_tenant: config
                .max_watch_streams_per_tenant
                .unwrap_or_else(|| quarter(config.max_watch_streams)),
            body_timeout: config.request_body_timeout,
            max_message_bytes: config.max_message_bytes,
        }
    }
}

/// Whom a share belongs to. The bootstrap key has no tenant: the platform
/// counts as one more. Unauthenticated calls (server reflection) share one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Caller {
    Tenant(Id),
    Platform,
    Anonymous,
}

impl Caller {
    fn of(principal: Option<&Principal>) -> Self {
        match principal {
            Some(Principal {
                tenant: Some(tenant),
                ..
            }) => Caller::Tenant(tenant.clone()),
            Some(_) => Caller::Platform,
            None => Caller::Anonymous,
        }
    }
}

/// Slots of one kind (calls in flight, open watches), bounded for the whole
/// server and for each caller. One lock keeps both counts in step, so a
/// refused call never holds a slot of the server's, even for a moment.
struct Shares {
    total: usize,
    each: usize,
    server: Limit,
    tenant: Limit,
    retry_after: Duration,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    total: usize,
    by_caller: HashMap<Caller, usize>,
}

impl Shares {
    fn new(total: usize, each: usize, server: Limit, tenant: Limit, retry_after: Duration) -> Self {
        Self {
            total,
            each,
            server,
            tenant,
            retry_after,
            held: Mutex::default(),
        }
    }

    /// A slot for `caller`, or the limit that refuses it. The server's limit
    /// is reported first: when both are reached, the server is the news.
    fn take(self: &Arc<Self>, caller: Caller) -> Result<Slot, Error> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let refused = |limit, of| Error::Exhausted {
            limit,
            of,
            retry_after: self.retry_after,
        };
        if held.total >= self.total {
            return Err(refused(self.server, self.total));
        }
        let mine = held.by_caller.entry(caller.clone()).or_default();
        if *mine >= self.each {
            return Err(refused(self.tenant, self.each));
        }
        *mine += 1;
        held.total += 1;
        Ok(Slot {
            shares: self.clone(),
            caller,
        })
    }
}

/// One call's or stream's place in its `Shares`, given back when dropped.
struct Slot {
    shares: Arc<Shares>,
    caller: Caller,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self
            .shares
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        held.total -= 1;
        if let Some(mine) = held.by_caller.get_mut(&self.caller) {
            *mine -= 1;
            if *mine == 0 {
                held.by_caller.remove(&self.caller);
            }
        }
    }
}

/// How a method's messages flow, from its descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    streams_request: bool,
    streams_response: bool,
}

impl Shape {
    /// What a method outside Accord's descriptors (server reflection, a
    /// client stream) is taken for: its request is not read ahead.
    const STREAMING: Shape = Shape {
        streams_request: true,
        streams_response: true,
    };
}

/// Every `accord.v1` method by its HTTP/2 path, so a new streaming method
/// is counted as one without a table to keep in step.
fn method_shapes() -> HashMap<String, Shape> {
    let mut shapes = HashMap::new();
    for file in &crate::proto::descriptor_set().file {
        let package = file.package();
        for service in &file.service {
            for method in &service.method {
                shapes.insert(
                    format!("/{package}.{}/{}", service.name(), method.name()),
                    Shape {
                        streams_request: method.client_streaming(),
                        streams_response: method.server_streaming(),
                    },
                );
            }
        }
    }
    shapes
}

struct Shared {
    calls: Arc<Shares>,
    watches: Arc<Shares>,
    shapes: HashMap<String, Shape>,
    body_timeout: Duration,
    max_body_bytes: usize,
    max_message_bytes: usize,
}

/// The tower layer that admits calls; it goes inside `AuthenticateLayer`.
/// Health checks are never refused, so an overloaded replica is not
/// restarted for it.
#[derive(Clone)]
pub struct AdmissionLayer {
    shared: Arc<Shared>,
}

impl AdmissionLayer {
    pub fn new(limits: Limits) -> Self {
        let calls = Shares::new(
            limits.calls,
            limits.calls_per_tenant,
            Limit::Calls,
            Limit::TenantCalls,
            CALL_RETRY_DELAY,
        );
        let watches = Shares::new(
            limits.watches,
            limits.watches_per_tenant,
            Limit::Watches,
            Limit::TenantWatches,
            WATCH_RETRY_DELAY,
        );
        Self {
            shared: Arc::new(Shared {
                calls: Arc::new(calls),
                watches: Arc::new(watches),
                shapes: method_shapes(),
                body_timeout: limits.body_timeout,
                max_body_bytes: limits.max_message_bytes.saturating_add(GRPC_FRAME_PREFIX),
                max_message_bytes: limits.max_message_bytes,
            }),
        }
    }
}

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission {
            inner,
            shared: self.shared.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Admission<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> tower::Service<http::Request<Body>> for Admission<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path();
        if path.starts_with("/grpc.health.v1.") {
            return Box::pin(self.inner.call(request));
        }
        let known = self.shared.shapes.get(path).copied();
        let shape = known.unwrap_or(Shape::STREAMING);
        // The ready service handles this call; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move {
            // A request of one message is read whole before the call counts,
            // so a slow sender holds no slot, only its own deadline.
            let request = if shape.streams_request {
                request
            } else {
                match shared.read_request(request).await {
                    Ok(request) => request,
                    Err(status) => return Ok(status.into_http()),
                }
            };
            // A stream of Accord's (a watch; a stream of measurement
            // batches) is counted apart from calls, for as long as its
            // response streams. A method outside Accord's descriptors
            // (server reflection) counts as a call.
            let watch = known.is_some_and(|shape| shape.streams_response);
            let shares = if watch {
                &shared.watches
            } else {
                &shared.calls
            };
            let caller = Caller::of(request.extensions().get::<Principal>());
            let slot = match shares.take(caller) {
                Ok(slot) => slot,
                Err(error) => return Ok(tonic::Status::from(error).into_http()),
            };
            let response = inner.call(request).await;
            if watch {
                response.map(|r| r.map(|body| Body::new(Counted { body, _slot: slot })))
            } else {
                drop(slot);
                response
            }
        })
    }
}

impl Shared {
    /// The request with its body read into memory: at most one message of
    /// `max_message_bytes`, within `body_timeout`.
    async fn read_request(
        &self,
        request: http::Request<Body>,
    ) -> Result<http::Request<Body>, tonic::Status> {
        let (parts, body) = request.into_parts();
        let read = Limited::new(body, self.max_body_bytes).collect();
        let collected = match tokio::time::timeout(self.body_timeout, read).await {
            Ok(Ok(collected)) => collected,
            Ok(Err(error)) if error.is::<LengthLimitError>() => {
                return Err(Error::MessageTooLarge(self.max_message_bytes).into());
            }
            // The stream broke (a reset, a protocol error): answer as tonic
            // would have when reading it.
            Ok(Err(error)) => return Err(tonic::Status::from_error(error)),
            Err(_) => return Err(Error::RequestBodyTimeout(self.body_timeout).into()),
        };
        Ok(http::Request::from_parts(parts, Body::new(collected)))
    }
}

/// A response body that holds its stream's slot until it is dropped: when
/// the stream ends, fails, or its client goes away.
struct Counted {
    body: Body,
    _slot: Slot,
}

impl http_body::Body for Counted {
    type Data = <Body as http_body::Body>::Data;
    type Error = <Body as http_body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(total: usize, each: usize) -> Arc<Shares> {
        Arc::new(Shares::new(
            total,
            each,
            Limit::Calls,
            Limit::TenantCalls,
            CALL_RETRY_DELAY,
        ))
    }

    fn tenant(id: &str) -> Caller {
        Caller::Tenant(Id::parse("tenant_id", id).unwrap())
    }

    fn refusal(result: Result<Slot, Error>) -> Limit {
        match result {
            Err(Error::Exhausted { limit, .. }) => limit,
            Err(other) => panic!("unexpected {other:?}"),
            Ok(_) => panic!("admitted"),
        }
    }

    #[test]
    fn a_tenant_over_its_share_is_refused_while_others_are_admitted() {
        let shares = shares(4, 2);
        let _held = [
            shares.take(tenant("a")).unwrap(),
            shares.take(tenant("a")).unwrap(),
        ];
        assert_eq!(refusal(shares.take(tenant("a"))), Limit::TenantCalls);
        assert!(shares.take(tenant("b")).is_ok());
        assert!(shares.take(Caller::Platform).is_ok());
    }

    #[test]
    fn the_server_limit_is_reported_before_a_full_share() {
        let shares = shares(2, 2);
        let _held = [
            shares.take(tenant("a")).unwrap(),
            shares.take(tenant("a")).unwrap(),
        ];
        assert_eq!(refusal(shares.take(tenant("a"))), Limit::Calls);
        assert_eq!(refusal(shares.take(tenant("b"))), Limit::Calls);
    }

    #[test]
    fn dropped_slots_are_given_back_and_idle_callers_forgotten() {
        let shares = shares(2, 1);
        let slot = shares.take(tenant("a")).unwrap();
        assert_eq!(refusal(shares.take(tenant("a"))), Limit::TenantCalls);
        drop(slot);
        let held = shares.held.lock().unwrap();
        assert_eq!(held.total, 0);
        assert!(held.by_caller.is_empty());
        drop(held);
        assert!(shares.take(tenant("a")).is_ok());
    }

    #[test]
    fn a_tenant_share_defaults_to_a_quarter_and_must_fit_the_server_limit() {
        let limits = Limits::from_config(&Config::default());
        assert_eq!((limits.calls, limits.calls_per_tenant), (256, 64));
        assert_eq!((limits.watches, limits.watches_per_tenant), (1024, 256));
        let too_big = crate::config::ConfigArgs {
            max_concurrent_requests: Some(8),
            max_concurrent_requests_per_tenant: Some(9),
            ..Default::default()
        };
        assert!(Config::load(&too_big).is_err());
        let none = crate::config::ConfigArgs {
            max_watch_streams_per_tenant: Some(0),
            ..Default::default()
        };
        assert!(Config::load(&none).is_err());
    }

    #[test]
    fn a_measurement_stream_streams_both_ways() {
        let shapes = method_shapes();
        assert_eq!(
            shapes["/accord.v1.MeasurementService/StreamMeasurements"],
            Shape {
                streams_request: true,
                streams_response: true
            }
        );
        assert!(!shapes["/accord.v1.MeasurementService/ReportMeasurements"].streams_response);
    }

    #[test]
    fn watch_methods_stream_their_response_and_read_one_request() {
        let shapes = method_shapes();
        assert_eq!(
            shapes["/accord.v1.EntitlementService/WatchEntitlements"],
            Shape {
                streams_request: false,
                streams_response: true
            }
        );
        assert_eq!(
            shapes["/accord.v1.PartyService/ListParties"],
            Shape {
                streams_request: false,
                streams_response: false
            }
        );
    }
}
