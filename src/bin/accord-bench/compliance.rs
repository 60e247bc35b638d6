//! `accord-bench --compliance`: GetCompliance against a cached
//! ResolveEntitlement on the same server, in one run, on this machine.
//!
//! Per engine (SQLite in a temporary file; PostgreSQL with `--postgres URL`,
//! in a database it creates and drops), one server built by `Application`,
//! its runtime pinned to the first core (the client's to the second), with
//! `measurement_max_age` raised to 367 days so that a year of data can be
//! reported through the API (the default, 35 days, refuses older reports;
//! a server in use would have received them as they happened). It loads,
//! through the API:
//!
//! - a tenant, a provider, consumers `c0` and `c1`;
//! - service `month` under SERVICE_LEVEL agreement `sla-month`: RATIO
//!   `availability` and UPTIME `uptime`, both over a rolling 30-day window;
//! - service `year` under SERVICE_LEVEL agreement `sla-year`: the same two
//!   objectives over the calendar year (UTC);
//! - counts every minute (30 days of them for `month`, 366 days for `year`),
//!   a tenth tagged with `c0`, a tenth with `c1`, the rest untagged; and
//!   one downtime report a day.
//!
//! Before measuring, one call per subject is checked against the sums of
//! what was sent (RATIO good and total; UPTIME downtime seconds). Then, at
//! concurrency 1 and 16: the baseline (ResolveEntitlement of `(c0, month)`,
//! answered from the warm cache: transport, authentication, encoding), and
//! GetCompliance by agreement and by the pair `(c0, service)` for each
//! window, with `as_of` unset (now), as a dashboard asks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use accord::config::Config;
use accord::domain::api_key::Secret;
use accord::proto::v1 as pb;
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::{StreamExt, stream};
use pb::agreement_service_client::AgreementServiceClient;
use pb::compliance_service_client::ComplianceServiceClient;
use pb::entitlement_service_client::EntitlementServiceClient;
use pb::measurement_service_client::MeasurementServiceClient;
use pb::party_service_client::PartyServiceClient;
use pb::service_catalog_service_client::ServiceCatalogServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::{
    Args, Bearer, Run, analyze, bearer, bench_tenant, connect, create_database, drive,
    drop_database, pinned_runtime, start, tempfile_dir, verdict, with_database,
};

/// The indicators of the objectives.
const COUNTS: &str = "http_success";
const DOWN: &str = "down";
/// Measurements per ReportMeasurements call (the API's most).
const BATCH: usize = 10_000;
/// The reports a server accepts, back from now: a year and a day or two.
const MAX_AGE_DAYS: u64 = 367;

pub fn run(args: &Args) -> anyhow::Result<()> {
    let server_rt = pinned_runtime("server", 0);
    let client_rt = pinned_runtime("client", 1);
    if !args.postgres_only {
        engine(args, &server_rt, &client_rt, None)?;
    }
    match &args.postgres {
        Some(admin) => engine(args, &server_rt, &client_rt, Some(admin)),
        None if args.postgres_only => anyhow::bail!("--postgres-only needs --postgres URL"),
        None => Ok(()),
    }
}

