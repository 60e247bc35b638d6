//! ResolveEntitlement against a reference model: random worlds (party trees
//! up to three deep, SERVICE_LEVEL agreements with windows that may clash and
//! then are refused, CUSTOMER and INTERNAL agreements, overrides with various
//! windows, then updates, terminations, deletions and moves between two
//! instants of transaction time), built through the API, then random
//! (consumer, service, as_of, known_at) questions answered by the server and
//! by the model below, which knows only what the test wrote.
//!
//! The seed is printed; `ACCORD_ENTITLEMENT_SEED=<seed>` replays a run.

use std::collections::{BTreeSet, HashMap};

use accord::proto::v1 as pb;
use prost_types::Timestamp;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::{Code, Status};

use crate::on_both_backends;
use crate::support::*;

const SEED_VAR: &str = "ACCORD_ENTITLEMENT_SEED";
const WORLDS: usize = 16;
const QUERIES: usize = 30;

// --- the model ------------------------------------------------------------------------

struct MParty {
    name: String,
    kind: pb::PartyKind,
    /// (recorded from, parent), oldest first.
    versions: Vec<(i128, Option<String>)>,
}

struct MAgreement {
    name: String,
    kind: pb::AgreementKind,
    /// Each revision as the write that made it answered, oldest first.
    revisions: Vec<pb::Agreement>,
}

impl MAgreement {
    fn latest(&self) -> &pb::Agreement {
        self.revisions.last().expect("published")
    }

    fn terminated(&self) -> bool {
        self.latest().terminate_time.is_some()
    }
}

struct MOverride {
    name: String,
    agreement: String,
    /// (recorded from, recorded until, body).
    versions: Vec<(i128, Option<i128>, pb::Override)>,
}

impl MOverride {
    fn current(&self) -> Option<&pb::Override> {
        self.versions
            .last()
            .filter(|(_, until, _)| until.is_none())
            .map(|(.., o)| o)
    }

    fn close(&mut self, at: i128) {
        let last = self.versions.last_mut().expect("a version");
        assert!(last.1.is_none(), "{} closed twice", self.name);
        last.1 = Some(at);
    }
}

#[derive(Default)]
struct Model {
    parties: Vec<MParty>,
    agreements: Vec<MAgreement>,
    overrides: Vec<MOverride>,
}

fn t(ts: &Option<Timestamp>) -> i128 {
    nanos(ts.as_ref().expect("a timestamp"))
}

fn recorded(a: &pb::Agreement) -> i128 {
    t(&a.revision_create_time)
}

/// Whether `as_of` is in [effective_from, min(effective_until, terminate_time)).
fn valid_at(a: &pb::Agreement, as_of: i128) -> bool {
    let end = [a.effective_until, a.terminate_time]
        .iter()
        .flatten()
        .map(nanos)
        .min();
    t(&a.effective_from) <= as_of && end.is_none_or(|e| as_of < e)
}

fn objective_view(o: &pb::Objective, src: &str) -> Obj {
    Obj {
        target: o.target,
        threshold: o.threshold,
        window_days: window_days(o.window.as_ref()),
        src: src.into(),
        patched: Vec::new(),
    }
}

fn apply_agreement(view: &mut View, a: &pb::Agreement) {
    let src = at(a);
    for o in &a.objectives {
        view.objectives
            .insert(o.key.clone(), objective_view(o, &src));
    }
    if let Some(s) = &a.support {
        view.support = Some((support_minutes(s), src.clone()));
    }
    if let Some(c) = &a.credits {
        view.credits = Some((c.cap_percent.expect("a cap"), src.clone()));
    }
    view.exclusions
        .extend(a.exclusions.iter().map(|x| (x.reason.clone(), src.clone())));
    view.clauses
        .extend(a.clauses.iter().map(|c| (c.title.clone(), src.clone())));
}

