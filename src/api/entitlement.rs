//! `accord.v1.EntitlementService`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_core::Stream;
use prost::Message;
use prost_types::Timestamp;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::convert::{
    clause_out, credits_out, exclusion_out, objective_out, opt_time_in, support_out, time_out,
};
use crate::auth::{Authenticator, Principal, authorize, principal};
use crate::domain::entitlement::{Entitlement, LayerKind, MAX_BATCH, Outcome, Pair, Provenance};
use crate::domain::names::{
    Collection, Id, ResourceName, TenantName, agreement_name, override_name, party_name,
    service_name,
};
use crate::error::{Error, Violations};
use crate::proto::v1 as pb;
use crate::proto::v1::entitlement_service_server::EntitlementService;
use crate::service::entitlements::{Resolved, Resolver};

pub struct EntitlementApi {
    resolver: Arc<Resolver>,
    /// Watches check their key again while they run.
    authenticator: Arc<Authenticator>,
}

impl EntitlementApi {
    pub fn new(resolver: Arc<Resolver>, authenticator: Arc<Authenticator>) -> Self {
        Self {
            resolver,
            authenticator,
        }
    }
}

/// The consumer and service of a pair, in the request's tenant. Malformed
/// names are INVALID_ARGUMENT (all of them at once); a well-formed name in
/// another tenant is NOT_FOUND, as a missing one is: it says nothing of that
/// tenant.
fn pair_in(prefix: &str, consumer: &str, service: &str, tenant: &Id) -> Result<Pair, Error> {
    let mut v = Violations::new();
    let consumer_name = v.check(ResourceName::parse(
        &format!("{prefix}consumer"),
        consumer,
        Collection::Parties,
    ));
    let service_name = v.check(ResourceName::parse(
        &format!("{prefix}service"),
        service,
        Collection::Services,
    ));
    v.into_result()?;
    let (consumer_name, service_name) = (
        consumer_name.expect("checked"),
        service_name.expect("checked"),
    );
    for (name, text) in [(&consumer_name, consumer), (&service_name, service)] {
        if &name.tenant != tenant {
            return Err(Error::NotFound(text.to_string()));
        }
    }
    Ok(Pair {
        consumer: consumer_name.id,
        service: service_name.id,
    })
}

type Instants = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// A question about one pair at two instants, as ResolveEntitlement and
/// ExplainEntitlement both ask it.
trait PairQuestion {
    /// Parent, consumer, service, as_of and known_at.
    fn parts(&self) -> (&str, &str, &str, &Option<Timestamp>, &Option<Timestamp>);
}

impl PairQuestion for pb::ResolveEntitlementRequest {
    fn parts(&self) -> (&str, &str, &str, &Option<Timestamp>, &Option<Timestamp>) {
        let r = self;
        (&r.parent, &r.consumer, &r.service, &r.as_of, &r.known_at)
    }
}

impl PairQuestion for pb::ExplainEntitlementRequest {
    fn parts(&self) -> (&str, &str, &str, &Option<Timestamp>, &Option<Timestamp>) {
        let r = self;
        (&r.parent, &r.consumer, &r.service, &r.as_of, &r.known_at)
    }
}

/// The tenant, pair and instants of a single question (resolve, explain),
/// after checking the caller may ask in that tenant.
fn question<Q: PairQuestion>(request: &Request<Q>) -> Result<(Id, Pair, Instants), Error> {
    let (parent, consumer, service, as_of, known_at) = request.get_ref().parts();
    let tenant = TenantName::parse("parent", parent)?.0;
    authorize(request, &tenant)?;
    let pair = pair_in("", consumer, service, &tenant)?;
    Ok((tenant, pair, instants_in(as_of, known_at)?))
}

fn instants_in(as_of: &Option<Timestamp>, known_at: &Option<Timestamp>) -> Result<Instants, Error> {
    let mut v = Violations::new();
    let as_of = opt_time_in(&mut v, "as_of", as_of);
    let known_at = opt_time_in(&mut v, "known_at", known_at);
    v.into_result()?;
    Ok((as_of, known_at))
}

pub(crate) fn provenance_out(tenant: &Id, p: &Provenance) -> pb::Provenance {
    source_out(
        tenant,
        &p.agreement,
        Some(&p.revision),
        p.override_id.as_ref(),
    )
}

