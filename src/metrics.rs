//! The server's metrics beyond the entitlement cache's (`crate::telemetry`):
//! how long every RPC takes and how it ends (`RpcMetricsLayer`, a tower
//! layer outside every other), and what the server holds (`observe`):
//! ingestion's counts, the database pool, open breaches and open streams.
//! Everything is recorded on the server's one meter provider, which
//! `/metrics` and OTLP both read; nothing here queries the database when
//! scraped.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::future::BoxFuture;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter, UpDownCounter};
use tonic::Code;
use tonic::body::Body;

use crate::domain::measurement::Reason;
use crate::service::Registry;
use crate::service::breaches::OpenBreaches;
use crate::store::Store;

/// The bucket boundaries of `rpc.server.call.duration`, in seconds: from a
/// quarter of a millisecond (an entitlement answered from the cache) through
/// seconds (a large batch, a slow database) to an hour (a watch stream).
/// Set as the instrument's advice, which a view may override.
pub const DURATION_BOUNDARIES: [f64; 20] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// `rpc.service` and `rpc.method` of a path the server does not serve: the
/// client chooses paths, so they are not labels.
pub const OTHER: &str = "_OTHER";

const SYSTEM: &str = "rpc.system";
const SERVICE: &str = "rpc.service";
const METHOD: &str = "rpc.method";
const STATUS_CODE: &str = "rpc.grpc.status_code";

/// One method the server serves, as its metrics name it.
struct Method {
    /// `rpc.method`, `rpc.service`, `rpc.system`: sorted by key, as the SDK
    /// looks attribute sets up, so that a recording finds its series at the
    /// first try.
    labels: [KeyValue; 3],
    /// Whether it is an `accord.v1` method whose response streams (a watch,
    /// a stream of measurement batches): what `accord.streams.open` counts,
    /// as admission does.
    counted_stream: bool,
}

/// The methods the server serves, by HTTP/2 path, and the instruments
/// their calls are recorded on.
struct RpcInstruments {
    duration: Histogram<f64>,
    open_streams: UpDownCounter<i64>,
    /// The last one is `_OTHER`.
    methods: Vec<Method>,
    by_path: HashMap<String, usize>,
}

impl RpcInstruments {
    fn new(meter: &Meter) -> Self {
        let duration = meter
            .f64_histogram("rpc.server.call.duration")
            .with_unit("s")
            .with_description(
                "duration of RPCs served, from the request's arrival to the response's end \
                 (a stream's last message and status)",
            )
            .with_boundaries(DURATION_BOUNDARIES.to_vec())
            .build();
        let open_streams = meter
            .i64_up_down_counter("accord.streams.open")
            .with_unit("{stream}")
            .with_description(
                "streams of accord.v1 open now (WatchEntitlements, WatchBreaches, \
                 StreamMeasurements), from the response's start to its end",
            )
            .build();
        let mut methods = Vec::new();
        let mut by_path = HashMap::new();
        let sets = [
            (crate::proto::FILE_DESCRIPTOR_SET, true),
            (tonic_health::pb::FILE_DESCRIPTOR_SET, false),
            (tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET, false),
            (tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET, false),
        ];
        for (encoded, accord) in sets {
            let set: prost_types::FileDescriptorSet =
                prost::Message::decode(encoded).expect("a generated descriptor set decodes");
            for file in &set.file {
                for service in &file.service {
                    let service_name: Arc<str> =
                        format!("{}.{}", file.package(), service.name()).into();
                    for method in &service.method {
                        let path = format!("/{service_name}/{}", method.name());
                        by_path.insert(path, methods.len());
                        methods.push(Method {
                            labels: labels(Arc::from(method.name()), service_name.clone()),
                            counted_stream: accord && method.server_streaming(),
                        });
                    }
                }
            }
        }
        methods.push(Method {
            labels: labels(Arc::from(OTHER), Arc::from(OTHER)),
            counted_stream: false,
        });
        Self {
            duration,
            open_streams,
            methods,
            by_path,
        }
    }

    fn method_of(&self, path: &str) -> usize {
        self.by_path
            .get(path)
            .copied()
            .unwrap_or(self.methods.len() - 1)
    }
}

fn labels(method: Arc<str>, service: Arc<str>) -> [KeyValue; 3] {
    [
        KeyValue::new(METHOD, method),
        KeyValue::new(SERVICE, service),
        KeyValue::new(SYSTEM, "grpc"),
    ]
}

/// Records `rpc.server.call.duration` of every call, by method and status
/// code, from the request's arrival to the end of its response: the
/// trailers' status (the headers' for a trailers-only answer, such as a
/// refusal by authentication or admission), or CANCELLED when the call is
/// dropped before it ends (the client cancelled or went away). Also counts
/// the `accord.v1` streams open. Goes outside every other layer, so that
/// what they refuse is recorded too.
#[derive(Clone)]
pub struct RpcMetricsLayer {
    instruments: Arc<RpcInstruments>,
}

