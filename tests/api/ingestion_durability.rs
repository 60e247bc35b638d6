//! Ingestion that survives what goes wrong between a reporter and the
//! server. Retries: 100,000 counts sent twice, by stream and by call, with
//! streams dropped and calls cancelled mid-way, every unanswered batch sent
//! again and some answered ones too. Crash: the real binary killed with
//! SIGKILL in the middle of a stream five times and restarted on the same
//! database, the reporter sending again every batch it had no answer for.
//! Either way the totals come out exact, every duplicate is counted, and
//! nothing acknowledged is lost.
//!
//! The schedule (the batches, each one's transport, where a stream is cut
//! or a call given up) comes from a seed, printed at the start;
//! `ACCORD_INGESTION_SEED=<seed>` replays it. How much of a cut-off batch
//! the server had committed depends on timing: being one transaction, all
//! of it or none, which its resend's answer tells (retries) or the store
//! shows once the server is dead (crash).

use std::collections::{BTreeMap, VecDeque};
use std::ops::RangeInclusive;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use accord::domain::measurement::{Level, View};
use accord::domain::names::Id;
use accord::proto::v1 as pb;
use pb::measurement_service_client::MeasurementServiceClient;
use prost_types::Timestamp;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::on_both_backends;
use crate::support::*;

const SEED_VAR: &str = "ACCORD_INGESTION_SEED";

/// The RATIO indicators of the world's SLA.
const INDICATORS: [&str; 3] = [REQUESTS, "checkout_events", "search_events"];

/// Batches a stream keeps in flight: sent and not yet answered.
const WINDOW: usize = 4;

fn seed_of(test: &str) -> u64 {
    let seed = match std::env::var(SEED_VAR) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_VAR}={v} is not a u64")),
        Err(_) => rand::random(),
    };
    eprintln!("{test}: seed {seed} (replay with {SEED_VAR}={seed})");
    seed
}

// --- what is reported -------------------------------------------------------------

/// A world whose SLA on `payments` has a RATIO objective for each of
/// `INDICATORS`, and the consumers a report may be tagged with: none
/// (service-wide), the bank, retail.
async fn counted_world(s: &TestServer) -> (World, Vec<String>) {
    let w = World::new(s, "acme").await;
    let objectives = vec![
        availability(0.999),
        ratio("checkout", 0.99),
        ratio("search", 0.95),
    ];
    w.publish("counted-sla", w.sla(objectives)).await;
    let retail = w.party("retail", None).await;
    let consumers = vec![String::new(), w.bank.clone(), retail];
    (w, consumers)
}

/// `n` counts on `payments`, each of one of `INDICATORS` and tagged with one
/// of `consumers`, taken at instants over the last two days.
fn reports(w: &World, consumers: &[String], n: usize, rng: &mut StdRng) -> Vec<pb::Measurement> {
    let now = now_ts().seconds;
    (0..n)
        .map(|i| {
            let total = rng.random_range(1..=1_000);
            let good = rng.random_range(0..=total);
            let time = Timestamp {
                seconds: now - 60 - rng.random_range(0..2 * DAY),
                nanos: rng.random_range(0..1_000_000) * 1_000,
            };
            let m = pb::Measurement {
                indicator: INDICATORS[rng.random_range(0..INDICATORS.len())].into(),
                ..counts(&format!("m-{i:06}"), &w.payments, time, good, total)
            };
            tagged(m, &consumers[rng.random_range(0..consumers.len())])
        })
        .collect()
}

fn counts_of(m: &pb::Measurement) -> (i64, i64) {
    match &m.value {
        Some(pb::measurement::Value::Counts(c)) => (c.good, c.total),
        other => panic!("only counts are reported here: {other:?}"),
    }
}

/// The (good, total) of `indicator` a view sees: every report (`None`:
/// service-wide), or the untagged ones and `consumer`'s.
fn expected(reports: &[pb::Measurement], indicator: &str, consumer: Option<&str>) -> (i64, i64) {
    reports
        .iter()
        .filter(|m| m.indicator == indicator)
        .filter(|m| consumer.is_none_or(|c| m.consumer.is_empty() || m.consumer == c))
        .map(counts_of)
        .fold((0, 0), |(g, t), (good, total)| (g + good, t + total))
}

