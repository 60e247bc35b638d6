//! The YAML files `accord apply` reads: documents separated by `---`, each
//! a `kind` (Party, Service, Agreement, Override), an `id`, and a `spec`
//! holding the resource's fields as the .proto files name them (the proto3
//! JSON mapping: enums by name, full or short — `CUSTOMER` for
//! `PARTY_KIND_CUSTOMER` — RFC 3339 times, durations such as "3600s").
//! An Override also names its `agreement`; an Agreement may say
//! `published: true`. Every error names the file, line and column.

use std::fmt;
use std::path::{Path, PathBuf};

use prost_reflect::{DynamicMessage, MessageDescriptor};
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, Visitor};
use serde_saphyr::Spanned;

use super::Failure;
use super::reflect::descriptor;
use super::short_enums::MessageSeed;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Party,
    Service,
    Agreement,
    Override,
}

impl Kind {
    fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "party" => Some(Kind::Party),
            "service" => Some(Kind::Service),
            "agreement" => Some(Kind::Agreement),
            "override" => Some(Kind::Override),
            _ => None,
        }
    }

    fn message(self) -> MessageDescriptor {
        descriptor(match self {
            Kind::Party => "Party",
            Kind::Service => "Service",
            Kind::Agreement => "Agreement",
            Kind::Override => "Override",
        })
    }

    /// Fields the server sets, which a file may not.
    fn output_only(self) -> &'static [&'static str] {
        match self {
            Kind::Party | Kind::Service | Kind::Override => {
                &["name", "etag", "create_time", "update_time"]
            }
            Kind::Agreement => &[
                "name",
                "etag",
                "create_time",
                "update_time",
                "state",
                "revision_id",
                "revision_create_time",
                "terminate_time",
            ],
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Party => "party",
            Kind::Service => "service",
            Kind::Agreement => "agreement",
            Kind::Override => "override",
        })
    }
}

/// Where a document starts: `file:line`.
#[derive(Debug, Clone)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One document of a file.
#[derive(Debug, Clone)]
pub struct Document {
    pub kind: Kind,
    pub id: String,
    /// The agreement an Override belongs to (an id or a resource name).
    pub agreement: Option<String>,
    /// Whether an Agreement is to be published.
    pub published: bool,
    pub spec: DynamicMessage,
    pub origin: Origin,
    /// Where each reference is written: its field (`provider`,
    /// `services`, …), its text, and its line and column in the file.
    pub references: Vec<Reference>,
}

#[derive(Debug, Clone)]
pub struct Reference {
    pub field: &'static str,
    pub text: String,
    pub line: usize,
    pub column: usize,
}

/// The references of a document with their places, read in a second pass
/// over it (the first reads the spec into its message, where places are
/// gone); every other field is ignored here.
#[derive(Deserialize)]
struct ReferenceSpans {
    agreement: Option<Spanned<String>>,
    spec: Option<SpecSpans>,
}

#[derive(Deserialize)]
struct SpecSpans {
    parent: Option<Spanned<String>>,
    owner: Option<Spanned<String>>,
    provider: Option<Spanned<String>>,
    consumer: Option<Spanned<String>>,
    #[serde(default)]
    services: Vec<Spanned<String>>,
    #[serde(default)]
    supports: Vec<Spanned<String>>,
}

/// The references of `chunk`, which starts on line `first` of its file.
fn references(chunk: &str, first: usize) -> Vec<Reference> {
    let Ok(spans) = serde_saphyr::from_str::<ReferenceSpans>(chunk) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut add = |field: &'static str, span: Spanned<String>| {
        found.push(Reference {
            field,
            text: span.value,
            line: first + span.referenced.line() as usize - 1,
            column: span.referenced.column() as usize,
        });
    };
    if let Some(a) = spans.agreement {
        add("agreement", a);
    }
    if let Some(spec) = spans.spec {
        for (field, span) in [
            ("parent", spec.parent),
            ("owner", spec.owner),
            ("provider", spec.provider),
            ("consumer", spec.consumer),
        ] {
            if let Some(span) = span {
                add(field, span);
            }
        }
        for span in spec.services {
            add("services", span);
        }
        for span in spec.supports {
            add("supports", span);
        }
    }
    found
}

