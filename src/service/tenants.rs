//! Tenants: created, listed, updated and deleted by the platform. Deleting
//! one that still holds resources needs `force`.

use chrono::Utc;

use super::{Page, Registry, USERS_SHOWN};
use crate::domain::audit::Caller;
use crate::domain::changes::Change;
use crate::domain::names::Id;
use crate::domain::request_id::RequestKey;
use crate::domain::tenant::{Tenant, TenantFields};
use crate::error::{Error, Result, Violations};
use crate::store::Access;

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
        let mut v = Violations::new();
        tenant.validate(&mut v, "tenant");
        v.into_result()?;
        let mut tx = r.store.begin(None, Access::Write).await?;
        if let Some(replayed) = r.replay(&mut *tx, "", request.as_ref(), now).await? {
            return Ok(replayed);
        }
        tx.insert_tenant(&tenant).await?;
        r.commit_create(tx, caller, "", request.as_ref(), &tenant, now, None)
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
        let r = self.registry;
        let mut tx = r.write(id).await?;
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
        Registry::audit(&mut *tx, caller, Some(&before), Some(&tenant), now).await?;
        r.commit_changing(tx, Change::Tenant { tenant: id.clone() })
            .await?;
        Ok(tenant)
    }

    pub async fn delete(&self, caller: &Caller, id: &Id, etag: &str, force: bool) -> Result<()> {
        let r = self.registry;
        let mut tx = r.write(id).await?;
        let tenant = tx
            .get_tenant_for_update(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("tenants/{id}")))?;
        tenant.meta.check_etag(etag, &tenant.name())?;
        if !force {
            tenant.check_empty(&tx.tenant_contents(id, USERS_SHOWN).await?)?;
        }
        tx.delete_tenant(id).await?;
        Registry::audit(&mut *tx, caller, Some(&tenant), None, Utc::now()).await?;
        r.commit_changing(tx, Change::Tenant { tenant: id.clone() })
            .await
    }
}
