//! An API key stops working when it is revoked or expires: within one
//! second, on every replica, also while a replica has the key cached.

use std::time::{Duration, Instant};

use chrono::Utc;
use pb::entitlement_service_client::EntitlementServiceClient;
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

on_both_backends!(a_key_stops_working_within_a_second_of_its_expiry_even_while_cached);

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
