//! Serving entitlements: reads what resolution needs in one read transaction,
//! resolves (`crate::domain::entitlement`, pure), and answers "now" questions
//! from a bounded cache. An entry is good while the change generations it was
//! read under are current (`changes.rs`: the registry bumps them after each
//! commit, other replicas through NOTIFY) and until its `stable_until`, when a
//! validity window opens or closes. Questions about another instant (`as_of`,
//! `known_at`) always read the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use super::changes::{Changes, Stamp};
use crate::domain::entitlement::{
    self, Entitlement, Explanation, Inputs, Pair, Query, check_known_at, check_pair,
};
use crate::domain::names::{Id, party_name, service_name};
use crate::error::{Error, Result};
use crate::store::{Access, EntitlementRows, Store, Tx};

/// An entitlement and the instants it answers for.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub entitlement: Arc<Entitlement>,
    pub as_of: DateTime<Utc>,
    pub known_at: DateTime<Utc>,
}

/// One pair's outcome, and the first instant at which it may change by
/// itself (a validity window opening or closing).
#[derive(Debug)]
pub struct Answer {
    pub result: Result<Resolved>,
    pub stable_until: Option<DateTime<Utc>>,
}

type TenantCache = moka::sync::Cache<Pair, Cached>;

/// What the cache holds: the answer, found or NOT_FOUND, and what it depends on.
#[derive(Debug, Clone)]
struct Cached {
    answer: std::result::Result<Arc<Entitlement>, String>,
    stamp: Stamp,
    stable_until: Option<DateTime<Utc>>,
}

/// Cache figures since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
}

impl CacheStats {
    /// Hits over lookups; 0 before the first lookup.
    pub fn hit_ratio(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            0.0
        } else {
            self.hits as f64 / lookups as f64
        }
    }
}

pub struct Resolver {
    store: Arc<dyn Store>,
    changes: Arc<Changes>,
    /// One cache per tenant, each bounded by `capacity`, so that one
    /// tenant's traffic cannot evict another's entries.
    caches: std::sync::RwLock<std::collections::HashMap<Id, TenantCache>>,
    capacity: u64,
    hits: AtomicU64,
    misses: AtomicU64,
    stopping: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Resolver {
    /// `capacity`: how many entitlements of one tenant the cache holds at
    /// most (0: none).
    pub fn new(store: Arc<dyn Store>, changes: Arc<Changes>, capacity: u64) -> Self {
        Self {
            store,
            changes,
            caches: Default::default(),
            capacity,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stopping: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Tells long-lived calls (watches) that the server is shutting down.
    pub fn shutdown(&self) {
        self.stopping.send_replace(true);
    }

    /// Changes to `true` when the server starts shutting down.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    pub fn changes(&self) -> &Arc<Changes> {
        &self.changes
    }

    pub fn stats(&self) -> CacheStats {
        let entries = self
            .caches
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|c| {
                c.run_pending_tasks();
                c.entry_count()
            })
            .sum();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries,
        }
    }

