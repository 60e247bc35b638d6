//! Logging with `tracing`: text for people, JSON for log pipelines, both with
//! every registered secret masked (`crate::redact`). Metrics with
//! OpenTelemetry: scraped in Prometheus text from the admin server, and
//! pushed over OTLP/gRPC when a collector is configured.

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(filter: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactedStderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))
}

/// Standard error, with every registered secret masked: the log's last line
/// of defence, whatever a dependency puts in a message.
struct RedactedStderr;

impl<'a> MakeWriter<'a> for RedactedStderr {
    type Writer = Redacted<std::io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        Redacted(std::io::stderr())
    }
}

struct Redacted<W>(W);

impl<W: Write> Write for Redacted<W> {
    /// The formatter hands over each event whole, in one call, so a secret is
    /// never split between two calls.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(&crate::redact::scrub_bytes(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The server's one meter provider, with two readers: Prometheus, which the
/// admin server's `/metrics` gathers from `registry` when scraped, and, when
/// `otlp` names a collector, a push over OTLP/gRPC every interval. Its
/// instruments, until the provider is shut down:
///
/// - `accord.entitlement.cache.hits`, `.misses` (counters): lookups of "now"
///   entitlements answered from memory, or not;
/// - `accord.entitlement.cache.hit_ratio` (gauge): hits over lookups since start;
/// - `accord.entitlement.cache.entries` (gauge): entitlements held.
///
/// The server's other instruments are added to it by `crate::metrics`.
pub fn meter_provider(
    registry: &prometheus::Registry,
    otlp: Option<(&str, std::time::Duration)>,
    resolver: std::sync::Arc<crate::service::entitlements::Resolver>,
) -> anyhow::Result<opentelemetry_sdk::metrics::SdkMeterProvider> {
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

    let prometheus = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .build()?;
    let mut builder = SdkMeterProvider::builder().with_reader(prometheus);
    if let Some((endpoint, interval)) = otlp {
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()?;
        builder = builder.with_reader(
            PeriodicReader::builder(exporter)
                .with_interval(interval)
                .build(),
        );
    }
    let provider = builder
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_writer_masks_registered_secrets() {
        crate::redact::register(["hunter2-telemetry"]);
        let mut writer = Redacted(Vec::new());
        let line = b"{\"error\":\"password authentication failed: HUNTER2-telemetry\"}\n";
        assert_eq!(writer.write(line).unwrap(), line.len());
        writer.write_all(b"nothing to hide\n").unwrap();
        assert_eq!(
            String::from_utf8(writer.0).unwrap(),
            "{\"error\":\"password authentication failed: ***\"}\nnothing to hide\n"
        );
    }
}
