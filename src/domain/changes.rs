//! The change feed: what a committed write may have changed for entitlement
//! resolution. The registry publishes a change after each commit; on
//! PostgreSQL the same change also goes out by NOTIFY, in the writing
//! transaction, so that other replicas apply it too. Applying a change bumps
//! the generations the entitlement cache and the API key cache check entries
//! against, and wakes the watchers.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::domain::names::Id;

/// What a write may have changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// Generations of what cached entitlements depend on. An entry is good only
/// while the generations it was read under are current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    everything: u64,
    tenant: u64,
    service: u64,
}

/// Generations of what API keys depend on, taken before reading a key by
/// the hash of its secret, when its tenant is not known yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeysSeen {
    everything: u64,
    keys: u64,
}

/// Generations a cached API key was read under: it is good only while they
/// are current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyStamp {
    everything: u64,
    tenant: u64,
}

/// How many changes a slow watcher may fall behind before it re-reads all.
const FEED_CAPACITY: usize = 4096;

pub struct Changes {
    /// Whether changes made elsewhere reach this replica now (always on
    /// SQLite; on PostgreSQL while the LISTEN connection is up). While not,
    /// the cache is bypassed.
    live: AtomicBool,
    everything: AtomicU64,
    tenants: RwLock<HashMap<Id, u64>>,
    /// By tenant, then service, so a lookup needs no owned key.
    services: RwLock<HashMap<Id, HashMap<Id, u64>>>,
    /// Bumped by every change to any tenant's keys, before `tenant_keys`.
    keys: AtomicU64,
    /// By tenant: its keys changed (revoked) or the tenant did (deleted).
    tenant_keys: RwLock<HashMap<Id, u64>>,
    feed: broadcast::Sender<Change>,
}

impl Default for Changes {
    fn default() -> Self {
        Self {
            live: AtomicBool::new(true),
            everything: AtomicU64::new(0),
            tenants: RwLock::default(),
            services: RwLock::default(),
            keys: AtomicU64::new(0),
            tenant_keys: RwLock::default(),
            feed: broadcast::channel(FEED_CAPACITY).0,
        }
    }
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes").finish_non_exhaustive()
    }
}

impl Changes {
    /// The generations an entitlement of (tenant, service) read now depends on.
    /// Taken before reading the store, so a write that commits meanwhile makes
    /// the entry stale rather than letting an old answer pass for new.
    pub fn stamp(&self, tenant: &Id, service: &Id) -> Stamp {
        let everything = self.everything.load(Ordering::Acquire);
        let tenant_gen = read(&self.tenants).get(tenant).copied().unwrap_or(0);
        let service_gen = read(&self.services)
            .get(tenant)
            .and_then(|services| services.get(service))
            .copied()
            .unwrap_or(0);
        Stamp {
            everything,
            tenant: tenant_gen,
            service: service_gen,
        }
    }

    /// To take before reading an API key by its hash; see `key_stamp`.
    pub fn keys_seen(&self) -> KeysSeen {
        KeysSeen {
            everything: self.everything.load(Ordering::Acquire),
            keys: self.keys.load(Ordering::Acquire),
        }
    }

    /// The stamp of a key of `tenant` read after `seen` was taken, or `None`
    /// when a change to some tenant's keys was applied since: the read may
    /// predate it, and the tenant's generation now may include it, so the
    /// key must not be cached. Taking the tenant's generation only now (its
    /// tenant was unknown before the read) is sound because `apply` bumps
    /// the global `keys` before a tenant's: a tenant generation that counts a
    /// change implies a global one that differs from `seen`.
    pub fn key_stamp(&self, seen: KeysSeen, tenant: &Id) -> Option<KeyStamp> {
        let tenant_gen = read(&self.tenant_keys).get(tenant).copied().unwrap_or(0);
        (self.keys_seen() == seen).then_some(KeyStamp {
            everything: seen.everything,
            tenant: tenant_gen,
        })
    }

    /// Whether a key of `tenant` stamped `stamp` is still current.
    pub fn is_key_current(&self, stamp: KeyStamp, tenant: &Id) -> bool {
        stamp.everything == self.everything.load(Ordering::Acquire)
            && stamp.tenant == read(&self.tenant_keys).get(tenant).copied().unwrap_or(0)
    }