/// An agreement, its revision (when one was recorded) and override, as names.
fn source_out(
    tenant: &Id,
    agreement: &Id,
    revision: Option<&Id>,
    override_id: Option<&Id>,
) -> pb::Provenance {
    pb::Provenance {
        agreement: agreement_name(tenant, agreement),
        revision_id: revision.map(Id::to_string).unwrap_or_default(),
        r#override: override_id
            .map(|o| override_name(tenant, agreement, o))
            .unwrap_or_default(),
    }
}

pub fn entitlement_out(r: &Resolved) -> pb::Entitlement {
    let e: &Entitlement = &r.entitlement;
    let t = &e.tenant;
    let terms = &e.terms;
    pb::Entitlement {
        consumer: party_name(t, &e.query.consumer),
        service: service_name(t, &e.query.service),
        objectives: terms
            .objectives
            .iter()
            .map(|o| pb::EntitledObjective {
                objective: Some(objective_out(&o.objective)),
                provenance: Some(provenance_out(t, &o.source)),
                patched_fields: o
                    .patched
                    .iter()
                    .map(|(field, p)| pb::FieldProvenance {
                        field: field.as_str().to_string(),
                        provenance: Some(provenance_out(t, p)),
                    })
                    .collect(),
            })
            .collect(),
        support: terms.support.as_ref().map(|s| pb::EntitledSupport {
            support: Some(support_out(&s.value)),
            provenance: Some(provenance_out(t, &s.source)),
        }),
        credits: terms.credits.as_ref().map(|c| pb::EntitledCredits {
            credits: Some(credits_out(&c.value)),
            provenance: Some(provenance_out(t, &c.source)),
        }),
        exclusions: terms
            .exclusions
            .iter()
            .map(|x| pb::EntitledExclusion {
                exclusion: Some(exclusion_out(&x.value)),
                provenance: Some(provenance_out(t, &x.source)),
            })
            .collect(),
        clauses: terms
            .clauses
            .iter()
            .map(|c| pb::EntitledClause {
                clause: Some(clause_out(&c.value)),
                provenance: Some(provenance_out(t, &c.source)),
            })
            .collect(),
        version: e.version.clone(),
        as_of: Some(time_out(r.as_of)),
        known_at: Some(time_out(r.known_at)),
    }
}

/// A pair's outcome as a batch or watch result: the entitlement, or the
/// status (with its details) a single resolve would have failed with.
fn result_out(
    pair: pb::EntitlementPair,
    outcome: Result<Resolved, Error>,
) -> pb::EntitlementResult {
    let result = match outcome {
        Ok(r) => pb::entitlement_result::Result::Entitlement(entitlement_out(&r)),
        Err(e) => pb::entitlement_result::Result::Error(status_out(Status::from(e))),
    };
    pb::EntitlementResult {
        pair: Some(pair),
        result: Some(result),
    }
}

fn status_out(status: Status) -> tonic_types::Status {
    // The details tonic carries are an encoded google.rpc.Status already.
    tonic_types::Status::decode(status.details()).unwrap_or_else(|_| tonic_types::Status {
        code: status.code() as i32,
        message: status.message().to_string(),
        details: Vec::new(),
    })
}

fn layer_kind_out(k: LayerKind) -> pb::LayerKind {
    match k {
        LayerKind::Base => pb::LayerKind::Base,
        LayerKind::Override => pb::LayerKind::Override,
        LayerKind::ConsumerAgreement => pb::LayerKind::ConsumerAgreement,
    }
}

fn outcome_out(o: Outcome) -> pb::LayerOutcome {
    match o {
        Outcome::Applied => pb::LayerOutcome::Applied,
        Outcome::NotRecorded => pb::LayerOutcome::NotRecorded,
        Outcome::ServiceNotCovered => pb::LayerOutcome::ServiceNotCovered,
        Outcome::NotInAncestry => pb::LayerOutcome::NotInAncestry,
        Outcome::NotYetEffective => pb::LayerOutcome::NotYetEffective,
        Outcome::Expired => pb::LayerOutcome::Expired,
        Outcome::Terminated => pb::LayerOutcome::Terminated,
        Outcome::Superseded => pb::LayerOutcome::Superseded,
        Outcome::BaseNotApplied => pb::LayerOutcome::BaseNotApplied,
    }
}

