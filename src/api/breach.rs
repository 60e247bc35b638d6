//! `accord.v1.BreachService`: breaches read (Get, List) and watched. A watch
//! follows the change feed, where the period closer announces every breach
//! it writes and every page alert that starts firing (on PostgreSQL through
//! NOTIFY, so a watch on any replica hears the writes of all), and sends
//! those its filter lets through.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_core::Stream;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::convert::time_out;
use super::entitlement::{KEY_RECHECK_INTERVAL, heartbeat_in, provenance_out};
use crate::auth::{Authenticator, Principal, authorize, principal};
use crate::domain::breach::{AtRisk, Breach, BreachChange, BreachCredit, BreachState};
use crate::domain::changes::Change;
use crate::domain::filter::BreachFilter;
use crate::domain::names::{
    Id, MAX_NAME_CHARS, TenantName, agreement_name, party_name, service_name,
};
use crate::domain::page::PageItem;
use crate::error::{Error, FieldViolation};
use crate::proto::v1 as pb;
use crate::proto::v1::breach_service_server::BreachService;
use crate::service::Registry;
use crate::service::changes::Changes;

pub struct BreachApi {
    registry: Arc<Registry>,
    /// Watches check their key again while they run.
    authenticator: Arc<Authenticator>,
    /// Turns true when the server starts shutting down: watches end.
    stopping: watch::Receiver<bool>,
}

impl BreachApi {
    pub fn new(
        registry: Arc<Registry>,
        authenticator: Arc<Authenticator>,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        Self {
            registry,
            authenticator,
            stopping,
        }
    }
}

fn state_out(state: BreachState) -> pb::BreachState {
    match state {
        BreachState::Open => pb::BreachState::Open,
        BreachState::Withdrawn => pb::BreachState::Withdrawn,
    }
}

fn credit_out(c: &BreachCredit) -> pb::Credit {
    pb::Credit {
        percent: c.percent,
        amount: Some(pb::Money {
            amount_minor: c.amount_minor,
            currency_code: c.currency.clone(),
        }),
    }
}

pub fn breach_out(b: &Breach) -> pb::Breach {
    let t = &b.tenant;
    pb::Breach {
        name: b.name(),
        agreement: agreement_name(t, &b.agreement),
        objective_key: b.objective_key.clone(),
        consumer: b
            .consumer
            .as_ref()
            .map(|c| party_name(t, c))
            .unwrap_or_default(),
        service: service_name(t, &b.service),
        period: Some(pb::TimeInterval {
            start_time: Some(time_out(b.period_start)),
            end_time: Some(time_out(b.period_end)),
        }),
        attainment: b.attainment,
        target: b.target,
        target_provenance: Some(provenance_out(t, &b.target_provenance)),
        credit: b.credit.as_ref().map(credit_out),
        revision: b.revision,
        state: state_out(b.state).into(),
        create_time: Some(time_out(b.create_time)),
        update_time: Some(time_out(b.update_time)),
    }
}

impl PageItem for Breach {
    fn encoded_len(&self) -> usize {
        super::listed_len(&breach_out(self))
    }
}

fn at_risk_out(a: &AtRisk) -> pb::AtRisk {
    let t = &a.tenant;
    pb::AtRisk {
        agreement: agreement_name(t, &a.agreement),
        objective_key: a.objective_key.clone(),
        consumer: a
            .consumer
            .as_ref()
            .map(|c| party_name(t, c))
            .unwrap_or_default(),
        service: service_name(t, &a.service),
        alert: a.alert.clone(),
        burn_rates: a
            .burn_rates
            .iter()
            .map(|(seconds, rate)| pb::BurnRate {
                lookback: Some(prost_types::Duration {
                    seconds: *seconds,
                    nanos: 0,
                }),
                rate: *rate,
            })
            .collect(),
        time: Some(time_out(a.time)),
    }
}

/// `tenants/{tenant}/breaches/{breach}`: the tenant and the breach's id.
fn breach_name_in(field: &str, name: &str) -> Result<(Id, Id), Error> {
    let invalid = || {
        Error::from(FieldViolation::new(
            field,
            format!("`{name}` is not a valid name: expected `tenants/{{id}}/breaches/{{id}}`"),
        ))
    };
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid());
    }
    match name.split('/').collect::<Vec<_>>()[..] {
        ["tenants", tenant, "breaches", breach] => Ok((
            Id::parse(field, tenant).map_err(|_| invalid())?,
            Id::parse(field, breach).map_err(|_| invalid())?,
        )),
        _ if name.is_empty() => Err(FieldViolation::new(field, "is required").into()),
        _ => Err(invalid()),
    }
}

