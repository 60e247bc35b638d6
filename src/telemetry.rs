//! Logging with `tracing`: text for people, JSON for log pipelines (with the
//! trace and span ids of the call a line belongs to), both with every
//! registered secret masked (`crate::redact`). Traces with OpenTelemetry:
//! the server span of each call (`crate::server_span`) and the database
//! statements under it (`crate::store`), pushed over OTLP/gRPC when a
//! collector is configured. Metrics with OpenTelemetry: scraped in
//! Prometheus text from the admin server, and pushed over OTLP/gRPC too.
//! Traces and metrics describe the same `resource`.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanId, TraceContextExt as _, TraceId, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber, warn};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::{Context as FilterContext, Filter, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, Registry};

use crate::config::LogFormat;

/// What the log filter starts from, before `log`'s own directives (which
/// win for a target they name): the HTTP/2 stack and sqlx's line per
/// statement are quiet, and the spans of calls and statements, meant for
/// traces, are not logged.
const QUIET: &str = "h2=warn,hyper=warn,hyper_util=warn,tower=warn,sqlx=warn,\
                     accord::rpc=off,accord::db=off";

/// The log filter: `QUIET`, then `log` (`--log`, `ACCORD_LOG`).
fn log_filter(log: &str) -> anyhow::Result<EnvFilter> {
    let directives = if log.trim().is_empty() {
        QUIET.to_string()
    } else {
        format!("{QUIET},{log}")
    };
    EnvFilter::try_new(&directives)
        .map_err(|e| anyhow::anyhow!("invalid log filter `{log}` (--log, ACCORD_LOG): {e}"))
}

/// What `init` started that must be stopped before the process ends.
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
}

/// The longest the last spans may take to reach the collector at exit.
const FLUSH_WAIT: Duration = Duration::from_secs(3);

impl Telemetry {
    /// Pushes the spans still queued and stops the exporter, waiting at most
    /// `FLUSH_WAIT` for the collector.
    pub async fn shutdown(self) {
        let Some(provider) = self.tracer else {
            return;
        };
        let flushed =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_WAIT)).await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(error)) => warn!(%error, "could not push the last spans"),
            Err(error) => warn!(%error, "could not push the last spans"),
        }
    }
}

