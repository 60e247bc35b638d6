//! Serving entitlements from memory: writes invalidate at once on the replica
//! that takes them, other replicas follow through LISTEN/NOTIFY within a
//! second (also after losing that connection), and WatchEntitlements is
//! driven by the same feed.

use std::time::Duration;

use accord::proto::v1 as pb;
use pb::entitlement_service_client::EntitlementServiceClient;
use tokio_stream::StreamExt;
use tonic::Code;

use crate::on_both_backends;
use crate::support::*;

/// `w` with a published SLA on `payments` of availability `target`.
async fn published_sla(w: &World, target: f64) -> pb::Agreement {
    w.publish("sla", w.sla(vec![availability(target)])).await
}

async fn a_write_is_seen_by_the_next_resolve(s: TestServer) {
    let w = World::new(&s, "t").await;
    let a = published_sla(&w, 0.99).await;
    let mut client = w.entitlements();
    // Twice: the second is served from the cache.
    assert_eq!(w.availability_of(&mut client).await, Ok(0.99));
    assert_eq!(w.availability_of(&mut client).await, Ok(0.99));
    let a = w.set_availability(&a.name, 0.995).await;
    assert_eq!(w.availability_of(&mut client).await, Ok(0.995));
    // An override for the customer.
    w.add_override(&a.name, "gold", target_override(&w.bank, 0.9999))
        .await;
    assert_eq!(w.availability_of(&mut client).await, Ok(0.9999));
    // Termination now: no entitlement any more.
    w.terminate_now(&a.name).await;
    assert_eq!(w.availability_of(&mut client).await, Err(Code::NotFound));
}

/// A watch of the bank on `payments` through `client`.
async fn watch(
    client: &mut EntitlementServiceClient<Authed>,
    w: &World,
    heartbeat_seconds: Option<i64>,
) -> tonic::Streaming<pb::WatchEntitlementsResponse> {
    client
        .watch_entitlements(w.watch_request(heartbeat_seconds))
        .await
        .expect("watch")
        .into_inner()
}

/// The next message of a watch, failing after `within`.
async fn next_event(
    stream: &mut tonic::Streaming<pb::WatchEntitlementsResponse>,
    within: Duration,
) -> pb::watch_entitlements_response::Event {
    tokio::time::timeout(within, stream.next())
        .await
        .expect("a watch message in time")
        .expect("the stream is open")
        .expect("a message, not an error")
        .event
        .expect("an event")
}

/// The next message of a watch that is not a heartbeat, each within `within`.
async fn next_result(
    stream: &mut tonic::Streaming<pb::WatchEntitlementsResponse>,
    within: Duration,
) -> pb::watch_entitlements_response::Event {
    loop {
        let e = next_event(stream, within).await;
        if !matches!(e, pb::watch_entitlements_response::Event::Heartbeat(_)) {
            return e;
        }
    }
}

fn result_target(event: &pb::watch_entitlements_response::Event) -> Result<f64, i32> {
    match event {
        pb::watch_entitlements_response::Event::Result(r) => match r.result.as_ref().unwrap() {
            pb::entitlement_result::Result::Entitlement(e) => {
                Ok(e.objectives[0].objective.as_ref().unwrap().target)
            }
            pb::entitlement_result::Result::Error(status) => Err(status.code),
        },
        other => panic!("expected a result, got {other:?}"),
    }
}

