//! Logging with `tracing`: text for people, JSON for log pipelines. Metrics
//! with OpenTelemetry, pushed over OTLP/gRPC when a collector is configured.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(filter: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))
}

/// Pushes the server's metrics to the OTLP/gRPC collector at `endpoint`
/// every `interval`, until the returned provider is shut down:
///
/// - `accord.entitlement.cache.hits`, `.misses` (counters): lookups of "now"
///   entitlements answered from memory, or not;
/// - `accord.entitlement.cache.hit_ratio` (gauge): hits over lookups since start;
/// - `accord.entitlement.cache.entries` (gauge): entitlements held.
pub fn export_metrics(
    endpoint: &str,
    interval: std::time::Duration,
    resolver: std::sync::Arc<crate::domain::resolver::Resolver>,
) -> anyhow::Result<opentelemetry_sdk::metrics::SdkMeterProvider> {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    let reader = PeriodicReader::builder(exporter)
        .with_interval(interval)
        .build();
    let provider = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("accord")
                .build(),
        )
        .build();
    let meter = provider.meter("accord");
    let r = resolver.clone();
    meter
        .u64_observable_counter("accord.entitlement.cache.hits")
        .with_description("entitlement lookups answered from memory")
        .with_callback(move |o| o.observe(r.stats().hits, &[]))
        .build();
    let r = resolver.clone();
    meter
        .u64_observable_counter("accord.entitlement.cache.misses")
        .with_description("entitlement lookups about now that read the database")
        .with_callback(move |o| o.observe(r.stats().misses, &[]))
        .build();
    let r = resolver.clone();
    meter
        .f64_observable_gauge("accord.entitlement.cache.hit_ratio")
        .with_description("entitlement cache hits over lookups since start")
        .with_callback(move |o| o.observe(r.stats().hit_ratio(), &[]))
        .build();
    meter
        .u64_observable_gauge("accord.entitlement.cache.entries")
        .with_description("entitlements held in memory")
        .with_callback(move |o| o.observe(resolver.stats().entries, &[]))
        .build();
    Ok(provider)
}
