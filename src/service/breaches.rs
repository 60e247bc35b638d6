//! Breaches, read (`Breaches::get`, `Breaches::list`), the period closer
//! that writes them (`PeriodCloser`), which every replica runs, and the count
//! of open ones the metrics show (`OpenBreachCounter`).
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

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, warn};

use super::compliance::{Compliance, ObjectiveCompliance, Subject};
use super::{Page, Registry};
use crate::domain::agreement::AgreementState;
use crate::domain::audit::{AuditEvent, Caller};
use crate::domain::breach::{
    AlertKey, AtRisk, Breach, BreachCredit, BreachCursor, BreachKey, BreachScope, BreachState,
    Finding, PeriodVerdict, breach_name, next_revision,
};
use crate::domain::changes::Change;
use crate::domain::compliance::{Interval, Question, Status};
use crate::domain::entitlement::Pair;
use crate::domain::filter::{AgreementFilter, BreachFilter, FilterTerm};
use crate::domain::names::Id;
use crate::error::{Error, Result};
use crate::store::{Access, DueMarker, PeriodEvaluation};

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

/// Who breach writes are by, in the audit trail: no API key, the server.
pub const SYSTEM_ACTOR: &str = "system";
/// The audit trail's `method` of breach writes.
pub const CLOSER_METHOD: &str = "period-closer";

/// The alerts whose firing makes an AT_RISK event.
const PAGE_ALERTS: [&str; 2] = ["page-fast", "page-slow"];
/// The longest lookback of a page alert: data older than that cannot make
/// one fire.
const PAGE_LOOKBACK: TimeDelta = TimeDelta::hours(6);
/// How many times an evaluation is retried when another replica wrote the
/// same period meanwhile, before it waits for the next check.
const CLAIM_ATTEMPTS: usize = 3;
/// How long a marker whose evaluation failed waits before it is tried again.
const RETRY_AFTER: TimeDelta = TimeDelta::seconds(30);
/// Markers taken per tenant per check, and tenants per check.
const MARKERS_PER_CHECK: i64 = 1000;
const TENANTS_PER_CHECK: i64 = 10_000;
/// Tenants listed per statement when every tenant's closed periods are
/// looked at (start-up, a lost change feed).
const TENANTS_PER_PAGE: i64 = 1000;
/// Agreements and overrides read per statement for a tenant's scope.
const ROWS_PER_PAGE: i64 = 1000;

/// Whose data a breach is about: the service-wide data of a SERVICE_LEVEL
/// agreement's services, or a consumer's on one service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Whose {
    ServiceWide(Id),
    Consumer(Id),
}

impl Whose {
    fn consumer(&self) -> Option<&Id> {
        match self {
            Whose::ServiceWide(_) => None,
            Whose::Consumer(c) => Some(c),
        }
    }

    fn subject(&self, service: &Id) -> Subject {
        match self {
            Whose::ServiceWide(agreement) => Subject::Agreement(agreement.clone()),
            Whose::Consumer(consumer) => Subject::Pair(Pair {
                consumer: consumer.clone(),
                service: service.clone(),
            }),
        }
    }
}

/// The consumers with tagged data on a service in a period, as read in one
/// pass.
type Tagged = HashMap<(Id, Interval), Vec<Id>>;

/// What a tenant's scope is, as last read, and when its next period ends.
struct Known {
    scope: Arc<BreachScope>,
    next_end: Option<DateTime<Utc>>,
}

/// The period closer of one replica (see the module's documentation). Its
/// state is a cache: the database decides what is written.
pub struct PeriodCloser {
    registry: Arc<Registry>,
    compliance: Arc<Compliance>,
    interval: Duration,
    /// Tenants' scopes as last read; dropped when the change feed says
    /// their agreements changed.
    known: HashMap<Id, Known>,
    /// Tenants whose last closed periods are to be looked at next check.
    look: BTreeSet<Id>,
    /// Whether every tenant's are (start-up, a lost change feed).
    look_at_all: bool,
    /// Whether the change feed has ended (it does not while the registry
    /// lives).
    feed_closed: bool,
}

/// What one check did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// Closed periods of a subject evaluated.
    pub periods: usize,
    /// Breaches opened, revised or withdrawn.
    pub written: usize,
    /// AT_RISK events.
    pub at_risk: usize,
}

