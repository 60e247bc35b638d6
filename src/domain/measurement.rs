//! Measurements as reported: what one item must be to be stored (`check`,
//! each refusal a stable reason and a message), what the catalogue must say
//! of it (`Catalog::judge`), the digest that tells a retry from a different
//! payload under the same id, and the shapes storage keeps: count rollups per
//! UTC-aligned minute, hour and day (`Level`), each for the series it was
//! tagged with and for every report together (`View`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, Utc};
use sha2::{Digest, Sha256};

use crate::domain::names::{Collection, Id, ResourceName};
use crate::domain::terms::ObjectiveKind;

/// Measurements one call (or one batch of a stream) may carry.
pub const MAX_MEASUREMENTS: usize = 10_000;
/// The longest idempotency key.
pub const MAX_ID_CHARS: usize = 128;
/// The largest count one measurement may carry: a trillion events, far more
/// than any service serves in one report, so that the sums rollups keep
/// (a day of one series) stay far from 64-bit overflow.
pub const MAX_COUNT: i64 = 1_000_000_000_000;

/// The consumer column of untagged (service-wide) data.
pub const UNTAGGED: &str = "";
/// The consumer column of the rollups that sum every report of a service,
/// tagged or not.
pub const ALL_SERIES: &str = "*";

/// Why one measurement was not stored. The names are the API's
/// (`MeasurementRejection.reason`), stable once released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    UnknownService,
    UnknownConsumer,
    UnknownIndicator,
    ValueKindMismatch,
    InvalidId,
    MissingValue,
    MissingTime,
    EndBeforeStart,
    NegativeCount,
    GoodExceedsTotal,
    CountTooLarge,
    NotFinite,
    TooFarInFuture,
    TooOld,
    AlreadyExists,
}

impl Reason {
    /// Every reason, in declaration order (`reason as usize` is its index).
    pub const ALL: [Reason; 15] = [
        Reason::UnknownService,
        Reason::UnknownConsumer,
        Reason::UnknownIndicator,
        Reason::ValueKindMismatch,
        Reason::InvalidId,
        Reason::MissingValue,
        Reason::MissingTime,
        Reason::EndBeforeStart,
        Reason::NegativeCount,
        Reason::GoodExceedsTotal,
        Reason::CountTooLarge,
        Reason::NotFinite,
        Reason::TooFarInFuture,
        Reason::TooOld,
        Reason::AlreadyExists,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UnknownService => "UNKNOWN_SERVICE",
            Reason::UnknownConsumer => "UNKNOWN_CONSUMER",
            Reason::UnknownIndicator => "UNKNOWN_INDICATOR",
            Reason::ValueKindMismatch => "VALUE_KIND_MISMATCH",
            Reason::InvalidId => "INVALID_ID",
            Reason::MissingValue => "MISSING_VALUE",
            Reason::MissingTime => "MISSING_TIME",
            Reason::EndBeforeStart => "END_BEFORE_START",
            Reason::NegativeCount => "NEGATIVE_COUNT",
            Reason::GoodExceedsTotal => "GOOD_EXCEEDS_TOTAL",
            Reason::CountTooLarge => "COUNT_TOO_LARGE",
            Reason::NotFinite => "NOT_FINITE",
            Reason::TooFarInFuture => "TOO_FAR_IN_FUTURE",
            Reason::TooOld => "TOO_OLD",
            Reason::AlreadyExists => "ALREADY_EXISTS",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One measurement refused, and why, for people. A message never repeats
/// a name the client sent: a name of another tenant's stays unechoed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: Reason,
    pub message: String,
}

impl Rejection {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// An instant as the client sent it: one a clock can show, or not (a
/// timestamp whose nanos lie outside [0, 1e9)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    At(DateTime<Utc>),
    Invalid,
}

/// The value of a measurement as the client sent it.
#[derive(Debug, Clone, PartialEq)]
pub enum SentValue {
    Counts {
        good: i64,
        total: i64,
    },
    Sample(f64),
    Downtime {
        start: Option<Sent>,
        end: Option<Sent>,
    },
}

/// One measurement as the client sent it, before any check: names as text,
/// instants decoded (truncated to microseconds at the API edge).
#[derive(Debug, Clone, PartialEq)]
pub struct Reported {
    pub id: String,
    pub service: String,
    pub consumer: String,
    pub indicator: String,
    pub time: Option<Sent>,
    pub value: Option<SentValue>,
}

/// A checked value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Counts {
        good: i64,
        total: i64,
    },
    Sample(f64),
    /// Down over `[start, end)`.
    Downtime {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
}

