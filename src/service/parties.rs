//! Parties: who signs agreements. A party's parent must exist in the same
//! tenant and must not make a cycle (`Party::check_ancestry`, over the
//! ancestry read here); a party in use cannot be deleted.

use chrono::Utc;

use super::{Page, Registry, USERS_SHOWN};
use crate::domain::audit::Caller;
use crate::domain::changes::Change;
use crate::domain::fields::{check, made};
use crate::domain::names::{Id, party_name};
use crate::domain::party::{Party, PartyFields};
use crate::domain::request_id::RequestKey;
use crate::error::{Error, Result};
use crate::store::Tx;

pub struct Parties<'a> {
    pub(super) registry: &'a Registry,
}

impl Parties<'_> {
    pub async fn create(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: Id,
        fields: PartyFields,
        request: Option<RequestKey>,
    ) -> Result<Party> {
        let r = self.registry;
        let now = Utc::now();
        let party = made(|v| Party::new(tenant, id, fields, now, v, "party"))?;
        let mut tx = r.write(tenant).await?;
        let (scope, request) = (tenant.as_str(), request.as_ref());
        if let Some(replayed) = r.replay(&mut *tx, scope, request, now).await? {
            return Ok(replayed);
        }
        Registry::require_tenant(&mut *tx, tenant).await?;
        if party.parent.is_some() {
            tx.lock_tenant(tenant).await?;
            party.check_ancestry(&read_ancestry(&mut *tx, &party).await?)?;
        }
        tx.insert_party(&party).await?;
        let change = Some(Change::tenant(tenant));
        r.commit_create(tx, caller, scope, request, &party, now, change)
            .await?;
        Ok(party)
    }

    pub async fn get(&self, tenant: &Id, id: &Id) -> Result<Party> {
        let mut tx = self.registry.read(tenant).await?;
        tx.get_party(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(party_name(tenant, id)))
    }

    pub async fn list(&self, tenant: &Id, page_size: i32, page_token: &str) -> Result<Page<Party>> {
        let r = self.registry;
        let page = r.page(page_size, page_token, format!("parties|{tenant}"))?;
        let mut tx = r.read_existing(tenant).await?;
        let rows = tx
            .list_parties(tenant, page.after.as_deref(), page.fetch_limit())
            .await?;
        Ok(r.finish_page(&page, rows, |p| p.id.to_string()))
    }

    pub async fn update(
        &self,
        caller: &Caller,
        tenant: &Id,
        id: &Id,
        etag: &str,
        fields: PartyFields,
    ) -> Result<Party> {
        let mut tx = self.registry.write(tenant).await?;
        // Under the tenant lock, two moves in one tree cannot each pass the
        // cycle check against a tree the other is changing.
        tx.lock_tenant(tenant).await?;
        let before = lock_party(&mut *tx, tenant, id, etag).await?;
        let mut party = before.clone();
        party.apply(fields);
        check(|v| party.validate(v, "party"))?;
        party.check_ancestry(&read_ancestry(&mut *tx, &party).await?)?;
        let now = Utc::now();
        party.meta.touch(now);
        tx.update_party(&party).await?;
        self.registry
            .commit_audited(
                tx,
                caller,
                Some(&before),
                Some(&party),
                now,
                Some(Change::tenant(tenant)),
            )
            .await?;
        Ok(party)
    }

    pub async fn delete(&self, caller: &Caller, tenant: &Id, id: &Id, etag: &str) -> Result<()> {
        let mut tx = self.registry.write(tenant).await?;
        let party = lock_party(&mut *tx, tenant, id, etag).await?;
        party.check_deletable(&tx.party_users(tenant, id, USERS_SHOWN).await?)?;
        let now = Utc::now();
        tx.delete_party(tenant, id, now).await?;
        self.registry
            .commit_audited(
                tx,
                caller,
                Some(&party),
                None,
                now,
                Some(Change::tenant(tenant)),
            )
            .await
    }
}

/// The party an operation changes, locked until it commits, if `etag` (when
/// given) is still its etag.
async fn lock_party(tx: &mut dyn Tx, tenant: &Id, id: &Id, etag: &str) -> Result<Party> {
    let party = tx
        .get_party_for_update(tenant, id)
        .await?
        .ok_or_else(|| Error::NotFound(party_name(tenant, id)))?;
    party.meta.check_etag(etag, &party.name())?;
    Ok(party)
}

/// The new parent of `party` and its ancestors, nearest first, as
/// `Party::check_ancestry` needs them: read up to the root, to a party that
/// does not exist or to `party` itself, or one more than a tree may hold.
async fn read_ancestry(tx: &mut dyn Tx, party: &Party) -> Result<Vec<Party>> {
    let mut ancestry = Vec::new();
    let mut next = party.parent.clone();
    while let Some(id) = next.take_if(|id| *id != party.id)
        && ancestry.len() <= Party::MAX_DEPTH
    {
        let Some(ancestor) = tx.get_party(&party.tenant, &id).await? else {
            break;
        };
        next = ancestor.parent.clone();
        ancestry.push(ancestor);
    }
    Ok(ancestry)
}

/// A referenced party must exist; its absence is the request's fault.
pub(super) async fn require_party(
    tx: &mut dyn Tx,
    tenant: &Id,
    id: &Id,
    field: &str,
) -> Result<Party> {
    tx.get_party(tenant, id)
        .await?
        .ok_or_else(|| Error::invalid(field, format!("{} does not exist", party_name(tenant, id))))
}