fn apply_override(view: &mut View, base: &pb::Agreement, o: &pb::Override) {
    let src = via(base, o);
    for p in &o.objective_patches {
        // A patch of an objective the base's revision lacks is skipped.
        let Some(obj) = view.objectives.get_mut(&p.key) else {
            continue;
        };
        let mut patched = obj.clone();
        if let Some(target) = p.target {
            patched = patched.patched("target", src.clone());
            patched.target = target;
        }
        if let Some(threshold) = p.threshold {
            patched = patched.patched("threshold", src.clone());
            patched.threshold = Some(threshold);
        }
        if let Some(w) = &p.window {
            patched = patched.patched("window", src.clone());
            patched.window_days = window_days(Some(w));
        }
        *obj = patched;
    }
    for added in &o.added_objectives {
        view.objectives
            .insert(added.key.clone(), objective_view(added, &src));
    }
    if let Some(s) = &o.support {
        view.support = Some((support_minutes(s), src.clone()));
    }
    if let Some(c) = &o.credits {
        view.credits = Some((c.cap_percent.expect("a cap"), src.clone()));
    }
}

impl Model {
    fn party(&self, name: &str) -> &MParty {
        self.parties
            .iter()
            .find(|p| p.name == name)
            .expect("a party")
    }

    /// The party, then its parent and so on, as recorded at `k`; `None` when
    /// the party was not recorded then.
    fn ancestry(&self, consumer: &str, k: i128) -> Option<Vec<String>> {
        let mut chain = Vec::new();
        let mut next = Some(consumer.to_string());
        while let Some(name) = next {
            let version = self
                .parties
                .iter()
                .find(|p| p.name == name)
                .and_then(|p| p.versions.iter().rev().find(|(from, _)| *from <= k));
            match version {
                None if chain.is_empty() => return None,
                None => panic!("model: ancestor {name} unknown at {k}"),
                Some((_, parent)) => {
                    chain.push(name);
                    next = parent.clone();
                }
            }
            assert!(chain.len() <= 4, "model: a cycle through {chain:?}");
        }
        Some(chain)
    }

    /// The rules, as the brief and the proto state them.
    fn resolve(&self, consumer: &str, service: &str, as_of: i128, k: i128) -> Result<View, String> {
        let Some(ancestry) = self.ancestry(consumer, k) else {
            return Err(consumer.to_string());
        };
        let distance = |party: &str| ancestry.iter().position(|a| a == party);
        let mut bases: Vec<&pb::Agreement> = Vec::new();
        let mut deals: Vec<(usize, &pb::Agreement)> = Vec::new();
        for a in &self.agreements {
            let known: Vec<&pb::Agreement> =
                a.revisions.iter().filter(|r| recorded(r) <= k).collect();
            let Some(latest) = known.last() else {
                continue;
            };
            let terms = known
                .iter()
                .rev()
                .find(|r| recorded(r) <= as_of)
                .unwrap_or(&known[0]);
            if !terms.services.iter().any(|s| s == service) || !valid_at(latest, as_of) {
                continue;
            }
            match a.kind {
                pb::AgreementKind::ServiceLevel => bases.push(terms),
                _ => {
                    if let Some(d) = distance(&terms.consumer) {
                        deals.push((d, terms));
                    }
                }
            }
        }
        assert!(bases.len() <= 1, "model: two bases in force: {bases:#?}");
        if bases.is_empty() && deals.is_empty() {
            return Err(format!("entitlement of {consumer} on {service}"));
        }
        let mut view = View::default();
        if let Some(base) = bases.first() {
            apply_agreement(&mut view, base);
            let mut overrides: Vec<(usize, &pb::Override)> = Vec::new();
            for o in self.overrides.iter().filter(|o| o.agreement == base.name) {
                let Some((.., body)) = o
                    .versions
                    .iter()
                    .find(|(from, until, _)| *from <= k && until.is_none_or(|u| k < u))
                else {
                    continue;
                };
                let Some(d) = distance(&body.consumer) else {
                    continue;
                };
                let until = body.effective_until.as_ref().map(nanos);
                if t(&body.effective_from) <= as_of && until.is_none_or(|u| as_of < u) {
                    overrides.push((d, body));
                }
            }
            // Farthest first; one override per party and agreement.
            overrides.sort_by_key(|(d, _)| std::cmp::Reverse(*d));
            for (_, o) in overrides {
                apply_override(&mut view, base, o);
            }
        }
        // Farthest first; one consumer agreement per party.
        deals.sort_by_key(|(d, _)| std::cmp::Reverse(*d));
        for (_, d) in deals {
            apply_agreement(&mut view, d);
        }
        Ok(view)
    }

