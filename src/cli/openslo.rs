//! OpenSLO v1 documents (https://github.com/OpenSLO/OpenSLO) turned into the
//! YAML `accord apply` reads: a Service per OpenSLO Service, and a draft
//! SERVICE_LEVEL Agreement per service whose objectives come from its SLOs.
//! A pure conversion: no I/O but what the caller hands in, no gRPC. What
//! Accord has no place for is listed as not mapped, never dropped unsaid;
//! what it cannot represent faithfully (a calendar minute, a window start off
//! a period boundary, a target out of range) is an error naming file:line.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc, Weekday};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::{Location, Spanned};

use super::manifest::{message_of, split_documents};

/// What the command line adds to the files.
pub struct Options {
    /// The party id that owns the services and provides the agreements.
    pub provider: String,
    pub effective_from: DateTime<Utc>,
}

/// The converted files.
#[derive(Debug)]
pub struct Conversion {
    /// Accord's YAML, for `accord apply -f`.
    pub yaml: String,
    /// `FILE:LINE: KIND NAME: why`, one per part left out.
    pub not_mapped: Vec<String>,
    /// Remarks that are no loss (an SLO's service that is not in the files).
    pub notes: Vec<String>,
    pub services: usize,
    pub agreements: usize,
    pub objectives: usize,
}

impl Conversion {
    /// Whether anything at all was mapped.
    pub fn is_empty(&self) -> bool {
        self.services == 0 && self.objectives == 0
    }
}

