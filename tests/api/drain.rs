//! Graceful drain, through the real binary: on SIGTERM the server reports
//! NOT_SERVING at once, keeps serving calls for the drain delay (while
//! Kubernetes takes the pod out of the endpoints), then ends watch streams
//! with UNAVAILABLE, stops accepting calls and lets in-flight ones finish. A
//! client that retries on UNAVAILABLE sees no failed call while the server
//! is replaced by a new one on the same address, and nothing it wrote is
//! lost or written twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use accord::proto::v1 as pb;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::on_both_backends;
use crate::support::*;

/// The drain delay the first server runs with.
const DELAY: Duration = Duration::from_secs(2);

/// How long a caller keeps retrying one call on UNAVAILABLE.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// What became of one call, after its retries.
struct Call {
    /// When its first attempt started.
    started: Instant,
    /// How many attempts ended UNAVAILABLE before the one that counted.
    unavailable: usize,
    /// The last attempt's outcome: the error if it was not UNAVAILABLE.
    failed: Option<tonic::Status>,
    /// The party it created, for a create.
    created: Option<String>,
}

/// Whether a gRPC client would report `status` as UNAVAILABLE. tonic's
/// client reports a connection that closes or resets under a call as
/// UNKNOWN "transport error" or CANCELLED "operation was canceled", with
/// the transport error as its source, where the gRPC specification and the
/// C++, Go and Java clients say UNAVAILABLE
/// (<https://github.com/grpc/grpc-rust/issues/628>): such a call either
/// never reached the server or lost its answer with the connection.
fn unavailable(status: &tonic::Status) -> bool {
    use std::error::Error as _;
    status.code() == Code::Unavailable
        || status
            .source()
            .is_some_and(|e| e.is::<tonic::transport::Error>())
}

/// Calls `attempt` until it answers something other than UNAVAILABLE, or
/// `RETRY_FOR` has passed; the way gRPC clients retry (the call is
/// idempotent: reads, and creates carrying a request_id).
async fn with_retries<F, Fut>(mut attempt: F) -> (usize, Result<(), tonic::Status>)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    let start = Instant::now();
    let mut unavailable = 0;
    loop {
        match attempt().await {
            Err(status) if self::unavailable(&status) && start.elapsed() < RETRY_FOR => {
                unavailable += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            result => return (unavailable, result),
        }
    }
}

/// One caller: resolves and creates in turn until `stop`, every call with
/// retries.
async fn caller(w: World, clients: Clients, worker: usize, stop: Arc<AtomicBool>) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let started = Instant::now();
        let (unavailable, result, created) = if n % 2 == 0 {
            let request = w.resolve_request(&w.bank, &w.payments);
            let (unavailable, result) = with_retries(|| async {
                let mut entitlements = clients.entitlements();
                entitlements
                    .resolve_entitlement(request.clone())
                    .await
                    .map(drop)
            })
            .await;
            (unavailable, result, None)
        } else {
            let id = format!("w{worker}-{n}");
            let request = pb::CreatePartyRequest {
                parent: w.tenant.clone(),
                party_id: id.clone(),
                party: Some(pb::Party {
                    kind: pb::PartyKind::Customer.into(),
                    display_name: id.clone(),
                    ..Default::default()
                }),
                request_id: format!("drain-{id}"),
            };
            let (unavailable, result) = with_retries(|| async {
                let mut parties = clients.parties();
                parties.create_party(request.clone()).await.map(drop)
            })
            .await;
            (
                unavailable,
                result,
                Some(format!("{}/parties/{id}", w.tenant)),
            )
        };
        calls.push(Call {
            started,
            unavailable,
            failed: result.err(),
            created,
        });
    }
    calls
}

/// `accord serve` on the test server's database at `listen`, once SERVING.
async fn serving(dir: &std::path::Path, env: &[(&str, &str)]) -> Accord {
    let mut accord = Accord::start(dir, &["serve"], env);
    let Some(addr) = accord.address() else {
        panic!("accord did not start:\n{}", accord.stop().output);
    };
    channel_to(&addr).await;
    accord
}

async fn health(listen: &str) -> Option<ServingStatus> {
    let channel = Channel::from_shared(format!("http://{listen}"))
        .unwrap()
        .connect()
        .await
        .ok()?;
    health_of(channel, "").await.ok()
}

