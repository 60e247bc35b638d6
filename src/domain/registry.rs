//! The registry's operations: each runs in one store transaction, checks the
//! rules that span resources (references, cycles, overlap, lifecycle, etags) and
//! makes creates idempotent by `request_id`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use crate::domain::agreement::{
    Agreement, AgreementFields, AgreementKind, AgreementState, Revision, RevisionRef,
    new_revision_id,
};
use crate::domain::api_key::{ApiKey, ApiKeyFields, Secret};
use crate::domain::audit::{AuditCursor, AuditEvent, AuditFilter, Audited, Caller};
use crate::domain::changes::Change;
use crate::domain::changes::Changes;
use crate::domain::filter::AgreementFilter;
use crate::domain::names::{Id, agreement_name, api_key_name, party_name, service_name};
use crate::domain::overrides::{Override, OverrideFields};
use crate::domain::page::{MAX_PAGE_BYTES, PageItem, PageRequest, PageTokenKey};
use crate::domain::party::{Party, PartyFields, PartyKind};
use crate::domain::service::{Service, ServiceFields};
use crate::domain::tenant::{Tenant, TenantFields};
use crate::error::{Error, FieldViolation, Precondition, Result, Violations};
use crate::store::{Access, Store, Tx};

/// The `request_id` of a create and a fingerprint of the request it came with.
#[derive(Debug, Clone)]
pub struct RequestKey {
    pub request_id: String,
    pub fingerprint: String,
}

impl RequestKey {
    /// The longest `request_id`: a UUID (AIP-155's advice) is 36 characters.
    pub const MAX_ID_CHARS: usize = 128;

    /// 1 to `MAX_ID_CHARS` printable ASCII characters; empty means none.
    pub fn validate_id(request_id: &str) -> Result<(), FieldViolation> {
        if request_id.len() > Self::MAX_ID_CHARS
            || !request_id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(FieldViolation::new(
                "request_id",
                format!(
                    "must be 1 to {} printable ASCII characters, such as a UUID",
                    Self::MAX_ID_CHARS
                ),
            ));
        }
        Ok(())
    }
}

/// A page of results and the token of the next one (empty on the last page).
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
}

/// How many referring resources an in-use error names.
const USERS_SHOWN: i64 = 5;
/// Party trees deeper than this are refused, which also bounds the cycle walk.
const MAX_PARTY_DEPTH: usize = crate::store::MAX_ANCESTRY;
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
}

impl Registry {
    pub async fn new(store: Arc<dyn Store>, request_id_ttl: std::time::Duration) -> Result<Self> {
        let page_key = PageTokenKey::new(store.page_token_secret().await?);
        Ok(Self {
            store,
            page_key,
            page_bytes: MAX_PAGE_BYTES,
            changes: Arc::default(),
            request_id_ttl: chrono::Duration::from_std(request_id_ttl)
                .map_err(|e| Error::Internal(anyhow::Error::new(e).context("request_id TTL")))?,
        })
    }

    /// Lowers the byte budget of list pages to `bytes` (from
    /// `MAX_PAGE_BYTES`), so that a page stays well within the server's
    /// message limit.
    pub fn with_page_bytes(mut self, bytes: usize) -> Self {
        self.page_bytes = bytes.min(MAX_PAGE_BYTES);
        self
    }

