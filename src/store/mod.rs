//! Storage: one `Store` trait, a PostgreSQL and a SQLite implementation. Every
//! operation runs in a transaction (`Tx`) scoped to one tenant; every row
//! carries its tenant and every key includes it. The store translates
//! constraint violations into domain errors but decides no business rule:
//! which kinds and states a query asks for come from the domain.
//!
//! Resources are stored as a JSON body beside the columns that keys, foreign
//! keys and filters need. Each resource's SQL is written once, in its own
//! module, against `connection::Connection`, which each engine implements
//! (`postgres.rs`, `sqlite.rs`); `transaction.rs` is the one `Tx`.

mod agreements;
mod api_keys;
mod audit;
mod breaches;
mod connection;
mod constraints;
mod entitlements;
mod measurements;
mod overrides;
mod parties;
mod partitions;
mod postgres;
mod requests;
mod revisions;
mod services;
mod settings;
mod spans;
mod sqlite;
mod tenants;
mod transaction;

pub use measurements::Recorded;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::agreement::{Agreement, AgreementKind, Revision};
use crate::domain::api_key::ApiKey;
use crate::domain::audit::{AuditCursor, AuditEvent, AuditFilter};
use crate::domain::breach::{
    AlertKey, AlertState, Breach, BreachCursor, BreachKey, BreachState, Marker,
};
use crate::domain::changes::Change;
use crate::domain::filter::{AgreementFilter, BreachFilter};
use crate::domain::measurement::{
    Catalog, CountBucket, Cutoffs, Level, Measurement, RollupKey, SampleAt, View,
};
use crate::domain::names::Id;
use crate::domain::overrides::Override;
use crate::domain::party::Party;
use crate::domain::service::Service;
use crate::domain::tenant::Tenant;
use crate::error::{Error, Result};
use constraints::out_of_time;

pub use breaches::{DueMarker, PeriodEvaluation};
pub use postgres::PostgresStore;
pub use spans::TARGET as SPAN_TARGET;
pub use sqlite::SqliteStore;

/// Whether a transaction writes. SQLite takes its write lock up front for a
/// writing transaction; on PostgreSQL, the rows an operation changes are read
/// with the `_for_update` methods, and references are plain reads (foreign
/// keys keep them from vanishing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// A request_id recorded by an earlier create (AIP-155).
#[derive(Debug, Clone)]
pub struct StoredRequest {
    pub fingerprint: String,
    /// The resource the first call returned, once that call committed.
    pub response: Option<serde_json::Value>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// What follows the changes other replicas commit, where there can be
    /// other replicas (PostgreSQL: LISTEN); `None` where one server owns the
    /// database (SQLite), whose own writes the registry applies itself.
    fn change_feed(&self) -> Option<Box<dyn ChangeFeed>>;

    /// Starts a transaction scoped to `tenant` (`None`: platform operations
    /// that span tenants, such as listing them).
    async fn begin(&self, tenant: Option<&Id>, access: Access) -> Result<Box<dyn Tx>>;

    /// The secret that seals page tokens, created on first use and shared by
    /// every replica on the same database.
    async fn page_token_secret(&self) -> Result<Vec<u8>>;

    /// Where measurements are partitioned by time (PostgreSQL): creates the
    /// monthly partitions from `months.0` through `months.1` that are
    /// missing and drops those wholly before `cutoffs` (raw counts before
    /// `raw_before`, rollups, samples and downtime before `kept_before`;
    /// none without cutoffs). Which exist it reads from the catalogue, which
    /// locks no table; each partition it creates or drops is a transaction
    /// of its own, holding one table's lock and waiting for it briefly, so
    /// that it cannot deadlock with calls. A change that fails (its lock
    /// not granted) is logged and left to the next call. Returns what it
    /// did (`created <partition>`, `dropped <partition>`); nothing where
    /// nothing is partitioned (SQLite).
    async fn partition_measurements(
        &self,
        months: (NaiveDate, NaiveDate),
        cutoffs: Option<&Cutoffs>,
    ) -> Result<Vec<String>>;

    /// Runs the cheapest statement there is on one of the pool's
    /// connections: whether the database answers, for readiness. It waits
    /// for a connection like any call, so the caller bounds it.
    async fn ping(&self) -> Result<()>;

    /// How many of the pool's connections are open, in use and idle, and
    /// how many it may open: read from the pool's own counters, at once,
    /// for the metrics.
    fn pool_use(&self) -> PoolUse;