pub type BreachWatchStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchBreachesResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl BreachService for BreachApi {
    async fn get_breach(
        &self,
        request: Request<pb::GetBreachRequest>,
    ) -> Result<Response<pb::Breach>, Status> {
        let (tenant, id) = breach_name_in("name", &request.get_ref().name)?;
        authorize(&request, &tenant)?;
        let breach = self.registry.breaches().get(&tenant, &id).await?;
        Ok(Response::new(breach_out(&breach)))
    }

    async fn list_breaches(
        &self,
        request: Request<pb::ListBreachesRequest>,
    ) -> Result<Response<pb::ListBreachesResponse>, Status> {
        let req = request.get_ref();
        let tenant = TenantName::parse("parent", &req.parent)?.0;
        authorize(&request, &tenant)?;
        let page = self
            .registry
            .breaches()
            .list(&tenant, &req.filter, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(pb::ListBreachesResponse {
            breaches: page.items.iter().map(breach_out).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    type WatchBreachesStream = BreachWatchStream;

    async fn watch_breaches(
        &self,
        request: Request<pb::WatchBreachesRequest>,
    ) -> Result<Response<Self::WatchBreachesStream>, Status> {
        let principal = principal(&request)?.clone();
        let req = request.into_inner();
        let tenant = TenantName::parse("parent", &req.parent)?.0;
        principal.check_tenant(&tenant)?;
        let filter = BreachFilter::parse(&req.filter, &tenant)?;
        let heartbeat = heartbeat_in(&req.heartbeat_interval)?;
        let (tx, rx) = mpsc::channel(64);
        let watch = BreachWatch {
            changes: self.registry.changes().clone(),
            authenticator: self.authenticator.clone(),
            principal,
            key_check_at: tokio::time::Instant::now(),
            tenant,
            filter,
            heartbeat,
            last_sent: tokio::time::Instant::now(),
            stopping: self.stopping.clone(),
        };
        tokio::spawn(watch.run(tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

type Sink = mpsc::Sender<Result<pb::WatchBreachesResponse, Status>>;

fn heartbeat() -> pb::WatchBreachesResponse {
    pb::WatchBreachesResponse {
        event: Some(pb::watch_breaches_response::Event::Heartbeat(
            pb::Heartbeat {
                time: Some(time_out(Utc::now())),
            },
        )),
    }
}

/// One WatchBreaches stream: sends the events of its tenant that pass its
/// filter as the change feed brings them, and a heartbeat when nothing was
/// sent for `heartbeat`. It ends when its key stops authenticating (revoked,
/// expired) or its tenant is deleted, checked as WatchEntitlements checks
/// it; when the server shuts down (UNAVAILABLE); and when it falls behind
/// the feed, or other servers' changes stop reaching this one (UNAVAILABLE:
/// events were lost, list and watch again). It begins only once other
/// servers' changes reach this one: breaches are written by whichever
/// replica closes a period.
struct BreachWatch {
    changes: Arc<Changes>,
    authenticator: Arc<Authenticator>,
    principal: Principal,
    key_check_at: tokio::time::Instant,
    tenant: Id,
    filter: BreachFilter,
    heartbeat: Duration,
    last_sent: tokio::time::Instant,
    stopping: watch::Receiver<bool>,
}

/// How long a new watch waits for other servers' changes to reach this one.
const LIVE_WAIT: Duration = Duration::from_secs(5);

fn not_following() -> Status {
    Status::unavailable(
        "this server does not follow the other servers' changes right now and may miss \
         breaches they write: list breaches and watch again, here or on another server",
    )
}

impl BreachWatch {
    async fn run(mut self, tx: Sink) {
        if *self.stopping.borrow_and_update() {
            let _ = tx
                .send(Err(Status::unavailable("the server is shutting down")))
                .await;
            return;
        }
        if !self.check_key(&tx).await {
            return;
        }
        // Only once other servers' changes reach this one (PostgreSQL's
        // LISTEN is up): a feed subscribed before would bring their loss
        // as `Everything`, and end the watch at once.
        let waited = tokio::time::Instant::now();
        while !self.changes.is_live() {
            if waited.elapsed() >= LIVE_WAIT {
                let _ = tx.send(Err(not_following())).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut feed = self.changes.subscribe();
        if !self.changes.is_live() {
            let _ = tx.send(Err(not_following())).await;
            return;
        }
        // The watch follows the feed from here: a first heartbeat says so,
        // and what is listed after it cannot be missed by both.
        if tx.send(Ok(heartbeat())).await.is_err() {
            return;
        }
        self.last_sent = tokio::time::Instant::now();
        loop {
            let (event, check_key) = tokio::select! {
                change = feed.recv() => match change {
                    // Other servers' changes were lost for a while.
                    Ok(Change::Everything) => {
                        let _ = tx.send(Err(not_following())).await;
                        return;
                    }
                    Ok(change) => {
                        let keys = change.affects_keys(&self.tenant);
                        (self.event_of(change), keys)
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        let _ = tx.send(Err(Status::unavailable(format!(
                            "the watch fell {missed} changes behind and may have missed events: \
                             list breaches and watch again"
                        )))).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tokio::time::sleep_until(self.key_check_at) => (None, true),
                _ = tokio::time::sleep_until(self.last_sent + self.heartbeat) => {
                    (heartbeat().event, false)
                }
                _ = tx.closed() => return,
                _ = self.stopping.changed() => {
                    let _ = tx.send(Err(Status::unavailable("the server is shutting down: watch again"))).await;
                    return;
                }
            };
            if check_key && !self.check_key(&tx).await {
                return;
            }
            if let Some(event) = event {
                let message = pb::WatchBreachesResponse { event: Some(event) };
                if tx.send(Ok(message)).await.is_err() {
                    return;
                }
                self.last_sent = tokio::time::Instant::now();
            }
        }
    }

    /// The message a change makes for this watch, if any.
    fn event_of(&self, change: Change) -> Option<pb::watch_breaches_response::Event> {
        use pb::watch_breaches_response::Event;
        match change {
            Change::Breach { tenant, event }
                if tenant == self.tenant && self.filter.matches(&event.breach) =>
            {
                let breach = breach_out(&event.breach);
                Some(match event.change {
                    BreachChange::Opened => Event::Opened(breach),
                    BreachChange::Revised => Event::Revised(breach),
                    BreachChange::Withdrawn => Event::Withdrawn(breach),
                })
            }
            Change::AtRisk(at_risk)
                if at_risk.tenant == self.tenant && self.filter.matches_at_risk(&at_risk) =>
            {
                Some(Event::AtRisk(at_risk_out(&at_risk)))
            }
            _ => None,
        }
    }

    /// Checks that the watch's key still authenticates and its tenant still
    /// exists, and when to check next; otherwise ends the stream with why
    /// (UNAUTHENTICATED, NOT_FOUND) and returns false.
    async fn check_key(&mut self, tx: &Sink) -> bool {
        match self
            .authenticator
            .recheck(&self.principal, &self.tenant)
            .await
        {
            Ok(expire_time) => {
                let now = tokio::time::Instant::now();
                let expiry =
                    expire_time.map(|at| now + (at - Utc::now()).to_std().unwrap_or_default());
                self.key_check_at = expiry.map_or(now + KEY_RECHECK_INTERVAL, |at| {
                    at.min(now + KEY_RECHECK_INTERVAL)
                });
                true
            }
            Err(e) => {
                let _ = tx.send(Err(Status::from(e))).await;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breach_names_are_parsed_into_tenant_and_id() {
        let (t, b) = breach_name_in("name", "tenants/acme/breaches/b-0123abcd").unwrap();
        assert_eq!((t.as_str(), b.as_str()), ("acme", "b-0123abcd"));
        for bad in [
            "",
            "tenants/acme",
            "tenants/acme/parties/bank",
            "tenants/Acme/breaches/b-1",
            "tenants/acme/breaches/B-1",
        ] {
            let err = breach_name_in("name", bad).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidArgument(v) if v[0].field == "name"),
                "{bad}: {err}"
            );
        }
    }
}
