//! One tenant cannot starve the others: its calls in flight, its watch
//! and measurement streams and its slow request bodies are bounded by its own share, and the
//! excess is refused at once with RESOURCE_EXHAUSTED, a reason and a retry
//! hint, never left to hang.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use accord::api::entitlement::{EntitlementApi, Entitlements, WatchStream};
use accord::config::Config;
use accord::proto::v1 as pb;
use bytes::Bytes;
use futures::StreamExt;
use pb::entitlement_service_server::EntitlementService;
use tokio::sync::{Notify, Semaphore, mpsc};
use tonic::{Code, Request, Response, Status};
use tonic_types::StatusExt;

use crate::on_both_backends;
use crate::support::*;

// --- a service that keeps calls in flight -------------------------------------

/// Keeps every ResolveEntitlement in flight until opened, and ends the open
/// watch streams on demand, so a test decides how long calls and streams
/// hold their share; otherwise the real service answers.
#[derive(Clone)]
struct Gate {
    held: Arc<AtomicUsize>,
    open: Arc<Semaphore>,
    end_watches: Arc<Notify>,
}

impl Gate {
    fn closed() -> Self {
        Gate {
            held: Arc::default(),
            open: Arc::new(Semaphore::new(0)),
            end_watches: Arc::default(),
        }
    }

    /// Ends every watch open now with UNAVAILABLE, from the server's side.
    fn end_watches(&self) {
        self.end_watches.notify_waiters();
    }

    fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    fn open(&self) {
        self.open.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    async fn wait_until_held(&self, calls: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.held() != calls {
            assert!(
                Instant::now() < deadline,
                "{} calls held, expected {calls}",
                self.held()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

struct GatedEntitlements {
    real: EntitlementApi,
    gate: Gate,
}

#[tonic::async_trait]
impl EntitlementService for GatedEntitlements {
    async fn resolve_entitlement(
        &self,
        _request: Request<pb::ResolveEntitlementRequest>,
    ) -> Result<Response<pb::Entitlement>, Status> {
        self.gate.held.fetch_add(1, Ordering::SeqCst);
        let _ = self.gate.open.acquire().await;
        self.gate.held.fetch_sub(1, Ordering::SeqCst);
        Ok(Response::new(pb::Entitlement::default()))
    }

    async fn batch_resolve_entitlements(
        &self,
        request: Request<pb::BatchResolveEntitlementsRequest>,
    ) -> Result<Response<pb::BatchResolveEntitlementsResponse>, Status> {
        self.real.batch_resolve_entitlements(request).await
    }

    type WatchEntitlementsStream = WatchStream;

    async fn watch_entitlements(
        &self,
        request: Request<pb::WatchEntitlementsRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let ended = self.gate.end_watches.clone().notified_owned();
        let real = self.real.watch_entitlements(request).await?.into_inner();
        let ending =
            futures::stream::once(async { Err(Status::unavailable("the test ended the watch")) });
        Ok(Response::new(Box::pin(
            real.take_until(ended).chain(ending),
        )))
    }

    async fn explain_entitlement(
        &self,
        request: Request<pb::ExplainEntitlementRequest>,
    ) -> Result<Response<pb::EntitlementExplanation>, Status> {
        self.real.explain_entitlement(request).await
    }
}

/// The real server, its layers and limits, with ResolveEntitlement gated.
async fn start_gated(
    backend: Backend,
    tweak: impl FnOnce(&mut Config),
) -> Option<(TestServer, Gate)> {
    let gate = Gate::closed();
    let gated = gate.clone();
    let s = TestServer::start_prepared(backend, tweak, move |app| {
        let real = EntitlementApi::new(app.resolver().clone(), app.authenticator().clone());
        app.replace_entitlements(Entitlements::new(GatedEntitlements { real, gate: gated }));
    })
    .await?;
    Some((s, gate))
}

// --- calls ------------------------------------------------------------------------

/// A short unary call of `w`'s tenant, which must neither fail nor wait.
async fn list_parties_promptly(w: &World) {
    let mut parties = w.parties();
    let call = parties.list_parties(pb::ListPartiesRequest {
        parent: w.tenant.clone(),
        ..Default::default()
    });
    let listed = tokio::time::timeout(Duration::from_secs(2), call)
        .await
        .unwrap_or_else(|_| panic!("ListParties of {} waited", w.tenant))
        .unwrap_or_else(|e| panic!("ListParties of {} failed: {e:?}", w.tenant));
    assert_eq!(listed.into_inner().parties.len(), 2);
}

/// Opens a watch of the bank on `payments` and reads its first result.
async fn open_watch(w: &World) -> Result<tonic::Streaming<pb::WatchEntitlementsResponse>, Status> {
    let mut stream = w
        .entitlements()
        .watch_entitlements(w.watch_request(None))
        .await?
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("the watch sends its first result")?;
    assert!(first.is_some(), "the watch ended at once");
    Ok(stream)
}

/// Asserts RESOURCE_EXHAUSTED with `reason` and a positive retry delay.
#[track_caller]
fn assert_refused<T: std::fmt::Debug>(result: Result<T, Status>, reason: &str) {
    let status = assert_code(result, Code::ResourceExhausted);
    assert_reason(&status, reason);
    let delay = status
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .unwrap_or_else(|| panic!("RetryInfo with a delay: {status:?}"));
    assert!(delay > Duration::ZERO, "{status:?}");
}

/// Opens a StreamMeasurements stream that stays open (its requests come
/// from the sender returned) and reads the answer to its first batch.
async fn open_measurement_stream(
    w: &World,
) -> Result<
    (
        mpsc::Sender<pb::StreamMeasurementsRequest>,
        tonic::Streaming<pb::StreamMeasurementsResponse>,
    ),
    Status,
> {
    let (tx, rx) = mpsc::channel(4);
    tx.send(pb::StreamMeasurementsRequest {
        parent: w.tenant.clone(),
        measurements: Vec::new(),
        sequence: 1,
    })
    .await
    .expect("queue the first batch");
    let mut answers = w
        .measurements()
        .stream_measurements(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), answers.message())
        .await
        .expect("the stream answers its first batch")?;
    assert_eq!(first.map(|a| a.sequence), Some(1));
    Ok((tx, answers))
}

// --- calls in flight -------------------------------------------------------------

async fn a_tenant_at_its_share_of_calls_does_not_stop_another_tenants_calls(backend: Backend) {
    let Some((s, gate)) = start_gated(backend, |c| {
        c.max_concurrent_requests = 4;
        c.max_concurrent_requests_per_tenant = Some(2);
    })
    .await
    else {
        return;
    };
    let flood = World::new(&s, "flood").await;
    let quiet = World::new(&s, "quiet").await;

    // The flooding tenant sends far more calls at once than its share; the
    // gate keeps those admitted in flight.
    let (done, mut results) = mpsc::unbounded_channel();
    for _ in 0..12 {
        let mut client = flood.entitlements();
        let request = flood.resolve_request(&flood.bank, &flood.payments);
        let done = done.clone();
        tokio::spawn(async move {
            let _ = done.send(client.resolve_entitlement(request).await);
        });
    }
    for _ in 0..10 {
        let result = tokio::time::timeout(Duration::from_secs(5), results.recv())
            .await
            .expect("the excess is refused at once, not queued")
            .unwrap();
        assert_refused(result, "TENANT_OVERLOADED");
    }
    gate.wait_until_held(2).await;

    // The other tenant's calls go through at once, several at a time.
    let quiet_calls = (0..2).map(|_| list_parties_promptly(&quiet));
    futures::future::join_all(quiet_calls).await;

    // The flooding tenant's admitted calls finish when let go.
    gate.open();
    for _ in 0..2 {
        let result = tokio::time::timeout(Duration::from_secs(5), results.recv())
            .await
            .expect("admitted calls finish")
            .unwrap();
        assert!(result.is_ok(), "{result:?}");
    }
}

async fn the_server_limit_refuses_calls_once_the_shares_fill_it(backend: Backend) {
    let Some((s, gate)) = start_gated(backend, |c| {
        c.max_concurrent_requests = 2;
        c.max_concurrent_requests_per_tenant = Some(1);
    })
    .await
    else {
        return;
    };
    let tenants = [
        World::new(&s, "first").await,
        World::new(&s, "second").await,
        World::new(&s, "third").await,
    ];
    let mut held = Vec::new();
    for tenant in &tenants[..2] {
        let mut client = tenant.entitlements();
        let request = tenant.resolve_request(&tenant.bank, &tenant.payments);
        held.push(tokio::spawn(async move {
            client.resolve_entitlement(request).await
        }));
    }
    gate.wait_until_held(2).await;

    let result = tenants[2]
        .parties()
        .list_parties(pb::ListPartiesRequest {
            parent: tenants[2].tenant.clone(),
            ..Default::default()
        })
        .await;

    assert_refused(result, "OVERLOADED");
    gate.open();
    for call in held {
        assert!(call.await.unwrap().is_ok());
    }
}

// --- watch streams ---------------------------------------------------------------

async fn watch_limits_refuse_the_excess_and_free_a_slot_when_a_stream_ends(backend: Backend) {
    let Some(s) = TestServer::start_with(backend, |c| {
        c.max_watch_streams = 3;
        c.max_watch_streams_per_tenant = Some(2);
        c.max_concurrent_requests = 2;
        c.max_concurrent_requests_per_tenant = Some(1);
    })
    .await
    else {
        return;
    };
    let flood = World::new(&s, "flood").await;
    let quiet = World::new(&s, "quiet").await;

    // A tenant's share of watches.
    let first = open_watch(&flood).await.expect("first watch");
    let _second = open_watch(&flood).await.expect("second watch");
    assert_refused(open_watch(&flood).await, "TENANT_TOO_MANY_WATCHES");
    // Open streams hold no call permit: the tenant's one call slot is free.
    list_parties_promptly(&flood).await;

    // Another tenant still watches, up to the server's limit.
    let _third = open_watch(&quiet).await.expect("another tenant's watch");
    assert_refused(open_watch(&quiet).await, "TOO_MANY_WATCHES");

    // A stream whose client went away frees its slot.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Err(status) = open_watch(&flood).await {
        assert!(
            Instant::now() < deadline,
            "the slot of a closed watch was never freed: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_watch_the_server_ends_frees_its_slot(backend: Backend) {
    let Some((s, gate)) = start_gated(backend, |c| {
        c.max_watch_streams_per_tenant = Some(1);
    })
    .await
    else {
        return;
    };
    let flood = World::new(&s, "flood").await;
    let mut watch = open_watch(&flood).await.expect("first watch");
    assert_refused(open_watch(&flood).await, "TENANT_TOO_MANY_WATCHES");

    gate.end_watches();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match watch.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the watch ends");
    assert_code(ended, Code::Unavailable);

    let deadline = Instant::now() + Duration::from_secs(5);
    while let Err(status) = open_watch(&flood).await {
        assert!(
            Instant::now() < deadline,
            "the slot of an ended watch was never freed: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// --- slow request bodies ---------------------------------------------------------

/// A call sent over raw HTTP/2 whose request message never finishes arriving.
struct SlowCall {
    response: h2::client::ResponseFuture,
    /// Kept open: dropping it would cancel the call.
    _body: h2::SendStream<Bytes>,
}

impl SlowCall {
    /// Starts ListParties of `w`'s tenant on a connection of its own and
    /// returns once the server has its headers and the first bytes.
    async fn start(s: &TestServer, w: &World) -> SlowCall {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", s.port))
            .await
            .expect("connect");
        let (client, mut connection) = h2::client::handshake(tcp).await.expect("handshake");
        let mut ping_pong = connection.ping_pong().expect("ping");
        tokio::spawn(connection);
        let mut client = client.ready().await.expect("ready");
        let request = http::Request::post(format!(
            "http://127.0.0.1:{}/accord.v1.PartyService/ListParties",
            s.port
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {}", w.admin_key))
        .body(())
        .unwrap();
        let (response, mut body) = client.send_request(request, false).expect("send");
        // A gRPC frame announcing a 64-byte message, of which 3 bytes come.
        body.send_data(
            Bytes::from_static(&[0, 0, 0, 0, 64, 0x0a, 0x01, b't']),
            false,
        )
        .expect("send data");
        // The server has read everything sent before the ping's answer.
        ping_pong.ping(h2::Ping::opaque()).await.expect("pong");
        SlowCall {
            response,
            _body: body,
        }
    }

    /// The call's final status, from the headers of a trailers-only answer
    /// or from the trailers.
    async fn status(self) -> Status {
        let response = self.response.await.expect("response");
        if let Some(status) = Status::from_header_map(response.headers()) {
            return status;
        }
        let mut body = response.into_body();
        while let Some(data) = body.data().await {
            data.expect("response data");
        }
        let trailers = body
            .trailers()
            .await
            .expect("trailers")
            .expect("grpc-status");
        Status::from_header_map(&trailers).expect("grpc-status")
    }
}

async fn slow_request_bodies_hold_no_permit_and_fail_after_the_timeout(backend: Backend) {
    let body_timeout = Duration::from_secs(1);
    let Some(s) = TestServer::start_with(backend, |c| {
        c.max_concurrent_requests = 2;
        c.max_concurrent_requests_per_tenant = Some(1);
        c.request_body_timeout = body_timeout;
    })
    .await
    else {
        return;
    };
    let flood = World::new(&s, "flood").await;
    let quiet = World::new(&s, "quiet").await;
    let started = Instant::now();

    // More calls waiting for their bodies than the server has permits.
    let mut slow = Vec::new();
    for _ in 0..4 {
        slow.push(SlowCall::start(&s, &flood).await);
    }

    // Neither the other tenant nor the slow tenant itself is held up.
    list_parties_promptly(&quiet).await;
    list_parties_promptly(&flood).await;

    // Each slow call fails once its body is overdue.
    for call in slow {
        let status = tokio::time::timeout(Duration::from_secs(10), call.status())
            .await
            .expect("a slow body is cut off, not left to hang");
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
        assert_reason(&status, "REQUEST_BODY_TIMEOUT");
    }
    assert!(started.elapsed() >= body_timeout);
}

async fn a_measurement_stream_holds_a_stream_slot_for_its_whole_life(backend: Backend) {
    let Some(s) = TestServer::start_with(backend, |c| {
        c.max_watch_streams_per_tenant = Some(1);
        c.max_concurrent_requests_per_tenant = Some(1);
    })
    .await
    else {
        return;
    };
    let w = World::new(&s, "acme").await;

    let (batches, answers) = open_measurement_stream(&w).await.expect("a stream");

    // The tenant's one stream slot is taken, by a watch or another stream
    // alike; its one call slot is free.
    assert_refused(open_watch(&w).await, "TENANT_TOO_MANY_WATCHES");
    assert_refused(open_measurement_stream(&w).await, "TENANT_TOO_MANY_WATCHES");
    list_parties_promptly(&w).await;
    // Still open, still answering.
    batches
        .send(pb::StreamMeasurementsRequest {
            parent: w.tenant.clone(),
            measurements: Vec::new(),
            sequence: 2,
        })
        .await
        .unwrap();
    let mut answers = answers;
    let second = answers.message().await.unwrap().unwrap();
    assert_eq!(second.sequence, 2);

    // The client finishes: the stream ends and frees its slot.
    drop(batches);
    assert!(answers.message().await.unwrap().is_none());
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Err(status) = open_watch(&w).await {
        assert!(
            Instant::now() < deadline,
            "the slot of a finished measurement stream was never freed: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

on_both_backends!(
    backend:
    a_measurement_stream_holds_a_stream_slot_for_its_whole_life,
    a_tenant_at_its_share_of_calls_does_not_stop_another_tenants_calls,
    the_server_limit_refuses_calls_once_the_shares_fill_it,
    watch_limits_refuse_the_excess_and_free_a_slot_when_a_stream_ends,
    a_watch_the_server_ends_frees_its_slot,
    slow_request_bodies_hold_no_permit_and_fail_after_the_timeout,
);