/// Checks that the store holds each report once: its key, and the sums of
/// every indicator in every view at every level, and hour by hour.
async fn assert_stored_once(db: &Stored, consumers: &[String], reports: &[pb::Measurement]) {
    let ids: Vec<&str> = reports.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        db.keys(&ids).await.len(),
        reports.len(),
        "every report's key"
    );
    let mut views = vec![(View::ServiceWide, None)];
    for consumer in consumers.iter().filter(|c| !c.is_empty()) {
        let party = consumer.rsplit('/').next().expect("a party name");
        let id = Id::parse("consumer", party).expect("a party id");
        views.push((View::Consumer(id), Some(consumer.as_str())));
    }
    for indicator in INDICATORS {
        for (view, consumer) in &views {
            let want = expected(reports, indicator, *consumer);
            for level in [Level::Raw, Level::Minute, Level::Hour, Level::Day] {
                let got = db
                    .counts_of("payments", indicator, view, level, around_now())
                    .await;
                assert_eq!(got, want, "{indicator}, {view:?}, {level:?}");
            }
        }
        let mut hours: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        for m in reports.iter().filter(|m| m.indicator == indicator) {
            let t = m.time.as_ref().expect("counts have a time").seconds;
            let (good, total) = counts_of(m);
            let hour = hours.entry(t - t.rem_euclid(3_600)).or_default();
            *hour = (hour.0 + good, hour.1 + total);
        }
        let stored: BTreeMap<i64, (i64, i64)> = db
            .buckets_of(
                "payments",
                indicator,
                &View::ServiceWide,
                Level::Hour,
                around_now(),
            )
            .await
            .iter()
            .map(|b| (b.start.timestamp(), (b.good, b.total)))
            .collect();
        assert_eq!(stored, hours, "{indicator}, service-wide, hour by hour");
    }
}

// --- what the reporter sends and is told ------------------------------------------

/// A batch: positions in the reports.
#[derive(Debug, Clone)]
struct Batch {
    items: Vec<usize>,
    /// Sent before without an answer: that attempt may have been
    /// committed (all of it: a batch is one transaction).
    cut_off: bool,
}

/// The reports in random order, cut into batches of random sizes in `sizes`.
fn batches(n: usize, sizes: RangeInclusive<usize>, rng: &mut StdRng) -> VecDeque<Batch> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let mut batches = VecDeque::new();
    let mut rest = &order[..];
    while !rest.is_empty() {
        let size = rng.random_range(sizes.clone()).min(rest.len());
        let (items, after) = rest.split_at(size);
        batches.push_back(Batch {
            items: items.to_vec(),
            cut_off: false,
        });
        rest = after;
    }
    batches
}

/// What the reporter has been told, and what it follows from it.
struct Ledger {
    /// Whether each report is known to be stored.
    stored: Vec<bool>,
    answers: usize,
    accepted: i64,
    duplicates: i64,
    /// Items of answered batches already stored when their batch ran: the
    /// expected duplicates.
    already_stored: i64,
    /// Reports stored by an attempt that was never answered.
    stored_unanswered: i64,
    /// Cut-off batches found committed, and found not, when sent again.
    cut_off_committed: usize,
    cut_off_lost: usize,
}

impl Ledger {
    fn new(reports: usize) -> Self {
        Self {
            stored: vec![false; reports],
            answers: 0,
            accepted: 0,
            duplicates: 0,
            already_stored: 0,
            stored_unanswered: 0,
            cut_off_committed: 0,
            cut_off_lost: 0,
        }
    }

