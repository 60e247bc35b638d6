//! What an entitlement says, in a form to compare: each value with the layer
//! it came from (`View`), and the check that every provenance names a layer
//! that exists and holds that value.

use std::collections::BTreeMap;

use accord::proto::v1 as pb;

use super::clock::DAY;
use super::world::World;

/// A provenance as `{agreement}@{revision}`, with `+{override}` for a value
/// from an override.
pub fn src(p: Option<&pb::Provenance>) -> String {
    let p = p.expect("every value has a provenance");
    if p.r#override.is_empty() {
        format!("{}@{}", p.agreement, p.revision_id)
    } else {
        format!("{}@{}+{}", p.agreement, p.revision_id, p.r#override)
    }
}

/// The provenance of a value from this revision of an agreement.
pub fn at(a: &pb::Agreement) -> String {
    format!("{}@{}", a.name, a.revision_id)
}

/// The provenance of a value from override `o` of this revision.
pub fn via(a: &pb::Agreement, o: &pb::Override) -> String {
    format!("{}+{}", at(a), o.name)
}

pub fn window_days(w: Option<&pb::Window>) -> i64 {
    match w.and_then(|w| w.window.as_ref()) {
        Some(pb::window::Window::Rolling(r)) => r.duration.map(|d| d.seconds / DAY).unwrap_or(0),
        Some(pb::window::Window::Calendar(_)) => -1,
        None => 0,
    }
}

pub fn support_minutes(s: &pb::SupportTerms) -> i64 {
    s.priorities
        .first()
        .and_then(|p| p.response)
        .map(|d| d.seconds / 60)
        .unwrap_or(0)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Obj {
    pub target: f64,
    pub threshold: Option<f64>,
    pub window_days: i64,
    pub src: String,
    /// (field, provenance), sorted.
    pub patched: Vec<(String, String)>,
}

/// An objective defined by `src` with a 30-day window.
pub fn obj(target: f64, src: String) -> Obj {
    Obj {
        target,
        threshold: None,
        window_days: 30,
        src,
        patched: Vec::new(),
    }
}

impl Obj {
    pub fn threshold(mut self, threshold: f64) -> Self {
        self.threshold = Some(threshold);
        self
    }

    pub fn window(mut self, days: i64) -> Self {
        self.window_days = days;
        self
    }

    pub fn patched(mut self, field: &str, src: String) -> Self {
        self.patched.retain(|(f, _)| f != field);
        self.patched.push((field.into(), src));
        self.patched.sort();
        self
    }
}

/// The terms of an entitlement, each with where it came from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct View {
    pub objectives: BTreeMap<String, Obj>,
    /// P1 response in minutes.
    pub support: Option<(i64, String)>,
    /// Cap percent.
    pub credits: Option<(f64, String)>,
    /// (reason, provenance), in order.
    pub exclusions: Vec<(String, String)>,
    /// (title, provenance), in order.
    pub clauses: Vec<(String, String)>,
}

impl View {
    pub fn with(mut self, key: &str, o: Obj) -> Self {
        self.objectives.insert(key.into(), o);
        self
    }

    pub fn support(mut self, minutes: i64, src: String) -> Self {
        self.support = Some((minutes, src));
        self
    }

    pub fn credits(mut self, cap: f64, src: String) -> Self {
        self.credits = Some((cap, src));
        self
    }

    pub fn exclusion(mut self, reason: &str, src: String) -> Self {
        self.exclusions.push((reason.into(), src));
        self
    }

    pub fn clause(mut self, title: &str, src: String) -> Self {
        self.clauses.push((title.into(), src));
        self
    }
}

pub fn view_of(e: &pb::Entitlement) -> View {
    let mut view = View::default();
    for eo in &e.objectives {
        let o = eo.objective.as_ref().expect("objective");
        let mut patched: Vec<(String, String)> = eo
            .patched_fields
            .iter()
            .map(|f| (f.field.clone(), src(f.provenance.as_ref())))
            .collect();
        patched.sort();
        let previous = view.objectives.insert(
            o.key.clone(),
            Obj {
                target: o.target,
                threshold: o.threshold,
                window_days: window_days(o.window.as_ref()),
                src: src(eo.provenance.as_ref()),
                patched,
            },
        );
        assert!(
            previous.is_none(),
            "objective {} listed twice: {e:#?}",
            o.key
        );
    }
    view.support = e.support.as_ref().map(|s| {
        (
            support_minutes(s.support.as_ref().expect("support terms")),
            src(s.provenance.as_ref()),
        )
    });
    view.credits = e.credits.as_ref().map(|c| {
        (
            c.credits
                .as_ref()
                .and_then(|c| c.cap_percent)
                .expect("a cap"),
            src(c.provenance.as_ref()),
        )
    });
    view.exclusions = e
        .exclusions
        .iter()
        .map(|x| {
            (
                x.exclusion.as_ref().expect("exclusion").reason.clone(),
                src(x.provenance.as_ref()),
            )
        })
        .collect();
    view.clauses = e
        .clauses
        .iter()
        .map(|c| {
            (
                c.clause.as_ref().expect("clause").title.clone(),
                src(c.provenance.as_ref()),
            )
        })
        .collect();
    view
}