/// Which objectives a value can feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ValueKind {
    Counts,
    Sample,
    Downtime,
}

impl ValueKind {
    /// Counts feed RATIO and TIMESLICE objectives, samples THRESHOLD ones,
    /// downtime UPTIME ones.
    pub fn feeds(self, kind: ObjectiveKind) -> bool {
        matches!(
            (self, kind),
            (
                ValueKind::Counts,
                ObjectiveKind::Ratio | ObjectiveKind::Timeslice
            ) | (ValueKind::Sample, ObjectiveKind::Threshold)
                | (ValueKind::Downtime, ObjectiveKind::Uptime)
        )
    }

    fn as_str(self) -> &'static str {
        match self {
            ValueKind::Counts => "counts",
            ValueKind::Sample => "a sample",
            ValueKind::Downtime => "downtime",
        }
    }
}

impl Value {
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Counts { .. } => ValueKind::Counts,
            Value::Sample(_) => ValueKind::Sample,
            Value::Downtime { .. } => ValueKind::Downtime,
        }
    }
}

/// How far from now a measurement may lie, and how long what is stored is
/// kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Clock skew allowed: a later instant is TOO_FAR_IN_FUTURE.
    pub max_future: Duration,
    /// An earlier instant is TOO_OLD; raw counts and idempotency keys are
    /// kept this long.
    pub max_age: Duration,
    /// Rollups, samples and downtime are kept this long.
    pub rollup_retention: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_future: Duration::minutes(5),
            max_age: Duration::days(35),
            rollup_retention: Duration::days(400),
        }
    }
}

/// What storage may forget at `now`: raw counts from before `raw_before`,
/// idempotency keys of measurements from before `keys_before`, the rest from
/// before `kept_before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    pub raw_before: DateTime<Utc>,
    pub keys_before: DateTime<Utc>,
    pub kept_before: DateTime<Utc>,
}

/// How much longer than `max_age` a key is kept: another replica whose clock
/// lags may still accept a measurement this much older, and its key must
/// still be there to tell a retry (at most `max_age` again, for short test
/// settings).
pub const KEY_GRACE: Duration = Duration::hours(1);

impl Policy {
    pub fn cutoffs(&self, now: DateTime<Utc>) -> Cutoffs {
        let raw_before = now - self.max_age;
        Cutoffs {
            raw_before,
            keys_before: raw_before - KEY_GRACE.min(self.max_age),
            kept_before: now - self.rollup_retention,
        }
    }

    /// The months storage must hold partitions for at `now` (where it
    /// partitions): from the month of the oldest instant accepted through
    /// two months ahead.
    pub fn months(&self, now: DateTime<Utc>) -> (NaiveDate, NaiveDate) {
        let first = (now - self.max_age).date_naive();
        let month = |d: NaiveDate| d.with_day(1).expect("every month has a first day");
        let ahead = month(now.date_naive())
            .checked_add_months(Months::new(2))
            .expect("two months ahead is a date");
        (month(first), ahead)
    }
}

/// A measurement that passed every check of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub id: String,
    pub service: Id,
    /// `None`: service-wide.
    pub consumer: Option<Id>,
    pub indicator: String,
    /// When counts or a sample were taken; the start of downtime.
    pub time: DateTime<Utc>,
    pub value: Value,
}

/// Whether `id` is an idempotency key: 1 to 128 of letters, digits, `-`,
/// `_`, `.`, `:` and `/`.
fn check_id(id: &str) -> Result<(), Rejection> {
    let invalid = |message: String| Err(Rejection::new(Reason::InvalidId, message));
    if id.is_empty() {
        return invalid("`id` is required".into());
    }
    if id.len() > MAX_ID_CHARS {
        return invalid(format!(
            "`id` must be at most {MAX_ID_CHARS} characters, not {}",
            id.chars().count()
        ));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b))
    {
        return invalid(
            "`id` may hold only letters, digits, `-`, `_`, `.`, `:` and `/`".to_string(),
        );
    }
    Ok(())
}

