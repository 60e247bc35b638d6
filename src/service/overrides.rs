//! Overrides: one consumer's changes to a SERVICE_LEVEL agreement, applied
//! in resolution on top of it. Only an agreement that takes overrides and is
//! open to change gets them (`Agreement::check_overridable`); each write
//! changes the entitlements of the agreement's services.

use chrono::Utc;

use super::agreements::require_agreement;
use super::parties::require_party;
use super::{Page, Registry};
use crate::domain::audit::Caller;
use crate::domain::changes::Change;
use crate::domain::fields::{check, made};
use crate::domain::names::{Id, override_name};
use crate::domain::overrides::{Override, OverrideFields};
use crate::domain::request_id::RequestKey;
use crate::error::{Error, Result};
use crate::store::Tx;

pub struct Overrides<'a> {
    pub(super) registry: &'a Registry,
}

impl Overrides<'_> {
    pub async fn create(
        &self,
        caller: &Caller,
        tenant: &Id,
        agreement: &Id,
        id: Id,
        fields: OverrideFields,
        request: Option<RequestKey>,
    ) -> Result<Override> {
        let r = self.registry;
        let now = Utc::now();
        let mut tx = r.write(tenant).await?;
        let (scope, request) = (tenant.as_str(), request.as_ref());
        if let Some(replayed) = r.replay(&mut *tx, scope, request, now).await? {
            return Ok(replayed);
        }
        let a = require_agreement(&mut *tx, tenant, agreement).await?;
        let o = made(|v| Override::new(&a, id, fields, now, v, "override"))?;
        a.check_overridable(now)?;
        require_party(&mut *tx, tenant, &o.consumer, "override.consumer").await?;
        tx.insert_override(&o).await?;
        let change = Some(Change::agreement(&a));
        r.commit_create(tx, caller, scope, request, &o, now, change)
            .await?;
        Ok(o)
    }

    pub async fn get(&self, tenant: &Id, agreement: &Id, id: &Id) -> Result<Override> {
        let mut tx = self.registry.read(tenant).await?;
        tx.get_override(tenant, agreement, id)
            .await?
            .ok_or_else(|| Error::NotFound(override_name(tenant, agreement, id)))
    }

    pub async fn list(
        &self,
        tenant: &Id,
        agreement: &Id,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Override>> {
        let r = self.registry;
        let scope = format!("overrides|{tenant}|{agreement}");
        let page = r.page(page_size, page_token, scope)?;
        let mut tx = r.read(tenant).await?;
        require_agreement(&mut *tx, tenant, agreement).await?;
        let rows = tx
            .list_overrides(tenant, agreement, page.after.as_deref(), page.fetch_limit())
            .await?;
        Ok(r.finish_page(&page, rows, |o| o.id.to_string()))
    }

    pub async fn update(
        &self,
        caller: &Caller,
        tenant: &Id,
        agreement: &Id,
        id: &Id,
        etag: &str,
        fields: OverrideFields,
    ) -> Result<Override> {
        let now = Utc::now();
        let mut tx = self.registry.write(tenant).await?;
        let a = require_agreement(&mut *tx, tenant, agreement).await?;
        let before = lock_override(&mut *tx, tenant, agreement, id, etag).await?;
        a.check_overridable(now)?;
        let mut o = before.clone();
        o.apply(fields);
        check(|v| o.validate(&a, v, "override"))?;
        if o.consumer != before.consumer {
            require_party(&mut *tx, tenant, &o.consumer, "override.consumer").await?;
        }
        o.meta.touch(now);
        tx.update_override(&o).await?;
        self.registry
            .commit_audited(
                tx,
                caller,
                Some(&before),
                Some(&o),
                now,
                Some(Change::agreement(&a)),
            )
            .await?;
        Ok(o)
    }

    pub async fn delete(
        &self,
        caller: &Caller,
        tenant: &Id,
        agreement: &Id,
        id: &Id,
        etag: &str,
    ) -> Result<()> {
        let mut tx = self.registry.write(tenant).await?;
        let o = lock_override(&mut *tx, tenant, agreement, id, etag).await?;
        let now = Utc::now();
        tx.delete_override(tenant, agreement, id, now).await?;
        let services = match tx.get_agreement(tenant, agreement).await? {
            Some(a) => a.services,
            None => Vec::new(),
        };
        let change = Change::Services {
            tenant: tenant.clone(),
            services,
        };
        self.registry
            .commit_audited(tx, caller, Some(&o), None, now, Some(change))
            .await
    }
}

/// The override an operation changes, locked until it commits, if `etag`
/// (when given) is still its etag.
async fn lock_override(
    tx: &mut dyn Tx,
    tenant: &Id,
    agreement: &Id,
    id: &Id,
    etag: &str,
) -> Result<Override> {
    let o = tx
        .get_override_for_update(tenant, agreement, id)
        .await?
        .ok_or_else(|| Error::NotFound(override_name(tenant, agreement, id)))?;
    o.meta.check_etag(etag, &o.name())?;
    Ok(o)
}