/// The pairs of a batch or watch request: 1 to `MAX_BATCH`, each well formed.
/// A pair naming another tenant stays in, to answer NOT_FOUND on its own.
fn pairs_in(pairs: &[pb::EntitlementPair], tenant: &Id) -> Result<Vec<Result<Pair, Error>>, Error> {
    if pairs.is_empty() || pairs.len() > MAX_BATCH {
        return Err(Error::invalid(
            "pairs",
            format!("must hold 1 to {MAX_BATCH} pairs, not {}", pairs.len()),
        ));
    }
    let parsed: Vec<Result<Pair, Error>> = pairs
        .iter()
        .enumerate()
        .map(|(i, p)| pair_in(&format!("pairs[{i}]."), &p.consumer, &p.service, tenant))
        .collect();
    // Malformed names are the caller's bug: the whole request is refused.
    let mut v = Vec::new();
    for p in &parsed {
        if let Err(Error::InvalidArgument(violations)) = p {
            v.extend(violations.iter().cloned());
        }
    }
    if !v.is_empty() {
        return Err(Error::InvalidArgument(v));
    }
    Ok(parsed)
}

/// The default and bounds of a watch's heartbeat interval.
const HEARTBEAT_DEFAULT: Duration = Duration::from_secs(30);
const HEARTBEAT_MIN: Duration = Duration::from_secs(1);
const HEARTBEAT_MAX: Duration = Duration::from_secs(300);

pub(crate) fn heartbeat_in(d: &Option<prost_types::Duration>) -> Result<Duration, Error> {
    let Some(d) = d else {
        return Ok(HEARTBEAT_DEFAULT);
    };
    let interval = Duration::try_from(*d).ok();
    match interval {
        Some(i) if (HEARTBEAT_MIN..=HEARTBEAT_MAX).contains(&i) => Ok(i),
        _ => Err(Error::invalid(
            "heartbeat_interval",
            "must be between 1 s and 5 min",
        )),
    }
}

pub type WatchStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchEntitlementsResponse, Status>> + Send + 'static>>;

/// An `EntitlementService` chosen at start-up: the real one, or (for the
/// benchmark's ceiling) another behind the same server, layers and limits.
#[derive(Clone)]
pub struct Entitlements(Arc<dyn EntitlementService<WatchEntitlementsStream = WatchStream>>);

impl Entitlements {
    pub fn new(service: impl EntitlementService<WatchEntitlementsStream = WatchStream>) -> Self {
        Self(Arc::new(service))
    }
}

#[tonic::async_trait]
impl EntitlementService for Entitlements {
    async fn resolve_entitlement(
        &self,
        request: Request<pb::ResolveEntitlementRequest>,
    ) -> Result<Response<pb::Entitlement>, Status> {
        self.0.resolve_entitlement(request).await
    }

    async fn batch_resolve_entitlements(
        &self,
        request: Request<pb::BatchResolveEntitlementsRequest>,
    ) -> Result<Response<pb::BatchResolveEntitlementsResponse>, Status> {
        self.0.batch_resolve_entitlements(request).await
    }

    type WatchEntitlementsStream = WatchStream;

    async fn watch_entitlements(
        &self,
        request: Request<pb::WatchEntitlementsRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        self.0.watch_entitlements(request).await
    }

    async fn explain_entitlement(
        &self,
        request: Request<pb::ExplainEntitlementRequest>,
    ) -> Result<Response<pb::EntitlementExplanation>, Status> {
        self.0.explain_entitlement(request).await
    }
}

#[tonic::async_trait]
impl EntitlementService for EntitlementApi {
    async fn resolve_entitlement(
        &self,
        request: Request<pb::ResolveEntitlementRequest>,
    ) -> Result<Response<pb::Entitlement>, Status> {
        let (tenant, pair, (as_of, known_at)) = question(&request)?;
        let resolved = self
            .resolver
            .resolve(&tenant, &pair, as_of, known_at)
            .await?;
        Ok(Response::new(entitlement_out(&resolved)))
    }

    async fn batch_resolve_entitlements(
        &self,
        request: Request<pb::BatchResolveEntitlementsRequest>,
    ) -> Result<Response<pb::BatchResolveEntitlementsResponse>, Status> {
        let principal = principal(&request)?.clone();
        let req = request.into_inner();
        let tenant = TenantName::parse("parent", &req.parent)?.0;
        principal.check_tenant(&tenant)?;
        let parsed = pairs_in(&req.pairs, &tenant)?;
        let (as_of, known_at) = instants_in(&req.as_of, &req.known_at)?;
        let valid: Vec<Pair> = parsed
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .cloned()
            .collect();
        let mut resolved = self
            .resolver
            .resolve_batch(&tenant, &valid, as_of, known_at)
            .await?
            .into_iter();
        let results = req
            .pairs
            .into_iter()
            .zip(parsed)
            .map(|(pair, p)| {
                let outcome = match p {
                    Ok(_) => resolved.next().expect("one result per valid pair"),
                    Err(e) => Err(e),
                };
                result_out(pair, outcome)
            })
            .collect();
        Ok(Response::new(pb::BatchResolveEntitlementsResponse {
            results,
        }))
    }

