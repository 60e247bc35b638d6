//! What every resource shares: metadata with the etag (AIP-154), labels, and
//! update masks resolved against each resource's list of updatable fields
//! (AIP-134).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, Violations};

pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub etag: String,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl Meta {
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            etag: new_etag(),
            create_time: now,
            update_time: now,
        }
    }

    /// Records a write: a new etag and update time.
    pub fn touch(&mut self, now: DateTime<Utc>) {
        self.etag = new_etag();
        self.update_time = now;
    }

    /// An empty etag skips the check, as AIP-154 allows.
    pub fn check_etag(&self, given: &str, name: &str) -> Result<()> {
        if given.is_empty() || given == self.etag {
            Ok(())
        } else {
            Err(Error::EtagMismatch(name.to_string()))
        }
    }
}

fn new_etag() -> String {
    format!("{:016x}", rand::rng().random::<u64>())
}

/// Label keys are `[a-z][a-z0-9_.-]{0,62}`, values at most 63 characters of
/// `[a-z0-9_.-]`, as in Kubernetes and Google Cloud, so filters stay simple.
pub fn validate_labels(v: &mut Violations, field: &str, labels: &Labels) {
    let key_ok = |k: &str| {
        let b = k.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_lowercase()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_.-".contains(c))
    };
    let value_ok = |s: &str| {
        s.len() <= 63
            && s.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_.-".contains(&c))
    };
    for (k, value) in labels {
        if !key_ok(k) {
            v.add(
                format!("{field}.{k}"),
                "label keys are [a-z][a-z0-9_.-]{0,62}",
            );
        } else if !value_ok(value) {
            v.add(
                format!("{field}.{k}"),
                "label values are at most 63 of [a-z0-9_.-]",
            );
        }
    }
}

/// Annotations carry free text, bounded so that one resource stays small.
pub fn validate_annotations(v: &mut Violations, field: &str, annotations: &Labels) {
    let total: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > 64 * 1024 {
        v.add(field, "must total at most 64 KiB");
    }
    for k in annotations.keys() {
        if k.is_empty() || k.len() > 253 {
            v.add(format!("{field}.{k}"), "keys are 1 to 253 characters");
        }
    }
}

/// Display names and descriptions: optional, bounded.
pub fn validate_text(v: &mut Violations, field: &str, text: &str, max: usize) {
    if text.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
    }
}

/// Resolves an update mask into the updatable paths it names. `*` means every
/// updatable path; output-only paths are ignored (AIP-203); any other path is
/// INVALID_ARGUMENT. An empty mask must be resolved by the caller from the
/// fields the client set.
pub fn resolve_mask(
    paths: &[String],
    updatable: &'static [&'static str],
    output_only: &[&str],
) -> Result<Vec<&'static str>> {
    let mut v = Violations::new();
    let mut resolved: Vec<&'static str> = Vec::new();
    for path in paths {
        if path == "*" {
            return Ok(updatable.to_vec());
        }
        match updatable.iter().find(|u| **u == path.as_str()) {
            Some(u) if !resolved.contains(u) => resolved.push(u),
            Some(_) => {}
            None if output_only.contains(&path.as_str()) => {}
            None => v.add(
                "update_mask",
                format!(
                    "unknown path `{path}`: updatable paths are {}",
                    updatable.join(", ")
                ),
            ),
        }
    }
    v.into_result()?;
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPDATABLE: &[&str] = &["display_name", "labels"];

    #[test]
    fn masks_resolve_star_and_reject_unknown_paths() {
        assert_eq!(
            resolve_mask(&["*".into()], UPDATABLE, &[]).unwrap(),
            UPDATABLE
        );
        assert_eq!(
            resolve_mask(&["labels".into(), "etag".into()], UPDATABLE, &["etag"]).unwrap(),
            ["labels"]
        );
        let err = resolve_mask(&["colour".into()], UPDATABLE, &[]).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(v) if v[0].field == "update_mask"));
    }

    #[test]
    fn etags_are_checked_unless_empty() {
        let meta = Meta::new(Utc::now());
        assert!(meta.check_etag("", "x").is_ok());
        assert!(meta.check_etag(&meta.etag.clone(), "x").is_ok());
        assert!(matches!(
            meta.check_etag("stale", "x"),
            Err(Error::EtagMismatch(_))
        ));
    }
}
