//! Reporting measurements through the real server: every item checked on
//! its own and the valid ones of a batch stored, idempotent ids within and
//! across calls, the batch-level refusals, who may report, streams of
//! batches answered in order, rollups that sum what was reported, and
//! retention. What was stored is read back through the store (no RPC reads
//! measurements yet).

use accord::config::Config;
use accord::domain::measurement::{Level, View};
use accord::domain::names::Id;
use accord::proto::v1 as pb;
use chrono::{Duration, DurationRound, Utc};
use tokio_stream::StreamExt;
use tonic::Code;

use crate::on_both_backends;
use crate::support::*;

fn id(s: &str) -> Id {
    Id::parse("id", s).unwrap()
}

async fn stored(s: &TestServer, w: &World) -> Stored {
    Stored::of(s.store().await, &w.id)
}

// --- per item ----------------------------------------------------------------

async fn every_rejection_reason_is_reported_per_item_and_the_valid_items_are_stored(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.measured_sla().await;
    let pay = w.payments.clone();
    // An id stored before, so that another payload under it is refused.
    w.report(vec![counts("taken", &pay, ago(60), 1, 1)]).await;
    let (t, soon) = (ago(30), ago(20));
    let missing = |m: pb::Measurement| pb::Measurement { value: None, ..m };
    let no_time = |m: pb::Measurement| pb::Measurement { time: None, ..m };

    let batch = vec![
        counts("ok-counts", &pay, t, 9, 10),
        counts("bad id", &pay, t, 1, 1),
        missing(counts("no-value", &pay, t, 1, 1)),
        no_time(counts("no-time", &pay, t, 1, 1)),
        downtime("backwards", &pay, soon, t),
        counts("negative", &pay, t, -1, 1),
        counts("too-good", &pay, t, 3, 2),
        counts("too-many", &pay, t, 0, 1_000_000_000_001),
        sample("nan", &pay, t, f64::NAN),
        counts("future", &pay, ago(-600), 1, 1),
        counts("old", &pay, ago(36 * DAY), 1, 1),
        counts("no-service", &w.name("services", "nope"), t, 1, 1),
        tagged(
            counts("no-consumer", &pay, t, 1, 1),
            &w.name("parties", "nope"),
        ),
        pb::Measurement {
            indicator: "unused".into(),
            ..counts("no-indicator", &pay, t, 1, 1)
        },
        pb::Measurement {
            indicator: LATENCY.into(),
            ..counts("mismatch", &pay, t, 1, 1)
        },
        counts("taken", &pay, t, 2, 2),
        sample("ok-sample", &pay, t, 120.5),
        downtime("ok-downtime", &pay, t, soon),
    ];

    let response = w.report(batch).await;

    let reasons: Vec<(i32, String, String)> = response.rejections.iter().map(rejected).collect();
    let expected = [
        (1, "bad id", "INVALID_ID"),
        (2, "no-value", "MISSING_VALUE"),
        (3, "no-time", "MISSING_TIME"),
        (4, "backwards", "END_BEFORE_START"),
        (5, "negative", "NEGATIVE_COUNT"),
        (6, "too-good", "GOOD_EXCEEDS_TOTAL"),
        (7, "too-many", "COUNT_TOO_LARGE"),
        (8, "nan", "NOT_FINITE"),
        (9, "future", "TOO_FAR_IN_FUTURE"),
        (10, "old", "TOO_OLD"),
        (11, "no-service", "UNKNOWN_SERVICE"),
        (12, "no-consumer", "UNKNOWN_CONSUMER"),
        (13, "no-indicator", "UNKNOWN_INDICATOR"),
        (14, "mismatch", "VALUE_KIND_MISMATCH"),
        (15, "taken", "ALREADY_EXISTS"),
    ]
    .map(|(i, id, reason)| (i, id.to_string(), reason.to_string()));
    assert_eq!(reasons, expected);
    assert!(response.rejections.iter().all(|r| !r.message.is_empty()));
    assert_eq!((response.accepted, response.duplicates), (3, 0));

    let db = stored(&s, &w).await;
    let all = View::ServiceWide;
    assert_eq!(
        db.counts("payments", &all, Level::Raw, around_now()).await,
        (10, 11)
    );
    assert_eq!(db.samples("payments").await, [120.5]);
    assert_eq!(db.downtime("payments").await, [instant(&t)..instant(&soon)]);
    let mut ids = db
        .keys(&["ok-counts", "ok-sample", "ok-downtime", "taken", "negative"])
        .await;
    ids.sort();
    assert_eq!(ids, ["ok-counts", "ok-downtime", "ok-sample", "taken"]);
}

