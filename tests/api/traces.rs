//! Traces and the trace ids of logs, through the real binary (only `main`
//! installs the tracer): an in-process OTLP collector receives the server
//! span of each call, a child of the span the caller named in `traceparent`,
//! with the RPC conventions' attributes, the tenant and the database
//! statements under it, and no secret anywhere; the spans still queued at
//! SIGTERM are pushed before the process ends; JSON log lines written inside
//! a call carry its trace id, even with no collector (which makes spans only
//! for calls that carry a `traceparent`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accord::proto::v1 as pb;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span, span::SpanKind, status};
use pb::breach_service_client::BreachServiceClient;
use pb::party_service_client::PartyServiceClient;
use pb::tenant_service_client::TenantServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::on_both_backends;
use crate::support::*;

/// An OTLP/gRPC trace collector on a port of its own, keeping every batch.
#[derive(Clone, Default)]
struct Collector {
    received: Arc<Mutex<Vec<ResourceSpans>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let batch = request.into_inner().resource_spans;
        self.received.lock().unwrap().extend(batch);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// Starts one; returns it and its endpoint.
    async fn start() -> (Self, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let collector = Collector::default();
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        tokio::spawn(server);
        (collector, endpoint)
    }

    fn spans(&self) -> Vec<Span> {
        let received = self.received.lock().unwrap();
        received
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.clone())
            .collect()
    }

    /// The server span of the call `caller` made, once it has arrived.
    async fn server_span_of(&self, caller: &Caller) -> Span {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(span) = self
                .spans()
                .into_iter()
                .find(|s| s.trace_id == caller.trace_id && s.kind == SpanKind::Server as i32)
            {
                return span;
            }
            assert!(
                Instant::now() < deadline,
                "no server span of trace {} arrived; received:\n{:#?}",
                hex::encode(caller.trace_id),
                self.spans()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The spans whose parent is `span`.
    fn children_of(&self, span: &Span) -> Vec<Span> {
        self.spans()
            .into_iter()
            .filter(|s| s.trace_id == span.trace_id && s.parent_span_id == span.span_id)
            .collect()
    }

    /// A resource attribute of the first batch, as text.
    fn resource_attribute(&self, key: &str) -> Option<String> {
        let received = self.received.lock().unwrap();
        let resource = received.first()?.resource.as_ref()?;
        text(&resource.attributes, key)
    }

    /// Everything received, as text: what no secret may appear in.
    fn everything(&self) -> String {
        format!("{:?}", self.received.lock().unwrap())
    }
}

/// The span a caller makes its call from.
struct Caller {
    trace_id: [u8; 16],
    span_id: [u8; 8],
}

impl Caller {
    fn new() -> Self {
        Self {
            trace_id: rand::random(),
            span_id: rand::random(),
        }
    }

    /// W3C trace context, sampled.
    fn traceparent(&self) -> MetadataValue<Ascii> {
        format!(
            "00-{}-{}-01",
            hex::encode(self.trace_id),
            hex::encode(self.span_id)
        )
        .parse()
        .unwrap()
    }
}

/// A key and the caller's `traceparent` on every call.
#[derive(Clone)]
struct Traced {
    bearer: Bearer,
    traceparent: MetadataValue<Ascii>,
}

impl tonic::service::Interceptor for Traced {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let mut request = self.bearer.call(request)?;
        request
            .metadata_mut()
            .insert("traceparent", self.traceparent.clone());
        Ok(request)
    }
}

type TracedChannel = tonic::service::interceptor::InterceptedService<Channel, Traced>;