impl RpcMetricsLayer {
    /// The instruments, on `meter`, and the table of methods (Accord's,
    /// health and reflection), read once.
    pub fn new(meter: &Meter) -> Self {
        Self {
            instruments: Arc::new(RpcInstruments::new(meter)),
        }
    }
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics {
            inner,
            instruments: self.instruments.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    instruments: Arc<RpcInstruments>,
}

impl<S, B> tower::Service<http::Request<B>> for RpcMetrics<S>
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
        let mut call = Call {
            method: self.instruments.method_of(request.uri().path()),
            instruments: self.instruments.clone(),
            started: Instant::now(),
            stream_open: false,
            ended: false,
        };
        let response = self.inner.call(request);
        // Dropped before the response (the client went away): `call`
        // records CANCELLED as it drops.
        Box::pin(async move {
            match response.await {
                Ok(response) => Ok(call.follow(response)),
                Err(error) => {
                    // No status was sent: tonic turns the error into one
                    // outside this layer, when it can.
                    call.end(Code::Unknown);
                    Err(error)
                }
            }
        })
    }
}

/// One call being recorded, until it ends.
struct Call {
    instruments: Arc<RpcInstruments>,
    method: usize,
    started: Instant,
    /// Whether it counts as an open stream until it ends.
    stream_open: bool,
    ended: bool,
}

impl Call {
    /// The response, whose end is recorded: at once for a trailers-only
    /// answer, else when its body ends or is dropped.
    fn follow(mut self, response: http::Response<Body>) -> http::Response<Body> {
        if let Some(code) = status_in(response.headers()) {
            self.end(code);
            return response;
        }
        let method = &self.instruments.methods[self.method];
        if method.counted_stream {
            self.instruments.open_streams.add(1, &method.labels);
            self.stream_open = true;
        }
        response.map(|body| Body::new(Followed { body, call: self }))
    }

    /// Records the call's duration with `code`, once.
    fn end(&mut self, code: Code) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let method = &self.instruments.methods[self.method];
        let [name, service, system] = &method.labels;
        let attributes = [
            KeyValue::new(STATUS_CODE, code as i64),
            name.clone(),
            service.clone(),
            system.clone(),
        ];
        self.instruments
            .duration
            .record(self.started.elapsed().as_secs_f64(), &attributes);
        if self.stream_open {
            self.instruments.open_streams.add(-1, &method.labels);
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.end(Code::Cancelled);
    }
}

const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// The `grpc-status` of a header or trailer map, if it has one.
fn status_in(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get(GRPC_STATUS)
        .map(|value| Code::from_bytes(value.as_bytes()))
}

/// A response body that records its call's end: its trailers' status, or
/// CANCELLED when dropped before them.
struct Followed {
    body: Body,
    call: Call,
}

