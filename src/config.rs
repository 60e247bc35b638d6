//! Configuration, layered: defaults < file (`--config accord.toml`) <
//! environment (`ACCORD_*`) < flags. The database URL's scheme picks the
//! backend. Secrets (database passwords, OTLP credentials, the bootstrap key)
//! never reach logs, errors or `Debug` output (`Config::secrets`, `redact`).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::Deserialize;

use crate::domain::api_key::Secret;
use crate::redact::{check_url, redact_endpoint, redact_url, url_secrets};

/// Every setting, as flags with their `ACCORD_*` environment variables. Unset
/// values fall back to the config file, then to the defaults.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// TOML file with any of the settings below (keys as the flag names, with
    /// underscores).
    #[arg(long = "config", env = "ACCORD_CONFIG", value_name = "FILE")]
    pub config_file: Option<PathBuf>,

    /// Address the gRPC server listens on [default: 127.0.0.1:50051].
    #[arg(long, env = "ACCORD_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Address of the admin HTTP server (/livez, /readyz, /metrics), never
    /// the gRPC one; `off` turns it off [default: 127.0.0.1:9090].
    #[arg(long, env = "ACCORD_ADMIN_LISTEN", value_name = "ADDR|off")]
    pub admin_listen: Option<String>,

    /// Database URL: `sqlite:PATH` or `postgres://USER:PASSWORD@HOST/DB`
    /// [default: sqlite:accord.db, a file in the working directory].
    #[arg(
        long,
        env = "ACCORD_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// PostgreSQL: the URL migrations run with, as the role that owns the
    /// tables; the server then connects with ACCORD_DATABASE_URL as a role that
    /// owns none, and migrations grant that role what it needs
    /// [default: ACCORD_DATABASE_URL].
    #[arg(
        long,
        env = "ACCORD_MIGRATION_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub migration_database_url: Option<String>,

    /// Largest database connection pool [default: 10].
    #[arg(long, env = "ACCORD_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<u32>,

    /// Requests handled at once; more are refused with RESOURCE_EXHAUSTED
    /// [default: 256].
    #[arg(long, env = "ACCORD_MAX_CONCURRENT_REQUESTS", value_name = "N")]
    pub max_concurrent_requests: Option<usize>,

    /// Requests of one tenant handled at once (the bootstrap key counts as
    /// one more tenant); more are refused with RESOURCE_EXHAUSTED
    /// [default: a quarter of --max-concurrent-requests].
    #[arg(
        long,
        env = "ACCORD_MAX_CONCURRENT_REQUESTS_PER_TENANT",
        value_name = "N"
    )]
    pub max_concurrent_requests_per_tenant: Option<usize>,

    /// Watch streams open at once; more are refused with RESOURCE_EXHAUSTED
    /// [default: 1024].
    #[arg(long, env = "ACCORD_MAX_WATCH_STREAMS", value_name = "N")]
    pub max_watch_streams: Option<usize>,

    /// Watch streams of one tenant open at once
    /// [default: a quarter of --max-watch-streams].
    #[arg(long, env = "ACCORD_MAX_WATCH_STREAMS_PER_TENANT", value_name = "N")]
    pub max_watch_streams_per_tenant: Option<usize>,

    /// How long a request message may take to arrive, in seconds; a call
    /// still waiting for it then fails with DEADLINE_EXCEEDED [default: 5].
    #[arg(
        long,
        env = "ACCORD_REQUEST_BODY_TIMEOUT_SECONDS",
        value_name = "SECONDS"
    )]
    pub request_body_timeout_seconds: Option<u64>,

    /// Entitlements cached in memory per tenant, at most; 0 turns the
    /// cache off [default: 100000].
    #[arg(long, env = "ACCORD_ENTITLEMENT_CACHE_SIZE", value_name = "N")]
    pub entitlement_cache_size: Option<u64>,

    /// OpenTelemetry collector to push traces and metrics to over
    /// OTLP/gRPC, e.g. http://otel-collector:4317 [default: none, nothing
    /// is exported].
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_ENDPOINT",
        value_name = "URL",
        hide_env_values = true
    )]
    pub otlp_endpoint: Option<String>,

    /// How often metrics are pushed, in milliseconds [default: 60000].
    #[arg(long, env = "OTEL_METRIC_EXPORT_INTERVAL", value_name = "MS")]
    pub metric_export_interval_ms: Option<u64>,

    /// Largest request or response message, in bytes [default: 4194304].
    #[arg(long, env = "ACCORD_MAX_MESSAGE_BYTES", value_name = "BYTES")]
    pub max_message_bytes: Option<usize>,

    /// Deadline of a request that sets no grpc-timeout, in seconds
    /// [default: 30].
    #[arg(long, env = "ACCORD_REQUEST_TIMEOUT_SECONDS", value_name = "SECONDS")]
    pub request_timeout_seconds: Option<u64>,

    /// On SIGTERM, how long the server keeps accepting calls after it reports
    /// NOT_SERVING, so that load balancers stop sending it new ones first, in
    /// seconds; SIGINT or a second signal skips it [default: 5].
    #[arg(long, env = "ACCORD_DRAIN_DELAY_SECONDS", value_name = "SECONDS")]
    pub drain_delay_seconds: Option<u64>,

    /// Once the server stops accepting calls, how long in-flight ones may
    /// take to finish, in seconds [default: 20].
    #[arg(long, env = "ACCORD_SHUTDOWN_GRACE_SECONDS", value_name = "SECONDS")]
    pub shutdown_grace_seconds: Option<u64>,

    /// How long a create's request_id is remembered, so that a retry returns
    /// the first answer; later the id is new again [default: 86400].
    #[arg(long, env = "ACCORD_REQUEST_ID_TTL_SECONDS", value_name = "SECONDS")]
    pub request_id_ttl_seconds: Option<u64>,

    /// The longest a database statement may run: a call gets the lesser of
    /// this and what is left of its deadline, background work gets this
    /// [default: 30].
    #[arg(long, env = "ACCORD_STATEMENT_TIMEOUT_SECONDS", value_name = "SECONDS")]
    pub statement_timeout_seconds: Option<u64>,

    /// How far ahead of the server's clock a measurement may lie (clock
    /// skew); later ones are rejected TOO_FAR_IN_FUTURE. A number and a unit:
    /// `30s`, `5m`, `1h`, `2d` [default: 5m].
    #[arg(long, env = "ACCORD_MEASUREMENT_MAX_FUTURE", value_name = "DURATION")]
    pub measurement_max_future: Option<String>,

    /// How old a measurement may be; older ones are rejected TOO_OLD. Raw
    /// counts and idempotency keys are kept this long [default: 35d].
    #[arg(long, env = "ACCORD_MEASUREMENT_MAX_AGE", value_name = "DURATION")]
    pub measurement_max_age: Option<String>,

    /// How long count rollups, samples and downtime are kept, at least
    /// --measurement-max-age; a year and a bit, so that yearly periods can be
    /// computed [default: 400d].
    #[arg(long, env = "ACCORD_ROLLUP_RETENTION", value_name = "DURATION")]
    pub rollup_retention: Option<String>,

    /// How often the period closer looks for closed periods and late data
    /// to evaluate for breaches (every replica runs it), from 1s to 1m
    /// [default: 5s].
    #[arg(long, env = "ACCORD_BREACH_CHECK_INTERVAL", value_name = "DURATION")]
    pub breach_check_interval: Option<String>,

    /// PEM certificate chain the listener presents; with --tls-key-file,
    /// turns TLS on [default: plaintext].
    #[arg(long, env = "ACCORD_TLS_CERT_FILE", value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key of --tls-cert-file.
    #[arg(long, env = "ACCORD_TLS_KEY_FILE", value_name = "FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// PEM CA certificates that client certificates must chain to; turns
    /// mutual TLS on (clients without a valid certificate are refused).
    #[arg(long, env = "ACCORD_TLS_CLIENT_CA_FILE", value_name = "FILE")]
    pub tls_client_ca_file: Option<PathBuf>,

    /// The bootstrap API key (role PLATFORM_ADMIN): manages tenants and
    /// creates their first keys. At least 32 characters; prefer
    /// ACCORD_BOOTSTRAP_KEY_FILE, which keeps it out of the environment.
    #[arg(
        long,
        env = "ACCORD_BOOTSTRAP_KEY",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub bootstrap_key: Option<String>,

    /// File holding the bootstrap API key (a mounted Kubernetes secret).
    #[arg(long, env = "ACCORD_BOOTSTRAP_KEY_FILE", value_name = "FILE")]
    pub bootstrap_key_file: Option<PathBuf>,

    /// Log filter, in `tracing` syntax; h2, hyper, tower and sqlx
    /// log warnings only unless it names them [default: info].
    #[arg(long, env = "ACCORD_LOG", value_name = "FILTER")]
    pub log: Option<String>,

    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "ACCORD_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
}