async fn a_retrying_client_sees_no_failed_call_across_a_restart(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let w = World::new(&s, "drain").await;
    w.publish("sla", w.standard_sla()).await;
    let listen = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let migration = s.db.migration_url();
    let delay = DELAY.as_secs().to_string();
    let mut env = vec![
        ("ACCORD_LISTEN", listen.as_str()),
        ("ACCORD_DATABASE_URL", s.database_url.as_str()),
        ("ACCORD_DRAIN_DELAY_SECONDS", delay.as_str()),
        ("ACCORD_SHUTDOWN_GRACE_SECONDS", "10"),
    ];
    if let Some(url) = &migration {
        env.push(("ACCORD_MIGRATION_DATABASE_URL", url.as_str()));
    }
    let first = serving(dir.path(), &env).await;

    // The callers' world, on a channel that reconnects to whatever serves
    // the address.
    let channel = Channel::from_shared(format!("http://{listen}"))
        .unwrap()
        .connect_lazy();
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..4)
        .map(|worker| {
            let clients = Clients::new(&channel, &w.admin_key);
            tokio::spawn(caller(w.clone(), clients, worker, stop.clone()))
        })
        .collect();
    // A watch, on a connection of its own.
    let watch_channel = channel_to(&listen).await;
    let mut watch = Clients::new(&watch_channel, &w.admin_key)
        .entitlements()
        .watch_entitlements(w.watch_request(Some(1)))
        .await
        .expect("watch")
        .into_inner();
    watch.message().await.expect("the watch's first message");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let terminated = Instant::now();
    first.terminate();
    let watch_ended = tokio::spawn(async move {
        loop {
            match watch.message().await {
                Ok(Some(_)) => {}
                Ok(None) => return (Instant::now(), None),
                Err(status) => return (Instant::now(), Some(status)),
            }
        }
    });
    // NOT_SERVING at once, while calls are still served.
    eventually(Duration::from_millis(500), || async {
        health(&listen).await == Some(ServingStatus::NotServing)
    })
    .await;
    let ended = tokio::task::spawn_blocking(move || first.wait())
        .await
        .unwrap();
    let stopped = Instant::now();
    assert!(ended.status.success(), "{}", ended.output);
    assert!(
        stopped - terminated >= DELAY,
        "stopped {:?} after SIGTERM, before the drain delay:\n{}",
        stopped - terminated,
        ended.output
    );
    let (watch_end, status) = watch_ended.await.unwrap();
    let status = status.expect("the watch ends with an error, not as if complete");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        watch_end - terminated >= DELAY - Duration::from_millis(100),
        "the watch ended {:?} after SIGTERM, within the drain delay",
        watch_end - terminated
    );

    // Its replacement, on the same address and database.
    let second = serving(dir.path(), &env).await;
    let replaced = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut calls = Vec::new();
    for caller in callers {
        calls.extend(caller.await.unwrap());
    }
    let ended = second.stop();
    assert!(ended.status.success(), "{}", ended.output);

    let failed: Vec<_> = calls.iter().filter_map(|c| c.failed.as_ref()).collect();
    assert!(failed.is_empty(), "calls failed: {failed:?}");
    let during_delay = calls
        .iter()
        .filter(|c| {
            c.started > terminated + Duration::from_millis(200)
                && c.started < terminated + DELAY - Duration::from_millis(200)
                && c.unavailable == 0
        })
        .count();
    assert!(
        during_delay > 0,
        "calls made during the drain delay were served"
    );
    assert!(
        calls.iter().any(|c| c.unavailable > 0),
        "some call met the restart (UNAVAILABLE) and was retried"
    );
    assert!(
        calls.iter().any(|c| c.started > replaced),
        "the replacement served calls"
    );
    // Every create landed (and once: a retry the first answer had not
    // reached would have met ALREADY_EXISTS without its request_id).
    for name in calls.iter().filter_map(|c| c.created.as_ref()) {
        w.parties()
            .get_party(pb::GetPartyRequest { name: name.clone() })
            .await
            .unwrap_or_else(|e| panic!("{name} was created: {e:?}"));
    }
}

on_both_backends!(backend: a_retrying_client_sees_no_failed_call_across_a_restart);

/// Ctrl-C has no load balancer to wait for, and a second SIGTERM means
/// "now": either skips the drain delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_or_a_second_sigterm_skips_the_drain_delay() {
    let dir = tempfile::tempdir().unwrap();
    for signals in [&["INT"][..], &["TERM", "TERM"]] {
        let env = [
            ("ACCORD_LISTEN", "127.0.0.1:0"),
            ("ACCORD_DATABASE_URL", "sqlite:accord.db"),
            ("ACCORD_DRAIN_DELAY_SECONDS", "600"),
        ];
        let mut accord = serving(dir.path(), &env).await;
        let sent = Instant::now();
        for (i, signal) in signals.iter().enumerate() {
            if i > 0 {
                accord.wait_for("for the drain delay");
            }
            accord.signal(signal);
        }
        let ended = tokio::task::spawn_blocking(move || accord.wait())
            .await
            .unwrap();
        assert!(ended.status.success(), "{}", ended.output);
        if signals.len() > 1 {
            assert!(ended.output.contains("second signal"), "{}", ended.output);
        }
        assert!(
            sent.elapsed() < Duration::from_secs(30),
            "{signals:?}: stopped after {:?}, not at once:\n{}",
            sent.elapsed(),
            ended.output
        );
    }
}
