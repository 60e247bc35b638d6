//! Authentication and authorization: the role matrix derived from the one
//! table, API key lifecycle, and tenant isolation at the API.

use std::time::Duration;

use accord::auth::methods::{METHOD_ROLES, accord_methods, roles_for};
use accord::domain::api_key::Role;
use accord::proto::v1 as pb;
use bytes::{Buf, BufMut};
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::support::*;

/// Sends and receives raw message bytes, so one caller reaches every RPC.
#[derive(Clone, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Self::Error> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

fn string_field(number: u8, value: &str) -> Vec<u8> {
    let mut out = vec![(number << 3) | 2];
    let mut len = value.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(value.as_bytes());
    out
}

/// A request for `method` that names resources of tenant `a` (which need not
/// exist), and changes nothing when it is allowed.
fn request_naming_tenant_a(method: &str) -> Vec<u8> {
    let rpc = method.rsplit('/').next().unwrap();
    let name = match rpc {
        "ListTenants" => return Vec::new(),
        "CreateTenant" => "a",
        // A stale etag, so an allowed delete is ABORTED instead of deleting.
        "DeleteTenant" => {
            let mut body = string_field(1, "tenants/a");
            body.extend(string_field(2, "stale"));
            return body;
        }
        "GetTenant" | "UpdateTenant" => "tenants/a",
        "CreateApiKey" | "ListApiKeys" | "CreateParty" | "ListParties" | "CreateService"
        | "ListServices" | "CreateAgreement" | "ListAgreements" | "ListAuditEvents" => "tenants/a",
        // No measurements: an allowed call stores nothing.
        "ReportMeasurements" | "StreamMeasurements" => "tenants/a",
        // Reads: an allowed watch sends its first heartbeat at once.
        "ListBreaches" | "WatchBreaches" => "tenants/a",
        "GetBreach" => "tenants/a/breaches/b-000000000000000000000000",
        "GetApiKey" | "RevokeApiKey" => "tenants/a/apiKeys/nope",
        "GetParty" | "UpdateParty" | "DeleteParty" => "tenants/a/parties/nope",
        "GetService" | "UpdateService" | "DeleteService" => "tenants/a/services/nope",
        "GetAgreement"
        | "UpdateAgreement"
        | "DeleteAgreement"
        | "PublishAgreement"
        | "TerminateAgreement"
        | "ListAgreementRevisions"
        | "CreateOverride"
        | "ListOverrides" => "tenants/a/agreements/nope",
        "GetAgreementRevision" => "tenants/a/agreements/nope/revisions/nope",
        "GetOverride" | "UpdateOverride" | "DeleteOverride" => {
            "tenants/a/agreements/nope/overrides/nope"
        }
        // Reads, so allowed calls change nothing: NOT_FOUND for a single
        // pair, or OK with the pair's own NOT_FOUND for a batch or a watch.
        "ResolveEntitlement" | "ExplainEntitlement" => {
            let mut body = string_field(1, "tenants/a");
            body.extend(string_field(2, "tenants/a/parties/nope"));
            body.extend(string_field(3, "tenants/a/services/nope"));
            return body;
        }
        // Reads: an allowed call is NOT_FOUND.
        "GetCompliance" => {
            let mut body = string_field(1, "tenants/a");
            body.extend(string_field(2, "tenants/a/agreements/nope"));
            return body;
        }
        "GetCreditStatement" => {
            let mut body = string_field(1, "tenants/a");
            body.extend(string_field(2, "tenants/a/parties/nope"));
            return body;
        }
        "BatchResolveEntitlements" | "WatchEntitlements" => {
            let mut pair = string_field(1, "tenants/a/parties/nope");
            pair.extend(string_field(2, "tenants/a/services/nope"));
            let mut body = string_field(1, "tenants/a");
            body.extend(string_field(2, &String::from_utf8(pair).unwrap()));
            return body;
        }
        other => panic!("no request for {other}: add it here"),
    };
    if rpc.starts_with("Update") {
        string_field(1, &String::from_utf8(string_field(1, name)).unwrap())
    } else {
        string_field(1, name)
    }
}

/// Whether `method` streams its requests and its responses, as the served
/// descriptors say.
fn streaming(method: &str) -> (bool, bool) {
    use prost::Message;
    let set = prost_types::FileDescriptorSet::decode(accord::proto::FILE_DESCRIPTOR_SET)
        .expect("the embedded descriptor set decodes");
    set.file
        .iter()
        .filter(|f| f.package() == "accord.v1")
        .flat_map(|f| &f.service)
        .flat_map(|s| s.method.iter().map(move |m| (s, m)))
        .find(|(s, m)| method == format!("/accord.v1.{}/{}", s.name(), m.name()))
        .map(|(_, m)| (m.client_streaming(), m.server_streaming()))
        .expect("an accord.v1 RPC")
}