fn engine(
    args: &Args,
    server_rt: &tokio::runtime::Runtime,
    client_rt: &tokio::runtime::Runtime,
    postgres: Option<&str>,
) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let (url, dropper) = match postgres {
        None => (format!("sqlite:{}/compliance.db", dir.display()), None),
        Some(admin) => {
            let name = format!("accord_bench_c_{}", std::process::id());
            client_rt.block_on(create_database(admin, &name))?;
            (with_database(admin, &name), Some((admin.to_string(), name)))
        }
    };
    let engine = if postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let result = engine_in(args, server_rt, client_rt, &url, engine, postgres.is_some());
    // Let the server close its pool before the database goes.
    std::thread::sleep(Duration::from_millis(500));
    if let Some((admin, name)) = dropper {
        client_rt.block_on(drop_database(&admin, &name))?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// What was loaded, by name.
struct World {
    tenant: String,
    admin: String,
    consumers: [String; 2],
    month: Subject,
    year: Subject,
}

/// A service, its agreement and the data sent for it.
struct Subject {
    service: String,
    agreement: String,
    data: Data,
}

/// Counts every minute from `start` for `minutes` minutes, 17 s past the
/// minute, and a downtime report a day.
struct Data {
    start: DateTime<Utc>,
    minutes: i64,
}

/// One minute's counts, and the consumer (0 or 1) it is tagged with.
struct Counted {
    time: DateTime<Utc>,
    good: i64,
    total: i64,
    consumer: Option<usize>,
}

impl Data {
    /// The last `days` days up to the minute before `now`.
    fn ending(now: DateTime<Utc>, days: i64) -> Self {
        let minute = now - TimeDelta::seconds(now.timestamp().rem_euclid(60));
        let minute = minute - TimeDelta::nanoseconds(minute.timestamp_subsec_nanos() as i64);
        Self {
            start: minute - TimeDelta::days(days),
            minutes: days * 1440,
        }
    }

    /// About 0.03 % of events bad, against targets of 99.9 %: met, and no
    /// burn-rate alert fires (a firing alert keeps the closer evaluating
    /// the pair at every check, on the server's one core).
    fn counts(&self, i: i64) -> Counted {
        let total = 600 + (i * 7_919) % 400;
        let bad = (i % 5 == 0) as i64 + if i % 997 == 0 { 40 } else { 0 };
        Counted {
            time: self.start + TimeDelta::minutes(i) + TimeDelta::seconds(17),
            good: total - bad,
            total,
            consumer: match i % 10 {
                0 => Some(0),
                5 => Some(1),
                _ => None,
            },
        }
    }

    fn days(&self) -> i64 {
        self.minutes / 1440
    }

    /// Day `d`'s outage: 20 to 40 seconds at a minute of the day that
    /// moves (short enough that no alert fires, as above).
    fn downtime(&self, d: i64) -> (DateTime<Utc>, DateTime<Utc>) {
        let start = self.start + TimeDelta::days(d) + TimeDelta::minutes((d * 37) % 1_400);
        (start, start + TimeDelta::seconds(20 + (d * 7) % 21))
    }

    /// Σgood and Σtotal in `[from, to)` for the view of `consumer` (`None`:
    /// every report).
    fn sums(&self, from: DateTime<Utc>, to: DateTime<Utc>, consumer: Option<usize>) -> (i64, i64) {
        let (mut good, mut total) = (0, 0);
        for i in 0..self.minutes {
            let c = self.counts(i);
            let seen = consumer.is_none() || c.consumer.is_none() || c.consumer == consumer;
            if seen && from <= c.time && c.time < to {
                good += c.good;
                total += c.total;
            }
        }
        (good, total)
    }

    /// Seconds of downtime inside `[from, to)` (the reports do not overlap).
    fn down_seconds(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
        (0..self.days())
            .map(|d| {
                let (s, e) = self.downtime(d);
                let (s, e) = (s.max(from), e.min(to));
                if s < e {
                    (e - s).num_microseconds().unwrap_or(0) as f64 / 1e6
                } else {
                    0.0
                }
            })
            .sum()
    }

    fn measurements(&self, service: &str, consumers: &[String; 2]) -> Vec<pb::Measurement> {
        let timestamp = |t: DateTime<Utc>| prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: t.timestamp_subsec_nanos() as i32,
        };
        let id = service.rsplit('/').next().unwrap_or(service);
        let mut all: Vec<pb::Measurement> = (0..self.minutes)
            .map(|i| {
                let c = self.counts(i);
                pb::Measurement {
                    id: format!("{id}-c-{i}"),
                    service: service.into(),
                    consumer: c.consumer.map(|k| consumers[k].clone()).unwrap_or_default(),
                    indicator: COUNTS.into(),
                    time: Some(timestamp(c.time)),
                    value: Some(pb::measurement::Value::Counts(pb::Counts {
                        good: c.good,
                        total: c.total,
                    })),
                }
            })
            .collect();
        all.extend((0..self.days()).map(|d| {
            let (s, e) = self.downtime(d);
            pb::Measurement {
                id: format!("{id}-d-{d}"),
                service: service.into(),
                consumer: String::new(),
                indicator: DOWN.into(),
                time: None,
                value: Some(pb::measurement::Value::Downtime(pb::Downtime {
                    start_time: Some(timestamp(s)),
                    end_time: Some(timestamp(e)),
                })),
            }
        }));
        all
    }
}

fn objectives(window: pb::window::Window) -> Vec<pb::Objective> {
    let window = Some(pb::Window {
        window: Some(window),
    });
    vec![
        pb::Objective {
            key: "availability".into(),
            display_name: "Availability".into(),
            indicator: COUNTS.into(),
            kind: pb::ObjectiveKind::Ratio.into(),
            target: 0.999,
            window: window.clone(),
            ..Default::default()
        },
        pb::Objective {
            key: "uptime".into(),
            display_name: "Uptime".into(),
            indicator: DOWN.into(),
            kind: pb::ObjectiveKind::Uptime.into(),
            target: 0.999,
            window,
            ..Default::default()
        },
    ]
}

