//! An API key stops working when it is revoked or expires, and its tenant's
//! deletion takes it along: within one second, on every replica, also while
//! a replica has the key cached and also for a WatchEntitlements stream
//! opened with it.

use std::time::{Duration, Instant};

use chrono::Utc;
use pb::entitlement_service_client::EntitlementServiceClient;
use tokio_stream::StreamExt;
use tonic::{Code, Status};

use crate::entitlement_cache::second_replica;
use crate::on_both_backends;
use crate::support::*;
use accord::proto::v1 as pb;

/// How late a key's end may reach a call or a watch.
const WITHIN: Duration = Duration::from_secs(1);

/// Creates a READER key in `tenant`, expiring at `expire_time` when given,
/// and returns its secret.
async fn reader_key(
    s: &TestServer,
    tenant: &str,
    id: &str,
    expire_time: Option<chrono::DateTime<Utc>>,
) -> String {
    s.api_keys()
        .create_api_key(pb::CreateApiKeyRequest {
            parent: format!("tenants/{tenant}"),
            api_key_id: id.into(),
            api_key: Some(pb::ApiKey {
                role: pb::Role::Reader.into(),
                expire_time: expire_time.map(|t| prost_types::Timestamp {
                    seconds: t.timestamp(),
                    nanos: t.timestamp_subsec_nanos() as i32,
                }),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create API key")
        .into_inner()
        .secret
}

async fn revoke(s: &TestServer, name: &str) {
    s.api_keys()
        .revoke_api_key(pb::RevokeApiKeyRequest {
            name: name.into(),
            etag: String::new(),
        })
        .await
        .expect("revoke");
}

fn entitlements_as(
    channel: &tonic::transport::Channel,
    key: &str,
) -> EntitlementServiceClient<Authed> {
    EntitlementServiceClient::new(tonic::service::interceptor::InterceptedService::new(
        channel.clone(),
        Bearer::new(key),
    ))
}

/// A call any READER may make; its outcome tells whether the key works.
async fn resolve(client: &mut EntitlementServiceClient<Authed>, seed: &Seed) -> Result<(), Status> {
    client
        .resolve_entitlement(pb::ResolveEntitlementRequest {
            parent: seed.tenant.clone(),
            consumer: seed.customer.clone(),
            service: seed.service.clone(),
            ..Default::default()
        })
        .await
        .map(drop)
        // The seed has no agreement: NOT_FOUND is the key working.
        .or_else(|status| match status.code() {
            Code::NotFound => Ok(()),
            _ => Err(status),
        })
}

/// Calls with the key until it is refused; fails unless that happens by
/// `deadline`. Returns the refusal.
async fn refused_by(
    client: &mut EntitlementServiceClient<Authed>,
    seed: &Seed,
    deadline: Instant,
) -> Status {
    loop {
        match resolve(client, seed).await {
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

/// A watch of the seed's (customer, service) pair, past its first result.
async fn watch(
    client: &mut EntitlementServiceClient<Authed>,
    seed: &Seed,
) -> tonic::Streaming<pb::WatchEntitlementsResponse> {
    let mut stream = client
        .watch_entitlements(pb::WatchEntitlementsRequest {
            parent: seed.tenant.clone(),
            pairs: vec![pb::EntitlementPair {
                consumer: seed.customer.clone(),
                service: seed.service.clone(),
            }],
            heartbeat_interval: None,
        })
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
    let seed = seed(&s, "t").await;
    let expire_time = Utc::now() + chrono::Duration::seconds(2);
    let key = reader_key(&s, "t", "short", Some(expire_time)).await;
    let mut client = entitlements_as(&s.channel, &key);
    // Used, so the server holds it in its key cache.
    resolve(&mut client, &seed)
        .await
        .expect("works before expiry");
    resolve(&mut client, &seed)
        .await
        .expect("works before expiry");

    let expiry = Instant::now() + (expire_time - Utc::now()).to_std().unwrap_or_default();
    let refused = refused_by(&mut client, &seed, expiry + WITHIN).await;

    assert_unauthenticated(&refused);
    assert!(
        Instant::now() + Duration::from_millis(50) >= expiry,
        "refused before its expiry: {refused:?}"
    );
}

// --- watches -------------------------------------------------------------------

async fn revoking_a_key_ends_its_watch_within_a_second(s: TestServer) {
    let seed = seed(&s, "t").await;
    let key = reader_key(&s, "t", "reader", None).await;
    let mut stream = watch(&mut entitlements_as(&s.channel, &key), &seed).await;

    revoke(&s, "tenants/t/apiKeys/reader").await;
    let status = ended_by(&mut stream, Instant::now() + WITHIN).await;

    assert_unauthenticated(&status);
    assert!(status.message().contains("revoked"), "{status:?}");
}

async fn a_key_expiring_ends_its_watch_within_a_second_of_expiry(s: TestServer) {
    let seed = seed(&s, "t").await;
    let expire_time = Utc::now() + chrono::Duration::seconds(2);
    let key = reader_key(&s, "t", "short", Some(expire_time)).await;
    let mut stream = watch(&mut entitlements_as(&s.channel, &key), &seed).await;

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
    let seed = seed(&s, "t").await;
    let key = reader_key(&s, "t", "reader", None).await;
    let mut stream = watch(&mut entitlements_as(&s.channel, &key), &seed).await;

    s.tenants()
        .delete_tenant(pb::DeleteTenantRequest {
            name: "tenants/t".into(),
            etag: String::new(),
            force: true,
        })
        .await
        .expect("delete tenant");
    let status = ended_by(&mut stream, Instant::now() + WITHIN).await;

    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_reason(&status, "NOT_FOUND");
    assert!(status.message().contains("tenants/t"), "{status:?}");
}

/// Revoking one key leaves a watch held with another key of the same tenant
/// running.
async fn revoking_a_key_leaves_watches_of_other_keys_running(s: TestServer) {
    let seed = seed(&s, "t").await;
    let revoked = reader_key(&s, "t", "revoked", None).await;
    let kept = reader_key(&s, "t", "kept", None).await;
    let mut ends = watch(&mut entitlements_as(&s.channel, &revoked), &seed).await;
    let mut runs = watch(&mut entitlements_as(&s.channel, &kept), &seed).await;

    revoke(&s, "tenants/t/apiKeys/revoked").await;
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
    let seed = seed(&first, "t").await;
    let key = reader_key(&first, "t", "reader", None).await;
    let (channel, _replica) = second_replica(&first).await;
    let mut other = entitlements_as(&channel, &key);
    resolve(&mut other, &seed)
        .await
        .expect("works before revocation");
    // Keep the key busy on the other replica while it is revoked.
    let busy = {
        let (mut other, seed_tenant) = (other.clone(), seed.tenant.clone());
        let (customer, service) = (seed.customer.clone(), seed.service.clone());
        tokio::spawn(async move {
            loop {
                let _ = other
                    .resolve_entitlement(pb::ResolveEntitlementRequest {
                        parent: seed_tenant.clone(),
                        consumer: customer.clone(),
                        service: service.clone(),
                        ..Default::default()
                    })
                    .await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    revoke(&first, "tenants/t/apiKeys/reader").await;
    let refused = refused_by(&mut other, &seed, Instant::now() + WITHIN).await;
    assert_unauthenticated(&refused);
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let status = resolve(&mut other, &seed)
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
    let seed = seed(&first, "t").await;
    let key = reader_key(&first, "t", "reader", None).await;
    let (channel, _replica) = second_replica(&first).await;
    let mut stream = watch(&mut entitlements_as(&channel, &key), &seed).await;

    revoke(&first, "tenants/t/apiKeys/reader").await;
    let status = ended_by(&mut stream, Instant::now() + WITHIN).await;

    assert_unauthenticated(&status);
    assert!(status.message().contains("revoked"), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_tenant_on_one_replica_ends_its_watch_on_another_within_a_second() {
    let Some(first) = TestServer::start(Backend::Postgres).await else {
        return;
    };
    let seed = seed(&first, "t").await;
    let key = reader_key(&first, "t", "reader", None).await;
    let (channel, _replica) = second_replica(&first).await;
    let mut stream = watch(&mut entitlements_as(&channel, &key), &seed).await;

    first
        .tenants()
        .delete_tenant(pb::DeleteTenantRequest {
            name: "tenants/t".into(),
            etag: String::new(),
            force: true,
        })
        .await
        .expect("delete tenant");
    let status = ended_by(&mut stream, Instant::now() + WITHIN).await;

    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_reason(&status, "NOT_FOUND");
}
