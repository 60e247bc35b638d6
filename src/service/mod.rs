//! The use cases, one file per resource or capability. An operation runs in
//! one store transaction: it reads what it needs, checks it with the rules of
//! the domain types, writes, audits and commits, then announces what it may
//! have changed (`changes.rs`). Nothing here speaks protobuf or SQL, and
//! nothing here knows the API or auth: the API hands in parsed values and the
//! `Caller` the audit trail records.
//!
//! `Registry` holds what every operation shares (the store, the page-token
//! key, the change feed, the request_id window) and this file its plumbing:
//! transactions, request_id replay and sweeping, audit and commit, pages. Each
//! resource's operations are a view over it (`registry.parties().create(..)`),
//! so the API reaches every resource through one `Arc<Registry>`.
//! Entitlements keep their own state (a cache), so `Resolver` stands apart and
//! shares only the feed.

pub mod agreements;
pub mod api_keys;
pub mod audit;
pub mod breaches;
pub mod catalog;
pub mod changes;
pub mod compliance;
pub mod entitlements;
pub mod measurements;
pub mod overrides;
pub mod parties;
pub mod tenants;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use crate::domain::audit::{AuditEvent, Audited, Caller};
use crate::domain::changes::Change;
use crate::domain::measurement::Policy;
use crate::domain::names::Id;
use crate::domain::page::{MAX_PAGE_BYTES, PageItem, PageRequest, PageTokenKey};
use crate::domain::request_id::RequestKey;
use crate::domain::tenant::Tenant;
use crate::error::{Error, Result};
use crate::store::{Access, Store, Tx};

use self::changes::Changes;

/// A page of results and the token of the next one (empty on the last page).
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
}

/// How many referring resources an in-use error names.
const USERS_SHOWN: i64 = 5;
/// Expired request_ids deleted per transaction, so a sweep holds its locks
/// briefly however many have piled up.
const SWEEP_BATCH: i64 = 1000;
/// How often expired request_ids are swept (more often if the window is shorter).
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

pub struct Registry {
    store: Arc<dyn Store>,
    page_key: PageTokenKey,
    page_bytes: usize,
    changes: Arc<Changes>,
    /// How long a create's request_id is remembered (AIP-155).
    request_id_ttl: chrono::Duration,
    /// Which measurements are accepted, and how long they are kept.
    measurement_policy: Policy,
    /// Whether the store's change feed brings this replica its own changes
    /// back (PostgreSQL: it LISTENs to what it NOTIFYs): events for watchers
    /// are then applied once, from the feed, not also after commit.
    feed_echoes: bool,
    /// What ingestion has accepted and refused, for the metrics.
    ingestion: measurements::Tally,
}

impl Registry {
    pub async fn new(store: Arc<dyn Store>, request_id_ttl: std::time::Duration) -> Result<Self> {
        let page_key = PageTokenKey::new(store.page_token_secret().await?);
        Ok(Self {
            feed_echoes: store.change_feed().is_some(),
            store,
            page_key,
            page_bytes: MAX_PAGE_BYTES,
            changes: Arc::default(),
            request_id_ttl: chrono::Duration::from_std(request_id_ttl)
                .map_err(|e| Error::Internal(anyhow::Error::new(e).context("request_id TTL")))?,
            measurement_policy: Policy::default(),
            ingestion: measurements::Tally::default(),
        })
    }

    /// Accepts and keeps measurements as `policy` says (from the
    /// `Policy::default()` settings).
    pub fn with_measurement_policy(mut self, policy: Policy) -> Self {
        self.measurement_policy = policy;
        self
    }

    /// Lowers the byte budget of list pages to `bytes` (from
    /// `MAX_PAGE_BYTES`), so that a page stays well within the server's
    /// message limit.
    pub fn with_page_bytes(mut self, bytes: usize) -> Self {
        self.page_bytes = bytes.min(MAX_PAGE_BYTES);
        self
    }

    /// What the measurement batches committed here came to, item by item.
    pub fn ingestion(&self) -> &measurements::Tally {
        &self.ingestion
    }

    /// The feed this registry announces its changes on.
    pub fn changes(&self) -> &Arc<Changes> {
        &self.changes
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn tenants(&self) -> tenants::Tenants<'_> {
        tenants::Tenants { registry: self }
    }