    /// Closes the pool, waiting for connections in use.
    async fn close(&self);
}

/// The connection pool at one instant (`Store::pool_use`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    /// Connections lent to a transaction or statement.
    pub used: u32,
    /// Connections open and waiting in the pool.
    pub idle: u32,
    /// The most the pool opens (`max_connections`).
    pub max: u32,
}

impl PoolUse {
    /// From sqlx's counters: `size` open connections, `idle` of them idle.
    /// The two are read one after the other, so `idle` may momentarily
    /// exceed `size`; no count goes below zero.
    fn of<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> Self {
        let size = pool.size();
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX).min(size);
        Self {
            used: size - idle,
            idle,
            max: pool.options().get_max_connections(),
        }
    }
}

/// An idempotency key of a measurement to record.
#[derive(Debug, Clone, Copy)]
pub struct MeasurementKey<'a> {
    pub id: &'a str,
    /// `Measurement::digest`.
    pub digest: &'a str,
    /// The measurement's time (a downtime's start), which retention ages.
    pub time: DateTime<Utc>,
}

/// Follows the changes other replicas commit.
#[async_trait]
pub trait ChangeFeed: Send {
    /// Calls `on_change` with each change another replica commits,
    /// `Some(Change::Everything)` for one it cannot read and whenever it
    /// (re)connects, and `None` when it loses the connection (changes may be
    /// missed until it is back). Reconnects every second until it is; runs
    /// until the task is dropped.
    async fn follow(self: Box<Self>, on_change: Box<dyn Fn(Option<Change>) + Send>);
}

/// One transaction. Dropping it without `commit` rolls it back.
#[async_trait]
pub trait Tx: Send {
    async fn commit(self: Box<Self>) -> Result<()>;

    /// Serialises writers of one tenant for checks that span rows (party
    /// cycles, overlapping agreements).
    async fn lock_tenant(&mut self, tenant: &Id) -> Result<()>;

    /// Tells other replicas of `change` once the transaction commits
    /// (PostgreSQL NOTIFY; nothing on SQLite, which has one server).
    async fn notify(&mut self, change: &Change) -> Result<()>;

    /// Records `request_id` for this tenant (`""` for platform requests) until
    /// `expire_time`, or returns what an earlier request with the same id
    /// recorded. An id expired at `now` is taken over as if it were unused.
    /// Concurrent claims of one id wait for the first to commit or roll back.
    async fn claim_request(
        &mut self,
        tenant: &str,
        request_id: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
        expire_time: DateTime<Utc>,
    ) -> Result<Option<StoredRequest>>;
    async fn complete_request(
        &mut self,
        tenant: &str,
        request_id: &str,
        response: &serde_json::Value,
    ) -> Result<()>;
    /// Deletes up to `limit` request_ids of any tenant expired at `now`
    /// (platform scope); returns how many.
    async fn delete_expired_requests(&mut self, now: DateTime<Utc>, limit: i64) -> Result<u64>;

    async fn insert_tenant(&mut self, tenant: &Tenant) -> Result<()>;
    async fn get_tenant(&mut self, id: &Id) -> Result<Option<Tenant>>;
    /// `get_tenant`, locking the row until the transaction ends (PostgreSQL).
    async fn get_tenant_for_update(&mut self, id: &Id) -> Result<Option<Tenant>>;
    async fn list_tenants(&mut self, after: Option<&str>, limit: i64) -> Result<Vec<Tenant>>;
    async fn update_tenant(&mut self, tenant: &Tenant) -> Result<()>;
    /// Names of up to `limit` parties, services and agreements of the tenant.
    async fn tenant_contents(&mut self, id: &Id, limit: i64) -> Result<Vec<String>>;
    /// Deletes the tenant and everything it holds.
    async fn delete_tenant(&mut self, id: &Id) -> Result<()>;

