//! API keys of a tenant: created with a secret shown once, listed, revoked.
//! A revocation reaches every replica's key cache through the change feed.

use chrono::{DateTime, Utc};

use super::{Page, Registry};
use crate::domain::api_key::{ApiKey, ApiKeyFields, Secret};
use crate::domain::audit::Caller;
use crate::domain::changes::Change;
use crate::domain::fields::made;
use crate::domain::names::{Id, api_key_name};
use crate::domain::request_id::RequestKey;
use crate::error::{Error, Result};
use crate::store::Access;

pub struct ApiKeys<'a> {
    pub(super) registry: &'a Registry,
}

impl ApiKeys<'_> {
    /// Creates a key and returns it with its secret. A retry with the same
    /// request_id returns the key without the secret, which is never stored.
    pub async fn create(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: Id,
        fields: ApiKeyFields,
        request: Option<RequestKey>,
    ) -> Result<(ApiKey, Option<Secret>)> {
        let r = self.registry;
        let now = Utc::now();
        let (key, secret) = made(|v| ApiKey::new(tenant, id, fields, now, v))?;
        let mut tx = r.write(tenant).await?;
        let (scope, request) = (tenant.as_str(), request.as_ref());
        if let Some(replayed) = r.replay(&mut *tx, scope, request, now).await? {
            return Ok((replayed, None));
        }
        Registry::require_tenant(&mut *tx, tenant).await?;
        tx.insert_api_key(&key).await?;
        // A new key grants nothing cached anywhere: no change to announce.
        r.commit_create(tx, caller, scope, request, &key, now, None)
            .await?;
        Ok((key, Some(secret)))
    }

    /// The key whose secret hashes to `hash`, in whichever tenant: how a
    /// bearer secret is recognised, before its tenant is known (so read in
    /// the platform scope).
    pub async fn find_by_secret_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        let mut tx = self.registry.store.begin(None, Access::Read).await?;
        tx.find_api_key(hash).await
    }

    /// Notes that the key was used at `now`. Neither audited nor announced:
    /// it changes no one's access.
    pub async fn record_use(&self, tenant: &Id, id: &Id, now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.registry.write(tenant).await?;
        if let Some(mut key) = tx.get_api_key_for_update(tenant, id).await? {
            key.last_use_time = Some(now);
            tx.update_api_key(&key).await?;
        }
        tx.commit().await
    }

    pub async fn get(&self, tenant: &Id, id: &Id) -> Result<ApiKey> {
        let mut tx = self.registry.read(tenant).await?;
        tx.get_api_key(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(api_key_name(tenant, id)))
    }

    pub async fn list(
        &self,
        tenant: &Id,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<ApiKey>> {
        let page = self
            .registry
            .page(page_size, page_token, format!("apiKeys|{tenant}"))?;
        let mut tx = self.registry.read_existing(tenant).await?;
        let rows = tx
            .list_api_keys(tenant, page.after.as_deref(), page.fetch_limit())
            .await?;
        Ok(self.registry.finish_page(&page, rows, |k| k.id.to_string()))
    }

    /// Revoking is final; revoking a revoked key changes nothing.
    pub async fn revoke(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: &Id,
        etag: &str,
    ) -> Result<ApiKey> {
        let now = Utc::now();
        let mut tx = self.registry.write(tenant).await?;
        let mut key = tx
            .get_api_key_for_update(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(api_key_name(tenant, id)))?;
        key.meta.check_etag(etag, &key.name())?;
        let before = key.clone();
        if key.revoke(now) {
            tx.update_api_key(&key).await?;
            // Every replica drops the keys it cached, so the revocation
            // binds at once.
            let change = Change::Keys {
                tenant: tenant.clone(),
            };
            self.registry
                .commit_audited(tx, caller, Some(&before), Some(&key), now, Some(change))
                .await?;
        }
        Ok(key)
    }
}
