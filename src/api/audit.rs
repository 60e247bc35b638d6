//! `accord.v1.AuditService`.

use std::sync::Arc;

use prost_types::value::Kind;
use tonic::{Request, Response, Status};

use super::convert::{time_in, time_out};
use crate::auth::{BOOTSTRAP_ACTOR, authorize};
use crate::domain::api_key::Role;
use crate::domain::audit::{AuditEvent, AuditFilter};
use crate::domain::fields::too_long;
use crate::domain::names::{Id, MAX_NAME_CHARS, TenantName};
use crate::domain::page::PageItem;
use crate::error::{Error, Violations};
use crate::proto::v1 as pb;
use crate::proto::v1::audit_service_server::AuditService;
use crate::service::Registry;

pub struct AuditApi {
    registry: Arc<Registry>,
}

impl AuditApi {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

fn json_value(value: serde_json::Value) -> prost_types::Value {
    use serde_json::Value;
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.into_iter().map(json_value).collect(),
        }),
        Value::Object(fields) => Kind::StructValue(json_struct(fields)),
    };
    prost_types::Value { kind: Some(kind) }
}

fn json_struct(fields: serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: fields
            .into_iter()
            .map(|(k, v)| (k, json_value(v)))
            .collect(),
    }
}

fn snapshot_out(value: Option<serde_json::Value>) -> Option<prost_types::Struct> {
    match value? {
        serde_json::Value::Object(fields) => Some(json_struct(fields)),
        _ => None,
    }
}

pub fn audit_event_out(e: AuditEvent) -> pb::AuditEvent {
    pb::AuditEvent {
        name: e.name(),
        event_time: Some(time_out(e.event_time)),
        actor: e.actor,
        method: e.method,
        resource: e.resource,
        request_id: e.request_id,
        before: snapshot_out(e.before),
        after: snapshot_out(e.after),
        tenant_uid: e.tenant_uid,
    }
}

impl PageItem for AuditEvent {
    fn encoded_len(&self) -> usize {
        super::listed_len(&audit_event_out(self.clone()))
    }
}

/// The request's filter. Names in it must be of the listed tenant, so a
/// filter cannot reach across tenants.
fn filter_in(req: &pb::ListAuditEventsRequest, tenant: &Id) -> Result<AuditFilter, Error> {
    let mut v = Violations::new();
    let own = format!("tenants/{tenant}");
    let in_tenant = |name: &str| name == own || name.starts_with(&format!("{own}/"));
    let fits = |v: &mut Violations, field: &str, name: &str| {
        let chars = name.chars().count();
        if chars > MAX_NAME_CHARS {
            v.add(field, too_long(MAX_NAME_CHARS, chars));
        }
        chars <= MAX_NAME_CHARS
    };
    if fits(&mut v, "resource", &req.resource)
        && !req.resource.is_empty()
        && !in_tenant(&req.resource)
    {
        v.add("resource", format!("must name a resource of {own}"));
    }
    if fits(&mut v, "actor", &req.actor)
        && !req.actor.is_empty()
        && req.actor != BOOTSTRAP_ACTOR
        && !req.actor.starts_with(&format!("{own}/apiKeys/"))
    {
        v.add(
            "actor",
            format!("must be an API key of {own} or `{BOOTSTRAP_ACTOR}`"),
        );
    }
    let start_time = req
        .start_time
        .as_ref()
        .and_then(|t| v.check(time_in("start_time", t)));
    let end_time = req
        .end_time
        .as_ref()
        .and_then(|t| v.check(time_in("end_time", t)));
    v.into_result()?;
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Ok(AuditFilter {
        resource: non_empty(&req.resource),
        actor: non_empty(&req.actor),
        start_time,
        end_time,
    })
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let req = request.get_ref();
        let tenant = TenantName::parse("parent", &req.parent)?.0;
        let principal = authorize(&request, &tenant)?;
        // The trails of deleted tenants are the platform's: a tenant's own
        // admin may hold the id of a tenant that belonged to someone else.
        if req.show_deleted && principal.role != Role::PlatformAdmin {
            return Err(Error::PermissionDenied(format!(
                "{} may not set show_deleted: only a PLATFORM_ADMIN lists the audit events \
                 of deleted tenants",
                principal.key
            ))
            .into());
        }
        let filter = filter_in(req, &tenant)?;
        let page = self
            .registry
            .audit_trail()
            .list(
                &tenant,
                filter,
                req.show_deleted,
                req.page_size,
                &req.page_token,
            )
            .await?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            audit_events: page.items.into_iter().map(audit_event_out).collect(),
            next_page_token: page.next_page_token,
        }))
    }
}