    pub fn parties(&self) -> parties::Parties<'_> {
        parties::Parties { registry: self }
    }

    pub fn catalog(&self) -> catalog::Catalog<'_> {
        catalog::Catalog { registry: self }
    }

    pub fn agreements(&self) -> agreements::Agreements<'_> {
        agreements::Agreements { registry: self }
    }

    pub fn overrides(&self) -> overrides::Overrides<'_> {
        overrides::Overrides { registry: self }
    }

    pub fn api_keys(&self) -> api_keys::ApiKeys<'_> {
        api_keys::ApiKeys { registry: self }
    }

    pub fn audit_trail(&self) -> audit::AuditTrail<'_> {
        audit::AuditTrail { registry: self }
    }

    pub fn measurements(&self) -> measurements::Measurements<'_> {
        measurements::Measurements { registry: self }
    }

    pub fn breaches(&self) -> breaches::Breaches<'_> {
        breaches::Breaches { registry: self }
    }

    fn page(&self, page_size: i32, token: &str, scope: String) -> Result<PageRequest> {
        let mut page = PageRequest::parse(page_size, token, scope, &self.page_key)?;
        page.max_bytes = self.page_bytes;
        Ok(page)
    }

    fn finish_page<T: PageItem>(
        &self,
        page: &PageRequest,
        rows: Vec<T>,
        key: impl Fn(&T) -> String,
    ) -> Page<T> {
        let (items, next_page_token) = page.finish(rows, key, T::encoded_len, &self.page_key);
        Page {
            items,
            next_page_token,
        }
    }

    async fn read(&self, tenant: &Id) -> Result<Box<dyn Tx>> {
        self.store.begin(Some(tenant), Access::Read).await
    }

    /// A read transaction in `tenant`, which must exist: a list of what a
    /// missing tenant holds is NOT_FOUND, not an empty page.
    async fn read_existing(&self, tenant: &Id) -> Result<Box<dyn Tx>> {
        let mut tx = self.read(tenant).await?;
        Self::require_tenant(&mut *tx, tenant).await?;
        Ok(tx)
    }

    async fn write(&self, tenant: &Id) -> Result<Box<dyn Tx>> {
        self.store.begin(Some(tenant), Access::Write).await
    }

    /// Claims `request` for this create, or returns what the first create with
    /// the same request_id returned within the request_id window.
    async fn replay<T: DeserializeOwned>(
        &self,
        tx: &mut dyn Tx,
        scope: &str,
        request: Option<&RequestKey>,
        now: DateTime<Utc>,
    ) -> Result<Option<T>> {
        let Some(request) = request else {
            return Ok(None);
        };
        let Some(stored) = tx
            .claim_request(
                scope,
                &request.request_id,
                &request.fingerprint,
                now,
                now + self.request_id_ttl,
            )
            .await?
        else {
            return Ok(None);
        };
        if stored.fingerprint != request.fingerprint {
            return Err(Error::invalid(
                "request_id",
                "was already used with a different request",
            ));
        }
        let response = stored
            .response
            .ok_or_else(|| Error::internal("request_id recorded without its response"))?;
        serde_json::from_value(response)
            .map(Some)
            .map_err(|e| Error::Internal(anyhow::Error::new(e).context("decode stored response")))
    }

    /// Audits a create, records its response under its request_id, and
    /// commits, announcing `change`.
    #[allow(clippy::too_many_arguments)]
    async fn commit_create<T: Audited>(
        &self,
        mut tx: Box<dyn Tx>,
        caller: &Caller,
        scope: &str,
        request: Option<&RequestKey>,
        created: &T,
        now: DateTime<Utc>,
        change: Option<Change>,
    ) -> Result<()> {
        Self::audit(&mut *tx, caller, None, Some(created), now).await?;
        if let Some(request) = request {
            let response = serde_json::to_value(created)
                .map_err(|e| Error::Internal(anyhow::Error::new(e).context("encode response")))?;
            tx.complete_request(scope, &request.request_id, &response)
                .await?;
        }
        self.commit(tx, change).await
    }

    /// Audits a change from `before` to `after` (absent for a create or a
    /// delete) and commits it, announcing `change`.
    async fn commit_audited<T: Audited>(
        &self,
        mut tx: Box<dyn Tx>,
        caller: &Caller,
        before: Option<&T>,
        after: Option<&T>,
        now: DateTime<Utc>,
        change: Option<Change>,
    ) -> Result<()> {
        Self::audit(&mut *tx, caller, before, after, now).await?;
        self.commit(tx, change).await
    }

    /// Commits a write. What it may have changed for entitlements and keys
    /// (`change`; `None` for what resolves nothing, such as a draft) is
    /// announced to other replicas in the transaction (NOTIFY is delivered on
    /// commit), and to this one once committed, before the call returns.
    async fn commit(&self, mut tx: Box<dyn Tx>, change: Option<Change>) -> Result<()> {
        let Some(change) = change else {
            return tx.commit().await;
        };
        tx.notify(&change).await?;
        tx.commit().await?;
        self.changes.apply(change);
        Ok(())
    }

    /// Commits a write whose changes are events for watchers (breaches
    /// written, alerts firing): each reaches every replica's watchers once,
    /// through the feed where it echoes (PostgreSQL), else applied here after
    /// the commit.
    async fn commit_events(&self, mut tx: Box<dyn Tx>, events: Vec<Change>) -> Result<()> {
        for event in &events {
            tx.notify(event).await?;
        }
        tx.commit().await?;
        if !self.feed_echoes {
            for event in events {
                self.changes.apply(event);
            }
        }
        Ok(())
    }

    /// Writes the audit event of a change, in the transaction that makes it,
    /// stamped with the uid of the tenant it belongs to.
    async fn audit<T: Audited>(
        tx: &mut dyn Tx,
        caller: &Caller,
        before: Option<&T>,
        after: Option<&T>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let subject = after.or(before).expect("a change has a before or an after");
        let uid = Self::tenant_uid(tx, subject).await?;
        tx.insert_audit_event(&AuditEvent::new(caller, &uid, before, after, now))
            .await
    }

    /// The uid of the tenant `subject` belongs to. Read after the change's
    /// writes, which lock a row of that tenant (creates: hold a row they
    /// refer to through a foreign key), so a concurrent forced deletion waits
    /// for this transaction and the uid cannot be that of a later tenant
    /// with the same id.
    async fn tenant_uid<T: Audited>(tx: &mut dyn Tx, subject: &T) -> Result<String> {
        match subject.tenant_uid() {
            Some(uid) => Ok(uid.to_string()),
            None => Ok(Self::require_tenant(tx, subject.tenant_id()).await?.uid),
        }
    }

    async fn require_tenant(tx: &mut dyn Tx, tenant: &Id) -> Result<Tenant> {
        tx.get_tenant(tenant)
            .await?
            .ok_or_else(|| Error::NotFound(format!("tenants/{tenant}")))
    }

    /// Deletes the expired request_ids of every tenant, a batch per
    /// transaction; returns how many.
    pub async fn sweep_request_ids(&self) -> Result<u64> {
        let mut swept = 0;
        loop {
            let mut tx = self.store.begin(None, Access::Write).await?;
            let deleted = tx.delete_expired_requests(Utc::now(), SWEEP_BATCH).await?;
            tx.commit().await?;
            swept += deleted;
            if deleted < SWEEP_BATCH as u64 {
                return Ok(swept);
            }
        }
    }

    /// Sweeps expired request_ids now and then every `SWEEP_INTERVAL` (or
    /// every window, if shorter) until the task is dropped. It only reclaims
    /// space: a claim takes an expired id over whether or not it was swept.
    pub async fn sweep_request_ids_periodically(self: Arc<Self>) {
        let every = self
            .request_id_ttl
            .to_std()
            .map_or(SWEEP_INTERVAL, |ttl| ttl.min(SWEEP_INTERVAL));
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match self.sweep_request_ids().await {
                Ok(0) => {}
                Ok(deleted) => tracing::debug!(deleted, "swept expired request_ids"),
                Err(error) => tracing::warn!(%error, "could not sweep expired request_ids"),
            }
        }
    }
}