/// The same settings as read from the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    admin_listen: Option<String>,
    database_url: Option<String>,
    migration_database_url: Option<String>,
    max_connections: Option<u32>,
    max_concurrent_requests: Option<usize>,
    max_concurrent_requests_per_tenant: Option<usize>,
    max_watch_streams: Option<usize>,
    max_watch_streams_per_tenant: Option<usize>,
    request_body_timeout_seconds: Option<u64>,
    entitlement_cache_size: Option<u64>,
    otlp_endpoint: Option<String>,
    metric_export_interval_ms: Option<u64>,
    max_message_bytes: Option<usize>,
    request_timeout_seconds: Option<u64>,
    drain_delay_seconds: Option<u64>,
    shutdown_grace_seconds: Option<u64>,
    request_id_ttl_seconds: Option<u64>,
    statement_timeout_seconds: Option<u64>,
    measurement_max_future: Option<String>,
    measurement_max_age: Option<String>,
    rollup_retention: Option<String>,
    breach_check_interval: Option<String>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    tls_client_ca_file: Option<PathBuf>,
    bootstrap_key_file: Option<PathBuf>,
    log: Option<String>,
    log_format: Option<String>,
}

/// Where the listener's TLS material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Set for mutual TLS.
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The resolved configuration.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where the admin HTTP server listens; `None`: nowhere. Loading a
    /// configuration turns it on at `DEFAULT_ADMIN_LISTEN`, but
    /// `Config::default()` leaves it off, so that servers built in-process
    /// (tests, the benchmark) never contend for one fixed port.
    pub admin_listen: Option<SocketAddr>,
    pub database_url: String,
    /// The owner role's URL for migrations; `None`: `database_url`.
    pub migration_database_url: Option<String>,
    pub max_connections: u32,
    pub max_concurrent_requests: usize,
    /// `None`: a quarter of `max_concurrent_requests`.
    pub max_concurrent_requests_per_tenant: Option<usize>,
    pub max_watch_streams: usize,
    /// `None`: a quarter of `max_watch_streams`.
    pub max_watch_streams_per_tenant: Option<usize>,
    pub request_body_timeout: Duration,
    pub entitlement_cache_size: u64,
    /// Where metrics go (OTLP/gRPC); `None`: nowhere.
    pub otlp_endpoint: Option<String>,
    pub metric_export_interval: Duration,
    pub max_message_bytes: usize,
    pub request_timeout: Duration,
    /// After SIGTERM, how long calls are still accepted while NOT_SERVING.
    pub drain_delay: Duration,
    /// Then, how long in-flight calls may take to finish.
    pub shutdown_grace: Duration,
    /// How long a request_id is remembered (AIP-155).
    pub request_id_ttl: Duration,
    /// The longest a database statement may run.
    pub statement_timeout: Duration,
    /// Clock skew a measurement may show ahead of the server.
    pub measurement_max_future: Duration,
    /// The age past which a measurement is refused; raw counts and
    /// idempotency keys are kept this long.
    pub measurement_max_age: Duration,
    /// How long rollups, samples and downtime are kept.
    pub rollup_retention: Duration,
    /// How often the period closer runs.
    pub breach_check_interval: Duration,
    /// `None`: plaintext.
    pub tls: Option<TlsFiles>,
    /// The PLATFORM_ADMIN key; `None`: tenants cannot be managed.
    pub bootstrap_key: Option<Secret>,
    pub log: String,
    pub log_format: LogFormat,
}

