//! Tenants: created, listed, updated and deleted by the platform. Deleting
//! one that still holds resources needs `force`.

use chrono::Utc;

use super::{Page, Registry, USERS_SHOWN};
use crate::domain::audit::Caller;
use crate::domain::changes::Change;
use crate::domain::fields::check;
use crate::domain::names::Id;
use crate::domain::request_id::RequestKey;
use crate::domain::tenant::{Tenant, TenantFields};
use crate::error::{Error, Result};
use crate::store::{Access, Tx};

/// Tenants are the platform's: their creates claim request_ids in its scope.
const PLATFORM_SCOPE: &str = "";

pub struct Tenants<'a> {
    pub(super) registry: &'a Registry,
}

impl Tenants<'_> {
    pub async fn create(
        &self,
        caller: &Caller,
        id: Id,
        fields: TenantFields,
        request: Option<RequestKey>,
    ) -> Result<Tenant> {
        let r = self.registry;
        let now = Utc::now();
        let tenant = Tenant::new(id, fields, now);
        check(|v| tenant.validate(v, "tenant"))?;
        let mut tx = r.store.begin(None, Access::Write).await?;
        let request = request.as_ref();
        if let Some(replayed) = r.replay(&mut *tx, PLATFORM_SCOPE, request, now).await? {
            return Ok(replayed);
        }
        tx.insert_tenant(&tenant).await?;
        r.commit_create(tx, caller, PLATFORM_SCOPE, request, &tenant, now, None)
            .await?;
        Ok(tenant)
    }

    pub async fn get(&self, id: &Id) -> Result<Tenant> {
        let mut tx = self.registry.read(id).await?;
        Registry::require_tenant(&mut *tx, id).await
    }

    pub async fn list(&self, page_size: i32, page_token: &str) -> Result<Page<Tenant>> {
        let r = self.registry;
        let page = r.page(page_size, page_token, "tenants".into())?;
        let mut tx = r.store.begin(None, Access::Read).await?;
        let rows = tx
            .list_tenants(page.after.as_deref(), page.fetch_limit())
            .await?;
        Ok(r.finish_page(&page, rows, |t| t.id.to_string()))
    }

    pub async fn update(
        &self,
        caller: &Caller,
        id: &Id,
        etag: &str,
        fields: TenantFields,
    ) -> Result<Tenant> {
        let mut tx = self.registry.write(id).await?;
        let before = lock_tenant(&mut *tx, id, etag).await?;
        let mut tenant = before.clone();
        tenant.apply(fields);
        check(|v| tenant.validate(v, "tenant"))?;
        let now = Utc::now();
        tenant.meta.touch(now);
        tx.update_tenant(&tenant).await?;
        self.registry
            .commit_audited(
                tx,
                caller,
                Some(&before),
                Some(&tenant),
                now,
                Some(Change::tenant(id)),
            )
            .await?;
        Ok(tenant)
    }

    pub async fn delete(&self, caller: &Caller, id: &Id, etag: &str, force: bool) -> Result<()> {
        let mut tx = self.registry.write(id).await?;
        let tenant = lock_tenant(&mut *tx, id, etag).await?;
        if !force {
            tenant.check_empty(&tx.tenant_contents(id, USERS_SHOWN).await?)?;
        }
        tx.delete_tenant(id).await?;
        self.registry
            .commit_audited(
                tx,
                caller,
                Some(&tenant),
                None,
                Utc::now(),
                Some(Change::tenant(id)),
            )
            .await
    }
}

/// The tenant an operation changes, locked until it commits, if `etag`
/// (when given) is still its etag.
async fn lock_tenant(tx: &mut dyn Tx, id: &Id, etag: &str) -> Result<Tenant> {
    let tenant = tx
        .get_tenant_for_update(id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("tenants/{id}")))?;
    tenant.meta.check_etag(etag, &tenant.name())?;
    Ok(tenant)
}
