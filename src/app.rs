//! Start-up and shutdown: `Application::build` migrates and connects the store,
//! creates the measurement partitions the server needs, builds the use cases
//! on it (one `Registry` for the resources, a `Resolver` for entitlements,
//! sharing one change feed) and the API and auth on those, and binds them to
//! a listener it is given (port 0 in tests); `serve_until` runs until a
//! shutdown signal, then reports NOT_SERVING, keeps serving for the drain
//! delay, stops accepting calls and drains in-flight ones for at most the
//! grace period.
//! The admin HTTP server (`crate::admin`) binds `admin_listen` first thing in
//! `build`, so that liveness answers while migrations run.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use opentelemetry::metrics::MeterProvider as _;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::server::HealthReporter;
use tracing::{info, warn};

use crate::admin::AdminServer;
use crate::admission::{AdmissionLayer, Limits};
use crate::api::agreement::AgreementApi;
use crate::api::api_key::ApiKeyApi;
use crate::api::audit::AuditApi;
use crate::api::breach::BreachApi;
use crate::api::compliance::ComplianceApi;
use crate::api::entitlement::{EntitlementApi, Entitlements};
use crate::api::measurement::MeasurementApi;
use crate::api::party::PartyApi;
use crate::api::service::ServiceCatalogApi;
use crate::api::tenant::TenantApi;
use crate::auth::{AuthenticateLayer, Authenticator};
use crate::config::{Config, TlsFiles};
use crate::deadline::DeadlineLayer;
use crate::domain::changes::Change;
use crate::first_run::{self, Provenance};
use crate::metrics::{Observed, RpcMetricsLayer};
use crate::proto::v1::agreement_service_server::AgreementServiceServer;
use crate::proto::v1::api_key_service_server::ApiKeyServiceServer;
use crate::proto::v1::audit_service_server::AuditServiceServer;
use crate::proto::v1::breach_service_server::BreachServiceServer;
use crate::proto::v1::compliance_service_server::ComplianceServiceServer;
use crate::proto::v1::entitlement_service_server::EntitlementServiceServer;
use crate::proto::v1::measurement_service_server::MeasurementServiceServer;
use crate::proto::v1::party_service_server::PartyServiceServer;
use crate::proto::v1::service_catalog_service_server::ServiceCatalogServiceServer;
use crate::proto::v1::tenant_service_server::TenantServiceServer;
use crate::redact::{redact_endpoint, redact_url};
use crate::server_span::ServerSpanLayer;
use crate::service::Registry;
use crate::service::breaches::{OpenBreachCounter, OpenBreaches, PeriodCloser};
use crate::service::compliance::Compliance;
use crate::service::entitlements::Resolver;
use crate::store::{self, Store};

/// The fully qualified names of Accord's services, as health and reflection
/// report them.
pub const SERVICE_NAMES: &[&str] = &[
    "accord.v1.TenantService",
    "accord.v1.ApiKeyService",
    "accord.v1.PartyService",
    "accord.v1.ServiceCatalogService",
    "accord.v1.AgreementService",
    "accord.v1.AuditService",
    "accord.v1.EntitlementService",
    "accord.v1.MeasurementService",
    "accord.v1.BreachService",
    "accord.v1.ComplianceService",
];

pub struct Application {
    config: Config,
    tls: Option<ServerTlsConfig>,
    listener: TcpListener,
    port: u16,
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    resolver: Arc<Resolver>,
    compliance: Arc<Compliance>,
    entitlements: Entitlements,
    authenticator: Arc<Authenticator>,
    /// `None`: `admin_listen` is off.
    admin: Option<AdminServer>,
    /// Where the meter provider's Prometheus reader registers, for `/metrics`.
    metrics: prometheus::Registry,
}

/// Where the data lives, for the first log lines.
fn describe_database(url: &str) -> String {
    match first_run::sqlite_file(url) {
        Some(path) => format!("SQLite file {}", absolute(&path)),
        None => format!("PostgreSQL {}", redact_url(url)),
    }
}