/// The embedded database a server uses when none is configured: a file in
/// the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:accord.db";

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            admin_listen: None,
            database_url: DEFAULT_DATABASE_URL.into(),
            migration_database_url: None,
            max_connections: 10,
            max_concurrent_requests: 256,
            max_concurrent_requests_per_tenant: None,
            max_watch_streams: 1024,
            max_watch_streams_per_tenant: None,
            request_body_timeout: Duration::from_secs(5),
            entitlement_cache_size: 100_000,
            otlp_endpoint: None,
            metric_export_interval: Duration::from_secs(60),
            max_message_bytes: 4 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            drain_delay: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(20),
            request_id_ttl: Duration::from_secs(24 * 60 * 60),
            statement_timeout: Duration::from_secs(30),
            measurement_max_future: Duration::from_secs(5 * 60),
            measurement_max_age: Duration::from_secs(35 * DAY_SECONDS),
            rollup_retention: Duration::from_secs(400 * DAY_SECONDS),
            breach_check_interval: Duration::from_secs(5),
            tls: None,
            bootstrap_key: None,
            log: "info".into(),
            log_format: LogFormat::Text,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("admin_listen", &self.admin_listen)
            .field("database_url", &redact_url(&self.database_url))
            .field(
                "migration_database_url",
                &self.migration_database_url.as_deref().map(redact_url),
            )
            .field("max_connections", &self.max_connections)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field(
                "max_concurrent_requests_per_tenant",
                &self.max_concurrent_requests_per_tenant,
            )
            .field("max_watch_streams", &self.max_watch_streams)
            .field(
                "max_watch_streams_per_tenant",
                &self.max_watch_streams_per_tenant,
            )
            .field("request_body_timeout", &self.request_body_timeout)
            .field("entitlement_cache_size", &self.entitlement_cache_size)
            .field(
                "otlp_endpoint",
                &self.otlp_endpoint.as_deref().map(redact_endpoint),
            )
            .field("metric_export_interval", &self.metric_export_interval)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("drain_delay", &self.drain_delay)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("request_id_ttl", &self.request_id_ttl)
            .field("statement_timeout", &self.statement_timeout)
            .field("measurement_max_future", &self.measurement_max_future)
            .field("measurement_max_age", &self.measurement_max_age)
            .field("rollup_retention", &self.rollup_retention)
            .field("breach_check_interval", &self.breach_check_interval)
            .field("tls", &self.tls)
            .field("bootstrap_key", &self.bootstrap_key)
            .field("log", &self.log)
            .field("log_format", &self.log_format)
            .finish()
    }
}