/// Every document of `paths`: files as given, directories by their
/// `.yaml` and `.yml` files (recursively, in name order).
pub fn read(paths: &[PathBuf]) -> Result<Vec<Document>, Failure> {
    let files = yaml_files(paths)?;
    let mut documents = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| Failure::Input(format!("error: cannot read {}: {e}", file.display())))?;
        for (line, chunk) in split_documents(&text) {
            match parse_document(chunk) {
                Ok(Some(parts)) => documents.push(Document {
                    kind: parts.kind,
                    id: parts.id,
                    agreement: parts.agreement,
                    published: parts.published,
                    spec: parts.spec,
                    origin: Origin {
                        file: file.clone(),
                        line: line + parts.first_line - 1,
                    },
                    references: references(chunk, line),
                }),
                Ok(None) => {}
                Err((message, at)) => {
                    let (l, c) = at.map_or((line, 1), |(l, c)| (line + l - 1, c));
                    errors.push(format!("{}:{l}:{c}: {message}", file.display()));
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(Failure::Input(format!(
            "error: {}",
            errors.join("\nerror: ")
        )));
    }
    Ok(documents)
}

/// The files of `paths`: files as given, directories by their `.yaml` and
/// `.yml` files (recursively, in name order).
pub(super) fn yaml_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    let mut files = Vec::new();
    for path in paths {
        collect(path, &mut files)?;
    }
    Ok(files)
}

fn collect(path: &Path, files: &mut Vec<PathBuf>) -> Result<(), Failure> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Failure::Input(format!("error: cannot read {}: {e}", path.display())))?;
    if !meta.is_dir() {
        files.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .and_then(|dir| dir.map(|e| e.map(|e| e.path())).collect())
        .map_err(|e| Failure::Input(format!("error: cannot read {}: {e}", path.display())))?;
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            collect(&entry, files)?;
        } else if matches!(
            entry.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            files.push(entry);
        }
    }
    Ok(())
}

/// The documents of a YAML stream, each with the line it starts on: split
/// at `---` lines (and after `...`), as kubectl does.
pub(super) fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end();
        let separator = bare == "---" || bare == "...";
        if separator {
            documents.push((start_line, &text[start..offset]));
            start = offset + line.len();
            start_line = index + 2;
        }
        offset += line.len();
    }
    documents.push((start_line, &text[start..]));
    documents
}

struct Parts {
    kind: Kind,
    id: String,
    agreement: Option<String>,
    published: bool,
    spec: DynamicMessage,
    /// The line of the chunk the mapping starts on (after comments).
    first_line: usize,
}

/// A document's parts; `None` for one holding nothing but comments; the
/// error's message and its line and column in the chunk.
#[allow(clippy::type_complexity)]
fn parse_document(chunk: &str) -> Result<Option<Parts>, (String, Option<(usize, usize)>)> {
    let first_line = chunk.lines().position(|l| {
        let l = l.trim();
        !l.is_empty() && !l.starts_with('#')
    });
    let Some(first_line) = first_line else {
        return Ok(None);
    };
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    serde_saphyr::with_deserializer_from_str_with_options(chunk, options, |de| {
        DocumentSeed.deserialize(de)
    })
    .map(|(kind, id, agreement, published, spec)| {
        Some(Parts {
            kind,
            id,
            agreement,
            published,
            spec,
            first_line: first_line + 1,
        })
    })
    .map_err(|e| {
        let at = e
            .location()
            .filter(|l| l.line() > 0)
            .map(|l| (l.line() as usize, l.column() as usize));
        (message_of(&e), at)
    })
}