    type WatchEntitlementsStream = WatchStream;

    async fn watch_entitlements(
        &self,
        request: Request<pb::WatchEntitlementsRequest>,
    ) -> Result<Response<Self::WatchEntitlementsStream>, Status> {
        let principal = principal(&request)?.clone();
        let req = request.into_inner();
        let tenant = TenantName::parse("parent", &req.parent)?.0;
        principal.check_tenant(&tenant)?;
        let parsed = pairs_in(&req.pairs, &tenant)?;
        let heartbeat = heartbeat_in(&req.heartbeat_interval)?;
        // Subscribe before the first resolve, so no change falls in between.
        let feed = self.resolver.changes().subscribe();
        let (tx, rx) = mpsc::channel(64);
        let watch = Watch {
            resolver: self.resolver.clone(),
            authenticator: self.authenticator.clone(),
            principal,
            key_check_at: tokio::time::Instant::now(),
            tenant,
            pairs: req.pairs.into_iter().zip(parsed).collect(),
            last: HashMap::new(),
            heartbeat,
            last_sent: tokio::time::Instant::now(),
        };
        tokio::spawn(watch.run(feed, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn explain_entitlement(
        &self,
        request: Request<pb::ExplainEntitlementRequest>,
    ) -> Result<Response<pb::EntitlementExplanation>, Status> {
        let (tenant, pair, (as_of, known_at)) = question(&request)?;
        let x = self
            .resolver
            .explain(&tenant, &pair, as_of, known_at)
            .await?;
        let t = &tenant;
        let (as_of, known_at) = (x.query.as_of, x.query.known_at);
        Ok(Response::new(pb::EntitlementExplanation {
            consumer: party_name(t, &pair.consumer),
            service: service_name(t, &pair.service),
            as_of: Some(time_out(as_of)),
            known_at: Some(time_out(known_at)),
            ancestry: x.ancestry.iter().map(|p| party_name(t, p)).collect(),
            layers: x
                .layers
                .iter()
                .map(|l| pb::EntitlementLayer {
                    kind: layer_kind_out(l.kind).into(),
                    source: Some(source_out(
                        t,
                        &l.agreement,
                        l.revision.as_ref(),
                        l.override_id.as_ref(),
                    )),
                    party: l
                        .party
                        .as_ref()
                        .map(|p| party_name(t, p))
                        .unwrap_or_default(),
                    outcome: outcome_out(l.outcome).into(),
                    reason: l.reason.clone(),
                })
                .collect(),
            entitlement: x.entitlement.map(|e| {
                entitlement_out(&Resolved {
                    entitlement: Arc::new(e),
                    as_of,
                    known_at,
                })
            }),
        }))
    }
}

/// How often a watch checks its key again when nothing else made it: a
/// safety net under the change feed, cheap through the key cache.
pub(crate) const KEY_RECHECK_INTERVAL: Duration = Duration::from_secs(5);

/// One WatchEntitlements stream: re-resolves its pairs when the change feed
/// says they may have changed or a validity boundary passes, and sends those
/// whose result differs from the last one sent. It ends when its key stops
/// authenticating (revoked, expired) or its tenant is deleted: checked when
/// the feed reports a change that may affect keys, when the key expires, and
/// every `KEY_RECHECK_INTERVAL`.
struct Watch {
    resolver: Arc<Resolver>,
    authenticator: Arc<Authenticator>,
    /// Who opened the watch.
    principal: Principal,
    /// When the key is checked next.
    key_check_at: tokio::time::Instant,
    tenant: Id,
    pairs: Vec<(pb::EntitlementPair, Result<Pair, Error>)>,
    /// What was last sent for each pair (by index): the version, or the code
    /// and message of the error.
    last: HashMap<usize, String>,
    heartbeat: Duration,
    /// When the stream last carried a message: a heartbeat is due
    /// `heartbeat` after it, however busy the change feed is meanwhile.
    last_sent: tokio::time::Instant,
}

type Sink = mpsc::Sender<Result<pb::WatchEntitlementsResponse, Status>>;

impl Watch {
    async fn run(
        mut self,
        mut feed: broadcast::Receiver<crate::domain::changes::Change>,
        tx: Sink,
    ) {
        let all: Vec<usize> = (0..self.pairs.len()).collect();
        let mut stopping = self.resolver.stopping();
        if *stopping.borrow_and_update() {
            let _ = tx
                .send(Err(Status::unavailable("the server is shutting down")))
                .await;
            return;
        }
        if !self.check_key(&tx).await {
            return;
        }
        let mut next_boundary = match self.send(&all, &tx).await {
            Some(b) => b,
            None => return,
        };
        loop {
            let boundary_sleep = next_boundary
                .map(|at| (at - Utc::now()).to_std().unwrap_or_default())
                .unwrap_or(Duration::from_secs(24 * 3600));
            let (due, check_key): (Vec<usize>, bool) = tokio::select! {
                change = feed.recv() => match change {
                    Ok(change) => (self.pairs.iter().enumerate()
                        .filter(|(_, (_, p))| p.as_ref().is_ok_and(|p| change.affects(&self.tenant, &p.service)))
                        .map(|(i, _)| i)
                        .collect(), change.affects_keys(&self.tenant)),
                    // Fell behind the feed: whatever changed, re-read everything.
                    Err(broadcast::error::RecvError::Lagged(_)) => (all.clone(), true),
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tokio::time::sleep(boundary_sleep) => (all.clone(), false),
                _ = tokio::time::sleep_until(self.key_check_at) => (Vec::new(), true),
                _ = tokio::time::sleep_until(self.last_sent + self.heartbeat) => {
                    let beat = pb::WatchEntitlementsResponse {
                        event: Some(pb::watch_entitlements_response::Event::Heartbeat(pb::Heartbeat {
                            time: Some(time_out(Utc::now())),
                        })),
                    };
                    if tx.send(Ok(beat)).await.is_err() {
                        return;
                    }
                    self.last_sent = tokio::time::Instant::now();
                    continue;
                }
                _ = tx.closed() => return,
                _ = stopping.changed() => {
                    let _ = tx.send(Err(Status::unavailable("the server is shutting down: watch again"))).await;
                    return;
                }
            };
            // The key first: a deleted tenant ends the watch rather than
            // sending each pair's NOT_FOUND.
            if check_key && !self.check_key(&tx).await {
                return;
            }
            if due.is_empty() {
                continue;
            }
            match self.send(&due, &tx).await {
                Some(b) => next_boundary = b,
                None => return,
            }
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

    /// Resolves the pairs at `due` and sends those that changed. Returns the
    /// next validity boundary among them, or `None` when the client is gone.
    async fn send(&mut self, due: &[usize], tx: &Sink) -> Option<Option<DateTime<Utc>>> {
        let valid: Vec<(usize, Pair)> = due
            .iter()
            .filter_map(|&i| self.pairs[i].1.as_ref().ok().map(|p| (i, p.clone())))
            .collect();
        let pairs: Vec<Pair> = valid.iter().map(|(_, p)| p.clone()).collect();
        let mut outcomes: HashMap<usize, Result<Resolved, Error>> = HashMap::new();
        let mut boundary: Option<DateTime<Utc>> = None;
        match self
            .resolver
            .resolve_batch_until(&self.tenant, &pairs, None, None)
            .await
        {
            Ok(answers) => {
                for ((i, _), a) in valid.iter().zip(answers) {
                    if let Some(until) = a.stable_until {
                        boundary = Some(boundary.map_or(until, |b| b.min(until)));
                    }
                    outcomes.insert(*i, a.result);
                }
            }
            Err(e) => {
                let _ = tx.send(Err(Status::from(e))).await;
                return None;
            }
        }
        for &i in due {
            let outcome = match outcomes.remove(&i) {
                Some(o) => o,
                None => match &self.pairs[i].1 {
                    Err(Error::NotFound(name)) => Err(Error::NotFound(name.clone())),
                    _ => continue,
                },
            };
            let fingerprint = match &outcome {
                Ok(r) => format!("ok:{}", r.entitlement.version),
                Err(e) => format!("err:{:?}:{e}", e.code()),
            };
            if self.last.get(&i) == Some(&fingerprint) {
                continue;
            }
            self.last.insert(i, fingerprint);
            let message = pb::WatchEntitlementsResponse {
                event: Some(pb::watch_entitlements_response::Event::Result(result_out(
                    self.pairs[i].0.clone(),
                    outcome,
                ))),
            };
            if tx.send(Ok(message)).await.is_err() {
                return None;
            }
            self.last_sent = tokio::time::Instant::now();
        }
        Some(boundary)
    }
}