/// Installs the global subscriber: the log, and, when spans are needed, the
/// OpenTelemetry layer that makes them. Spans are needed to export traces
/// (`otlp_endpoint`), and for the trace ids of JSON log lines in calls that
/// continue a caller's trace; otherwise a call makes none, and pays only
/// for finding that nothing listens. `filter` is the `log` setting, `otlp_endpoint` the
/// collector. Call once, before anything logs, in a Tokio runtime (the OTLP
/// exporter's connection runs on it).
pub fn init(
    filter: &str,
    format: LogFormat,
    otlp_endpoint: Option<&str>,
) -> anyhow::Result<Telemetry> {
    let filter = log_filter(filter)?;
    let sampler = sampler_from(
        std::env::var("OTEL_TRACES_SAMPLER").ok().as_deref(),
        std::env::var("OTEL_TRACES_SAMPLER_ARG").ok().as_deref(),
    )?;
    let log = tracing_subscriber::fmt::layer()
        .with_writer(RedactedStderr)
        .with_ansi(std::io::stderr().is_terminal());
    let log = match format {
        LogFormat::Text => log.with_filter(AskEveryTime(filter)).boxed(),
        LogFormat::Json => log
            .json()
            .event_format(JsonWithTraceIds(tracing_subscriber::fmt::format().json()))
            .with_filter(AskEveryTime(filter))
            .boxed(),
    };
    let (tracer, spans) = match (otlp_endpoint, format) {
        (Some(endpoint), _) => (exporting_tracer(endpoint, sampler)?, exported_spans()),
        (None, LogFormat::Json) => (ids_only_tracer(), id_spans()),
        (None, LogFormat::Text) => {
            install(tracing_subscriber::registry().with(log))?;
            return Ok(Telemetry { tracer: None });
        }
    };
    let spans = tracing_opentelemetry::layer()
        .with_tracer(tracer.tracer("accord"))
        .with_location(false)
        .with_threads(false)
        .with_level(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(AskEveryTime(spans));
    install(tracing_subscriber::registry().with(log).with(spans))?;
    if let Some(endpoint) = otlp_endpoint {
        tracing::info!(
            endpoint = %crate::redact::redact_endpoint(endpoint),
            "pushing traces over OTLP"
        );
    }
    // Its default extracts nothing: without it, a caller's trace context
    // would be ignored.
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    Ok(Telemetry {
        tracer: Some(tracer),
    })
}

/// A per-layer filter asked about every event and span, never only once
/// per callsite. tracing-subscriber hands a per-layer filter's verdict from
/// `enabled` to the event through a thread-local, assuming nothing is asked
/// in between; sqlx asks `log` whether its statement lines are enabled after
/// every query, which leaves a stale "disabled" there, and the next event
/// whose callsite was cached as always enabled (one never asked about again)
/// was dropped: a start-up warning after a slow migration lock, a span of a
/// call (tokio-rs/tracing#2519, #2704; the fix proposed upstream, #3572,
/// caps the interest the same way). Asking every time costs a filter
/// lookup per event.
struct AskEveryTime<F>(F);

impl<S, F: Filter<S>> Filter<S> for AskEveryTime<F> {
    fn enabled(&self, meta: &Metadata<'_>, cx: &FilterContext<'_, S>) -> bool {
        self.0.enabled(meta, cx)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        let interest = self.0.callsite_enabled(meta);
        if interest.is_always() {
            Interest::sometimes()
        } else {
            interest
        }
    }

    fn event_enabled(&self, event: &Event<'_>, cx: &FilterContext<'_, S>) -> bool {
        self.0.event_enabled(event, cx)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.0.max_level_hint()
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, cx: FilterContext<'_, S>) {
        self.0.on_new_span(attrs, id, cx)
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, cx: FilterContext<'_, S>) {
        self.0.on_record(id, values, cx)
    }

    fn on_enter(&self, id: &Id, cx: FilterContext<'_, S>) {
        self.0.on_enter(id, cx)
    }

    fn on_exit(&self, id: &Id, cx: FilterContext<'_, S>) {
        self.0.on_exit(id, cx)
    }

    fn on_close(&self, id: Id, cx: FilterContext<'_, S>) {
        self.0.on_close(id, cx)
    }
}

fn install(subscriber: impl Into<tracing::Dispatch>) -> anyhow::Result<()> {
    let dispatch: tracing::Dispatch = subscriber.into();
    dispatch
        .try_init()
        .map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))
}

/// What the OpenTelemetry layer sees when traces are exported: the spans of
/// calls and statements, and warnings and errors, which become events of
/// the span they happen in.
fn exported_spans() -> Targets {
    Targets::new()
        .with_target(crate::server_span::TARGET, Level::INFO)
        .with_target(crate::store::SPAN_TARGET, Level::INFO)
        .with_default(Level::WARN)
}

/// What it sees when spans only give JSON log lines their ids: the spans of
/// calls that continue a caller's trace; a call without one makes none.
fn id_spans() -> Targets {
    Targets::new()
        .with_target(crate::server_span::TARGET, Level::INFO)
        .with_target(crate::server_span::ROOT_TARGET, LevelFilter::OFF)
}

/// Spans sampled as `OTEL_TRACES_SAMPLER` says, batched and pushed to
/// `endpoint` by a thread of their own. The queue is bounded
/// (`OTEL_BSP_MAX_QUEUE_SIZE`, 2,048): a span ending while it is full is
/// dropped, so a slow or absent collector never holds up a call.
fn exporting_tracer(endpoint: &str, sampler: Sampler) -> anyhow::Result<SdkTracerProvider> {
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    let processor = BatchSpanProcessor::builder(Scrubbed(exporter)).build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(sampler)
        .with_resource(resource())
        .build())
}