    /// The feed this registry announces its changes on.
    pub fn changes(&self) -> &Arc<Changes> {
        &self.changes
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn page(&self, page_size: i32, token: &str, scope: String) -> Result<PageRequest> {
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

    /// Audits a create, records its response under its request_id and commits.
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
        match change {
            Some(change) => self.commit_changing(tx, change).await,
            None => tx.commit().await,
        }
    }

    /// Commits a write that may change entitlements: announces the change to
    /// other replicas in the transaction (NOTIFY is delivered on commit), and
    /// to this one once committed, before the call returns.
    async fn commit_changing(&self, mut tx: Box<dyn Tx>, change: Change) -> Result<()> {
        tx.notify(&change).await?;
        tx.commit().await?;
        self.changes.apply(change);
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

    // --- tenants ---------------------------------------------------------

    pub async fn create_tenant(
        &self,
        caller: &Caller,
        id: Id,
        fields: TenantFields,
        request: Option<RequestKey>,
    ) -> Result<Tenant> {
        let now = Utc::now();
        let tenant = Tenant::new(id, fields, now);
        let mut v = Violations::new();
        tenant.validate(&mut v, "tenant");
        v.into_result()?;
        let mut tx = self.store.begin(None, Access::Write).await?;
        if let Some(replayed) = self.replay(&mut *tx, "", request.as_ref(), now).await? {
            return Ok(replayed);
        }
        tx.insert_tenant(&tenant).await?;
        self.commit_create(tx, caller, "", request.as_ref(), &tenant, now, None)
            .await?;
        Ok(tenant)
    }

    pub async fn get_tenant(&self, id: &Id) -> Result<Tenant> {
        let mut tx = self.read(id).await?;
        Self::require_tenant(&mut *tx, id).await
    }

    pub async fn list_tenants(&self, page_size: i32, page_token: &str) -> Result<Page<Tenant>> {
        let page = self.page(page_size, page_token, "tenants".into())?;
        let mut tx = self.store.begin(None, Access::Read).await?;
        let rows = tx
            .list_tenants(page.after.as_deref(), page.fetch_limit())
            .await?;
        Ok(self.finish_page(&page, rows, |t| t.id.to_string()))
    }

    pub async fn update_tenant(
        &self,
        caller: &Caller,
        id: &Id,
        etag: &str,
        fields: TenantFields,
    ) -> Result<Tenant> {
        let mut tx = self.write(id).await?;
        let mut tenant = tx
            .get_tenant_for_update(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("tenants/{id}")))?;
        tenant.meta.check_etag(etag, &tenant.name())?;
        let before = tenant.clone();
        tenant.apply(fields);
        let mut v = Violations::new();
        tenant.validate(&mut v, "tenant");
        v.into_result()?;
        let now = Utc::now();
        tenant.meta.touch(now);
        tx.update_tenant(&tenant).await?;
        Self::audit(&mut *tx, caller, Some(&before), Some(&tenant), now).await?;
        self.commit_changing(tx, Change::Tenant { tenant: id.clone() })
            .await?;
        Ok(tenant)
    }

    pub async fn delete_tenant(
        &self,
        caller: &Caller,
        id: &Id,
        etag: &str,
        force: bool,
    ) -> Result<()> {
        let mut tx = self.write(id).await?;
        let tenant = tx
            .get_tenant_for_update(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("tenants/{id}")))?;
        tenant.meta.check_etag(etag, &tenant.name())?;
        if !force {
            let contents = tx.tenant_contents(id, USERS_SHOWN).await?;
            if !contents.is_empty() {
                return Err(Error::precondition(
                    Precondition::TenantNotEmpty,
                    format!(
                        "tenants/{id} still holds resources ({}); delete them first or set force",
                        contents.join(", ")
                    ),
                ));
            }
        }
        tx.delete_tenant(id).await?;
        Self::audit(&mut *tx, caller, Some(&tenant), None, Utc::now()).await?;
        self.commit_changing(tx, Change::Tenant { tenant: id.clone() })
            .await
    }

    // --- parties ---------------------------------------------------------

    pub async fn create_party(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: Id,
        fields: PartyFields,
        request: Option<RequestKey>,
    ) -> Result<Party> {
        let now = Utc::now();
        let mut v = Violations::new();
        let party = Party::new(tenant, id, fields, now, &mut v, "party");
        if let Some(p) = &party {
            p.validate(&mut v, "party");
        }
        v.into_result()?;
        let party = party.expect("validated");
        let mut tx = self.write(tenant).await?;
        if let Some(replayed) = self
            .replay(&mut *tx, tenant.as_str(), request.as_ref(), now)
            .await?
        {
            return Ok(replayed);
        }
        Self::require_tenant(&mut *tx, tenant).await?;
        if party.parent.is_some() {
            tx.lock_tenant(tenant).await?;
            Self::check_parent(&mut *tx, &party).await?;
        }
        tx.insert_party(&party).await?;
        self.commit_create(
            tx,
            caller,
            tenant.as_str(),
            request.as_ref(),
            &party,
            now,
            Some(Change::Tenant {
                tenant: tenant.clone(),
            }),
        )
        .await?;
        Ok(party)
    }

    /// The parent must exist and must not have the party among its ancestors.
    async fn check_parent(tx: &mut dyn Tx, party: &Party) -> Result<()> {
        let Some(parent) = &party.parent else {
            return Ok(());
        };
        let mut next = Some(parent.clone());
        let mut depth = 0;
        while let Some(current) = next {
            let Some(ancestor) = tx.get_party(&party.tenant, &current).await? else {
                // Only the direct parent can be missing: stored parents exist.
                return Err(Error::invalid(
                    "party.parent",
                    format!("{} does not exist", party_name(&party.tenant, &current)),
                ));
            };
            if ancestor.parent.as_ref() == Some(&party.id) {
                return Err(Error::invalid(
                    "party.parent",
                    format!(
                        "{} is a descendant of {}: the parent would make a cycle",
                        party_name(&party.tenant, parent),
                        party.name()
                    ),
                ));
            }
            depth += 1;
            if depth > MAX_PARTY_DEPTH {
                return Err(Error::invalid(
                    "party.parent",
                    format!("party trees are at most {MAX_PARTY_DEPTH} levels deep"),
                ));
            }
            next = ancestor.parent;
        }
        Ok(())
    }