    /// Empties the cache (the generations make entries stale anyway; this
    /// frees their memory).
    pub fn clear(&self) {
        self.caches
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The tenant's cache, made on first use.
    fn tenant_cache(&self, tenant: &Id) -> TenantCache {
        if let Some(c) = self
            .caches
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
        {
            return c.clone();
        }
        self.caches
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(tenant.clone())
            .or_insert_with(|| moka::sync::Cache::new(self.capacity))
            .clone()
    }

    /// The entitlement of one pair; `None` instants mean now.
    pub async fn resolve(
        &self,
        tenant: &Id,
        pair: &Pair,
        as_of: Option<DateTime<Utc>>,
        known_at: Option<DateTime<Utc>>,
    ) -> Result<Resolved> {
        let mut results = self
            .resolve_batch(tenant, std::slice::from_ref(pair), as_of, known_at)
            .await?;
        results.pop().expect("one result per pair")
    }

    /// The entitlements of many pairs, each with its own outcome; the outer
    /// error is for the whole call (bad instants, the store unavailable).
    pub async fn resolve_batch(
        &self,
        tenant: &Id,
        pairs: &[Pair],
        as_of: Option<DateTime<Utc>>,
        known_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Result<Resolved>>> {
        let answers = self
            .resolve_batch_until(tenant, pairs, as_of, known_at)
            .await?;
        Ok(answers.into_iter().map(|a| a.result).collect())
    }

    /// `resolve_batch`, with when each answer may next change by itself.
    pub async fn resolve_batch_until(
        &self,
        tenant: &Id,
        pairs: &[Pair],
        as_of: Option<DateTime<Utc>>,
        known_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Answer>> {
        let now = Utc::now();
        let known_at = check_known_at(known_at, now)?;
        let cache = (as_of.is_none() && known_at.is_none() && self.changes.is_live())
            .then(|| self.tenant_cache(tenant));
        let (as_of, known_at) = (as_of.unwrap_or(now), known_at.unwrap_or(now));
        let answer = |cached: &std::result::Result<Arc<Entitlement>, String>,
                      stable_until: Option<DateTime<Utc>>| Answer {
            result: match cached {
                Ok(e) => Ok(Resolved {
                    entitlement: e.clone(),
                    as_of,
                    known_at,
                }),
                Err(name) => Err(Error::NotFound(name.clone())),
            },
            stable_until,
        };
        let mut results: Vec<Option<Answer>> = Vec::with_capacity(pairs.len());
        results.resize_with(pairs.len(), || None);
        let mut misses = Vec::new();
        for (i, pair) in pairs.iter().enumerate() {
            let stamp = self.changes.stamp(tenant, &pair.service);
            if let Some(cache) = &cache {
                if let Some(c) = cache.get(pair)
                    && c.stamp == stamp
                    && c.stable_until.is_none_or(|until| now < until)
                {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    results[i] = Some(answer(&c.answer, c.stable_until));
                    continue;
                }
                self.misses.fetch_add(1, Ordering::Relaxed);
            }
            misses.push((i, pair, stamp));
        }
        if !misses.is_empty() {
            // Every miss in one read, set-wise, however many there are.
            let keys: Vec<(Id, Id)> = misses
                .iter()
                .map(|(_, pair, _)| (pair.consumer.clone(), pair.service.clone()))
                .collect();
            let mut tx = self.store.begin(Some(tenant), Access::Read).await?;
            let read = tx.entitlement_rows_for(tenant, &keys, known_at).await?;
            drop(tx);
            for ((i, pair, stamp), rows) in misses.into_iter().zip(read) {
                let query = Query {
                    consumer: pair.consumer.clone(),
                    service: pair.service.clone(),
                    as_of,
                    known_at,
                };
                let (computed, stable_until) = match inputs_of(tenant, &query, rows) {
                    Ok(inputs) => {
                        let x = entitlement::explain(tenant, &query, &inputs);
                        let found = x.entitlement.map(Arc::new).ok_or_else(|| {
                            format!(
                                "entitlement of {} on {}",
                                party_name(tenant, &query.consumer),
                                service_name(tenant, &query.service)
                            )
                        });
                        (found, x.stable_until)
                    }
                    Err(Error::NotFound(name)) => (Err(name), None),
                    Err(e) => return Err(e),
                };
                if let Some(cache) = &cache {
                    cache.insert(
                        pair.clone(),
                        Cached {
                            answer: computed.clone(),
                            stamp,
                            stable_until,
                        },
                    );
                }
                results[i] = Some(answer(&computed, stable_until));
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every pair answered"))
            .collect())
    }

    /// The layers considered for one pair and why each applied or not.
    pub async fn explain(
        &self,
        tenant: &Id,
        pair: &Pair,
        as_of: Option<DateTime<Utc>>,
        known_at: Option<DateTime<Utc>>,
    ) -> Result<Explanation> {
        let now = Utc::now();
        let known_at = check_known_at(known_at, now)?.unwrap_or(now);
        let query = Query {
            consumer: pair.consumer.clone(),
            service: pair.service.clone(),
            as_of: as_of.unwrap_or(now),
            known_at,
        };
        let mut tx = self.store.begin(Some(tenant), Access::Read).await?;
        let inputs = read_all_inputs(&mut *tx, tenant, &query).await?;
        Ok(entitlement::explain(tenant, &query, &inputs))
    }
}

/// What resolving `query` reads, from the rows the store read for it: only
/// the layers that can apply.
fn inputs_of(tenant: &Id, query: &Query, rows: EntitlementRows) -> Result<Inputs> {
    check_pair(tenant, query, &rows.ancestry, rows.service.as_ref())?;
    Ok(Inputs {
        ancestry: rows.ancestry,
        revisions: rows.revisions,
        overrides: rows.overrides,
        unrecorded: Vec::new(),
    })
}

/// Every layer that could be considered: the revisions of every agreement
/// that ever covered the service (recorded by `known_at` or not), the
/// overrides of its SERVICE_LEVEL agreements for any consumer, and those
/// recorded after `known_at`.
async fn read_all_inputs(tx: &mut dyn Tx, tenant: &Id, query: &Query) -> Result<Inputs> {
    let ancestry = tx
        .party_ancestry(tenant, &query.consumer, query.known_at)
        .await?;
    let service = tx.get_service(tenant, &query.service).await?;
    check_pair(tenant, query, &ancestry, service.as_ref())?;
    let revisions = tx.entitlement_revisions(tenant, &query.service).await?;
    let mut bases: Vec<Id> = revisions
        .iter()
        .filter(|r| r.snapshot.kind.takes_overrides())
        .map(|r| r.agreement.clone())
        .collect();
    bases.dedup();
    let overrides = tx
        .entitlement_overrides(tenant, &bases, query.known_at)
        .await?;
    let unrecorded = tx
        .overrides_recorded_after(tenant, &bases, query.known_at)
        .await?;
    Ok(Inputs {
        ancestry,
        revisions,
        overrides,
        unrecorded,
    })
}