/// `path` made absolute for a log line, as it is if that fails.
fn absolute(path: &std::path::Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

impl Application {
    /// Migrates the database (under the migrator's lock), connects the store
    /// and creates the measurement partitions the server needs.
    pub async fn build(config: Config, listener: TcpListener) -> anyhow::Result<Self> {
        let port = listener.local_addr()?.port();
        let tls = config.tls.as_ref().map(load_tls).transpose()?;
        let metrics = prometheus::Registry::new();
        let admin = match config.admin_listen {
            Some(address) => {
                let listener = TcpListener::bind(address).await.with_context(|| {
                    format!("binding the admin HTTP server to {address} (admin_listen)")
                })?;
                Some(AdminServer::start(listener, metrics.clone())?)
            }
            None => None,
        };
        info!(database = %describe_database(&config.database_url), "storing data");
        store::migrate(config.migration_url(), &config.database_url).await?;
        let store = store::connect(
            &config.database_url,
            config.max_connections,
            config.statement_timeout,
        )
        .await?;
        // A list page stays within half of what the server may send.
        let registry = Arc::new(
            Registry::new(store.clone(), config.request_id_ttl)
                .await?
                .with_page_bytes(config.max_message_bytes / 2)
                .with_measurement_policy(config.measurement_policy()),
        );
        // The measurement partitions of the months accepted, before the
        // first call: a fresh server's DDL never waits on its own calls, nor
        // they on it. Retention keeps them up to date afterwards.
        registry
            .measurements()
            .maintain_partitions(chrono::Utc::now())
            .await?;
        if let Some(admin) = &admin {
            admin.watch_store(store.clone());
        }
        let resolver = Arc::new(Resolver::new(
            store.clone(),
            registry.changes().clone(),
            config.entitlement_cache_size,
        ));
        let compliance = Arc::new(Compliance::new(registry.clone(), resolver.clone()));
        let mut config = config;
        if config.bootstrap_key.is_none() {
            match first_run::settle(&config.database_url)? {
                Some((key, Provenance::Generated(file))) => {
                    info!(
                        file = %absolute(&file),
                        "generated a bootstrap key (PLATFORM_ADMIN) on this database's first \
                         start, in a file only you may read; `accord` commands run in this \
                         directory against the default address use it"
                    );
                    config.bootstrap_key = Some(key);
                }
                Some((key, Provenance::Read(file))) => {
                    info!(file = %absolute(&file), "using the bootstrap key generated on first start");
                    config.bootstrap_key = Some(key);
                }
                None => warn!(
                    "no bootstrap key: tenants cannot be managed; set ACCORD_BOOTSTRAP_KEY_FILE \
                     (or ACCORD_BOOTSTRAP_KEY) to a secret of at least 32 characters"
                ),
            }
        }
        let authenticator = Arc::new(Authenticator::new(
            registry.clone(),
            config.bootstrap_key.as_ref(),
        ));
        let entitlements =
            Entitlements::new(EntitlementApi::new(resolver.clone(), authenticator.clone()));
        Ok(Self {
            authenticator,
            config,
            tls,
            listener,
            port,
            store,
            registry,
            entitlements,
            resolver,
            compliance,
            admin,
            metrics,
        })
    }

    /// Serves `service` as `accord.v1.EntitlementService` instead of the real
    /// one, behind the same builder, layers and limits: the benchmark's
    /// ceiling.
    pub fn replace_entitlements(&mut self, service: Entitlements) {
        self.entitlements = service;
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub fn resolver(&self) -> &Arc<Resolver> {
        &self.resolver
    }

    /// Compliance of agreements and pairs: what GetCompliance and the breach
    /// closer evaluate with.
    pub fn compliance(&self) -> &Arc<Compliance> {
        &self.compliance
    }

    pub fn authenticator(&self) -> &Arc<Authenticator> {
        &self.authenticator
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin HTTP server's port; `None` when `admin_listen` is off.
    pub fn admin_port(&self) -> Option<u16> {
        self.admin.as_ref().map(AdminServer::port)
    }

    /// The store the server runs on.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Serves until `shutdown` resolves, then stops as on SIGTERM: reports
    /// NOT_SERVING, keeps accepting calls for the drain delay, then stops
    /// accepting, ends watch streams and lets in-flight calls finish within
    /// the grace period.
    pub async fn serve_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            shutdown.await;
            let _ = tx.send(Stop::Terminate);
            // Keep the channel open: a closed one is not a second signal.
            std::future::pending::<()>().await;
        });
        self.serve(rx).await
    }

    /// Serves until SIGTERM or SIGINT. SIGTERM drains (see `serve_until`);
    /// SIGINT, from a terminal, or a second signal during the drain delay
    /// skips the delay.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(forward_signals(tx));
        self.serve(rx).await
    }

    async fn serve(
        self,
        mut signals: tokio::sync::mpsc::UnboundedReceiver<Stop>,
    ) -> anyhow::Result<()> {
        let Application {
            config,
            tls,
            listener,
            port: _,
            store,
            registry,
            resolver,
            compliance,
            entitlements,
            authenticator,
            admin,
            metrics,
        } = self;
        let local = listener.local_addr()?;
        let (health, health_service) = tonic_health::server::health_reporter();
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        // The meters first: the RPC layer records on them from the first call.
        let otlp = config
            .otlp_endpoint
            .as_deref()
            .map(|endpoint| (endpoint, config.metric_export_interval));
        let meters = crate::telemetry::meter_provider(&metrics, otlp, resolver.clone())
            .context("setting up the metrics")?;
        if let Some(endpoint) = &config.otlp_endpoint {
            info!(endpoint = %redact_endpoint(endpoint), "pushing metrics over OTLP");
        }
        let meter = meters.meter("accord");
        let open_breaches = Arc::new(OpenBreaches::default());
        crate::metrics::observe(
            &meter,
            Observed {
                registry: registry.clone(),
                store: store.clone(),
                open_breaches: open_breaches.clone(),
                stream_limit: config.max_watch_streams,
            },
        );

        let max = config.max_message_bytes;
        macro_rules! limited {
            ($server:ident, $api:expr) => {
                $server::new($api)
                    .max_decoding_message_size(max)
                    .max_encoding_message_size(max)
            };
        }
        let mut builder = Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls)?;
        }
        let measurements =
            MeasurementApi::new(registry.clone(), authenticator.clone(), resolver.stopping());
        let breaches = BreachApi::new(registry.clone(), authenticator.clone(), resolver.stopping());
        let router = builder
            .layer(RpcMetricsLayer::new(&meter))
            .layer(ServerSpanLayer)
            .layer(DeadlineLayer::new(config.request_timeout))
            .layer(AuthenticateLayer::new(authenticator))
            .layer(AdmissionLayer::new(Limits::from_config(&config)))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(limited!(
                TenantServiceServer,
                TenantApi::new(registry.clone())
            ))
            .add_service(limited!(
                ApiKeyServiceServer,
                ApiKeyApi::new(registry.clone())
            ))
            .add_service(limited!(
                PartyServiceServer,
                PartyApi::new(registry.clone())
            ))
            .add_service(limited!(
                ServiceCatalogServiceServer,
                ServiceCatalogApi::new(registry.clone())
            ))
            .add_service(limited!(
                AgreementServiceServer,
                AgreementApi::new(registry.clone())
            ))
            .add_service(limited!(
                AuditServiceServer,
                AuditApi::new(registry.clone())
            ))
            .add_service(limited!(EntitlementServiceServer, entitlements))
            .add_service(limited!(MeasurementServiceServer, measurements))
            .add_service(limited!(BreachServiceServer, breaches))
            .add_service(limited!(
                ComplianceServiceServer,
                ComplianceApi::new(compliance.clone())
            ));

        // Other replicas' writes reach this one through the store's change
        // feed, where there can be other replicas.
        let follower = store.change_feed().map(|feed| {
            let changes = resolver.changes().clone();
            changes.set_live(false);
            let resolver = resolver.clone();
            tokio::spawn(feed.follow(Box::new(move |change| match change {
                Some(change) => {
                    if change == Change::Everything {
                        resolver.clear();
                    }
                    changes.set_live(true);
                    changes.apply(change);
                }
                None => {
                    changes.set_live(false);
                    resolver.clear();
                }
            })))
        });

        let sweeper = tokio::spawn(registry.clone().sweep_request_ids_periodically());
        let retention = tokio::spawn(crate::service::measurements::retain_periodically(
            registry.clone(),
        ));
        // Every replica closes periods; the store makes each breach once.
        let closer = tokio::spawn(
            PeriodCloser::new(registry.clone(), compliance, config.breach_check_interval).run(),
        );
        let breach_counter = tokio::spawn(
            OpenBreachCounter::new(
                registry.clone(),
                open_breaches,
                config.breach_check_interval,
            )
            .run(),
        );

        let readiness = admin.as_ref().map(AdminServer::readiness);
        if let Some(readiness) = &readiness {
            readiness.set_serving(true);
        }
        set_serving(&health, true).await;
        let security = match &config.tls {
            None => "plaintext",
            Some(TlsFiles {
                client_ca: None, ..
            }) => "TLS",
            Some(TlsFiles {
                client_ca: Some(_), ..
            }) => "mutual TLS",
        };
        info!(address = %local, transport = %security, "listening for gRPC");

        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let health_on_stop = health.clone();
        let resolver_on_stop = resolver.clone();
        let drain_delay = config.drain_delay;
        tokio::spawn(async move {
            let Some(first) = signals.recv().await else {
                return;
            };
            // Load balancers and Kubernetes stop sending new calls once they
            // see NOT_SERVING (or the pod leaves the endpoints); until then
            // the calls they still send are served.
            if let Some(readiness) = &readiness {
                readiness.set_serving(false);
            }
            set_serving(&health_on_stop, false).await;
            if first == Stop::Terminate && !drain_delay.is_zero() {
                info!(
                    delay_seconds = drain_delay.as_secs_f64(),
                    "shutdown started: reporting NOT_SERVING, still accepting calls \
                     for the drain delay (a second signal skips it)"
                );
                tokio::select! {
                    () = tokio::time::sleep(drain_delay) => {}
                    Some(_) = signals.recv() => info!("second signal: skipping the rest of the drain delay"),
                }
            } else {
                info!("shutdown started: reporting NOT_SERVING");
            }
            info!(
                "no longer accepting calls: ending watch streams with UNAVAILABLE \
                 and draining in-flight calls"
            );
            resolver_on_stop.shutdown();
            let _ = started_tx.send(());
            let _ = stop_tx.send(());
        });
        // Small unary calls must not wait for Nagle's algorithm (a 40 ms stall
        // per call with delayed ACKs); keepalive finds dead peers.
        let incoming = TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(std::time::Duration::from_secs(60)));
        let server = router.serve_with_incoming_shutdown(incoming, async {
            let _ = stop_rx.await;
        });
        let grace = config.shutdown_grace;
        let deadline = async move {
            if started_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            result = server => result?,
            () = deadline => warn!(grace_seconds = grace.as_secs(), "grace period over: cancelling calls still in flight"),
        }
        if let Some(follower) = follower {
            follower.abort();
        }
        sweeper.abort();
        retention.abort();
        closer.abort();
        breach_counter.abort();
        if let Err(error) = meters.shutdown() {
            warn!(%error, "could not push the last metrics");
        }
        store.close().await;
        drop(admin);
        info!("stopped");
        Ok(())
    }
}

