//! What a committed write may have changed for entitlement resolution and
//! API keys, or what it tells watchers of breaches, as a value: the service
//! announces one after each commit (`crate::service::changes`), and on
//! PostgreSQL the store sends the same value by NOTIFY so that other replicas
//! apply it too.

use serde::{Deserialize, Serialize};

use crate::domain::agreement::Agreement;
use crate::domain::breach::{AtRisk, BreachEvent};
use crate::domain::names::Id;

/// What a write may have changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Entitlements of these services (agreements, overrides, the services
    /// themselves).
    Services { tenant: Id, services: Vec<Id> },
    /// Any entitlement of the tenant (parties and their ancestry, the tenant).
    Tenant { tenant: Id },
    /// The tenant's API keys (a revocation): no entitlement, but cached keys.
    Keys { tenant: Id },
    /// Anything: changes may have been missed (a lost LISTEN connection).
    Everything,
    /// A breach was opened, revised or withdrawn: for WatchBreaches; nothing
    /// cached depends on it.
    Breach { tenant: Id, event: Box<BreachEvent> },
    /// A page alert started firing on an objective: for WatchBreaches.
    AtRisk(Box<AtRisk>),
}

impl Change {
    /// What a write to the tenant or its parties may change: any of its
    /// entitlements (and its keys).
    pub fn tenant(tenant: &Id) -> Change {
        Change::Tenant {
            tenant: tenant.clone(),
        }
    }

    /// What a write to a service of the catalogue may change.
    pub fn service(tenant: &Id, service: &Id) -> Change {
        Change::Services {
            tenant: tenant.clone(),
            services: vec![service.clone()],
        }
    }

    /// What a write to agreement `a` (or one of its overrides) may change:
    /// the entitlements of its services.
    pub fn agreement(a: &Agreement) -> Change {
        Change::Services {
            tenant: a.tenant.clone(),
            services: a.services.clone(),
        }
    }

    /// What editing an agreement may change: the entitlements of the
    /// services it covered before and of those it covers after.
    pub fn agreement_edit(before: &Agreement, after: &Agreement) -> Change {
        let mut services = before.services.clone();
        services.extend(
            after
                .services
                .iter()
                .filter(|s| !before.services.contains(s))
                .cloned(),
        );
        Change::Services {
            tenant: after.tenant.clone(),
            services,
        }
    }

    /// Whether the change may affect the entitlement of (tenant, service).
    pub fn affects(&self, tenant: &Id, service: &Id) -> bool {
        match self {
            Change::Everything => true,
            Change::Tenant { tenant: t } => t == tenant,
            Change::Services {
                tenant: t,
                services,
            } => t == tenant && services.contains(service),
            Change::Keys { .. } | Change::Breach { .. } | Change::AtRisk(_) => false,
        }
    }

    /// Whether the change may have revoked or removed an API key of `tenant`
    /// (or the tenant itself).
    pub fn affects_keys(&self, tenant: &Id) -> bool {
        match self {
            Change::Everything => true,
            Change::Tenant { tenant: t } | Change::Keys { tenant: t } => t == tenant,
            Change::Services { .. } | Change::Breach { .. } | Change::AtRisk(_) => false,
        }
    }

    /// The change as one or more changes that together affect what it
    /// affects, each at most `max_bytes` long in JSON (a PostgreSQL NOTIFY
    /// payload is bounded). A `Services` change is cut into runs of its
    /// services, so other replicas still invalidate only those; should one
    /// service alone not fit, the tenant-wide change stands in for it.
    pub fn split_to_fit(self, max_bytes: usize) -> Vec<Change> {
        if json_len(&self) <= max_bytes {
            return vec![self];
        }
        let Change::Services { tenant, services } = self else {
            // The other kinds are a few ids long (a breach event under
            // 2 KB: its ids, key and numbers are bounded).
            return vec![self];
        };
        let part = |services: Vec<Id>| Change::Services {
            tenant: tenant.clone(),
            services,
        };
        let empty = json_len(&part(Vec::new()));
        let mut parts = Vec::new();
        let mut run: Vec<Id> = Vec::new();
        let mut used = empty;
        for service in services {
            // The quoted id and the comma before it.
            let cost = json_len(&service) + 1;
            if empty + cost > max_bytes {
                return vec![Change::Tenant { tenant }];
            }
            if used + cost > max_bytes {
                parts.push(part(std::mem::take(&mut run)));
                used = empty;
            }
            used += cost;
            run.push(service);
        }
        if !run.is_empty() {
            parts.push(part(run));
        }
        parts
    }
}

/// The length of a value's JSON encoding. Encoding ids and changes cannot
/// fail; if it did, the value would count as too long.
fn json_len<T: Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |json| json.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Id {
        Id::parse("id", s).unwrap()
    }

    #[test]
    fn an_agreement_edit_changes_the_services_covered_before_and_after() {
        let mut v = crate::error::Violations::new();
        let before = Agreement::new(
            &id("t"),
            id("gold"),
            crate::domain::agreement::AgreementFields {
                kind: Some(crate::domain::agreement::AgreementKind::ServiceLevel),
                provider: Some(id("ops")),
                effective_from: Some(chrono::Utc::now()),
                services: Some(vec![id("a"), id("b")]),
                ..Default::default()
            },
            chrono::Utc::now(),
            &mut v,
            "agreement",
        )
        .unwrap();
        let mut after = before.clone();
        after.services = vec![id("b"), id("c")];
        assert_eq!(
            Change::agreement_edit(&before, &after),
            Change::Services {
                tenant: id("t"),
                services: vec![id("a"), id("b"), id("c")]
            }
        );
    }

    fn long_ids(n: usize) -> Vec<Id> {
        (0..n)
            .map(|i| id(&format!("service-{i:03}-{}", "x".repeat(51))))
            .collect()
    }

    #[test]
    fn a_change_to_many_services_splits_into_parts_that_fit_and_cover_it() {
        let tenant = id(&"t".repeat(63));
        let services = long_ids(150);
        let change = Change::Services {
            tenant: tenant.clone(),
            services: services.clone(),
        };
        assert!(json_len(&change) > 8000);

        let parts = change.split_to_fit(7999);

        assert!(parts.len() > 1);
        let mut covered = Vec::new();
        for part in parts {
            assert!(json_len(&part) <= 7999, "{} bytes", json_len(&part));
            match part {
                Change::Services {
                    tenant: t,
                    services,
                } => {
                    assert_eq!(t, tenant);
                    covered.extend(services);
                }
                other => panic!("expected a services change, got {other:?}"),
            }
        }
        assert_eq!(covered, services);
    }

    #[test]
    fn a_change_that_fits_stays_whole_and_one_that_cannot_widens_to_its_tenant() {
        let small = Change::Services {
            tenant: id("t"),
            services: long_ids(3),
        };
        assert_eq!(small.clone().split_to_fit(7999), vec![small.clone()]);
        assert_eq!(
            small.split_to_fit(60),
            vec![Change::Tenant { tenant: id("t") }]
        );
        assert_eq!(Change::Everything.split_to_fit(1), vec![Change::Everything]);
    }
}