    /// Validity boundaries in seconds, where off-by-one mistakes show.
    fn boundaries(&self) -> Vec<i64> {
        let mut out = BTreeSet::new();
        for a in &self.agreements {
            for r in &a.revisions {
                for x in [r.effective_from, r.effective_until, r.terminate_time]
                    .into_iter()
                    .flatten()
                {
                    out.insert(x.seconds);
                }
            }
        }
        for o in &self.overrides {
            for (.., body) in &o.versions {
                for x in [body.effective_from, body.effective_until]
                    .into_iter()
                    .flatten()
                {
                    out.insert(x.seconds);
                }
            }
        }
        out.into_iter().collect()
    }
}

// --- building a world ---------------------------------------------------------------

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

struct Builder<'a> {
    w: &'a World,
    rng: StdRng,
    /// Two hours from now: validity boundaries are whole days from it.
    r: i64,
    services: Vec<String>,
    model: Model,
    /// (agreement, party) pairs that have an override, parties with a deal.
    overridden: BTreeSet<(String, String)>,
    dealt: BTreeSet<String>,
    next_id: usize,
}

impl Builder<'_> {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{}", self.next_id)
    }

    fn day(&mut self, range: std::ops::RangeInclusive<i64>) -> i64 {
        self.r + self.rng.random_range(range) * DAY
    }

    /// A window from `from`: open-ended, or ending after now.
    fn until(&mut self, from: i64, p_open: f64) -> Option<Timestamp> {
        if self.rng.random_bool(p_open) {
            return None;
        }
        let length = from + self.rng.random_range(30..=400) * DAY;
        let after_now = self.day(1..=100);
        Some(ts(length.max(after_now)))
    }

    fn services_subset(&mut self) -> Vec<String> {
        if self.rng.random_bool(0.25) {
            self.services.clone()
        } else {
            vec![pick(&mut self.rng, &self.services).clone()]
        }
    }

    fn depth(&self, party: &str) -> usize {
        let mut depth = 1;
        let mut next = self.model.party(party).versions.last().unwrap().1.clone();
        while let Some(p) = next {
            depth += 1;
            next = self.model.party(&p).versions.last().unwrap().1.clone();
        }
        depth
    }

    fn has_children(&self, party: &str) -> bool {
        self.model
            .parties
            .iter()
            .any(|p| p.versions.last().unwrap().1.as_deref() == Some(party))
    }

    async fn add_party(&mut self, parent: Option<String>, kind: pb::PartyKind) -> String {
        let id = self.id("p");
        let p = self.w.add_party(&id, kind, parent.as_deref()).await;
        assert_eq!(p.parent, parent.clone().unwrap_or_default());
        self.model.parties.push(MParty {
            name: p.name.clone(),
            kind,
            versions: vec![(t(&p.create_time), parent)],
        });
        p.name
    }

    async fn grow_parties(&mut self) {
        for _ in 0..self.rng.random_range(2..=3) {
            let kind = if self.rng.random_bool(0.5) {
                pb::PartyKind::Customer
            } else {
                pb::PartyKind::InternalUnit
            };
            let root = self.add_party(None, kind).await;
            for _ in 0..self.rng.random_range(0..=2) {
                let child = self.add_party(Some(root.clone()), kind).await;
                if self.rng.random_bool(0.5) {
                    self.add_party(Some(child), kind).await;
                }
            }
        }
    }

    fn sla_objectives(&mut self) -> Vec<pb::Objective> {
        let mut objectives = vec![availability(*pick(&mut self.rng, &[0.99, 0.995, 0.999]))];
        if self.rng.random_bool(0.5) {
            let threshold = *pick(&mut self.rng, &[200.0, 300.0]);
            let target = *pick(&mut self.rng, &[0.95, 0.99]);
            objectives.push(latency(threshold, target));
        }
        objectives
    }

    /// Support, credits, a clause and an exclusion, each perhaps.
    fn extras(&mut self, tag: &str, a: pb::Agreement) -> pb::Agreement {
        let support_minutes = *pick(&mut self.rng, &[30, 60, 120]);
        let cap = *pick(&mut self.rng, &[20.0, 50.0, 60.0]);
        pb::Agreement {
            support: self.rng.random_bool(0.3).then(|| support(support_minutes)),
            credits: self.rng.random_bool(0.3).then(|| credits(cap)),
            clauses: if self.rng.random_bool(0.3) {
                vec![clause(&format!("{tag} terms"))]
            } else {
                vec![]
            },
            exclusions: if self.rng.random_bool(0.2) {
                vec![exclusion(&format!("{tag} freeze"))]
            } else {
                vec![]
            },
            ..a
        }
    }

    /// Tries a SERVICE_LEVEL agreement; one that would overlap another in
    /// force is refused and stays a draft, which resolves nothing.
    async fn try_sla(&mut self) {
        let id = self.id("sla");
        let from = self.day(-300..=100);
        let until = self.until(from, 0.5);
        let services = self.services_subset();
        let objectives = self.sla_objectives();
        let a = pb::Agreement {
            services,
            effective_from: Some(ts(from)),
            effective_until: until,
            ..self.w.sla(objectives)
        };
        let a = self.extras(&id, a);
        let draft = self.w.draft(&id, a).await;
        match self.w.try_publish(&draft.name).await {
            Ok(published) => self.model.agreements.push(MAgreement {
                name: published.name.clone(),
                kind: pb::AgreementKind::ServiceLevel,
                revisions: vec![published],
            }),
            Err(status) if status.code() == Code::FailedPrecondition => {
                assert_reason(&status, "OVERLAPPING_AGREEMENT")
            }
            Err(status) => panic!("publish {id}: {status:?}"),
        }
    }

    async fn add_deal(&mut self, party: String) {
        self.dealt.insert(party.clone());
        let id = self.id("deal");
        let internal = self.model.party(&party).kind == pb::PartyKind::InternalUnit
            && self.rng.random_bool(0.6);
        let from = self.day(-300..=100);
        let until = self.until(from, 0.6);
        let services = self.services_subset();
        let mut objectives = Vec::new();
        if self.rng.random_bool(0.6) {
            objectives.push(availability(*pick(&mut self.rng, &[0.9995, 0.9999])));
        }
        if self.rng.random_bool(0.4) {
            objectives.push(latency(*pick(&mut self.rng, &[100.0, 150.0]), 0.97));
        }
        if objectives.is_empty() || self.rng.random_bool(0.3) {
            objectives.push(ratio("errors", *pick(&mut self.rng, &[0.98, 0.99])));
        }
        let base = if internal {
            self.w.internal(&party, objectives)
        } else {
            self.w.deal(&party, objectives)
        };
        let a = pb::Agreement {
            services,
            effective_from: Some(ts(from)),
            effective_until: until,
            ..base
        };
        let a = self.extras(&id, a);
        let published = self.w.publish(&id, a).await;
        self.model.agreements.push(MAgreement {
            name: published.name.clone(),
            kind: published.kind(),
            revisions: vec![published],
        });
    }

    async fn add_override(&mut self, agreement: usize, party: String) {
        let sla = self.model.agreements[agreement].latest().clone();
        self.overridden.insert((sla.name.clone(), party.clone()));
        let id = self.id("o");
        let from = self.day(-300..=60);
        let until = if self.rng.random_bool(0.4) {
            Some(ts(from + self.rng.random_range(10..=300) * DAY))
        } else {
            None
        };
        let mut patches = Vec::new();
        if self.rng.random_bool(0.6) {
            let mut p = patch_target("availability", *pick(&mut self.rng, &[0.9, 0.995, 0.9999]));
            if self.rng.random_bool(0.3) {
                p.window = Some(rolling(*pick(&mut self.rng, &[7, 14])));
            }
            patches.push(p);
        }
        if sla.objectives.iter().any(|o| o.key == "latency") && self.rng.random_bool(0.5) {
            patches.push(patch_threshold(
                "latency",
                *pick(&mut self.rng, &[150.0, 250.0]),
            ));
        }
        let added = if self.rng.random_bool(0.25) {
            vec![ratio("extra", *pick(&mut self.rng, &[0.9, 0.95]))]
        } else {
            vec![]
        };
        let support_minutes = *pick(&mut self.rng, &[5, 15]);
        let cap = *pick(&mut self.rng, &[75.0, 90.0]);
        let mut o = pb::Override {
            effective_until: until,
            objective_patches: patches,
            added_objectives: added,
            support: self.rng.random_bool(0.2).then(|| support(support_minutes)),
            credits: self.rng.random_bool(0.2).then(|| credits(cap)),
            ..ovr(&party, from)
        };
        if o.objective_patches.is_empty() && o.added_objectives.is_empty() {
            o.objective_patches = vec![patch_window("availability", 1)];
        }
        let created = self.w.add_override(&sla.name, &id, o).await;
        self.model.overrides.push(MOverride {
            name: created.name.clone(),
            agreement: sla.name,
            versions: vec![(t(&created.update_time), None, created)],
        });
    }

    fn slas(&self, open: bool) -> Vec<usize> {
        (0..self.model.agreements.len())
            .filter(|&i| {
                let a = &self.model.agreements[i];
                a.kind == pb::AgreementKind::ServiceLevel && (!open || !a.terminated())
            })
            .collect()
    }

    fn deals(&self) -> Vec<usize> {
        (0..self.model.agreements.len())
            .filter(|&i| self.model.agreements[i].kind != pb::AgreementKind::ServiceLevel)
            .collect()
    }

    fn party_names(&self) -> Vec<String> {
        self.model.parties.iter().map(|p| p.name.clone()).collect()
    }

    async fn maybe_overrides(&mut self, p: f64) {
        for i in self.slas(true) {
            for party in self.party_names() {
                let name = self.model.agreements[i].name.clone();
                if !self.overridden.contains(&(name, party.clone())) && self.rng.random_bool(p) {
                    self.add_override(i, party).await;
                }
            }
        }
    }

    async fn maybe_deals(&mut self, p: f64) {
        for party in self.party_names() {
            if !self.dealt.contains(&party) && self.rng.random_bool(p) {
                self.add_deal(party).await;
            }
        }
    }

    /// An update that changes nothing writes no revision.
    fn record_revision(&mut self, i: usize, revision: pb::Agreement) {
        let latest = self.model.agreements[i].latest();
        if revision.revision_id == latest.revision_id {
            assert_eq!(&revision, latest, "the same revision, the same agreement");
        } else {
            self.model.agreements[i].revisions.push(revision);
        }
    }

    /// Phase A: what exists at the first instant.
    async fn create(&mut self) {
        self.grow_parties().await;
        for _ in 0..self.rng.random_range(1..=4) {
            self.try_sla().await;
        }
        self.maybe_deals(0.35).await;
        self.maybe_overrides(0.4).await;
    }

    /// Phase B: changes between the two instants.
    async fn change(&mut self) {
        for i in self.slas(true) {
            if self.rng.random_bool(0.35) {
                let mut objectives = self.model.agreements[i].latest().objectives.clone();
                objectives[0].target = *pick(&mut self.rng, &[0.98, 0.9991, 0.9997]);
                let name = self.model.agreements[i].name.clone();
                let revision = self
                    .w
                    .update(
                        &name,
                        pb::Agreement {
                            objectives,
                            ..Default::default()
                        },
                        &["objectives"],
                    )
                    .await;
                self.record_revision(i, revision);
            }
        }
        for i in self.deals() {
            if self.rng.random_bool(0.3) {
                let name = self.model.agreements[i].name.clone();
                let (fields, path) = if self.rng.random_bool(0.5) {
                    let services = self.services_subset();
                    (
                        pb::Agreement {
                            services,
                            ..Default::default()
                        },
                        "services",
                    )
                } else {
                    let mut objectives = self.model.agreements[i].latest().objectives.clone();
                    objectives[0].target = *pick(&mut self.rng, &[0.91, 0.92]);
                    (
                        pb::Agreement {
                            objectives,
                            ..Default::default()
                        },
                        "objectives",
                    )
                };
                let revision = self.w.update(&name, fields, &[path]).await;
                self.record_revision(i, revision);
            }
        }
        for i in 0..self.model.overrides.len() {
            let Some(current) = self.model.overrides[i].current().cloned() else {
                continue;
            };
            let roll: f64 = self.rng.random();
            if roll < 0.15 {
                self.w.delete_override(&current.name).await;
                self.model.overrides[i].close(nanos(&now_ts()));
            } else if roll < 0.45 {
                let from = t(&current.effective_from) / 1_000_000_000;
                let (fields, path) = if self.rng.random_bool(0.5) {
                    let until = if self.rng.random_bool(0.3) {
                        None
                    } else {
                        Some(ts(from as i64 + self.rng.random_range(5..=200) * DAY))
                    };
                    (
                        pb::Override {
                            effective_until: until,
                            ..Default::default()
                        },
                        "effective_until",
                    )
                } else {
                    let target = *pick(&mut self.rng, &[0.93, 0.94]);
                    (
                        pb::Override {
                            objective_patches: vec![patch_target("availability", target)],
                            ..Default::default()
                        },
                        "objective_patches",
                    )
                };
                let updated = self.w.update_override(&current.name, fields, &[path]).await;
                let at = t(&updated.update_time);
                self.model.overrides[i].close(at);
                self.model.overrides[i].versions.push((at, None, updated));
            }
        }
        self.maybe_move().await;
        for i in self.slas(true).into_iter().chain(self.deals()) {
            if self.model.agreements[i].terminated() || !self.rng.random_bool(0.2) {
                continue;
            }
            let from = self.model.agreements[i]
                .latest()
                .effective_from
                .unwrap()
                .seconds;
            let at = self.day(-100..=300).max(from);
            let name = self.model.agreements[i].name.clone();
            let revision = self.w.terminate(&name, at).await;
            self.record_revision(i, revision);
        }
    }

    /// Moves a party without children under another (or to the top),
    /// keeping trees at most three deep.
    async fn maybe_move(&mut self) {
        if !self.rng.random_bool(0.6) {
            return;
        }
        let leaves: Vec<String> = self
            .party_names()
            .into_iter()
            .filter(|p| !self.has_children(p))
            .collect();
        let party = pick(&mut self.rng, &leaves).clone();
        let mut parents: Vec<Option<String>> = self
            .party_names()
            .into_iter()
            .filter(|p| *p != party && self.depth(p) <= 2)
            .map(Some)
            .collect();
        parents.push(None);
        let parent = pick(&mut self.rng, &parents).clone();
        let moved = self.w.reparent(&party, parent.as_deref()).await;
        let i = self
            .model
            .parties
            .iter()
            .position(|p| p.name == party)
            .unwrap();
        self.model.parties[i]
            .versions
            .push((t(&moved.update_time), parent));
    }

    /// Phase C: what is new after the second instant.
    async fn extend(&mut self) {
        self.try_sla().await;
        self.maybe_deals(0.15).await;
        self.maybe_overrides(0.1).await;
        if self.rng.random_bool(0.5) {
            let parents: Vec<String> = self
                .party_names()
                .into_iter()
                .filter(|p| self.depth(p) <= 2)
                .collect();
            let parent = pick(&mut self.rng, &parents).clone();
            let kind = self.model.party(&parent).kind;
            self.add_party(Some(parent), kind).await;
        }
        if self.rng.random_bool(0.3) {
            self.maybe_move().await;
        }
    }
}

