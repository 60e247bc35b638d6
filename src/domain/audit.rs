//! The audit trail: every change writes one append-only event, in the
//! transaction that makes the change, saying who made it, through which
//! method, to which resource, and what the resource was before and after.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::agreement::Agreement;
use crate::domain::api_key::ApiKey;
use crate::domain::breach::Breach;
use crate::domain::names::{Id, audit_event_name, random_id};
use crate::domain::overrides::Override;
use crate::domain::party::Party;
use crate::domain::service::Service;
use crate::domain::tenant::Tenant;
use crate::error::{Error, Result};

/// Who asks for a change, and how: what the audit event records about the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The API key's name, or `bootstrap`.
    pub actor: String,
    /// The full gRPC method path.
    pub method: &'static str,
    /// The create's request_id, or empty.
    pub request_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub tenant: Id,
    /// The uid of the tenant the event belongs to, so that a later tenant
    /// with the same id does not list it as its own.
    pub tenant_uid: String,
    pub id: Id,
    pub event_time: DateTime<Utc>,
    pub actor: String,
    pub method: String,
    pub resource: String,
    pub request_id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl AuditEvent {
    /// The event of `caller` changing a resource of the tenant with
    /// `tenant_uid` at `now`: `before` is absent for a create, `after` for a
    /// delete.
    pub fn new<T: Audited>(
        caller: &Caller,
        tenant_uid: &str,
        before: Option<&T>,
        after: Option<&T>,
        now: DateTime<Utc>,
    ) -> Self {
        let subject = after.or(before).expect("a change has a before or an after");
        AuditEvent {
            tenant: subject.tenant_id().clone(),
            tenant_uid: tenant_uid.to_string(),
            id: random_id(16),
            event_time: now,
            actor: caller.actor.clone(),
            method: caller.method.to_string(),
            resource: subject.resource_name(),
            request_id: caller.request_id.clone(),
            before: before.map(Audited::audit_view),
            after: after.map(Audited::audit_view),
        }
    }

    pub fn name(&self) -> String {
        audit_event_name(&self.tenant, &self.id)
    }

    /// The key that orders events, newest first, and pages through them.
    pub fn cursor(&self) -> AuditCursor {
        AuditCursor {
            time: self.event_time,
            id: self.id.to_string(),
        }
    }
}

/// A position in the trail: events strictly older come next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCursor {
    pub time: DateTime<Utc>,
    pub id: String,
}

impl AuditCursor {
    /// `micros/id`, the form page tokens carry.
    pub fn encode(&self) -> String {
        format!("{}/{}", self.time.timestamp_micros(), self.id)
    }

    pub fn decode(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once('/')?;
        Some(AuditCursor {
            time: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: id.to_string(),
        })
    }
}

/// What ListAuditEvents narrows the trail to; every part is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub resource: Option<String>,
    pub actor: Option<String>,
    /// Inclusive.
    pub start_time: Option<DateTime<Utc>>,
    /// Exclusive.
    pub end_time: Option<DateTime<Utc>>,
}

impl AuditFilter {
    /// A time range ends after it starts.
    pub fn validate(&self) -> Result<()> {
        if let (Some(start), Some(end)) = (self.start_time, self.end_time)
            && end <= start
        {
            return Err(Error::invalid("end_time", "must be after start_time"));
        }
        Ok(())
    }

    /// The filter's parameters, which page tokens are bound to.
    pub fn scope(&self) -> String {
        format!(
            "{:?}|{:?}|{:?}|{:?}",
            self.resource,
            self.actor,
            self.start_time.map(|t| t.timestamp_micros()),
            self.end_time.map(|t| t.timestamp_micros())
        )
    }
}

/// A resource whose changes are audited.
pub trait Audited: Serialize {
    fn tenant_id(&self) -> &Id;
    fn resource_name(&self) -> String;

    /// The tenant's uid when the resource carries it (the tenant itself,
    /// which may be gone by the time its deletion is audited).
    fn tenant_uid(&self) -> Option<&str> {
        None
    }

    /// How the resource appears in the before and after of an event: as
    /// stored, minus anything secret.
    fn audit_view(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

macro_rules! audited {
    ($($ty:ty => $tenant:ident),* $(,)?) => {
        $(impl Audited for $ty {
            fn tenant_id(&self) -> &Id {
                &self.$tenant
            }
            fn resource_name(&self) -> String {
                self.name()
            }
        })*
    };
}

audited!(
    Party => tenant,
    Service => tenant,
    Agreement => tenant,
    Override => tenant,
    Breach => tenant,
);

impl Audited for Tenant {
    fn tenant_id(&self) -> &Id {
        &self.id
    }
    fn resource_name(&self) -> String {
        self.name()
    }
    fn tenant_uid(&self) -> Option<&str> {
        Some(&self.uid)
    }
}

impl Audited for ApiKey {
    fn tenant_id(&self) -> &Id {
        &self.tenant
    }
    fn resource_name(&self) -> String {
        self.name()
    }
    fn audit_view(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(fields) = &mut value {
            fields.remove("key_hash");
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::api_key::{ApiKeyFields, Role};
    use crate::error::Violations;

    #[test]
    fn cursors_round_trip() {
        let cursor = AuditCursor {
            time: DateTime::from_timestamp_micros(1_767_225_600_123_456).unwrap(),
            id: "abc".into(),
        };
        assert_eq!(AuditCursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(AuditCursor::decode("nonsense"), None);
        assert_eq!(AuditCursor::decode("12x/abc"), None);
    }

    #[test]
    fn a_time_range_ends_after_it_starts() {
        let at = |s| DateTime::from_timestamp(s, 0);
        let range = |start, end| AuditFilter {
            start_time: at(start),
            end_time: at(end),
            ..Default::default()
        };
        assert!(range(1, 2).validate().is_ok());
        assert!(AuditFilter::default().validate().is_ok());
        assert!(matches!(
            range(2, 2).validate(),
            Err(Error::InvalidArgument(v)) if v[0].field == "end_time"
        ));
    }

    #[test]
    fn api_keys_are_audited_without_their_hash() {
        let tenant = Id::parse("t", "acme").unwrap();
        let fields = ApiKeyFields {
            role: Some(Role::Reader),
            ..Default::default()
        };
        let mut v = Violations::new();
        let (key, _) = ApiKey::new(&tenant, tenant.clone(), fields, Utc::now(), &mut v).unwrap();
        let view = key.audit_view();
        assert!(view.get("key_hash").is_none());
        assert_eq!(view["role"], "READER");
    }
}
