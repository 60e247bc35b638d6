//! The change feed: generations of what cached entitlements and API keys
//! depend on, and a broadcast of every change applied (breach events too,
//! which only watchers of breaches follow). The services apply a
//! change after each commit; other replicas' changes arrive through the
//! store's NOTIFY follower. Applying one bumps the generations the
//! entitlement cache and the API key cache check entries against, and wakes
//! the watchers.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::broadcast;

use crate::domain::changes::Change;
use crate::domain::names::Id;

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
            // Events for breach watchers: nothing cached depends on them.
            Change::Breach { .. } | Change::AtRisk(_) => {}
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
}
