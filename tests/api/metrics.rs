//! What `/metrics` shows of the server's own work, read through the admin
//! server after calls through the real gRPC server: every call's duration
//! by method and status code (to a stream's end, whatever ended it), the
//! streams open, ingestion by outcome and reason, the database pool, and the
//! breaches open.

use std::time::{Duration, Instant};

use accord::config::Config;
use accord::proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::admin::TenantsLock;
use crate::on_both_backends;
use crate::support::*;

const DURATION: &str = "rpc_server_call_duration_seconds";
const OPEN_STREAMS: &str = "accord_streams_open";
const OPEN_BREACHES: &str = "accord_breaches_open";

fn admin_port(s: &TestServer) -> u16 {
    s.admin_port.expect("the test server runs the admin server")
}

/// The samples of `name` whose labels include `labels`.
fn series<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape.samples.get(name).map_or_else(Vec::new, |samples| {
        samples
            .iter()
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
            })
            .collect()
    })
}

/// The value of the one sample of `name` with `labels`; 0 when there is
/// none yet (a counter or histogram before its first recording).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match series(scrape, name, labels).as_slice() {
        [] => 0.0,
        [one] => {
            assert_eq!(one.labels["otel_scope_name"], "accord", "{one:?}");
            one.value
        }
        many => panic!("{name} {labels:?} is more than one series: {many:?}"),
    }
}

/// The labels of `service`/`method` calls ended with `code`.
fn call_labels<'a>(service: &'a str, method: &'a str, code: &'a str) -> [(&'a str, &'a str); 4] {
    [
        ("rpc_system", "grpc"),
        ("rpc_service", service),
        ("rpc_method", method),
        ("rpc_grpc_status_code", code),
    ]
}

/// How many calls of `service`/`method` ended with `code`, and how long
/// they took in all, in seconds.
fn calls(scrape: &Scrape, service: &str, method: &str, code: Code) -> (f64, f64) {
    let code = (code as i32).to_string();
    let labels = call_labels(service, method, &code);
    (
        value(scrape, &format!("{DURATION}_count"), &labels),
        value(scrape, &format!("{DURATION}_sum"), &labels),
    )
}

/// How many more calls of `service`/`method` ended with `code` in `after`
/// than in `before`.
fn more_calls(before: &Scrape, after: &Scrape, service: &str, method: &str, code: Code) -> f64 {
    calls(after, service, method, code).0 - calls(before, service, method, code).0
}

/// The histogram of `service`/`method` calls ended with `code` is whole:
/// its buckets are the documented boundaries and `+Inf`, cumulative, and
/// the last holds every call.
fn assert_histogram(scrape: &Scrape, service: &str, method: &str, code: Code) {
    assert_eq!(scrape.types[DURATION], "histogram");
    let code_text = (code as i32).to_string();
    let labels = call_labels(service, method, &code_text);
    let buckets = series(scrape, &format!("{DURATION}_bucket"), &labels);
    let bounds: Vec<f64> = buckets
        .iter()
        .map(|b| match b.labels["le"].as_str() {
            "+Inf" => f64::INFINITY,
            le => le.parse().expect("a bucket bound"),
        })
        .collect();
    let mut expected = ::accord::metrics::DURATION_BOUNDARIES.to_vec();
    expected.push(f64::INFINITY);
    assert_eq!(bounds, expected, "{buckets:?}");
    let counts: Vec<f64> = buckets.iter().map(|b| b.value).collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    assert_eq!(
        counts.last().copied(),
        Some(calls(scrape, service, method, code).0)
    );
}

fn get_party(name: &str) -> pb::GetPartyRequest {
    pb::GetPartyRequest { name: name.into() }
}

const PARTIES: &str = "accord.v1.PartyService";