/// Reads the certificate, key and client CA up front, so a bad file stops
/// start-up with a clear error instead of failing every handshake.
fn load_tls(files: &TlsFiles) -> anyhow::Result<ServerTlsConfig> {
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).with_context(|| format!("reading the TLS {what} {}", path.display()))
    };
    let identity = Identity::from_pem(read(&files.cert, "certificate")?, read(&files.key, "key")?);
    let mut tls = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &files.client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read(ca, "client CA")?));
    }
    Ok(tls)
}

async fn set_serving(health: &HealthReporter, serving: bool) {
    let status = if serving {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    };
    health.set_service_status("", status).await;
    for name in SERVICE_NAMES {
        health.set_service_status(*name, status).await;
    }
}

/// A request to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGTERM (Kubernetes, systemd, `docker stop`): drain.
    Terminate,
    /// SIGINT (Ctrl-C): there is no load balancer to wait for.
    Interrupt,
}

/// Sends every SIGTERM and SIGINT the process gets to `tx`.
async fn forward_signals(tx: tokio::sync::mpsc::UnboundedSender<Stop>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            warn!("cannot listen for SIGTERM and SIGINT: stop the server with SIGKILL");
            return std::future::pending().await;
        };
        loop {
            let stop = tokio::select! {
                _ = term.recv() => Stop::Terminate,
                _ = int.recv() => Stop::Interrupt,
            };
            if tx.send(stop).is_err() {
                return;
            }
        }
    }
    #[cfg(not(unix))]
    loop {
        if tokio::signal::ctrl_c().await.is_err() || tx.send(Stop::Interrupt).is_err() {
            return std::future::pending().await;
        }
    }
}