impl Config {
    /// Resolves the layers: defaults, then the file, then environment and flags
    /// (clap has already let flags win over the environment).
    pub fn load(args: &ConfigArgs) -> anyhow::Result<Self> {
        let file = match &args.config_file {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let d = Config::default();
        let log_format = match args.log_format.clone().or(file.log_format) {
            None => d.log_format,
            Some(f) if f == "text" => LogFormat::Text,
            Some(f) if f == "json" => LogFormat::Json,
            Some(other) => anyhow::bail!("log format must be `text` or `json`, not `{other}`"),
        };
        let tls = match (
            args.tls_cert_file.clone().or(file.tls_cert_file),
            args.tls_key_file.clone().or(file.tls_key_file),
            args.tls_client_ca_file.clone().or(file.tls_client_ca_file),
        ) {
            (Some(cert), Some(key), client_ca) => Some(TlsFiles {
                cert,
                key,
                client_ca,
            }),
            (None, None, None) => None,
            (None, None, Some(_)) => {
                anyhow::bail!("tls_client_ca_file needs tls_cert_file and tls_key_file")
            }
            _ => anyhow::bail!("set both tls_cert_file and tls_key_file, or neither"),
        };
        let bootstrap_key = match (
            args.bootstrap_key.as_deref(),
            args.bootstrap_key_file.clone().or(file.bootstrap_key_file),
        ) {
            (Some(key), _) => Some(bootstrap_key(
                key,
                "ACCORD_BOOTSTRAP_KEY (or --bootstrap-key)",
            )?),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(&path).with_context(|| {
                    format!("reading the bootstrap key file {}", path.display())
                })?;
                Some(bootstrap_key(&text, &path.display().to_string())?)
            }
            (None, None) => None,
        };
        let admin_listen = match args.admin_listen.clone().or(file.admin_listen) {
            None => Some(DEFAULT_ADMIN_LISTEN),
            Some(text) => parse_admin_listen(&text)?,
        };
        let duration = |name: &str, flag: &Option<String>, file: Option<String>, default| match flag
            .clone()
            .or(file)
        {
            Some(text) => parse_duration(&text).with_context(|| format!("{name} = `{text}`")),
            None => Ok(default),
        };
        let measurement_max_future = duration(
            "measurement_max_future",
            &args.measurement_max_future,
            file.measurement_max_future,
            d.measurement_max_future,
        )?;
        let measurement_max_age = duration(
            "measurement_max_age",
            &args.measurement_max_age,
            file.measurement_max_age,
            d.measurement_max_age,
        )?;
        let rollup_retention = duration(
            "rollup_retention",
            &args.rollup_retention,
            file.rollup_retention,
            d.rollup_retention,
        )?;
        let breach_check_interval = duration(
            "breach_check_interval",
            &args.breach_check_interval,
            file.breach_check_interval,
            d.breach_check_interval,
        )?;
        let config = Config {
            tls,
            measurement_max_future,
            measurement_max_age,
            rollup_retention,
            breach_check_interval,
            bootstrap_key: bootstrap_key.map(Secret::new),
            listen: args.listen.or(file.listen).unwrap_or(d.listen),
            admin_listen,
            database_url: args
                .database_url
                .clone()
                .or(file.database_url)
                .unwrap_or(d.database_url),
            migration_database_url: args
                .migration_database_url
                .clone()
                .or(file.migration_database_url),
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(d.max_connections),
            max_concurrent_requests: args
                .max_concurrent_requests
                .or(file.max_concurrent_requests)
                .unwrap_or(d.max_concurrent_requests),
            max_concurrent_requests_per_tenant: args
                .max_concurrent_requests_per_tenant
                .or(file.max_concurrent_requests_per_tenant),
            max_watch_streams: args
                .max_watch_streams
                .or(file.max_watch_streams)
                .unwrap_or(d.max_watch_streams),
            max_watch_streams_per_tenant: args
                .max_watch_streams_per_tenant
                .or(file.max_watch_streams_per_tenant),
            request_body_timeout: args
                .request_body_timeout_seconds
                .or(file.request_body_timeout_seconds)
                .map(Duration::from_secs)
                .unwrap_or(d.request_body_timeout),
            entitlement_cache_size: args
                .entitlement_cache_size
                .or(file.entitlement_cache_size)
                .unwrap_or(d.entitlement_cache_size),
            otlp_endpoint: args.otlp_endpoint.clone().or(file.otlp_endpoint),
            metric_export_interval: args
                .metric_export_interval_ms
                .or(file.metric_export_interval_ms)
                .map(Duration::from_millis)
                .unwrap_or(d.metric_export_interval),
            max_message_bytes: args
                .max_message_bytes
                .or(file.max_message_bytes)
                .unwrap_or(d.max_message_bytes),
            request_timeout: args
                .request_timeout_seconds
                .or(file.request_timeout_seconds)
                .map(Duration::from_secs)
                .unwrap_or(d.request_timeout),
            drain_delay: args
                .drain_delay_seconds
                .or(file.drain_delay_seconds)
                .map(Duration::from_secs)
                .unwrap_or(d.drain_delay),
            shutdown_grace: args
                .shutdown_grace_seconds
                .or(file.shutdown_grace_seconds)
                .map(Duration::from_secs)
                .unwrap_or(d.shutdown_grace),
            request_id_ttl: args
                .request_id_ttl_seconds
                .or(file.request_id_ttl_seconds)
                .map(Duration::from_secs)
                .unwrap_or(d.request_id_ttl),
            statement_timeout: args
                .statement_timeout_seconds
                .or(file.statement_timeout_seconds)
                .map(Duration::from_secs)
                .unwrap_or(d.statement_timeout),
            log: args.log.clone().or(file.log).unwrap_or(d.log),
            log_format,
        };
        config.check()?;
        Ok(config)
    }