fn traced(channel: &Channel, key: &str, caller: &Caller) -> TracedChannel {
    let traced = Traced {
        bearer: Bearer::new(key),
        traceparent: caller.traceparent(),
    };
    tonic::service::interceptor::InterceptedService::new(channel.clone(), traced)
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|a| a.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attribute(attributes, key)? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn int(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match attribute(attributes, key)? {
        any_value::Value::IntValue(i) => Some(*i),
        _ => None,
    }
}

/// Asserts that `span` is the server span of `method` of `service`, ended
/// with `code`, a child of `caller`'s span.
#[track_caller]
fn assert_server_span(span: &Span, caller: &Caller, service: &str, method: &str, code: i64) {
    assert_eq!(span.name, format!("{service}/{method}"), "{span:#?}");
    assert_eq!(
        span.parent_span_id, caller.span_id,
        "the caller's span is the parent: {span:#?}"
    );
    let attributes = &span.attributes;
    assert_eq!(text(attributes, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(text(attributes, "rpc.service").as_deref(), Some(service));
    assert_eq!(text(attributes, "rpc.method").as_deref(), Some(method));
    assert_eq!(
        int(attributes, "rpc.grpc.status_code"),
        Some(code),
        "{span:#?}"
    );
}

/// The environment of a binary on a fresh database of `backend` exporting
/// to `endpoint`, batching spans for `delay_ms`, with `bootstrap` as its
/// key, and the database.
async fn exporting_env(
    backend: Backend,
    dir: &std::path::Path,
    endpoint: &str,
    delay_ms: &str,
    bootstrap: &str,
) -> Option<(TestDb, Vec<(String, String)>)> {
    let (db, mut env) = database_env(backend, dir).await?;
    for (key, value) in [
        ("ACCORD_BOOTSTRAP_KEY", bootstrap),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", delay_ms),
    ] {
        env.push((key.into(), value.into()));
    }
    Some((db, env))
}

/// Starts the binary with `env`; returns it and a channel to it once it
/// serves.
async fn serving(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(String, String)],
) -> (Accord, Channel) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut accord = Accord::start(dir, args, &env);
    let Some(addr) = accord.address() else {
        panic!("accord did not start:\n{}", accord.stop().output);
    };
    let channel = channel_to(&addr).await;
    (accord, channel)
}

/// Creates the tenant `acme` with `bootstrap` and returns the secret of a
/// READER key of it.
async fn tenant_and_key(channel: &Channel, bootstrap: &str) -> String {
    let platform = Clients::new(channel, bootstrap);
    platform
        .tenants()
        .create_tenant(pb::CreateTenantRequest {
            tenant_id: "acme".into(),
            tenant: Some(pb::Tenant {
                display_name: "Acme".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create tenant");
    create_key(&platform, "acme", "reader", pb::Role::Reader, None).await
}

on_both_backends!(backend: a_traced_call_is_exported_as_a_child_of_the_callers_span_without_secrets);

async fn a_traced_call_is_exported_as_a_child_of_the_callers_span_without_secrets(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let (collector, endpoint) = Collector::start().await;
    let bootstrap = new_platform_key();
    let Some((db, mut env)) =
        exporting_env(backend, dir.path(), &endpoint, "100", &bootstrap).await
    else {
        return;
    };
    env.push((
        "OTEL_RESOURCE_ATTRIBUTES".into(),
        "deployment.environment.name=trace%20test".into(),
    ));
    let (accord, channel) = serving(dir.path(), &["serve"], &env).await;
    let key = tenant_and_key(&channel, &bootstrap).await;

    // A call that succeeds, its status in the trailers.
    let found = Caller::new();
    TenantServiceClient::new(traced(&channel, &key, &found))
        .get_tenant(pb::GetTenantRequest {
            name: "tenants/acme".into(),
        })
        .await
        .expect("the reader reads its tenant");
    // One that fails, its status in the headers.
    let missing = Caller::new();
    let refused = PartyServiceClient::new(traced(&channel, &key, &missing))
        .get_party(pb::GetPartyRequest {
            name: "tenants/acme/parties/nobody".into(),
        })
        .await;
    assert_code(refused, tonic::Code::NotFound);
    // One that authentication refuses, with no tenant to tell.
    let stranger = Caller::new();
    let refused = TenantServiceClient::new(traced(&channel, "acc_not-a-key", &stranger))
        .get_tenant(pb::GetTenantRequest {
            name: "tenants/acme".into(),
        })
        .await;
    assert_code(refused, tonic::Code::Unauthenticated);
    // A stream the caller leaves after its first message.
    let watcher = Caller::new();
    let mut watch = BreachServiceClient::new(traced(&channel, &key, &watcher))
        .watch_breaches(pb::WatchBreachesRequest {
            parent: "tenants/acme".into(),
            ..Default::default()
        })
        .await
        .expect("watch breaches")
        .into_inner();
    watch
        .message()
        .await
        .expect("a heartbeat")
        .expect("a message");
    drop(watch);

    let span = collector.server_span_of(&found).await;
    assert_server_span(&span, &found, "accord.v1.TenantService", "GetTenant", 0);
    assert_eq!(
        text(&span.attributes, "accord.tenant").as_deref(),
        Some("acme")
    );
    let statements = collector.children_of(&span);
    let system = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgresql",
    };
    assert!(
        statements.iter().any(|s| {
            s.kind == SpanKind::Client as i32
                && text(&s.attributes, "db.system.name").as_deref() == Some(system)
                && s.name.contains("tenants")
        }),
        "the call's statements are its children: {statements:#?}"
    );

    let span = collector.server_span_of(&missing).await;
    assert_server_span(&span, &missing, "accord.v1.PartyService", "GetParty", 5);
    assert_ne!(
        span.status.as_ref().map(|s| s.code),
        Some(status::StatusCode::Error as i32),
        "NOT_FOUND is the caller's error, not the server's: {span:#?}"
    );
    assert_eq!(
        text(&span.attributes, "accord.tenant").as_deref(),
        Some("acme")
    );

    let span = collector.server_span_of(&stranger).await;
    assert_server_span(&span, &stranger, "accord.v1.TenantService", "GetTenant", 16);
    assert_eq!(text(&span.attributes, "accord.tenant"), None);

    let span = collector.server_span_of(&watcher).await;
    assert_server_span(
        &span,
        &watcher,
        "accord.v1.BreachService",
        "WatchBreaches",
        1,
    );

    let untraced = collector
        .spans()
        .into_iter()
        .find(|s| s.name == "accord.v1.TenantService/CreateTenant")
        .expect("a call without traceparent starts a trace of its own");
    assert!(untraced.parent_span_id.is_empty(), "{untraced:#?}");

    assert_eq!(
        collector.resource_attribute("service.name").as_deref(),
        Some("accord")
    );
    assert_eq!(
        collector
            .resource_attribute("deployment.environment.name")
            .as_deref(),
        Some("trace test")
    );
    let ended = accord.stop();
    assert!(ended.status.success(), "{}", ended.output);
    let everything = collector.everything();
    assert!(everything.contains("GetTenant"), "{everything}");
    for (secret, what) in [(&key, "the API key"), (&bootstrap, "the bootstrap key")] {
        assert!(
            !everything.contains(secret.as_str()),
            "{what} reached a span:\n{everything}"
        );
    }
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_still_queued_at_sigterm_reach_the_collector_before_the_process_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (collector, endpoint) = Collector::start().await;
    let bootstrap = new_platform_key();
    // Nothing leaves the queue on its own for a minute.
    let (db, mut env) = exporting_env(Backend::Sqlite, dir.path(), &endpoint, "60000", &bootstrap)
        .await
        .expect("SQLite");
    env.push(("OTEL_SERVICE_NAME".into(), "accord-eu".into()));
    env.push((
        "OTEL_RESOURCE_ATTRIBUTES".into(),
        "service.name=ignored,team=sla".into(),
    ));
    let (accord, channel) = serving(dir.path(), &["serve"], &env).await;
    let last = Caller::new();
    TenantServiceClient::new(traced(&channel, &bootstrap, &last))
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .expect("list tenants");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        collector.spans().is_empty(),
        "spans left the queue before shutdown: {:#?}",
        collector.spans()
    );

    let ended = accord.stop();
    assert!(ended.status.success(), "{}", ended.output);
    let span = collector.server_span_of(&last).await;
    assert_server_span(&span, &last, "accord.v1.TenantService", "ListTenants", 0);
    assert_eq!(
        collector.resource_attribute("service.name").as_deref(),
        Some("accord-eu"),
        "OTEL_SERVICE_NAME wins"
    );
    assert_eq!(collector.resource_attribute("team").as_deref(), Some("sla"));
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_of_a_traced_call_carry_the_callers_trace_id_without_a_collector() {
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = new_platform_key();
    let (db, mut env) = database_env(Backend::Sqlite, dir.path())
        .await
        .expect("SQLite");
    env.push(("ACCORD_BOOTSTRAP_KEY".into(), bootstrap.clone()));
    // sqlx logs each statement at debug: lines written inside the call.
    env.push(("ACCORD_LOG".into(), "info,sqlx=debug".into()));
    let (accord, channel) = serving(dir.path(), &["serve", "--log-format", "json"], &env).await;
    let caller = Caller::new();
    TenantServiceClient::new(traced(&channel, &bootstrap, &caller))
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .expect("list tenants");
    // A call without a trace context makes no span: its lines have no ids.
    Clients::new(&channel, &bootstrap)
        .tenants()
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .expect("list tenants");
    let ended = accord.stop();
    assert!(ended.status.success(), "{}", ended.output);

    let lines: Vec<serde_json::Value> = ended
        .output
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let trace_id = hex::encode(caller.trace_id);
    let in_call: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| line["trace_id"] == trace_id.as_str())
        .collect();
    assert!(
        !in_call.is_empty(),
        "no line carries the caller's trace id {trace_id}:\n{}",
        ended.output
    );
    for line in &in_call {
        let span_id = line["span_id"].as_str().unwrap_or_default();
        assert_eq!(span_id.len(), 16, "{line}");
        assert_ne!(
            span_id,
            hex::encode(caller.span_id),
            "the call's own span, not the caller's: {line}"
        );
    }
    let traces: std::collections::BTreeSet<&str> = lines
        .iter()
        .filter_map(|line| line["trace_id"].as_str())
        .collect();
    assert_eq!(
        traces,
        [trace_id.as_str()].into(),
        "only the traced call's lines have a trace:\n{}",
        ended.output
    );
    let listening = lines
        .iter()
        .find(|line| line["fields"]["message"] == "listening for gRPC")
        .expect("the listening line");
    assert!(
        listening.get("trace_id").is_none(),
        "a line outside calls has no trace: {listening}"
    );
    drop(db);
}
