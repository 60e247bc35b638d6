//! Measurements a test reports and what it reads back: items of each value
//! kind (counts, samples, downtime) for the indicators of `measured_sla`,
//! instants near now, the world's steps to report them, and sums read
//! straight from the store (no RPC reads measurements back yet).

use std::ops::Range;
use std::sync::Arc;

use accord::domain::measurement::{Level, View};
use accord::domain::names::Id;
use accord::proto::v1 as pb;
use accord::store::{Access, Store};
use chrono::{DateTime, Utc};
use prost_types::Timestamp;
use tonic::Status;

use super::clock::now_ts;
use super::terms::{availability, latency, uptime};
use super::world::World;

/// The indicators of `measured_sla`'s objectives: RATIO, THRESHOLD, UPTIME.
pub const REQUESTS: &str = "http_success";
pub const LATENCY: &str = "p99_latency_ms";
pub const DOWNTIME: &str = "downtime";

/// `seconds` before now, to the microsecond (what the stores keep).
pub fn ago(seconds: i64) -> Timestamp {
    let now = now_ts();
    Timestamp {
        seconds: now.seconds - seconds,
        nanos: now.nanos / 1_000 * 1_000,
    }
}

pub fn instant(t: &Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.seconds, t.nanos as u32).expect("a valid instant")
}

/// Counts of `REQUESTS` on `service`, service-wide, taken at `time`.
pub fn counts(id: &str, service: &str, time: Timestamp, good: i64, total: i64) -> pb::Measurement {
    pb::Measurement {
        id: id.into(),
        service: service.into(),
        consumer: String::new(),
        indicator: REQUESTS.into(),
        time: Some(time),
        value: Some(pb::measurement::Value::Counts(pb::Counts { good, total })),
    }
}

/// A sample of `LATENCY` on `service` taken at `time`.
pub fn sample(id: &str, service: &str, time: Timestamp, value: f64) -> pb::Measurement {
    pb::Measurement {
        indicator: LATENCY.into(),
        value: Some(pb::measurement::Value::Sample(pb::Sample { value })),
        ..counts(id, service, time, 0, 0)
    }
}

/// `service` down over `[start, end)` (`DOWNTIME`).
pub fn downtime(id: &str, service: &str, start: Timestamp, end: Timestamp) -> pb::Measurement {
    pb::Measurement {
        id: id.into(),
        service: service.into(),
        consumer: String::new(),
        indicator: DOWNTIME.into(),
        time: None,
        value: Some(pb::measurement::Value::Downtime(pb::Downtime {
            start_time: Some(start),
            end_time: Some(end),
        })),
    }
}

/// `m`, tagged with `consumer`.
pub fn tagged(m: pb::Measurement, consumer: &str) -> pb::Measurement {
    pb::Measurement {
        consumer: consumer.into(),
        ..m
    }
}

/// A rejection as (index, id, reason).
pub fn rejected(r: &pb::MeasurementRejection) -> (i32, String, String) {
    (r.index, r.id.clone(), r.reason.clone())
}

impl World {
    /// An SLA on `payments` whose objectives use one indicator of each value
    /// kind: availability (`REQUESTS`, RATIO), latency (`LATENCY`, THRESHOLD)
    /// and uptime (`DOWNTIME`, UPTIME); published.
    pub async fn measured_sla(&self) -> pb::Agreement {
        let objectives = vec![availability(0.999), latency(300.0, 0.99), uptime(0.999)];
        self.publish("measured-sla", self.sla(objectives)).await
    }

    pub fn report_request(
        &self,
        measurements: Vec<pb::Measurement>,
    ) -> pb::ReportMeasurementsRequest {
        pb::ReportMeasurementsRequest {
            parent: self.tenant.clone(),
            measurements,
        }
    }

    pub async fn try_report(
        &self,
        measurements: Vec<pb::Measurement>,
    ) -> Result<pb::ReportMeasurementsResponse, Status> {
        self.measurements()
            .report_measurements(self.report_request(measurements))
            .await
            .map(|r| r.into_inner())
    }