async fn load(channel: Channel, platform: &str) -> anyhow::Result<World> {
    let (tenant, admin) = bench_tenant(&channel, platform).await?;
    let authed = InterceptedService::new(channel.clone(), bearer(&admin));
    let mut parties = PartyServiceClient::new(authed.clone());
    let mut party = async |id: &str, kind: pb::PartyKind| {
        parties
            .create_party(pb::CreatePartyRequest {
                parent: tenant.clone(),
                party_id: id.into(),
                party: Some(pb::Party {
                    kind: kind.into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .map(|r| r.into_inner().name)
    };
    let provider = party("platform", pb::PartyKind::Provider).await?;
    let consumers = [
        party("c0", pb::PartyKind::Customer).await?,
        party("c1", pb::PartyKind::Customer).await?,
    ];
    let mut catalog = ServiceCatalogServiceClient::new(authed.clone());
    let mut agreements = AgreementServiceClient::new(authed.clone());
    let now = Utc::now();
    let mut subject = async |id: &str, window: pb::window::Window, days: i64| {
        let service = catalog
            .create_service(pb::CreateServiceRequest {
                parent: tenant.clone(),
                service_id: id.into(),
                service: Some(pb::Service {
                    owner: provider.clone(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await?
            .into_inner()
            .name;
        let a = agreements
            .create_agreement(pb::CreateAgreementRequest {
                parent: tenant.clone(),
                agreement_id: format!("sla-{id}"),
                agreement: Some(pb::Agreement {
                    kind: pb::AgreementKind::ServiceLevel.into(),
                    provider: provider.clone(),
                    services: vec![service.clone()],
                    effective_from: Some(prost_types::Timestamp {
                        seconds: (now - TimeDelta::days(400)).timestamp(),
                        nanos: 0,
                    }),
                    objectives: objectives(window),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await?
            .into_inner();
        agreements
            .publish_agreement(pb::PublishAgreementRequest {
                name: a.name.clone(),
                etag: a.etag,
            })
            .await?;
        anyhow::Ok(Subject {
            service,
            agreement: a.name,
            data: Data::ending(now, days),
        })
    };
    let month = subject(
        "month",
        pb::window::Window::Rolling(pb::RollingWindow {
            duration: Some(prost_types::Duration {
                seconds: 30 * 86_400,
                nanos: 0,
            }),
        }),
        30,
    )
    .await?;
    let year = subject(
        "year",
        pb::window::Window::Calendar(pb::CalendarWindow {
            period: pb::CalendarPeriod::Year.into(),
            time_zone: String::new(),
        }),
        366,
    )
    .await?;
    Ok(World {
        tenant,
        admin,
        consumers,
        month,
        year,
    })
}

/// Sends every measurement of `subject`, `BATCH` a call, two calls in
/// flight; all must be accepted. Returns how many were sent.
async fn report(channel: Channel, world: &World, subject: &Subject) -> anyhow::Result<usize> {
    let client =
        MeasurementServiceClient::new(InterceptedService::new(channel, bearer(&world.admin)));
    let all = subject
        .data
        .measurements(&subject.service, &world.consumers);
    let sent = all.len();
    let batches: Vec<Vec<pb::Measurement>> = all.chunks(BATCH).map(<[_]>::to_vec).collect();
    let answers: Vec<_> = stream::iter(batches)
        .map(|measurements| {
            let mut client = client.clone();
            let parent = world.tenant.clone();
            async move {
                let size = measurements.len() as i64;
                let answer = client
                    .report_measurements(pb::ReportMeasurementsRequest {
                        parent,
                        measurements,
                    })
                    .await?
                    .into_inner();
                anyhow::ensure!(
                    answer.accepted == size,
                    "a batch was not wholly accepted: {:?}",
                    answer.rejections.first()
                );
                anyhow::Ok(())
            }
        })
        .buffered(2)
        .collect()
        .await;
    answers.into_iter().collect::<anyhow::Result<()>>()?;
    Ok(sent)
}

type Compliance = ComplianceServiceClient<InterceptedService<Channel, Bearer>>;

fn by_agreement(world: &World, subject: &Subject) -> pb::GetComplianceRequest {
    pb::GetComplianceRequest {
        parent: world.tenant.clone(),
        subject: Some(pb::get_compliance_request::Subject::Agreement(
            subject.agreement.clone(),
        )),
        ..Default::default()
    }
}

fn by_pair(world: &World, subject: &Subject) -> pb::GetComplianceRequest {
    pb::GetComplianceRequest {
        parent: world.tenant.clone(),
        subject: Some(pb::get_compliance_request::Subject::Pair(
            pb::ConsumerService {
                consumer: world.consumers[0].clone(),
                service: subject.service.clone(),
            },
        )),
        ..Default::default()
    }
}

fn time(t: &Option<prost_types::Timestamp>) -> anyhow::Result<DateTime<Utc>> {
    let t = t
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("a time is missing"))?;
    DateTime::from_timestamp(t.seconds, t.nanos as u32)
        .ok_or_else(|| anyhow::anyhow!("a time out of range"))
}

/// Asks once and checks every objective against what was sent: RATIO's
/// good and total exactly, UPTIME's downtime to the microsecond.
async fn check(
    client: &mut Compliance,
    request: pb::GetComplianceRequest,
    data: &Data,
    consumer: Option<usize>,
) -> anyhow::Result<String> {
    let answer = client.get_compliance(request).await?.into_inner();
    let as_of = time(&answer.as_of)?;
    let mut seen = Vec::new();
    for o in &answer.objectives {
        let period = o
            .period
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no period"))?;
        let from = time(&period.start_time)?;
        let to = time(&period.end_time)?.min(as_of);
        match o.key.as_str() {
            "availability" => {
                let (good, total) = data.sums(from, to, consumer);
                anyhow::ensure!(
                    (o.good, o.total) == (good as f64, total as f64),
                    "{}: good/total {}/{}, expected {good}/{total}",
                    o.key,
                    o.good,
                    o.total
                );
                seen.push(format!("{} {good}/{total} events", o.key));
            }
            "uptime" => {
                let down = data.down_seconds(from, to);
                let eligible = (to - from).num_microseconds().unwrap_or(0) as f64 / 1e6;
                anyhow::ensure!(
                    (o.total - eligible).abs() < 1e-6 && (o.total - o.good - down).abs() < 1e-6,
                    "{}: good/total {}/{} s, expected {}/{eligible} s",
                    o.key,
                    o.good,
                    o.total,
                    eligible - down
                );
                seen.push(format!("{} {down:.0} s down", o.key));
            }
            other => anyhow::bail!("unexpected objective {other}"),
        }
    }
    anyhow::ensure!(seen.len() == 2, "expected two objectives, got {seen:?}");
    Ok(seen.join(", "))
}

fn engine_in(
    args: &Args,
    server_rt: &tokio::runtime::Runtime,
    client_rt: &tokio::runtime::Runtime,
    url: &str,
    engine: &str,
    postgres: bool,
) -> anyhow::Result<()> {
    let platform = format!("acc_bench_{}", hex::encode(rand::random::<[u8; 16]>()));
    let config = Config {
        database_url: url.into(),
        max_connections: 16,
        max_concurrent_requests: 1024,
        entitlement_cache_size: 100_000,
        bootstrap_key: Some(Secret::new(platform.clone())),
        measurement_max_age: Duration::from_secs(MAX_AGE_DAYS * 86_400),
        ..Config::default()
    };
    let (port, stop) = start(server_rt, config, None)?;
    let result = client_rt.block_on(async {
        let channel = connect(port).await;
        let began = Instant::now();
        let world = load(channel.clone(), &platform).await?;
        let mut sent = 0;
        for subject in [&world.month, &world.year] {
            sent += report(channel.clone(), &world, subject).await?;
        }
        let loaded = began.elapsed().as_secs_f64();
        if postgres {
            // As the entitlement benchmark does: statistics, as a registry
            // in use has.
            analyze(url).await?;
        }
        let settled = settle(url, postgres).await?;
        println!();
        println!("### {engine}");
        println!();
        println!(
            "loaded 2 agreements and {sent} measurements (30 days of minutes on `month`, 366 on `year`) into {engine} in {loaded:.1} s; the period closer had evaluated the late data {settled:.1} s later"
        );
        measure(args, &channel, &world).await
    });
    let _ = stop.send(());
    result
}

/// Waits until the server's period closer has evaluated the late data the
/// load marked (every day of the year, each once; it checks every 5 s), so
/// that it does not run during the measured calls; returns how long that
/// took.
async fn settle(url: &str, postgres: bool) -> anyhow::Result<f64> {
    let began = Instant::now();
    let mut quiet = 0;
    while quiet < 2 {
        anyhow::ensure!(
            began.elapsed() < Duration::from_secs(300),
            "the period closer has not settled the late-data markers in 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = Utc::now();
        let due: i64 = if postgres {
            let pool = sqlx::PgPool::connect(url).await?;
            let due = sqlx::query_scalar(DUE).bind(now).fetch_one(&pool).await?;
            pool.close().await;
            due
        } else {
            let pool = sqlx::SqlitePool::connect(url).await?;
            let due = sqlx::query_scalar(DUE)
                .bind(now.timestamp_micros())
                .fetch_one(&pool)
                .await?;
            pool.close().await;
            due
        };
        quiet = if due == 0 { quiet + 1 } else { 0 };
    }
    Ok(began.elapsed().as_secs_f64())
}

/// The late-data markers due by `$1`.
const DUE: &str = "SELECT COUNT(*) FROM compliance_dirty WHERE due_at IS NOT NULL AND due_at <= $1";

async fn measure(args: &Args, channel: &Channel, world: &World) -> anyhow::Result<()> {
    let warmup = Duration::from_secs(args.warmup_seconds);
    let measured = Duration::from_secs(args.seconds);
    let mut compliance = ComplianceServiceClient::new(InterceptedService::new(
        channel.clone(),
        bearer(&world.admin),
    ));
    let subjects: [(&str, &Subject, bool); 4] = [
        ("30-day window, by agreement", &world.month, false),
        ("30-day window, by pair", &world.month, true),
        ("calendar year, by agreement", &world.year, false),
        ("calendar year, by pair", &world.year, true),
    ];
    println!();
    for (name, subject, pair) in subjects {
        let (request, consumer) = if pair {
            (by_pair(world, subject), Some(0))
        } else {
            (by_agreement(world, subject), None)
        };
        let seen = check(&mut compliance, request, &subject.data, consumer).await?;
        println!("checked {name}: {seen}, as sent");
    }

    let entitlements = EntitlementServiceClient::new(InterceptedService::new(
        channel.clone(),
        bearer(&world.admin),
    ));
    let resolve = {
        let request = pb::ResolveEntitlementRequest {
            parent: world.tenant.clone(),
            consumer: world.consumers[0].clone(),
            service: world.month.service.clone(),
            ..Default::default()
        };
        move |_: usize| {
            let mut client = entitlements.clone();
            let request = request.clone();
            async move { client.resolve_entitlement(request).await.map(|_| ()) }
        }
    };
    let ask = |request: pb::GetComplianceRequest| {
        let client = compliance.clone();
        let request = Arc::new(request);
        move |_: usize| {
            let mut client = client.clone();
            let request = (*request).clone();
            async move { client.get_compliance(request).await.map(|_| ()) }
        }
    };
    // Warm the resolver's cache for the baseline (and the pairs).
    resolve(0).await?;

    println!();
    println!("| run | concurrency | req/s | p50 ms | p99 ms | p99 ÷ baseline |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut verdicts = Vec::new();
    for c in [1usize, 16] {
        let baseline = drive(c, warmup, measured, resolve.clone()).await;
        let mut runs: Vec<(&str, Run)> = Vec::new();
        for (name, subject, pair) in subjects {
            let request = if pair {
                by_pair(world, subject)
            } else {
                by_agreement(world, subject)
            };
            runs.push((name, drive(c, warmup, measured, ask(request)).await));
        }
        let row = |name: &str, run: &Run| {
            println!(
                "| {name} | {c} | {:.0} | {:.3} | {:.3} | {:.2} |",
                run.rate(),
                run.p50_ms(),
                run.p99_ms(),
                run.p99_ms() / baseline.p99_ms()
            );
        };
        row("baseline: cached ResolveEntitlement", &baseline);
        for (name, run) in &runs {
            row(name, run);
            if c == 1 {
                let limit = if name.starts_with("30-day") {
                    5.0
                } else {
                    20.0
                };
                let p99 = run.p99_ms();
                verdicts.push(format!(
                    "GetCompliance, {name}, p99 ≤ {limit:.0} ms at concurrency 1: {p99:.2} ms → {}",
                    verdict(p99 <= limit)
                ));
            }
        }
    }
    println!();
    for v in verdicts {
        println!("- {v}");
    }
    Ok(())
}