    /// The answer to `batch`: each item accepted or a duplicate, the
    /// duplicates being exactly the items stored before, which are those
    /// known stored, or every item if a cut-off attempt of this very batch
    /// was committed unanswered.
    fn settle(
        &mut self,
        batch: &Batch,
        accepted: i64,
        duplicates: i64,
        rejections: &[pb::MeasurementRejection],
    ) {
        assert!(rejections.is_empty(), "nothing is rejected: {rejections:?}");
        let len = batch.items.len() as i64;
        assert_eq!(
            accepted + duplicates,
            len,
            "each item is accepted or a duplicate"
        );
        let known = batch.items.iter().filter(|&&i| self.stored[i]).count() as i64;
        let before = if duplicates == known {
            if batch.cut_off && known < len {
                self.cut_off_lost += 1;
            }
            known
        } else {
            assert!(
                batch.cut_off && duplicates == len,
                "{duplicates} duplicates in a batch of {len} of which {known} were stored \
                 before (sent before without an answer: {})",
                batch.cut_off
            );
            self.cut_off_committed += 1;
            self.stored_unanswered += len - known;
            len
        };
        self.answers += 1;
        self.accepted += accepted;
        self.duplicates += duplicates;
        self.already_stored += before;
        for &i in &batch.items {
            self.stored[i] = true;
        }
    }

    /// The items of `batch` not known to be stored.
    fn unknown(&self, batch: &Batch) -> Vec<usize> {
        batch
            .items
            .iter()
            .copied()
            .filter(|&i| !self.stored[i])
            .collect()
    }

    /// What the store holds of a batch cut off by a crash, once nothing can
    /// commit it any more: `present` of its `new` items (`unknown`).
    fn found(&mut self, batch: &mut Batch, new: Vec<usize>, present: usize) {
        assert!(
            present == 0 || present == new.len(),
            "a batch is stored whole or not at all: {present} of {} items",
            new.len()
        );
        if present > 0 {
            self.cut_off_committed += 1;
            self.stored_unanswered += present as i64;
            for i in new {
                self.stored[i] = true;
            }
        } else if !new.is_empty() {
            self.cut_off_lost += 1;
        }
        // Known now: its resend's duplicates are exactly what is stored.
        batch.cut_off = false;
    }
}

type Client = MeasurementServiceClient<Authed>;

/// One StreamMeasurements call with up to `WINDOW` batches in flight.
struct OpenStream {
    parent: String,
    batches: mpsc::Sender<pb::StreamMeasurementsRequest>,
    answers: tonic::Streaming<pb::StreamMeasurementsResponse>,
    in_flight: VecDeque<(i64, Batch)>,
}

impl OpenStream {
    async fn open(client: &mut Client, parent: &str) -> Self {
        let (batches, rx) = mpsc::channel(WINDOW);
        let answers = client
            .stream_measurements(ReceiverStream::new(rx))
            .await
            .expect("open a measurement stream")
            .into_inner();
        Self {
            parent: parent.into(),
            batches,
            answers,
            in_flight: VecDeque::new(),
        }
    }

    /// Sends batches from the front of `queue` until `WINDOW` are in
    /// flight, at most `budget` of them.
    async fn fill(
        &mut self,
        reports: &[pb::Measurement],
        queue: &mut VecDeque<Batch>,
        budget: &mut usize,
        sequence: &mut i64,
    ) {
        while self.in_flight.len() < WINDOW && *budget > 0 {
            let Some(batch) = queue.pop_front() else {
                return;
            };
            *sequence += 1;
            let request = pb::StreamMeasurementsRequest {
                parent: self.parent.clone(),
                measurements: batch.items.iter().map(|&i| reports[i].clone()).collect(),
                sequence: *sequence,
            };
            self.batches
                .send(request)
                .await
                .expect("the stream takes a batch");
            self.in_flight.push_back((*sequence, batch));
            *budget -= 1;
        }
    }

    /// The oldest batch in flight with its answer; `None` if none is.
    async fn next(&mut self) -> Option<(Batch, pb::StreamMeasurementsResponse)> {
        let (sequence, batch) = self.in_flight.pop_front()?;
        let answer = self
            .answers
            .message()
            .await
            .expect("an answer")
            .expect("an answer for every batch in flight");
        assert_eq!(answer.sequence, sequence, "answers come in order");
        Some((batch, answer))
    }