/// A tracer that records nothing and exports nothing: its spans only carry
/// ids (the caller's trace id and their own span id), for the log.
fn ids_only_tracer() -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_sampler(Sampler::AlwaysOff)
        .with_resource(resource())
        .build()
}

/// The sampler `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` name, as
/// the OpenTelemetry specification defines them; by default a call is
/// sampled when its caller's span was, and always when it has no caller.
/// An unknown sampler or a ratio that is not a number from 0 to 1 stops
/// start-up rather than sampling otherwise than asked.
fn sampler_from(name: Option<&str>, arg: Option<&str>) -> anyhow::Result<Sampler> {
    let ratio = || -> anyhow::Result<f64> {
        match arg.map(str::trim).filter(|a| !a.is_empty()) {
            None => Ok(1.0),
            Some(text) => text
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1, not `{text}`"
                    )
                }),
        }
    };
    let parent_based = |root: Sampler| Sampler::ParentBased(Box::new(root));
    Ok(match name.map(str::trim).unwrap_or("") {
        "" | "parentbased_always_on" => parent_based(Sampler::AlwaysOn),
        "parentbased_always_off" => parent_based(Sampler::AlwaysOff),
        "parentbased_traceidratio" => parent_based(Sampler::TraceIdRatioBased(ratio()?)),
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
        other => anyhow::bail!(
            "OTEL_TRACES_SAMPLER `{other}` is not one Accord knows: use always_on, always_off, \
             traceidratio, parentbased_always_on (the default), parentbased_always_off or \
             parentbased_traceidratio"
        ),
    })
}

/// What traces and metrics say they come from, read once from the
/// environment: `service.name` is `OTEL_SERVICE_NAME`, else the one in
/// `OTEL_RESOURCE_ATTRIBUTES`, else `accord`; the other attributes of
/// `OTEL_RESOURCE_ATTRIBUTES` are added, and the SDK's own
/// (`telemetry.sdk.*`).
pub fn resource() -> Resource {
    static RESOURCE: OnceLock<Resource> = OnceLock::new();
    RESOURCE
        .get_or_init(|| {
            resource_from(
                std::env::var("OTEL_SERVICE_NAME").ok().as_deref(),
                std::env::var("OTEL_RESOURCE_ATTRIBUTES").ok().as_deref(),
            )
        })
        .clone()
}

fn resource_from(service_name: Option<&str>, attributes: Option<&str>) -> Resource {
    let mut builder = Resource::builder_empty()
        .with_detector(Box::new(
            opentelemetry_sdk::resource::TelemetryResourceDetector,
        ))
        .with_service_name("accord");
    builder = builder.with_attributes(parse_resource_attributes(attributes.unwrap_or("")));
    if let Some(name) = service_name.map(str::trim).filter(|n| !n.is_empty()) {
        builder = builder.with_service_name(name.to_string());
    }
    builder.build()
}

/// `key1=value1,key2=value2`, each key and value percent-decoded (the
/// specification's format); an entry without `=` is skipped.
fn parse_resource_attributes(text: &str) -> Vec<KeyValue> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s.trim())
            .decode_utf8_lossy()
            .into_owned()
    };
    text.split(',')
        .filter_map(|entry| entry.split_once('='))
        .filter(|(key, _)| !key.trim().is_empty())
        .map(|(key, value)| KeyValue::new(decode(key), decode(value)))
        .collect()
}

/// The OTLP exporter, with every registered secret masked in what it sends
/// (names, attributes, events, status), as in the log: a warning that
/// quotes a driver's error becomes an event of the span it happened in.
#[derive(Debug)]
struct Scrubbed<E>(E);

