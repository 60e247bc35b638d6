//! `accord-bench --measurements`: measurement ingestion against a ceiling,
//! in one run, on this machine.
//!
//! On PostgreSQL (`--postgres URL`), in a database it creates and drops:
//!
//! 1. the ceilings: the rows written by a bare `INSERT … SELECT FROM UNNEST`,
//!    1,000 a statement (each its own transaction), on one connection, in a
//!    scratch schema: into a table holding each measurement's raw row and
//!    its idempotency key (`id`, `digest`) with every index Accord keeps for
//!    a measurement of counts (the series index of `measurement_counts`,
//!    the indexes of `measurement_keys`): the ceiling the target is judged
//!    against; and, narrower, into a copy of `measurement_counts` alone.
//!    Then, for the why, the writes a batch of new measurements makes (keys,
//!    raw rows, rollups, one transaction a batch) as separate bare
//!    statements into copies of their tables in another schema;
//! 2. the same rows as measurements through StreamMeasurements, to the real
//!    server with a pool of ONE connection, batches of 1,000 with the next
//!    one always sent: rows/s, its ratio to the ceiling, and the latency of
//!    each batch's acknowledgement;
//! 3. the server's RSS after those 1,000,000 and after 5,000,000 measurements
//!    (the rest streamed the same way);
//! 4. ResolveEntitlement p99 at concurrency 1 on a server with the default
//!    pool, its cache on (warm) and off, idle and while that server ingests
//!    at half the rate of step 2.
//!
//! On SQLite (unless `--postgres-only`): the same measurements through
//! StreamMeasurements, measurements/s.
//!
//! The server runs in this process, its runtime pinned to the first core;
//! the client's to the second. RSS is this process's: the client keeps no
//! more than a few batches at a time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use accord::config::Config;
use accord::domain::api_key::Secret;
use accord::proto::v1 as pb;
use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use pb::entitlement_service_client::EntitlementServiceClient;
use pb::measurement_service_client::MeasurementServiceClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::Connection;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::{
    Args, World, analyze, bearer, connect, create_database, drive, drop_database, load,
    pinned_runtime, start, tempfile_dir, verdict, with_database,
};

/// Measurements a batch (and rows a ceiling statement) carries.
const BATCH: u64 = 1_000;
/// Services the measurements are spread over, round-robin.
const SERVICES: u64 = 10;
/// The indicator of the loaded registry's objectives.
const INDICATOR: &str = "http_success";

/// Row `i` of every run: service `s{i mod 10}`, service-wide, counts at an
/// instant of the last 23 hours, with some bad events. The first `span`
/// rows are evenly spread in time order, as reporters send what they
/// measure; further rows start again a microsecond later.
struct Rows {
    start: DateTime<Utc>,
    span: u64,
    services: Vec<String>,
}

struct Row {
    service: u64,
    time: DateTime<Utc>,
    good: i64,
    total: i64,
}

impl Rows {
    fn new(tenant: &str, span: u64) -> Self {
        Self {
            start: Utc::now() - chrono::Duration::hours(23),
            span: span.max(1),
            services: (0..SERVICES)
                .map(|s| format!("{tenant}/services/s{s}"))
                .collect(),
        }
    }

    fn row(&self, i: u64) -> Row {
        let spacing_us = 23 * 3_600 * 1_000_000 / self.span;
        let micros = (i % self.span) * spacing_us + i / self.span;
        let total = 100 + (i % 900) as i64;
        Row {
            service: i % SERVICES,
            time: self.start + chrono::Duration::microseconds(micros as i64),
            good: total - (i % 7 == 0) as i64,
            total,
        }
    }