    pub async fn get_party(&self, tenant: &Id, id: &Id) -> Result<Party> {
        let mut tx = self.read(tenant).await?;
        tx.get_party(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(party_name(tenant, id)))
    }

    pub async fn list_parties(
        &self,
        tenant: &Id,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Party>> {
        let page = self.page(page_size, page_token, format!("parties|{tenant}"))?;
        let mut tx = self.read(tenant).await?;
        Self::require_tenant(&mut *tx, tenant).await?;
        let rows = tx
            .list_parties(tenant, page.after.as_deref(), page.fetch_limit())
            .await?;
        Ok(self.finish_page(&page, rows, |p| p.id.to_string()))
    }

    pub async fn update_party(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: &Id,
        etag: &str,
        fields: PartyFields,
    ) -> Result<Party> {
        let mut tx = self.write(tenant).await?;
        tx.lock_tenant(tenant).await?;
        let mut party = tx
            .get_party_for_update(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(party_name(tenant, id)))?;
        party.meta.check_etag(etag, &party.name())?;
        let before = party.clone();
        party.apply(fields);
        let mut v = Violations::new();
        party.validate(&mut v, "party");
        v.into_result()?;
        Self::check_parent(&mut *tx, &party).await?;
        let now = Utc::now();
        party.meta.touch(now);
        tx.update_party(&party).await?;
        Self::audit(&mut *tx, caller, Some(&before), Some(&party), now).await?;
        self.commit_changing(
            tx,
            Change::Tenant {
                tenant: tenant.clone(),
            },
        )
        .await?;
        Ok(party)
    }

    pub async fn delete_party(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: &Id,
        etag: &str,
    ) -> Result<()> {
        let mut tx = self.write(tenant).await?;
        let party = tx
            .get_party_for_update(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(party_name(tenant, id)))?;
        party.meta.check_etag(etag, &party.name())?;
        let users = tx.party_users(tenant, id, USERS_SHOWN).await?;
        if !users.is_empty() {
            return Err(Error::precondition(
                Precondition::ResourceInUse,
                format!("{} is still used by {}", party.name(), users.join(", ")),
            ));
        }
        let now = Utc::now();
        tx.delete_party(tenant, id, now).await?;
        Self::audit(&mut *tx, caller, Some(&party), None, now).await?;
        self.commit_changing(
            tx,
            Change::Tenant {
                tenant: tenant.clone(),
            },
        )
        .await
    }

    // --- services --------------------------------------------------------

    pub async fn create_service(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: Id,
        fields: ServiceFields,
        request: Option<RequestKey>,
    ) -> Result<Service> {
        let now = Utc::now();
        let mut v = Violations::new();
        let service = Service::new(tenant, id, fields, now, &mut v, "service");
        if let Some(s) = &service {
            s.validate(&mut v, "service");
        }
        v.into_result()?;
        let service = service.expect("validated");
        let mut tx = self.write(tenant).await?;
        if let Some(replayed) = self
            .replay(&mut *tx, tenant.as_str(), request.as_ref(), now)
            .await?
        {
            return Ok(replayed);
        }
        Self::require_tenant(&mut *tx, tenant).await?;
        Self::require_party(&mut *tx, tenant, &service.owner, "service.owner").await?;
        tx.insert_service(&service).await?;
        self.commit_create(
            tx,
            caller,
            tenant.as_str(),
            request.as_ref(),
            &service,
            now,
            Some(Change::Services {
                tenant: tenant.clone(),
                services: vec![service.id.clone()],
            }),
        )
        .await?;
        Ok(service)
    }

    /// A referenced party must exist; its absence is the request's fault.
    async fn require_party(tx: &mut dyn Tx, tenant: &Id, id: &Id, field: &str) -> Result<Party> {
        tx.get_party(tenant, id).await?.ok_or_else(|| {
            Error::invalid(field, format!("{} does not exist", party_name(tenant, id)))
        })
    }

    pub async fn get_service(&self, tenant: &Id, id: &Id) -> Result<Service> {
        let mut tx = self.read(tenant).await?;
        tx.get_service(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(service_name(tenant, id)))
    }

    pub async fn list_services(
        &self,
        tenant: &Id,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Service>> {
        let page = self.page(page_size, page_token, format!("services|{tenant}"))?;
        let mut tx = self.read(tenant).await?;
        Self::require_tenant(&mut *tx, tenant).await?;
        let rows = tx
            .list_services(tenant, page.after.as_deref(), page.fetch_limit())
            .await?;
        Ok(self.finish_page(&page, rows, |s| s.id.to_string()))
    }

    pub async fn update_service(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: &Id,
        etag: &str,
        fields: ServiceFields,
    ) -> Result<Service> {
        let mut tx = self.write(tenant).await?;
        let mut service = tx
            .get_service_for_update(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(service_name(tenant, id)))?;
        service.meta.check_etag(etag, &service.name())?;
        let before = service.clone();
        let owner_changed = fields.owner.as_ref().is_some_and(|o| *o != service.owner);
        service.apply(fields);
        let mut v = Violations::new();
        service.validate(&mut v, "service");
        v.into_result()?;
        if owner_changed {
            Self::require_party(&mut *tx, tenant, &service.owner, "service.owner").await?;
        }
        let now = Utc::now();
        service.meta.touch(now);
        tx.update_service(&service).await?;
        Self::audit(&mut *tx, caller, Some(&before), Some(&service), now).await?;
        self.commit_changing(
            tx,
            Change::Services {
                tenant: tenant.clone(),
                services: vec![service.id.clone()],
            },
        )
        .await?;
        Ok(service)
    }

    pub async fn delete_service(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: &Id,
        etag: &str,
    ) -> Result<()> {
        let mut tx = self.write(tenant).await?;
        let service = tx
            .get_service_for_update(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(service_name(tenant, id)))?;
        service.meta.check_etag(etag, &service.name())?;
        let users = tx.service_users(tenant, id, USERS_SHOWN).await?;
        if !users.is_empty() {
            return Err(Error::precondition(
                Precondition::ResourceInUse,
                format!(
                    "{} is still covered by {}",
                    service.name(),
                    users.join(", ")
                ),
            ));
        }
        tx.delete_service(tenant, id).await?;
        Self::audit(&mut *tx, caller, Some(&service), None, Utc::now()).await?;
        self.commit_changing(
            tx,
            Change::Services {
                tenant: tenant.clone(),
                services: vec![id.clone()],
            },
        )
        .await
    }

    // --- agreements ------------------------------------------------------

    pub async fn create_agreement(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: Id,
        fields: AgreementFields,
        request: Option<RequestKey>,
    ) -> Result<Agreement> {
        let now = Utc::now();
        let mut v = Violations::new();
        let agreement = Agreement::new(tenant, id, fields, now, &mut v, "agreement");
        if let Some(a) = &agreement {
            a.validate(&mut v, "agreement");
        }
        v.into_result()?;
        let agreement = agreement.expect("validated");
        let mut tx = self.write(tenant).await?;
        if let Some(replayed) = self
            .replay(&mut *tx, tenant.as_str(), request.as_ref(), now)
            .await?
        {
            return Ok(replayed);
        }
        Self::require_tenant(&mut *tx, tenant).await?;
        Self::check_agreement_references(&mut *tx, &agreement).await?;
        tx.insert_agreement(&agreement).await?;
        self.commit_create(
            tx,
            caller,
            tenant.as_str(),
            request.as_ref(),
            &agreement,
            now,
            None,
        )
        .await?;
        Ok(agreement)
    }

    /// Parties, services and supported agreements must exist in the tenant,
    /// and the parties must fit the agreement's kind.
    async fn check_agreement_references(tx: &mut dyn Tx, a: &Agreement) -> Result<()> {
        let mut v = Violations::new();
        let tenant = &a.tenant;
        match tx.get_party(tenant, &a.provider).await? {
            None => v.add(
                "agreement.provider",
                format!("{} does not exist", party_name(tenant, &a.provider)),
            ),
            Some(p) if a.kind == AgreementKind::Underpinning && p.kind != PartyKind::Supplier => v
                .add(
                    "agreement.provider",
                    "the provider of an UNDERPINNING contract must be a SUPPLIER party",
                ),
            Some(_) => {}
        }
        if let Some(consumer) = &a.consumer {
            match tx.get_party(tenant, consumer).await? {
                None => v.add(
                    "agreement.consumer",
                    format!("{} does not exist", party_name(tenant, consumer)),
                ),
                Some(p)
                    if a.kind == AgreementKind::Internal && p.kind != PartyKind::InternalUnit =>
                {
                    v.add(
                        "agreement.consumer",
                        "the consumer of an INTERNAL agreement must be an INTERNAL_UNIT party",
                    )
                }
                Some(_) => {}
            }
        }
        for (i, s) in a.services.iter().enumerate() {
            if tx.get_service(tenant, s).await?.is_none() {
                v.add(
                    format!("agreement.services[{i}]"),
                    format!("{} does not exist", service_name(tenant, s)),
                );
            }
        }
        for (i, s) in a.supports.iter().enumerate() {
            if tx.get_agreement(tenant, s).await?.is_none() {
                v.add(
                    format!("agreement.supports[{i}]"),
                    format!("{} does not exist", agreement_name(tenant, s)),
                );
            }
        }
        v.into_result()
    }

    async fn require_agreement(tx: &mut dyn Tx, tenant: &Id, id: &Id) -> Result<Agreement> {
        tx.get_agreement(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(agreement_name(tenant, id)))
    }

    /// The agreement an operation changes, locked until it commits.
    async fn lock_agreement(tx: &mut dyn Tx, tenant: &Id, id: &Id) -> Result<Agreement> {
        tx.get_agreement_for_update(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(agreement_name(tenant, id)))
    }

    pub async fn get_agreement(&self, tenant: &Id, id: &Id) -> Result<Agreement> {
        let mut tx = self.read(tenant).await?;
        Self::require_agreement(&mut *tx, tenant, id).await
    }

    pub async fn list_agreements(
        &self,
        tenant: &Id,
        filter: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Agreement>> {
        let parsed = AgreementFilter::parse(filter, tenant)?;
        let page = self.page(
            page_size,
            page_token,
            format!("agreements|{tenant}|{filter}"),
        )?;
        let mut tx = self.read(tenant).await?;
        Self::require_tenant(&mut *tx, tenant).await?;
        let rows = tx
            .list_agreements(
                tenant,
                &parsed,
                Utc::now(),
                page.after.as_deref(),
                page.fetch_limit(),
            )
            .await?;
        Ok(self.finish_page(&page, rows, |a| a.id.to_string()))
    }

    /// Only ACTIVE agreements that have not expired can change state or terms
    /// after publication.
    fn require_state(
        a: &Agreement,
        allowed: &[AgreementState],
        action: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let state = a.state_at(now);
        if allowed.contains(&state) {
            Ok(())
        } else {
            Err(Error::precondition(
                Precondition::AgreementState,
                format!("cannot {action} {}: it is {}", a.name(), state.as_str()),
            ))
        }
    }

    /// At most one SERVICE_LEVEL agreement may be in force for a service at any
    /// instant.
    async fn check_no_overlap(tx: &mut dyn Tx, a: &Agreement) -> Result<()> {
        if a.kind != AgreementKind::ServiceLevel {
            return Ok(());
        }
        tx.lock_tenant(&a.tenant).await?;
        let others = tx
            .published_agreements_covering(&a.tenant, AgreementKind::ServiceLevel, &a.services)
            .await?;
        if let Some(other) = others.iter().find(|o| o.id != a.id && o.overlaps(a)) {
            return Err(Error::precondition(
                Precondition::OverlappingAgreement,
                format!(
                    "{} is already in force for a service of {} during its validity",
                    other.name(),
                    a.name()
                ),
            ));
        }
        Ok(())
    }

    /// Writes an immutable snapshot of `a` and points `a` at it.
    async fn write_revision(tx: &mut dyn Tx, a: &mut Agreement, now: DateTime<Utc>) -> Result<()> {
        let seq = tx.count_revisions(&a.tenant, &a.id).await? + 1;
        let id = new_revision_id();
        a.revision = Some(RevisionRef {
            id: id.clone(),
            create_time: now,
        });
        let revision = Revision {
            tenant: a.tenant.clone(),
            agreement: a.id.clone(),
            id,
            seq,
            create_time: now,
            snapshot: a.clone(),
        };
        tx.insert_revision(&revision).await
    }

    pub async fn update_agreement(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: &Id,
        etag: &str,
        fields: AgreementFields,
    ) -> Result<Agreement> {
        let now = Utc::now();
        let mut tx = self.write(tenant).await?;
        let mut a = Self::lock_agreement(&mut *tx, tenant, id).await?;
        a.meta.check_etag(etag, &a.name())?;
        Self::require_state(
            &a,
            &[AgreementState::Draft, AgreementState::Active],
            "update",
            now,
        )?;
        let published = a.state == AgreementState::Active;
        let kind_before = a.kind;
        let before = a.clone();
        a.apply(fields);
        if a == before {
            // Nothing changes: no new etag, and no revision that repeats the last.
            return Ok(a);
        }
        let mut v = Violations::new();
        if published && a.kind != kind_before {
            v.add(
                "agreement.kind",
                "cannot change once the agreement is published",
            );
        }
        a.validate(&mut v, "agreement");
        v.into_result()?;
        Self::check_agreement_references(&mut *tx, &a).await?;
        a.meta.touch(now);
        if published {
            Self::check_no_overlap(&mut *tx, &a).await?;
            Self::write_revision(&mut *tx, &mut a, now).await?;
        }
        tx.update_agreement(&a).await?;
        Self::audit(&mut *tx, caller, Some(&before), Some(&a), now).await?;
        if published {
            let mut services = before.services.clone();
            services.extend(
                a.services
                    .iter()
                    .filter(|s| !before.services.contains(s))
                    .cloned(),
            );
            self.commit_changing(
                tx,
                Change::Services {
                    tenant: tenant.clone(),
                    services,
                },
            )
            .await?;
        } else {
            // A draft resolves nothing.
            tx.commit().await?;
        }
        Ok(a)
    }

    pub async fn delete_agreement(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: &Id,
        etag: &str,
    ) -> Result<()> {
        let mut tx = self.write(tenant).await?;
        let a = Self::lock_agreement(&mut *tx, tenant, id).await?;
        a.meta.check_etag(etag, &a.name())?;
        if a.revision.is_some() {
            return Err(Error::precondition(
                Precondition::AgreementState,
                format!(
                    "{} has been published and its revisions are kept: terminate it instead",
                    a.name()
                ),
            ));
        }
        let supporters = tx.agreement_supporters(tenant, id, USERS_SHOWN).await?;
        if !supporters.is_empty() {
            return Err(Error::precondition(
                Precondition::ResourceInUse,
                format!("{} is supported by {}", a.name(), supporters.join(", ")),
            ));
        }
        let now = Utc::now();
        let removed = tx.delete_agreement(tenant, id, now).await?;
        Self::audit(&mut *tx, caller, Some(&a), None, now).await?;
        // Each override removed with the agreement is a change of its own.
        let uid = Self::tenant_uid(&mut *tx, &a).await?;
        for o in &removed {
            tx.insert_audit_event(&AuditEvent::new(caller, &uid, Some(o), None, now))
                .await?;
        }
        // A draft resolves nothing, nor do its overrides: no change to announce.
        tx.commit().await
    }

    pub async fn publish_agreement(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: &Id,
        etag: &str,
    ) -> Result<Agreement> {
        let now = Utc::now();
        let mut tx = self.write(tenant).await?;
        let mut a = Self::lock_agreement(&mut *tx, tenant, id).await?;
        a.meta.check_etag(etag, &a.name())?;
        Self::require_state(&a, &[AgreementState::Draft], "publish", now)?;
        if let Some(until) = a.effective_until
            && until <= now
        {
            return Err(Error::precondition(
                Precondition::AgreementState,
                format!("cannot publish {}: its validity ended at {until}", a.name()),
            ));
        }
        if a.objectives.is_empty() {
            return Err(Error::precondition(
                Precondition::AgreementState,
                format!("cannot publish {}: it has no objectives", a.name()),
            ));
        }
        Self::check_no_overlap(&mut *tx, &a).await?;
        let before = a.clone();
        a.state = AgreementState::Active;
        a.meta.touch(now);
        Self::write_revision(&mut *tx, &mut a, now).await?;
        tx.update_agreement(&a).await?;
        Self::audit(&mut *tx, caller, Some(&before), Some(&a), now).await?;
        self.commit_changing(
            tx,
            Change::Services {
                tenant: tenant.clone(),
                services: a.services.clone(),
            },
        )
        .await?;
        Ok(a)
    }

    pub async fn terminate_agreement(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: &Id,
        etag: &str,
        terminate_time: Option<DateTime<Utc>>,
    ) -> Result<Agreement> {
        let now = Utc::now();
        let mut tx = self.write(tenant).await?;
        let mut a = Self::lock_agreement(&mut *tx, tenant, id).await?;
        a.meta.check_etag(etag, &a.name())?;
        Self::require_state(&a, &[AgreementState::Active], "terminate", now)?;
        let at = terminate_time.unwrap_or(now);
        if at < a.effective_from {
            return Err(Error::invalid(
                "terminate_time",
                "must not be before the agreement's effective_from",
            ));
        }
        let before = a.clone();
        a.state = AgreementState::Terminated;
        a.terminate_time = Some(at);
        a.meta.touch(now);
        Self::write_revision(&mut *tx, &mut a, now).await?;
        tx.update_agreement(&a).await?;
        Self::audit(&mut *tx, caller, Some(&before), Some(&a), now).await?;
        self.commit_changing(
            tx,
            Change::Services {
                tenant: tenant.clone(),
                services: a.services.clone(),
            },
        )
        .await?;
        Ok(a)
    }

    pub async fn list_revisions(
        &self,
        tenant: &Id,
        agreement: &Id,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Revision>> {
        let page = self.page(
            page_size,
            page_token,
            format!("revisions|{tenant}|{agreement}"),
        )?;
        let before =
            match page.after.as_deref() {
                None => None,
                Some(s) => Some(s.parse::<i64>().map_err(|_| {
                    Error::invalid("page_token", "is not a token this list returned")
                })?),
            };
        let mut tx = self.read(tenant).await?;
        Self::require_agreement(&mut *tx, tenant, agreement).await?;
        let rows = tx
            .list_revisions(tenant, agreement, before, page.fetch_limit())
            .await?;
        Ok(self.finish_page(&page, rows, |r| r.seq.to_string()))
    }

    pub async fn get_revision(&self, tenant: &Id, agreement: &Id, id: &Id) -> Result<Revision> {
        let mut tx = self.read(tenant).await?;
        tx.get_revision(tenant, agreement, id)
            .await?
            .ok_or_else(|| {
                Error::NotFound(crate::domain::names::revision_name(tenant, agreement, id))
            })
    }

    // --- overrides -------------------------------------------------------

    /// Overrides patch SERVICE_LEVEL agreements that are still open to change.
    fn check_overridable(a: &Agreement, now: DateTime<Utc>) -> Result<()> {
        if a.kind != AgreementKind::ServiceLevel {
            return Err(Error::precondition(
                Precondition::AgreementState,
                format!(
                    "{} is a {} agreement: overrides apply to SERVICE_LEVEL agreements",
                    a.name(),
                    a.kind.as_str()
                ),
            ));
        }
        Self::require_state(
            a,
            &[AgreementState::Draft, AgreementState::Active],
            "override",
            now,
        )
    }

    pub async fn create_override(
        &self,
        caller: &Caller,
        tenant: &Id,
        agreement: &Id,
        id: Id,
        fields: OverrideFields,
        request: Option<RequestKey>,
    ) -> Result<Override> {
        let now = Utc::now();
        let mut tx = self.write(tenant).await?;
        if let Some(replayed) = self
            .replay(&mut *tx, tenant.as_str(), request.as_ref(), now)
            .await?
        {
            return Ok(replayed);
        }
        let a = Self::require_agreement(&mut *tx, tenant, agreement).await?;
        let mut v = Violations::new();
        let o = Override::new(&a, id, fields, now, &mut v, "override");
        if let Some(o) = &o {
            o.validate(&a, &mut v, "override");
        }
        v.into_result()?;
        let o = o.expect("validated");
        Self::check_overridable(&a, now)?;
        Self::require_party(&mut *tx, tenant, &o.consumer, "override.consumer").await?;
        tx.insert_override(&o).await?;
        self.commit_create(
            tx,
            caller,
            tenant.as_str(),
            request.as_ref(),
            &o,
            now,
            Some(Change::Services {
                tenant: tenant.clone(),
                services: a.services.clone(),
            }),
        )
        .await?;
        Ok(o)
    }

    pub async fn get_override(&self, tenant: &Id, agreement: &Id, id: &Id) -> Result<Override> {
        let mut tx = self.read(tenant).await?;
        tx.get_override(tenant, agreement, id)
            .await?
            .ok_or_else(|| {
                Error::NotFound(crate::domain::names::override_name(tenant, agreement, id))
            })
    }

    pub async fn list_overrides(
        &self,
        tenant: &Id,
        agreement: &Id,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Override>> {
        let page = self.page(
            page_size,
            page_token,
            format!("overrides|{tenant}|{agreement}"),
        )?;
        let mut tx = self.read(tenant).await?;
        Self::require_agreement(&mut *tx, tenant, agreement).await?;
        let rows = tx
            .list_overrides(tenant, agreement, page.after.as_deref(), page.fetch_limit())
            .await?;
        Ok(self.finish_page(&page, rows, |o| o.id.to_string()))
    }

    pub async fn update_override(
        &self,
        caller: &Caller,
        tenant: &Id,
        agreement: &Id,
        id: &Id,
        etag: &str,
        fields: OverrideFields,
    ) -> Result<Override> {
        let now = Utc::now();
        let mut tx = self.write(tenant).await?;
        let a = Self::require_agreement(&mut *tx, tenant, agreement).await?;
        let mut o = tx
            .get_override_for_update(tenant, agreement, id)
            .await?
            .ok_or_else(|| {
                Error::NotFound(crate::domain::names::override_name(tenant, agreement, id))
            })?;
        o.meta.check_etag(etag, &o.name())?;
        Self::check_overridable(&a, now)?;
        let before = o.clone();
        let consumer_changed = fields.consumer.as_ref().is_some_and(|c| *c != o.consumer);
        o.apply(fields);
        let mut v = Violations::new();
        o.validate(&a, &mut v, "override");
        v.into_result()?;
        if consumer_changed {
            Self::require_party(&mut *tx, tenant, &o.consumer, "override.consumer").await?;
        }
        o.meta.touch(now);
        tx.update_override(&o).await?;
        Self::audit(&mut *tx, caller, Some(&before), Some(&o), now).await?;
        self.commit_changing(
            tx,
            Change::Services {
                tenant: tenant.clone(),
                services: a.services.clone(),
            },
        )
        .await?;
        Ok(o)
    }

    pub async fn delete_override(
        &self,
        caller: &Caller,
        tenant: &Id,
        agreement: &Id,
        id: &Id,
        etag: &str,
    ) -> Result<()> {
        let mut tx = self.write(tenant).await?;
        let o = tx
            .get_override_for_update(tenant, agreement, id)
            .await?
            .ok_or_else(|| {
                Error::NotFound(crate::domain::names::override_name(tenant, agreement, id))
            })?;
        o.meta.check_etag(etag, &o.name())?;
        let now = Utc::now();
        tx.delete_override(tenant, agreement, id, now).await?;
        Self::audit(&mut *tx, caller, Some(&o), None, now).await?;
        let services = match tx.get_agreement(tenant, agreement).await? {
            Some(a) => a.services,
            None => Vec::new(),
        };
        self.commit_changing(
            tx,
            Change::Services {
                tenant: tenant.clone(),
                services,
            },
        )
        .await
    }
}

// --- API keys ------------------------------------------------------------

impl Registry {
    /// Creates a key and returns it with its secret. A retry with the same
    /// request_id returns the key without the secret, which is never stored.
    pub async fn create_api_key(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: Id,
        fields: ApiKeyFields,
        request: Option<RequestKey>,
    ) -> Result<(ApiKey, Option<Secret>)> {
        let now = Utc::now();
        let mut v = Violations::new();
        let created = ApiKey::new(tenant, id, fields, now, &mut v);
        v.into_result()?;
        let (key, secret) = created.expect("validated");
        let mut tx = self.write(tenant).await?;
        if let Some(replayed) = self
            .replay(&mut *tx, tenant.as_str(), request.as_ref(), now)
            .await?
        {
            return Ok((replayed, None));
        }
        Self::require_tenant(&mut *tx, tenant).await?;
        tx.insert_api_key(&key).await?;
        self.commit_create(
            tx,
            caller,
            tenant.as_str(),
            request.as_ref(),
            &key,
            now,
            None,
        )
        .await?;
        Ok((key, Some(secret)))
    }

    pub async fn get_api_key(&self, tenant: &Id, id: &Id) -> Result<ApiKey> {
        let mut tx = self.read(tenant).await?;
        tx.get_api_key(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(api_key_name(tenant, id)))
    }

    pub async fn list_api_keys(
        &self,
        tenant: &Id,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<ApiKey>> {
        let page = self.page(page_size, page_token, format!("apiKeys|{tenant}"))?;
        let mut tx = self.read(tenant).await?;
        Self::require_tenant(&mut *tx, tenant).await?;
        let rows = tx
            .list_api_keys(tenant, page.after.as_deref(), page.fetch_limit())
            .await?;
        Ok(self.finish_page(&page, rows, |k| k.id.to_string()))
    }

    /// Revoking is final; revoking a revoked key changes nothing.
    pub async fn revoke_api_key(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: &Id,
        etag: &str,
    ) -> Result<ApiKey> {
        let now = Utc::now();
        let mut tx = self.write(tenant).await?;
        let mut key = tx
            .get_api_key_for_update(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(api_key_name(tenant, id)))?;
        key.meta.check_etag(etag, &key.name())?;
        if key.revoke_time.is_none() {
            let before = key.clone();
            key.revoke_time = Some(now);
            key.meta.touch(now);
            tx.update_api_key(&key).await?;
            Self::audit(&mut *tx, caller, Some(&before), Some(&key), now).await?;
            // Every replica drops the keys it cached, so the revocation
            // binds at once.
            self.commit_changing(
                tx,
                Change::Keys {
                    tenant: tenant.clone(),
                },
            )
            .await?;
        }
        Ok(key)
    }
}

// --- audit events --------------------------------------------------------

impl Registry {
    /// The events of the tenant that has the id now, or with `show_deleted`
    /// those of every tenant that has had it (the caller checks that only
    /// the platform admin asks for that).
    pub async fn list_audit_events(
        &self,
        tenant: &Id,
        filter: AuditFilter,
        show_deleted: bool,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<AuditEvent>> {
        if let (Some(start), Some(end)) = (filter.start_time, filter.end_time)
            && end <= start
        {
            return Err(Error::invalid("end_time", "must be after start_time"));
        }
        // Every trail of the id is read in the platform scope: a tenant's own
        // scope sees only its current uid's events (on PostgreSQL, RLS).
        let (mut tx, uid) = if show_deleted {
            (self.store.begin(None, Access::Read).await?, None)
        } else {
            let mut tx = self.read(tenant).await?;
            let uid = Self::require_tenant(&mut *tx, tenant).await?.uid;
            (tx, Some(uid))
        };
        // Tokens are bound to the uid listed, so a token of an earlier tenant
        // with the id does not page through the current one's trail.
        let page = self.page(
            page_size,
            page_token,
            format!(
                "auditEvents|{tenant}|{}|{}",
                uid.as_deref().unwrap_or("*"),
                filter.scope()
            ),
        )?;
        let before = match page.after.as_deref() {
            None => None,
            Some(s) => Some(AuditCursor::decode(s).ok_or_else(|| {
                Error::invalid("page_token", "is not a token this list returned")
            })?),
        };
        let rows = tx
            .list_audit_events(
                tenant,
                uid.as_deref(),
                &filter,
                before.as_ref(),
                page.fetch_limit(),
            )
            .await?;
        Ok(self.finish_page(&page, rows, |e| e.cursor().encode()))
    }
}
