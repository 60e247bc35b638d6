//! Reporting measurements: a batch is checked item by item (the domain's
//! `Measurement::check`), judged against the catalogue read in the batch's
//! transaction (`Catalog::judge`), its idempotency keys recorded, and what is
//! new stored with its rollups, all in one transaction: a batch is answered
//! once it is committed, and a retry of any part of it counts nothing twice.
//! The same transaction marks the days the batch touched for the period
//! closer (`service/breaches.rs`).
//! Also the retention job: partitions ahead and behind (PostgreSQL), expired
//! keys and rows.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use tokio::task::coop;
use tracing::{debug, info, warn};

use super::Registry;
use crate::domain::breach::markers;
use crate::domain::measurement::{Measurement, Reason, Rejection, Reported, rollups};
use crate::domain::names::Id;
use crate::error::{Error, Result};
use crate::store::Access;

pub struct Measurements<'a> {
    pub(super) registry: &'a Registry,
}

/// One item of a batch that was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Its position in the batch.
    pub index: usize,
    pub id: String,
    pub rejection: Rejection,
}

/// What a batch came to, once committed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Stored by this batch.
    pub accepted: i64,
    /// Stored before (by an earlier batch or earlier in this one) with the
    /// same payload: counted once.
    pub duplicates: i64,
    /// By index.
    pub rejections: Vec<Refused>,
}

/// What the batches committed since the server started came to, item by
/// item, whichever call brought them (ReportMeasurements or
/// StreamMeasurements): what the metrics report (`crate::metrics`). A batch
/// that failed as a whole counts nothing here.
#[derive(Debug, Default)]
pub struct Tally {
    accepted: AtomicU64,
    duplicates: AtomicU64,
    /// By `Reason as usize`.
    rejected: [AtomicU64; Reason::ALL.len()],
}

impl Tally {
    fn add(&self, outcome: &Outcome) {
        let relaxed = Ordering::Relaxed;
        self.accepted
            .fetch_add(outcome.accepted.unsigned_abs(), relaxed);
        self.duplicates
            .fetch_add(outcome.duplicates.unsigned_abs(), relaxed);
        for refused in &outcome.rejections {
            if let Some(count) = self.rejected.get(refused.rejection.reason as usize) {
                count.fetch_add(1, relaxed);
            }
        }
    }

    /// Measurements stored.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Measurements stored before with the same payload, counted once.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// Measurements refused for `reason`.
    pub fn rejected(&self, reason: Reason) -> u64 {
        self.rejected
            .get(reason as usize)
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }
}

fn another_payload() -> Rejection {
    Rejection::new(
        Reason::AlreadyExists,
        "`id` was stored with another payload",
    )
}

/// How an item whose own checks passed fares against the keys.
enum Fate {
    New,
    Duplicate,
    Refused(Rejection),
}

/// A batch checked item by item, before anything is read: what the
/// catalogue and the keys then decide (`Measurements::store`). A stream
/// checks its next batch while the last one is being written.
#[derive(Debug, Default)]
pub struct Checked {
    /// When the batch was checked: late-data markers are due from then.
    now: DateTime<Utc>,
    /// By index, the items that passed, with their digests.
    passed: Vec<(usize, Measurement, String)>,
    /// The items that did not.
    rejections: Vec<Refused>,
}