// --- asking -------------------------------------------------------------------------

fn describe(as_of: Option<Timestamp>, known_at: Option<Timestamp>) -> String {
    format!(
        "as_of {:?}, known_at {:?}",
        as_of.map(|t| (t.seconds, t.nanos)),
        known_at.map(|t| (t.seconds, t.nanos))
    )
}

/// Compares an answer with the model's; the version of an entitlement.
fn compare(
    got: &Result<pb::Entitlement, Status>,
    expected: &Result<View, String>,
) -> Result<Option<String>, String> {
    match (got, expected) {
        (Ok(e), Ok(view)) => {
            let got = view_of(e);
            if &got == view {
                Ok(Some(e.version.clone()))
            } else {
                Err(format!("expected {view:#?}\ngot {got:#?}"))
            }
        }
        (Err(status), Err(name)) => {
            if status.code() == Code::NotFound && status.message() == format!("{name} not found") {
                Ok(None)
            } else {
                Err(format!("expected NOT_FOUND of {name}, got {status:?}"))
            }
        }
        (Ok(e), Err(name)) => Err(format!(
            "expected NOT_FOUND of {name}, got {:#?}",
            view_of(e)
        )),
        (Err(status), Ok(view)) => Err(format!("expected {view:#?}\ngot {status:?}")),
    }
}