    /// Drops the stream: the batches in flight, unanswered, marked cut off.
    fn cut(self) -> Vec<Batch> {
        self.in_flight
            .into_iter()
            .map(|(_, batch)| Batch {
                cut_off: true,
                ..batch
            })
            .collect()
    }

    /// Ends the stream once every batch is answered: the server ends it too.
    async fn finish(mut self) {
        assert!(self.in_flight.is_empty());
        drop(self.batches);
        let end = self.answers.message().await.expect("a clean end");
        assert!(end.is_none(), "no answer without a batch: {end:?}");
    }
}

/// Puts `cut` back at the front of `queue`, in order: unanswered batches are
/// sent again first.
fn requeue(queue: &mut VecDeque<Batch>, cut: Vec<Batch>) {
    for batch in cut.into_iter().rev() {
        queue.push_front(batch);
    }
}

/// A reporter that cuts its streams and gives up on its calls at random,
/// sends again whatever had no answer, and now and then an answered batch.
struct Reporter<'a> {
    w: &'a World,
    reports: &'a [pb::Measurement],
    ledger: Ledger,
    rng: StdRng,
    sequence: i64,
    streams_cut: usize,
    calls_cut: usize,
    resent_answered: usize,
}

impl Reporter<'_> {
    /// Sends every batch of `queue` until each has been answered.
    async fn send_all(&mut self, mut queue: VecDeque<Batch>) {
        while !queue.is_empty() {
            if self.rng.random_bool(0.6) {
                self.stream(&mut queue).await;
            } else {
                self.calls(&mut queue).await;
            }
        }
    }

    fn answered(
        &mut self,
        batch: Batch,
        accepted: i64,
        duplicates: i64,
        rejections: &[pb::MeasurementRejection],
        queue: &mut VecDeque<Batch>,
    ) {
        self.ledger.settle(&batch, accepted, duplicates, rejections);
        if self.rng.random_bool(0.05) {
            self.resent_answered += 1;
            queue.push_back(Batch {
                items: batch.items,
                cut_off: false,
            });
        }
    }

    /// One stream of up to 20 batches, dropped half the time after a random
    /// number of answers, with batches in flight.
    async fn stream(&mut self, queue: &mut VecDeque<Batch>) {
        let mut budget = self.rng.random_range(1..=20);
        let cut_after = self
            .rng
            .random_bool(0.5)
            .then(|| self.rng.random_range(0..budget));
        let mut client = self.w.measurements();
        let mut stream = OpenStream::open(&mut client, &self.w.tenant).await;
        let mut answered = 0;
        loop {
            stream
                .fill(self.reports, queue, &mut budget, &mut self.sequence)
                .await;
            if cut_after == Some(answered) {
                self.streams_cut += 1;
                requeue(queue, stream.cut());
                return;
            }
            let Some((batch, answer)) = stream.next().await else {
                break;
            };
            self.answered(
                batch,
                answer.accepted,
                answer.duplicates,
                &answer.rejections,
                queue,
            );
            answered += 1;
        }
        stream.finish().await;
    }

    /// Up to five ReportMeasurements calls, each given up after a random
    /// 0 to 40 ms three times in ten (before or after the server commits).
    async fn calls(&mut self, queue: &mut VecDeque<Batch>) {
        for _ in 0..self.rng.random_range(1..=5) {
            let Some(batch) = queue.pop_front() else {
                return;
            };
            let measurements = batch.items.iter().map(|&i| self.reports[i].clone());
            let request = self.w.report_request(measurements.collect());
            let patience = self
                .rng
                .random_bool(0.3)
                .then(|| Duration::from_micros(self.rng.random_range(0..40_000)));
            let mut client = self.w.measurements();
            let call = client.report_measurements(request);
            let answer = match patience {
                Some(patience) => tokio::time::timeout(patience, call).await.ok(),
                None => Some(call.await),
            };
            match answer {
                Some(answer) => {
                    let answer = answer.expect("report measurements").into_inner();
                    self.answered(
                        batch,
                        answer.accepted,
                        answer.duplicates,
                        &answer.rejections,
                        queue,
                    );
                }
                None => {
                    self.calls_cut += 1;
                    requeue(
                        queue,
                        vec![Batch {
                            cut_off: true,
                            ..batch
                        }],
                    );
                }
            }
        }
    }
}

