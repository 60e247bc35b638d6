//! Agreements and their immutable revisions: created as DRAFT, edited,
//! published (ACTIVE, a first revision), edited again (a revision each),
//! terminated; only never-published drafts are deleted. The checks that need
//! other resources (references, overlap) run inside the writing transaction.

use chrono::{DateTime, Utc};

use super::{Page, Registry, USERS_SHOWN};
use crate::domain::agreement::{
    Agreement, AgreementFields, AgreementKind, AgreementState, Revision, RevisionRef,
    new_revision_id,
};
use crate::domain::audit::{AuditEvent, Caller};
use crate::domain::changes::Change;
use crate::domain::filter::AgreementFilter;
use crate::domain::names::{Id, agreement_name, party_name, service_name};
use crate::domain::party::PartyKind;
use crate::domain::request_id::RequestKey;
use crate::error::{Error, Precondition, Result, Violations};
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
        let now = Utc::now();
        let mut v = Violations::new();
        let agreement = Agreement::new(tenant, id, fields, now, &mut v, "agreement");
        if let Some(a) = &agreement {
            a.validate(&mut v, "agreement");
        }
        v.into_result()?;
        let agreement = agreement.expect("validated");
        let mut tx = self.registry.write(tenant).await?;
        if let Some(replayed) = self
            .registry
            .replay(&mut *tx, tenant.as_str(), request.as_ref(), now)
            .await?
        {
            return Ok(replayed);
        }
        Registry::require_tenant(&mut *tx, tenant).await?;
        Self::check_agreement_references(&mut *tx, &agreement).await?;
        tx.insert_agreement(&agreement).await?;
        self.registry
            .commit_create(
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

    pub(super) async fn require_agreement(
        tx: &mut dyn Tx,
        tenant: &Id,
        id: &Id,
    ) -> Result<Agreement> {
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

    pub async fn get(&self, tenant: &Id, id: &Id) -> Result<Agreement> {
        let mut tx = self.registry.read(tenant).await?;
        Self::require_agreement(&mut *tx, tenant, id).await
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
        let mut tx = self.registry.read(tenant).await?;
        Registry::require_tenant(&mut *tx, tenant).await?;
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

    /// Only ACTIVE agreements that have not expired can change state or terms
    /// after publication.
    pub(super) fn require_state(
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
        Registry::audit(&mut *tx, caller, Some(&before), Some(&a), now).await?;
        if published {
            let mut services = before.services.clone();
            services.extend(
                a.services
                    .iter()
                    .filter(|s| !before.services.contains(s))
                    .cloned(),
            );
            self.registry
                .commit_changing(
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

    pub async fn delete(&self, caller: &Caller, tenant: &Id, id: &Id, etag: &str) -> Result<()> {
        let mut tx = self.registry.write(tenant).await?;
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
        Registry::audit(&mut *tx, caller, Some(&before), Some(&a), now).await?;
        self.registry
            .commit_changing(
                tx,
                Change::Services {
                    tenant: tenant.clone(),
                    services: a.services.clone(),
                },
            )
            .await?;
        Ok(a)
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
        Registry::audit(&mut *tx, caller, Some(&before), Some(&a), now).await?;
        self.registry
            .commit_changing(
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
        Self::require_agreement(&mut *tx, tenant, agreement).await?;
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
            .ok_or_else(|| {
                Error::NotFound(crate::domain::names::revision_name(tenant, agreement, id))
            })
    }
}