impl Measurements<'_> {
    /// Stores the measurements of `batch` that pass, in one transaction of
    /// `tenant`, and says what became of each.
    pub async fn report(&self, tenant: &Id, batch: &[Reported]) -> Result<Outcome> {
        let checked = self.check(tenant, batch).await;
        self.store(tenant, checked).await
    }

    /// Checks each item of `batch` on its own (`Measurement::check`) and
    /// takes the digest of those that pass; reads nothing.
    pub async fn check(&self, tenant: &Id, batch: &[Reported]) -> Checked {
        let now = Utc::now();
        let policy = self.registry.measurement_policy;
        let mut checked = Checked {
            now,
            passed: Vec::with_capacity(batch.len()),
            rejections: Vec::new(),
        };
        for (index, reported) in batch.iter().enumerate() {
            match Measurement::check(tenant, reported, now, &policy) {
                Ok(m) => {
                    let digest = m.digest();
                    checked.passed.push((index, m, digest));
                }
                Err(rejection) => checked.rejections.push(Refused {
                    index,
                    id: reported.id.clone(),
                    rejection,
                }),
            }
            // A batch is thousands of items of CPU work: let the calls
            // sharing this worker (cached resolves) run in between.
            coop::consume_budget().await;
        }
        checked
    }

    /// Judges the items `checked` passed against the catalogue and the
    /// keys, and stores what is new with its rollups, in one transaction.
    pub async fn store(&self, tenant: &Id, checked: Checked) -> Result<Outcome> {
        let Checked {
            now,
            passed,
            rejections,
        } = checked;
        let mut outcome = Outcome {
            rejections,
            ..Outcome::default()
        };
        let mut refuse = |index: usize, id: &str, rejection: Rejection| {
            outcome.rejections.push(Refused {
                index,
                id: id.to_string(),
                rejection,
            })
        };
        if passed.is_empty() {
            outcome.rejections.sort_by_key(|r| r.index);
            self.registry.ingestion.add(&outcome);
            return Ok(outcome);
        }

        let mut tx = self.registry.write(tenant).await?;
        let services: BTreeSet<&str> = passed.iter().map(|(_, m, _)| m.service.as_str()).collect();
        let parties: BTreeSet<&str> = passed
            .iter()
            .filter_map(|(_, m, _)| m.consumer.as_ref().map(Id::as_str))
            .collect();
        let catalog = tx
            .measurement_catalog(
                tenant,
                &services.into_iter().collect::<Vec<_>>(),
                &parties.into_iter().collect::<Vec<_>>(),
            )
            .await?;
        let mut judged: Vec<(usize, Measurement, String)> = Vec::with_capacity(passed.len());
        for (index, m, digest) in passed {
            match catalog.judge(&m) {
                Ok(()) => judged.push((index, m, digest)),
                Err(rejection) => refuse(index, &m.id, rejection),
            }
        }

        // The first item of each id stands for it; the keys are recorded in
        // id order, so that concurrent batches wait for each other in one
        // order rather than deadlock. What those items add to the rollups
        // and which days they touch are worked out before the write: in
        // the common case (every key new) one statement records it all.
        let mut first: HashMap<&str, usize> = HashMap::with_capacity(judged.len());
        for (position, (_, m, _)) in judged.iter().enumerate() {
            first.entry(m.id.as_str()).or_insert(position);
        }
        let mut candidates: Vec<(&Measurement, &str)> = first
            .values()
            .map(|&p| (&judged[p].1, judged[p].2.as_str()))
            .collect();
        candidates.sort_unstable_by(|a, b| a.0.id.cmp(&b.0.id));
        let sums = rollups(candidates.iter().map(|(m, _)| *m));
        let days = markers(candidates.iter().map(|(m, _)| *m));
        coop::consume_budget().await;
        let recorded = tx
            .record_measurements(tenant, &candidates, &sums, &days, now)
            .await?;
        let taken: HashSet<&str> = recorded.ids.iter().map(String::as_str).collect();
        let had: Vec<&str> = candidates
            .iter()
            .map(|(m, _)| m.id.as_str())
            .filter(|id| !taken.contains(id))
            .collect();
        // What each id had stands for: the digest stored before (the ids
        // taken here stand for their first item's).
        let stored: HashMap<String, String> = tx
            .measurement_digests(tenant, &had)
            .await?
            .into_iter()
            .collect();

        let mut new: Vec<&Measurement> = Vec::with_capacity(taken.len());
        for (position, (index, m, digest)) in judged.iter().enumerate() {
            let firsts = first[m.id.as_str()];
            let fate = if taken.contains(m.id.as_str()) {
                if judged[firsts].2 != *digest {
                    Fate::Refused(another_payload())
                } else if firsts == position {
                    Fate::New
                } else {
                    Fate::Duplicate
                }
            } else {
                // Every id was taken here or found stored: the batch holds
                // its services, so not even a forced deletion of the
                // tenant can take a key away meanwhile.
                match stored.get(&m.id) {
                    Some(before) if before == digest => Fate::Duplicate,
                    Some(_) => Fate::Refused(another_payload()),
                    None => {
                        return Err(Error::internal(format!(
                            "the key of measurement `{}` was neither recorded nor found",
                            m.id
                        )));
                    }
                }
            };
            match fate {
                Fate::New => new.push(m),
                Fate::Duplicate => outcome.duplicates += 1,
                Fate::Refused(rejection) => refuse(*index, &m.id, rejection),
            }
        }
        if !recorded.derived {
            // Some keys were had: the rollups and days of what is new only.
            tx.add_count_rollups(tenant, &rollups(new.iter().copied()))
                .await?;
            // The days the batch touched, for the period closer: late data
            // for a closed period is then evaluated within seconds.
            tx.mark_compliance_dirty(tenant, &markers(new.iter().copied()), now)
                .await?;
        }
        tx.commit().await?;

        outcome.accepted = new.len() as i64;
        outcome.rejections.sort_by_key(|r| r.index);
        self.registry.ingestion.add(&outcome);
        debug!(
            tenant = %tenant,
            accepted = outcome.accepted,
            duplicates = outcome.duplicates,
            rejected = outcome.rejections.len(),
            "measurement batch committed"
        );
        Ok(outcome)
    }

    /// Creates the partitions the accepted window needs at `now`, through
    /// two months ahead, and drops those wholly expired (PostgreSQL; one
    /// partition per transaction). The server does it before it serves, so
    /// that its first calls find their months, and then with retention.
    pub async fn maintain_partitions(&self, now: DateTime<Utc>) -> Result<()> {
        let policy = self.registry.measurement_policy;
        let cutoffs = policy.cutoffs(now);
        for done in self
            .registry
            .store()
            .partition_measurements(policy.months(now), Some(&cutoffs))
            .await?
        {
            info!(partition = %done, "measurement partitions maintained");
        }
        Ok(())
    }

    /// Applies retention at `now`: maintains the partitions
    /// (`maintain_partitions`), then deletes each tenant's expired keys and
    /// the rows that expire one by one. Returns how many keys and rows it
    /// deleted.
    pub async fn retain(&self, now: DateTime<Utc>) -> Result<u64> {
        let store = self.registry.store();
        let cutoffs = self.registry.measurement_policy.cutoffs(now);
        self.maintain_partitions(now).await?;
        let mut deleted = 0;
        let mut after: Option<String> = None;
        loop {
            let mut tx = store.begin(None, Access::Read).await?;
            let tenants = tx.list_tenants(after.as_deref(), RETENTION_BATCH).await?;
            drop(tx);
            for tenant in &tenants {
                // What the period closer keeps of days and periods past
                // rollup retention: their data is gone.
                let mut tx = self.registry.write(&tenant.id).await?;
                deleted += tx
                    .delete_expired_breach_state(&tenant.id, cutoffs.kept_before)
                    .await?;
                tx.commit().await?;
                loop {
                    let mut tx = self.registry.write(&tenant.id).await?;
                    let n = tx
                        .delete_expired_measurements(&tenant.id, &cutoffs, RETENTION_BATCH)
                        .await?;
                    tx.commit().await?;
                    deleted += n;
                    if n == 0 {
                        break;
                    }
                }
            }
            match tenants.last() {
                Some(last) if tenants.len() as i64 == RETENTION_BATCH => {
                    after = Some(last.id.to_string());
                }
                _ => return Ok(deleted),
            }
        }
    }
}

/// Expired keys or rows of one table deleted per transaction, so that
/// retention holds its locks briefly; also the tenants read per page.
const RETENTION_BATCH: i64 = 1000;
/// How often retention runs (more often if measurements expire sooner).
const RETENTION_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// Runs retention now and then every `RETENTION_INTERVAL` (or every
/// `measurement_max_age`, if shorter) until the task is dropped. Every
/// replica runs it; partition changes are idempotent and deletions of the
/// same rows by two replicas simply find fewer.
pub async fn retain_periodically(registry: Arc<Registry>) {
    let every = registry
        .measurement_policy
        .max_age
        .to_std()
        .map_or(RETENTION_INTERVAL, |age| age.min(RETENTION_INTERVAL));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match registry.measurements().retain(Utc::now()).await {
            Ok(0) => {}
            Ok(deleted) => debug!(deleted, "deleted expired measurements"),
            Err(error) => warn!(%error, "could not apply measurement retention"),
        }
    }
}
