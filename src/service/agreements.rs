//! Agreements and their immutable revisions: created as DRAFT, edited,
//! published (ACTIVE, a first revision), edited again (a revision each),
//! terminated; only never-published drafts are deleted. What each step allows
//! is the agreement's own rule (`crate::domain::agreement`); this file reads
//! what the rules need (references, the agreements it could overlap) inside
//! the writing transaction, and writes, audits and announces.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::{Page, Registry, USERS_SHOWN};
use crate::domain::agreement::{
    Agreement, AgreementFields, AgreementKind, AgreementState, Referenced, Revision,
};
use crate::domain::audit::{AuditEvent, Caller};
use crate::domain::changes::Change;
use crate::domain::fields::made;
use crate::domain::filter::AgreementFilter;
use crate::domain::names::{Id, agreement_name, revision_name};
use crate::domain::request_id::RequestKey;
use crate::error::{Error, Result};
use crate::store::Tx;

pub struct Agreements<'a> {
    pub(super) registry: &'a Registry,
}

impl Agreements<'_> {
    pub async fn create(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: Id,
        fields: AgreementFields,
        request: Option<RequestKey>,
    ) -> Result<Agreement> {
        let r = self.registry;
        let now = Utc::now();
        let agreement = made(|v| Agreement::new(tenant, id, fields, now, v, "agreement"))?;
        let mut tx = r.write(tenant).await?;
        let (scope, request) = (tenant.as_str(), request.as_ref());
        if let Some(replayed) = r.replay(&mut *tx, scope, request, now).await? {
            return Ok(replayed);
        }
        Registry::require_tenant(&mut *tx, tenant).await?;
        agreement.check_references(&read_references(&mut *tx, &agreement).await?)?;
        tx.insert_agreement(&agreement).await?;
        // A draft resolves nothing: no change to announce.
        r.commit_create(tx, caller, scope, request, &agreement, now, None)
            .await?;
        Ok(agreement)
    }

    pub async fn get(&self, tenant: &Id, id: &Id) -> Result<Agreement> {
        let mut tx = self.registry.read(tenant).await?;
        require_agreement(&mut *tx, tenant, id).await
    }

    pub async fn list(
        &self,
        tenant: &Id,
        filter: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Agreement>> {
        let parsed = AgreementFilter::parse(filter, tenant)?;
        let page = self.registry.page(
            page_size,
            page_token,
            format!("agreements|{tenant}|{filter}"),
        )?;
        let mut tx = self.registry.read_existing(tenant).await?;
        let rows = tx
            .list_agreements(
                tenant,
                &parsed,
                Utc::now(),
                page.after.as_deref(),
                page.fetch_limit(),
            )
            .await?;
        Ok(self.registry.finish_page(&page, rows, |a| a.id.to_string()))
    }

    pub async fn update(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: &Id,
        etag: &str,
        fields: AgreementFields,
    ) -> Result<Agreement> {
        let now = Utc::now();
        let mut tx = self.registry.write(tenant).await?;
        let before = lock_agreement(&mut *tx, tenant, id, etag).await?;
        let Some(mut a) = before.updated(fields, now)? else {
            return Ok(before);
        };
        a.check_references(&read_references(&mut *tx, &a).await?)?;
        a.meta.touch(now);
        // A published agreement's terms reach entitlements: its edits make
        // revisions and are announced. A draft resolves nothing.
        let published = a.state == AgreementState::Active;
        if published {
            check_no_overlap(&mut *tx, &a).await?;
            write_revision(&mut *tx, &mut a, now).await?;
        }
        tx.update_agreement(&a).await?;
        let change = published.then(|| Change::agreement_edit(&before, &a));
        self.registry
            .commit_audited(tx, caller, Some(&before), Some(&a), now, change)
            .await?;
        Ok(a)
    }

    pub async fn delete(&self, caller: &Caller, tenant: &Id, id: &Id, etag: &str) -> Result<()> {
        let mut tx = self.registry.write(tenant).await?;
        let a = lock_agreement(&mut *tx, tenant, id, etag).await?;
        a.check_deletable(&tx.agreement_supporters(tenant, id, USERS_SHOWN).await?)?;
        let now = Utc::now();
        let removed = tx.delete_agreement(tenant, id, now).await?;
        Registry::audit(&mut *tx, caller, Some(&a), None, now).await?;
        // Each override removed with the agreement is a change of its own.
        let uid = Registry::tenant_uid(&mut *tx, &a).await?;
        for o in &removed {
            tx.insert_audit_event(&AuditEvent::new(caller, &uid, Some(o), None, now))
                .await?;
        }
        // A draft resolves nothing, nor do its overrides: no change to announce.
        tx.commit().await
    }

    pub async fn publish(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: &Id,
        etag: &str,
    ) -> Result<Agreement> {
        let now = Utc::now();
        let mut tx = self.registry.write(tenant).await?;
        let before = lock_agreement(&mut *tx, tenant, id, etag).await?;
        before.check_publishable(now)?;
        check_no_overlap(&mut *tx, &before).await?;
        let mut a = before.clone();
        a.publish(now);
        self.commit_transition(tx, caller, &before, a, now).await
    }

    pub async fn terminate(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: &Id,
        etag: &str,
        terminate_time: Option<DateTime<Utc>>,
    ) -> Result<Agreement> {
        let now = Utc::now();
        let mut tx = self.registry.write(tenant).await?;
        let before = lock_agreement(&mut *tx, tenant, id, etag).await?;
        let at = terminate_time.unwrap_or(now);
        before.check_terminable(at, now)?;
        let mut a = before.clone();
        a.terminate(at, now);
        self.commit_transition(tx, caller, &before, a, now).await
    }

    /// Records a change of state (`before` to `after`, published or
    /// terminated): a new revision, the agreement, its audit event; then
    /// commits and announces it to whatever its services' entitlements
    /// depend on.
    async fn commit_transition(
        &self,
        mut tx: Box<dyn Tx>,
        caller: &Caller,
        before: &Agreement,
        mut after: Agreement,
        now: DateTime<Utc>,
    ) -> Result<Agreement> {
        write_revision(&mut *tx, &mut after, now).await?;
        tx.update_agreement(&after).await?;
        let change = Some(Change::agreement(&after));
        self.registry
            .commit_audited(tx, caller, Some(before), Some(&after), now, change)
            .await?;
        Ok(after)
    }

    pub async fn list_revisions(
        &self,
        tenant: &Id,
        agreement: &Id,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Revision>> {
        let page = self.registry.page(
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
        let mut tx = self.registry.read(tenant).await?;
        require_agreement(&mut *tx, tenant, agreement).await?;
        let rows = tx
            .list_revisions(tenant, agreement, before, page.fetch_limit())
            .await?;
        Ok(self
            .registry
            .finish_page(&page, rows, |r| r.seq.to_string()))
    }

    pub async fn get_revision(&self, tenant: &Id, agreement: &Id, id: &Id) -> Result<Revision> {
        let mut tx = self.registry.read(tenant).await?;
        tx.get_revision(tenant, agreement, id)
            .await?
            .ok_or_else(|| Error::NotFound(revision_name(tenant, agreement, id)))
    }
}

pub(super) async fn require_agreement(tx: &mut dyn Tx, tenant: &Id, id: &Id) -> Result<Agreement> {
    tx.get_agreement(tenant, id)
        .await?
        .ok_or_else(|| Error::NotFound(agreement_name(tenant, id)))
}

/// The agreement an operation changes, locked until it commits, if `etag`
/// (when given) is still its etag.
async fn lock_agreement(tx: &mut dyn Tx, tenant: &Id, id: &Id, etag: &str) -> Result<Agreement> {
    let a = tx
        .get_agreement_for_update(tenant, id)
        .await?
        .ok_or_else(|| Error::NotFound(agreement_name(tenant, id)))?;
    a.meta.check_etag(etag, &a.name())?;
    Ok(a)
}

/// What `a` names, as it is in the tenant now (`Agreement::check_references`).
async fn read_references(tx: &mut dyn Tx, a: &Agreement) -> Result<Referenced> {
    let tenant = &a.tenant;
    let provider = tx.get_party(tenant, &a.provider).await?;
    let consumer = match &a.consumer {
        Some(consumer) => tx.get_party(tenant, consumer).await?,
        None => None,
    };
    let mut services = BTreeSet::new();
    for s in &a.services {
        if tx.get_service(tenant, s).await?.is_some() {
            services.insert(s.clone());
        }
    }
    let mut supports = BTreeSet::new();
    for s in &a.supports {
        if tx.get_agreement(tenant, s).await?.is_some() {
            supports.insert(s.clone());
        }
    }
    Ok(Referenced {
        provider,
        consumer,
        services,
        supports,
    })
}

/// Reads the published agreements `a` could overlap, under the tenant lock
/// so that two publications cannot both pass, and checks
/// `Agreement::check_no_overlap`.
async fn check_no_overlap(tx: &mut dyn Tx, a: &Agreement) -> Result<()> {
    if !a.kind.excludes_overlap() {
        return Ok(());
    }
    tx.lock_tenant(&a.tenant).await?;
    let others = tx
        .published_agreements_covering(&a.tenant, AgreementKind::ServiceLevel, &a.services)
        .await?;
    a.check_no_overlap(&others)
}

/// Writes the next immutable revision of `a` and points `a` at it.
async fn write_revision(tx: &mut dyn Tx, a: &mut Agreement, now: DateTime<Utc>) -> Result<()> {
    let seq = tx.count_revisions(&a.tenant, &a.id).await? + 1;
    tx.insert_revision(&a.new_revision(seq, now)).await
}