    /// Every secret the configuration holds, as written: the passwords of the
    /// database URLs, the OTLP endpoint's credentials, the bootstrap key.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets = url_secrets(&self.database_url, false);
        if let Some(url) = &self.migration_database_url {
            secrets.extend(url_secrets(url, false));
        }
        if let Some(url) = &self.otlp_endpoint {
            secrets.extend(url_secrets(url, true));
        }
        if let Some(key) = &self.bootstrap_key {
            secrets.push(key.expose().to_string());
        }
        secrets
    }

    /// The URL migrations run with.
    pub fn migration_url(&self) -> &str {
        self.migration_database_url
            .as_deref()
            .unwrap_or(&self.database_url)
    }

    fn check(&self) -> anyhow::Result<()> {
        let url = &self.database_url;
        // sqlx reads `password=` only, and logs other parameters with their
        // values.
        let sqlx_reads = Some(&["password"][..]);
        check_url("database_url", url, sqlx_reads)?;
        if let Some(owner) = &self.migration_database_url {
            check_url("migration_database_url", owner, sqlx_reads)?;
        }
        if let Some(endpoint) = &self.otlp_endpoint {
            check_url("otlp_endpoint", endpoint, None)?;
        }
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:"))
        {
            anyhow::bail!(
                "database URL must start with sqlite: or postgres:, got `{}`",
                redact_url(url)
            );
        }
        // Each connection of the pool would open a database of its own.
        anyhow::ensure!(
            !url.starts_with("sqlite:") || crate::first_run::sqlite_file(url).is_some(),
            "an in-memory SQLite database is not supported (every connection would see \
             another, empty one): name a file, such as sqlite:accord.db"
        );
        if let Some(owner) = &self.migration_database_url {
            let postgres = |u: &str| u.starts_with("postgres:") || u.starts_with("postgresql:");
            anyhow::ensure!(
                postgres(owner) && postgres(url),
                "a migration database URL is for PostgreSQL, where both URLs name the same \
                 database as different roles"
            );
        }
        anyhow::ensure!(self.max_connections > 0, "max_connections must be positive");
        anyhow::ensure!(
            self.max_concurrent_requests > 0,
            "max_concurrent_requests must be positive"
        );
        for (name, share, total) in [
            (
                "max_concurrent_requests_per_tenant",
                self.max_concurrent_requests_per_tenant,
                self.max_concurrent_requests,
            ),
            (
                "max_watch_streams_per_tenant",
                self.max_watch_streams_per_tenant,
                self.max_watch_streams,
            ),
        ] {
            anyhow::ensure!(
                share.is_none_or(|n| n > 0 && n <= total),
                "{name} must be between 1 and the server's limit ({total})"
            );
        }
        anyhow::ensure!(
            self.max_watch_streams > 0,
            "max_watch_streams must be positive"
        );
        anyhow::ensure!(
            !self.request_body_timeout.is_zero(),
            "request_body_timeout_seconds must be positive"
        );
        anyhow::ensure!(
            self.max_message_bytes > 0,
            "max_message_bytes must be positive"
        );
        anyhow::ensure!(
            self.metric_export_interval >= Duration::from_millis(100),
            "metric_export_interval_ms must be at least 100"
        );
        anyhow::ensure!(
            !self.request_id_ttl.is_zero(),
            "request_id_ttl_seconds must be positive"
        );
        // PostgreSQL reads a statement_timeout of 0 as no limit at all.
        anyhow::ensure!(
            !self.statement_timeout.is_zero(),
            "statement_timeout_seconds must be positive"
        );
        anyhow::ensure!(
            !self.measurement_max_age.is_zero(),
            "measurement_max_age must be positive"
        );
        // Rollups of accepted data must outlive the raw rows they sum.
        anyhow::ensure!(
            self.rollup_retention >= self.measurement_max_age,
            "rollup_retention must be at least measurement_max_age"
        );
        // Breaches must appear within a minute of a period's end.
        anyhow::ensure!(
            (MIN_BREACH_CHECK_INTERVAL..=MAX_BREACH_CHECK_INTERVAL)
                .contains(&self.breach_check_interval),
            "breach_check_interval must be between 1s and 1m"
        );
        for (name, value) in [
            ("measurement_max_future", self.measurement_max_future),
            ("measurement_max_age", self.measurement_max_age),
            ("rollup_retention", self.rollup_retention),
        ] {
            anyhow::ensure!(
                value <= MAX_MEASUREMENT_DURATION,
                "{name} must be at most {} days",
                MAX_MEASUREMENT_DURATION.as_secs() / DAY_SECONDS
            );
        }
        Ok(())
    }

    /// The measurement settings, as the domain takes them.
    pub fn measurement_policy(&self) -> crate::domain::measurement::Policy {
        let chrono = |d: Duration| {
            chrono::Duration::from_std(d).expect("checked at most MAX_MEASUREMENT_DURATION")
        };
        crate::domain::measurement::Policy {
            max_future: chrono(self.measurement_max_future),
            max_age: chrono(self.measurement_max_age),
            rollup_retention: chrono(self.rollup_retention),
        }
    }
}