/// Converts `files` (each path with its text). The errors, each
/// `FILE:LINE[:COLUMN]: message`, stop the conversion.
pub fn convert(files: &[(PathBuf, String)], options: &Options) -> Result<Conversion, Vec<String>> {
    let mut reader = Reader::default();
    for (path, text) in files {
        for (line, chunk) in split_documents(text) {
            reader.read_document(path, line, chunk);
        }
    }
    let Reader {
        mut errors,
        mut not_mapped,
        services,
        slis,
        slos,
    } = reader;
    let mut notes = Vec::new();
    let mut converter = Converter {
        slis: &slis,
        errors: &mut errors,
        not_mapped: &mut not_mapped,
        notes: &mut notes,
    };
    let mut objectives: Vec<(String, Objective)> = Vec::new();
    for slo in &slos {
        for objective in converter.convert_slo(slo) {
            objectives.push((slo.service.clone(), objective));
        }
    }
    for (i, slo) in slos.iter().enumerate() {
        let first_of_service = !slos[..i].iter().any(|s| s.service == slo.service);
        if first_of_service && !services.iter().any(|s| s.name == slo.service) {
            notes.push(format!(
                "note: {}: SLO {}: service {} is no OpenSLO Service in the files: the agreement \
                 refers to the Accord service {}, which must exist",
                slo.at, slo.name, slo.service, slo.service
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let yaml = write_yaml(&services, &objectives, &not_mapped, options, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let agreements = group(&objectives).len();
    Ok(Conversion {
        yaml,
        not_mapped,
        notes,
        services: services.len(),
        agreements,
        objectives: objectives.len(),
    })
}

/// `file:line`.
#[derive(Debug, Clone)]
struct At {
    file: PathBuf,
    line: usize,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A document's place in its file: the line its chunk starts on.
#[derive(Clone, Copy)]
struct Chunk<'a> {
    file: &'a Path,
    first: usize,
}

impl Chunk<'_> {
    fn at(&self, location: &Location) -> At {
        At {
            file: self.file.to_path_buf(),
            line: self.first + (location.line().max(1) as usize) - 1,
        }
    }

    fn at_column(&self, location: &Location) -> String {
        format!("{}:{}", self.at(location), location.column())
    }
}

// ---------------------------------------------------------------------------
// The OpenSLO documents, as far as they are read. Unknown fields are errors
// where the spec defines the fields (so a misspelt `targetPercnt` is caught);
// metric sources are free-form and skipped.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    api_version: Option<Spanned<String>>,
    kind: Option<Spanned<String>>,
    metadata: Option<HeaderMetadata>,
}

#[derive(Deserialize)]
struct HeaderMetadata {
    name: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Document<S> {
    #[allow(dead_code)]
    api_version: IgnoredAny,
    #[allow(dead_code)]
    kind: IgnoredAny,
    metadata: Metadata,
    spec: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Metadata {
    name: Spanned<String>,
    display_name: Option<String>,
    labels: Option<BTreeMap<String, IgnoredAny>>,
    annotations: Option<BTreeMap<String, IgnoredAny>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceSpec {
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SliSpec {
    #[allow(dead_code)]
    description: Option<IgnoredAny>,
    threshold_metric: Option<IgnoredAny>,
    ratio_metric: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct InlineSli {
    metadata: Metadata,
    spec: SliSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SloSpec {
    #[allow(dead_code)]
    description: Option<IgnoredAny>,
    service: Option<Spanned<String>>,
    indicator: Option<InlineSli>,
    indicator_ref: Option<Spanned<String>>,
    time_window: Option<Spanned<Vec<TimeWindow>>>,
    budgeting_method: Option<Spanned<String>>,
    objectives: Option<Spanned<Vec<Spanned<ObjectiveSpec>>>>,
    alert_policies: Option<Spanned<Vec<IgnoredAny>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TimeWindow {
    duration: Spanned<String>,
    is_rolling: Option<bool>,
    calendar: Option<Calendar>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Calendar {
    start_time: Spanned<String>,
    time_zone: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ObjectiveSpec {
    display_name: Option<String>,
    op: Option<Spanned<String>>,
    value: Option<Spanned<String>>,
    target: Option<Spanned<String>>,
    target_percent: Option<Spanned<String>>,
    time_slice_target: Option<Spanned<String>>,
    time_slice_window: Option<Spanned<String>>,
    indicator: Option<IgnoredAny>,
    indicator_ref: Option<IgnoredAny>,
    composite_weight: Option<IgnoredAny>,
}

// ---------------------------------------------------------------------------
// Reading: every document of every file, sorted by kind.

struct Service {
    name: String,
    display_name: Option<String>,
    description: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Metric {
    Ratio,
    Threshold,
}

struct Sli {
    metric: Metric,
}

struct Slo {
    at: At,
    name: String,
    service: String,
    display_name: Option<String>,
    spec: SloSpec,
    first: usize,
    file: PathBuf,
}

impl Slo {
    fn chunk(&self) -> Chunk<'_> {
        Chunk {
            file: &self.file,
            first: self.first,
        }
    }
}

#[derive(Default)]
struct Reader {
    errors: Vec<String>,
    not_mapped: Vec<String>,
    services: Vec<Service>,
    slis: HashMap<String, Sli>,
    slos: Vec<Slo>,
}

const KINDS: &str =
    "Service, SLO, SLI, DataSource, AlertPolicy, AlertCondition or AlertNotificationTarget";

impl Reader {
    fn read_document(&mut self, file: &Path, first: usize, text: &str) {
        let Some(start) = text.lines().position(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#')
        }) else {
            return;
        };
        let chunk = Chunk { file, first };
        let doc_at = At {
            file: file.to_path_buf(),
            line: first + start,
        };
        let header: Header = match parse(text) {
            Ok(h) => h,
            Err(e) => return self.error(&chunk, &doc_at, &e),
        };
        let Some(version) = header.api_version else {
            self.errors
                .push(format!("{doc_at}: no apiVersion: expected openslo/v1"));
            return;
        };
        if version.value != "openslo/v1" {
            self.errors.push(format!(
                "{}: apiVersion {:?} is not read: expected openslo/v1",
                chunk.at_column(&version.referenced),
                version.value
            ));
            return;
        }
        let Some(kind) = header.kind else {
            self.errors
                .push(format!("{doc_at}: no kind: expected {KINDS}"));
            return;
        };
        let name = header
            .metadata
            .and_then(|m| m.name)
            .map(|n| n.value)
            .unwrap_or_default();
        match kind.value.as_str() {
            "Service" => self.read_service(&chunk, &doc_at, text),
            "SLI" => self.read_sli(&chunk, &doc_at, text),
            "SLO" => self.read_slo(&chunk, &doc_at, text),
            "DataSource" => self.not_mapped.push(format!(
                "not mapped: {doc_at}: DataSource {name}: data sources are not carried: Accord is \
                 sent measurements, it does not query metrics"
            )),
            "AlertPolicy" | "AlertCondition" | "AlertNotificationTarget" => {
                self.not_mapped.push(format!(
                    "not mapped: {doc_at}: {} {name}: alerting is not carried: Accord computes \
                     burn-rate alerts from the objectives themselves",
                    kind.value
                ))
            }
            other => self.errors.push(format!(
                "{}: unknown kind {other:?}: expected {KINDS}",
                chunk.at_column(&kind.referenced)
            )),
        }
    }

    fn error(&mut self, chunk: &Chunk<'_>, doc_at: &At, e: &serde_saphyr::Error) {
        let place = match e.location().filter(|l| l.line() > 0) {
            Some(l) => chunk.at_column(&l),
            None => doc_at.to_string(),
        };
        self.errors.push(format!("{place}: {}", message_of(e)));
    }

    /// Lists the labels and annotations a document carries, which Accord's
    /// resources made from it do not.
    fn metadata_left_out(&mut self, doc_at: &At, kind: &str, metadata: &Metadata) {
        for (field, map) in [
            ("labels", &metadata.labels),
            ("annotations", &metadata.annotations),
        ] {
            if map.as_ref().is_some_and(|m| !m.is_empty()) {
                self.not_mapped.push(format!(
                    "not mapped: {doc_at}: {kind} {}: metadata.{field} are not carried",
                    metadata.name.value
                ));
            }
        }
    }

    fn read_service(&mut self, chunk: &Chunk<'_>, doc_at: &At, text: &str) {
        let doc: Document<ServiceSpec> = match parse(text) {
            Ok(d) => d,
            Err(e) => return self.error(chunk, doc_at, &e),
        };
        let name = &doc.metadata.name;
        if !is_id(&name.value) {
            self.errors.push(format!(
                "{}: Service {}: the name is no Accord id (lowercase [a-z][a-z0-9-]{{0,62}})",
                chunk.at_column(&name.referenced),
                name.value
            ));
            return;
        }
        if self.services.iter().any(|s| s.name == name.value) {
            self.errors
                .push(format!("{doc_at}: Service {} is defined twice", name.value));
            return;
        }
        self.metadata_left_out(doc_at, "Service", &doc.metadata);
        self.services.push(Service {
            name: name.value.clone(),
            display_name: doc.metadata.display_name.clone(),
            description: doc.spec.and_then(|s| s.description),
        });
    }

    fn read_sli(&mut self, chunk: &Chunk<'_>, doc_at: &At, text: &str) {
        let doc: Document<SliSpec> = match parse(text) {
            Ok(d) => d,
            Err(e) => return self.error(chunk, doc_at, &e),
        };
        let name = doc.metadata.name.value.clone();
        let Some(spec) = doc.spec else {
            self.errors.push(format!("{doc_at}: SLI {name}: no spec"));
            return;
        };
        match metric_of(&spec) {
            Ok(metric) => {
                self.metadata_left_out(doc_at, "SLI", &doc.metadata);
                self.not_mapped.push(queries_left_out(doc_at, &name));
                if self.slis.insert(name.clone(), Sli { metric }).is_some() {
                    self.errors
                        .push(format!("{doc_at}: SLI {name} is defined twice"));
                }
            }
            Err(why) => self.errors.push(format!("{doc_at}: SLI {name}: {why}")),
        }
    }

    fn read_slo(&mut self, chunk: &Chunk<'_>, doc_at: &At, text: &str) {
        let doc: Document<SloSpec> = match parse(text) {
            Ok(d) => d,
            Err(e) => return self.error(chunk, doc_at, &e),
        };
        let name = doc.metadata.name.value.clone();
        let Some(spec) = doc.spec else {
            self.errors.push(format!("{doc_at}: SLO {name}: no spec"));
            return;
        };
        let service = match &spec.service {
            None => {
                self.errors.push(format!(
                    "{doc_at}: SLO {name}: no spec.service: Accord objectives belong to a service"
                ));
                return;
            }
            Some(s) if !is_id(&s.value) => {
                self.errors.push(format!(
                    "{}: SLO {name}: service {} is no Accord id (lowercase [a-z][a-z0-9-]{{0,62}})",
                    chunk.at_column(&s.referenced),
                    s.value
                ));
                return;
            }
            Some(s) => s.value.clone(),
        };
        if self.slos.iter().any(|s| s.name == name) {
            self.errors
                .push(format!("{doc_at}: SLO {name} is defined twice"));
            return;
        }
        self.metadata_left_out(doc_at, "SLO", &doc.metadata);
        self.slos.push(Slo {
            at: doc_at.clone(),
            name,
            service,
            display_name: doc.metadata.display_name.clone(),
            spec,
            first: chunk.first,
            file: chunk.file.to_path_buf(),
        });
    }
}

fn parse<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, serde_saphyr::Error> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    serde_saphyr::from_str_with_options(text, options)
}

fn metric_of(spec: &SliSpec) -> Result<Metric, &'static str> {
    match (&spec.ratio_metric, &spec.threshold_metric) {
        (Some(_), None) => Ok(Metric::Ratio),
        (None, Some(_)) => Ok(Metric::Threshold),
        (Some(_), Some(_)) => Err("has both ratioMetric and thresholdMetric: give one"),
        (None, None) => Err("has neither ratioMetric nor thresholdMetric"),
    }
}

fn queries_left_out(at: &At, name: &str) -> String {
    format!(
        "not mapped: {at}: SLI {name}: metric queries are not carried: Accord is sent \
         measurements under the indicator name {name}, it does not query data sources"
    )
}

/// An Accord id: `[a-z][a-z0-9-]{0,62}`.
pub(super) fn is_id(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

// ---------------------------------------------------------------------------
// Converting SLOs to objectives.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ObjectiveKind {
    Ratio,
    Threshold,
    Timeslice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    LessThan,
    LessThanOrEqual,
    GreaterThan,
    GreaterThanOrEqual,
}

impl Comparison {
    fn parse(op: &str) -> Option<Self> {
        match op {
            "lt" => Some(Comparison::LessThan),
            "lte" => Some(Comparison::LessThanOrEqual),
            "gt" => Some(Comparison::GreaterThan),
            "gte" => Some(Comparison::GreaterThanOrEqual),
            _ => None,
        }
    }

    fn proto_name(self) -> &'static str {
        match self {
            Comparison::LessThan => "COMPARISON_LESS_THAN",
            Comparison::LessThanOrEqual => "COMPARISON_LESS_THAN_OR_EQUAL",
            Comparison::GreaterThan => "COMPARISON_GREATER_THAN",
            Comparison::GreaterThanOrEqual => "COMPARISON_GREATER_THAN_OR_EQUAL",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CalendarPeriod {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl CalendarPeriod {
    fn proto_name(self) -> &'static str {
        match self {
            CalendarPeriod::Day => "CALENDAR_PERIOD_DAY",
            CalendarPeriod::Week => "CALENDAR_PERIOD_WEEK",
            CalendarPeriod::Month => "CALENDAR_PERIOD_MONTH",
            CalendarPeriod::Quarter => "CALENDAR_PERIOD_QUARTER",
            CalendarPeriod::Year => "CALENDAR_PERIOD_YEAR",
        }
    }

    fn word(self) -> &'static str {
        match self {
            CalendarPeriod::Day => "day",
            CalendarPeriod::Week => "week",
            CalendarPeriod::Month => "month",
            CalendarPeriod::Quarter => "quarter",
            CalendarPeriod::Year => "year",
        }
    }

    /// Whether a local time is the first instant of one of its periods
    /// (weeks start on Monday, as ISO 8601 and Accord's compliance say).
    fn starts_at(self, t: &NaiveDateTime) -> bool {
        let midnight = t.hour() == 0 && t.minute() == 0 && t.second() == 0 && t.nanosecond() == 0;
        midnight
            && match self {
                CalendarPeriod::Day => true,
                CalendarPeriod::Week => t.weekday() == Weekday::Mon,
                CalendarPeriod::Month => t.day() == 1,
                CalendarPeriod::Quarter => t.day() == 1 && t.month0() % 3 == 0,
                CalendarPeriod::Year => t.day() == 1 && t.month() == 1,
            }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Window {
    Rolling {
        seconds: u64,
    },
    Calendar {
        period: CalendarPeriod,
        time_zone: String,
    },
}

#[derive(Debug, Clone)]
struct Objective {
    key: String,
    display_name: Option<String>,
    indicator: String,
    kind: ObjectiveKind,
    target: Decimal,
    threshold: Option<Decimal>,
    comparison: Option<Comparison>,
    window: Window,
    slice_seconds: Option<u64>,
    /// Where the OpenSLO objective is written.
    from: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Budgeting {
    Occurrences,
    Timeslices,
}

struct Converter<'a> {
    slis: &'a HashMap<String, Sli>,
    errors: &'a mut Vec<String>,
    not_mapped: &'a mut Vec<String>,
    notes: &'a mut Vec<String>,
}

impl Converter<'_> {
    fn not_mapped(&mut self, at: impl fmt::Display, slo: &Slo, why: impl fmt::Display) {
        self.not_mapped
            .push(format!("not mapped: {at}: SLO {}: {why}", slo.name));
    }

    fn error(&mut self, at: impl fmt::Display, slo: &Slo, why: impl fmt::Display) {
        self.errors.push(format!("{at}: SLO {}: {why}", slo.name));
    }

    /// The objectives of one SLO; what cannot be mapped is listed, what is
    /// wrong is an error, and either way nothing of it comes back.
    fn convert_slo(&mut self, slo: &Slo) -> Vec<Objective> {
        let chunk = slo.chunk();
        let spec = &slo.spec;
        let Some(objectives) = &spec.objectives else {
            self.error(&slo.at, slo, "no objectives");
            return Vec::new();
        };
        if objectives.value.is_empty() {
            self.error(chunk.at(&objectives.referenced), slo, "no objectives");
            return Vec::new();
        }
        let policies = spec.alert_policies.as_ref();
        if let Some(policies) = policies.filter(|p| !p.value.is_empty()) {
            self.not_mapped(
                chunk.at(&policies.referenced),
                slo,
                "alertPolicies are not carried: Accord computes burn-rate alerts from the \
                 objectives themselves",
            );
        }
        let composite = objectives.value.iter().find(|o| {
            o.value.indicator.is_some()
                || o.value.indicator_ref.is_some()
                || o.value.composite_weight.is_some()
        });
        if let Some(o) = composite {
            self.not_mapped(
                chunk.at(&o.referenced),
                slo,
                "a composite SLO (objectives with their own indicators) has no Accord \
                 equivalent: Accord judges each objective alone",
            );
            return Vec::new();
        }
        let Some((indicator, metric)) = self.indicator(slo) else {
            return Vec::new();
        };
        let Some(method) = &spec.budgeting_method else {
            self.error(
                &slo.at,
                slo,
                "no budgetingMethod: expected Occurrences, Timeslices or RatioTimeslices",
            );
            return Vec::new();
        };
        let budgeting = match method.value.as_str() {
            "Occurrences" => Budgeting::Occurrences,
            "Timeslices" => Budgeting::Timeslices,
            "RatioTimeslices" => {
                self.not_mapped(
                    chunk.at(&method.referenced),
                    slo,
                    "budgetingMethod RatioTimeslices (the average of the slices' ratios) has \
                     no Accord equivalent: Accord's TIMESLICE objectives count good slices",
                );
                return Vec::new();
            }
            other => {
                self.error(
                    chunk.at_column(&method.referenced),
                    slo,
                    format!(
                        "budgetingMethod {other:?} is none of Occurrences, Timeslices, \
                         RatioTimeslices"
                    ),
                );
                return Vec::new();
            }
        };
        if budgeting == Budgeting::Timeslices && metric == Metric::Threshold {
            self.not_mapped(
                chunk.at(&method.referenced),
                slo,
                "Timeslices over a thresholdMetric have no Accord equivalent: Accord's \
                 TIMESLICE objectives judge a slice by its good/total counts",
            );
            return Vec::new();
        }
        let Some(window) = self.window(slo) else {
            return Vec::new();
        };
        let count = objectives.value.len();
        let mut keys: Vec<String> = Vec::new();
        let mut mapped = Vec::new();
        for (index, objective) in objectives.value.iter().enumerate() {
            let key = objective_key(slo, &objective.value, index, count, &keys);
            let Some(key) = key else {
                self.error(
                    chunk.at(&objective.referenced),
                    slo,
                    "no Accord objective key can be made of its name (lowercase \
                     [a-z][a-z0-9-]{0,62})",
                );
                continue;
            };
            keys.push(key.clone());
            if let Some(o) =
                self.objective(slo, objective, key, &indicator, metric, budgeting, &window)
            {
                mapped.push(o);
            }
        }
        mapped
    }

    /// The SLI's name and metric, inline or by reference.
    fn indicator(&mut self, slo: &Slo) -> Option<(String, Metric)> {
        let chunk = slo.chunk();
        match (&slo.spec.indicator, &slo.spec.indicator_ref) {
            (Some(inline), None) => {
                let at = chunk.at(&inline.metadata.name.referenced);
                let name = inline.metadata.name.value.clone();
                match metric_of(&inline.spec) {
                    Ok(metric) => {
                        self.not_mapped.push(queries_left_out(&at, &name));
                        Some((name, metric))
                    }
                    Err(why) => {
                        self.error(at, slo, format!("indicator {name} {why}"));
                        None
                    }
                }
            }
            (None, Some(reference)) => match self.slis.get(&reference.value) {
                Some(sli) => Some((reference.value.clone(), sli.metric)),
                None => {
                    self.error(
                        chunk.at_column(&reference.referenced),
                        slo,
                        format!(
                            "indicatorRef {} names no SLI in the files (give its file too)",
                            reference.value
                        ),
                    );
                    None
                }
            },
            (Some(_), Some(_)) => {
                self.error(
                    &slo.at,
                    slo,
                    "has both indicator and indicatorRef: give one",
                );
                None
            }
            (None, None) => {
                self.error(&slo.at, slo, "has neither indicator nor indicatorRef");
                None
            }
        }
    }

    fn window(&mut self, slo: &Slo) -> Option<Window> {
        let chunk = slo.chunk();
        let Some(windows) = &slo.spec.time_window else {
            self.error(
                &slo.at,
                slo,
                "no timeWindow: every Accord objective has a window",
            );
            return None;
        };
        let [window] = windows.value.as_slice() else {
            self.error(
                chunk.at(&windows.referenced),
                slo,
                "timeWindow must hold exactly one window",
            );
            return None;
        };
        let at = chunk.at_column(&window.duration.referenced);
        let text = &window.duration.value;
        let Some(duration) = Duration::parse(text) else {
            self.error(
                at,
                slo,
                format!(
                    "duration {text:?} is no duration: a number and one of m (minute), h, d, \
                     w, M (month), Q, Y"
                ),
            );
            return None;
        };
        let rolling = window.is_rolling.unwrap_or(window.calendar.is_none());
        match (rolling, &window.calendar) {
            (true, Some(_)) => {
                self.error(at, slo, "a rolling window has no calendar");
                None
            }
            (true, None) => match duration.seconds() {
                Some(seconds) => Some(Window::Rolling { seconds }),
                None => {
                    self.error(
                        at,
                        slo,
                        format!(
                            "a rolling window of {text} has no fixed length, and Accord's \
                             rolling windows are exact durations: write it in days (e.g. 30d) \
                             or make it a calendar window"
                        ),
                    );
                    None
                }
            },
            (false, None) => {
                self.error(
                    at,
                    slo,
                    "a window that is not rolling needs a calendar (startTime and timeZone)",
                );
                None
            }
            (false, Some(calendar)) => self.calendar(slo, &duration, text, &at, calendar),
        }
    }

    fn calendar(
        &mut self,
        slo: &Slo,
        duration: &Duration,
        text: &str,
        at: &str,
        calendar: &Calendar,
    ) -> Option<Window> {
        let chunk = slo.chunk();
        let period = match (duration.count, duration.unit) {
            (1, 'd') => CalendarPeriod::Day,
            (1, 'w') => CalendarPeriod::Week,
            (1, 'M') => CalendarPeriod::Month,
            (1, 'Q') => CalendarPeriod::Quarter,
            (1, 'Y') => CalendarPeriod::Year,
            (_, unit) => {
                let minute = if unit == 'm' {
                    " (m is a minute; a month is M)"
                } else {
                    ""
                };
                self.error(
                    at,
                    slo,
                    format!(
                        "a calendar window of {text}{minute} cannot be represented: Accord's \
                         calendar windows are 1d, 1w, 1M, 1Q or 1Y"
                    ),
                );
                return None;
            }
        };
        let time_zone = match &calendar.time_zone {
            None => String::new(),
            Some(tz) if tz.value.parse::<chrono_tz::Tz>().is_ok() => tz.value.clone(),
            Some(tz) => {
                self.error(
                    chunk.at_column(&tz.referenced),
                    slo,
                    format!("timeZone {:?} is no IANA time zone name", tz.value),
                );
                return None;
            }
        };
        let start = &calendar.start_time;
        let start_at = chunk.at_column(&start.referenced);
        let parsed = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(start.value.trim(), f).ok());
        let Some(local) = parsed else {
            self.error(
                start_at,
                slo,
                format!(
                    "calendar startTime {:?} is not a local date and time like \
                     2026-01-01 00:00:00",
                    start.value
                ),
            );
            return None;
        };
        if !period.starts_at(&local) {
            let zone = if time_zone.is_empty() {
                "UTC"
            } else {
                &time_zone
            };
            self.error(
                start_at,
                slo,
                format!(
                    "calendar startTime {} is not the start of a {} in {zone} (local \
                     midnight{}): Accord's calendar windows are whole {}s",
                    start.value,
                    period.word(),
                    match period {
                        CalendarPeriod::Day => "",
                        CalendarPeriod::Week => " on a Monday",
                        CalendarPeriod::Month => " on the 1st",
                        CalendarPeriod::Quarter => " on 1 January, April, July or October",
                        CalendarPeriod::Year => " on 1 January",
                    },
                    period.word()
                ),
            );
            return None;
        }
        Some(Window::Calendar { period, time_zone })
    }

    #[allow(clippy::too_many_arguments)]
    fn objective(
        &mut self,
        slo: &Slo,
        objective: &Spanned<ObjectiveSpec>,
        key: String,
        indicator: &str,
        metric: Metric,
        budgeting: Budgeting,
        window: &Window,
    ) -> Option<Objective> {
        let chunk = slo.chunk();
        let o = &objective.value;
        let at = chunk.at(&objective.referenced);
        let target = self.target(slo, &at, o)?;
        let display_name = o.display_name.clone().or_else(|| slo.display_name.clone());
        let mut mapped = Objective {
            key,
            display_name,
            indicator: indicator.to_string(),
            kind: ObjectiveKind::Ratio,
            target,
            threshold: None,
            comparison: None,
            window: window.clone(),
            slice_seconds: None,
            from: format!("SLO {}, {at}", slo.name),
        };
        match (metric, budgeting) {
            (Metric::Ratio, Budgeting::Occurrences) => {
                if o.op.is_some() || o.value.is_some() {
                    self.not_mapped(
                        &at,
                        slo,
                        "op and value apply to a thresholdMetric only: left out of a ratio \
                         objective",
                    );
                }
            }
            (Metric::Threshold, Budgeting::Occurrences) => {
                let (Some(op), Some(value)) = (&o.op, &o.value) else {
                    self.error(&at, slo, "a thresholdMetric objective needs op and value");
                    return None;
                };
                let Some(comparison) = Comparison::parse(&op.value) else {
                    self.error(
                        chunk.at_column(&op.referenced),
                        slo,
                        format!("op {:?} is none of lt, lte, gt, gte", op.value),
                    );
                    return None;
                };
                let value_at = chunk.at_column(&value.referenced);
                let Some(bound) = Decimal::parse(&value.value) else {
                    self.error(
                        value_at,
                        slo,
                        format!("value {:?} is no decimal number", value.value),
                    );
                    return None;
                };
                if !bound.is_positive() {
                    self.not_mapped(
                        chunk.at(&value.referenced),
                        slo,
                        format!(
                            "objective {}: value {bound} cannot be mapped: Accord's thresholds \
                             are positive",
                            mapped.key
                        ),
                    );
                    return None;
                }
                mapped.kind = ObjectiveKind::Threshold;
                mapped.threshold = Some(bound);
                mapped.comparison = Some(comparison);
            }
            (Metric::Ratio, Budgeting::Timeslices) => {
                let (Some(slice_target), Some(slice_window)) =
                    (&o.time_slice_target, &o.time_slice_window)
                else {
                    self.error(
                        &at,
                        slo,
                        "a Timeslices objective needs timeSliceTarget and timeSliceWindow",
                    );
                    return None;
                };
                let slice_at = chunk.at_column(&slice_target.referenced);
                let bound = match Decimal::parse(&slice_target.value) {
                    Some(b) if b.is_positive() && b.at_most_one() => b,
                    _ => {
                        self.error(
                            slice_at,
                            slo,
                            format!(
                                "timeSliceTarget {} must be a decimal in (0, 1]",
                                slice_target.value
                            ),
                        );
                        return None;
                    }
                };
                let window_at = chunk.at_column(&slice_window.referenced);
                let seconds = Duration::parse_slice(&slice_window.value).and_then(|d| d.seconds());
                let Some(seconds) = seconds else {
                    self.error(
                        window_at,
                        slo,
                        format!(
                            "timeSliceWindow {:?} is no fixed duration (minutes, or a number \
                             and m, h, d or w)",
                            slice_window.value
                        ),
                    );
                    return None;
                };
                // The slice is good when its ratio reaches timeSliceTarget;
                // `op: gt` asks for strictly more.
                let comparison = match o.op.as_ref().map(|op| op.value.as_str()) {
                    None | Some("gte") => Comparison::GreaterThanOrEqual,
                    Some("gt") => Comparison::GreaterThan,
                    Some(other) => {
                        self.error(
                            &at,
                            slo,
                            format!(
                                "op {other:?} on a Timeslices ratio objective: a slice is good \
                                 when its ratio is gt or gte timeSliceTarget"
                            ),
                        );
                        return None;
                    }
                };
                if o.value.is_some() {
                    self.not_mapped(
                        &at,
                        slo,
                        "value applies to a thresholdMetric only: left out of a ratio objective",
                    );
                }
                mapped.kind = ObjectiveKind::Timeslice;
                mapped.threshold = Some(bound);
                mapped.comparison = Some(comparison);
                mapped.slice_seconds = Some(seconds);
            }
            (Metric::Threshold, Budgeting::Timeslices) => unreachable!("listed as not mapped"),
        }
        if budgeting == Budgeting::Occurrences
            && (o.time_slice_target.is_some() || o.time_slice_window.is_some())
        {
            self.notes.push(format!(
                "note: {at}: SLO {}: timeSliceTarget and timeSliceWindow are ignored with \
                 budgetingMethod Occurrences",
                slo.name
            ));
        }
        Some(mapped)
    }

    /// `target` (0..1) or `targetPercent` (0..100), read as the decimal the
    /// file writes: `targetPercent: 99.99` is exactly 0.9999.
    fn target(&mut self, slo: &Slo, at: &At, o: &ObjectiveSpec) -> Option<Decimal> {
        let chunk = slo.chunk();
        let (text, percent) = match (&o.target, &o.target_percent) {
            (Some(t), None) => (t, false),
            (None, Some(p)) => (p, true),
            (Some(_), Some(_)) => {
                self.error(at, slo, "has both target and targetPercent: give one");
                return None;
            }
            (None, None) => {
                self.error(at, slo, "an objective needs target or targetPercent");
                return None;
            }
        };
        let place = chunk.at_column(&text.referenced);
        let (field, range) = if percent {
            ("targetPercent", "(0, 100]")
        } else {
            ("target", "(0, 1]")
        };
        let Some(value) = Decimal::parse(&text.value) else {
            self.error(
                place,
                slo,
                format!("{field} {:?} is no decimal number", text.value),
            );
            return None;
        };
        let value = if percent { value.percent() } else { value };
        if !value.is_positive() || !value.at_most_one() {
            self.error(
                place,
                slo,
                format!(
                    "{field} {} is out of range: it must be in {range}",
                    text.value
                ),
            );
            return None;
        }
        Some(value)
    }
}

/// An objective's key: the SLO's name for its only objective; with several,
/// the name and the objective's displayName, or its position when that
/// makes no key or one already taken.
fn objective_key(
    slo: &Slo,
    o: &ObjectiveSpec,
    index: usize,
    count: usize,
    taken: &[String],
) -> Option<String> {
    let mut base = slug(&slo.name);
    if base.starts_with(|c: char| c.is_ascii_digit()) {
        base = format!("slo-{base}");
    }
    if count == 1 {
        return is_id(&base).then_some(base);
    }
    let named = o
        .display_name
        .as_deref()
        .map(slug)
        .filter(|s| !s.is_empty())
        .map(|s| format!("{base}-{s}"))
        .filter(|k| is_id(k) && !taken.contains(k));
    named.or_else(|| {
        let k = format!("{base}-{}", index + 1);
        is_id(&k).then_some(k)
    })
}

/// Lowercase letters and digits, other runs as one `-`.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

// ---------------------------------------------------------------------------
// Durations and decimals.

/// An OpenSLO duration shorthand: a positive count and a case-sensitive unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Duration {
    count: u64,
    unit: char,
}

impl Duration {
    fn parse(text: &str) -> Option<Self> {
        let unit = text.chars().last()?;
        if !"mhdwMQY".contains(unit) {
            return None;
        }
        let digits = &text[..text.len() - 1];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let count: u64 = digits.parse().ok()?;
        (count > 0).then_some(Duration { count, unit })
    }

    /// A timeSliceWindow: a shorthand, or a bare number of minutes.
    fn parse_slice(text: &str) -> Option<Self> {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return Duration::parse(&format!("{text}m"));
        }
        Duration::parse(text)
    }

    /// The exact length, for the units that have one.
    fn seconds(self) -> Option<u64> {
        let unit = match self.unit {
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        self.count.checked_mul(unit)
    }
}

/// A decimal as a file writes it: `digits / 10^scale`, never a binary
/// float, so `targetPercent: 99.99` becomes exactly 0.9999.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    digits: u128,
    scale: u32,
}

impl Decimal {
    /// `[+-]digits[.digits]`; no exponents, at most 30 digits.
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (negative, rest) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (whole, fraction) = rest.split_once('.').unwrap_or((rest, ""));
        if whole.is_empty() && fraction.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
            || whole.len() + fraction.len() > 30
        {
            return None;
        }
        let digits: u128 = format!("{whole}{fraction}").parse().ok()?;
        let decimal = Decimal {
            negative,
            digits,
            scale: fraction.len() as u32,
        };
        Some(decimal.normal())
    }

    /// Without trailing zeros after the point.
    fn normal(mut self) -> Self {
        while self.scale > 0 && self.digits % 10 == 0 {
            self.digits /= 10;
            self.scale -= 1;
        }
        if self.digits == 0 {
            self.negative = false;
        }
        self
    }

    /// A percentage as a fraction: two places to the left.
    fn percent(self) -> Self {
        Decimal {
            scale: self.scale + 2,
            ..self
        }
        .normal()
    }

    fn is_positive(&self) -> bool {
        !self.negative && self.digits > 0
    }

    fn at_most_one(&self) -> bool {
        self.negative || self.digits <= 10u128.pow(self.scale)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.negative { "-" } else { "" };
        let digits = self.digits.to_string();
        let scale = self.scale as usize;
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let digits = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = digits.split_at(digits.len() - scale);
        write!(f, "{sign}{whole}.{fraction}")
    }
}

// ---------------------------------------------------------------------------
// Writing Accord's YAML.

/// The agreements' objectives by service, services in the order their
/// first objective comes.
fn group(objectives: &[(String, Objective)]) -> Vec<(&str, Vec<&Objective>)> {
    let mut groups: Vec<(&str, Vec<&Objective>)> = Vec::new();
    for (service, objective) in objectives {
        match groups.iter_mut().find(|(s, _)| s == service) {
            Some((_, list)) => list.push(objective),
            None => groups.push((service, vec![objective])),
        }
    }
    groups
}

/// A YAML double-quoted scalar (JSON's escapes are YAML's).
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

fn write_yaml(
    services: &[Service],
    objectives: &[(String, Objective)],
    not_mapped: &[String],
    options: &Options,
    errors: &mut Vec<String>,
) -> String {
    let mut out = String::new();
    out.push_str(
        "# Converted from OpenSLO v1 by `accord import openslo`. The agreements are drafts:\n\
         # review them, then `accord apply -f` this file and publish.\n",
    );
    for line in not_mapped {
        let _ = writeln!(out, "# {line}");
    }
    let mut first = true;
    let mut separator = |out: &mut String| {
        if !std::mem::take(&mut first) {
            out.push_str("---\n");
        }
    };
    for service in services {
        separator(&mut out);
        let _ = writeln!(out, "kind: Service\nid: {}\nspec:", service.name);
        if let Some(name) = &service.display_name {
            let _ = writeln!(out, "  display_name: {}", quoted(name));
        }
        if let Some(text) = &service.description {
            let _ = writeln!(out, "  description: {}", quoted(text));
        }
        let _ = writeln!(out, "  owner: {}", options.provider);
    }
    let effective_from = options.effective_from.format("%Y-%m-%dT%H:%M:%SZ");
    for (service, list) in group(objectives) {
        let id = format!("{service}-slo");
        if !is_id(&id) {
            errors.push(format!(
                "service {service}: its agreement id {id} is longer than 63 characters"
            ));
            continue;
        }
        let title = services
            .iter()
            .find(|s| s.name == service)
            .and_then(|s| s.display_name.as_deref())
            .unwrap_or(service);
        separator(&mut out);
        let _ = writeln!(out, "kind: Agreement\nid: {id}\nspec:");
        let _ = writeln!(out, "  display_name: {}", quoted(&format!("{title} SLOs")));
        let _ = writeln!(out, "  kind: AGREEMENT_KIND_SERVICE_LEVEL");
        let _ = writeln!(out, "  provider: {}", options.provider);
        let _ = writeln!(out, "  services: [{service}]");
        let _ = writeln!(out, "  effective_from: \"{effective_from}\"");
        let _ = writeln!(out, "  objectives:");
        for o in list {
            write_objective(&mut out, o);
        }
    }
    out
}

fn write_objective(out: &mut String, o: &Objective) {
    let _ = writeln!(out, "    # {}", o.from);
    let _ = writeln!(out, "    - key: {}", o.key);
    if let Some(name) = &o.display_name {
        let _ = writeln!(out, "      display_name: {}", quoted(name));
    }
    let _ = writeln!(out, "      indicator: {}", quoted(&o.indicator));
    let kind = match o.kind {
        ObjectiveKind::Ratio => "OBJECTIVE_KIND_RATIO",
        ObjectiveKind::Threshold => "OBJECTIVE_KIND_THRESHOLD",
        ObjectiveKind::Timeslice => "OBJECTIVE_KIND_TIMESLICE",
    };
    let _ = writeln!(out, "      kind: {kind}");
    let _ = writeln!(out, "      target: {}", o.target);
    if let Some(threshold) = &o.threshold {
        let _ = writeln!(out, "      threshold: {threshold}");
    }
    if let Some(comparison) = o.comparison {
        let _ = writeln!(out, "      comparison: {}", comparison.proto_name());
    }
    let _ = writeln!(out, "      window:");
    match &o.window {
        Window::Rolling { seconds } => {
            let _ = writeln!(out, "        rolling:\n          duration: {seconds}s");
        }
        Window::Calendar { period, time_zone } => {
            let _ = writeln!(
                out,
                "        calendar:\n          period: {}",
                period.proto_name()
            );
            if !time_zone.is_empty() {
                let _ = writeln!(out, "          time_zone: {time_zone}");
            }
        }
    }
    if let Some(seconds) = o.slice_seconds {
        let _ = writeln!(out, "      slice: {seconds}s");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test files, under tests/data/openslo (see its README for where
    /// each comes from).
    fn data(name: &str) -> (PathBuf, String) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/openslo")
            .join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        (PathBuf::from(name), text)
    }

    fn options() -> Options {
        Options {
            provider: "platform".to_string(),
            effective_from: "2026-01-01T00:00:00Z".parse().unwrap(),
        }
    }

    fn convert_text(text: &str) -> Result<Conversion, Vec<String>> {
        convert(&[(PathBuf::from("slo.yaml"), text.to_string())], &options())
    }

    fn errors_of(text: &str) -> String {
        convert_text(text).unwrap_err().join("\n")
    }

    /// What `accord apply` reads of the output: (kind, id) per document.
    fn applied(yaml: &str) -> Vec<(String, String)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.yaml");
        std::fs::write(&path, yaml).unwrap();
        let documents = manifest::read(&[path]).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        documents
            .into_iter()
            .map(|d| (d.kind.to_string(), d.id))
            .collect()
    }

    use super::super::manifest;

    /// An SLO over an inline ratio SLI, with `{window}` and `{objectives}`
    /// in place.
    fn slo(window: &str, objectives: &str) -> String {
        format!(
            "apiVersion: openslo/v1\nkind: SLO\nmetadata:\n  name: api\nspec:\n  service: shop\n  \
             indicator:\n    metadata:\n      name: api-ok\n    spec:\n      ratioMetric:\n        \
             good: {{}}\n        total: {{}}\n  timeWindow:\n{window}  budgetingMethod: \
             Occurrences\n  objectives:\n{objectives}"
        )
    }

    const ROLLING_28D: &str = "    - duration: 28d\n      isRolling: true\n";
    const TARGET: &str = "    - target: 0.999\n";

    #[test]
    fn the_spec_occurrences_example_becomes_a_threshold_objective() {
        let c = convert(&[data("budgeting-method--occurences-slo.yaml")], &options()).unwrap();
        let expected = "    - key: search-slo\n      display_name: \"Good experience\"\n      \
             indicator: \"search-latency\"\n      kind: OBJECTIVE_KIND_THRESHOLD\n      \
             target: 0.99\n      threshold: 500\n      comparison: COMPARISON_LESS_THAN\n      \
             window:\n        rolling:\n          duration: 1209600s\n";
        assert!(c.yaml.contains(expected), "{}", c.yaml);
        assert!(!c.yaml.contains("published"), "a draft: {}", c.yaml);
        assert_eq!(
            applied(&c.yaml),
            [("agreement".to_string(), "web-shop-slo".to_string())]
        );
        assert_eq!(
            c.not_mapped,
            [
                "not mapped: budgeting-method--occurences-slo.yaml:12: SLI search-latency: metric \
              queries are not carried: Accord is sent measurements under the indicator name \
              search-latency, it does not query data sources"
            ]
        );
        assert!(c.notes[0].contains("service web-shop is no OpenSLO Service"));
    }

    #[test]
    fn the_spec_ratio_timeslices_example_is_listed_as_not_mapped() {
        let c = convert(
            &[data("budgeting-method--ratio-timeslices.yaml")],
            &options(),
        )
        .unwrap();
        assert!(c.is_empty(), "{c:?}");
        assert!(
            c.not_mapped.contains(
                &"not mapped: budgeting-method--ratio-timeslices.yaml:29: SLO main-page: \
                  budgetingMethod RatioTimeslices (the average of the slices' ratios) has no \
                  Accord equivalent: Accord's TIMESLICE objectives count good slices"
                    .to_string()
            ),
            "{:?}",
            c.not_mapped
        );
    }

    #[test]
    fn the_spec_timeslices_example_is_refused_for_its_calendar_minute() {
        // The example writes `duration: 1m` meaning a month: it is a minute.
        let errors = convert(&[data("budgeting-method--timeslices-slo.yaml")], &options())
            .unwrap_err()
            .join("\n");
        assert_eq!(
            errors,
            "budgeting-method--timeslices-slo.yaml:27:17: SLO service-availability: a calendar \
             window of 1m (m is a minute; a month is M) cannot be represented: Accord's calendar \
             windows are 1d, 1w, 1M, 1Q or 1Y"
        );
    }

    #[test]
    fn the_spec_low_traffic_example_is_refused_for_its_start_off_a_week() {
        let file = "treat-low-traffic-as-equally-important--timeslices-slo.yaml";
        let errors = convert(&[data(file)], &options()).unwrap_err().join("\n");
        assert_eq!(
            errors,
            format!(
                "{file}:28:20: SLO service-availability: calendar startTime 2022-01-01 12:00:00 \
                 is not the start of a week in America/New_York (local midnight on a Monday): \
                 Accord's calendar windows are whole weeks"
            )
        );
        // The same SLO starting on a Monday at midnight is mapped, its
        // timeslices included.
        let (_, text) = data(file);
        let text = text.replace("2022-01-01 12:00:00", "2022-01-03 00:00:00");
        let c = convert_text(&text).unwrap();
        for line in [
            "kind: OBJECTIVE_KIND_TIMESLICE",
            "target: 0.9995",
            "threshold: 0.95",
            "comparison: COMPARISON_GREATER_THAN",
            "period: CALENDAR_PERIOD_WEEK",
            "time_zone: America/New_York",
            "slice: 60s",
        ] {
            assert!(c.yaml.contains(line), "no {line}: {}", c.yaml);
        }
        applied(&c.yaml);
    }

    #[test]
    fn the_spec_readme_examples_list_alerting_and_data_sources_as_not_mapped() {
        let (file, text) = data("spec-readme.yaml");
        // The README's SLO leaves out budgetingMethod, which the spec
        // requires, and timeWindow, which Accord requires.
        let refused = convert(&[(file.clone(), text.clone())], &options()).unwrap_err();
        assert_eq!(
            refused,
            [
                "spec-readme.yaml:14: SLO foo-slo: no budgetingMethod: expected Occurrences, \
              Timeslices or RatioTimeslices"
            ]
        );
        let text = text.replace(
            "  objectives:\n    - displayName: Foo Total Errors",
            "  budgetingMethod: Occurrences\n  timeWindow:\n    - duration: 1d\n      \
             isRolling: true\n  objectives:\n    - displayName: Foo Total Errors",
        );
        let c = convert(&[(file, text)], &options()).unwrap();
        let listed = c.not_mapped.join("\n");
        for part in [
            "spec-readme.yaml:3: DataSource string: data sources are not carried",
            "spec-readme.yaml:48: AlertPolicy AlertPolicy: alerting is not carried",
            "spec-readme.yaml:74: AlertCondition cpu-usage-breach: alerting is not carried",
            "spec-readme.yaml:89: AlertNotificationTarget OnCallDevopsMailNotification: \
             alerting is not carried",
            "SLI foo-error: metric queries are not carried",
        ] {
            assert!(listed.contains(part), "no {part:?} in\n{listed}");
        }
        assert!(c.yaml.contains("target: 0.98\n"), "{}", c.yaml);
        assert!(
            c.yaml.contains("kind: OBJECTIVE_KIND_RATIO\n"),
            "{}",
            c.yaml
        );
        assert!(c.yaml.contains("duration: 86400s\n"), "{}", c.yaml);
    }

    #[test]
    fn the_web_shop_files_map_every_kind_and_apply_reads_them() {
        let c = convert(&[data("web-shop.yaml")], &options()).unwrap();
        assert_eq!((c.services, c.agreements, c.objectives), (1, 1, 3));
        assert_eq!(
            applied(&c.yaml),
            [
                ("service".to_string(), "web-shop".to_string()),
                ("agreement".to_string(), "web-shop-slo".to_string()),
            ]
        );
        for line in [
            "  owner: platform\n",
            "  provider: platform\n",
            "  effective_from: \"2026-01-01T00:00:00Z\"\n",
            "    - key: checkout-contract\n",
            "    - key: checkout-internal\n",
            "      indicator: \"checkout-success\"\n",
            "      target: 0.99995\n",
            "          period: CALENDAR_PERIOD_MONTH\n          time_zone: Europe/Berlin\n",
            "          period: CALENDAR_PERIOD_QUARTER\n",
        ] {
            assert!(c.yaml.contains(line), "no {line:?} in\n{}", c.yaml);
        }
    }

    #[test]
    fn target_percent_is_read_as_the_exact_decimal() {
        let c = convert(&[data("web-shop.yaml")], &options()).unwrap();
        // 99.99 / 100 in doubles is 0.9998999999999999.
        assert!(c.yaml.contains("      target: 0.9999\n"), "{}", c.yaml);
        for (percent, fraction) in [
            ("99.99", "0.9999"),
            ("99.999", "0.99999"),
            ("99.95", "0.9995"),
            ("100", "1"),
            ("0.1", "0.001"),
            ("99.990", "0.9999"),
        ] {
            let text = slo(ROLLING_28D, &format!("    - targetPercent: {percent}\n"));
            let c = convert_text(&text).unwrap();
            assert!(
                c.yaml.contains(&format!("      target: {fraction}\n")),
                "{percent}: {}",
                c.yaml
            );
        }
    }

    #[test]
    fn targets_out_of_range_are_refused_where_they_are_written() {
        for (objective, message) in [
            (
                "target: 1.5",
                "15: target 1.5 is out of range: it must be in (0, 1]",
            ),
            (
                "target: 0",
                "15: target 0 is out of range: it must be in (0, 1]",
            ),
            (
                "targetPercent: 100.01",
                "22: targetPercent 100.01 is out of range: it must be in (0, 100]",
            ),
            (
                "targetPercent: -5",
                "22: targetPercent -5 is out of range: it must be in (0, 100]",
            ),
            ("target: 9e-1", "15: target \"9e-1\" is no decimal number"),
        ] {
            let text = slo(ROLLING_28D, &format!("    - {objective}\n"));
            let errors = errors_of(&text);
            let (column, message) = message.split_once(": ").unwrap();
            assert_eq!(errors, format!("slo.yaml:19:{column}: SLO api: {message}"));
        }
        let both = slo(ROLLING_28D, "    - target: 0.9\n      targetPercent: 90\n");
        assert_eq!(
            errors_of(&both),
            "slo.yaml:19: SLO api: has both target and targetPercent: give one"
        );
        let neither = slo(ROLLING_28D, "    - displayName: x\n");
        assert_eq!(
            errors_of(&neither),
            "slo.yaml:19: SLO api: an objective needs target or targetPercent"
        );
    }

    #[test]
    fn a_month_is_capital_m_and_a_minute_small_m() {
        let minute = slo("    - duration: 1m\n      isRolling: true\n", TARGET);
        let c = convert_text(&minute).unwrap();
        assert!(c.yaml.contains("duration: 60s\n"), "{}", c.yaml);

        let month = slo("    - duration: 1M\n      isRolling: true\n", TARGET);
        assert_eq!(
            errors_of(&month),
            "slo.yaml:15:17: SLO api: a rolling window of 1M has no fixed length, and Accord's \
             rolling windows are exact durations: write it in days (e.g. 30d) or make it a \
             calendar window"
        );

        let calendar = |duration: &str, start: &str| {
            slo(
                &format!(
                    "    - duration: {duration}\n      calendar:\n        startTime: {start}\n        \
                     timeZone: Asia/Tokyo\n"
                ),
                TARGET,
            )
        };
        let c = convert_text(&calendar("1M", "2026-03-01 00:00:00")).unwrap();
        assert!(
            c.yaml
                .contains("period: CALENDAR_PERIOD_MONTH\n          time_zone: Asia/Tokyo\n"),
            "{}",
            c.yaml
        );
        assert!(errors_of(&calendar("1m", "2026-03-01 00:00:00")).contains(
            "a calendar window of 1m (m is a minute; a month is M) cannot be represented"
        ));
        assert!(
            errors_of(&calendar("2M", "2026-03-01 00:00:00"))
                .contains("slo.yaml:15:17: SLO api: a calendar window of 2M cannot be represented")
        );
        for (duration, start, word) in [
            ("1M", "2026-03-02 00:00:00", "month"),
            ("1M", "2026-03-01 00:30:00", "month"),
            ("1Q", "2026-02-01 00:00:00", "quarter"),
            ("1Y", "2026-07-01 00:00:00", "year"),
            ("1d", "2026-07-01 06:00:00", "day"),
        ] {
            let errors = errors_of(&calendar(duration, start));
            assert!(
                errors.starts_with(&format!(
                    "slo.yaml:17:20: SLO api: calendar startTime {start} is not the start of a \
                     {word} in Asia/Tokyo"
                )),
                "{duration} {start}: {errors}"
            );
        }
        for (duration, start, period) in [
            ("1Q", "2026-10-01 00:00:00", "QUARTER"),
            ("1Y", "2027-01-01T00:00:00", "YEAR"),
            ("1d", "2026-07-09 00:00:00", "DAY"),
            ("1w", "2026-01-05 00:00:00", "WEEK"),
        ] {
            let c = convert_text(&calendar(duration, start)).unwrap();
            assert!(
                c.yaml
                    .contains(&format!("period: CALENDAR_PERIOD_{period}\n")),
                "{}",
                c.yaml
            );
        }
    }

    #[test]
    fn an_unknown_api_version_or_kind_is_an_error_where_it_is_written() {
        let v2 = slo(ROLLING_28D, TARGET).replace("openslo/v1", "openslo/v2alpha");
        assert_eq!(
            errors_of(&v2),
            "slo.yaml:1:13: apiVersion \"openslo/v2alpha\" is not read: expected openslo/v1"
        );
        let text = format!(
            "{}---\n# a comment\napiVersion: openslo/v1\nkind: Slo\nmetadata:\n  name: x\n",
            slo(ROLLING_28D, TARGET)
        );
        assert_eq!(
            errors_of(&text),
            "slo.yaml:23:7: unknown kind \"Slo\": expected Service, SLO, SLI, DataSource, \
             AlertPolicy, AlertCondition or AlertNotificationTarget"
        );
        let misspelt = slo(ROLLING_28D, "    - targetPercnt: 99\n");
        let errors = errors_of(&misspelt);
        assert!(
            errors.starts_with("slo.yaml:19:7: ") && errors.contains("targetPercnt"),
            "{errors}"
        );
    }

    #[test]
    fn composite_slos_and_alert_policies_are_listed_as_not_mapped() {
        let composite = slo(
            ROLLING_28D,
            "    - target: 0.99\n      indicatorRef: other\n      compositeWeight: 2\n",
        );
        let c = convert_text(&composite).unwrap();
        assert!(c.is_empty());
        assert!(
            c.not_mapped.iter().any(|l| l.starts_with(
                "not mapped: slo.yaml:19: SLO api: a composite SLO (objectives with their own \
                 indicators) has no Accord equivalent"
            )),
            "{:?}",
            c.not_mapped
        );
        let alerting = format!(
            "{}  alertPolicies:\n    - alertPolicyRef: page\n",
            slo(ROLLING_28D, TARGET)
        );
        let c = convert_text(&alerting).unwrap();
        assert_eq!(c.objectives, 1);
        assert!(
            c.not_mapped
                .iter()
                .any(|l| l.starts_with("not mapped: slo.yaml:21: SLO api: alertPolicies")),
            "{:?}",
            c.not_mapped
        );
    }

    #[test]
    fn several_objectives_get_distinct_keys() {
        let text = slo(
            ROLLING_28D,
            "    - displayName: Gold tier\n      target: 0.999\n    - displayName: Gold tier\n      \
             target: 0.99\n    - target: 0.9\n",
        );
        let c = convert_text(&text).unwrap();
        for key in ["api-gold-tier", "api-2", "api-3"] {
            assert!(c.yaml.contains(&format!("- key: {key}\n")), "{}", c.yaml);
        }
    }

    #[test]
    fn an_indicator_ref_to_no_sli_is_an_error() {
        let text = slo(ROLLING_28D, TARGET).replace(
            "  indicator:\n    metadata:\n      name: api-ok\n    spec:\n      ratioMetric:\n        \
             good: {}\n        total: {}\n",
            "  indicatorRef: missing\n",
        );
        assert_eq!(
            errors_of(&text),
            "slo.yaml:7:17: SLO api: indicatorRef missing names no SLI in the files (give its \
             file too)"
        );
    }

    #[test]
    fn decimals_keep_what_the_file_writes() {
        let d = |t: &str| Decimal::parse(t).map(|d| d.to_string());
        assert_eq!(d("0.9995").as_deref(), Some("0.9995"));
        assert_eq!(d("500").as_deref(), Some("500"));
        assert_eq!(d(".5").as_deref(), Some("0.5"));
        assert_eq!(d("-2.50").as_deref(), Some("-2.5"));
        assert_eq!(d("1e3"), None);
        assert_eq!(d("."), None);
        assert_eq!(
            Decimal::parse("99.99").unwrap().percent().to_string(),
            "0.9999"
        );
    }
}