/// The instant of `field`, which must be set and valid.
fn required(field: &str, time: Option<Sent>) -> Result<DateTime<Utc>, Rejection> {
    match time {
        Some(Sent::At(t)) => Ok(t),
        Some(Sent::Invalid) => Err(Rejection::new(
            Reason::MissingTime,
            format!("`{field}` is not a valid timestamp: nanos must be in [0, 1e9)"),
        )),
        None => Err(Rejection::new(
            Reason::MissingTime,
            format!("`{field}` is required"),
        )),
    }
}

/// `at` within `[now - max_age, now + max_future]`.
fn check_window(
    field: &str,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Result<(), Rejection> {
    if at > now + policy.max_future {
        return Err(Rejection::new(
            Reason::TooFarInFuture,
            format!(
                "`{field}` is more than {} s ahead of the server's clock",
                policy.max_future.num_seconds()
            ),
        ));
    }
    if at < now - policy.max_age {
        return Err(Rejection::new(
            Reason::TooOld,
            format!(
                "`{field}` is more than {} s old",
                policy.max_age.num_seconds()
            ),
        ));
    }
    Ok(())
}

impl Measurement {
    /// Checks one measurement of `tenant` on its own, at `now`: the first
    /// problem found is its rejection. The catalogue is asked later
    /// (`Catalog::judge`).
    pub fn check(
        tenant: &Id,
        reported: &Reported,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<Measurement, Rejection> {
        check_id(&reported.id)?;
        let service =
            ResourceName::parse_in("service", &reported.service, Collection::Services, tenant)
                .map_err(|_| {
                    Rejection::new(
                        Reason::UnknownService,
                        "`service` names no service of this tenant",
                    )
                })?;
        let consumer = if reported.consumer.is_empty() {
            None
        } else {
            Some(
                ResourceName::parse_in("consumer", &reported.consumer, Collection::Parties, tenant)
                    .map_err(|_| {
                        Rejection::new(
                            Reason::UnknownConsumer,
                            "`consumer` names no party of this tenant",
                        )
                    })?,
            )
        };
        let Some(value) = &reported.value else {
            return Err(Rejection::new(
                Reason::MissingValue,
                "set one of `counts`, `sample` or `downtime`",
            ));
        };
        let (time, value) = match *value {
            SentValue::Counts { good, total } => {
                let time = required("time", reported.time)?;
                if good < 0 || total < 0 {
                    return Err(Rejection::new(
                        Reason::NegativeCount,
                        "`counts.good` and `counts.total` must not be negative",
                    ));
                }
                if total > MAX_COUNT {
                    return Err(Rejection::new(
                        Reason::CountTooLarge,
                        format!("`counts.total` must be at most {MAX_COUNT}"),
                    ));
                }
                if good > total {
                    return Err(Rejection::new(
                        Reason::GoodExceedsTotal,
                        format!("`counts.good` ({good}) exceeds `counts.total` ({total})"),
                    ));
                }
                check_window("time", time, now, policy)?;
                (time, Value::Counts { good, total })
            }
            SentValue::Sample(v) => {
                let time = required("time", reported.time)?;
                if !v.is_finite() {
                    return Err(Rejection::new(
                        Reason::NotFinite,
                        "`sample.value` must be a finite number",
                    ));
                }
                check_window("time", time, now, policy)?;
                (time, Value::Sample(v))
            }
            SentValue::Downtime { start, end } => {
                let start = required("downtime.start_time", start)?;
                let end = required("downtime.end_time", end)?;
                if end <= start {
                    return Err(Rejection::new(
                        Reason::EndBeforeStart,
                        "`downtime.end_time` must be after `downtime.start_time`",
                    ));
                }
                check_window("downtime.start_time", start, now, policy)?;
                check_window("downtime.end_time", end, now, policy)?;
                (start, Value::Downtime { start, end })
            }
        };
        Ok(Measurement {
            id: reported.id.clone(),
            service,
            consumer,
            indicator: reported.indicator.clone(),
            time,
            value,
        })
    }

    /// The consumer column of its raw row: the party, or `UNTAGGED`.
    pub fn series(&self) -> &str {
        self.consumer.as_ref().map_or(UNTAGGED, Id::as_str)
    }

    /// SHA-256 of the canonical payload (service, consumer, indicator, time,
    /// value), hex: the same id with the same digest is a retry.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        let mut text = |s: &str| {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        };
        text("accord.measurement.v1");
        text(self.service.as_str());
        text(self.series());
        text(&self.indicator);
        let (kind, numbers): (&str, [i64; 3]) = match self.value {
            Value::Counts { good, total } => {
                ("counts", [self.time.timestamp_micros(), good, total])
            }
            Value::Sample(v) => (
                "sample",
                [self.time.timestamp_micros(), v.to_bits() as i64, 0],
            ),
            Value::Downtime { start, end } => (
                "downtime",
                [start.timestamp_micros(), end.timestamp_micros(), 0],
            ),
        };
        text(kind);
        for n in numbers {
            h.update(n.to_le_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// What the catalogue says of the services and consumers a batch names:
/// the services and parties that exist, and for each service the
/// indicators the objectives of its agreements (any state, their overrides'
/// added objectives too) use, with the kinds of those objectives.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    services: HashMap<Id, HashMap<String, Vec<ObjectiveKind>>>,
    parties: HashSet<Id>,
}

impl Catalog {
    pub fn add_service(&mut self, service: Id) {
        self.services.entry(service).or_default();
    }

    pub fn add_party(&mut self, party: Id) {
        self.parties.insert(party);
    }

    /// An objective of an agreement covering `service`.
    pub fn add_objective(&mut self, service: &Id, indicator: &str, kind: ObjectiveKind) {
        if let Some(uses) = self.services.get_mut(service) {
            let kinds = uses.entry(indicator.to_string()).or_default();
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
    }

    /// Whether the catalogue lets `m` be stored.
    pub fn judge(&self, m: &Measurement) -> Result<(), Rejection> {
        let Some(uses) = self.services.get(&m.service) else {
            return Err(Rejection::new(
                Reason::UnknownService,
                "`service` names no service of this tenant",
            ));
        };
        if let Some(consumer) = &m.consumer
            && !self.parties.contains(consumer)
        {
            return Err(Rejection::new(
                Reason::UnknownConsumer,
                "`consumer` names no party of this tenant",
            ));
        }
        let Some(kinds) = uses.get(&m.indicator) else {
            return Err(Rejection::new(
                Reason::UnknownIndicator,
                "no objective of an agreement on `service` uses `indicator`",
            ));
        };
        let value = m.value.kind();
        if !kinds.iter().any(|k| value.feeds(*k)) {
            let mut used: Vec<String> = kinds
                .iter()
                .map(|k| format!("{k:?}").to_uppercase())
                .collect();
            used.sort();
            return Err(Rejection::new(
                Reason::ValueKindMismatch,
                format!(
                    "{} feed no objective using `indicator` (its objectives are {})",
                    value.as_str(),
                    used.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// How finely counts are summed: raw rows, or UTC-aligned buckets of a
/// minute, an hour or a day. The one type both sides of the rollups speak:
/// ingestion writes each level's rows under `bucket_start`, and compliance
/// reads them over the ranges `compliance::decompose` cuts a plan into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// The raw measurements, one row per report (kept for the accepted age
    /// only).
    Raw,
    /// UTC-aligned 60 s buckets.
    Minute,
    /// UTC-aligned 3,600 s buckets.
    Hour,
    /// UTC-aligned 86,400 s buckets.
    Day,
}

impl Level {
    /// The levels kept as rollups.
    pub const ROLLUPS: [Level; 3] = [Level::Minute, Level::Hour, Level::Day];
    /// Coarsest first: the order a read is cut in.
    pub const COARSEST_FIRST: [Level; 4] = [Level::Day, Level::Hour, Level::Minute, Level::Raw];

    /// The bucket length; none for raw rows.
    pub fn length(self) -> Option<Duration> {
        match self {
            Level::Raw => None,
            Level::Minute => Some(Duration::seconds(60)),
            Level::Hour => Some(Duration::seconds(3_600)),
            Level::Day => Some(Duration::seconds(86_400)),
        }
    }

    /// The start of the bucket holding `t` (`t` itself for raw rows): the
    /// last multiple of the length since the Unix epoch at or before `t`.
    /// Unix time has no leap seconds, so this aligns to UTC minutes, hours
    /// and days. Rollups are written, and read, under this key.
    pub fn bucket_start(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let Some(micros) = self.length().and_then(|l| l.num_microseconds()) else {
            return t;
        };
        let floored = t.timestamp_micros().div_euclid(micros) * micros;
        DateTime::from_timestamp_micros(floored).expect("a floored instant is in range")
    }
}

/// Whose data a read covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    /// Every report of the service, tagged with a consumer or not.
    ServiceWide,
    /// What applies to one consumer: the untagged reports and its own.
    Consumer(Id),
}

impl View {
    /// The consumer columns of the rollups this view sums: `ALL_SERIES`,
    /// or `UNTAGGED` and the consumer's.
    pub fn series(&self) -> Vec<&str> {
        match self {
            View::ServiceWide => vec![ALL_SERIES],
            View::Consumer(c) => vec![UNTAGGED, c.as_str()],
        }
    }

    /// The consumer columns of raw rows this view reads; `None`: every one.
    pub fn raw_series(&self) -> Option<Vec<&str>> {
        match self {
            View::ServiceWide => None,
            View::Consumer(c) => Some(vec![UNTAGGED, c.as_str()]),
        }
    }
}

/// A sum of counts: one bucket of `level` starting at `start` (for raw rows,
/// the counts taken at `start`), the series of the view summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountBucket {
    pub level: Level,
    pub start: DateTime<Utc>,
    pub good: i64,
    pub total: i64,
}

/// One sample as stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleAt {
    pub time: DateTime<Utc>,
    pub value: f64,
}

/// The key of one rollup row, borrowing its names from the measurements
/// summed (a batch of 1,000 makes 6,000 keys: copying the names each time
/// was a quarter of a batch's CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RollupKey<'a> {
    pub level: Level,
    pub service: &'a str,
    pub indicator: &'a str,
    pub series: &'a str,
    pub bucket: DateTime<Utc>,
}

/// The rollup increments of `counts`: for each measurement of counts, its
/// bucket at every rollup level, in its own series and in `ALL_SERIES`,
/// summed per row and sorted by key (so that concurrent writers take row
/// locks in one order).
pub fn rollups<'a>(
    counts: impl IntoIterator<Item = &'a Measurement>,
) -> BTreeMap<RollupKey<'a>, (i64, i64)> {
    let mut sums: BTreeMap<RollupKey<'a>, (i64, i64)> = BTreeMap::new();
    for m in counts {
        let Value::Counts { good, total } = m.value else {
            continue;
        };
        for level in Level::ROLLUPS {
            for series in [m.series(), ALL_SERIES] {
                let key = RollupKey {
                    level,
                    service: m.service.as_str(),
                    indicator: &m.indicator,
                    series,
                    bucket: level.bucket_start(m.time),
                };
                let sum = sums.entry(key).or_default();
                sum.0 += good;
                sum.1 += total;
            }
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Id {
        Id::parse("id", s).unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn counts(good: i64, total: i64) -> Reported {
        Reported {
            id: "m-1".into(),
            service: "tenants/t/services/pay".into(),
            consumer: String::new(),
            indicator: "requests".into(),
            time: Some(Sent::At(now())),
            value: Some(SentValue::Counts { good, total }),
        }
    }

    fn check(r: &Reported) -> Result<Measurement, Rejection> {
        Measurement::check(&id("t"), r, now(), &Policy::default())
    }

    fn reason(r: Reported) -> Reason {
        check(&r).unwrap_err().reason
    }

    #[test]
    fn every_reason_is_listed_once_at_its_own_index() {
        for (index, reason) in Reason::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, index, "{reason}");
        }
        let names: std::collections::HashSet<&str> =
            Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Reason::ALL.len());
        // A reason added after the last one must be added to ALL too.
        assert_eq!(Reason::AlreadyExists as usize, Reason::ALL.len() - 1);
    }

    #[test]
    fn valid_counts_are_accepted_with_their_names_parsed() {
        let m = check(&Reported {
            consumer: "tenants/t/parties/bank".into(),
            ..counts(9, 10)
        })
        .unwrap();
        assert_eq!(m.service, id("pay"));
        assert_eq!(m.consumer, Some(id("bank")));
        assert_eq!(m.series(), "bank");
        assert_eq!(m.value, Value::Counts { good: 9, total: 10 });
        assert_eq!(m.time, now());
    }

    #[test]
    fn ids_must_be_short_and_of_the_allowed_characters() {
        for bad in ["", "has space", "é", "a\u{0}b", &"x".repeat(129)] {
            let r = Reported {
                id: bad.to_string(),
                ..counts(1, 1)
            };
            assert_eq!(reason(r), Reason::InvalidId, "{bad:?}");
        }
        for good in ["a", "A-z_0.9:/x", &"x".repeat(128)] {
            let r = Reported {
                id: good.to_string(),
                ..counts(1, 1)
            };
            assert!(check(&r).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn names_outside_the_tenant_are_unknown_and_not_echoed() {
        for (service, consumer, why) in [
            ("tenants/other/services/pay", "", Reason::UnknownService),
            ("pay", "", Reason::UnknownService),
            (
                "tenants/t/services/pay",
                "tenants/other/parties/bank",
                Reason::UnknownConsumer,
            ),
            (
                "tenants/t/services/pay",
                "tenants/t/services/bank",
                Reason::UnknownConsumer,
            ),
        ] {
            let rejection = check(&Reported {
                service: service.into(),
                consumer: consumer.into(),
                ..counts(1, 1)
            })
            .unwrap_err();
            assert_eq!(rejection.reason, why);
            assert!(
                !rejection.message.contains("other"),
                "{}",
                rejection.message
            );
        }
    }

    #[test]
    fn a_value_is_required_and_counts_and_samples_need_a_time() {
        assert_eq!(
            reason(Reported {
                value: None,
                ..counts(1, 1)
            }),
            Reason::MissingValue
        );
        for time in [None, Some(Sent::Invalid)] {
            assert_eq!(
                reason(Reported {
                    time,
                    ..counts(1, 1)
                }),
                Reason::MissingTime
            );
            assert_eq!(
                reason(Reported {
                    time,
                    value: Some(SentValue::Sample(1.0)),
                    ..counts(1, 1)
                }),
                Reason::MissingTime
            );
        }
    }

    #[test]
    fn counts_are_not_negative_good_at_most_total_and_bounded() {
        assert_eq!(reason(counts(-1, 1)), Reason::NegativeCount);
        assert_eq!(reason(counts(0, -1)), Reason::NegativeCount);
        assert_eq!(reason(counts(3, 2)), Reason::GoodExceedsTotal);
        assert_eq!(reason(counts(0, MAX_COUNT + 1)), Reason::CountTooLarge);
        assert!(check(&counts(0, 0)).is_ok());
        assert!(check(&counts(MAX_COUNT, MAX_COUNT)).is_ok());
    }

    #[test]
    fn samples_are_finite() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let r = Reported {
                value: Some(SentValue::Sample(v)),
                ..counts(0, 0)
            };
            assert_eq!(reason(r), Reason::NotFinite);
        }
        let r = Reported {
            value: Some(SentValue::Sample(-0.5)),
            ..counts(0, 0)
        };
        assert_eq!(check(&r).unwrap().value, Value::Sample(-0.5));
    }

    fn downtime(start: i64, end: i64) -> Reported {
        let at = |s: i64| Some(Sent::At(now() + Duration::seconds(s)));
        Reported {
            time: None,
            value: Some(SentValue::Downtime {
                start: at(start),
                end: at(end),
            }),
            ..counts(0, 0)
        }
    }

    #[test]
    fn downtime_ends_after_it_starts_and_ignores_time() {
        assert_eq!(reason(downtime(0, 0)), Reason::EndBeforeStart);
        assert_eq!(reason(downtime(10, 5)), Reason::EndBeforeStart);
        let m = check(&downtime(-60, 0)).unwrap();
        assert_eq!(m.time, now() - Duration::seconds(60));
        let missing = Reported {
            value: Some(SentValue::Downtime {
                start: None,
                end: Some(Sent::At(now())),
            }),
            ..counts(0, 0)
        };
        assert_eq!(reason(missing), Reason::MissingTime);
    }

    #[test]
    fn instants_must_lie_within_the_allowed_skew_and_age() {
        let policy = Policy::default();
        let at = |offset: Duration| Reported {
            time: Some(Sent::At(now() + offset)),
            ..counts(1, 1)
        };
        assert!(check(&at(policy.max_future)).is_ok());
        assert_eq!(
            reason(at(policy.max_future + Duration::microseconds(1))),
            Reason::TooFarInFuture
        );
        assert!(check(&at(-policy.max_age)).is_ok());
        assert_eq!(
            reason(at(-policy.max_age - Duration::microseconds(1))),
            Reason::TooOld
        );
        // Downtime: its start may not be too old, nor its end too far ahead.
        assert_eq!(reason(downtime(-36 * 86_400, 0)), Reason::TooOld);
        assert_eq!(reason(downtime(0, 301)), Reason::TooFarInFuture);
        assert!(check(&downtime(0, 300)).is_ok());
    }

    #[test]
    fn the_first_problem_of_an_item_is_its_reason() {
        let r = Reported {
            id: String::new(),
            value: None,
            ..counts(1, 1)
        };
        assert_eq!(reason(r), Reason::InvalidId);
        let r = Reported {
            service: "nope".into(),
            value: None,
            ..counts(1, 1)
        };
        assert_eq!(reason(r), Reason::UnknownService);
    }

    #[test]
    fn the_digest_covers_the_payload_but_not_the_id() {
        let base = check(&counts(9, 10)).unwrap();
        let same = check(&Reported {
            id: "other-id".into(),
            ..counts(9, 10)
        })
        .unwrap();
        assert_eq!(base.digest(), same.digest());
        let changed = [
            counts(8, 10),
            Reported {
                consumer: "tenants/t/parties/bank".into(),
                ..counts(9, 10)
            },
            Reported {
                indicator: "requests2".into(),
                ..counts(9, 10)
            },
            Reported {
                time: Some(Sent::At(now() - Duration::microseconds(1))),
                ..counts(9, 10)
            },
            Reported {
                service: "tenants/t/services/pay2".into(),
                ..counts(9, 10)
            },
        ];
        for other in changed {
            assert_ne!(base.digest(), check(&other).unwrap().digest(), "{other:?}");
        }
        assert_eq!(base.digest().len(), 64);
    }

    fn catalog() -> Catalog {
        let mut c = Catalog::default();
        c.add_service(id("pay"));
        c.add_party(id("bank"));
        c.add_objective(&id("pay"), "requests", ObjectiveKind::Ratio);
        c.add_objective(&id("pay"), "latency", ObjectiveKind::Threshold);
        c.add_objective(&id("pay"), "down", ObjectiveKind::Uptime);
        c.add_objective(&id("other"), "requests", ObjectiveKind::Ratio);
        c
    }

    fn judged(r: Reported) -> Result<(), Reason> {
        catalog()
            .judge(&check(&r).unwrap())
            .map_err(|rejection| rejection.reason)
    }

    #[test]
    fn the_catalogue_knows_services_consumers_and_indicators() {
        assert_eq!(judged(counts(1, 2)), Ok(()));
        assert_eq!(
            judged(Reported {
                service: "tenants/t/services/other".into(),
                ..counts(1, 2)
            }),
            Err(Reason::UnknownService)
        );
        assert_eq!(
            judged(Reported {
                consumer: "tenants/t/parties/nobody".into(),
                ..counts(1, 2)
            }),
            Err(Reason::UnknownConsumer)
        );
        assert_eq!(
            judged(Reported {
                indicator: "unused".into(),
                ..counts(1, 2)
            }),
            Err(Reason::UnknownIndicator)
        );
    }

    #[test]
    fn each_value_kind_feeds_its_objective_kinds_only() {
        let sample = |indicator: &str| Reported {
            indicator: indicator.into(),
            value: Some(SentValue::Sample(1.0)),
            ..counts(0, 0)
        };
        assert_eq!(judged(sample("latency")), Ok(()));
        assert_eq!(judged(sample("requests")), Err(Reason::ValueKindMismatch));
        assert_eq!(
            judged(Reported {
                indicator: "down".into(),
                ..downtime(-60, 0)
            }),
            Ok(())
        );
        assert_eq!(
            judged(Reported {
                indicator: "latency".into(),
                ..downtime(-60, 0)
            }),
            Err(Reason::ValueKindMismatch)
        );
        assert_eq!(
            judged(Reported {
                indicator: "down".into(),
                ..counts(1, 1)
            }),
            Err(Reason::ValueKindMismatch)
        );
        assert!(ValueKind::Counts.feeds(ObjectiveKind::Timeslice));
    }

    #[test]
    fn buckets_are_utc_aligned_minutes_hours_and_days() {
        let t = DateTime::parse_from_rfc3339("2026-03-10T12:34:56.789Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(Level::Raw.bucket_start(t), t);
        assert_eq!(Level::Minute.bucket_start(t), at("2026-03-10T12:34:00Z"));
        assert_eq!(Level::Hour.bucket_start(t), at("2026-03-10T12:00:00Z"));
        assert_eq!(Level::Day.bucket_start(t), at("2026-03-10T00:00:00Z"));
        // Before the epoch, buckets still start at or before the instant.
        let early = at("1969-12-31T23:59:59.5Z");
        assert_eq!(
            Level::Minute.bucket_start(early),
            at("1969-12-31T23:59:00Z")
        );
    }

    #[test]
    fn rollups_sum_each_bucket_in_its_series_and_in_every_report() {
        let tagged = check(&Reported {
            id: "a".into(),
            consumer: "tenants/t/parties/bank".into(),
            ..counts(1, 2)
        })
        .unwrap();
        let untagged = check(&Reported {
            id: "b".into(),
            time: Some(Sent::At(now() + Duration::seconds(30))),
            ..counts(3, 4)
        })
        .unwrap();
        let sums = rollups([&tagged, &untagged]);
        let get = |level, series: &str| {
            sums.get(&RollupKey {
                level,
                service: "pay",
                indicator: "requests",
                series,
                bucket: level.bucket_start(now()),
            })
            .copied()
        };
        for level in Level::ROLLUPS {
            assert_eq!(get(level, "bank"), Some((1, 2)));
            assert_eq!(get(level, UNTAGGED), Some((3, 4)));
            assert_eq!(get(level, ALL_SERIES), Some((4, 6)));
        }
        assert_eq!(sums.len(), 9);
    }

    #[test]
    fn cutoffs_keep_keys_a_grace_longer_and_months_run_two_ahead() {
        let policy = Policy::default();
        let c = policy.cutoffs(now());
        assert_eq!(c.raw_before, now() - Duration::days(35));
        assert_eq!(c.keys_before, c.raw_before - Duration::hours(1));
        assert_eq!(c.kept_before, now() - Duration::days(400));
        let short = Policy {
            max_age: Duration::seconds(2),
            ..policy
        };
        assert_eq!(
            short.cutoffs(now()).keys_before,
            now() - Duration::seconds(4)
        );
        let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            policy.months(now()),
            (date("2026-02-01"), date("2026-05-01"))
        );
    }

    #[test]
    fn views_read_every_series_or_the_untagged_and_their_own() {
        assert_eq!(View::ServiceWide.series(), [ALL_SERIES]);
        assert_eq!(View::ServiceWide.raw_series(), None);
        let bank = View::Consumer(id("bank"));
        assert_eq!(bank.series(), [UNTAGGED, "bank"]);
        assert_eq!(bank.raw_series(), Some(vec![UNTAGGED, "bank"]));
    }
}