async fn an_id_repeated_in_a_batch_counts_once_or_is_already_exists(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.measured_sla().await;
    let pay = w.payments.clone();
    let t = ago(60);

    let response = w
        .report(vec![
            counts("a", &pay, t, 1, 2),
            counts("a", &pay, t, 1, 2),
            counts("a", &pay, t, 2, 2),
            counts("b", &pay, t, 3, 4),
        ])
        .await;

    assert_eq!((response.accepted, response.duplicates), (2, 1));
    let reasons: Vec<_> = response.rejections.iter().map(rejected).collect();
    assert_eq!(
        reasons,
        [(2, "a".to_string(), "ALREADY_EXISTS".to_string())]
    );
    let db = stored(&s, &w).await;
    let span = around_now();
    assert_eq!(
        db.counts("payments", &View::ServiceWide, Level::Raw, span.clone())
            .await,
        (4, 6)
    );
    assert_eq!(
        db.counts("payments", &View::ServiceWide, Level::Minute, span)
            .await,
        (4, 6)
    );
}

async fn a_retried_batch_counts_nothing_twice(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.measured_sla().await;
    let pay = w.payments.clone();
    let batch: Vec<pb::Measurement> = (0..50)
        .map(|i| match i % 3 {
            0 => counts(&format!("m{i}"), &pay, ago(100 + i), 1, 2),
            1 => sample(&format!("m{i}"), &pay, ago(100 + i), i as f64),
            _ => downtime(&format!("m{i}"), &pay, ago(200 + i), ago(150 + i)),
        })
        .collect();
    let first = w.report(batch.clone()).await;

    let again = w.report(batch.clone()).await;
    // Half of it again, with one new item: only the new one counts.
    let mut part = batch[..25].to_vec();
    part.push(counts("new", &pay, ago(10), 5, 5));
    let partly = w.report(part).await;

    assert_eq!((first.accepted, first.duplicates), (50, 0));
    assert_eq!((again.accepted, again.duplicates), (0, 50));
    assert!(again.rejections.is_empty(), "{:?}", again.rejections);
    assert_eq!((partly.accepted, partly.duplicates), (1, 25));
    let db = stored(&s, &w).await;
    for level in [Level::Raw, Level::Minute, Level::Hour, Level::Day] {
        assert_eq!(
            db.counts("payments", &View::ServiceWide, level, around_now())
                .await,
            (17 + 5, 34 + 5),
            "{level:?}"
        );
    }
    assert_eq!(db.samples("payments").await.len(), 17);
    assert_eq!(db.downtime("payments").await.len(), 16);
}

async fn the_same_id_with_another_payload_is_refused_in_a_later_call(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.measured_sla().await;
    let pay = w.payments.clone();
    let t = ago(60);
    w.report(vec![counts("m-1", &pay, t, 1, 2)]).await;

    let changed = [
        counts("m-1", &pay, t, 2, 2),
        counts("m-1", &pay, ago(61), 1, 2),
        tagged(counts("m-1", &pay, t, 1, 2), &w.bank),
        sample("m-1", &pay, t, 1.0),
    ];
    for m in changed {
        let response = w.report(vec![m.clone()]).await;
        let reasons: Vec<_> = response.rejections.iter().map(rejected).collect();
        assert_eq!(
            reasons,
            [(0, "m-1".to_string(), "ALREADY_EXISTS".to_string())],
            "{m:?}"
        );
        assert_eq!((response.accepted, response.duplicates), (0, 0));
    }
    let db = stored(&s, &w).await;
    assert_eq!(
        db.counts("payments", &View::ServiceWide, Level::Raw, around_now())
            .await,
        (1, 2)
    );
}