/// How often the answers compared show each feature, to see the worlds
/// are not all alike.
#[derive(Debug, Default)]
struct Coverage {
    not_found: usize,
    entitled: usize,
    with_override: usize,
    with_patch: usize,
    with_deal: usize,
    with_clause: usize,
    versions: usize,
}

impl Coverage {
    fn count(&mut self, expected: &Result<View, String>) {
        let Ok(view) = expected else {
            self.not_found += 1;
            return;
        };
        self.entitled += 1;
        let sources: Vec<&String> = view
            .objectives
            .values()
            .map(|o| &o.src)
            .chain(view.support.iter().map(|s| &s.1))
            .chain(view.credits.iter().map(|c| &c.1))
            .collect();
        let any = |f: &dyn Fn(&str) -> bool| sources.iter().any(|s| f(s));
        self.with_override += usize::from(
            any(&|s| s.contains("/overrides/"))
                || view.objectives.values().any(|o| !o.patched.is_empty()),
        );
        self.with_patch += usize::from(view.objectives.values().any(|o| !o.patched.is_empty()));
        self.with_deal += usize::from(any(&|s| s.contains("/agreements/deal")));
        self.with_clause += usize::from(!view.clauses.is_empty());
    }
}

/// Equal results, equal versions; different results, different versions.
#[derive(Default)]
struct Versions {
    by_view: HashMap<String, String>,
    by_version: HashMap<String, String>,
}

