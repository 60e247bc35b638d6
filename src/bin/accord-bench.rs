//! `accord-bench`: measures entitlement resolution against a ceiling, in one
//! run, on this machine. Not a test: run it in release mode.
//!
//! It loads a registry (by default 1,000 services, each with a published
//! SERVICE_LEVEL agreement, 10,000 customers, overrides for 5 % of them)
//! through the API, then starts three servers on 127.0.0.1:0 over the same
//! database, all built by `Application` with the same tonic builder, layers
//! (deadlines, authentication, admission, limits) and settings:
//!
//! - echo: `EntitlementService` answers every resolve with one prepared
//!   entitlement, without resolving: the ceiling of the stack;
//! - cached: the real server, resolving from its cache;
//! - uncached: the real server with the cache off, resolving from the database.
//!
//! One client (one HTTP/2 connection per server) drives each at concurrency
//! 1, 16 and 64 after a warm-up, recording every latency in an HDR histogram.
//! The servers' runtime is pinned to the first core, the client's to the
//! second. It prints req/s, p50 and p99 of each, the ratios to echo, and the
//! targets of issues 4 and 9 with whether they hold. With `--postgres` it
//! measures SQLite and then PostgreSQL, and compares the two engines.
//!
//!   cargo run --release --bin accord-bench                     # SQLite
//!   cargo run --release --bin accord-bench -- --postgres postgres://postgres@127.0.0.1:5432/postgres
//!
//! With `--measurements` it measures measurement ingestion instead (see
//! `measurements.rs`); with `--compliance`, GetCompliance (see
//! `compliance.rs`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use accord::api::entitlement::{Entitlements, WatchStream};
use accord::app::Application;
use accord::config::Config;
use accord::domain::api_key::Secret;
use accord::proto::v1 as pb;
use accord::proto::v1::entitlement_service_server::EntitlementService;
use clap::Parser;
use hdrhistogram::Histogram;
use pb::agreement_service_client::AgreementServiceClient;
use pb::api_key_service_client::ApiKeyServiceClient;
use pb::entitlement_service_client::EntitlementServiceClient;
use pb::party_service_client::PartyServiceClient;
use pb::service_catalog_service_client::ServiceCatalogServiceClient;
use pb::tenant_service_client::TenantServiceClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

#[path = "accord-bench/compliance.rs"]
mod compliance;
#[path = "accord-bench/measurements.rs"]
mod measurements;

#[derive(Parser, Debug, Clone)]
#[command(
    about = "Benchmark entitlement resolution against an echo ceiling, or, with \
                   --measurements, measurement ingestion against a bare INSERT, or, with \
                   --compliance, GetCompliance against a cached resolve"
)]
struct Args {
    /// Measure measurement ingestion (StreamMeasurements) instead of
    /// entitlement resolution: against a bare `INSERT … SELECT FROM UNNEST`
    /// on PostgreSQL (with --postgres), with resolves during ingestion and
    /// the server's memory; and on SQLite.
    #[arg(long)]
    measurements: bool,
    /// Measure GetCompliance instead of entitlement resolution: a rolling
    /// 30-day window over 30 days of one-minute data, and a calendar year
    /// over a year of it, by agreement and by (consumer, service) pair,
    /// against a cached ResolveEntitlement on the same server.
    #[arg(long)]
    compliance: bool,
    /// With --measurements: the rows of the ceiling and of the first
    /// ingestion run.
    #[arg(long, default_value_t = 1_000_000)]
    measurements_rows: u64,
    /// With --measurements: the measurements ingested in all before the
    /// server's memory is read again (PostgreSQL).
    #[arg(long, default_value_t = 5_000_000)]
    measurements_rss_rows: u64,
    /// A PostgreSQL URL with the right to create databases: the benchmark
    /// then measures PostgreSQL too, after SQLite, in a database it creates
    /// and drops, and compares the two. Without it: SQLite only, in a file
    /// in a temporary directory.
    #[arg(long)]
    postgres: Option<String>,
    /// With --postgres: measure PostgreSQL only.
    #[arg(long)]
    postgres_only: bool,
    #[arg(long, default_value_t = 1000)]
    services: usize,
    #[arg(long, default_value_t = 10_000)]
    customers: usize,
    /// The share of customers with an override.
    #[arg(long, default_value_t = 0.05)]
    override_share: f64,
    /// Pairs in the working set the cached runs draw from.
    #[arg(long, default_value_t = 10_000)]
    working_set: usize,
    /// Seconds measured per run, after the warm-up.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    #[arg(long, default_value_t = 1)]
    warmup_seconds: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Clone)]
struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

fn bearer(secret: &str) -> Bearer {
    Bearer(format!("Bearer {secret}").parse().expect("ascii secret"))
}

/// The ceiling: answers every resolve with the same entitlement.
struct Echo(pb::Entitlement);

#[tonic::async_trait]
impl EntitlementService for Echo {
    async fn resolve_entitlement(
        &self,
        _: Request<pb::ResolveEntitlementRequest>,
    ) -> Result<Response<pb::Entitlement>, Status> {
        Ok(Response::new(self.0.clone()))
    }

    async fn batch_resolve_entitlements(
        &self,
        _: Request<pb::BatchResolveEntitlementsRequest>,
    ) -> Result<Response<pb::BatchResolveEntitlementsResponse>, Status> {
        Err(Status::unimplemented(
            "echo answers ResolveEntitlement only",
        ))
    }

    type WatchEntitlementsStream = WatchStream;

    async fn watch_entitlements(
        &self,
        _: Request<pb::WatchEntitlementsRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        Err(Status::unimplemented(
            "echo answers ResolveEntitlement only",
        ))
    }

    async fn explain_entitlement(
        &self,
        _: Request<pb::ExplainEntitlementRequest>,
    ) -> Result<Response<pb::EntitlementExplanation>, Status> {
        Err(Status::unimplemented(
            "echo answers ResolveEntitlement only",
        ))
    }
}

/// A runtime whose one worker thread is pinned to `core`.
fn pinned_runtime(name: &str, core: usize) -> tokio::runtime::Runtime {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let id = cores.get(core % cores.len().max(1)).copied();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .on_thread_start(move || {
            if let Some(id) = id {
                core_affinity::set_for_current(id);
            }
        })
        .enable_all()
        .build()
        .expect("build runtime")
}

struct Server {
    channel: Channel,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

fn start(
    rt: &tokio::runtime::Runtime,
    config: Config,
    echo: Option<pb::Entitlement>,
) -> anyhow::Result<(u16, tokio::sync::oneshot::Sender<()>)> {
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let mut app = Application::build(config, listener).await?;
        if let Some(e) = echo {
            app.replace_entitlements(Entitlements::new(Echo(e)));
        }
        let port = app.port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.serve_until(async {
            let _ = stopped.await;
        }));
        Ok((port, stop))
    })
}

async fn connect(port: u16) -> Channel {
    Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("url")
        .connect()
        .await
        .expect("connect")
}

/// Figures of one run.
struct Run {
    requests: u64,
    seconds: f64,
    histogram: Histogram<u64>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
    fn p50_ms(&self) -> f64 {
        self.histogram.value_at_quantile(0.50) as f64 / 1000.0
    }
    fn p99_ms(&self) -> f64 {
        self.histogram.value_at_quantile(0.99) as f64 / 1000.0
    }
}

/// Calls `call(i)` from `concurrency` tasks for warm-up plus `seconds`,
/// recording latencies (µs) after the warm-up. Any error stops the run.
async fn drive<F, Fut>(concurrency: usize, warmup: Duration, measured: Duration, call: F) -> Run
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), Status>> + Send,
{
    let counter = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + measured;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let call = call.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
            let mut n = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let i = counter.fetch_add(1, Ordering::Relaxed);
                call(i).await.expect("benchmark call failed");
                if t0 >= measure_from {
                    let micros = t0.elapsed().as_micros() as u64;
                    h.record(micros.max(1)).expect("record");
                    n += 1;
                }
            }
            (n, h)
        }));
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let mut requests = 0;
    for t in tasks {
        let (n, h) = t.await.expect("driver task");
        requests += n;
        histogram.add(h).expect("merge");
    }
    Run {
        requests,
        seconds: measured.as_secs_f64(),
        histogram,
    }
}

struct World {
    tenant: String,
    customers: Vec<String>,
    services: Vec<String>,
    /// A customer with an override, and the service whose agreement has it.
    overridden: (String, String),
}

