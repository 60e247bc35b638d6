//! An API key stops working when it is revoked or expires, and its tenant's
//! deletion takes it along: within one second, on every replica, also while
//! a replica has the key cached and also for a WatchEntitlements stream
//! opened with it.

use std::time::{Duration, Instant};

use chrono::Utc;
use pb::entitlement_service_client::EntitlementServiceClient;
use tokio_stream::StreamExt;
use tonic::{Code, Status};

use crate::on_both_backends;
use crate::support::*;
use accord::proto::v1 as pb;

/// How late a key's end may reach a call or a watch.
const WITHIN: Duration = Duration::from_secs(1);

/// A READER key `id` of `w`, expiring at `expire_time` when given.
async fn reader_key(w: &World, id: &str, expire_time: Option<chrono::DateTime<Utc>>) -> String {
    let expire_time = expire_time.map(|t| prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    });
    w.key_expiring(id, pb::Role::Reader, expire_time).await
}

/// A call any READER may make; its outcome tells whether the key works.
async fn resolve(client: &mut EntitlementServiceClient<Authed>, w: &World) -> Result<(), Status> {
    client
        .resolve_entitlement(w.resolve_request(&w.bank, &w.payments))
        .await
        .map(drop)
        // The world has no agreement: NOT_FOUND is the key working.
        .or_else(|status| match status.code() {
            Code::NotFound => Ok(()),
            _ => Err(status),
        })
}

