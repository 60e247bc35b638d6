//! Overrides: one consumer's changes to a SERVICE_LEVEL agreement — objective
//! patches by key, added objectives, and replacement support terms and credits,
//! each with its own validity.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::agreement::Agreement;
use crate::domain::fields::{
    Labels, Meta, updatable_fields, validate_count, validate_display_name, validate_labels,
};
use crate::domain::names::{Id, override_name};
use crate::domain::terms::{
    CreditSchedule, MAX_OBJECTIVES, Objective, ObjectiveKind, SupportTerms, Window,
    is_unit_fraction, validate_credits, validate_objective_key, validate_objectives,
    validate_support, validate_window,
};
use crate::error::Violations;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectivePatch {
    pub key: String,
    pub target: Option<f64>,
    pub threshold: Option<f64>,
    pub window: Option<Window>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Override {
    pub tenant: Id,
    pub agreement: Id,
    pub id: Id,
    pub display_name: String,
    pub consumer: Id,
    pub effective_from: DateTime<Utc>,
    pub effective_until: Option<DateTime<Utc>>,
    pub objective_patches: Vec<ObjectivePatch>,
    pub added_objectives: Vec<Objective>,
    pub support: Option<SupportTerms>,
    pub credits: Option<CreditSchedule>,
    pub labels: Labels,
    pub meta: Meta,
}

updatable_fields! {
    /// The client-settable fields of an override.
    pub struct OverrideFields for Override {
        display_name: String,
        consumer: Id,
        effective_from: DateTime<Utc>,
        effective_until: Option<DateTime<Utc>>,
        objective_patches: Vec<ObjectivePatch>,
        added_objectives: Vec<Objective>,
        support: Option<SupportTerms>,
        credits: Option<CreditSchedule>,
        labels: Labels,
    }
    output_only: ["name", "etag", "create_time", "update_time"]
}

impl Override {
    /// At most one patch per objective of the agreement.
    pub const MAX_PATCHES: usize = MAX_OBJECTIVES;

    /// A new override of `agreement`, checked against it (`validate`);
    /// `consumer` and `effective_from` are required.
    pub fn new(
        agreement: &Agreement,
        id: Id,
        fields: OverrideFields,
        now: DateTime<Utc>,
        v: &mut Violations,
        prefix: &str,
    ) -> Option<Self> {
        let mut missing = |field: &str| v.add(format!("{prefix}.{field}"), "is required");
        let consumer = fields.consumer.clone().or_else(|| {
            missing("consumer");
            None
        });
        let from = fields.effective_from.or_else(|| {
            missing("effective_from");
            None
        });
        let (consumer, effective_from) = (consumer?, from?);
        let mut o = Override {
            tenant: agreement.tenant.clone(),
            agreement: agreement.id.clone(),
            id,
            display_name: String::new(),
            consumer,
            effective_from,
            effective_until: None,
            objective_patches: Vec::new(),
            added_objectives: Vec::new(),
            support: None,
            credits: None,
            labels: Labels::new(),
            meta: Meta::new(now),
        };
        o.apply(fields);
        o.validate(agreement, v, prefix);
        Some(o)
    }

    pub fn name(&self) -> String {
        override_name(&self.tenant, &self.agreement, &self.id)
    }

    /// The rules an override must satisfy against the agreement it patches.
    pub fn validate(&self, agreement: &Agreement, v: &mut Violations, prefix: &str) {
        let field = |name: &str| format!("{prefix}.{name}");
        validate_display_name(v, &field("display_name"), &self.display_name);
        if let Some(until) = self.effective_until
            && until <= self.effective_from
        {
            v.add(field("effective_until"), "must be after effective_from");
        }
        let patches_fit = validate_count(
            v,
            &field("objective_patches"),
            self.objective_patches.len(),
            Self::MAX_PATCHES,
        );
        let mut patched = BTreeSet::new();
        for (i, p) in self
            .objective_patches
            .iter()
            .enumerate()
            .filter(|_| patches_fit)
        {
            let f = format!("{prefix}.objective_patches[{i}]");
            if !validate_objective_key(v, &format!("{f}.key"), &p.key) {
                continue;
            }
            let Some(base) = agreement.objectives.iter().find(|o| o.key == p.key) else {
                v.add(
                    format!("{f}.key"),
                    format!("the agreement has no objective `{}`", p.key),
                );
                continue;
            };
            if !patched.insert(p.key.as_str()) {
                v.add(format!("{f}.key"), format!("`{}` is patched twice", p.key));
            }
            if p.target.is_none() && p.threshold.is_none() && p.window.is_none() {
                v.add(
                    f.clone(),
                    "changes nothing: set target, threshold or window",
                );
            }
            if let Some(t) = p.target
                && !is_unit_fraction(t)
            {
                v.add(format!("{f}.target"), "must be in (0, 1]");
            }
            if let Some(t) = p.threshold {
                if matches!(base.kind, ObjectiveKind::Ratio | ObjectiveKind::Uptime) {
                    v.add(
                        format!("{f}.threshold"),
                        "applies only to THRESHOLD and TIMESLICE objectives",
                    );
                } else if !t.is_finite() || t <= 0.0 {
                    v.add(format!("{f}.threshold"), "must be positive");
                }
            }
            if let Some(w) = &p.window {
                validate_window(v, &format!("{f}.window"), w);
            }
        }
        let taken: BTreeSet<&str> = agreement
            .objectives
            .iter()
            .map(|o| o.key.as_str())
            .collect();
        validate_objectives(
            v,
            &field("added_objectives"),
            &self.added_objectives,
            &taken,
        );
        if let Some(s) = &self.support {
            validate_support(v, &field("support"), s);
        }
        if let Some(c) = &self.credits {
            validate_credits(v, &field("credits"), c);
        }
        validate_labels(v, &field("labels"), &self.labels);
    }
}