const DAY_SECONDS: u64 = 24 * 60 * 60;

/// Where the admin HTTP server listens unless told otherwise: the loopback,
/// as the gRPC listener's default is; a pod sets `0.0.0.0:9090`.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9090);

/// `off`, or the address of the admin HTTP server.
fn parse_admin_listen(text: &str) -> anyhow::Result<Option<SocketAddr>> {
    let text = text.trim();
    if text == "off" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        anyhow::anyhow!(
            "admin_listen must be an address such as 0.0.0.0:9090, or `off`, not `{text}`"
        )
    })
}

/// The period closer's interval: often enough that breaches appear within
/// a minute of a period's end, not so often that it only polls.
const MIN_BREACH_CHECK_INTERVAL: Duration = Duration::from_secs(1);
const MAX_BREACH_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// The longest measurement setting: a hundred years is retention enough.
const MAX_MEASUREMENT_DURATION: Duration = Duration::from_secs(36_500 * DAY_SECONDS);

/// A duration as people write it: a whole number and a unit, `s`, `m`, `h`
/// or `d` (`30s`, `5m`, `35d`).
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| {
        anyhow::anyhow!("expected a whole number and a unit: `30s`, `5m`, `1h`, `35d`")
    })?;
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => DAY_SECONDS,
        _ => anyhow::bail!("the unit must be `s`, `m`, `h` or `d`"),
    };
    n.checked_mul(unit_seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| anyhow::anyhow!("is too long"))
}