/// Creates the tenant `bench` with the platform key and a TENANT_ADMIN key
/// in it: the tenant's name and the key's secret.
async fn bench_tenant(channel: &Channel, platform: &str) -> anyhow::Result<(String, String)> {
    let t = "bench";
    let tenant = format!("tenants/{t}");
    TenantServiceClient::new(InterceptedService::new(channel.clone(), bearer(platform)))
        .create_tenant(pb::CreateTenantRequest {
            tenant_id: t.into(),
            tenant: Some(pb::Tenant {
                display_name: "Benchmark".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await?;
    let admin =
        ApiKeyServiceClient::new(InterceptedService::new(channel.clone(), bearer(platform)))
            .create_api_key(pb::CreateApiKeyRequest {
                parent: tenant.clone(),
                api_key_id: "bench".into(),
                api_key: Some(pb::ApiKey {
                    role: pb::Role::TenantAdmin.into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await?
            .into_inner()
            .secret;
    Ok((tenant, admin))
}

/// Loads the registry through the API with `parallel` calls in flight.
async fn load(channel: Channel, platform: &str, args: &Args) -> anyhow::Result<(World, String)> {
    use futures_util::{StreamExt, stream};
    let parallel = 32;
    let (tenant, admin) = bench_tenant(&channel, platform).await?;
    let authed = InterceptedService::new(channel.clone(), bearer(&admin));
    let parties = PartyServiceClient::new(authed.clone());
    let party = |id: String, kind: pb::PartyKind| {
        let mut parties = parties.clone();
        let tenant = tenant.clone();
        async move {
            parties
                .create_party(pb::CreatePartyRequest {
                    parent: tenant,
                    party_id: id,
                    party: Some(pb::Party {
                        kind: kind.into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                })
                .await
                .map(|r| r.into_inner().name)
        }
    };
    let provider = party("platform".into(), pb::PartyKind::Provider).await?;
    let customers: Vec<String> = stream::iter(0..args.customers)
        .map(|i| party(format!("c{i}"), pb::PartyKind::Customer))
        .buffered(parallel)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let catalog = ServiceCatalogServiceClient::new(authed.clone());
    let agreements = AgreementServiceClient::new(authed.clone());
    let objective = pb::Objective {
        key: "availability".into(),
        display_name: "Availability".into(),
        indicator: "http_success".into(),
        kind: pb::ObjectiveKind::Ratio.into(),
        target: 0.999,
        window: Some(pb::Window {
            window: Some(pb::window::Window::Rolling(pb::RollingWindow {
                duration: Some(prost_types::Duration {
                    seconds: 30 * 86_400,
                    nanos: 0,
                }),
            })),
        }),
        ..Default::default()
    };
    let services: Vec<String> = stream::iter(0..args.services)
        .map(|i| {
            let (mut catalog, mut agreements) = (catalog.clone(), agreements.clone());
            let (tenant, provider, objective) =
                (tenant.clone(), provider.clone(), objective.clone());
            async move {
                let service = catalog
                    .create_service(pb::CreateServiceRequest {
                        parent: tenant.clone(),
                        service_id: format!("s{i}"),
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
                        parent: tenant,
                        agreement_id: format!("sla-s{i}"),
                        agreement: Some(pb::Agreement {
                            kind: pb::AgreementKind::ServiceLevel.into(),
                            provider,
                            services: vec![service.clone()],
                            effective_from: Some(prost_types::Timestamp {
                                seconds: 1_767_225_600,
                                nanos: 0,
                            }),
                            objectives: vec![objective],
                            ..Default::default()
                        }),
                        request_id: String::new(),
                    })
                    .await?
                    .into_inner();
                agreements
                    .publish_agreement(pb::PublishAgreementRequest {
                        name: a.name,
                        etag: a.etag,
                    })
                    .await?;
                Ok::<_, Status>(service)
            }
        })
        .buffered(parallel)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let overrides = (args.customers as f64 * args.override_share).round() as usize;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let targets: Vec<(usize, usize)> = (0..overrides)
        .map(|i| {
            (
                i * args.customers / overrides.max(1),
                rng.random_range(0..args.services),
            )
        })
        .collect();
    stream::iter(targets.iter().copied())
        .map(|(c, s)| {
            let mut agreements = agreements.clone();
            let (tenant, customer) = (tenant.clone(), customers[c].clone());
            async move {
                agreements
                    .create_override(pb::CreateOverrideRequest {
                        parent: format!("{tenant}/agreements/sla-s{s}"),
                        override_id: format!("o-c{c}"),
                        r#override: Some(pb::Override {
                            consumer: customer,
                            effective_from: Some(prost_types::Timestamp {
                                seconds: 1_767_225_600,
                                nanos: 0,
                            }),
                            objective_patches: vec![pb::ObjectivePatch {
                                key: "availability".into(),
                                target: Some(0.9999),
                                ..Default::default()
                            }],
                            ..Default::default()
                        }),
                        request_id: String::new(),
                    })
                    .await
            }
        })
        .buffered(parallel)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let (c, s) = targets.first().copied().unwrap_or((0, 0));
    Ok((
        World {
            tenant,
            overridden: (customers[c].clone(), services[s].clone()),
            customers,
            services,
        },
        admin,
    ))
}

/// The figures of one engine's runs, for the verdicts and the comparison.
struct Figures {
    engine: &'static str,
    /// `(run, concurrency, figures)`, in the order measured.
    runs: Vec<(&'static str, usize, Run)>,
}

impl Figures {
    fn run(&self, name: &str, concurrency: usize) -> &Run {
        self.runs
            .iter()
            .find(|(n, c, _)| *n == name && *c == concurrency)
            .map(|(_, _, r)| r)
            .expect("every run is measured")
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.measurements {
        return measurements::run(&args);
    }
    if args.compliance {
        return compliance::run(&args);
    }
    let server_rt = pinned_runtime("server", 0);
    let client_rt = pinned_runtime("client", 1);
    let mut engines: Vec<Option<String>> = Vec::new();
    if !args.postgres_only {
        engines.push(None);
    }
    match &args.postgres {
        Some(admin) => engines.push(Some(admin.clone())),
        None if args.postgres_only => anyhow::bail!("--postgres-only needs --postgres URL"),
        None => {}
    }
    let mut all = Vec::new();
    for postgres in engines {
        let figures = bench_engine(&args, &server_rt, &client_rt, postgres.as_deref())?;
        all.push(figures);
    }
    drop(server_rt);
    if let [sqlite, postgres] = all.as_slice() {
        println!();
        let (a, b) = (sqlite.engine, postgres.engine);
        println!("### {a} against {b}, uncached, in this run");
        println!();
        println!("| run | concurrency | {a} req/s | {b} req/s | {a} ÷ {b} |");
        println!("|---|---:|---:|---:|---:|");
        let mut verdicts = Vec::new();
        for (name, c) in [
            ("uncached resolve", 1),
            ("uncached resolve", 16),
            ("uncached resolve", 64),
            ("uncached batch of 1,000", 1),
        ] {
            let (a, b) = (sqlite.run(name, c), postgres.run(name, c));
            let ratio = a.rate() / b.rate();
            println!(
                "| {name} | {c} | {:.0} | {:.0} | {ratio:.2} |",
                a.rate(),
                b.rate()
            );
            if name == "uncached resolve" && c <= 16 {
                verdicts.push(format!(
                    "uncached SQLite ≥ PostgreSQL req/s at concurrency {c}: {ratio:.2} × → {}",
                    verdict(ratio >= 1.0)
                ));
            }
        }
        println!();
        for v in verdicts {
            println!("- {v}");
        }
    }
    Ok(())
}

/// Loads a registry into one engine (SQLite in a temporary directory, or a
/// database created on the PostgreSQL server `postgres` names), measures it
/// and drops it.
fn bench_engine(
    args: &Args,
    server_rt: &tokio::runtime::Runtime,
    client_rt: &tokio::runtime::Runtime,
    postgres: Option<&str>,
) -> anyhow::Result<Figures> {
    let dir = tempfile_dir()?;
    let (database_url, dropper) = match postgres {
        None => (format!("sqlite:{}/bench.db", dir.display()), None),
        Some(admin) => {
            let name = format!("accord_bench_{}", std::process::id());
            client_rt.block_on(create_database(admin, &name))?;
            (with_database(admin, &name), Some((admin.to_string(), name)))
        }
    };
    let platform = format!("acc_bench_{}", hex::encode(rand::random::<[u8; 16]>()));
    let config = |cache: u64| Config {
        database_url: database_url.clone(),
        max_connections: 16,
        max_concurrent_requests: 1024,
        entitlement_cache_size: cache,
        bootstrap_key: Some(Secret::new(platform.clone())),
        ..Config::default()
    };
    let engine = if postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!();
    println!("### {engine}");
    println!();
    let (cached_port, cached_stop) = start(server_rt, config(1_000_000), None)?;
    let result = client_rt.block_on(async {
        let cached = connect(cached_port).await;
        let began = Instant::now();
        let (world, admin) = load(cached.clone(), &platform, args).await?;
        println!(
            "loaded {} services, {} customers, {} overrides into {engine} in {:.1} s",
            world.services.len(),
            world.customers.len(),
            (world.customers.len() as f64 * args.override_share).round(),
            began.elapsed().as_secs_f64()
        );
        anyhow::Ok((cached, world, admin))
    });
    let (cached, world, admin) = result?;
    if let Some((admin_url, name)) = &dropper {
        // A registry in use has statistics (autovacuum gathers them within
        // a minute of a bulk load); one loaded a moment ago has none yet, and
        // PostgreSQL would plan the measured statements for empty tables.
        client_rt.block_on(analyze(&with_database(admin_url, name)))?;
    }
    let sample = client_rt.block_on(async {
        EntitlementServiceClient::new(InterceptedService::new(cached.clone(), bearer(&admin)))
            .resolve_entitlement(pb::ResolveEntitlementRequest {
                parent: world.tenant.clone(),
                consumer: world.overridden.0.clone(),
                service: world.overridden.1.clone(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
    })?;
    let (echo_port, echo_stop) = start(server_rt, config(0), Some(sample))?;
    let (uncached_port, uncached_stop) = start(server_rt, config(0), None)?;
    let servers = client_rt.block_on(async {
        [
            Server {
                channel: connect(echo_port).await,
                stop: Some(echo_stop),
            },
            Server {
                channel: cached.clone(),
                stop: Some(cached_stop),
            },
            Server {
                channel: connect(uncached_port).await,
                stop: Some(uncached_stop),
            },
        ]
    });
    let figures = client_rt.block_on(measure(args, &world, &admin, &servers, engine));
    for mut s in servers {
        if let Some(stop) = s.stop.take() {
            let _ = stop.send(());
        }
    }
    // Let the servers close their pools before the database goes.
    std::thread::sleep(Duration::from_millis(500));
    if let Some((admin, name)) = dropper {
        client_rt.block_on(drop_database(&admin, &name))?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    figures
}

async fn measure(
    args: &Args,
    world: &World,
    admin: &str,
    servers: &[Server; 3],
    engine: &'static str,
) -> anyhow::Result<Figures> {
    let warmup = Duration::from_secs(args.warmup_seconds);
    let measured = Duration::from_secs(args.seconds);
    let mut rng = StdRng::seed_from_u64(args.seed + 1);
    let pair = |rng: &mut StdRng| {
        (
            world.customers[rng.random_range(0..world.customers.len())].clone(),
            world.services[rng.random_range(0..world.services.len())].clone(),
        )
    };
    let working: Arc<Vec<(String, String)>> =
        Arc::new((0..args.working_set).map(|_| pair(&mut rng)).collect());
    let everything: Arc<Vec<(String, String)>> =
        Arc::new((0..200_000).map(|_| pair(&mut rng)).collect());
    let client = |s: &Server| {
        EntitlementServiceClient::new(InterceptedService::new(s.channel.clone(), bearer(admin)))
    };
    let resolve = |s: &Server, pairs: Arc<Vec<(String, String)>>| {
        let client = client(s);
        let tenant = world.tenant.clone();
        move |i: usize| {
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
        }
    };
    // Fill the cached server's cache with the working set.
    let fill = resolve(&servers[1], working.clone());
    for i in 0..working.len() {
        fill(i).await?;
    }

    println!();
    println!("| run | concurrency | req/s | p50 ms | p99 ms | req/s ÷ echo | p99 ÷ echo |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut verdicts = Vec::new();
    let mut runs = Vec::new();
    for c in [1usize, 16, 64] {
        let echo = drive(c, warmup, measured, resolve(&servers[0], working.clone())).await;
        let cached = drive(c, warmup, measured, resolve(&servers[1], working.clone())).await;
        let uncached = drive(
            c,
            warmup,
            measured,
            resolve(&servers[2], everything.clone()),
        )
        .await;
        for (name, run) in [
            ("echo", &echo),
            ("cached resolve", &cached),
            ("uncached resolve", &uncached),
        ] {
            println!(
                "| {name} | {c} | {:.0} | {:.3} | {:.3} | {:.2} | {:.2} |",
                run.rate(),
                run.p50_ms(),
                run.p99_ms(),
                run.rate() / echo.rate(),
                run.p99_ms() / echo.p99_ms()
            );
        }
        if c == 64 {
            let ratio = cached.rate() / echo.rate();
            verdicts.push(format!(
                "cached req/s ≥ 0.80 × echo at concurrency 64: {ratio:.2} × → {}",
                verdict(ratio >= 0.80)
            ));
        } else {
            let ratio = cached.p99_ms() / echo.p99_ms();
            verdicts.push(format!(
                "cached p99 ≤ 1.25 × echo at concurrency {c}: {ratio:.2} × → {}",
                verdict(ratio <= 1.25)
            ));
        }
        if c <= 16 {
            let p99 = uncached.p99_ms();
            verdicts.push(format!(
                "uncached p99 ≤ 10 ms at concurrency {c}: {p99:.2} ms → {}",
                verdict(p99 <= 10.0)
            ));
        }
        runs.push(("echo", c, echo));
        runs.push(("cached resolve", c, cached));
        runs.push(("uncached resolve", c, uncached));
    }
    // Batches of 1,000 pairs from the working set (cached) and from anywhere
    // (uncached), one at a time.
    let batch = |s: &Server, pairs: Arc<Vec<(String, String)>>| {
        let client = client(s);
        let tenant = world.tenant.clone();
        move |i: usize| {
            let mut client = client.clone();
            let tenant = tenant.clone();
            let start = (i * 1000) % pairs.len();
            let chosen: Vec<pb::EntitlementPair> = (0..1000)
                .map(|k| {
                    let (consumer, service) = pairs[(start + k) % pairs.len()].clone();
                    pb::EntitlementPair { consumer, service }
                })
                .collect();
            async move {
                client
                    .batch_resolve_entitlements(pb::BatchResolveEntitlementsRequest {
                        parent: tenant,
                        pairs: chosen,
                        ..Default::default()
                    })
                    .await
                    .map(|_| ())
            }
        }
    };
    let cached_batch = drive(1, warmup, measured, batch(&servers[1], working.clone())).await;
    let uncached_batch = drive(1, warmup, measured, batch(&servers[2], everything.clone())).await;
    for (name, run) in [
        ("cached batch of 1,000", &cached_batch),
        ("uncached batch of 1,000", &uncached_batch),
    ] {
        println!(
            "| {name} | 1 | {:.1} | {:.3} | {:.3} | | |",
            run.rate(),
            run.p50_ms(),
            run.p99_ms()
        );
    }
    let p99 = cached_batch.p99_ms();
    verdicts.push(format!(
        "cached BatchResolve of 1,000 pairs p99 ≤ 20 ms: {p99:.2} ms → {}",
        verdict(p99 <= 20.0)
    ));
    let p99 = uncached_batch.p99_ms();
    verdicts.push(format!(
        "uncached BatchResolve of 1,000 pairs p99 ≤ 50 ms: {p99:.2} ms → {}",
        verdict(p99 <= 50.0)
    ));
    runs.push(("cached batch of 1,000", 1, cached_batch));
    runs.push(("uncached batch of 1,000", 1, uncached_batch));
    println!();
    for v in verdicts {
        println!("- {v}");
    }
    Ok(Figures { engine, runs })
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("accord-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn with_database(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin, String::new()),
    };
    let root = base.rsplit_once('/').map(|(r, _)| r).unwrap_or(base);
    format!("{root}/{name}{query}")
}

async fn create_database(admin: &str, name: &str) -> anyhow::Result<()> {
    use sqlx::Executor;
    let pool = sqlx::PgPool::connect(admin).await?;
    pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await?;
    pool.close().await;
    Ok(())
}

async fn analyze(url: &str) -> anyhow::Result<()> {
    use sqlx::Executor;
    let pool = sqlx::PgPool::connect(url).await?;
    pool.execute("ANALYZE").await?;
    pool.close().await;
    Ok(())
}

async fn drop_database(admin: &str, name: &str) -> anyhow::Result<()> {
    use sqlx::Executor;
    let pool = sqlx::PgPool::connect(admin).await?;
    pool.execute(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .await?;
    pool.close().await;
    Ok(())
}