async fn call(s: &TestServer, method: &str, bearer: Bearer) -> Code {
    let mut grpc = tonic::client::Grpc::new(s.authed(bearer));
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::try_from(method).unwrap();
    let body = request_naming_tenant_a(method);
    let (streams_requests, streams_responses) = streaming(method);
    if !streams_responses {
        let request = tonic::Request::new(body);
        return match grpc.unary::<_, Vec<u8>, _>(request, path, RawCodec).await {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        };
    }
    // An allowed stream stays open: its first message (or the status that
    // ends it first) is the answer, and dropping it ends the call.
    let first = async {
        let mut stream = if streams_requests {
            let request = tonic::Request::new(tokio_stream::iter([body]));
            grpc.streaming::<_, Vec<u8>, _, _>(request, path, RawCodec)
                .await?
                .into_inner()
        } else {
            let request = tonic::Request::new(body);
            grpc.server_streaming::<_, Vec<u8>, _>(request, path, RawCodec)
                .await?
                .into_inner()
        };
        stream.message().await
    };
    match tokio::time::timeout(Duration::from_secs(10), first).await {
        Ok(Ok(_)) => Code::Ok,
        Ok(Err(status)) => status.code(),
        Err(_) => panic!("{method}: neither a message nor a status within 10 s"),
    }
}

struct Credentials {
    roles: Vec<(Role, String)>,
    other_tenant_admin: String,
    revoked: String,
    expired: String,
}

