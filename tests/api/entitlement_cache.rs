//! Serving entitlements from memory: writes invalidate at once on the replica
//! that takes them, other replicas follow through LISTEN/NOTIFY within a
//! second (also after losing that connection), and WatchEntitlements is
//! driven by the same feed.

use std::time::{Duration, Instant};

use accord::config::Config;
use accord::proto::v1 as pb;
use pb::entitlement_service_client::EntitlementServiceClient;
use tokio_stream::StreamExt;
use tonic::Code;

use crate::on_both_backends;
use crate::support::*;

/// A published SLA on the seed's service with availability `target`.
async fn published_sla(s: &TestServer, seed: &Seed, target: f64) -> pb::Agreement {
    let a = seed
        .create_agreement(
            s,
            "sla",
            pb::Agreement {
                objectives: vec![availability(target)],
                ..seed.service_level()
            },
        )
        .await;
    s.agreements()
        .publish_agreement(pb::PublishAgreementRequest {
            name: a.name.clone(),
            etag: a.etag.clone(),
        })
        .await
        .expect("publish")
        .into_inner()
}

async fn set_target(s: &TestServer, agreement: &pb::Agreement, target: f64) -> pb::Agreement {
    s.agreements()
        .update_agreement(pb::UpdateAgreementRequest {
            agreement: Some(pb::Agreement {
                name: agreement.name.clone(),
                etag: agreement.etag.clone(),
                objectives: vec![availability(target)],
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["objectives".into()],
            }),
        })
        .await
        .expect("update")
        .into_inner()
}

/// A watch of the seed's customer on its service.
fn watch_request(seed: &Seed, heartbeat_seconds: Option<i64>) -> pb::WatchEntitlementsRequest {
    pb::WatchEntitlementsRequest {
        parent: seed.tenant.clone(),
        pairs: vec![pb::EntitlementPair {
            consumer: seed.customer.clone(),
            service: seed.service.clone(),
        }],
        heartbeat_interval: heartbeat_seconds
            .map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
    }
}

fn request(seed: &Seed) -> pb::ResolveEntitlementRequest {
    pb::ResolveEntitlementRequest {
        parent: seed.tenant.clone(),
        consumer: seed.customer.clone(),
        service: seed.service.clone(),
        ..Default::default()
    }
}

async fn target_of<T>(client: &mut EntitlementServiceClient<T>, seed: &Seed) -> Result<f64, Code>
where
    T: tonic::client::GrpcService<tonic::body::Body> + Clone,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    match client.resolve_entitlement(request(seed)).await {
        Ok(e) => Ok(e.into_inner().objectives[0]
            .objective
            .as_ref()
            .unwrap()
            .target),
        Err(status) => Err(status.code()),
    }
}