// --- retries ------------------------------------------------------------------------

const RETRIED: usize = 100_000;

async fn every_measurement_counts_once_through_dropped_streams_cancelled_calls_and_resends(
    s: TestServer,
) {
    let seed = seed_of("retries");
    let mut rng = StdRng::seed_from_u64(seed);
    let (w, consumers) = counted_world(&s).await;
    let reports = reports(&w, &consumers, RETRIED, &mut rng);
    let first = batches(RETRIED, 200..=2_000, &mut rng);
    let second = batches(RETRIED, 200..=2_000, &mut rng);
    let mut reporter = Reporter {
        w: &w,
        reports: &reports,
        ledger: Ledger::new(RETRIED),
        rng,
        sequence: 0,
        streams_cut: 0,
        calls_cut: 0,
        resent_answered: 0,
    };

    reporter.send_all(first).await;
    let after_first = reporter.ledger.accepted;
    reporter.send_all(second).await;

    let (ledger, cut) = (&reporter.ledger, &reporter);
    eprintln!(
        "retries: {} answers, {} accepted, {} duplicates; {} streams cut, {} calls given up, \
         {} answered batches sent again; cut-off batches found committed {} times, not {} times",
        ledger.answers,
        ledger.accepted,
        ledger.duplicates,
        cut.streams_cut,
        cut.calls_cut,
        cut.resent_answered,
        ledger.cut_off_committed,
        ledger.cut_off_lost,
    );
    // Each report was stored once: by an answered batch, or by one whose
    // answer was lost; none by the second round.
    assert_eq!(
        ledger.accepted + ledger.stored_unanswered,
        RETRIED as i64,
        "every report accepted once"
    );
    assert_eq!(
        ledger.accepted, after_first,
        "the second round stores nothing"
    );
    // Each answer's duplicates were its items stored before (`settle`).
    assert!(
        ledger.already_stored >= RETRIED as i64,
        "the second round alone re-sent every report"
    );
    assert!(
        cut.streams_cut > 0 && cut.calls_cut > 0 && cut.resent_answered > 0,
        "the run interrupted streams and calls and re-sent answered batches"
    );
    let db = Stored::of(s.store().await, &w.id);
    assert_stored_once(&db, &consumers, &reports).await;
}

on_both_backends!(
    every_measurement_counts_once_through_dropped_streams_cancelled_calls_and_resends
);

// --- crash ----------------------------------------------------------------------

const CRASHED: usize = 20_000;
const KILLS: usize = 5;

/// `accord serve` on the test server's database, once SERVING, and a
/// measurement client calling it with the world's key.
async fn serving(dir: &std::path::Path, env: &[(&str, &str)], w: &World) -> (Accord, Client) {
    let mut accord = Accord::start(dir, &["serve"], env);
    let Some(addr) = accord.address() else {
        panic!("accord did not start:\n{}", accord.stop().output);
    };
    let channel = channel_to(&addr).await;
    (accord, Clients::new(&channel, &w.admin_key).measurements())
}

