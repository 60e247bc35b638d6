//! Breaches, read (`Breaches::get`, `Breaches::list`), and the period closer
//! that writes them (`PeriodCloser`), which every replica runs.
//!
//! The closer, every `breach_check_interval`:
//! 1. takes the late-data markers that are due (ingestion marks each UTC day
//!    a batch touches, in the batch's transaction) and evaluates, for every
//!    subject the day's data feeds, the closed calendar periods overlapping
//!    the day, and the open windows (page alerts: AT_RISK); a marker is
//!    settled only if no batch marked it again meanwhile, and stays due
//!    until the last period it overlaps has closed;
//! 2. for each tenant whose catalogue changed or one of whose periods has
//!    just ended, evaluates the most recently closed period of every
//!    subject that has not been evaluated yet.
//!
//! Subjects: the service-wide data of each service of an ACTIVE
//! SERVICE_LEVEL agreement, and each consumer with terms of its own (an
//! override of such an agreement, a CUSTOMER or INTERNAL agreement) or with
//! tagged data in the period, on each service it has them for. Each is
//! evaluated through the compliance service (`Compliance::evaluate_period`).
//!
//! Writes are exactly once across replicas: every evaluation of a period
//! claims the period's evaluation record (locked, its generation read
//! before evaluating and bumped by the write); a replica whose claim finds
//! the generation moved evaluates again, so the last write always rests on
//! the newest data, and two replicas with the same result write once. The
//! breach and its revision, the audit event and the change-feed event go in
//! the same transaction.

use super::{Page, Registry};
use crate::domain::breach::{Breach, BreachCursor, breach_name};
use crate::domain::filter::BreachFilter;
use crate::domain::names::Id;
use crate::error::{Error, Result};

pub struct Breaches<'a> {
    pub(super) registry: &'a Registry,
}

impl Breaches<'_> {
    pub async fn get(&self, tenant: &Id, id: &Id) -> Result<Breach> {
        let mut tx = self.registry.read(tenant).await?;
        tx.get_breach(tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound(breach_name(tenant, id)))
    }

    /// Newest periods first, narrowed by `filter` (`BreachFilter`).
    pub async fn list(
        &self,
        tenant: &Id,
        filter: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Breach>> {
        let parsed = BreachFilter::parse(filter, tenant)?;
        let page =
            self.registry
                .page(page_size, page_token, format!("breaches|{tenant}|{filter}"))?;
        let after = match page.after.as_deref() {
            None => None,
            Some(s) => Some(BreachCursor::decode(s).ok_or_else(|| {
                Error::invalid("page_token", "is not a token this list returned")
            })?),
        };
        let mut tx = self.registry.read_existing(tenant).await?;
        let rows = tx
            .list_breaches(tenant, &parsed, after.as_ref(), page.fetch_limit())
            .await?;
        Ok(self
            .registry
            .finish_page(&page, rows, |b| BreachCursor::of(b).encode()))
    }
}