impl PeriodCloser {
    pub fn new(registry: Arc<Registry>, compliance: Arc<Compliance>, interval: Duration) -> Self {
        Self {
            registry,
            compliance,
            interval,
            known: HashMap::new(),
            look: BTreeSet::new(),
            look_at_all: true,
            feed_closed: false,
        }
    }

    /// Checks every `interval` until the task is dropped, following the
    /// change feed in between.
    pub async fn run(mut self) {
        let mut feed = self.registry.changes().subscribe();
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => match self.check(Utc::now()).await {
                    Ok(done) if done != Checked::default() => debug!(
                        periods = done.periods,
                        written = done.written,
                        at_risk = done.at_risk,
                        "periods closed"
                    ),
                    Ok(_) => {}
                    Err(error) => warn!(%error, "could not close periods"),
                },
                change = feed.recv(), if !self.feed_closed => self.heard(change),
            }
        }
    }

    /// What a change means for the scopes known.
    fn heard(&mut self, change: Result<Change, RecvError>) {
        match change {
            Ok(Change::Services { tenant, .. } | Change::Tenant { tenant }) => {
                self.known.remove(&tenant);
                self.look.insert(tenant);
            }
            Ok(Change::Everything) | Err(RecvError::Lagged(_)) => {
                self.known.clear();
                self.look_at_all = true;
            }
            Ok(Change::Keys { .. } | Change::Breach { .. } | Change::AtRisk(_)) => {}
            // The registry outlives the closer, so this does not happen;
            // should it, checks go on, each looking at every tenant.
            Err(RecvError::Closed) => {
                self.feed_closed = true;
                self.known.clear();
            }
        }
    }

    /// One check at `now`: late data first, then newly closed periods.
    pub async fn check(&mut self, now: DateTime<Utc>) -> Result<Checked> {
        let mut done = Checked::default();
        if self.feed_closed {
            // Nothing tells what changed: read everything again.
            self.known.clear();
            self.look_at_all = true;
        }
        let store = self.registry.store().clone();
        let mut tx = store.begin(None, Access::Read).await?;
        let due = tx.tenants_with_due_markers(now, TENANTS_PER_CHECK).await?;
        drop(tx);
        for tenant in due {
            if let Err(error) = self.late_data(&tenant, now, &mut done).await {
                warn!(tenant = %tenant, %error, "could not evaluate late data");
            }
        }
        if std::mem::take(&mut self.look_at_all) {
            let mut after: Option<String> = None;
            loop {
                let mut tx = store.begin(None, Access::Read).await?;
                let page = tx.list_tenants(after.as_deref(), TENANTS_PER_PAGE).await?;
                drop(tx);
                self.look.extend(page.iter().map(|t| t.id.clone()));
                match page.last() {
                    Some(last) if page.len() as i64 == TENANTS_PER_PAGE => {
                        after = Some(last.id.to_string())
                    }
                    _ => break,
                }
            }
        }
        let ended: Vec<Id> = self
            .known
            .iter()
            .filter(|(_, k)| k.next_end.is_some_and(|end| end <= now))
            .map(|(t, _)| t.clone())
            .collect();
        for tenant in ended {
            self.known.remove(&tenant);
            self.look.insert(tenant);
        }
        for tenant in std::mem::take(&mut self.look) {
            if let Err(error) = self.last_closed(&tenant, now, &mut done).await {
                warn!(tenant = %tenant, %error, "could not close the last periods");
                // Looked at again at the next check.
                self.known.remove(&tenant);
                self.look.insert(tenant);
            }
        }
        Ok(done)
    }

    /// The tenant's scope: as known, or read (ACTIVE agreements and the
    /// overrides of the SERVICE_LEVEL ones) and remembered.
    async fn scope(&mut self, tenant: &Id, now: DateTime<Utc>) -> Result<Arc<BreachScope>> {
        if let Some(known) = self.known.get(tenant) {
            return Ok(known.scope.clone());
        }
        let mut tx = self.registry.read(tenant).await?;
        let active = AgreementFilter {
            terms: vec![FilterTerm::State(AgreementState::Active)],
        };
        let mut agreements = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = tx
                .list_agreements(tenant, &active, now, after.as_deref(), ROWS_PER_PAGE)
                .await?;
            let full = page.len() as i64 == ROWS_PER_PAGE;
            after = page.last().map(|a| a.id.to_string());
            agreements.extend(page);
            if !full {
                break;
            }
        }
        let mut overrides = Vec::new();
        for a in agreements.iter().filter(|a| a.kind.takes_overrides()) {
            let mut after: Option<String> = None;
            loop {
                let page = tx
                    .list_overrides(tenant, &a.id, after.as_deref(), ROWS_PER_PAGE)
                    .await?;
                let full = page.len() as i64 == ROWS_PER_PAGE;
                after = page.last().map(|o| o.id.to_string());
                overrides.extend(page);
                if !full {
                    break;
                }
            }
        }
        let scope = Arc::new(BreachScope::new(&agreements, &overrides));
        self.known.insert(
            tenant.clone(),
            Known {
                scope: scope.clone(),
                next_end: scope.next_end(now),
            },
        );
        Ok(scope)
    }

    /// The most recently closed period of every window of every subject in
    /// the tenant, unless it was evaluated already.
    async fn last_closed(
        &mut self,
        tenant: &Id,
        now: DateTime<Utc>,
        done: &mut Checked,
    ) -> Result<()> {
        let scope = self.scope(tenant, now).await?;
        let mut tagged = Tagged::new();
        let mut failed = false;
        for service in scope.services.keys() {
            for period in scope.last_closed(service, now) {
                let subjects = self
                    .subjects(tenant, &scope, service, &period, None, &mut tagged)
                    .await?;
                for whose in subjects {
                    if self.evaluated(tenant, &whose, service, &period).await? {
                        continue;
                    }
                    if let Err(error) = self.close(tenant, &whose, service, period, now, done).await
                    {
                        warn!(tenant = %tenant, service = %service, ?whose, %error, "could not evaluate a closed period");
                        failed = true;
                    }
                }
            }
        }
        // What failed is tried again shortly, not at every check.
        if failed && let Some(known) = self.known.get_mut(tenant) {
            let retry = now + RETRY_AFTER;
            known.next_end = Some(known.next_end.map_or(retry, |end| end.min(retry)));
        }
        Ok(())
    }

    /// Whose data is judged over `period` on `service`: the service-wide
    /// data of each SERVICE_LEVEL agreement in force then, and the
    /// consumers with terms of their own or with tagged data in the period.
    /// Data tagged with `tagged` feeds only that consumer (and the
    /// service-wide view); untagged data (`Some("")`) or none given
    /// (`None`) feeds them all.
    async fn subjects(
        &self,
        tenant: &Id,
        scope: &BreachScope,
        service: &Id,
        period: &Interval,
        tagged: Option<&str>,
        with_data: &mut Tagged,
    ) -> Result<Vec<Whose>> {
        let Some(s) = scope.services.get(service) else {
            return Ok(Vec::new());
        };
        let mut subjects: Vec<Whose> = s
            .service_levels
            .iter()
            .filter(|level| level.covers(period))
            .map(|level| Whose::ServiceWide(level.agreement.clone()))
            .collect();
        match tagged {
            Some(consumer) if !consumer.is_empty() => {
                subjects.push(Whose::Consumer(Id::generated(consumer.to_string())));
            }
            _ => {
                let key = (service.clone(), *period);
                if !with_data.contains_key(&key) {
                    let mut tx = self.registry.read(tenant).await?;
                    let found = tx
                        .tagged_consumers(tenant, service, &(period.start..period.end))
                        .await?;
                    with_data.insert(key.clone(), found);
                }
                let consumers: BTreeSet<Id> = s
                    .consumers
                    .iter()
                    .chain(&with_data[&key])
                    .cloned()
                    .collect();
                subjects.extend(consumers.into_iter().map(Whose::Consumer));
            }
        }
        Ok(subjects)
    }

    /// Whether any objective of `whose` on `service` has been evaluated
    /// over `period`.
    async fn evaluated(
        &self,
        tenant: &Id,
        whose: &Whose,
        service: &Id,
        period: &Interval,
    ) -> Result<bool> {
        let mut tx = self.registry.read(tenant).await?;
        let records = tx
            .period_generations(
                tenant,
                whose.consumer(),
                std::slice::from_ref(service),
                &(period.start..period.end),
            )
            .await?;
        Ok(records
            .iter()
            .any(|(key, generation)| key.period_start == period.start && *generation > 0))
    }

    /// The tenant's due late-data markers: each closed period a marker's
    /// day touches is evaluated for every subject the data feeds; recent
    /// data also has the open windows of those subjects checked for page
    /// alerts. A marker is then settled, due again when the first period it
    /// touches that is still open ends (or at the next check while an alert
    /// it feeds fires).
    async fn late_data(
        &mut self,
        tenant: &Id,
        now: DateTime<Utc>,
        done: &mut Checked,
    ) -> Result<()> {
        let scope = self.scope(tenant, now).await?;
        let mut tx = self.registry.read(tenant).await?;
        let markers = tx.due_markers(tenant, now, MARKERS_PER_CHECK).await?;
        drop(tx);
        let mut closed: HashMap<(Whose, Id, Interval), bool> = HashMap::new();
        let mut tagged_data = Tagged::new();
        let mut watched: HashMap<(Whose, Id), bool> = HashMap::new();
        for due in markers {
            let m = &due.marker;
            let periods = scope.periods_touching(&m.service, m.day);
            let mut ok = true;
            for period in periods.iter().filter(|p| p.end <= now) {
                let tagged = Some(m.consumer.as_str());
                let subjects = self
                    .subjects(tenant, &scope, &m.service, period, tagged, &mut tagged_data)
                    .await?;
                for whose in subjects {
                    let key = (whose.clone(), m.service.clone(), *period);
                    if let Some(result) = closed.get(&key) {
                        ok &= *result;
                        continue;
                    }
                    let result = self
                        .close(tenant, &whose, &m.service, *period, now, done)
                        .await;
                    if let Err(error) = &result {
                        warn!(tenant = %tenant, service = %m.service, ?whose, %error, "could not evaluate a closed period");
                    }
                    ok &= result.is_ok();
                    closed.insert(key, result.is_ok());
                }
            }
            let mut firing = false;
            if m.day + TimeDelta::days(1) > now - PAGE_LOOKBACK {
                let day = Interval::new(m.day, m.day + TimeDelta::days(1));
                let tagged = Some(m.consumer.as_str());
                let subjects = self
                    .subjects(tenant, &scope, &m.service, &day, tagged, &mut tagged_data)
                    .await?;
                for whose in subjects {
                    let key = (whose.clone(), m.service.clone());
                    if let Some(fires) = watched.get(&key) {
                        firing |= *fires;
                        continue;
                    }
                    let fires = match self
                        .watch_alerts(tenant, &whose, &m.service, now, done)
                        .await
                    {
                        Ok(fires) => fires,
                        Err(error) => {
                            warn!(tenant = %tenant, service = %m.service, ?whose, %error, "could not check alerts");
                            ok = false;
                            false
                        }
                    };
                    watched.insert(key, fires);
                    firing |= fires;
                }
            }
            let next = if !ok {
                Some(now + RETRY_AFTER)
            } else if firing {
                Some(now)
            } else {
                periods.iter().map(|p| p.end).filter(|end| *end > now).min()
            };
            self.settle(tenant, &due, next).await?;
        }
        Ok(())
    }

    async fn settle(
        &self,
        tenant: &Id,
        due: &DueMarker,
        next: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let mut tx = self.registry.write(tenant).await?;
        // A batch that marked it again since keeps it due now.
        tx.settle_marker(tenant, due, next).await?;
        tx.commit().await
    }

    /// Evaluates the closed `period` of `whose` on `service` and writes what
    /// it finds: a claim on each objective's evaluation record, and the
    /// breach to open, revise or withdraw. Evaluates again when another
    /// replica wrote the period meanwhile.
    async fn close(
        &self,
        tenant: &Id,
        whose: &Whose,
        service: &Id,
        period: Interval,
        now: DateTime<Utc>,
        done: &mut Checked,
    ) -> Result<()> {
        for _ in 0..CLAIM_ATTEMPTS {
            let mut tx = self.registry.read(tenant).await?;
            let seen: HashMap<BreachKey, i64> = tx
                .period_generations(
                    tenant,
                    whose.consumer(),
                    std::slice::from_ref(service),
                    &(period.start..period.end),
                )
                .await?
                .into_iter()
                .collect();
            drop(tx);
            // The terms in force when the period ended; all the data of the
            // period, late data included.
            let evaluated = match self
                .compliance
                .evaluate_period(tenant, &whose.subject(service), period.start, period.end)
                .await
            {
                Ok(evaluated) => evaluated,
                // No terms apply to the subject then (a consumer without an
                // entitlement at the period's end): nothing to judge.
                Err(Error::NotFound(_)) => return Ok(()),
                // Terms that cannot be evaluated over the period (too many
                // slices): another evaluation would fail alike.
                Err(e @ Error::FailedPrecondition { .. }) => {
                    warn!(tenant = %tenant, service = %service, ?whose, error = %e, "a closed period cannot be evaluated");
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            let findings: Vec<(BreachKey, Finding)> = evaluated
                .objectives
                .iter()
                .filter(|o| &o.service == service && o.evaluation.window.period == period)
                .filter(|o| o.evaluation.window.closed())
                .filter_map(|o| finding(whose, o, period))
                .collect();
            done.periods += 1;
            if self.write(tenant, findings, &seen, now, done).await? {
                return Ok(());
            }
            debug!(tenant = %tenant, service = %service, ?whose, "period written meanwhile: evaluating again");
        }
        Err(Error::Unavailable(format!(
            "the period {}..{} of tenants/{tenant}/services/{service} kept being written by              other replicas",
            period.start, period.end
        )))
    }

    /// Writes `findings` in one transaction if no other evaluation of their
    /// periods was recorded since the generations `seen` were read; returns
    /// whether it did.
    async fn write(
        &self,
        tenant: &Id,
        findings: Vec<(BreachKey, Finding)>,
        seen: &HashMap<BreachKey, i64>,
        now: DateTime<Utc>,
        done: &mut Checked,
    ) -> Result<bool> {
        if findings.is_empty() {
            return Ok(true);
        }
        let mut tx = self.registry.write(tenant).await?;
        // The tenant's row, locked: a forced deletion of the tenant waits
        // for this write (or this one finds it gone), and every replica's
        // writes of the tenant's breaches take turns.
        let Some(owner) = tx.get_tenant_for_update(tenant).await? else {
            return Ok(true);
        };
        let caller = Caller {
            actor: SYSTEM_ACTOR.to_string(),
            method: CLOSER_METHOD,
            request_id: String::new(),
        };
        let mut events = Vec::new();
        for (key, found) in &findings {
            let record = PeriodEvaluation {
                key,
                period_end: found.period.end,
                status: match found.verdict {
                    PeriodVerdict::Breached => "BREACHED",
                    PeriodVerdict::Met => "MET",
                    PeriodVerdict::NoData => "NO_DATA",
                },
                evaluated_at: now,
            };
            let generation = seen.get(key).copied().unwrap_or(0);
            if !tx
                .claim_period_evaluation(tenant, &record, generation)
                .await?
            {
                return Ok(false);
            }
            let existing = tx.get_breach_for_update(tenant, &key.id()).await?;
            let Some(event) = next_revision(tenant, key, existing.as_ref(), found, now) else {
                continue;
            };
            match &existing {
                None => {
                    if !tx.insert_breach(&event.breach).await? {
                        return Ok(false);
                    }
                }
                Some(_) => tx.update_breach(&event.breach).await?,
            }
            tx.insert_audit_event(&AuditEvent::new(
                &caller,
                &owner.uid,
                existing.as_ref(),
                Some(&event.breach),
                now,
            ))
            .await?;
            events.push(Change::Breach {
                tenant: tenant.clone(),
                event: Box::new(event),
            });
        }
        let written = events.len();
        self.registry.commit_events(tx, events).await?;
        done.written += written;
        Ok(true)
    }

    /// Evaluates the open windows of `whose` on `service` at `now` and
    /// records whether each page alert fires, announcing AT_RISK for those
    /// that start; returns whether any fires.
    async fn watch_alerts(
        &self,
        tenant: &Id,
        whose: &Whose,
        service: &Id,
        now: DateTime<Utc>,
        done: &mut Checked,
    ) -> Result<bool> {
        let question = Question::check(now, Some(now), None, None)?;
        let evaluated = match self
            .compliance
            .evaluate(tenant, &whose.subject(service), &question)
            .await
        {
            Ok(evaluated) => evaluated,
            Err(Error::NotFound(_) | Error::FailedPrecondition { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        let alerts: Vec<(AlertKey, bool, &ObjectiveCompliance)> = evaluated
            .objectives
            .iter()
            .filter(|o| &o.service == service && !o.evaluation.window.closed())
            .flat_map(|o| {
                o.evaluation
                    .alerts
                    .iter()
                    .filter(|a| PAGE_ALERTS.contains(&a.name))
                    .map(move |a| {
                        let key = AlertKey {
                            agreement: o.source.agreement.clone(),
                            objective_key: o.objective.key.clone(),
                            consumer: whose.consumer().cloned(),
                            service: service.clone(),
                            alert: a.name.to_string(),
                        };
                        (key, a.firing, o)
                    })
            })
            .collect();
        if alerts.is_empty() {
            return Ok(false);
        }
        let mut tx = self.registry.write(tenant).await?;
        if tx.get_tenant_for_update(tenant).await?.is_none() {
            return Ok(false);
        }
        let mut events = Vec::new();
        for (key, firing, o) in &alerts {
            let state = tx
                .lock_alert_state(tenant, key, DateTime::UNIX_EPOCH)
                .await?;
            let Some((next, started)) = state.after(*firing, now) else {
                continue;
            };
            if next.firing_since == state.firing_since {
                // Unchanged: nothing to record.
                continue;
            }
            tx.set_alert_state(tenant, key, &next).await?;
            if started {
                events.push(Change::AtRisk(Box::new(AtRisk {
                    tenant: tenant.clone(),
                    agreement: key.agreement.clone(),
                    objective_key: key.objective_key.clone(),
                    consumer: key.consumer.clone(),
                    service: service.clone(),
                    alert: key.alert.clone(),
                    burn_rates: o
                        .evaluation
                        .burn_rates
                        .iter()
                        .map(|b| (b.lookback.num_seconds(), b.rate))
                        .collect(),
                    time: now,
                })));
            }
        }
        done.at_risk += events.len();
        self.registry.commit_events(tx, events).await?;
        Ok(alerts.iter().any(|(_, firing, _)| *firing))
    }
}

/// How many breaches are open in the whole registry, every tenant's: in
/// state OPEN, that is missed as their period's latest evaluation says and
/// not withdrawn. A breach stays open for good unless late data withdraws
/// it, so the count is the registry's history of missed periods, not of
/// incidents under way: it rises with each breach opened and falls only
/// with a withdrawal or a tenant's deletion. Kept by `OpenBreachCounter`,
/// read by the metrics without touching the database.
#[derive(Debug)]
pub struct OpenBreaches(AtomicI64);

impl Default for OpenBreaches {
    fn default() -> Self {
        Self(AtomicI64::new(-1))
    }
}

impl OpenBreaches {
    /// The count as last taken; `None` until every tenant has been counted
    /// once.
    pub fn get(&self) -> Option<u64> {
        u64::try_from(self.0.load(Ordering::Relaxed)).ok()
    }

    fn set(&self, open: u64) {
        self.0
            .store(i64::try_from(open).unwrap_or(i64::MAX), Ordering::Relaxed);
    }
}

/// Keeps an `OpenBreaches` up to date without a query per scrape: counts
/// every tenant's open breaches once (a read transaction per tenant), then
/// counts a tenant again when the change feed tells of a breach of its
/// written (by any replica: the feed brings them all) or of the tenant
/// changing (a deletion), and every tenant again when changes may have been
/// missed (the feed reconnected, or this counter fell behind it). It counts
/// what is due every `interval` (the period closer's), so a breach shows
/// within an interval of its write.
pub struct OpenBreachCounter {
    registry: Arc<Registry>,
    open: Arc<OpenBreaches>,
    interval: Duration,
    /// Each tenant's open breaches as last counted; tenants with none are
    /// left out.
    by_tenant: HashMap<Id, u64>,
    /// Tenants to count at the next tick.
    due: BTreeSet<Id>,
    /// Whether every tenant is to be counted at the next tick.
    all_due: bool,
}

impl OpenBreachCounter {
    pub fn new(registry: Arc<Registry>, open: Arc<OpenBreaches>, interval: Duration) -> Self {
        Self {
            registry,
            open,
            interval,
            by_tenant: HashMap::new(),
            due: BTreeSet::new(),
            all_due: true,
        }
    }

    /// Counts every `interval` what the change feed made due, until the task
    /// is dropped.
    pub async fn run(mut self) {
        let mut feed = self.registry.changes().subscribe();
        let mut feed_closed = false;
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    if let Err(error) = self.count().await {
                        warn!(%error, "could not count the open breaches");
                    }
                }
                change = feed.recv(), if !feed_closed => match change {
                    Ok(Change::Breach { tenant, .. } | Change::Tenant { tenant }) => {
                        self.due.insert(tenant);
                    }
                    Ok(Change::Everything) | Err(RecvError::Lagged(_)) => self.all_due = true,
                    Ok(Change::Services { .. } | Change::Keys { .. } | Change::AtRisk(_)) => {}
                    // The registry outlives the counter: this does not
                    // happen. Should it, the count stays as it was.
                    Err(RecvError::Closed) => feed_closed = true,
                },
            }
        }
    }

    /// Counts the tenants due (every tenant, when all are) and publishes
    /// the total once none is left. A tenant whose count fails is counted
    /// again at the next tick; the first failure ends the pass, publishing
    /// nothing, so the first total shown has every tenant counted.
    pub async fn count(&mut self) -> Result<()> {
        if self.all_due {
            let tenants = self.tenants().await?;
            self.all_due = false;
            // Tenants deleted meanwhile are forgotten.
            self.by_tenant.retain(|tenant, _| tenants.contains(tenant));
            self.due.extend(tenants);
        }
        while let Some(tenant) = self.due.pop_first() {
            let open = async {
                let mut tx = self.registry.read(&tenant).await?;
                tx.count_breaches(&tenant, BreachState::Open).await
            }
            .await;
            match open {
                Ok(0) => {
                    self.by_tenant.remove(&tenant);
                }
                Ok(open) => {
                    self.by_tenant.insert(tenant, open.unsigned_abs());
                }
                Err(error) => {
                    self.due.insert(tenant);
                    return Err(error);
                }
            }
        }
        self.open.set(self.by_tenant.values().sum());
        Ok(())
    }

    /// Every tenant's id, page after page.
    async fn tenants(&self) -> Result<HashSet<Id>> {
        let mut tenants = HashSet::new();
        let mut after: Option<String> = None;
        loop {
            let mut tx = self.registry.store().begin(None, Access::Read).await?;
            let page = tx.list_tenants(after.as_deref(), TENANTS_PER_PAGE).await?;
            drop(tx);
            let full = page.len() as i64 == TENANTS_PER_PAGE;
            after = page.last().map(|t| t.id.to_string());
            tenants.extend(page.into_iter().map(|t| t.id));
            if !full {
                return Ok(tenants);
            }
        }
    }
}

/// What an objective's evaluation over a closed period finds, keyed by its
/// breach; `None` for a verdict that is not a closed period's.
fn finding(
    whose: &Whose,
    o: &ObjectiveCompliance,
    period: Interval,
) -> Option<(BreachKey, Finding)> {
    let verdict = match o.evaluation.status {
        Status::Breached => PeriodVerdict::Breached,
        Status::Met => PeriodVerdict::Met,
        Status::NoData => PeriodVerdict::NoData,
        Status::BelowTarget => return None,
    };
    let key = BreachKey {
        agreement: o.source.agreement.clone(),
        objective_key: o.objective.key.clone(),
        consumer: whose.consumer().cloned(),
        service: o.service.clone(),
        period_start: period.start,
    };
    let found = Finding {
        verdict,
        period,
        attainment: o.evaluation.attainment.as_ref().map(|a| a.value),
        target: o.objective.target,
        target_provenance: o.target_provenance.clone(),
        credit: o.credit.as_ref().map(|c| BreachCredit {
            percent: c.percent,
            amount_minor: c.amount_minor,
            currency: c.currency.clone(),
        }),
    };
    Some((key, found))
}