async fn watchers_get_the_current_value_then_each_change(s: TestServer) {
    let w = World::new(&s, "t").await;
    let a = published_sla(&w, 0.99).await;
    let mut stream = watch(&mut w.entitlements(), &w, Some(1)).await;
    let first = next_event(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(result_target(&first), Ok(0.99));
    // Nothing changes: a heartbeat within the interval.
    let beat = next_event(&mut stream, Duration::from_secs(3)).await;
    assert!(
        matches!(beat, pb::watch_entitlements_response::Event::Heartbeat(_)),
        "{beat:?}"
    );
    let a = w.set_availability(&a.name, 0.995).await;
    let changed = next_result(&mut stream, Duration::from_secs(3)).await;
    assert_eq!(result_target(&changed), Ok(0.995));
    w.terminate_now(&a.name).await;
    let gone = next_result(&mut stream, Duration::from_secs(3)).await;
    assert_eq!(result_target(&gone), Err(Code::NotFound as i32));
}

async fn watch_requests_are_validated(s: TestServer) {
    let w = World::new(&s, "t").await;
    let mut client = w.entitlements();
    let watch = |pairs: Vec<pb::EntitlementPair>, seconds: i64| pb::WatchEntitlementsRequest {
        pairs,
        ..w.watch_request(Some(seconds))
    };
    let pair = pb::EntitlementPair {
        consumer: w.bank.clone(),
        service: w.payments.clone(),
    };
    assert_invalid_field(client.watch_entitlements(watch(vec![], 10)).await, "pairs");
    assert_invalid_field(
        client
            .watch_entitlements(watch(vec![pair.clone()], 0))
            .await,
        "heartbeat_interval",
    );
    assert_invalid_field(
        client
            .watch_entitlements(watch(
                vec![pb::EntitlementPair {
                    consumer: "parties/x".into(),
                    service: w.payments.clone(),
                }],
                10,
            ))
            .await,
        "pairs[0].consumer",
    );
}

/// Changes to services nobody watches must not starve a watch of its
/// heartbeats.
async fn heartbeats_come_however_busy_other_services_are(s: TestServer) {
    let w = World::new(&s, "t").await;
    published_sla(&w, 0.99).await;
    let ledger = w.service("ledger").await;
    let other = w
        .publish(
            "ledger-sla",
            pb::Agreement {
                services: vec![ledger],
                ..w.standard_sla()
            },
        )
        .await;
    let mut stream = watch(&mut w.entitlements(), &w, Some(1)).await;
    assert_eq!(
        result_target(&next_event(&mut stream, Duration::from_secs(5)).await),
        Ok(0.99)
    );
    // Change the other service every 100 ms while waiting for a heartbeat.
    let busy = {
        let agreements = w.agreements();
        let name = other.name.clone();
        tokio::spawn(async move {
            let mut agreements = agreements;
            for i in 0..30 {
                let _ = agreements
                    .update_agreement(pb::UpdateAgreementRequest {
                        agreement: Some(pb::Agreement {
                            name: name.clone(),
                            display_name: format!("busy {i}"),
                            ..Default::default()
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["display_name".into()],
                        }),
                    })
                    .await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let beat = next_event(&mut stream, Duration::from_millis(2500)).await;
    assert!(
        matches!(beat, pb::watch_entitlements_response::Event::Heartbeat(_)),
        "{beat:?}"
    );
    busy.abort();
}

on_both_backends!(
    heartbeats_come_however_busy_other_services_are,
    a_write_is_seen_by_the_next_resolve,
    watchers_get_the_current_value_then_each_change,
    watch_requests_are_validated,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_see_each_others_writes_within_a_second() {
    let Some(first) = TestServer::start(Backend::Postgres).await else {
        return;
    };
    let w = World::new(&first, "t").await;
    let a = published_sla(&w, 0.99).await;
    let replica = first.second_replica().await;
    let mut other = replica.clients(&w.admin_key).entitlements();
    // Warm the other replica's cache, and watch there.
    assert_eq!(w.availability_of(&mut other).await, Ok(0.99));
    assert_eq!(w.availability_of(&mut other).await, Ok(0.99));
    let mut stream = watch(&mut other, &w, None).await;
    assert_eq!(
        result_target(&next_event(&mut stream, Duration::from_secs(5)).await),
        Ok(0.99)
    );

    let a = w.set_availability(&a.name, 0.995).await;
    let took = eventually(Duration::from_secs(1), || {
        let (mut other, w) = (other.clone(), &w);
        async move { w.availability_of(&mut other).await == Ok(0.995) }
    })
    .await;
    println!("the other replica saw the update after {took:?}");
    assert_eq!(
        result_target(&next_event(&mut stream, Duration::from_secs(1)).await),
        Ok(0.995)
    );

    // Lose the other replica's LISTEN connection: it must not serve what it
    // cached before, and must catch up once reconnected.
    let killed = first.db.terminate_listeners().await;
    assert!(
        killed >= 2,
        "expected both replicas' listeners, found {killed}"
    );
    w.set_availability(&a.name, 0.999).await;
    let took = eventually(Duration::from_secs(3), || {
        let (mut other, w) = (other.clone(), &w);
        async move { w.availability_of(&mut other).await == Ok(0.999) }
    })
    .await;
    println!("after losing LISTEN, the other replica saw the update after {took:?}");

    // A key revoked through one replica stops working on the other, although
    // the other had it cached.
    let reader = w.key("reader", pb::Role::Reader).await;
    let mut as_reader = replica.clients(&reader).entitlements();
    assert_eq!(w.availability_of(&mut as_reader).await, Ok(0.999));
    w.revoke_key("reader").await;
    let took = eventually(Duration::from_secs(1), || {
        let (mut as_reader, w) = (as_reader.clone(), &w);
        async move { w.availability_of(&mut as_reader).await == Err(Code::Unauthenticated) }
    })
    .await;
    println!("the other replica refused the revoked key after {took:?}");
}

/// A stand-in OpenTelemetry collector: keeps the last value of each metric.
#[derive(Default, Clone)]
struct Collector(std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, f64>>>);

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::MetricsService
    for Collector
{
    async fn export(
        &self,
        request: tonic::Request<
            opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
        >,
    ) -> Result<
        tonic::Response<
            opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse,
        >,
        tonic::Status,
    > {
        use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value};
        let mut seen = self.0.lock().unwrap();
        for rm in request.into_inner().resource_metrics {
            for sm in rm.scope_metrics {
                for m in sm.metrics {
                    let points = match m.data {
                        Some(Data::Sum(s)) => s.data_points,
                        Some(Data::Gauge(g)) => g.data_points,
                        _ => continue,
                    };
                    for p in points {
                        let v = match p.value {
                            Some(Value::AsDouble(d)) => d,
                            Some(Value::AsInt(i)) => i as f64,
                            None => continue,
                        };
                        seen.insert(m.name.clone(), v);
                    }
                }
            }
        }
        Ok(tonic::Response::new(Default::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_hit_ratio_is_exported() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let service = opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::MetricsServiceServer::new(collector.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let Some(s) = TestServer::start_with(Backend::Sqlite, |c| {
        c.otlp_endpoint = Some(format!("http://127.0.0.1:{port}"));
        c.metric_export_interval = Duration::from_millis(200);
    })
    .await
    else {
        return;
    };
    let w = World::new(&s, "t").await;
    published_sla(&w, 0.99).await;
    let mut client = w.entitlements();
    for _ in 0..4 {
        assert_eq!(w.availability_of(&mut client).await, Ok(0.99));
    }
    // One miss, then three hits.
    let value = |name: &str| collector.0.lock().unwrap().get(name).copied();
    eventually(Duration::from_secs(5), || async {
        value("accord.entitlement.cache.hits") == Some(3.0)
    })
    .await;
    assert_eq!(value("accord.entitlement.cache.misses"), Some(1.0));
    assert_eq!(value("accord.entitlement.cache.hit_ratio"), Some(0.75));
    assert_eq!(value("accord.entitlement.cache.entries"), Some(1.0));
}