    async fn insert_party(&mut self, party: &Party) -> Result<()>;
    async fn get_party(&mut self, tenant: &Id, id: &Id) -> Result<Option<Party>>;
    /// `get_party`, locking the row until the transaction ends (PostgreSQL).
    async fn get_party_for_update(&mut self, tenant: &Id, id: &Id) -> Result<Option<Party>>;
    async fn list_parties(
        &mut self,
        tenant: &Id,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Party>>;
    async fn update_party(&mut self, party: &Party) -> Result<()>;
    async fn delete_party(&mut self, tenant: &Id, id: &Id, now: DateTime<Utc>) -> Result<()>;
    /// Names of the resources that refer to the party (at most `limit`).
    async fn party_users(&mut self, tenant: &Id, id: &Id, limit: i64) -> Result<Vec<String>>;

    async fn insert_service(&mut self, service: &Service) -> Result<()>;
    async fn get_service(&mut self, tenant: &Id, id: &Id) -> Result<Option<Service>>;
    /// `get_service`, locking the row until the transaction ends (PostgreSQL).
    async fn get_service_for_update(&mut self, tenant: &Id, id: &Id) -> Result<Option<Service>>;
    async fn list_services(
        &mut self,
        tenant: &Id,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Service>>;
    async fn update_service(&mut self, service: &Service) -> Result<()>;
    async fn delete_service(&mut self, tenant: &Id, id: &Id) -> Result<()>;
    /// Names of the agreements that cover the service (at most `limit`).
    async fn service_users(&mut self, tenant: &Id, id: &Id, limit: i64) -> Result<Vec<String>>;

    async fn insert_agreement(&mut self, agreement: &Agreement) -> Result<()>;
    async fn get_agreement(&mut self, tenant: &Id, id: &Id) -> Result<Option<Agreement>>;
    /// `get_agreement`, locking the row until the transaction ends (PostgreSQL).
    async fn get_agreement_for_update(&mut self, tenant: &Id, id: &Id)
    -> Result<Option<Agreement>>;
    async fn list_agreements(
        &mut self,
        tenant: &Id,
        filter: &AgreementFilter,
        now: DateTime<Utc>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Agreement>>;
    async fn update_agreement(&mut self, agreement: &Agreement) -> Result<()>;
    /// Deletes the agreement with its overrides, closing their history at
    /// `now`; returns the overrides it removed, by id.
    async fn delete_agreement(
        &mut self,
        tenant: &Id,
        id: &Id,
        now: DateTime<Utc>,
    ) -> Result<Vec<Override>>;
    /// Published agreements (ACTIVE or TERMINATED, expired or not) of `kind`
    /// that cover any of `services`.
    async fn published_agreements_covering(
        &mut self,
        tenant: &Id,
        kind: AgreementKind,
        services: &[Id],
    ) -> Result<Vec<Agreement>>;
    /// The services of the published agreements of `kinds` whose consumer is
    /// one of `parties`, and of the published agreements with an override
    /// for one of them, by id.
    async fn services_with_terms_for(
        &mut self,
        tenant: &Id,
        parties: &[Id],
        kinds: &[AgreementKind],
    ) -> Result<Vec<Id>>;
    /// Names of agreements whose `supports` name the agreement (at most `limit`).
    async fn agreement_supporters(
        &mut self,
        tenant: &Id,
        id: &Id,
        limit: i64,
    ) -> Result<Vec<String>>;

    async fn insert_revision(&mut self, revision: &Revision) -> Result<()>;
    async fn get_revision(
        &mut self,
        tenant: &Id,
        agreement: &Id,
        id: &Id,
    ) -> Result<Option<Revision>>;
    /// Newest first; `before` is the sequence number of the last one seen.
    async fn list_revisions(
        &mut self,
        tenant: &Id,
        agreement: &Id,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Revision>>;
    async fn count_revisions(&mut self, tenant: &Id, agreement: &Id) -> Result<i64>;

    async fn insert_api_key(&mut self, key: &ApiKey) -> Result<()>;
    async fn get_api_key_for_update(&mut self, tenant: &Id, id: &Id) -> Result<Option<ApiKey>>;
    async fn get_api_key(&mut self, tenant: &Id, id: &Id) -> Result<Option<ApiKey>>;
    async fn list_api_keys(
        &mut self,
        tenant: &Id,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ApiKey>>;
    async fn update_api_key(&mut self, key: &ApiKey) -> Result<()>;
    /// The key whose secret hashes to `key_hash`, in any tenant: the one
    /// lookup authentication makes before it knows the tenant.
    async fn find_api_key(&mut self, key_hash: &str) -> Result<Option<ApiKey>>;

    async fn insert_audit_event(&mut self, event: &AuditEvent) -> Result<()>;
    /// Newest first, strictly older than `before` when given; only those
    /// stamped with `tenant_uid` when given.
    async fn list_audit_events(
        &mut self,
        tenant: &Id,
        tenant_uid: Option<&str>,
        filter: &AuditFilter,
        before: Option<&AuditCursor>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>>;

    async fn insert_override(&mut self, o: &Override) -> Result<()>;
    async fn get_override(
        &mut self,
        tenant: &Id,
        agreement: &Id,
        id: &Id,
    ) -> Result<Option<Override>>;
    async fn get_override_for_update(
        &mut self,
        tenant: &Id,
        agreement: &Id,
        id: &Id,
    ) -> Result<Option<Override>>;
    async fn list_overrides(
        &mut self,
        tenant: &Id,
        agreement: &Id,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Override>>;
    async fn update_override(&mut self, o: &Override) -> Result<()>;
    async fn delete_override(
        &mut self,
        tenant: &Id,
        agreement: &Id,
        id: &Id,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// In one round trip, what resolving (consumer, service) as known at
    /// `known_at` reads: as `party_ancestry`, the service (as it is now),
    /// `entitlement_revisions` for the ancestry, and `entitlement_overrides`
    /// of the service's SERVICE_LEVEL agreements for the ancestry.
    async fn entitlement_rows(
        &mut self,
        tenant: &Id,
        consumer: &Id,
        service: &Id,
        known_at: DateTime<Utc>,
    ) -> Result<EntitlementRows>;
    /// `entitlement_rows` of every (consumer, service) pair, in the order
    /// given, still in one round trip: a batch reads set-wise, not pair by
    /// pair.
    async fn entitlement_rows_for(
        &mut self,
        tenant: &Id,
        pairs: &[(Id, Id)],
        known_at: DateTime<Utc>,
    ) -> Result<Vec<EntitlementRows>>;
    /// What the catalogue of `tenant` says of a batch of measurements naming
    /// `services` and `parties` (ids): those that exist, and the objectives
    /// of every agreement covering those services (any state, with their
    /// overrides' added objectives). The services found cannot be deleted
    /// until the transaction ends.
    async fn measurement_catalog(
        &mut self,
        tenant: &Id,
        services: &[&str],
        parties: &[&str],
    ) -> Result<Catalog>;
    /// Records those of `keys` that `tenant` does not have yet; returns the
    /// ids recorded. A key a concurrent transaction is recording waits for
    /// it to commit or roll back.
    /// Records the keys of `candidates` (one measurement per id, sorted by
    /// id, each with its digest) and stores the measurements whose keys
    /// were new; if every key was, also adds `sums` (their rollups) and
    /// `markers` (their days, due at `now`), which were derived from all of
    /// them. In one statement where the engine allows.
    async fn record_measurements(
        &mut self,
        tenant: &Id,
        candidates: &[(&Measurement, &str)],
        sums: &BTreeMap<RollupKey<'_>, (i64, i64)>,
        markers: &BTreeSet<Marker>,
        now: DateTime<Utc>,
    ) -> Result<Recorded>;
    async fn insert_measurement_keys(
        &mut self,
        tenant: &Id,
        keys: &[MeasurementKey<'_>],
    ) -> Result<Vec<String>>;
    /// The stored digests of those of `ids` that `tenant` has, as (id, digest).
    async fn measurement_digests(
        &mut self,
        tenant: &Id,
        ids: &[&str],
    ) -> Result<Vec<(String, String)>>;
    /// Stores measurements as their kind keeps them: raw counts, samples,
    /// downtime.
    async fn insert_measurements(
        &mut self,
        tenant: &Id,
        measurements: &[Measurement],
    ) -> Result<()>;
    /// Adds (good, total) to each rollup row of `sums`, creating it if need be.
    async fn add_count_rollups(
        &mut self,
        tenant: &Id,
        sums: &BTreeMap<RollupKey<'_>, (i64, i64)>,
    ) -> Result<()>;
    /// The counts of `service`'s `indicator` seen by `view`, summed per bucket
    /// of each range's level (raw rows per instant), over `ranges` (half-open;
    /// one statement for all of them, whose text depends only on the view):
    /// ordered by level, then start.
    async fn count_buckets(
        &mut self,
        tenant: &Id,
        service: &Id,
        view: &View,
        indicator: &str,
        ranges: &[(Level, Range<DateTime<Utc>>)],
    ) -> Result<Vec<CountBucket>>;
    /// The services holding data tagged with `consumer` in `span` (counts in
    /// buckets of `level` starting in it, samples in it, downtime meeting
    /// it), by id.
    async fn services_with_tagged_data(
        &mut self,
        tenant: &Id,
        consumer: &Id,
        level: Level,
        span: &Range<DateTime<Utc>>,
    ) -> Result<Vec<Id>>;
    /// The samples of `service`'s `indicator` seen by `view` taken in
    /// `span`, by time.
    async fn samples(
        &mut self,
        tenant: &Id,
        service: &Id,
        view: &View,
        indicator: &str,
        span: &Range<DateTime<Utc>>,
    ) -> Result<Vec<SampleAt>>;
    /// The downtime of `service`'s `indicator` seen by `view` that overlaps
    /// `span`, as reported (unclipped), by start.
    async fn downtime(
        &mut self,
        tenant: &Id,
        service: &Id,
        view: &View,
        indicator: &str,
        span: &Range<DateTime<Utc>>,
    ) -> Result<Vec<Range<DateTime<Utc>>>>;
    /// Deletes up to `limit` of `tenant`'s expired measurement keys and, per
    /// table, up to `limit` expired rows where rows expire one by one (all of
    /// SQLite's; PostgreSQL's DEFAULT partitions, its months being dropped
    /// whole by `Store::partition_measurements`); returns how many.
    async fn delete_expired_measurements(
        &mut self,
        tenant: &Id,
        cutoffs: &Cutoffs,
        limit: i64,
    ) -> Result<u64>;

    /// Upserts the late-data markers of a batch at `now`: each is due now
    /// and gets one more version. Called by ingestion in the transaction
    /// that stores the measurements; rows in the order given.
    async fn mark_compliance_dirty(
        &mut self,
        tenant: &Id,
        markers: &BTreeSet<Marker>,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Up to `limit` tenants with markers due at `now`, by id (platform
    /// scope).
    async fn tenants_with_due_markers(&mut self, now: DateTime<Utc>, limit: i64)
    -> Result<Vec<Id>>;
    /// Up to `limit` of `tenant`'s markers due at `now`, with their versions.
    async fn due_markers(
        &mut self,
        tenant: &Id,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<DueMarker>>;
    /// Sets when `due`'s marker is due next (`None`: never), unless it was
    /// marked again since `due.version` was read; returns whether it did.
    async fn settle_marker(
        &mut self,
        tenant: &Id,
        due: &DueMarker,
        next: Option<DateTime<Utc>>,
    ) -> Result<bool>;
    /// The parties whose tagged data of `service` lies in the UTC days
    /// `span` overlaps, by id.
    async fn tagged_consumers(
        &mut self,
        tenant: &Id,
        service: &Id,
        span: &Range<DateTime<Utc>>,
    ) -> Result<Vec<Id>>;
    /// The generation of each recorded evaluation of the subject
    /// (`consumer`; `None`: service-wide) on `services` whose period
    /// overlaps `span`.
    async fn period_generations(
        &mut self,
        tenant: &Id,
        consumer: Option<&Id>,
        services: &[Id],
        span: &Range<DateTime<Utc>>,
    ) -> Result<Vec<(BreachKey, i64)>>;
    /// Locks the evaluation record of `evaluation.key` and, if its generation
    /// is still `seen` (0 for none), records `evaluation` as the next
    /// generation; returns whether it did.
    async fn claim_period_evaluation(
        &mut self,
        tenant: &Id,
        evaluation: &PeriodEvaluation<'_>,
        seen: i64,
    ) -> Result<bool>;
    /// Inserts a breach and its first revision, unless its key is taken;
    /// returns whether it did.
    async fn insert_breach(&mut self, breach: &Breach) -> Result<bool>;
    /// Stores the next revision of a breach, and records it.
    async fn update_breach(&mut self, breach: &Breach) -> Result<()>;
    async fn get_breach(&mut self, tenant: &Id, id: &Id) -> Result<Option<Breach>>;
    /// How many of `tenant`'s breaches are in `state`.
    async fn count_breaches(&mut self, tenant: &Id, state: BreachState) -> Result<i64>;
    /// `get_breach`, locking the row until the transaction ends (PostgreSQL).
    async fn get_breach_for_update(&mut self, tenant: &Id, id: &Id) -> Result<Option<Breach>>;
    /// Every revision of a breach, oldest first.
    async fn breach_revisions(&mut self, tenant: &Id, id: &Id) -> Result<Vec<Breach>>;
    /// Newest periods first, then by id; those after `after` when given.
    async fn list_breaches(
        &mut self,
        tenant: &Id,
        filter: &BreachFilter,
        after: Option<&BreachCursor>,
        limit: i64,
    ) -> Result<Vec<Breach>>;
    /// The state of an alert, locked until the transaction ends; one never
    /// evaluated is quiet as of `origin`.
    async fn lock_alert_state(
        &mut self,
        tenant: &Id,
        key: &AlertKey,
        origin: DateTime<Utc>,
    ) -> Result<AlertState>;
    async fn set_alert_state(
        &mut self,
        tenant: &Id,
        key: &AlertKey,
        state: &AlertState,
    ) -> Result<()>;
    /// Deletes `tenant`'s late-data markers of days, and evaluations of
    /// periods, that ended before `before`; returns how many.
    async fn delete_expired_breach_state(
        &mut self,
        tenant: &Id,
        before: DateTime<Utc>,
    ) -> Result<u64>;

    /// The party first, then its parent and so on up, as recorded at
    /// `known_at`; empty when the party did not exist then.
    async fn party_ancestry(
        &mut self,
        tenant: &Id,
        party: &Id,
        known_at: DateTime<Utc>,
    ) -> Result<Vec<Id>>;
    /// Every revision of the SERVICE_LEVEL, CUSTOMER and INTERNAL agreements
    /// one of whose revisions covers `service`; by agreement, then sequence.
    async fn entitlement_revisions(&mut self, tenant: &Id, service: &Id) -> Result<Vec<Revision>>;
    /// The overrides of `agreements`, each as recorded at `known_at`.
    async fn entitlement_overrides(
        &mut self,
        tenant: &Id,
        agreements: &[Id],
        known_at: DateTime<Utc>,
    ) -> Result<Vec<Override>>;
    /// The overrides of `agreements` first recorded after `known_at`, each as
    /// first recorded.
    async fn overrides_recorded_after(
        &mut self,
        tenant: &Id,
        agreements: &[Id],
        known_at: DateTime<Utc>,
    ) -> Result<Vec<Override>>;
}

/// What `Tx::entitlement_rows` finds.
#[derive(Debug, Default)]
pub struct EntitlementRows {
    pub ancestry: Vec<Id>,
    pub service: Option<Service>,
    pub revisions: Vec<Revision>,
    pub overrides: Vec<Override>,
}

/// How far up a party tree ancestry is followed: as deep as a tree may be.
pub const MAX_ANCESTRY: usize = Party::MAX_DEPTH;

/// Opens the store the URL names: `sqlite:` or `postgres:`/`postgresql:`. No
/// statement runs longer than `statement_timeout`, nor past the deadline of
/// the call it serves (`crate::deadline`).
pub async fn connect(
    url: &str,
    max_connections: u32,
    statement_timeout: std::time::Duration,
) -> Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(
            SqliteStore::connect(url, max_connections, statement_timeout).await?,
        ))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let store = PostgresStore::connect(url, max_connections, statement_timeout).await?;
        store.check_role().await?;
        Ok(std::sync::Arc::new(store))
    } else {
        Err(Error::internal(
            "the database URL must start with sqlite: or postgres:",
        ))
    }
}

/// Applies the migrations of the backend `migration_url` names, under the
/// migrator's lock, and returns once the schema is current. On PostgreSQL,
/// when the server connects with another URL than migrations (another role),
/// that role is granted what the server needs, and no more.
pub async fn migrate(migration_url: &str, serving_url: &str) -> Result<()> {
    if migration_url.starts_with("sqlite:") {
        SqliteStore::migrate(migration_url).await
    } else {
        PostgresStore::migrate(migration_url, serving_url).await
    }
}

/// How long the statements of a transaction opened now may run: what is left
/// of the current call's deadline, at most `max` (all of `max` outside a
/// call). Nothing left is DEADLINE_EXCEEDED at once, without asking the
/// database (to PostgreSQL a timeout of 0 would mean none at all).
pub(crate) fn statement_budget(max: std::time::Duration) -> Result<std::time::Duration> {
    let budget = crate::deadline::remaining().map_or(max, |left| left.min(max));
    if budget < std::time::Duration::from_millis(1) {
        return Err(out_of_time());
    }
    Ok(budget)
}

/// A statement budget in milliseconds, as both engines take it: at least 1
/// (0 would mean no limit) and at most what their 32-bit settings hold.
pub(crate) fn millis(budget: std::time::Duration) -> u128 {
    budget.as_millis().clamp(1, i32::MAX as u128)
}