    /// Measurements `range`, with ids `{prefix}-{i}`.
    fn measurements(&self, prefix: &str, range: std::ops::Range<u64>) -> Vec<pb::Measurement> {
        range
            .map(|i| {
                let r = self.row(i);
                pb::Measurement {
                    id: format!("{prefix}-{i:09}"),
                    service: self.services[r.service as usize].clone(),
                    consumer: String::new(),
                    indicator: INDICATOR.into(),
                    time: Some(prost_types::Timestamp {
                        seconds: r.time.timestamp(),
                        nanos: r.time.timestamp_subsec_micros() as i32 * 1_000,
                    }),
                    value: Some(pb::measurement::Value::Counts(pb::Counts {
                        good: r.good,
                        total: r.total,
                    })),
                }
            })
            .collect()
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram")
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// This process's resident set, in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// The CPU time of this process's threads named `server` (the server's
/// runtime), in seconds: Linux's user and system time (`/proc/self/task/*/stat`,
/// in ticks of 1/100 s).
fn server_cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let mut ticks = 0u64;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("server") {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // After the command's closing parenthesis: state (field 3), …,
        // utime (14), stime (15).
        let fields: Vec<&str> = stat
            .rsplit_once(") ")
            .map_or(vec![], |(_, rest)| rest.split(' ').collect());
        for field in [11, 12] {
            ticks += fields
                .get(field)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    ticks as f64 / 100.0
}

// --- the ceiling ----------------------------------------------------------------

/// The ceilings' tables: `measurement_counts`, the raw rows (`LIKE …
/// INCLUDING ALL`: columns, collations and series index), and
/// `measurements`, the same with the idempotency key (`id`, `digest`) that
/// every stored measurement carries, indexed as `measurement_keys` is (its
/// indexes are copied below): one table with every index Accord maintains
/// for a measurement of counts.
const CEILING_TABLES: &str = "\
    CREATE SCHEMA ceiling; \
    CREATE TABLE ceiling.measurement_counts (LIKE public.measurement_counts INCLUDING ALL); \
    CREATE TABLE ceiling.measurements (LIKE public.measurement_counts INCLUDING ALL); \
    ALTER TABLE ceiling.measurements ADD COLUMN id TEXT COLLATE \"C\" NOT NULL, \
        ADD COLUMN digest TEXT NOT NULL";

const CEILING_INSERT: &str = "\
    INSERT INTO ceiling.measurement_counts (tenant, service, consumer, indicator, time, good, total) \
    SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::int8[], $7::int8[])";

const CEILING_INSERT_KEYED: &str = "\
    INSERT INTO ceiling.measurements (tenant, service, consumer, indicator, time, good, total, id, digest) \
    SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::int8[], $7::int8[], \
      $8::text[], $9::text[])";

/// The two ceilings' rows/s.
struct Ceilings {
    /// Raw rows only.
    raw: f64,
    /// Raw rows with their idempotency keys, equally indexed.
    keyed: f64,
}

/// Writes rows `0..n` into each ceiling table, `BATCH` a statement.
async fn ceilings(url: &str, tenant: &str, rows: &Rows, n: u64) -> anyhow::Result<Ceilings> {
    use sqlx::Executor;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    conn.execute(CEILING_TABLES).await?;
    let key_indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' \
         AND tablename = 'measurement_keys' ORDER BY indexname",
    )
    .fetch_all(&mut conn)
    .await?;
    for index in key_indexes {
        let index = index
            .replace("INDEX measurement_keys", "INDEX ceiling_keys")
            .replace(" ON public.measurement_keys ", " ON ceiling.measurements ");
        conn.execute(sqlx::AssertSqlSafe(index)).await?;
    }
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT tablename::text, indexdef FROM pg_indexes WHERE schemaname = 'ceiling' \
         ORDER BY tablename, indexname",
    )
    .fetch_all(&mut conn)
    .await?;
    for (table, index) in &indexes {
        println!("ceiling.{table}: {index}");
    }
    let mut rates = [0.0; 2];
    for (keyed, rate) in rates.iter_mut().enumerate() {
        let keyed = keyed == 1;
        let began = Instant::now();
        for b in 0..n / BATCH {
            let range = b * BATCH..(b + 1) * BATCH;
            let batch: Vec<Row> = range.clone().map(|i| rows.row(i)).collect();
            let services: Vec<&str> = batch
                .iter()
                .map(|r| {
                    rows.services[r.service as usize]
                        .rsplit('/')
                        .next()
                        .unwrap()
                })
                .collect();
            let query = sqlx::query(if keyed {
                CEILING_INSERT_KEYED
            } else {
                CEILING_INSERT
            })
            .bind(tenant)
            .bind(services)
            .bind(vec![""; batch.len()])
            .bind(vec![INDICATOR; batch.len()])
            .bind(batch.iter().map(|r| r.time).collect::<Vec<_>>())
            .bind(batch.iter().map(|r| r.good).collect::<Vec<_>>())
            .bind(batch.iter().map(|r| r.total).collect::<Vec<_>>());
            let query = if keyed {
                // Ids and digests as long as the ingested ones.
                query
                    .bind(
                        range
                            .clone()
                            .map(|i| format!("pg-{i:09}"))
                            .collect::<Vec<_>>(),
                    )
                    .bind(range.map(|i| format!("{i:064x}")).collect::<Vec<_>>())
            } else {
                query
            };
            query.execute(&mut conn).await?;
        }
        *rate = n as f64 / began.elapsed().as_secs_f64();
    }
    conn.close().await?;
    Ok(Ceilings {
        raw: rates[0],
        keyed: rates[1],
    })
}

/// The tables a batch writes, copied (`LIKE … INCLUDING ALL`: columns,
/// collations, keys, indexes; not partitioned) into a scratch schema.
const WRITES_TABLES: &str = "\
    CREATE SCHEMA writes; \
    CREATE TABLE writes.measurement_keys (LIKE public.measurement_keys INCLUDING ALL); \
    CREATE TABLE writes.measurement_counts (LIKE public.measurement_counts INCLUDING ALL); \
    CREATE TABLE writes.count_rollups_minute (LIKE public.count_rollups_minute INCLUDING ALL); \
    CREATE TABLE writes.count_rollups_hour (LIKE public.count_rollups_hour INCLUDING ALL); \
    CREATE TABLE writes.count_rollups_day (LIKE public.count_rollups_day INCLUDING ALL)";

/// The statements of `store::measurements` for a batch of new counts, as
/// bare SQL: keys, raw rows, and one upsert per rollup level.
const WRITES_KEYS: &str = "\
    INSERT INTO writes.measurement_keys (tenant, id, digest, time) \
    SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::timestamptz[]) \
    ON CONFLICT (tenant, id) DO NOTHING RETURNING id";
const WRITES_RAW: &str = "\
    INSERT INTO writes.measurement_counts (tenant, service, consumer, indicator, time, good, total) \
    SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::int8[], $7::int8[])";
const WRITES_ROLLUP: &str = "\
    INSERT INTO writes.count_rollups_{level} AS r (tenant, service, consumer, indicator, bucket, good, total) \
    SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::int8[], $7::int8[]) \
    ON CONFLICT (tenant, service, indicator, consumer, bucket) DO UPDATE SET \
    good = r.good + excluded.good, total = r.total + excluded.total";

/// Time per batch of each kind of statement of the bare writes (ms).
#[derive(Default)]
struct Writes {
    rate: f64,
    keys: f64,
    raw: f64,
    rollups: f64,
    commit: f64,
}

/// Writes rows `0..n` as a batch of new measurements does, `BATCH` a
/// transaction, with bare SQL on one connection; rows/s and the time of
/// each statement.
async fn bare_writes(url: &str, tenant: &str, rows: &Rows, n: u64) -> anyhow::Result<Writes> {
    use sqlx::Executor;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    conn.execute(WRITES_TABLES).await?;
    let rollup = |level: &str| WRITES_ROLLUP.replace("{level}", level);
    let levels = [("minute", 60), ("hour", 3_600), ("day", 86_400)].map(|(l, s)| (rollup(l), s));
    let mut spent = Writes::default();
    let began = Instant::now();
    for b in 0..n / BATCH {
        let batch: Vec<(u64, Row)> = (b * BATCH..(b + 1) * BATCH)
            .map(|i| (i, rows.row(i)))
            .collect();
        let service = |r: &Row| {
            rows.services[r.service as usize]
                .rsplit('/')
                .next()
                .unwrap()
        };
        let ids: Vec<String> = batch.iter().map(|(i, _)| format!("pg-{i:09}")).collect();
        // A digest's length: 64 hexadecimal digits.
        let digests: Vec<String> = batch.iter().map(|(i, _)| format!("{i:064x}")).collect();
        let times: Vec<DateTime<Utc>> = batch.iter().map(|(_, r)| r.time).collect();
        let mut tx = conn.begin().await?;
        let t = Instant::now();
        let recorded: Vec<String> = sqlx::query_scalar(WRITES_KEYS)
            .bind(tenant)
            .bind(&ids)
            .bind(&digests)
            .bind(&times)
            .fetch_all(&mut *tx)
            .await?;
        anyhow::ensure!(recorded.len() == batch.len(), "every key is new");
        spent.keys += t.elapsed().as_secs_f64();
        let t = Instant::now();
        sqlx::query(WRITES_RAW)
            .bind(tenant)
            .bind(batch.iter().map(|(_, r)| service(r)).collect::<Vec<_>>())
            .bind(vec![""; batch.len()])
            .bind(vec![INDICATOR; batch.len()])
            .bind(&times)
            .bind(batch.iter().map(|(_, r)| r.good).collect::<Vec<_>>())
            .bind(batch.iter().map(|(_, r)| r.total).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        spent.raw += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for (sql, seconds) in &levels {
            // Each row in its own series ('') and in every report's ('*').
            let mut sums: std::collections::BTreeMap<(&str, &str, i64), (i64, i64)> =
                Default::default();
            for (_, r) in &batch {
                let bucket = r.time.timestamp() - r.time.timestamp().rem_euclid(*seconds);
                for series in ["", "*"] {
                    let sum = sums.entry((service(r), series, bucket)).or_default();
                    *sum = (sum.0 + r.good, sum.1 + r.total);
                }
            }
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(tenant)
                .bind(sums.keys().map(|k| k.0).collect::<Vec<_>>())
                .bind(sums.keys().map(|k| k.1).collect::<Vec<_>>())
                .bind(vec![INDICATOR; sums.len()])
                .bind(
                    sums.keys()
                        .map(|k| DateTime::from_timestamp(k.2, 0).expect("a bucket"))
                        .collect::<Vec<_>>(),
                )
                .bind(sums.values().map(|v| v.0).collect::<Vec<_>>())
                .bind(sums.values().map(|v| v.1).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await?;
        }
        spent.rollups += t.elapsed().as_secs_f64();
        let t = Instant::now();
        tx.commit().await?;
        spent.commit += t.elapsed().as_secs_f64();
    }
    let batches = (n / BATCH) as f64 / 1000.0;
    spent.rate = n as f64 / began.elapsed().as_secs_f64();
    spent.keys /= batches;
    spent.raw /= batches;
    spent.rollups /= batches;
    spent.commit /= batches;
    conn.close().await?;
    Ok(spent)
}

// --- ingestion through the API ----------------------------------------------------

type Client = MeasurementServiceClient<InterceptedService<Channel, super::Bearer>>;

/// What one stream of batches measured.
struct Ingested {
    measurements: u64,
    seconds: f64,
    /// From sending a batch to its acknowledgement (µs).
    round_trip: Histogram<u64>,
    /// From when the server could start on a batch (it was sent and the
    /// one before it answered) to its acknowledgement (µs).
    service: Histogram<u64>,
}

impl Ingested {
    fn rate(&self) -> f64 {
        self.measurements as f64 / self.seconds
    }
}

/// Streams measurements `range` of `rows` in batches of `BATCH`, `window`
/// batches in flight at most, at `pace` measurements/s if given (else as
/// fast as the server answers). Every one must be accepted.
async fn ingest(
    mut client: Client,
    tenant: String,
    rows: &Rows,
    prefix: &str,
    range: std::ops::Range<u64>,
    window: usize,
    pace: Option<f64>,
) -> anyhow::Result<Ingested> {
    let (batches, rx) = mpsc::channel(window);
    let mut answers = client
        .stream_measurements(ReceiverStream::new(rx))
        .await?
        .into_inner();
    let began = Instant::now();
    let due = |k: u64| pace.map(|p| began + Duration::from_secs_f64((k * BATCH) as f64 / p));
    let (mut round_trip, mut service) = (histogram(), histogram());
    let mut in_flight: VecDeque<(i64, Instant, u64)> = VecDeque::new();
    let mut last_answer = began;
    let mut next = range.start;
    let mut sequence = 0i64;
    loop {
        while in_flight.len() < window
            && next < range.end
            && due(sequence as u64).is_none_or(|t| t <= Instant::now())
        {
            let end = (next + BATCH).min(range.end);
            let request = pb::StreamMeasurementsRequest {
                parent: tenant.clone(),
                measurements: rows.measurements(prefix, next..end),
                sequence,
            };
            batches.send(request).await?;
            in_flight.push_back((sequence, Instant::now(), end - next));
            sequence += 1;
            next = end;
        }
        if in_flight.is_empty() {
            match due(sequence as u64) {
                Some(t) if next < range.end => {
                    tokio::time::sleep_until(t.into()).await;
                    continue;
                }
                _ => break,
            }
        }
        let answer = match due(sequence as u64) {
            Some(t) if next < range.end && in_flight.len() < window => {
                tokio::select! {
                    answer = answers.message() => answer?,
                    _ = tokio::time::sleep_until(t.into()) => continue,
                }
            }
            _ => answers.message().await?,
        };
        let answer = answer.ok_or_else(|| anyhow::anyhow!("the stream ended early"))?;
        let now = Instant::now();
        let (expected, sent, size) = in_flight.pop_front().expect("a batch in flight");
        anyhow::ensure!(
            answer.sequence == expected && answer.accepted == size as i64,
            "batch {expected} not wholly accepted: {answer:?}"
        );
        round_trip.record((now - sent).as_micros().max(1) as u64)?;
        service.record((now - sent.max(last_answer)).as_micros().max(1) as u64)?;
        last_answer = now;
    }
    let seconds = began.elapsed().as_secs_f64();
    drop(batches);
    anyhow::ensure!(answers.message().await?.is_none(), "an answer too many");
    Ok(Ingested {
        measurements: range.end - range.start,
        seconds,
        round_trip,
        service,
    })
}

fn print_ingested(name: &str, run: &Ingested) {
    if run.measurements == 0 {
        return;
    }
    println!(
        "| {name} | {} | {:.1} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
        run.measurements,
        run.seconds,
        run.rate(),
        ms(&run.service, 0.5),
        ms(&run.service, 0.99),
        ms(&run.round_trip, 0.5),
        ms(&run.round_trip, 0.99),
    );
}

const INGESTED_HEADER: &str = "| run | measurements | s | measurements/s | batch p50 ms | batch p99 ms | round trip p50 ms | round trip p99 ms |\n|---|---:|---:|---:|---:|---:|---:|---:|";

// --- the run ---------------------------------------------------------------------

/// A server with the given pool and cache on `database_url`; returns a channel
/// to it and its stop switch.
fn server(
    server_rt: &tokio::runtime::Runtime,
    client_rt: &tokio::runtime::Runtime,
    database_url: &str,
    platform: &str,
    max_connections: u32,
    cache: u64,
) -> anyhow::Result<(Channel, tokio::sync::oneshot::Sender<()>)> {
    let config = Config {
        database_url: database_url.into(),
        max_connections,
        max_concurrent_requests: 1024,
        entitlement_cache_size: cache,
        bootstrap_key: Some(Secret::new(platform.into())),
        ..Config::default()
    };
    let (port, stop) = start(server_rt, config, None)?;
    Ok((client_rt.block_on(connect(port)), stop))
}

/// The registry resolves and measurements need: services `s0…s{n-1}`
/// (`SERVICES` of them at least) with an SLA on `INDICATOR`, and customers.
fn registry_args(args: &Args) -> Args {
    Args {
        services: args.services.clamp(SERVICES as usize, 100),
        customers: args.customers.min(1_000),
        ..args.clone()
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let server_rt = pinned_runtime("server", 0);
    let client_rt = pinned_runtime("client", 1);
    if !args.postgres_only {
        sqlite(args, &server_rt, &client_rt)?;
    }
    match &args.postgres {
        Some(admin) => postgres(args, admin, &server_rt, &client_rt),
        None if args.postgres_only => anyhow::bail!("--postgres-only needs --postgres URL"),
        None => Ok(()),
    }
}

fn sqlite(
    args: &Args,
    server_rt: &tokio::runtime::Runtime,
    client_rt: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let url = format!("sqlite:{}/measurements.db", dir.display());
    let platform = format!("acc_bench_{}", hex::encode(rand::random::<[u8; 16]>()));
    let (channel, stop) = server(server_rt, client_rt, &url, &platform, 1, 100_000)?;
    let small = registry_args(args);
    let figures = client_rt.block_on(async {
        let (world, admin) = load(channel.clone(), &platform, &small).await?;
        let client =
            MeasurementServiceClient::new(InterceptedService::new(channel.clone(), bearer(&admin)));
        let rows = Rows::new(&world.tenant, args.measurements_rows);
        ingest(
            client,
            world.tenant.clone(),
            &rows,
            "sqlite",
            0..args.measurements_rows,
            2,
            None,
        )
        .await
    })?;
    println!();
    println!("### SQLite");
    println!();
    println!("{INGESTED_HEADER}");
    print_ingested("StreamMeasurements, pool of 1", &figures);
    println!();
    let rate = figures.rate();
    println!(
        "- SQLite ingestion ≥ 50,000 measurements/s: {rate:.0}/s → {}",
        verdict(rate >= 50_000.0)
    );
    let _ = stop.send(());
    std::thread::sleep(Duration::from_millis(500));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn postgres(
    args: &Args,
    admin_url: &str,
    server_rt: &tokio::runtime::Runtime,
    client_rt: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let name = format!("accord_bench_m_{}", std::process::id());
    client_rt.block_on(create_database(admin_url, &name))?;
    let url = with_database(admin_url, &name);
    let result = postgres_in(args, &url, server_rt, client_rt);
    // Let the servers close their pools before the database goes.
    std::thread::sleep(Duration::from_millis(500));
    client_rt.block_on(drop_database(admin_url, &name))?;
    result
}

fn postgres_in(
    args: &Args,
    url: &str,
    server_rt: &tokio::runtime::Runtime,
    client_rt: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let n = args.measurements_rows;
    let total = args.measurements_rss_rows.max(n);
    let platform = format!("acc_bench_{}", hex::encode(rand::random::<[u8; 16]>()));
    // The ingesting server: one connection.
    let (channel, stop_one) = server(server_rt, client_rt, url, &platform, 1, 100_000)?;
    let small = registry_args(args);
    let (world, admin) = client_rt.block_on(load(channel.clone(), &platform, &small))?;
    client_rt.block_on(analyze(url))?;
    let rows = Rows::new(&world.tenant, total);
    let tenant_id = world.tenant.trim_start_matches("tenants/").to_string();
    let client =
        || MeasurementServiceClient::new(InterceptedService::new(channel.clone(), bearer(&admin)));

    let ceiling = client_rt.block_on(ceilings(url, &tenant_id, &rows, n))?;
    let writes = client_rt.block_on(bare_writes(url, &tenant_id, &rows, n))?;
    let rss_before = rss_mib();
    let cpu_before = server_cpu_seconds();
    let first = client_rt.block_on(ingest(
        client(),
        world.tenant.clone(),
        &rows,
        "pg",
        0..n,
        2,
        None,
    ))?;
    let rss_first = rss_mib();
    let cpu_per_batch = (server_cpu_seconds() - cpu_before) * 1000.0 / (n / BATCH) as f64;
    let rest = client_rt.block_on(ingest(
        client(),
        world.tenant.clone(),
        &rows,
        "pg",
        n..total,
        2,
        None,
    ))?;
    let rss_total = rss_mib();
    let _ = stop_one.send(());

    // Resolves, idle and under ingestion at half the rate above, on servers
    // with the default pool: the cache on, then off.
    let half = first.rate() / 2.0;
    let mut resolves = Vec::new();
    let mut next = total;
    for (cache, label) in [(100_000, "cached"), (0, "uncached")] {
        let (channel, stop) = server(server_rt, client_rt, url, &platform, 10, cache)?;
        let (idle, loaded, paced) =
            resolve_under_load(args, client_rt, &channel, &world, &admin, &rows, next, half)?;
        next += paced.measurements;
        resolves.push((label, idle, loaded, paced));
        let _ = stop.send(());
    }

    println!();
    println!("### PostgreSQL");
    println!();
    println!("| run | rows | s | rows/s |\n|---|---:|---:|---:|");
    println!(
        "| ceiling: INSERT … SELECT FROM UNNEST, {BATCH} rows a statement, with their keys, equally indexed | {n} | {:.1} | {:.0} |",
        n as f64 / ceiling.keyed,
        ceiling.keyed
    );
    println!(
        "| (narrower ceiling: the raw rows alone, their series index only) | {n} | {:.1} | {:.0} |",
        n as f64 / ceiling.raw,
        ceiling.raw
    );
    println!(
        "| the writes of a batch, bare: keys, raw rows, 3 rollup upserts, a transaction per {BATCH} | {n} | {:.1} | {:.0} |",
        n as f64 / writes.rate,
        writes.rate
    );
    println!();
    println!(
        "bare writes, ms per batch of {BATCH}: keys {:.2}, raw rows {:.2}, rollups {:.2}, commit {:.2}",
        writes.keys, writes.raw, writes.rollups, writes.commit
    );
    println!();
    println!("{INGESTED_HEADER}");
    print_ingested("StreamMeasurements, pool of 1: the same rows", &first);
    print_ingested("StreamMeasurements, pool of 1: to the total", &rest);
    for (label, _, _, paced) in &resolves {
        print_ingested(
            &format!("at half rate, during {label} resolves (pool of 10)"),
            paced,
        );
    }
    println!();
    println!(
        "| ResolveEntitlement, concurrency 1 | req/s | p50 ms | p99 ms |\n|---|---:|---:|---:|"
    );
    for (label, idle, loaded, _) in &resolves {
        for (when, run) in [("idle", idle), ("during ingestion", loaded)] {
            println!(
                "| {label}, {when} | {:.0} | {:.3} | {:.3} |",
                run.rate(),
                run.p50_ms(),
                run.p99_ms()
            );
        }
    }
    println!();
    println!("server runtime CPU per batch of {BATCH} (the same rows): {cpu_per_batch:.2} ms");
    println!(
        "server RSS (this process): {rss_before:.1} MiB before ingesting, {rss_first:.1} MiB after {n}, {rss_total:.1} MiB after {total}"
    );
    println!();
    let ratio = first.rate() / ceiling.keyed;
    println!(
        "- ingestion ≥ 0.70 × the ceiling's rows/s: {:.0} ÷ {:.0} = {ratio:.2} × → {}",
        first.rate(),
        ceiling.keyed,
        verdict(ratio >= 0.70)
    );
    println!(
        "- (for comparison) ingestion ÷ the narrower ceiling, raw rows alone: {:.2} ×",
        first.rate() / ceiling.raw
    );
    println!(
        "- (for the why) ingestion ÷ the same writes, bare: {:.2} ×",
        first.rate() / writes.rate
    );
    let p99 = ms(&first.service, 0.99);
    println!(
        "- p99 per {BATCH}-item batch acknowledgement ≤ 15 ms: {p99:.2} ms → {}",
        verdict(p99 <= 15.0)
    );
    for (label, idle, loaded, _) in &resolves {
        let r = loaded.p99_ms() / idle.p99_ms();
        println!(
            "- {label} ResolveEntitlement p99 during ingestion at half rate ≤ 2 × idle: {:.3} ÷ {:.3} ms = {r:.2} × → {}",
            loaded.p99_ms(),
            idle.p99_ms(),
            verdict(r <= 2.0)
        );
    }
    let r = rss_total / rss_first;
    println!(
        "- RSS after {total} ≤ 1.2 × after {n}: {rss_total:.1} ÷ {rss_first:.1} MiB = {r:.2} × → {}",
        verdict(r <= 1.2)
    );
    Ok(())
}

/// ResolveEntitlement at concurrency 1 on the server behind `channel`, idle,
/// then while a stream from another runtime ingests at `pace`; returns both
/// runs and what the stream measured.
#[allow(clippy::too_many_arguments)]
fn resolve_under_load(
    args: &Args,
    client_rt: &tokio::runtime::Runtime,
    channel: &Channel,
    world: &World,
    admin: &str,
    rows: &Rows,
    from: u64,
    pace: f64,
) -> anyhow::Result<(super::Run, super::Run, Ingested)> {
    let warmup = Duration::from_secs(args.warmup_seconds);
    let measured = Duration::from_secs(args.seconds);
    let mut rng = StdRng::seed_from_u64(args.seed);
    let pairs: std::sync::Arc<Vec<(String, String)>> = std::sync::Arc::new(
        (0..1_000)
            .map(|_| {
                (
                    world.customers[rng.random_range(0..world.customers.len())].clone(),
                    world.services[rng.random_range(0..world.services.len())].clone(),
                )
            })
            .collect(),
    );
    let client =
        EntitlementServiceClient::new(InterceptedService::new(channel.clone(), bearer(admin)));
    let tenant = world.tenant.clone();
    let resolve = move |i: usize| {
        let mut client = client.clone();
        let (consumer, service) = pairs[i % pairs.len()].clone();
        let tenant = tenant.clone();
        async move {
            client
                .resolve_entitlement(pb::ResolveEntitlementRequest {
                    parent: tenant,
                    consumer,
                    service,
                    ..Default::default()
                })
                .await
                .map(|_| ())
        }
    };
    let idle = client_rt.block_on(drive(1, warmup, measured, resolve.clone()));
    // The load's client gets a runtime of its own (unpinned), so that
    // encoding batches does not delay the resolves' client.
    let load_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("load")
        .enable_all()
        .build()?;
    let span = warmup + measured + Duration::from_secs(1);
    let count = ((pace * span.as_secs_f64()) as u64 / BATCH).max(1) * BATCH;
    let measurements =
        MeasurementServiceClient::new(InterceptedService::new(channel.clone(), bearer(admin)));
    let load_rt = &load_rt;
    let loaded = std::thread::scope(|scope| {
        let load = scope.spawn(move || {
            load_rt.block_on(ingest(
                measurements,
                world.tenant.clone(),
                rows,
                "pg",
                from..from + count,
                8,
                Some(pace),
            ))
        });
        // Let the stream reach its pace before the warm-up starts.
        std::thread::sleep(Duration::from_millis(500));
        let loaded = client_rt.block_on(drive(1, warmup, measured, resolve));
        let paced = load.join().expect("the load's thread");
        (loaded, paced)
    });
    let (loaded, paced) = loaded;
    Ok((idle, loaded, paced?))
}
