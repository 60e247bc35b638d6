//! `accord.v1.MeasurementService`: batches of measurements, one per call
//! (ReportMeasurements) or many over a stream (StreamMeasurements), each
//! answered once committed. Only a malformed request fails as a whole (more
//! than `MAX_MEASUREMENTS` items, a bad parent, a stream changing its
//! parent); each item is otherwise accepted, a duplicate, or rejected on its
//! own.

use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_core::Stream;
use prost_types::Timestamp;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::convert::bounded;
use crate::auth::{Authenticator, Principal, principal};
use crate::domain::measurement::{MAX_MEASUREMENTS, Reported, Sent, SentValue};
use crate::domain::names::{Id, TenantName};
use crate::error::{Error, Violations};
use crate::proto::v1 as pb;
use crate::proto::v1::measurement_service_server::MeasurementService;
use crate::service::Registry;
use crate::service::measurements::{Checked, Outcome};

pub struct MeasurementApi {
    registry: Arc<Registry>,
    /// Streams check their key again before each batch after the first.
    authenticator: Arc<Authenticator>,
    /// Turns true when the server starts shutting down: streams end after
    /// the batch in hand.
    stopping: watch::Receiver<bool>,
}

impl MeasurementApi {
    pub fn new(
        registry: Arc<Registry>,
        authenticator: Arc<Authenticator>,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        Self {
            registry,
            authenticator,
            stopping,
        }
    }
}

/// An instant as sent, truncated to microseconds (what PostgreSQL keeps);
/// one beyond what a clock can show lies at the end of time in its
/// direction (and is refused as too old or too far ahead).
fn sent(t: &Timestamp) -> Sent {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Sent::Invalid;
    }
    let nanos = (t.nanos / 1_000 * 1_000) as u32;
    Sent::At(
        DateTime::from_timestamp(t.seconds, nanos).unwrap_or(if t.seconds < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        }),
    )
}

fn reported_in(m: &pb::Measurement) -> Reported {
    use pb::measurement::Value as V;
    Reported {
        id: m.id.clone(),
        service: m.service.clone(),
        consumer: m.consumer.clone(),
        indicator: m.indicator.clone(),
        time: m.time.as_ref().map(sent),
        value: m.value.as_ref().map(|v| match v {
            V::Counts(c) => SentValue::Counts {
                good: c.good,
                total: c.total,
            },
            V::Sample(s) => SentValue::Sample(s.value),
            V::Downtime(d) => SentValue::Downtime {
                start: d.start_time.as_ref().map(sent),
                end: d.end_time.as_ref().map(sent),
            },
        }),
    }
}

/// The tenant of a request's `parent`, if the caller may report to it.
fn tenant_in(principal: &Principal, parent: &str) -> Result<Id, Error> {
    let tenant = TenantName::parse("parent", parent)?.0;
    principal.check_tenant(&tenant)?;
    Ok(tenant)
}

/// The items of a batch: at most `MAX_MEASUREMENTS`, else the whole batch is
/// refused on `measurements` without decoding any.
fn batch_in(measurements: &[pb::Measurement]) -> Result<Vec<Reported>, Error> {
    let mut v = Violations::new();
    let items = bounded(&mut v, "measurements", measurements, MAX_MEASUREMENTS);
    v.into_result()?;
    Ok(items.iter().map(reported_in).collect())
}

fn rejections_out(outcome: &Outcome) -> Vec<pb::MeasurementRejection> {
    outcome
        .rejections
        .iter()
        .map(|r| pb::MeasurementRejection {
            index: r.index as i32,
            id: r.id.clone(),
            reason: r.rejection.reason.as_str().to_string(),
            message: r.rejection.message.clone(),
        })
        .collect()
}