impl<E: opentelemetry_sdk::trace::SpanExporter> opentelemetry_sdk::trace::SpanExporter
    for Scrubbed<E>
{
    fn export(
        &self,
        mut batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        for span in &mut batch {
            scrub_span(span);
        }
        self.0.export(batch)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}

fn scrub_span(span: &mut SpanData) {
    use std::borrow::Cow;
    let scrub_cow = |text: &mut Cow<'static, str>| {
        if let Cow::Owned(clean) = crate::redact::scrub(text) {
            *text = Cow::Owned(clean);
        }
    };
    scrub_cow(&mut span.name);
    scrub_attributes(&mut span.attributes);
    for event in span.events.events.iter_mut() {
        scrub_cow(&mut event.name);
        scrub_attributes(&mut event.attributes);
    }
    if let opentelemetry::trace::Status::Error { description } = &mut span.status {
        scrub_cow(description);
    }
}

fn scrub_attributes(attributes: &mut [KeyValue]) {
    use opentelemetry::{Array, StringValue, Value};
    let scrub = |text: &mut StringValue| {
        if let std::borrow::Cow::Owned(clean) = crate::redact::scrub(text.as_str()) {
            *text = clean.into();
        }
    };
    for attribute in attributes {
        match &mut attribute.value {
            Value::String(text) => scrub(text),
            Value::Array(Array::String(texts)) => texts.iter_mut().for_each(scrub),
            _ => {}
        }
    }
}

/// The JSON log format, with `trace_id` and `span_id` at the top level of
/// a line logged inside a span OpenTelemetry knows (a call's, or a
/// statement's): the ids a trace backend shows, or, without a collector, the
/// trace id a caller sent and the call's own span id.
struct JsonWithTraceIds(Format<Json>);

impl<S, N> FormatEvent<S, N> for JsonWithTraceIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        if let Some((trace_id, span_id)) = trace_ids(event)
            && let Some(end) = line.rfind('}')
        {
            line.insert_str(
                end,
                &format!(",\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\""),
            );
        }
        writer.write_str(&line)
    }
}