    /// Applies a change: entries read before it are stale from now on, and
    /// watchers hear of it.
    pub fn apply(&self, change: Change) {
        match &change {
            Change::Everything => {
                self.everything.fetch_add(1, Ordering::AcqRel);
            }
            Change::Tenant { tenant } => {
                *write(&self.tenants).entry(tenant.clone()).or_default() += 1;
                self.bump_keys(tenant);
            }
            Change::Services { tenant, services } => {
                let mut gens = write(&self.services);
                let gens = gens.entry(tenant.clone()).or_default();
                for s in services {
                    *gens.entry(s.clone()).or_default() += 1;
                }
            }
            Change::Keys { tenant } => self.bump_keys(tenant),
        }
        // No receiver is not an error: nobody is watching.
        let _ = self.feed.send(change);
    }

    /// The global generation first: see `key_stamp`.
    fn bump_keys(&self, tenant: &Id) {
        self.keys.fetch_add(1, Ordering::AcqRel);
        *write(&self.tenant_keys).entry(tenant.clone()).or_default() += 1;
    }

    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Marks whether other replicas' changes reach this one. Going live
    /// again applies `Everything`: what happened meanwhile is unknown.
    pub fn set_live(&self, live: bool) {
        // Stale first, then live: an entry read while changes were missed
        // must not pass in between.
        if live && !self.is_live() {
            self.apply(Change::Everything);
        }
        self.live.store(live, Ordering::Release);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }
}

impl Change {
    /// Whether the change may affect the entitlement of (tenant, service).
    pub fn affects(&self, tenant: &Id, service: &Id) -> bool {
        match self {
            Change::Everything => true,
            Change::Tenant { tenant: t } => t == tenant,
            Change::Services {
                tenant: t,
                services,
            } => t == tenant && services.contains(service),
            Change::Keys { .. } => false,
        }
    }

    /// Whether the change may have revoked or removed an API key of `tenant`
    /// (or the tenant itself).
    pub fn affects_keys(&self, tenant: &Id) -> bool {
        match self {
            Change::Everything => true,
            Change::Tenant { tenant: t } | Change::Keys { tenant: t } => t == tenant,
            Change::Services { .. } => false,
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
            // The other kinds are a few ids long.
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

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Id {
        Id::parse("id", s).unwrap()
    }

    #[test]
    fn a_change_stales_the_stamps_it_affects_and_only_those() {
        let changes = Changes::default();
        let (t, a, b) = (id("t"), id("a"), id("b"));
        let before_a = changes.stamp(&t, &a);
        let before_b = changes.stamp(&t, &b);
        changes.apply(Change::Services {
            tenant: t.clone(),
            services: vec![a.clone()],
        });
        assert_ne!(changes.stamp(&t, &a), before_a);
        assert_eq!(changes.stamp(&t, &b), before_b);
        changes.apply(Change::Tenant { tenant: t.clone() });
        assert_ne!(changes.stamp(&t, &b), before_b);
        let now = changes.stamp(&id("other"), &a);
        changes.apply(Change::Everything);
        assert_ne!(changes.stamp(&id("other"), &a), now);
    }

    #[test]
    fn a_key_change_stales_the_stamps_of_its_tenant_and_only_those() {
        let changes = Changes::default();
        let (t, other) = (id("t"), id("other"));
        let seen = changes.keys_seen();
        let stamp_t = changes.key_stamp(seen, &t).expect("nothing changed");
        let stamp_other = changes.key_stamp(seen, &other).expect("nothing changed");
        changes.apply(Change::Keys { tenant: t.clone() });
        assert!(!changes.is_key_current(stamp_t, &t));
        assert!(changes.is_key_current(stamp_other, &other));
        let stamp_other = changes.key_stamp(changes.keys_seen(), &other).unwrap();
        changes.apply(Change::Tenant {
            tenant: other.clone(),
        });
        assert!(!changes.is_key_current(stamp_other, &other));
        let stamp_t = changes.key_stamp(changes.keys_seen(), &t).unwrap();
        changes.apply(Change::Services {
            tenant: t.clone(),
            services: vec![id("s")],
        });
        assert!(changes.is_key_current(stamp_t, &t));
        changes.apply(Change::Everything);
        assert!(!changes.is_key_current(stamp_t, &t));
    }

    #[test]
    fn a_key_read_across_a_key_change_gets_no_stamp() {
        let changes = Changes::default();
        let seen = changes.keys_seen();
        // Another tenant's change counts too: the tenant is not known
        // before the read.
        changes.apply(Change::Keys {
            tenant: id("other"),
        });
        assert_eq!(changes.key_stamp(seen, &id("t")), None);
        let seen = changes.keys_seen();
        changes.apply(Change::Everything);
        assert_eq!(changes.key_stamp(seen, &id("t")), None);
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