impl Versions {
    fn record(&mut self, e: &pb::Entitlement, context: &str) {
        let view = format!("{:?}", view_of(e));
        let by_view = self
            .by_view
            .entry(view.clone())
            .or_insert(e.version.clone());
        assert_eq!(
            *by_view, e.version,
            "{context}: the same terms, another version: {view}"
        );
        let by_version = self
            .by_version
            .entry(e.version.clone())
            .or_insert(view.clone());
        assert_eq!(
            *by_version, view,
            "{context}: different terms, version {}",
            e.version
        );
    }
}

fn fail(seed: u64, world: usize, what: String) -> ! {
    panic!("{what}\n(seed {seed}, world {world}: replay with {SEED_VAR}={seed})")
}

async fn one_world(
    s: &TestServer,
    seed: u64,
    world: usize,
    rng: StdRng,
    coverage: &mut Coverage,
) -> usize {
    let w = World::new(s, &format!("w{world}")).await;
    let ledger = w.service("ledger").await;
    let mut b = Builder {
        w: &w,
        rng,
        r: horizon(),
        services: vec![w.payments.clone(), ledger],
        model: Model::default(),
        overridden: BTreeSet::new(),
        dealt: BTreeSet::new(),
        next_id: 0,
    };
    b.create().await;
    // Answers now, which the server may cache; what follows must invalidate them.
    let parties = b.party_names();
    for party in parties.iter().take(4) {
        for service in &b.services {
            let now = nanos(&now_ts());
            let expected = b.model.resolve(party, service, now, now);
            let got = w.resolve(party, service, None, None).await;
            if let Err(why) = compare(&got, &expected) {
                fail(
                    seed,
                    world,
                    format!("{party} on {service} now, before the changes: {why}"),
                );
            }
        }
    }
    let k1 = mark().await;
    b.change().await;
    let k2 = mark().await;
    b.extend().await;

    let mut parties = b.party_names();
    parties.push(w.name("parties", "ghost"));
    let boundaries = b.model.boundaries();
    let mut versions = Versions::default();
    let mut asked = 0;
    let rng = &mut b.rng;
    for n in 0..QUERIES {
        let consumer = if rng.random_bool(0.05) {
            parties.last().unwrap().clone()
        } else {
            pick(rng, &parties[..parties.len() - 1]).clone()
        };
        let service = pick(rng, &b.services).clone();
        let known_at = *pick(rng, &[Some(k1), Some(k2), None]);
        let as_of = match rng.random_range(0..10) {
            0 | 1 => None,
            2..=4 => {
                let at = if boundaries.is_empty() {
                    b.r
                } else {
                    *pick(rng, &boundaries)
                };
                Some(ts(if rng.random_bool(0.5) { at } else { at - 1 }))
            }
            _ => Some(ts(b.r + rng.random_range(-320 * DAY..=400 * DAY))),
        };
        let now = now_ts();
        let expected = b.model.resolve(
            &consumer,
            &service,
            nanos(&as_of.unwrap_or(now)),
            nanos(&known_at.unwrap_or(now)),
        );
        let got = w.resolve(&consumer, &service, as_of, known_at).await;
        let context = format!(
            "query {n}: {consumer} on {service}, {}",
            describe(as_of, known_at)
        );
        if let Err(why) = compare(&got, &expected) {
            let explained = w.explain(&consumer, &service, as_of, known_at).await;
            fail(
                seed,
                world,
                format!("{context}: {why}\nthe server explains: {explained:#?}"),
            );
        }
        asked += 1;
        coverage.count(&expected);
        if let Ok(e) = &got {
            versions.record(e, &context);
            if known_at.is_none() {
                check_provenance(&w, e).await;
            }
        }
        if n % 4 == 0 {
            let x = w.explain(&consumer, &service, as_of, known_at).await;
            match (&x, &got) {
                (Ok(x), Ok(e)) => {
                    let xe = x.entitlement.as_ref().unwrap_or_else(|| {
                        fail(
                            seed,
                            world,
                            format!("{context}: explained without entitlement"),
                        )
                    });
                    assert_eq!(view_of(xe), view_of(e), "{context}: explained as resolved");
                    assert_eq!(xe.version, e.version, "{context}");
                }
                (Ok(x), Err(status)) => {
                    assert!(x.entitlement.is_none(), "{context}: {x:#?}");
                    assert!(status.message().starts_with("entitlement of"), "{context}");
                }
                (Err(xs), Err(status)) => assert_eq!(xs.message(), status.message(), "{context}"),
                (Err(xs), Ok(_)) => fail(seed, world, format!("{context}: explain failed: {xs:?}")),
            }
        }
    }
    // Every pair at once, at one instant.
    let known_at = *pick(rng, &[Some(k1), Some(k2), None]);
    let as_of = ts(b.r + rng.random_range(-200 * DAY..=200 * DAY));
    let pairs: Vec<(&str, &str)> = parties
        .iter()
        .flat_map(|p| b.services.iter().map(move |s| (p.as_str(), s.as_str())))
        .collect();
    let now = now_ts();
    let results = w
        .batch(&pairs, Some(as_of), known_at)
        .await
        .expect("the batch");
    assert_eq!(results.len(), pairs.len());
    for ((consumer, service), result) in pairs.iter().zip(results) {
        let expected = b.model.resolve(
            consumer,
            service,
            nanos(&as_of),
            nanos(&known_at.unwrap_or(now)),
        );
        let got = match result.result {
            Some(pb::entitlement_result::Result::Entitlement(e)) => Ok(e),
            Some(pb::entitlement_result::Result::Error(status)) => Err(rpc_status(&status)),
            None => fail(
                seed,
                world,
                format!("{consumer} on {service}: an empty batch result"),
            ),
        };
        let context = format!(
            "batch: {consumer} on {service}, {}",
            describe(Some(as_of), known_at)
        );
        if let Err(why) = compare(&got, &expected) {
            fail(seed, world, format!("{context}: {why}"));
        }
        if let Ok(e) = &got {
            versions.record(e, &context);
        }
        coverage.count(&expected);
        asked += 1;
    }
    coverage.versions += versions.by_version.len();
    asked
}

async fn resolution_matches_the_reference_model(s: TestServer) {
    let seed: u64 = match std::env::var(SEED_VAR) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_VAR}={v} is not a u64")),
        Err(_) => rand::random(),
    };
    eprintln!("entitlement model: seed {seed} (replay with {SEED_VAR}={seed})");
    let started = std::time::Instant::now();
    let mut asked = 0;
    let mut coverage = Coverage::default();
    for world in 0..WORLDS {
        let rng = StdRng::seed_from_u64(seed.wrapping_add(world as u64));
        asked += one_world(&s, seed, world, rng, &mut coverage).await;
    }
    eprintln!(
        "entitlement model: {WORLDS} worlds, {asked} answers compared in {:?}: {coverage:?}",
        started.elapsed()
    );
    assert!(
        coverage.entitled > asked / 4 && coverage.not_found > 0 && coverage.with_override > 0,
        "the worlds are too alike: {coverage:?}"
    );
}

on_both_backends!(resolution_matches_the_reference_model);