    /// Reports `measurements` with the admin key.
    pub async fn report(
        &self,
        measurements: Vec<pb::Measurement>,
    ) -> pb::ReportMeasurementsResponse {
        self.try_report(measurements)
            .await
            .unwrap_or_else(|e| panic!("report measurements: {e:?}"))
    }
}

/// Reads what the store keeps of one tenant's measurements.
pub struct Stored {
    pub store: Arc<dyn Store>,
    pub tenant: Id,
}

/// A whole span around now: every instant a test reports.
pub fn around_now() -> Range<DateTime<Utc>> {
    let now = Utc::now();
    now - chrono::Duration::days(400)..now + chrono::Duration::days(1)
}

fn id(s: &str) -> Id {
    Id::parse("id", s).expect("an id")
}

impl Stored {
    pub fn of(store: Arc<dyn Store>, tenant: &str) -> Self {
        Self {
            store,
            tenant: id(tenant),
        }
    }

    /// The (good, total) of `service`'s `REQUESTS` that `view` sees, summed
    /// over the buckets of `level` in `span`.
    pub async fn counts(
        &self,
        service: &str,
        view: &View,
        level: Level,
        span: Range<DateTime<Utc>>,
    ) -> (i64, i64) {
        self.counts_of(service, REQUESTS, view, level, span).await
    }

    /// As `counts`, of `indicator`.
    pub async fn counts_of(
        &self,
        service: &str,
        indicator: &str,
        view: &View,
        level: Level,
        span: Range<DateTime<Utc>>,
    ) -> (i64, i64) {
        self.buckets_of(service, indicator, view, level, span)
            .await
            .iter()
            .fold((0, 0), |(g, t), b| (g + b.good, t + b.total))
    }

    pub async fn buckets(
        &self,
        service: &str,
        view: &View,
        level: Level,
        span: Range<DateTime<Utc>>,
    ) -> Vec<accord::domain::measurement::CountBucket> {
        self.buckets_of(service, REQUESTS, view, level, span).await
    }

    /// The buckets of `level` in `span` of `service`'s `indicator` that
    /// `view` sees, by start.
    pub async fn buckets_of(
        &self,
        service: &str,
        indicator: &str,
        view: &View,
        level: Level,
        span: Range<DateTime<Utc>>,
    ) -> Vec<accord::domain::measurement::CountBucket> {
        let mut tx = self
            .store
            .begin(Some(&self.tenant), Access::Read)
            .await
            .unwrap();
        tx.count_buckets(
            &self.tenant,
            &id(service),
            view,
            indicator,
            &[(level, span)],
        )
        .await
        .unwrap()
    }

    /// The sample values of `service`'s `LATENCY`, service-wide, by time.
    pub async fn samples(&self, service: &str) -> Vec<f64> {
        let mut tx = self
            .store
            .begin(Some(&self.tenant), Access::Read)
            .await
            .unwrap();
        tx.samples(
            &self.tenant,
            &id(service),
            &View::ServiceWide,
            LATENCY,
            &around_now(),
        )
        .await
        .unwrap()
        .iter()
        .map(|s| s.value)
        .collect()
    }

    /// The downtime of `service`, service-wide, by start.
    pub async fn downtime(&self, service: &str) -> Vec<Range<DateTime<Utc>>> {
        let mut tx = self
            .store
            .begin(Some(&self.tenant), Access::Read)
            .await
            .unwrap();
        tx.downtime(
            &self.tenant,
            &id(service),
            &View::ServiceWide,
            DOWNTIME,
            &around_now(),
        )
        .await
        .unwrap()
    }

    /// Which of `ids` the tenant holds a key of.
    pub async fn keys(&self, ids: &[&str]) -> Vec<String> {
        let mut tx = self
            .store
            .begin(Some(&self.tenant), Access::Read)
            .await
            .unwrap();
        let mut found: Vec<String> = tx
            .measurement_digests(&self.tenant, ids)
            .await
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        found.sort();
        found
    }
}
