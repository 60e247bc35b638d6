//! The service catalogue: services, each owned by a party of its tenant. A
//! service an agreement covers cannot be deleted.

use chrono::Utc;

use super::parties::require_party;
use super::{Page, Registry, USERS_SHOWN};
use crate::domain::audit::Caller;
use crate::domain::changes::Change;
use crate::domain::fields::{check, made};
use crate::domain::names::{Id, service_name};
use crate::domain::request_id::RequestKey;
use crate::domain::service::{Service, ServiceFields};
use crate::error::{Error, Result};
use crate::store::Tx;

pub struct Catalog<'a> {
    pub(super) registry: &'a Registry,
}

impl Catalog<'_> {
    pub async fn create(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: Id,
        fields: ServiceFields,
        request: Option<RequestKey>,
    ) -> Result<Service> {
        let r = self.registry;
        let now = Utc::now();
        let service = made(|v| Service::new(tenant, id, fields, now, v, "service"))?;
        let mut tx = r.write(tenant).await?;
        let (scope, request) = (tenant.as_str(), request.as_ref());
        if let Some(replayed) = r.replay(&mut *tx, scope, request, now).await? {
            return Ok(replayed);
        }
        Registry::require_tenant(&mut *tx, tenant).await?;
        require_party(&mut *tx, tenant, &service.owner, "service.owner").await?;
        tx.insert_service(&service).await?;
        let change = Some(Change::service(tenant, &service.id));
        r.commit_create(tx, caller, scope, request, &service, now, change)
            .await?;
        Ok(service)
    }

    pub async fn get(&self, tenant: &Id, id: &Id) -> Result<Service> {
        let mut tx = self.registry.read(tenant).await?;
        tx.get_service(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(service_name(tenant, id)))
    }

    pub async fn list(
        &self,
        tenant: &Id,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Service>> {
        let r = self.registry;
        let page = r.page(page_size, page_token, format!("services|{tenant}"))?;
        let mut tx = r.read_existing(tenant).await?;
        let rows = tx
            .list_services(tenant, page.after.as_deref(), page.fetch_limit())
            .await?;
        Ok(r.finish_page(&page, rows, |s| s.id.to_string()))
    }

    pub async fn update(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: &Id,
        etag: &str,
        fields: ServiceFields,
    ) -> Result<Service> {
        let mut tx = self.registry.write(tenant).await?;
        let before = lock_service(&mut *tx, tenant, id, etag).await?;
        let mut service = before.clone();
        service.apply(fields);
        check(|v| service.validate(v, "service"))?;
        if service.owner != before.owner {
            require_party(&mut *tx, tenant, &service.owner, "service.owner").await?;
        }
        let now = Utc::now();
        service.meta.touch(now);
        tx.update_service(&service).await?;
        self.registry
            .commit_audited(
                tx,
                caller,
                Some(&before),
                Some(&service),
                now,
                Some(Change::service(tenant, id)),
            )
            .await?;
        Ok(service)
    }

    pub async fn delete(&self, caller: &Caller, tenant: &Id, id: &Id, etag: &str) -> Result<()> {
        let mut tx = self.registry.write(tenant).await?;
        let service = lock_service(&mut *tx, tenant, id, etag).await?;
        service.check_deletable(&tx.service_users(tenant, id, USERS_SHOWN).await?)?;
        tx.delete_service(tenant, id).await?;
        self.registry
            .commit_audited(
                tx,
                caller,
                Some(&service),
                None,
                Utc::now(),
                Some(Change::service(tenant, id)),
            )
            .await
    }
}

/// The service an operation changes, locked until it commits, if `etag`
/// (when given) is still its etag.
async fn lock_service(tx: &mut dyn Tx, tenant: &Id, id: &Id, etag: &str) -> Result<Service> {
    let service = tx
        .get_service_for_update(tenant, id)
        .await?
        .ok_or_else(|| Error::NotFound(service_name(tenant, id)))?;
    service.meta.check_etag(etag, &service.name())?;
    Ok(service)
}