/// `url` with its sessions named `name` (PostgreSQL; SQLite ignores it).
fn with_application_name(url: &str, name: &str) -> String {
    if !url.starts_with("postgres") {
        return url.into();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name={name}")
}

/// How many sessions named `name` PostgreSQL has open.
async fn sessions_named(admin_url: &str, name: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url).await.unwrap();
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// Waits until PostgreSQL has closed every session named `name`, those of
/// a killed server: a COMMIT it sent just before it died may still be
/// applied until then, while nothing it did can change after.
async fn sessions_ended(admin_url: &str, name: &str) {
    eventually(Duration::from_secs(10), || async {
        sessions_named(admin_url, name).await == 0
    })
    .await;
}

async fn a_server_killed_mid_stream_loses_nothing_it_acknowledged(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let seed = seed_of("crash");
    let mut rng = StdRng::seed_from_u64(seed);
    let (w, consumers) = counted_world(&s).await;
    let reports = reports(&w, &consumers, CRASHED, &mut rng);
    let mut queue = batches(CRASHED, 250..=250, &mut rng);
    // The binary on the test server's database (which the test server,
    // idle, keeps serving: the world was built through it).
    let dir = tempfile::tempdir().unwrap();
    let migration = s.db.migration_url();
    let mut env = vec![("ACCORD_LISTEN", "127.0.0.1:0")];
    if let Some(url) = &migration {
        env.push(("ACCORD_MIGRATION_DATABASE_URL", url.as_str()));
    }
    let db = Stored::of(s.store().await, &w.id);
    let mut ledger = Ledger::new(CRASHED);
    let mut acknowledged: Vec<&str> = Vec::new();
    let mut sequence = 0;

    for life in 0..=KILLS {
        let name = format!("accord-life-{life}");
        let url = with_application_name(&s.database_url, &name);
        let mut env = env.clone();
        env.push(("ACCORD_DATABASE_URL", url.as_str()));
        let (accord, mut client) = serving(dir.path(), &env, &w).await;
        let admin = s.db.admin_url();
        if let Some(admin) = &admin {
            assert!(
                sessions_named(admin, &name).await > 0,
                "its sessions are named"
            );
        }
        let mut stream = OpenStream::open(&mut client, &w.tenant).await;
        // Killed after 2 to 8 answers, with batches in flight, in all but
        // the last life.
        let kill_after = (life < KILLS).then(|| rng.random_range(2..=8));
        let mut budget = usize::MAX;
        let mut answered = 0;
        loop {
            stream
                .fill(&reports, &mut queue, &mut budget, &mut sequence)
                .await;
            if kill_after == Some(answered) {
                assert!(!stream.in_flight.is_empty(), "batches are in flight");
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..100))).await;
                break;
            }
            let Some((batch, answer)) = stream.next().await else {
                break;
            };
            ledger.settle(
                &batch,
                answer.accepted,
                answer.duplicates,
                &answer.rejections,
            );
            acknowledged.extend(batch.items.iter().map(|&i| reports[i].id.as_str()));
            answered += 1;
        }
        if kill_after.is_none() {
            stream.finish().await;
            let ended = accord.stop();
            assert!(ended.status.success(), "{}", ended.output);
            break;
        }

        let ended = accord.kill();
        assert_eq!(ended.status.signal(), Some(9), "killed, life {life}");
        if let Some(admin) = &admin {
            sessions_ended(admin, &name).await;
        }
        // Nothing acknowledged is lost; what was in flight is stored whole
        // or not at all, and is sent again to the next life first.
        let present = db.keys(&acknowledged).await;
        assert_eq!(
            present.len(),
            acknowledged.len(),
            "every acknowledged report survives kill {}",
            life + 1
        );
        let mut cut = stream.cut();
        for batch in &mut cut {
            let new = ledger.unknown(batch);
            let ids: Vec<&str> = new.iter().map(|&i| reports[i].id.as_str()).collect();
            let present = db.keys(&ids).await.len();
            ledger.found(batch, new, present);
        }
        requeue(&mut queue, cut);
    }

    eprintln!(
        "crash: {} answers, {} accepted, {} duplicates; cut-off batches found committed {} \
         times, not {} times",
        ledger.answers,
        ledger.accepted,
        ledger.duplicates,
        ledger.cut_off_committed,
        ledger.cut_off_lost,
    );
    assert!(queue.is_empty(), "every batch was answered");
    assert_eq!(
        ledger.accepted + ledger.stored_unanswered,
        CRASHED as i64,
        "every report accepted once"
    );
    assert_stored_once(&db, &consumers, &reports).await;
}

mod crash {
    use super::*;

    on_both_backends!(backend: a_server_killed_mid_stream_loses_nothing_it_acknowledged);
}