/// The error's message without the location serde-saphyr appends (the
/// caller puts the file's line and column in front).
pub(super) fn message_of(e: &serde_saphyr::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

type Fields = (Kind, String, Option<String>, bool, DynamicMessage);

struct DocumentSeed;

impl<'de> DeserializeSeed<'de> for DocumentSeed {
    type Value = Fields;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Fields, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DocumentSeed {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping with kind, id and spec")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut kind = None;
        let mut id = None;
        let mut agreement = None;
        let mut published = None;
        let mut spec = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "kind" => {
                    let text: String = map.next_value()?;
                    kind = Some(Kind::parse(&text).ok_or_else(|| {
                        A::Error::custom(format!(
                            "unknown kind {text:?}: expected Party, Service, Agreement or Override"
                        ))
                    })?);
                }
                "id" => id = Some(map.next_value::<String>()?),
                "agreement" => agreement = Some(map.next_value::<String>()?),
                "published" => published = Some(map.next_value::<bool>()?),
                "spec" => {
                    let Some(kind) = kind else {
                        return Err(A::Error::custom("kind must come before spec"));
                    };
                    let message: DynamicMessage =
                        map.next_value_seed(MessageSeed(kind.message()))?;
                    for field in kind.output_only() {
                        if message.has_field_by_name(field) {
                            return Err(A::Error::custom(format!(
                                "spec.{field} is set by the server, not by a file"
                            )));
                        }
                    }
                    spec = Some(message);
                }
                other => {
                    return Err(A::Error::unknown_field(
                        other,
                        &["kind", "id", "agreement", "published", "spec"],
                    ));
                }
            }
        }
        let kind = kind.ok_or_else(|| A::Error::missing_field("kind"))?;
        let id = id.ok_or_else(|| A::Error::missing_field("id"))?;
        if kind == Kind::Override && agreement.is_none() {
            return Err(A::Error::custom(
                "an Override needs the agreement it belongs to",
            ));
        }
        if kind != Kind::Override && agreement.is_some() {
            return Err(A::Error::custom("only an Override names an agreement"));
        }
        if kind != Kind::Agreement && published.is_some() {
            return Err(A::Error::custom("only an Agreement is published"));
        }
        let spec = spec.unwrap_or_else(|| DynamicMessage::new(kind.message()));
        Ok((kind, id, agreement, published.unwrap_or(false), spec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_start_after_their_separator() {
        let text = "a: 1\n---\n# note\nb: 2\n...\n---\nc: 3\n";
        let docs = split_documents(text);
        let starts: Vec<usize> = docs.iter().map(|(l, _)| *l).collect();
        assert_eq!(starts, [1, 3, 6, 7]);
        assert_eq!(docs[1].1, "# note\nb: 2\n");
    }

    #[test]
    fn references_are_found_where_they_are_written() {
        let text = "kind: Agreement\nid: a\nspec:\n  provider: p\n  services: [s1, s2]\n";
        let found: Vec<(&str, String, usize, usize)> = references(text, 10)
            .into_iter()
            .map(|r| (r.field, r.text, r.line, r.column))
            .collect();
        assert_eq!(
            found,
            [
                ("provider", "p".to_string(), 13, 13),
                ("services", "s1".to_string(), 14, 14),
                ("services", "s2".to_string(), 14, 18),
            ]
        );
    }

    #[test]
    fn a_document_of_comments_is_skipped() {
        assert!(parse_document("# nothing\n\n").unwrap().is_none());
    }

    #[test]
    fn an_unknown_spec_field_is_reported_where_it_is() {
        let (message, at) = parse_document("kind: Party\nid: a\nspec:\n  colour: red\n")
            .err()
            .unwrap();
        assert!(message.contains("colour"), "{message}");
        assert_eq!(at.map(|(l, _)| l), Some(4), "{message}");
    }

    #[test]
    fn short_enum_names_read_as_the_full_ones() {
        let short = "kind: Agreement\nid: a\nspec:\n  kind: SERVICE_LEVEL\n  objectives:\n    - key: k\n      kind: THRESHOLD\n      comparison: LESS_THAN_OR_EQUAL\n      window:\n        calendar: {period: MONTH}\n  labels: {tier: GOLD}\n";
        let full = short
            .replace("SERVICE_LEVEL", "AGREEMENT_KIND_SERVICE_LEVEL")
            .replace("THRESHOLD", "OBJECTIVE_KIND_THRESHOLD")
            .replace("LESS_THAN_OR_EQUAL", "COMPARISON_LESS_THAN_OR_EQUAL")
            .replace("MONTH", "CALENDAR_PERIOD_MONTH");
        let read = |text: &str| parse_document(text).unwrap().unwrap().spec;
        assert_eq!(read(short), read(&full));
        let labels = read(short);
        assert!(format!("{labels:?}").contains("GOLD"), "{labels:?}");
    }

    #[test]
    fn an_unknown_enum_value_lists_the_short_names_where_it_is() {
        let (message, at) =
            parse_document("kind: Party\nid: a\nspec:\n  display_name: A\n  kind: customer\n")
                .err()
                .unwrap();
        assert!(
            message.contains("unrecognized enum value 'customer' for PartyKind: expected one of PROVIDER, CUSTOMER"),
            "{message}"
        );
        assert_eq!(at, Some((5, 9)), "{message}");
    }
}