async fn unary_calls_are_recorded_by_method_and_status_code(s: TestServer) {
    let port = admin_port(&s);
    let w = World::new(&s, "acme").await;
    let before = scrape(port).await;

    w.parties().get_party(get_party(&w.bank)).await.unwrap();
    w.parties().get_party(get_party(&w.bank)).await.unwrap();
    let missing = w.name("parties", "nope");
    assert_code(
        w.parties().get_party(get_party(&missing)).await,
        Code::NotFound,
    );
    // Refused by authentication, before any service sees it.
    assert_code(
        s.clients("acc_no_such_key_000000000000000000")
            .parties()
            .get_party(get_party(&w.bank))
            .await,
        Code::Unauthenticated,
    );
    let health = health_of(s.channel.clone(), "").await;
    assert_eq!(health.ok(), Some(ServingStatus::Serving));
    // A path nobody serves is counted, under one name for all of them.
    let mut grpc = tonic::client::Grpc::new(s.channel.clone());
    grpc.ready().await.unwrap();
    let unknown = grpc
        .unary::<(), (), _>(
            tonic::Request::new(()),
            http::uri::PathAndQuery::from_static("/nobody.Serves/This"),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    assert_code(unknown, Code::Unimplemented);

    let after = scrape(port).await;
    let more = |service, method, code| more_calls(&before, &after, service, method, code);
    assert_eq!(more(PARTIES, "GetParty", Code::Ok), 2.0);
    assert_eq!(more(PARTIES, "GetParty", Code::NotFound), 1.0);
    assert_eq!(more(PARTIES, "GetParty", Code::Unauthenticated), 1.0);
    assert_eq!(more("grpc.health.v1.Health", "Check", Code::Ok), 1.0);
    assert_eq!(more("_OTHER", "_OTHER", Code::Unimplemented), 1.0);
    assert!(
        series(
            &after,
            &format!("{DURATION}_count"),
            &[("rpc_method", "This")]
        )
        .is_empty()
    );
    // The calls that made the world: CreateTenant with the bootstrap key.
    assert!(calls(&after, "accord.v1.TenantService", "CreateTenant", Code::Ok).0 >= 1.0);
    for code in [Code::Ok, Code::NotFound, Code::Unauthenticated] {
        assert_histogram(&after, PARTIES, "GetParty", code);
    }
    // Milliseconds, not the length of the test.
    let (count, sum) = calls(&after, PARTIES, "GetParty", Code::Ok);
    assert!(sum > 0.0 && sum / count < 1.0, "{sum} s over {count} calls");
}

const MEASUREMENTS: &str = "accord.v1.MeasurementService";

fn batch(w: &World, sequence: i64, id: &str) -> pb::StreamMeasurementsRequest {
    pb::StreamMeasurementsRequest {
        parent: w.tenant.clone(),
        measurements: vec![counts(id, &w.payments, ago(60), 1, 1)],
        sequence,
    }
}

async fn a_stream_failing_midway_is_recorded_at_its_end_with_its_status(s: TestServer) {
    let port = admin_port(&s);
    let w = World::new(&s, "acme").await;
    w.measured_sla().await;
    let before = scrape(port).await;
    let open = [("rpc_method", "StreamMeasurements")];
    assert_eq!(value(&before, OPEN_STREAMS, &open), 0.0);

    let started = Instant::now();
    let (batches, rx) = mpsc::channel(4);
    let mut answers = w
        .measurements()
        .stream_measurements(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    batches.send(batch(&w, 1, "first")).await.unwrap();
    assert_eq!(answers.message().await.unwrap().unwrap().accepted, 1);
    let during = scrape(port).await;
    assert_eq!(value(&during, OPEN_STREAMS, &open), 1.0);
    assert_eq!(during.types[OPEN_STREAMS], "gauge");
    assert_eq!(value(&during, "accord_streams_limit", &[]), 1024.0);
    // Its first answer went out, but the call has not ended.
    for code in [Code::Ok, Code::InvalidArgument, Code::Cancelled] {
        assert_eq!(
            more_calls(&before, &during, MEASUREMENTS, "StreamMeasurements", code),
            0.0
        );
    }

    tokio::time::sleep(Duration::from_millis(300)).await;
    let other_parent = pb::StreamMeasurementsRequest {
        parent: "tenants/other".into(),
        ..batch(&w, 2, "second")
    };
    batches.send(other_parent).await.unwrap();
    assert_invalid_field(answers.message().await, "parent");
    let held = started.elapsed().as_secs_f64();

    let after = scrape(port).await;
    assert_eq!(
        more_calls(
            &before,
            &after,
            MEASUREMENTS,
            "StreamMeasurements",
            Code::InvalidArgument
        ),
        1.0
    );
    let (_, took) = calls(
        &after,
        MEASUREMENTS,
        "StreamMeasurements",
        Code::InvalidArgument,
    );
    assert!(
        (0.3..=held).contains(&took),
        "recorded {took} s for a stream held {held} s"
    );
    assert_histogram(
        &after,
        MEASUREMENTS,
        "StreamMeasurements",
        Code::InvalidArgument,
    );
    assert_eq!(value(&after, OPEN_STREAMS, &open), 0.0);
}

const ENTITLEMENTS: &str = "accord.v1.EntitlementService";

async fn a_watch_is_open_until_its_client_cancels_it_and_then_recorded_cancelled(s: TestServer) {
    let port = admin_port(&s);
    let w = World::new(&s, "acme").await;
    let open = [
        ("rpc_service", ENTITLEMENTS),
        ("rpc_method", "WatchEntitlements"),
    ];
    let before = scrape(port).await;

    let mut watch = w
        .entitlements()
        .watch_entitlements(w.watch_request(Some(1)))
        .await
        .unwrap()
        .into_inner();
    watch.message().await.unwrap().expect("a first message");
    let during = scrape(port).await;
    assert_eq!(value(&during, OPEN_STREAMS, &open), 1.0);
    assert_eq!(
        value(
            &during,
            OPEN_STREAMS,
            &[("rpc_method", "StreamMeasurements")]
        ),
        0.0
    );
    drop(watch);

    let gone = async || {
        let now = scrape(port).await;
        value(&now, OPEN_STREAMS, &open) == 0.0
            && more_calls(
                &before,
                &now,
                ENTITLEMENTS,
                "WatchEntitlements",
                Code::Cancelled,
            ) == 1.0
    };
    eventually(Duration::from_secs(10), gone).await;
    let after = scrape(port).await;
    assert_eq!(
        more_calls(&before, &after, ENTITLEMENTS, "WatchEntitlements", Code::Ok),
        0.0
    );
    let (_, took) = calls(&after, ENTITLEMENTS, "WatchEntitlements", Code::Cancelled);
    assert!(took > 0.0, "{took}");
}

const ACCEPTED: &str = "accord_measurements_accepted_total";
const DUPLICATES: &str = "accord_measurements_duplicates_total";
const REJECTED: &str = "accord_measurements_rejected_total";

async fn ingestion_counts_every_item_by_outcome_and_reason_from_both_methods(s: TestServer) {
    let port = admin_port(&s);
    let w = World::new(&s, "acme").await;
    w.measured_sla().await;
    let pay = w.payments.clone();
    let t = ago(60);
    w.report(vec![counts("taken", &pay, t, 1, 1)]).await;
    let before = scrape(port).await;
    assert_eq!(before.types[ACCEPTED], "counter");
    assert_eq!(before.types[REJECTED], "counter");
    // Every reason is there from zero.
    assert_eq!(
        before.samples[REJECTED].len(),
        15,
        "{:?}",
        before.samples[REJECTED]
    );

    let reported = w
        .report(vec![
            counts("a", &pay, t, 1, 2),
            counts("b", &pay, t, 1, 2),
            counts("taken", &pay, t, 1, 1),
            counts("taken", &pay, t, 2, 2),
            counts("negative", &pay, t, -1, 1),
            counts("negative-too", &pay, t, 1, -1),
            counts("nowhere", &w.name("services", "nope"), t, 1, 1),
        ])
        .await;
    assert_eq!((reported.accepted, reported.duplicates), (2, 1));
    // A batch whose every item fails its own checks reads nothing.
    let refused = w
        .report(vec![
            counts("bad id 2", &pay, t, 1, 1),
            counts("negative-again", &pay, t, -5, 1),
        ])
        .await;
    assert_eq!((refused.accepted, refused.rejections.len()), (0, 2));
    let (batches, rx) = mpsc::channel(4);
    let mut answers = w
        .measurements()
        .stream_measurements(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let stream_batch = |sequence, measurements| pb::StreamMeasurementsRequest {
        parent: w.tenant.clone(),
        measurements,
        sequence,
    };
    batches
        .send(stream_batch(
            1,
            vec![
                counts("c", &pay, t, 1, 1),
                counts("too-good", &pay, t, 3, 2),
            ],
        ))
        .await
        .unwrap();
    batches
        .send(stream_batch(
            2,
            vec![counts("c", &pay, t, 1, 1), counts("bad id", &pay, t, 1, 1)],
        ))
        .await
        .unwrap();
    let first = answers.message().await.unwrap().unwrap();
    let second = answers.message().await.unwrap().unwrap();
    assert_eq!((first.accepted, first.duplicates), (1, 0));
    assert_eq!((second.accepted, second.duplicates), (0, 1));

    let after = scrape(port).await;
    let more = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    assert_eq!(more(ACCEPTED, &[]), 3.0);
    assert_eq!(more(DUPLICATES, &[]), 2.0);
    let expected = [
        ("ALREADY_EXISTS", 1.0),
        ("NEGATIVE_COUNT", 3.0),
        ("UNKNOWN_SERVICE", 1.0),
        ("GOOD_EXCEEDS_TOTAL", 1.0),
        ("INVALID_ID", 2.0),
    ];
    for sample in &after.samples[REJECTED] {
        let reason = sample.labels["reason"].as_str();
        let wanted = expected
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0.0, |(_, n)| *n);
        assert_eq!(more(REJECTED, &[("reason", reason)]), wanted, "{reason}");
    }
}

const POOL: &str = "db_client_connection_count";

async fn the_pool_gauges_show_a_connection_in_use_while_a_call_waits_on_a_lock(s: TestServer) {
    let port = admin_port(&s);
    // The instruments exist once the server serves.
    let ready = async || {
        http_get(port, "/readyz")
            .await
            .is_some_and(|a| a.status == 200)
    };
    eventually(Duration::from_secs(10), ready).await;
    let idle_now = scrape(port).await;
    assert_eq!(idle_now.types[POOL], "gauge");
    let max = [("db_client_connection_pool_name", "accord")];
    // The test server's `max_connections`.
    assert_eq!(value(&idle_now, "db_client_connection_max", &max), 5.0);

    let lock = TenantsLock::take(&s.db, &s.database_url).await;
    let mut tenants = s.tenants();
    let call = tokio::spawn(async move {
        tenants
            .create_tenant(pb::CreateTenantRequest {
                tenant_id: "acme".into(),
                tenant: None,
                request_id: String::new(),
            })
            .await
    });
    let used = [
        ("db_client_connection_pool_name", "accord"),
        ("db_client_connection_state", "used"),
    ];
    let idle = [
        ("db_client_connection_pool_name", "accord"),
        ("db_client_connection_state", "idle"),
    ];
    let waiting = async || value(&scrape(port).await, POOL, &used) >= 1.0;
    eventually(Duration::from_secs(10), waiting).await;
    let busy = scrape(port).await;
    assert!(
        value(&busy, POOL, &used) + value(&busy, POOL, &idle) <= 5.0,
        "{:?}",
        busy.samples[POOL]
    );
    assert!(!call.is_finished(), "the call waits for the lock");

    lock.release().await;
    call.await.unwrap().expect("the call completes");
    let returned = async || {
        let now = scrape(port).await;
        value(&now, POOL, &used) == 0.0 && value(&now, POOL, &idle) >= 1.0
    };
    eventually(Duration::from_secs(10), returned).await;
}

on_both_backends!(
    unary_calls_are_recorded_by_method_and_status_code,
    a_stream_failing_midway_is_recorded_at_its_end_with_its_status,
    a_watch_is_open_until_its_client_cancels_it_and_then_recorded_cancelled,
    ingestion_counts_every_item_by_outcome_and_reason_from_both_methods,
    the_pool_gauges_show_a_connection_in_use_while_a_call_waits_on_a_lock,
);

mod breaches {
    use super::*;

    fn fast_closer(c: &mut Config) {
        c.breach_check_interval = Duration::from_secs(1);
    }

    /// The open breaches `/metrics` shows, once it shows `expected`.
    async fn until_open(port: u16, expected: f64) {
        let shown = async || {
            let now = scrape(port).await;
            now.samples.contains_key(OPEN_BREACHES) && value(&now, OPEN_BREACHES, &[]) == expected
        };
        eventually(Duration::from_secs(20), shown).await;
    }

    /// A daily availability SLA at 99.9 % whose yesterday had 900 good
    /// events of 1,000: one breach, once the closer sees it.
    async fn breached_yesterday(s: &TestServer, tenant: &str) -> World {
        let w = World::new(s, tenant).await;
        w.publish("sla", w.sla(vec![daily(availability(0.999))]))
            .await;
        w.report(vec![counts("m1", &w.payments, days_ago(1, 12), 900, 1000)])
            .await;
        w
    }

    async fn the_open_breach_gauge_counts_every_tenants_breaches_until_withdrawn(s: TestServer) {
        let port = admin_port(&s);
        until_open(port, 0.0).await;
        assert_eq!(scrape(port).await.types[OPEN_BREACHES], "gauge");

        let acme = breached_yesterday(&s, "acme").await;
        breached_yesterday(&s, "beta").await;
        until_open(port, 2.0).await;

        // 99,000 more good events: 99,900 of 100,000 = 0.999, met: acme's
        // breach is withdrawn.
        acme.report(vec![counts(
            "m2",
            &acme.payments,
            days_ago(1, 18),
            99_000,
            99_000,
        )])
        .await;
        until_open(port, 1.0).await;
        let withdrawn = acme
            .breaches()
            .list_breaches(pb::ListBreachesRequest {
                parent: acme.tenant.clone(),
                filter: "state = WITHDRAWN".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .breaches;
        assert_eq!(withdrawn.len(), 1, "{withdrawn:#?}");

        s.force_delete_tenant("beta").await;
        until_open(port, 0.0).await;
    }

    on_both_backends!(
        configured by fast_closer:
        the_open_breach_gauge_counts_every_tenants_breaches_until_withdrawn,
    );
}