// --- the batch as a whole ------------------------------------------------------------

async fn more_than_ten_thousand_measurements_are_refused_as_a_whole(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.measured_sla().await;
    let pay = w.payments.clone();
    let t = ago(60);
    let batch: Vec<pb::Measurement> = (0..10_001)
        .map(|i| counts(&format!("m{i}"), &pay, t, 1, 1))
        .collect();

    let status = w.try_report(batch.clone()).await;
    let at_the_limit = w.report(batch[..10_000].to_vec()).await;

    assert_invalid_field(status, "measurements");
    assert_eq!(at_the_limit.accepted, 10_000);
    let db = stored(&s, &w).await;
    assert_eq!(
        db.counts("payments", &View::ServiceWide, Level::Day, around_now())
            .await,
        (10_000, 10_000)
    );
}

async fn a_bad_parent_is_refused_as_a_whole(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.measured_sla().await;
    let item = counts("m-1", &w.payments, ago(60), 1, 1);
    for parent in ["", "tenants/", "tenants/acme/services/payments", "acme"] {
        let result = w
            .measurements()
            .report_measurements(pb::ReportMeasurementsRequest {
                parent: parent.into(),
                measurements: vec![item.clone()],
            })
            .await;
        assert_invalid_field(result, "parent");
    }
    assert!(stored(&s, &w).await.keys(&["m-1"]).await.is_empty());
}

async fn reporters_may_report_readers_and_other_tenants_may_not(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.measured_sla().await;
    let other = World::empty(&s, "other").await;
    let reader = w.key("reader", pb::Role::Reader).await;
    let reporter = w.key("reporter", pb::Role::Reporter).await;
    let request = |id: &str| w.report_request(vec![counts(id, &w.payments, ago(60), 1, 1)]);

    let as_reader = w
        .calling_with(&reader)
        .measurements()
        .report_measurements(request("by-reader"))
        .await;
    let as_other = other
        .measurements()
        .report_measurements(request("by-other"))
        .await;
    let as_reporter = w
        .calling_with(&reporter)
        .measurements()
        .report_measurements(request("by-reporter"))
        .await
        .unwrap()
        .into_inner();

    let denied = assert_code(as_reader, Code::PermissionDenied);
    assert_reason(&denied, "PERMISSION_DENIED");
    let denied = assert_code(as_other, Code::PermissionDenied);
    assert_reason(&denied, "PERMISSION_DENIED");
    assert_eq!(as_reporter.accepted, 1);
    let db = stored(&s, &w).await;
    assert_eq!(
        db.keys(&["by-reader", "by-other", "by-reporter"]).await,
        ["by-reporter"]
    );
}

// --- streams ----------------------------------------------------------------

fn stream_request(
    w: &World,
    sequence: i64,
    measurements: Vec<pb::Measurement>,
) -> pb::StreamMeasurementsRequest {
    pb::StreamMeasurementsRequest {
        parent: w.tenant.clone(),
        measurements,
        sequence,
    }
}