async fn a_write_is_seen_by_the_next_resolve(s: TestServer) {
    let seed = seed(&s, "t").await;
    let a = published_sla(&s, &seed, 0.99).await;
    let mut client = s.entitlements();
    // Twice: the second is served from the cache.
    assert_eq!(target_of(&mut client, &seed).await, Ok(0.99));
    assert_eq!(target_of(&mut client, &seed).await, Ok(0.99));
    let a = set_target(&s, &a, 0.995).await;
    assert_eq!(target_of(&mut client, &seed).await, Ok(0.995));
    // An override for the customer.
    s.agreements()
        .create_override(pb::CreateOverrideRequest {
            parent: a.name.clone(),
            override_id: "gold".into(),
            r#override: Some(pb::Override {
                consumer: seed.customer.clone(),
                effective_from: Some(ts(JAN_2026)),
                objective_patches: vec![pb::ObjectivePatch {
                    key: "availability".into(),
                    target: Some(0.9999),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create override");
    assert_eq!(target_of(&mut client, &seed).await, Ok(0.9999));
    // Termination now: no entitlement any more.
    s.agreements()
        .terminate_agreement(pb::TerminateAgreementRequest {
            name: a.name.clone(),
            etag: String::new(),
            terminate_time: None,
        })
        .await
        .expect("terminate");
    assert_eq!(target_of(&mut client, &seed).await, Err(Code::NotFound));
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
    let seed = seed(&s, "t").await;
    let a = published_sla(&s, &seed, 0.99).await;
    let mut stream = s
        .entitlements()
        .watch_entitlements(watch_request(&seed, Some(1)))
        .await
        .expect("watch")
        .into_inner();
    let first = next_event(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(result_target(&first), Ok(0.99));
    // Nothing changes: a heartbeat within the interval.
    let beat = next_event(&mut stream, Duration::from_secs(3)).await;
    assert!(
        matches!(beat, pb::watch_entitlements_response::Event::Heartbeat(_)),
        "{beat:?}"
    );
    let a = set_target(&s, &a, 0.995).await;
    let changed = next_result(&mut stream, Duration::from_secs(3)).await;
    assert_eq!(result_target(&changed), Ok(0.995));
    s.agreements()
        .terminate_agreement(pb::TerminateAgreementRequest {
            name: a.name.clone(),
            etag: String::new(),
            terminate_time: None,
        })
        .await
        .expect("terminate");
    let gone = next_result(&mut stream, Duration::from_secs(3)).await;
    assert_eq!(result_target(&gone), Err(Code::NotFound as i32));
}

async fn watch_requests_are_validated(s: TestServer) {
    let seed = seed(&s, "t").await;
    let mut client = s.entitlements();
    let watch = |pairs: Vec<pb::EntitlementPair>, seconds: i64| pb::WatchEntitlementsRequest {
        parent: seed.tenant.clone(),
        pairs,
        heartbeat_interval: Some(prost_types::Duration { seconds, nanos: 0 }),
    };
    let pair = pb::EntitlementPair {
        consumer: seed.customer.clone(),
        service: seed.service.clone(),
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
                    service: seed.service.clone(),
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
    let seed = seed(&s, "t").await;
    published_sla(&s, &seed, 0.99).await;
    let ledger = s
        .services()
        .create_service(pb::CreateServiceRequest {
            parent: seed.tenant.clone(),
            service_id: "ledger".into(),
            service: Some(pb::Service {
                owner: seed.provider.clone(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create service")
        .into_inner();
    let other = seed
        .create_agreement(
            &s,
            "ledger-sla",
            pb::Agreement {
                services: vec![ledger.name.clone()],
                ..seed.service_level()
            },
        )
        .await;
    let other = s
        .agreements()
        .publish_agreement(pb::PublishAgreementRequest {
            name: other.name.clone(),
            etag: other.etag.clone(),
        })
        .await
        .expect("publish")
        .into_inner();
    let mut stream = s
        .entitlements()
        .watch_entitlements(watch_request(&seed, Some(1)))
        .await
        .expect("watch")
        .into_inner();
    assert_eq!(
        result_target(&next_event(&mut stream, Duration::from_secs(5)).await),
        Ok(0.99)
    );
    // Change the other service every 100 ms while waiting for a heartbeat.
    let busy = {
        let agreements = s.agreements();
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

/// A second replica on the first one's PostgreSQL database.
pub(crate) async fn second_replica(first: &TestServer) -> (tonic::transport::Channel, impl Drop) {
    let config = Config {
        database_url: first.database_url.clone(),
        migration_database_url: first.db.migration_url(),
        max_connections: 5,
        bootstrap_key: Some(accord::domain::api_key::Secret::new(
            first.platform_key.clone(),
        )),
        ..Config::default()
    };
    let (_, channel, stop, task) = spawn_server(config).await;
    struct Stop(
        Option<tokio::sync::oneshot::Sender<()>>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    );
    impl Drop for Stop {
        fn drop(&mut self) {
            if let Some(stop) = self.0.take() {
                let _ = stop.send(());
            }
            self.1.abort();
        }
    }
    (channel, Stop(Some(stop), task))
}

/// Polls `check` until it holds, for at most `within`; returns how long it took.
pub(crate) async fn eventually<F, Fut>(within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "not seen within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_see_each_others_writes_within_a_second() {
    let Some(first) = TestServer::start(Backend::Postgres).await else {
        return;
    };
    let seed = seed(&first, "t").await;
    let a = published_sla(&first, &seed, 0.99).await;
    let (channel, _replica) = second_replica(&first).await;
    let mut other =
        EntitlementServiceClient::new(tonic::service::interceptor::InterceptedService::new(
            channel.clone(),
            Bearer::new(&seed.admin_key),
        ));
    // Warm the other replica's cache, and watch there.
    assert_eq!(target_of(&mut other, &seed).await, Ok(0.99));
    assert_eq!(target_of(&mut other, &seed).await, Ok(0.99));
    let mut stream = other
        .watch_entitlements(watch_request(&seed, None))
        .await
        .expect("watch")
        .into_inner();
    assert_eq!(
        result_target(&next_event(&mut stream, Duration::from_secs(5)).await),
        Ok(0.99)
    );

    let a = set_target(&first, &a, 0.995).await;
    let took = eventually(Duration::from_secs(1), || {
        let mut other = other.clone();
        let seed = &seed;
        async move { target_of(&mut other, seed).await == Ok(0.995) }
    })
    .await;
    println!("the other replica saw the update after {took:?}");
    assert_eq!(
        result_target(&next_event(&mut stream, Duration::from_secs(1)).await),
        Ok(0.995)
    );

    // Lose the other replica's LISTEN connection: it must not serve what it
    // cached before, and must catch up once reconnected.
    let admin = first.db.admin_url().expect("postgres admin url");
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&admin)
        .await
        .expect("connect as admin");
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query LIKE 'LISTEN%accord_changes%' AND datname = current_database()) AS t",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    admin.close().await;
    assert!(
        killed >= 2,
        "expected both replicas' listeners, found {killed}"
    );
    set_target(&first, &a, 0.999).await;
    let took = eventually(Duration::from_secs(3), || {
        let mut other = other.clone();
        let seed = &seed;
        async move { target_of(&mut other, seed).await == Ok(0.999) }
    })
    .await;
    println!("after losing LISTEN, the other replica saw the update after {took:?}");

    // A key revoked through one replica stops working on the other, although
    // the other had it cached.
    let reader = first.create_key("t", "reader", pb::Role::Reader).await;
    let mut as_reader = EntitlementServiceClient::new(
        tonic::service::interceptor::InterceptedService::new(channel.clone(), Bearer::new(&reader)),
    );
    assert_eq!(target_of(&mut as_reader, &seed).await, Ok(0.999));
    first
        .api_keys()
        .revoke_api_key(pb::RevokeApiKeyRequest {
            name: "tenants/t/apiKeys/reader".into(),
            etag: String::new(),
        })
        .await
        .expect("revoke");
    let took = eventually(Duration::from_secs(1), || {
        let mut as_reader = as_reader.clone();
        let seed = &seed;
        async move { target_of(&mut as_reader, seed).await == Err(Code::Unauthenticated) }
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
    let seed = seed(&s, "t").await;
    published_sla(&s, &seed, 0.99).await;
    let mut client = s.entitlements();
    for _ in 0..4 {
        assert_eq!(target_of(&mut client, &seed).await, Ok(0.99));
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