impl http_body::Body for Followed {
    type Data = <Body as http_body::Body>::Data;
    type Error = <Body as http_body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    self.call.end(status_in(trailers).unwrap_or(Code::Unknown));
                }
            }
            Poll::Ready(Some(Err(status))) => self.call.end(status.code()),
            // Ended without trailers: no status was sent.
            Poll::Ready(None) => self.call.end(Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Followed {
    fn drop(&mut self) {
        // A body that ended without trailers may be dropped unpolled.
        if http_body::Body::is_end_stream(&self.body) {
            self.call.end(Code::Unknown);
        }
    }
}

/// What the observed instruments read, each time the meter provider
/// collects (a scrape, an OTLP push): counters and counts kept in memory.
pub struct Observed {
    pub registry: Arc<Registry>,
    pub store: Arc<dyn Store>,
    pub open_breaches: Arc<OpenBreaches>,
    /// `max_watch_streams`.
    pub stream_limit: usize,
}

/// Registers on `meter` the instruments read from what the server keeps:
///
/// - `accord.measurements.accepted`, `.duplicates` (counters), and
///   `.rejected` (counter, by `reason`, every reason from zero): the items
///   of the batches committed, by either ingestion method;
/// - `db.client.connection.count` (by `db.client.connection.state`, `used`
///   or `idle`) and `db.client.connection.max`, of the pool
///   (`db.client.connection.pool.name` `accord`);
/// - `accord.breaches.open`: breaches in state OPEN, every tenant's
///   (`OpenBreaches`; absent until first counted);
/// - `accord.streams.limit`: `max_watch_streams`, the most
///   `accord.streams.open` may reach.
pub fn observe(meter: &Meter, observed: Observed) {
    let Observed {
        registry,
        store,
        open_breaches,
        stream_limit,
    } = observed;
    let r = registry.clone();
    meter
        .u64_observable_counter("accord.measurements.accepted")
        .with_unit("{measurement}")
        .with_description("measurements stored")
        .with_callback(move |o| o.observe(r.ingestion().accepted(), &[]))
        .build();
    let r = registry.clone();
    meter
        .u64_observable_counter("accord.measurements.duplicates")
        .with_unit("{measurement}")
        .with_description("measurements stored before with the same payload, counted once")
        .with_callback(move |o| o.observe(r.ingestion().duplicates(), &[]))
        .build();
    let reasons: Vec<(Reason, [KeyValue; 1])> = Reason::ALL
        .into_iter()
        .map(|reason| (reason, [KeyValue::new("reason", reason.as_str())]))
        .collect();
    meter
        .u64_observable_counter("accord.measurements.rejected")
        .with_unit("{measurement}")
        .with_description("measurements refused, by reason (MeasurementRejection.reason)")
        .with_callback(move |o| {
            for (reason, attributes) in &reasons {
                o.observe(registry.ingestion().rejected(*reason), attributes);
            }
        })
        .build();

    let pool = KeyValue::new("db.client.connection.pool.name", "accord");
    let used = [
        pool.clone(),
        KeyValue::new("db.client.connection.state", "used"),
    ];
    let idle = [
        pool.clone(),
        KeyValue::new("db.client.connection.state", "idle"),
    ];
    let s = store.clone();
    meter
        .i64_observable_up_down_counter("db.client.connection.count")
        .with_unit("{connection}")
        .with_description("connections of the database pool, used or idle")
        .with_callback(move |o| {
            let now = s.pool_use();
            o.observe(i64::from(now.used), &used);
            o.observe(i64::from(now.idle), &idle);
        })
        .build();
    let pool = [pool];
    meter
        .i64_observable_up_down_counter("db.client.connection.max")
        .with_unit("{connection}")
        .with_description("the most connections the database pool opens (max_connections)")
        .with_callback(move |o| o.observe(i64::from(store.pool_use().max), &pool))
        .build();

    meter
        .u64_observable_gauge("accord.breaches.open")
        .with_unit("{breach}")
        .with_description(
            "breaches in state OPEN (missed and not withdrawn), of every tenant, as last counted",
        )
        .with_callback(move |o| {
            if let Some(open) = open_breaches.get() {
                o.observe(open, &[]);
            }
        })
        .build();
    let limit = u64::try_from(stream_limit).unwrap_or(u64::MAX);
    meter
        .u64_observable_gauge("accord.streams.limit")
        .with_unit("{stream}")
        .with_description("the most accord.v1 streams open at once (max_watch_streams)")
        .with_callback(move |o| o.observe(limit, &[]))
        .build();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_method_has_its_labels_and_other_paths_share_one() {
        let meter = opentelemetry::metrics::MeterProvider::meter(
            &opentelemetry_sdk::metrics::SdkMeterProvider::default(),
            "test",
        );
        let rpc = RpcInstruments::new(&meter);
        let named = |path: &str| {
            let method = &rpc.methods[rpc.method_of(path)];
            let [name, service, _] = &method.labels;
            (
                service.value.as_str().into_owned(),
                name.value.as_str().into_owned(),
                method.counted_stream,
            )
        };
        let of = |s: &str, m: &str, stream| (s.to_string(), m.to_string(), stream);
        assert_eq!(
            named("/accord.v1.EntitlementService/ResolveEntitlement"),
            of("accord.v1.EntitlementService", "ResolveEntitlement", false)
        );
        assert_eq!(
            named("/accord.v1.MeasurementService/StreamMeasurements"),
            of("accord.v1.MeasurementService", "StreamMeasurements", true)
        );
        assert_eq!(
            named("/accord.v1.BreachService/WatchBreaches"),
            of("accord.v1.BreachService", "WatchBreaches", true)
        );
        // Health's Watch streams, but is not one of the streams admission
        // limits.
        assert_eq!(
            named("/grpc.health.v1.Health/Watch"),
            of("grpc.health.v1.Health", "Watch", false)
        );
        assert_eq!(
            named("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            of(
                "grpc.reflection.v1.ServerReflection",
                "ServerReflectionInfo",
                false
            )
        );
        for unknown in [
            "/accord.v1.EntitlementService/Nope",
            "/nope",
            "",
            "/accord.v1.EntitlementService/ResolveEntitlement/",
        ] {
            assert_eq!(named(unknown), of(OTHER, OTHER, false), "{unknown:?}");
        }
    }

    #[test]
    fn the_attributes_are_given_sorted_by_key() {
        let keys = [STATUS_CODE, METHOD, SERVICE, SYSTEM];
        let mut sorted = keys;
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn duration_boundaries_rise() {
        assert!(DURATION_BOUNDARIES.windows(2).all(|w| w[0] < w[1]));
    }
}