async fn a_stream_answers_each_batch_once_in_order_with_its_sequence(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.measured_sla().await;
    let pay = w.payments.clone();
    let base = ago(300);
    let at = |i: i64| ts(base.seconds - i);
    let batches: Vec<pb::StreamMeasurementsRequest> = (0..6)
        .map(|b| {
            let mut items: Vec<pb::Measurement> = (0..100)
                .map(|i| counts(&format!("b{b}-{i}"), &pay, at(i), 1, 2))
                .collect();
            // One repeat of the previous batch and one bad item in each.
            if b > 0 {
                items.push(counts(&format!("b{}-0", b - 1), &pay, at(0), 1, 2));
            }
            items.push(counts(&format!("b{b}-bad"), &pay, ago(60), 3, 2));
            stream_request(&w, 1000 + b, items)
        })
        .collect();

    let answers: Vec<pb::StreamMeasurementsResponse> = w
        .measurements()
        .stream_measurements(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner()
        .map(|answer| answer.expect("an answer"))
        .collect()
        .await;

    let sequences: Vec<i64> = answers.iter().map(|a| a.sequence).collect();
    assert_eq!(sequences, [1000, 1001, 1002, 1003, 1004, 1005]);
    for (b, answer) in answers.iter().enumerate() {
        assert_eq!(answer.accepted, 100, "batch {b}");
        assert_eq!(answer.duplicates, i64::from(b > 0), "batch {b}");
        let reasons: Vec<_> = answer.rejections.iter().map(rejected).collect();
        let last = 100 + i32::from(b > 0);
        assert_eq!(
            reasons,
            [(last, format!("b{b}-bad"), "GOOD_EXCEEDS_TOTAL".to_string())]
        );
    }
    let db = stored(&s, &w).await;
    assert_eq!(
        db.counts("payments", &View::ServiceWide, Level::Hour, around_now())
            .await,
        (600, 1200)
    );
}

async fn a_stream_whose_parent_changes_fails_with_invalid_argument(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.measured_sla().await;
    let pay = w.payments.clone();
    let first = stream_request(&w, 1, vec![counts("first", &pay, ago(60), 1, 1)]);
    let second = pb::StreamMeasurementsRequest {
        parent: "tenants/other".into(),
        ..stream_request(&w, 2, vec![counts("second", &pay, ago(60), 1, 1)])
    };
    let third = stream_request(&w, 3, vec![counts("third", &pay, ago(60), 1, 1)]);

    let mut answers = w
        .measurements()
        .stream_measurements(tokio_stream::iter([first, second, third]))
        .await
        .unwrap()
        .into_inner();

    let acknowledged = answers.message().await.unwrap().unwrap();
    assert_eq!((acknowledged.sequence, acknowledged.accepted), (1, 1));
    assert_invalid_field(answers.message().await, "parent");
    assert!(matches!(answers.message().await, Ok(None) | Err(_)));
    let db = stored(&s, &w).await;
    assert_eq!(db.keys(&["first", "second", "third"]).await, ["first"]);
}

async fn a_stream_refuses_a_reader_and_an_oversized_batch(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.measured_sla().await;
    let reader = w.key("reader", pb::Role::Reader).await;
    let one = stream_request(&w, 1, vec![counts("m", &w.payments, ago(60), 1, 1)]);
    let huge = stream_request(
        &w,
        2,
        (0..10_001)
            .map(|i| counts(&format!("h{i}"), &w.payments, ago(60), 1, 1))
            .collect(),
    );

    let as_reader = w
        .calling_with(&reader)
        .measurements()
        .stream_measurements(tokio_stream::iter([one.clone()]))
        .await;
    let mut oversized = w
        .measurements()
        .stream_measurements(tokio_stream::iter([one, huge]))
        .await
        .unwrap()
        .into_inner();

    assert_code(as_reader, Code::PermissionDenied);
    assert_eq!(oversized.message().await.unwrap().unwrap().accepted, 1);
    assert_invalid_field(oversized.message().await, "measurements");
}

async fn another_tenants_parent_fails_the_stream_with_permission_denied(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let other = World::new(&s, "other").await;
    other.measured_sla().await;
    let request = stream_request(&other, 1, vec![counts("m", &other.payments, ago(60), 1, 1)]);

    let mut answers = w
        .measurements()
        .stream_measurements(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();

    let status = assert_code(answers.message().await, Code::PermissionDenied);
    assert_reason(&status, "PERMISSION_DENIED");
    assert!(stored(&s, &other).await.keys(&["m"]).await.is_empty());
}

async fn a_stream_ends_at_its_next_batch_once_its_key_is_revoked(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.measured_sla().await;
    let reporter = w.key("reporter", pb::Role::Reporter).await;
    let (batches, rx) = tokio::sync::mpsc::channel(4);
    let mut answers = w
        .calling_with(&reporter)
        .measurements()
        .stream_measurements(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let batch = |sequence: i64, mid: &str| {
        stream_request(&w, sequence, vec![counts(mid, &w.payments, ago(60), 1, 1)])
    };
    batches.send(batch(1, "before")).await.unwrap();
    assert_eq!(answers.message().await.unwrap().unwrap().accepted, 1);

    w.revoke_key("reporter").await;
    batches.send(batch(2, "after")).await.unwrap();

    let status = assert_code(answers.message().await, Code::Unauthenticated);
    assert_reason(&status, "UNAUTHENTICATED");
    let db = stored(&s, &w).await;
    assert_eq!(db.keys(&["before", "after"]).await, ["before"]);
}

// --- rollups ----------------------------------------------------------------

async fn rollups_sum_to_the_raw_counts_at_every_level_and_in_every_series(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.measured_sla().await;
    let pay = w.payments.clone();
    let retail = w.party("retail", None).await;
    // Three days of counts every 7 minutes, a third untagged, a third the
    // bank's, a third retail's.
    let batch: Vec<pb::Measurement> = (0..(3 * 24 * 60 / 7))
        .map(|i| {
            let m = counts(
                &format!("m{i}"),
                &pay,
                ago(60 + i * 7 * 60),
                i % 5,
                5 + i % 3,
            );
            match i % 3 {
                0 => m,
                1 => tagged(m, &w.bank),
                _ => tagged(m, &retail),
            }
        })
        .collect();
    let sum = |of: &dyn Fn(usize) -> bool| {
        batch
            .iter()
            .enumerate()
            .filter(|(i, _)| of(*i))
            .fold((0, 0), |(g, t), (_, m)| match &m.value {
                Some(pb::measurement::Value::Counts(c)) => (g + c.good, t + c.total),
                _ => (g, t),
            })
    };
    let everything = sum(&|_| true);
    let for_bank = sum(&|i| i % 3 != 2);
    w.report(batch.clone()).await;

    let db = stored(&s, &w).await;
    let bank = View::Consumer(id("bank"));
    for level in [Level::Raw, Level::Minute, Level::Hour, Level::Day] {
        let span = around_now();
        assert_eq!(
            db.counts("payments", &View::ServiceWide, level, span.clone())
                .await,
            everything,
            "service-wide, {level:?}"
        );
        assert_eq!(
            db.counts("payments", &bank, level, span).await,
            for_bank,
            "the bank's view, {level:?}"
        );
    }
    // Bucket by bucket: each hour holds what was taken in it.
    let hours = db
        .buckets("payments", &View::ServiceWide, Level::Hour, around_now())
        .await;
    assert!(hours.len() >= 72, "{} hours", hours.len());
    for bucket in &hours {
        let in_hour = |i: usize| {
            let t = instant(batch[i].time.as_ref().unwrap());
            t.duration_trunc(Duration::hours(1)).unwrap() == bucket.start
        };
        assert_eq!((bucket.good, bucket.total), sum(&in_hour), "{bucket:?}");
    }
    // A range of a level counts only the buckets starting inside it.
    let day = Utc::now().duration_trunc(Duration::days(1)).unwrap();
    let today = db
        .counts(
            "payments",
            &View::ServiceWide,
            Level::Day,
            day..day + Duration::days(1),
        )
        .await;
    let today_raw = db
        .counts(
            "payments",
            &View::ServiceWide,
            Level::Raw,
            day..day + Duration::days(1),
        )
        .await;
    assert_eq!(today, today_raw);
}

// --- deletion ----------------------------------------------------------------

/// A service's measurements go with it: a service created again under the
/// same id (and an agreement on it) starts without them.
async fn deleting_a_service_deletes_its_measurements(s: TestServer) {
    let w = World::new(&s, "acme").await;
    let objectives = vec![availability(0.999), latency(300.0, 0.99), uptime(0.999)];
    let draft = w.draft("draft-sla", w.sla(objectives)).await;
    let pay = w.payments.clone();
    let response = w
        .report(vec![
            counts("c1", &pay, ago(120), 9, 10),
            tagged(counts("c2", &pay, ago(90), 1, 2), &w.bank),
            sample("s1", &pay, ago(60), 120.0),
            downtime("d1", &pay, ago(300), ago(240)),
        ])
        .await;
    assert_eq!(response.accepted, 4, "{response:?}");
    let db = stored(&s, &w).await;
    assert_eq!(
        db.counts("payments", &View::ServiceWide, Level::Minute, around_now())
            .await,
        (10, 12)
    );

    w.delete_agreement(&draft.name).await;
    w.services()
        .delete_service(pb::DeleteServiceRequest {
            name: pay.clone(),
            etag: String::new(),
        })
        .await
        .expect("delete the service");
    assert_eq!(w.service("payments").await, pay);

    for level in [Level::Raw, Level::Minute, Level::Hour, Level::Day] {
        for view in [View::ServiceWide, View::Consumer(id("bank"))] {
            assert_eq!(
                db.counts("payments", &view, level, around_now()).await,
                (0, 0),
                "{view:?}, {level:?}"
            );
        }
    }
    assert!(db.samples("payments").await.is_empty());
    assert!(db.downtime("payments").await.is_empty());
}

// --- retention ----------------------------------------------------------------

fn short_measurement_max_age(config: &mut Config) {
    config.measurement_max_age = std::time::Duration::from_secs(2);
    config.rollup_retention = std::time::Duration::from_secs(2);
}

async fn retention_forgets_expired_keys_and_rows(s: TestServer) {
    let w = World::new(&s, "acme").await;
    w.measured_sla().await;
    let pay = w.payments.clone();
    let taken = ago(1);
    let response = w
        .report(vec![
            counts("c", &pay, taken, 1, 2),
            sample("s", &pay, ago(1), 3.0),
            downtime("d", &pay, ago(1), ago(0)),
        ])
        .await;
    assert_eq!(response.accepted, 3);
    let db = stored(&s, &w).await;
    assert_eq!(db.keys(&["c", "s", "d"]).await, ["c", "d", "s"]);

    // Keys go 2 s past the age (a grace as long as the age, at most an hour).
    eventually(std::time::Duration::from_secs(20), || async {
        db.keys(&["c", "s", "d"]).await.is_empty()
    })
    .await;

    let counted = db
        .counts("payments", &View::ServiceWide, Level::Minute, around_now())
        .await;
    match s.db {
        // Rows expire one by one.
        TestDb::Sqlite { .. } => {
            assert_eq!(counted, (0, 0));
            assert!(db.samples("payments").await.is_empty());
            assert!(db.downtime("payments").await.is_empty());
            assert_eq!(
                db.counts("payments", &View::ServiceWide, Level::Raw, around_now())
                    .await,
                (0, 0)
            );
        }
        // Rows go with their month, whole: this one is not over yet (unless
        // the test ran across the turn of a month).
        TestDb::Postgres { .. } => {
            let month = |t: chrono::DateTime<Utc>| t.format("%Y-%m").to_string();
            if month(instant(&taken)) == month(Utc::now() - Duration::seconds(10)) {
                assert_eq!(counted, (1, 2));
            }
        }
    }
    // The id is free again: a new measurement may take it.
    let again = w.report(vec![counts("c", &pay, ago(1), 1, 2)]).await;
    assert_eq!(again.accepted, 1);
}

on_both_backends!(
    every_rejection_reason_is_reported_per_item_and_the_valid_items_are_stored,
    an_id_repeated_in_a_batch_counts_once_or_is_already_exists,
    a_retried_batch_counts_nothing_twice,
    the_same_id_with_another_payload_is_refused_in_a_later_call,
    more_than_ten_thousand_measurements_are_refused_as_a_whole,
    a_bad_parent_is_refused_as_a_whole,
    reporters_may_report_readers_and_other_tenants_may_not,
    a_stream_answers_each_batch_once_in_order_with_its_sequence,
    a_stream_whose_parent_changes_fails_with_invalid_argument,
    a_stream_refuses_a_reader_and_an_oversized_batch,
    another_tenants_parent_fails_the_stream_with_permission_denied,
    a_stream_ends_at_its_next_batch_once_its_key_is_revoked,
    rollups_sum_to_the_raw_counts_at_every_level_and_in_every_series,
    deleting_a_service_deletes_its_measurements,
);

mod retention {
    use super::*;

    on_both_backends!(configured by short_measurement_max_age: retention_forgets_expired_keys_and_rows);
}
