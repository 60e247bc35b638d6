//! The audit trail, read: a tenant's events, newest first, or with
//! `show_deleted` those of every tenant that has had its id. Events are
//! written by the operations that make the changes (`Registry::audit`).

use super::{Page, Registry};
use crate::domain::audit::{AuditCursor, AuditEvent, AuditFilter};
use crate::domain::names::Id;
use crate::error::{Error, Result};
use crate::store::Access;

pub struct AuditTrail<'a> {
    pub(super) registry: &'a Registry,
}

impl AuditTrail<'_> {
    /// The events of the tenant that has the id now, or with `show_deleted`
    /// those of every tenant that has had it (the caller checks that only
    /// the platform admin asks for that).
    pub async fn list(
        &self,
        tenant: &Id,
        filter: AuditFilter,
        show_deleted: bool,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<AuditEvent>> {
        filter.validate()?;
        // Every trail of the id is read in the platform scope: a tenant's own
        // scope sees only its current uid's events (on PostgreSQL, RLS).
        let (mut tx, uid) = if show_deleted {
            (self.registry.store.begin(None, Access::Read).await?, None)
        } else {
            let mut tx = self.registry.read(tenant).await?;
            let uid = Registry::require_tenant(&mut *tx, tenant).await?.uid;
            (tx, Some(uid))
        };
        // Tokens are bound to the uid listed, so a token of an earlier tenant
        // with the id does not page through the current one's trail.
        let page = self.registry.page(
            page_size,
            page_token,
            format!(
                "auditEvents|{tenant}|{}|{}",
                uid.as_deref().unwrap_or("*"),
                filter.scope()
            ),
        )?;
        let before = match page.after.as_deref() {
            None => None,
            Some(s) => Some(AuditCursor::decode(s).ok_or_else(|| {
                Error::invalid("page_token", "is not a token this list returned")
            })?),
        };
        let rows = tx
            .list_audit_events(
                tenant,
                uid.as_deref(),
                &filter,
                before.as_ref(),
                page.fetch_limit(),
            )
            .await?;
        Ok(self
            .registry
            .finish_page(&page, rows, |e| e.cursor().encode()))
    }
}
