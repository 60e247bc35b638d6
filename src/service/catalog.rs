//! The service catalogue: services, each owned by a party of its tenant. A
//! service an agreement covers cannot be deleted.

use chrono::Utc;

use super::parties::require_party;
use super::{Page, Registry, USERS_SHOWN};
use crate::domain::audit::Caller;
use crate::domain::changes::Change;
use crate::domain::names::{Id, service_name};
use crate::domain::request_id::RequestKey;
use crate::domain::service::{Service, ServiceFields};
use crate::error::{Error, Result, Violations};

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
        let mut v = Violations::new();
        let service = Service::new(tenant, id, fields, now, &mut v, "service");
        if let Some(s) = &service {
            s.validate(&mut v, "service");
        }
        v.into_result()?;
        let service = service.expect("validated");
        let mut tx = r.write(tenant).await?;
        if let Some(replayed) = r
            .replay(&mut *tx, tenant.as_str(), request.as_ref(), now)
            .await?
        {
            return Ok(replayed);
        }
        Registry::require_tenant(&mut *tx, tenant).await?;
        require_party(&mut *tx, tenant, &service.owner, "service.owner").await?;
        tx.insert_service(&service).await?;
        r.commit_create(
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
        let mut tx = r.read(tenant).await?;
        Registry::require_tenant(&mut *tx, tenant).await?;
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
        let r = self.registry;
        let mut tx = r.write(tenant).await?;
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
            require_party(&mut *tx, tenant, &service.owner, "service.owner").await?;
        }
        let now = Utc::now();
        service.meta.touch(now);
        tx.update_service(&service).await?;
        Registry::audit(&mut *tx, caller, Some(&before), Some(&service), now).await?;
        r.commit_changing(
            tx,
            Change::Services {
                tenant: tenant.clone(),
                services: vec![service.id.clone()],
            },
        )
        .await?;
        Ok(service)
    }

    pub async fn delete(&self, caller: &Caller, tenant: &Id, id: &Id, etag: &str) -> Result<()> {
        let r = self.registry;
        let mut tx = r.write(tenant).await?;
        let service = tx
            .get_service_for_update(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(service_name(tenant, id)))?;
        service.meta.check_etag(etag, &service.name())?;
        service.check_deletable(&tx.service_users(tenant, id, USERS_SHOWN).await?)?;
        tx.delete_service(tenant, id).await?;
        Registry::audit(&mut *tx, caller, Some(&service), None, Utc::now()).await?;
        r.commit_changing(
            tx,
            Change::Services {
                tenant: tenant.clone(),
                services: vec![id.clone()],
            },
        )
        .await
    }
}