async fn credentials(s: &TestServer) -> Credentials {
    let a = World::empty(s, "a").await;
    let b = World::empty(s, "b").await;
    let mut roles = vec![(Role::PlatformAdmin, s.platform_key.clone())];
    roles.extend(a.key_of_each_role().await);
    let revoked = a.key("revoked", pb::Role::TenantAdmin).await;
    a.revoke_key("revoked").await;
    let in_two_seconds = prost_types::Timestamp {
        seconds: chrono::Utc::now().timestamp() + 2,
        nanos: 0,
    };
    let expired = a
        .key_expiring("expiring", pb::Role::TenantAdmin, Some(in_two_seconds))
        .await;
    Credentials {
        roles,
        other_tenant_admin: b.admin_key,
        revoked,
        expired,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_answers_every_credential_as_the_table_says() {
    let s = TestServer::start(Backend::Sqlite).await.unwrap();
    let creds = credentials(&s).await;
    tokio::time::sleep(Duration::from_millis(2100)).await; // let `expiring` expire
    let methods = accord_methods();
    assert_eq!(methods.len(), METHOD_ROLES.len());
    let never_issued = format!("acc_{}", "A".repeat(43));
    for method in &methods {
        let allowed = roles_for(method).unwrap();
        for (what, bearer) in [
            ("no key", Bearer::none()),
            ("malformed", Bearer::new("not-a-key")),
            ("unknown", Bearer::new(&never_issued)),
            ("revoked", Bearer::new(&creds.revoked)),
            ("expired", Bearer::new(&creds.expired)),
        ] {
            assert_eq!(
                call(&s, method, bearer).await,
                Code::Unauthenticated,
                "{method} with {what}"
            );
        }
        for (role, key) in &creds.roles {
            let code = call(&s, method, Bearer::new(key)).await;
            if allowed.contains(role) {
                assert!(
                    !matches!(code, Code::Unauthenticated | Code::PermissionDenied),
                    "{method} as {role:?} should pass authorization, got {code:?}"
                );
            } else {
                assert_eq!(code, Code::PermissionDenied, "{method} as {role:?}");
            }
        }
        assert_eq!(
            call(&s, method, Bearer::new(&creds.other_tenant_admin)).await,
            Code::PermissionDenied,
            "{method} with another tenant's TENANT_ADMIN key"
        );
    }
}

async fn keys_show_their_secret_once_and_can_be_revoked(s: TestServer) {
    s.create_tenant("acme", "Acme").await;
    let create_ci = pb::CreateApiKeyRequest {
        parent: "tenants/acme".into(),
        api_key_id: "ci".into(),
        api_key: Some(pb::ApiKey {
            display_name: "CI".into(),
            role: pb::Role::Reader.into(),
            ..Default::default()
        }),
        request_id: "k-1".into(),
    };
    let created = s
        .api_keys()
        .create_api_key(create_ci.clone())
        .await
        .unwrap()
        .into_inner();
    let key = created.api_key.unwrap();
    assert!(
        created.secret.starts_with("acc_"),
        "scanners recognise the prefix"
    );
    assert!(created.secret.starts_with(&key.secret_prefix));
    assert_eq!(key.role(), pb::Role::Reader);

    // A retry returns the key, never the secret again.
    let retry = s
        .api_keys()
        .create_api_key(create_ci)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry.secret, "");
    assert_eq!(retry.api_key.as_ref().unwrap().name, key.name);

    // The key works, and its use is recorded.
    let with_key = s.clients(&created.secret);
    with_key
        .parties()
        .list_parties(pb::ListPartiesRequest {
            parent: "tenants/acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut used = None;
    for _ in 0..50 {
        let got = s
            .api_keys()
            .get_api_key(pb::GetApiKeyRequest {
                name: key.name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        if got.last_use_time.is_some() {
            used = Some(got);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(used.is_some(), "last_use_time is recorded");
    let listed = s
        .api_keys()
        .list_api_keys(pb::ListApiKeysRequest {
            parent: "tenants/acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.api_keys.len(), 1);

    let revoked = s
        .api_keys()
        .revoke_api_key(pb::RevokeApiKeyRequest {
            name: key.name.clone(),
            etag: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.revoke_time.is_some());
    assert_code(
        with_key
            .parties()
            .list_parties(pb::ListPartiesRequest {
                parent: "tenants/acme".into(),
                ..Default::default()
            })
            .await,
        Code::Unauthenticated,
    );
}

async fn key_requests_are_validated(s: TestServer) {
    s.create_tenant("acme", "Acme").await;
    let create = |role: pb::Role, expire: Option<i64>| pb::CreateApiKeyRequest {
        parent: "tenants/acme".into(),
        api_key_id: "k".into(),
        api_key: Some(pb::ApiKey {
            role: role.into(),
            expire_time: expire.map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    assert_invalid_field(
        s.api_keys()
            .create_api_key(create(pb::Role::PlatformAdmin, None))
            .await,
        "api_key.role",
    );
    assert_invalid_field(
        s.api_keys()
            .create_api_key(create(pb::Role::Unspecified, None))
            .await,
        "api_key.role",
    );
    assert_invalid_field(
        s.api_keys()
            .create_api_key(create(pb::Role::Reader, Some(JAN_2026)))
            .await,
        "api_key.expire_time",
    );
    s.api_keys()
        .create_api_key(create(pb::Role::Reader, None))
        .await
        .unwrap();
    assert_code(
        s.api_keys()
            .create_api_key(create(pb::Role::Reader, None))
            .await,
        Code::AlreadyExists,
    );
    assert_code(
        s.api_keys()
            .get_api_key(pb::GetApiKeyRequest {
                name: "tenants/acme/apiKeys/nope".into(),
            })
            .await,
        Code::NotFound,
    );
    assert_invalid_field(
        s.api_keys()
            .get_api_key(pb::GetApiKeyRequest {
                name: "tenants/acme/keys/k".into(),
            })
            .await,
        "name",
    );
    assert_code(
        s.api_keys()
            .revoke_api_key(pb::RevokeApiKeyRequest {
                name: "tenants/acme/apiKeys/k".into(),
                etag: "stale".into(),
            })
            .await,
        Code::Aborted,
    );
}

async fn another_tenants_names_are_denied_whether_or_not_they_exist(s: TestServer) {
    let a = World::new(&s, "acme").await;
    let b = World::new(&s, "other").await;
    let existing = b
        .parties()
        .get_party(pb::GetPartyRequest {
            name: a.bank.clone(),
        })
        .await
        .unwrap_err();
    let missing = b
        .parties()
        .get_party(pb::GetPartyRequest {
            name: "tenants/acme/parties/nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(existing.code(), Code::PermissionDenied);
    assert_eq!(
        (existing.code(), existing.message()),
        (missing.code(), missing.message())
    );

    // A page token of tenant acme's list does not open other's list.
    let page = a
        .parties()
        .list_parties(pb::ListPartiesRequest {
            parent: a.tenant.clone(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_invalid_field(
        b.parties()
            .list_parties(pb::ListPartiesRequest {
                parent: b.tenant.clone(),
                page_size: 1,
                page_token: page.next_page_token,
            })
            .await,
        "page_token",
    );
}

crate::on_both_backends!(
    keys_show_their_secret_once_and_can_be_revoked,
    key_requests_are_validated,
    another_tenants_names_are_denied_whether_or_not_they_exist,
);
