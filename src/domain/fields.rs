//! What every resource shares: metadata with the etag (AIP-154), labels,
//! annotations, display names, the size limits of text and lists, and update
//! masks resolved against each resource's list of updatable fields (AIP-134).
//!
//! Limits on text count characters (Unicode scalar values), as users do; a
//! character takes one to four bytes. docs/api.md lists every limit.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldViolation, Precondition, Result, Violations};

pub type Labels = BTreeMap<String, String>;

/// The display name of every resource and objective.
pub const MAX_DISPLAY_NAME_CHARS: usize = 200;
/// Labels per resource; a key or value is at most `MAX_LABEL_CHARS`.
pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL_CHARS: usize = 63;
/// Annotations per resource, the length of a key, and of all keys and values
/// together.
pub const MAX_ANNOTATIONS: usize = 64;
pub const MAX_ANNOTATION_KEY_CHARS: usize = 253;
pub const MAX_ANNOTATIONS_CHARS: usize = 65_536;
/// Paths in one update mask (each updatable field once is far fewer), and the
/// length of one.
pub const MAX_MASK_PATHS: usize = 64;
pub const MAX_MASK_PATH_CHARS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub etag: String,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl Meta {
    /// The longest etag a request may carry; the server's are 16 characters.
    pub const MAX_ETAG_CHARS: usize = 64;

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

/// Runs `validate` and reports every violation it finds, at once.
pub fn check(validate: impl FnOnce(&mut Violations)) -> Result<()> {
    let mut v = Violations::new();
    validate(&mut v);
    v.into_result()
}

/// What `make` made of a request's fields, or every violation it found
/// (`make` makes nothing only when it finds one).
pub fn made<T>(make: impl FnOnce(&mut Violations) -> Option<T>) -> Result<T> {
    let mut made = None;
    check(|v| made = make(v))?;
    Ok(made.expect("nothing is made without a violation"))
}

/// Declares what a client may set on a resource, once: the `Fields` struct a
/// create or update carries (`None` leaves a field as it is), the paths an
/// update mask may name (`PATHS`, the API's field names) beside those it may
/// name but not change (`OUTPUT_ONLY`), and the resource's `apply`.
macro_rules! updatable_fields {
    (
        $(#[$meta:meta])*
        pub struct $fields:ident for $resource:ty {
            $( $(#[$field_meta:meta])* $field:ident: $ty:ty, )*
        }
        output_only: [$($output:literal),* $(,)?]
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default)]
        pub struct $fields {
            $( $(#[$field_meta])* pub $field: Option<$ty>, )*
        }

        impl $fields {
            /// The paths an update mask may name to change a field.
            pub const PATHS: &'static [&'static str] = &[$(stringify!($field)),*];
            /// The paths an update mask may name but that change nothing.
            pub const OUTPUT_ONLY: &'static [&'static str] = &[$($output),*];
        }

        impl $resource {
            /// Sets the fields `fields` carries and leaves the others.
            pub fn apply(&mut self, fields: $fields) {
                $( if let Some(value) = fields.$field { self.$field = value; } )*
            }
        }
    };
}
pub(crate) use updatable_fields;

/// A resource that others still refer to cannot be deleted: `users` names
/// some of them (RESOURCE_IN_USE), `relation` says how they refer to it
/// (`is still used by`).
pub fn check_unreferenced(name: &str, relation: &str, users: &[String]) -> Result<()> {
    if users.is_empty() {
        return Ok(());
    }
    Err(Error::precondition(
        Precondition::ResourceInUse,
        format!("{name} {relation} {}", users.join(", ")),
    ))
}

/// The etag a request sends: no longer than any etag the server makes, so a
/// huge one is refused before it is compared with anything.
pub fn validate_etag(field: &str, etag: &str) -> Result<(), FieldViolation> {
    let chars = etag.chars().count();
    if chars > Meta::MAX_ETAG_CHARS {
        return Err(FieldViolation::new(
            field,
            too_long(Meta::MAX_ETAG_CHARS, chars),
        ));
    }
    Ok(())
}

/// Why a text of `chars` characters is refused; the text itself is not
/// repeated.
pub fn too_long(max: usize, chars: usize) -> String {
    format!("must be at most {max} characters, not {chars}")
}

/// A display name: at most `MAX_DISPLAY_NAME_CHARS` characters.
pub fn validate_display_name(v: &mut Violations, field: &str, text: &str) {
    validate_text(v, field, text, MAX_DISPLAY_NAME_CHARS);
}

/// Text of at most `max` characters.
pub fn validate_text(v: &mut Violations, field: &str, text: &str, max: usize) {
    let chars = text.chars().count();
    if chars > max {
        v.add(field, too_long(max, chars));
    }
}

/// A repeated field of at most `max` items. Returns whether it fits, so that
/// the items of an oversized list are neither decoded nor checked one by one:
/// the list is refused once, as a whole.
pub fn validate_count(v: &mut Violations, field: &str, len: usize, max: usize) -> bool {
    if len > max {
        v.add(field, format!("must hold at most {max} items, not {len}"));
        return false;
    }
    true
}

/// At most 64 labels; keys are `[a-z][a-z0-9_.-]{0,62}`, values at most 63
/// characters of `[a-z0-9_.-]`, as in Kubernetes and Google Cloud, so filters
/// stay simple.
pub fn validate_labels(v: &mut Violations, field: &str, labels: &Labels) {
    if !validate_count(v, field, labels.len(), MAX_LABELS) {
        return;
    }
    let key_ok = |k: &str| {
        let b = k.as_bytes();
        !b.is_empty()
            && b.len() <= MAX_LABEL_CHARS
            && b[0].is_ascii_lowercase()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_.-".contains(c))
    };
    let value_ok = |s: &str| {
        s.len() <= MAX_LABEL_CHARS
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
    if !validate_count(v, field, annotations.len(), MAX_ANNOTATIONS) {
        return;
    }
    let total: usize = annotations
        .iter()
        .map(|(k, v)| k.chars().count() + v.chars().count())
        .sum();
    if total > MAX_ANNOTATIONS_CHARS {
        v.add(
            field,
            format!(
                "keys and values must total at most {MAX_ANNOTATIONS_CHARS} characters, not {total}"
            ),
        );
    }
    for k in annotations.keys() {
        let chars = k.chars().count();
        if chars == 0 || chars > MAX_ANNOTATION_KEY_CHARS {
            v.add(
                format!("{field}.{k}"),
                format!("keys are 1 to {MAX_ANNOTATION_KEY_CHARS} characters"),
            );
        }
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
    if paths.len() > MAX_MASK_PATHS {
        return Err(Error::invalid(
            "update_mask",
            format!(
                "must hold at most {MAX_MASK_PATHS} paths, not {}",
                paths.len()
            ),
        ));
    }
    let mut v = Violations::new();
    let mut resolved: Vec<&'static str> = Vec::new();
    for path in paths {
        if path.chars().count() > MAX_MASK_PATH_CHARS {
            // No updatable path is this long; and it is not sent back.
            v.add(
                "update_mask",
                format!("paths are at most {MAX_MASK_PATH_CHARS} characters"),
            );
            continue;
        }
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

    #[derive(Debug, Clone, PartialEq)]
    pub struct Thing {
        name: String,
        size: u32,
    }

    updatable_fields! {
        pub struct ThingFields for Thing {
            name: String,
            size: u32,
        }
        output_only: ["etag"]
    }

    #[test]
    fn updatable_fields_name_their_paths_and_apply_only_what_is_set() {
        assert_eq!(ThingFields::PATHS, ["name", "size"]);
        assert_eq!(ThingFields::OUTPUT_ONLY, ["etag"]);
        let mut thing = Thing {
            name: "a".into(),
            size: 1,
        };
        thing.apply(ThingFields {
            size: Some(2),
            ..Default::default()
        });
        assert_eq!(
            thing,
            Thing {
                name: "a".into(),
                size: 2
            }
        );
    }

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

    fn fields(v: Violations) -> Vec<String> {
        match v.into_result() {
            Ok(()) => vec![],
            Err(Error::InvalidArgument(list)) => list.into_iter().map(|f| f.field).collect(),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn text_limits_count_characters_not_bytes() {
        let mut v = Violations::new();
        validate_text(&mut v, "a", &"é".repeat(200), 200);
        validate_text(&mut v, "b", &"é".repeat(201), 200);
        assert_eq!(fields(v), ["b"]);
    }

    #[test]
    fn too_many_labels_are_one_violation_on_the_map() {
        let labels: Labels = (0..=MAX_LABELS)
            .map(|i| (format!("BAD{i}"), String::new()))
            .collect();
        let mut v = Violations::new();
        validate_labels(&mut v, "x.labels", &labels);
        assert_eq!(fields(v), ["x.labels"]);
    }

    #[test]
    fn annotations_are_bounded_in_count_key_and_total() {
        let at = |n: usize| -> Labels { [("note".to_string(), "é".repeat(n - 4))].into() };
        let mut v = Violations::new();
        validate_annotations(&mut v, "ok", &at(MAX_ANNOTATIONS_CHARS));
        validate_annotations(&mut v, "total", &at(MAX_ANNOTATIONS_CHARS + 1));
        let many: Labels = (0..=MAX_ANNOTATIONS)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        validate_annotations(&mut v, "count", &many);
        let long_key: Labels = [("k".repeat(254), String::new())].into();
        validate_annotations(&mut v, "key", &long_key);
        assert_eq!(
            fields(v),
            [
                "total".to_string(),
                "count".into(),
                format!("key.{}", "k".repeat(254))
            ]
        );
    }

    #[test]
    fn masks_are_bounded_in_paths_and_length() {
        let err = resolve_mask(&vec!["labels".into(); 65], UPDATABLE, &[]).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(v) if v[0].field == "update_mask"));
        let err = resolve_mask(&["x".repeat(100_000)], UPDATABLE, &[]).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(v) if v[0].description.len() < 100),
            "{err}"
        );
        assert!(validate_etag("etag", &"a".repeat(64)).is_ok());
        assert!(validate_etag("etag", &"a".repeat(65)).is_err());
    }
}
