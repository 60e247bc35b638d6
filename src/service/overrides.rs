//! Overrides: one consumer's changes to a SERVICE_LEVEL agreement, applied
//! in resolution on top of it. Each write changes the entitlements of the
//! agreement's services.

use chrono::Utc;

use super::agreements::require_agreement;
use super::parties::require_party;
use super::{Page, Registry};
use crate::domain::audit::Caller;
use crate::domain::changes::Change;
use crate::domain::names::{Id, override_name};
use crate::domain::overrides::{Override, OverrideFields};
use crate::domain::request_id::RequestKey;
use crate::error::{Error, Result, Violations};

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
        let now = Utc::now();
        let mut tx = self.registry.write(tenant).await?;
        if let Some(replayed) = self
            .registry
            .replay(&mut *tx, tenant.as_str(), request.as_ref(), now)
            .await?
        {
            return Ok(replayed);
        }
        let a = require_agreement(&mut *tx, tenant, agreement).await?;
        let mut v = Violations::new();
        let o = Override::new(&a, id, fields, now, &mut v, "override");
        if let Some(o) = &o {
            o.validate(&a, &mut v, "override");
        }
        v.into_result()?;
        let o = o.expect("validated");
        a.check_overridable(now)?;
        require_party(&mut *tx, tenant, &o.consumer, "override.consumer").await?;
        tx.insert_override(&o).await?;
        self.registry
            .commit_create(
                tx,
                caller,
                tenant.as_str(),
                request.as_ref(),
                &o,
                now,
                Some(Change::agreement(&a)),
            )
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
        let page = self.registry.page(
            page_size,
            page_token,
            format!("overrides|{tenant}|{agreement}"),
        )?;
        let mut tx = self.registry.read(tenant).await?;
        require_agreement(&mut *tx, tenant, agreement).await?;
        let rows = tx
            .list_overrides(tenant, agreement, page.after.as_deref(), page.fetch_limit())
            .await?;
        Ok(self.registry.finish_page(&page, rows, |o| o.id.to_string()))
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
        let mut o = tx
            .get_override_for_update(tenant, agreement, id)
            .await?
            .ok_or_else(|| Error::NotFound(override_name(tenant, agreement, id)))?;
        o.meta.check_etag(etag, &o.name())?;
        a.check_overridable(now)?;
        let before = o.clone();
        let consumer_changed = fields.consumer.as_ref().is_some_and(|c| *c != o.consumer);
        o.apply(fields);
        let mut v = Violations::new();
        o.validate(&a, &mut v, "override");
        v.into_result()?;
        if consumer_changed {
            require_party(&mut *tx, tenant, &o.consumer, "override.consumer").await?;
        }
        o.meta.touch(now);
        tx.update_override(&o).await?;
        Registry::audit(&mut *tx, caller, Some(&before), Some(&o), now).await?;
        self.registry
            .commit_changing(tx, Change::agreement(&a))
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
        let o = tx
            .get_override_for_update(tenant, agreement, id)
            .await?
            .ok_or_else(|| Error::NotFound(override_name(tenant, agreement, id)))?;
        o.meta.check_etag(etag, &o.name())?;
        let now = Utc::now();
        tx.delete_override(tenant, agreement, id, now).await?;
        Registry::audit(&mut *tx, caller, Some(&o), None, now).await?;
        let services = match tx.get_agreement(tenant, agreement).await? {
            Some(a) => a.services,
            None => Vec::new(),
        };
        self.registry
            .commit_changing(
                tx,
                Change::Services {
                    tenant: tenant.clone(),
                    services,
                },
            )
            .await
    }
}