pub type MeasurementStream =
    Pin<Box<dyn Stream<Item = Result<pb::StreamMeasurementsResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl MeasurementService for MeasurementApi {
    async fn report_measurements(
        &self,
        request: Request<pb::ReportMeasurementsRequest>,
    ) -> Result<Response<pb::ReportMeasurementsResponse>, Status> {
        let tenant = tenant_in(principal(&request)?, &request.get_ref().parent)?;
        let batch = batch_in(&request.get_ref().measurements)?;
        let outcome = self.registry.measurements().report(&tenant, &batch).await?;
        Ok(Response::new(pb::ReportMeasurementsResponse {
            accepted: outcome.accepted,
            duplicates: outcome.duplicates,
            rejections: rejections_out(&outcome),
        }))
    }

    type StreamMeasurementsStream = MeasurementStream;

    async fn stream_measurements(
        &self,
        request: Request<Streaming<pb::StreamMeasurementsRequest>>,
    ) -> Result<Response<Self::StreamMeasurementsStream>, Status> {
        let principal = principal(&request)?.clone();
        let batches = BatchStream {
            registry: self.registry.clone(),
            authenticator: self.authenticator.clone(),
            principal,
            stopping: self.stopping.clone(),
        };
        // A few answers may wait for a slow reader; then batches wait too.
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(batches.run(request.into_inner(), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

type Sink = mpsc::Sender<Result<pb::StreamMeasurementsResponse, Status>>;

/// One StreamMeasurements call: its batches in order, each answered once
/// committed. The next batch is read and checked (`read_ahead`) while the
/// last one is written, one batch ahead at most. Like a watch, the call
/// outlives its first check: each later batch checks the key again
/// (through the key cache), so a revoked or expired key, or a deleted
/// tenant, ends the stream.
struct BatchStream {
    registry: Arc<Registry>,
    authenticator: Arc<Authenticator>,
    principal: Principal,
    stopping: watch::Receiver<bool>,
}

/// A batch read and checked, waiting for its turn to be written.
struct Ahead {
    sequence: i64,
    tenant: Id,
    /// Whether the key must be checked again: every batch but the first.
    recheck: bool,
    checked: Checked,
}

/// Aborts the task it holds when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl BatchStream {
    async fn run(mut self, inbound: Streaming<pb::StreamMeasurementsRequest>, tx: Sink) {
        let (ahead_tx, mut ahead) = mpsc::channel(1);
        let _reader = AbortOnDrop(tokio::spawn(read_ahead(
            self.registry.clone(),
            self.principal.clone(),
            inbound,
            ahead_tx,
        )));
        loop {
            if *self.stopping.borrow_and_update() {
                let _ = tx.send(Err(shutting_down())).await;
                return;
            }
            let next = tokio::select! {
                next = ahead.recv() => next,
                _ = tx.closed() => return,
                _ = self.stopping.changed() => {
                    let _ = tx.send(Err(shutting_down())).await;
                    return;
                }
            };
            let answer = match next {
                Some(Ok(batch)) => self.store(batch).await,
                Some(Err(status)) => Err(status),
                // The client has sent everything and had every answer, or
                // went away or broke the stream: nothing more to tell.
                None => return,
            };
            let failed = answer.is_err();
            if tx.send(answer).await.is_err() || failed {
                return;
            }
        }
    }

    /// Stores one batch and says what became of it; an error ends the
    /// stream.
    async fn store(&self, batch: Ahead) -> Result<pb::StreamMeasurementsResponse, Status> {
        if batch.recheck {
            self.authenticator
                .recheck(&self.principal, &batch.tenant)
                .await?;
        }
        let outcome = self
            .registry
            .measurements()
            .store(&batch.tenant, batch.checked)
            .await?;
        Ok(pb::StreamMeasurementsResponse {
            sequence: batch.sequence,
            accepted: outcome.accepted,
            duplicates: outcome.duplicates,
            rejections: rejections_out(&outcome),
        })
    }
}

/// Reads the stream's messages and checks each batch on its own, handing
/// them on in order; a malformed message is handed on as the error that
/// ends the stream. Ends when the client does, or when nobody waits.
async fn read_ahead(
    registry: Arc<Registry>,
    principal: Principal,
    mut inbound: Streaming<pb::StreamMeasurementsRequest>,
    ahead: mpsc::Sender<Result<Ahead, Status>>,
) {
    // The first message's parent, as sent, and its tenant.
    let mut parent: Option<(String, Id)> = None;
    while let Ok(Some(request)) = inbound.message().await {
        let batch = async {
            let (tenant, recheck) = match &parent {
                Some((sent, tenant)) if *sent == request.parent => (tenant.clone(), true),
                Some((sent, _)) => {
                    return Err(Error::invalid(
                        "parent",
                        format!("must be the same in every message of the stream: `{sent}`"),
                    )
                    .into());
                }
                None => {
                    let tenant = tenant_in(&principal, &request.parent)?;
                    parent = Some((request.parent.clone(), tenant.clone()));
                    (tenant, false)
                }
            };
            let reported = batch_in(&request.measurements)?;
            let checked = registry.measurements().check(&tenant, &reported).await;
            Ok(Ahead {
                sequence: request.sequence,
                tenant,
                recheck,
                checked,
            })
        }
        .await;
        let failed = batch.is_err();
        if ahead.send(batch).await.is_err() || failed {
            return;
        }
    }
}

fn shutting_down() -> Status {
    Status::unavailable(
        "the server is shutting down: resend every unacknowledged batch to another server",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_truncated_to_microseconds_and_bad_ones_kept_apart() {
        let t = Timestamp {
            seconds: 1_700_000_000,
            nanos: 123_456_789,
        };
        assert_eq!(
            sent(&t),
            Sent::At(DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap())
        );
        for nanos in [-1, 1_000_000_000] {
            let bad = Timestamp { seconds: 0, nanos };
            assert_eq!(sent(&bad), Sent::Invalid);
        }
        let far = Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(sent(&far), Sent::At(DateTime::<Utc>::MAX_UTC));
        let early = Timestamp {
            seconds: i64::MIN,
            nanos: 0,
        };
        assert_eq!(sent(&early), Sent::At(DateTime::<Utc>::MIN_UTC));
    }
}