/// The bootstrap key from `source` without the whitespace around it, which
/// `echo key > file` and many secret stores add and no caller sends.
fn bootstrap_key(text: &str, source: &str) -> anyhow::Result<String> {
    let key = text.trim();
    anyhow::ensure!(
        !key.is_empty(),
        "the bootstrap key in {source} is empty or only whitespace"
    );
    anyhow::ensure!(
        key.len() >= 32,
        "the bootstrap key in {source} must be at least 32 characters"
    );
    Ok(key.to_string())
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        // Where, but not the parser's excerpt: the line may hold a password.
        let offset = e.span().map(|s| s.start).unwrap_or(0).min(text.len());
        let before = &text.as_bytes()[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
        anyhow::anyhow!(
            "parsing config file {}: {} (line {line}, column {column})",
            path.display(),
            e.message().trim_end()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_shows_no_secret() {
        let config = Config {
            database_url: "postgres://a:hunter2@h/d".into(),
            migration_database_url: Some("postgres://o:hunter3@h/d?password=hunter4".into()),
            otlp_endpoint: Some("https://t0ken-hunter5@collector:4317".into()),
            bootstrap_key: Some(Secret::new("acc_correct-horse-battery-staple-0123".into())),
            ..Config::default()
        };
        let debug = format!("{config:?}");
        for secret in ["hunter", "t0ken", "correct-horse"] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }

    #[test]
    fn secrets_lists_every_configured_secret() {
        let key = "acc_correct-horse-battery-staple-0123";
        let config = Config {
            database_url: "postgres://a:p%2Fw@h/d".into(),
            migration_database_url: Some("postgres://o@h/d?password=pw2".into()),
            otlp_endpoint: Some("https://t0ken@collector:4317".into()),
            bootstrap_key: Some(Secret::new(key.into())),
            ..Config::default()
        };
        assert_eq!(config.secrets(), ["p%2Fw", "pw2", "t0ken", key]);
        assert!(Config::default().secrets().is_empty());
    }

    #[test]
    fn urls_whose_passwords_cannot_be_told_apart_are_refused() {
        for (setting, args) in [
            (
                "database_url",
                ConfigArgs {
                    database_url: Some("postgres://accord:S3cr/et?pw@db/accord".into()),
                    ..Default::default()
                },
            ),
            (
                "migration_database_url",
                ConfigArgs {
                    database_url: Some("postgres://accord@db/accord".into()),
                    migration_database_url: Some("postgres://o@db/accord?password=a&b".into()),
                    ..Default::default()
                },
            ),
            (
                "otlp_endpoint",
                ConfigArgs {
                    otlp_endpoint: Some("http://u:a#b@collector".into()),
                    ..Default::default()
                },
            ),
        ] {
            let error = Config::load(&args).unwrap_err().to_string();
            assert!(error.starts_with(setting), "{error}");
            assert!(
                !error.contains("et?pw") && !error.contains("a#b"),
                "{error}"
            );
        }
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accord.toml");
        std::fs::write(&path, "listen = \"0.0.0.0:6000\"\nmax_connections = 3\n").unwrap();
        let args = ConfigArgs {
            config_file: Some(path),
            max_connections: Some(7),
            ..Default::default()
        };
        let config = Config::load(&args).unwrap();
        assert_eq!(config.listen.port(), 6000);
        assert_eq!(config.max_connections, 7);
        assert_eq!(config.database_url, "sqlite:accord.db");
    }

    #[test]
    fn unknown_keys_and_bad_urls_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accord.toml");
        std::fs::write(&path, "colour = \"red\"\n").unwrap();
        let args = ConfigArgs {
            config_file: Some(path),
            ..Default::default()
        };
        assert!(Config::load(&args).is_err());
        let args = ConfigArgs {
            database_url: Some("mysql://x".into()),
            ..Default::default()
        };
        assert!(Config::load(&args).is_err());
    }

    #[test]
    fn the_admin_server_is_on_by_default_and_can_be_moved_or_turned_off() {
        let loaded = Config::load(&ConfigArgs::default()).unwrap();
        assert_eq!(loaded.admin_listen, Some(DEFAULT_ADMIN_LISTEN));
        // Built in-process, a server binds no fixed admin port.
        assert_eq!(Config::default().admin_listen, None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accord.toml");
        std::fs::write(&path, "admin_listen = \"0.0.0.0:9191\"\n").unwrap();
        let from_file = ConfigArgs {
            config_file: Some(path),
            ..Default::default()
        };
        assert_eq!(
            Config::load(&from_file).unwrap().admin_listen,
            Some("0.0.0.0:9191".parse().unwrap())
        );
        let off = ConfigArgs {
            admin_listen: Some("off".into()),
            ..from_file
        };
        assert_eq!(Config::load(&off).unwrap().admin_listen, None);
        let bad = ConfigArgs {
            admin_listen: Some("9090".into()),
            ..Default::default()
        };
        let error = Config::load(&bad).unwrap_err().to_string();
        assert!(error.contains("admin_listen"), "{error}");
    }

    #[test]
    fn request_id_ttl_and_statement_timeout_are_read_and_must_be_positive() {
        let args = ConfigArgs {
            request_id_ttl_seconds: Some(3600),
            statement_timeout_seconds: Some(5),
            ..Default::default()
        };
        let config = Config::load(&args).unwrap();
        assert_eq!(config.request_id_ttl, Duration::from_secs(3600));
        assert_eq!(config.statement_timeout, Duration::from_secs(5));
        for zero in [
            ConfigArgs {
                request_id_ttl_seconds: Some(0),
                ..Default::default()
            },
            ConfigArgs {
                statement_timeout_seconds: Some(0),
                ..Default::default()
            },
        ] {
            assert!(Config::load(&zero).is_err());
        }
    }

    #[test]
    fn durations_are_a_number_and_a_unit() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(
            parse_duration(" 35d ").unwrap(),
            Duration::from_secs(35 * 86_400)
        );
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        for bad in [
            "",
            "5",
            "m",
            "5 m",
            "1.5h",
            "-1d",
            "5w",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn measurement_settings_default_and_are_read_from_every_layer() {
        let d = Config::load(&ConfigArgs::default()).unwrap();
        assert_eq!(d.measurement_max_future, Duration::from_secs(300));
        assert_eq!(d.measurement_max_age, Duration::from_secs(35 * 86_400));
        assert_eq!(d.rollup_retention, Duration::from_secs(400 * 86_400));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accord.toml");
        std::fs::write(
            &path,
            "measurement_max_age = \"2d\"\nrollup_retention = \"30d\"\n",
        )
        .unwrap();
        let args = ConfigArgs {
            config_file: Some(path),
            measurement_max_future: Some("1m".into()),
            ..Default::default()
        };
        let config = Config::load(&args).unwrap();
        assert_eq!(config.measurement_max_future, Duration::from_secs(60));
        assert_eq!(config.measurement_max_age, Duration::from_secs(2 * 86_400));
        assert_eq!(config.rollup_retention, Duration::from_secs(30 * 86_400));
        let policy = config.measurement_policy();
        assert_eq!(policy.max_age, chrono::Duration::days(2));
    }

    #[test]
    fn the_breach_check_interval_defaults_to_seconds_and_is_bounded() {
        let d = Config::load(&ConfigArgs::default()).unwrap();
        assert_eq!(d.breach_check_interval, Duration::from_secs(5));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accord.toml");
        std::fs::write(&path, "breach_check_interval = \"30s\"\n").unwrap();
        let from_file = ConfigArgs {
            config_file: Some(path),
            ..Default::default()
        };
        assert_eq!(
            Config::load(&from_file).unwrap().breach_check_interval,
            Duration::from_secs(30)
        );
        let flag = ConfigArgs {
            breach_check_interval: Some("1s".into()),
            ..from_file
        };
        assert_eq!(
            Config::load(&flag).unwrap().breach_check_interval,
            Duration::from_secs(1)
        );
        for bad in ["0s", "2m", "soon"] {
            let args = ConfigArgs {
                breach_check_interval: Some(bad.into()),
                ..Default::default()
            };
            let error = Config::load(&args).unwrap_err();
            assert!(
                format!("{error:#}").contains("breach_check_interval"),
                "{bad}: {error:#}"
            );
        }
    }

    #[test]
    fn measurement_settings_must_be_sensible() {
        for args in [
            ConfigArgs {
                measurement_max_age: Some("0s".into()),
                ..Default::default()
            },
            ConfigArgs {
                measurement_max_age: Some("40d".into()),
                rollup_retention: Some("30d".into()),
                ..Default::default()
            },
            ConfigArgs {
                measurement_max_future: Some("5 minutes".into()),
                ..Default::default()
            },
            ConfigArgs {
                rollup_retention: Some("40000d".into()),
                ..Default::default()
            },
        ] {
            assert!(Config::load(&args).is_err(), "{args:?}");
        }
        let error = Config::load(&ConfigArgs {
            measurement_max_future: Some("5x".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("measurement_max_future"),
            "{error:#}"
        );
    }

    #[test]
    fn the_bootstrap_key_loses_the_whitespace_around_it() {
        let key = "acc_correct-horse-battery-staple-0123";
        let args = ConfigArgs {
            bootstrap_key: Some(format!("{key}\n")),
            ..Default::default()
        };
        let loaded = Config::load(&args).unwrap().bootstrap_key.unwrap();
        assert_eq!(loaded.expose(), key);
        let dir = tempfile::tempdir().unwrap();
        for text in [format!("{key}\r\n"), format!(" \t{key}  \n\n")] {
            let path = dir.path().join("key");
            std::fs::write(&path, &text).unwrap();
            let args = ConfigArgs {
                bootstrap_key_file: Some(path),
                ..Default::default()
            };
            let loaded = Config::load(&args).unwrap().bootstrap_key.unwrap();
            assert_eq!(loaded.expose(), key, "{text:?}");
        }
    }

    #[test]
    fn a_blank_bootstrap_key_is_refused() {
        for blank in ["", " \r\n\t"] {
            let args = ConfigArgs {
                bootstrap_key: Some(blank.into()),
                ..Default::default()
            };
            let error = Config::load(&args).unwrap_err().to_string();
            assert!(error.contains("only whitespace"), "{error}");
        }
    }

    #[test]
    fn a_config_file_that_fails_to_parse_is_not_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accord.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:1\"\ndatabase_url = \"postgres://a:hunter2\\q@h/d\"\n",
        )
        .unwrap();
        let args = ConfigArgs {
            config_file: Some(path),
            ..Default::default()
        };
        let error = format!("{:?}", Config::load(&args).unwrap_err());
        assert!(error.contains("line 2"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn short_bootstrap_keys_are_refused() {
        let args = ConfigArgs {
            bootstrap_key: Some("short".into()),
            ..Default::default()
        };
        assert!(Config::load(&args).is_err());
    }

    #[test]
    fn tls_needs_a_certificate_and_its_key() {
        let half = ConfigArgs {
            tls_cert_file: Some("server.pem".into()),
            ..Default::default()
        };
        assert!(Config::load(&half).is_err());
        let ca_only = ConfigArgs {
            tls_client_ca_file: Some("ca.pem".into()),
            ..Default::default()
        };
        assert!(Config::load(&ca_only).is_err());
        let mutual = ConfigArgs {
            tls_cert_file: Some("server.pem".into()),
            tls_key_file: Some("server.key".into()),
            tls_client_ca_file: Some("ca.pem".into()),
            ..Default::default()
        };
        let tls = Config::load(&mutual).unwrap().tls.unwrap();
        assert_eq!(tls.client_ca, Some("ca.pem".into()));
    }
}