/// Calls with the key until it is refused; fails unless that happens by
/// `deadline`. Returns the refusal.
async fn refused_by(
    client: &mut EntitlementServiceClient<Authed>,
    w: &World,
    deadline: Instant,
) -> Status {
    loop {
        match resolve(client, w).await {
            Err(status) => return status,
            Ok(()) => {
                assert!(
                    Instant::now() < deadline,
                    "the key still worked {WITHIN:?} after it should have stopped"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[track_caller]
fn assert_unauthenticated(status: &Status) {
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_reason(status, "UNAUTHENTICATED");
}

/// A watch of the bank on `payments`, past its first result.
async fn watch(
    client: &mut EntitlementServiceClient<Authed>,
    w: &World,
) -> tonic::Streaming<pb::WatchEntitlementsResponse> {
    let mut stream = client
        .watch_entitlements(w.watch_request(None))
        .await
        .expect("watch")
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the first result in time")
        .expect("the stream is open")
        .expect("a result, not an error");
    assert!(
        matches!(
            first.event,
            Some(pb::watch_entitlements_response::Event::Result(_))
        ),
        "{first:?}"
    );
    stream
}

/// The status a watch ends with; fails unless it ends by `deadline`.
async fn ended_by(
    stream: &mut tonic::Streaming<pb::WatchEntitlementsResponse>,
    deadline: Instant,
) -> Status {
    let within = deadline.saturating_duration_since(Instant::now());
    let ended = tokio::time::timeout(within, async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return status,
                None => panic!("the watch ended without a status"),
            }
        }
    })
    .await;
    ended.unwrap_or_else(|_| panic!("the watch still ran {WITHIN:?} after its key's end"))
}

// --- calls ---------------------------------------------------------------------

async fn a_key_stops_working_within_a_second_of_its_expiry_even_while_cached(s: TestServer) {
    let w = World::new(&s, "t").await;
    let expire_time = Utc::now() + chrono::Duration::seconds(2);
    let key = reader_key(&w, "short", Some(expire_time)).await;
    let mut client = w.calling_with(&key).entitlements();
    // Used, so the server holds it in its key cache.
    resolve(&mut client, &w).await.expect("works before expiry");
    resolve(&mut client, &w).await.expect("works before expiry");

    let expiry = Instant::now() + (expire_time - Utc::now()).to_std().unwrap_or_default();
    let refused = refused_by(&mut client, &w, expiry + WITHIN).await;

    assert_unauthenticated(&refused);
    assert!(
        Instant::now() + Duration::from_millis(50) >= expiry,
        "refused before its expiry: {refused:?}"
    );
}

// --- watches -------------------------------------------------------------------

async fn revoking_a_key_ends_its_watch_within_a_second(s: TestServer) {
    let w = World::new(&s, "t").await;
    let key = reader_key(&w, "reader", None).await;
    let mut stream = watch(&mut w.calling_with(&key).entitlements(), &w).await;

    w.revoke_key("reader").await;
    let status = ended_by(&mut stream, Instant::now() + WITHIN).await;

    assert_unauthenticated(&status);
    assert!(status.message().contains("revoked"), "{status:?}");
}

async fn a_key_expiring_ends_its_watch_within_a_second_of_expiry(s: TestServer) {
    let w = World::new(&s, "t").await;
    let expire_time = Utc::now() + chrono::Duration::seconds(2);
    let key = reader_key(&w, "short", Some(expire_time)).await;
    let mut stream = watch(&mut w.calling_with(&key).entitlements(), &w).await;

    let expiry = Instant::now() + (expire_time - Utc::now()).to_std().unwrap_or_default();
    let status = ended_by(&mut stream, expiry + WITHIN).await;

    assert_unauthenticated(&status);
    assert!(status.message().contains("expired"), "{status:?}");
    assert!(
        Instant::now() + Duration::from_millis(50) >= expiry,
        "ended before the key expired: {status:?}"
    );
}

async fn force_deleting_the_tenant_ends_its_watch_with_not_found_within_a_second(s: TestServer) {
    let w = World::new(&s, "t").await;
    let key = reader_key(&w, "reader", None).await;
    let mut stream = watch(&mut w.calling_with(&key).entitlements(), &w).await;

    s.force_delete_tenant("t").await;
    let status = ended_by(&mut stream, Instant::now() + WITHIN).await;

    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_reason(&status, "NOT_FOUND");
    assert!(status.message().contains("tenants/t"), "{status:?}");
}

/// Revoking one key leaves a watch held with another key of the same tenant
/// running.
async fn revoking_a_key_leaves_watches_of_other_keys_running(s: TestServer) {
    let w = World::new(&s, "t").await;
    let revoked = reader_key(&w, "revoked", None).await;
    let kept = reader_key(&w, "kept", None).await;
    let mut ends = watch(&mut w.calling_with(&revoked).entitlements(), &w).await;
    let mut runs = watch(&mut w.calling_with(&kept).entitlements(), &w).await;

    w.revoke_key("revoked").await;
    assert_unauthenticated(&ended_by(&mut ends, Instant::now() + WITHIN).await);

    let next = tokio::time::timeout(WITHIN, runs.next()).await;
    assert!(next.is_err(), "the other watch ended or moved: {next:?}");
}

on_both_backends!(
    a_key_stops_working_within_a_second_of_its_expiry_even_while_cached,
    revoking_a_key_ends_its_watch_within_a_second,
    a_key_expiring_ends_its_watch_within_a_second_of_expiry,
    force_deleting_the_tenant_ends_its_watch_with_not_found_within_a_second,
    revoking_a_key_leaves_watches_of_other_keys_running,
);

// --- replicas (PostgreSQL) -----------------------------------------------------

/// The other replica is using the key all along, so a lookup there may race
/// the revocation; once refused, the key must stay refused (a stale copy
/// re-admitted to the cache would let it back in for the cache's lifetime).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_replica_is_refused_on_another_within_a_second_and_after() {
    let Some(first) = TestServer::start(Backend::Postgres).await else {
        return;
    };
    let w = World::new(&first, "t").await;
    let key = reader_key(&w, "reader", None).await;
    let replica = first.second_replica().await;
    let mut other = replica.clients(&key).entitlements();
    resolve(&mut other, &w)
        .await
        .expect("works before revocation");
    // Keep the key busy on the other replica while it is revoked.
    let busy = {
        let mut other = other.clone();
        let request = w.resolve_request(&w.bank, &w.payments);
        tokio::spawn(async move {
            loop {
                let _ = other.resolve_entitlement(request.clone()).await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    w.revoke_key("reader").await;
    let refused = refused_by(&mut other, &w, Instant::now() + WITHIN).await;
    assert_unauthenticated(&refused);
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let status = resolve(&mut other, &w)
            .await
            .expect_err("a revoked key was admitted again");
        assert_unauthenticated(&status);
    }
    busy.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_key_on_one_replica_ends_its_watch_on_another_within_a_second() {
    let Some(first) = TestServer::start(Backend::Postgres).await else {
        return;
    };
    let w = World::new(&first, "t").await;
    let key = reader_key(&w, "reader", None).await;
    let replica = first.second_replica().await;
    let mut stream = watch(&mut replica.clients(&key).entitlements(), &w).await;

    w.revoke_key("reader").await;
    let status = ended_by(&mut stream, Instant::now() + WITHIN).await;

    assert_unauthenticated(&status);
    assert!(status.message().contains("revoked"), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_tenant_on_one_replica_ends_its_watch_on_another_within_a_second() {
    let Some(first) = TestServer::start(Backend::Postgres).await else {
        return;
    };
    let w = World::new(&first, "t").await;
    let key = reader_key(&w, "reader", None).await;
    let replica = first.second_replica().await;
    let mut stream = watch(&mut replica.clients(&key).entitlements(), &w).await;

    first.force_delete_tenant("t").await;
    let status = ended_by(&mut stream, Instant::now() + WITHIN).await;

    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_reason(&status, "NOT_FOUND");
}