// --- provenance -----------------------------------------------------------------------

/// The revision a provenance names, which must exist and be of its agreement.
async fn named_revision(w: &World, p: &pb::Provenance) -> pb::Agreement {
    let revision = w
        .agreements()
        .get_agreement_revision(pb::GetAgreementRevisionRequest {
            name: format!("{}/revisions/{}", p.agreement, p.revision_id),
        })
        .await
        .unwrap_or_else(|e| panic!("{p:?} names no revision: {e:?}"))
        .into_inner();
    assert_eq!(revision.revision_id, p.revision_id);
    let snapshot = revision.agreement.expect("a revision holds its agreement");
    assert_eq!(snapshot.name, p.agreement, "{p:?}");
    snapshot
}

/// The override a provenance names, which must exist and be of its agreement.
async fn named_override(w: &World, p: &pb::Provenance) -> pb::Override {
    assert!(
        p.r#override
            .starts_with(&format!("{}/overrides/", p.agreement)),
        "{p:?}: the override is not one of the agreement's"
    );
    w.agreements()
        .get_override(pb::GetOverrideRequest {
            name: p.r#override.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("{p:?} names no override: {e:?}"))
        .into_inner()
}

/// Every value of `e` names a layer that exists and holds that value: an
/// objective equals its defining layer's but for the fields patched, each
/// equal to the patch of the override it names; support, credits, exclusions
/// and clauses are those of the layer named. Overrides are read as they are
/// now: call this for entitlements resolved at the current transaction time.
pub async fn check_provenance(w: &World, e: &pb::Entitlement) {
    for eo in &e.objectives {
        let o = eo.objective.as_ref().expect("objective");
        let p = eo.provenance.as_ref().expect("provenance");
        let base_revision = named_revision(w, p).await;
        let defining = if p.r#override.is_empty() {
            base_revision
                .objectives
                .iter()
                .find(|d| d.key == o.key)
                .cloned()
                .unwrap_or_else(|| panic!("{p:?} has no objective `{}`", o.key))
        } else {
            named_override(w, p)
                .await
                .added_objectives
                .iter()
                .find(|d| d.key == o.key)
                .cloned()
                .unwrap_or_else(|| panic!("{p:?} adds no objective `{}`", o.key))
        };
        let mut unpatched = o.clone();
        for field in &eo.patched_fields {
            let fp = field
                .provenance
                .as_ref()
                .expect("a patched field's provenance");
            assert!(
                !fp.r#override.is_empty(),
                "`{}` of `{}` was patched by no override: {fp:?}",
                field.field,
                o.key
            );
            named_revision(w, fp).await;
            let ov = named_override(w, fp).await;
            let patch = ov
                .objective_patches
                .iter()
                .find(|x| x.key == o.key)
                .unwrap_or_else(|| panic!("{} has no patch of `{}`", ov.name, o.key));
            let context = format!("`{}` of `{}` from {}", field.field, o.key, ov.name);
            match field.field.as_str() {
                "target" => {
                    assert_eq!(Some(o.target), patch.target, "{context}");
                    unpatched.target = defining.target;
                }
                "threshold" => {
                    assert_eq!(o.threshold, patch.threshold, "{context}");
                    unpatched.threshold = defining.threshold;
                }
                "window" => {
                    assert_eq!(o.window, patch.window, "{context}");
                    unpatched.window = defining.window.clone();
                }
                other => panic!("unknown patched field `{other}`"),
            }
        }
        assert_eq!(
            unpatched, defining,
            "`{}`: the fields not patched are those of {p:?}",
            o.key
        );
    }
    if let Some(s) = &e.support {
        let p = s.provenance.as_ref().expect("provenance");
        let layer = if p.r#override.is_empty() {
            named_revision(w, p).await.support
        } else {
            named_revision(w, p).await;
            named_override(w, p).await.support
        };
        assert_eq!(layer.as_ref(), s.support.as_ref(), "support from {p:?}");
    }
    if let Some(c) = &e.credits {
        let p = c.provenance.as_ref().expect("provenance");
        let layer = if p.r#override.is_empty() {
            named_revision(w, p).await.credits
        } else {
            named_revision(w, p).await;
            named_override(w, p).await.credits
        };
        assert_eq!(layer.as_ref(), c.credits.as_ref(), "credits from {p:?}");
    }
    for x in &e.exclusions {
        let p = x.provenance.as_ref().expect("provenance");
        assert!(
            p.r#override.is_empty(),
            "overrides have no exclusions: {p:?}"
        );
        let layer = named_revision(w, p).await;
        let value = x.exclusion.as_ref().expect("exclusion");
        assert!(
            layer.exclusions.contains(value),
            "{value:?} is not in {p:?}"
        );
    }
    for c in &e.clauses {
        let p = c.provenance.as_ref().expect("provenance");
        assert!(p.r#override.is_empty(), "overrides have no clauses: {p:?}");
        let layer = named_revision(w, p).await;
        let value = c.clause.as_ref().expect("clause");
        assert!(layer.clauses.contains(value), "{value:?} is not in {p:?}");
    }
}