/// The ids of the innermost span around `event` that OpenTelemetry knows.
/// The log layer's own view hides the spans it does not log, so this looks
/// at the registry itself.
fn trace_ids(event: &tracing::Event<'_>) -> Option<(TraceId, SpanId)> {
    tracing::dispatcher::get_default(|dispatch| {
        let leaf = match event.parent() {
            Some(parent) => parent.clone(),
            None if event.is_contextual() => dispatch.current_span().id()?.clone(),
            None => return None,
        };
        let registry = dispatch.downcast_ref::<Registry>()?;
        let span = registry.span(&leaf)?;
        span.scope().find_map(|span| {
            let context = tracing_opentelemetry::get_otel_context(&span.id(), dispatch)?;
            let span = context.span();
            let ids = span.span_context();
            ids.is_valid().then(|| (ids.trace_id(), ids.span_id()))
        })
    })
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
    let provider = builder.with_resource(resource()).build();
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

    /// How many of two identical `info!` events a text log with `filter`
    /// writes when, between them, something asks the dispatcher about a
    /// disabled debug event, as sqlx does through `log` after every query.
    fn logged_around_a_disabled_query(wrap: bool) -> usize {
        #[derive(Clone, Default)]
        struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Lines {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = {
            let lines = lines.clone();
            move || lines.clone()
        };
        let log = tracing_subscriber::fmt::layer().with_writer(writer);
        let filter = log_filter("info").unwrap();
        let log = if wrap {
            log.with_filter(AskEveryTime(filter)).boxed()
        } else {
            log.with_filter(filter).boxed()
        };
        let dispatch: tracing::Dispatch = tracing_subscriber::registry().with(log).into();
        let query = tracing::callsite!(
            name: "query",
            kind: tracing::metadata::Kind::EVENT,
            target: "sqlx::query",
            level: Level::DEBUG,
            fields: []
        );
        tracing::dispatcher::with_default(&dispatch, || {
            for _ in 0..2 {
                tracing::info!("a line");
                // Per-layer filters answer "enabled" here whatever they
                // decide, and keep their decision for the next event.
                dispatch.enabled(tracing::callsite::Callsite::metadata(query));
            }
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text.matches("a line").count()
    }

    #[test]
    fn an_event_after_a_disabled_query_is_still_logged() {
        assert_eq!(logged_around_a_disabled_query(true), 2);
    }

    #[test]
    fn the_sampler_is_the_one_the_environment_names_and_parent_based_by_default() {
        let sampler = |name, arg| format!("{:?}", sampler_from(name, arg).unwrap());
        assert_eq!(sampler(None, None), "ParentBased(AlwaysOn)");
        assert_eq!(sampler(Some(""), None), "ParentBased(AlwaysOn)");
        assert_eq!(sampler(Some("always_off"), None), "AlwaysOff");
        assert_eq!(
            sampler(Some("parentbased_traceidratio"), Some("0.25")),
            "ParentBased(TraceIdRatioBased(0.25))"
        );
        assert_eq!(
            sampler(Some("traceidratio"), None),
            "TraceIdRatioBased(1.0)"
        );
        for (name, arg) in [
            ("xray", None),
            ("traceidratio", Some("half")),
            ("traceidratio", Some("1.5")),
        ] {
            let error = sampler_from(Some(name), arg).unwrap_err().to_string();
            assert!(error.contains("OTEL_TRACES_SAMPLER"), "{error}");
        }
    }

    fn attribute(resource: &Resource, key: &str) -> Option<String> {
        resource
            .get(&opentelemetry::Key::from(key.to_string()))
            .map(|v| v.to_string())
    }

    #[test]
    fn the_service_is_accord_unless_the_environment_names_another() {
        let resource = resource_from(None, None);
        assert_eq!(
            attribute(&resource, "service.name").as_deref(),
            Some("accord")
        );
        assert!(attribute(&resource, "telemetry.sdk.name").is_some());

        let resource = resource_from(None, Some("service.name=eu, team = sla%2Fops,broken"));
        assert_eq!(attribute(&resource, "service.name").as_deref(), Some("eu"));
        assert_eq!(attribute(&resource, "team").as_deref(), Some("sla/ops"));

        let resource = resource_from(Some("accord-eu"), Some("service.name=eu"));
        assert_eq!(
            attribute(&resource, "service.name").as_deref(),
            Some("accord-eu")
        );
    }

    #[test]
    fn the_log_filter_quiets_dependencies_unless_told_otherwise() {
        let quiet = log_filter("debug").unwrap().to_string();
        assert!(
            quiet.contains("h2=warn") && quiet.contains("debug"),
            "{quiet}"
        );
        let loud = log_filter("debug,h2=trace").unwrap().to_string();
        assert!(
            loud.contains("h2=trace") && !loud.contains("h2=warn"),
            "{loud}"
        );
        let error = log_filter("info,[").unwrap_err().to_string();
        assert!(error.contains("ACCORD_LOG"), "{error}");
    }

    #[test]
    fn exported_spans_have_every_registered_secret_masked() {
        crate::redact::register(["hunter3-in-a-span"]);
        let mut span = SpanData {
            span_context: opentelemetry::trace::SpanContext::empty_context(),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: opentelemetry::trace::SpanKind::Server,
            name: "call hunter3-in-a-span".into(),
            start_time: std::time::SystemTime::now(),
            end_time: std::time::SystemTime::now(),
            attributes: vec![KeyValue::new("error", "password hunter3-in-a-span refused")],
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: opentelemetry::trace::Status::error("hunter3-in-a-span"),
            instrumentation_scope: Default::default(),
        };
        span.events.events.push(opentelemetry::trace::Event::new(
            "hunter3-in-a-span",
            std::time::SystemTime::now(),
            vec![KeyValue::new("message", "hunter3-in-a-span")],
            0,
        ));
        scrub_span(&mut span);
        let text = format!("{span:?}");
        assert!(!text.contains("hunter3"), "{text}");
        assert!(text.contains("password *** refused"), "{text}");
    }

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
