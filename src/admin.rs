//! The admin HTTP server, on a port of its own and never the gRPC one:
//! `/livez` (the process runs), `/readyz` (serving, and the database
//! answers) and `/metrics` (the OpenTelemetry instruments in Prometheus
//! text). It starts before migrations, so that liveness holds while they
//! run, and stops when the server has drained.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::store::Store;

/// How long `/readyz` waits for the database: less than a Kubernetes probe's
/// default timeout of one second, so a slow database reads as unready rather
/// than as a probe that timed out.
pub const READINESS_TIMEOUT: Duration = Duration::from_millis(800);

/// The running admin server; it stops when this is dropped.
pub struct AdminServer {
    address: SocketAddr,
    state: Arc<AdminState>,
    task: tokio::task::JoinHandle<()>,
}

struct AdminState {
    /// True from the moment the server serves gRPC until shutdown starts.
    serving: AtomicBool,
    /// The store, once migrations are applied and it is connected.
    store: OnceLock<Arc<dyn Store>>,
    /// Where the meter provider's Prometheus reader registers.
    metrics: prometheus::Registry,
}

impl AdminServer {
    /// Serves on `listener` at once: live, not ready, no metrics yet (the
    /// meter provider registers them in `metrics` when it is built).
    pub fn start(listener: TcpListener, metrics: prometheus::Registry) -> anyhow::Result<Self> {
        let address = listener.local_addr()?;
        let state = Arc::new(AdminState {
            serving: AtomicBool::new(false),
            store: OnceLock::new(),
            metrics,
        });
        let router = Router::new()
            .route("/livez", get(livez))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_text))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                warn!(%error, "the admin HTTP server stopped");
            }
        });
        info!(address = %address, "serving /livez, /readyz and /metrics over HTTP");
        Ok(Self {
            address,
            state,
            task,
        })
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The store whose database `/readyz` pings.
    pub fn watch_store(&self, store: Arc<dyn Store>) {
        let _ = self.state.store.set(store);
    }

    /// The switch that makes `/readyz` report whether gRPC is serving.
    pub fn readiness(&self) -> Readiness {
        Readiness(self.state.clone())
    }
}

/// Turns `/readyz` on and off, from wherever serving starts and stops.
#[derive(Clone)]
pub struct Readiness(Arc<AdminState>);

impl Readiness {
    /// Ready while serving and the database answers; unready once shutdown
    /// has started, whatever the database says.
    pub fn set_serving(&self, serving: bool) {
        self.0.serving.store(serving, Ordering::SeqCst);
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn livez() -> &'static str {
    "live\n"
}

async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    if !state.serving.load(Ordering::SeqCst) {
        return unready("not serving\n");
    }
    let Some(store) = state.store.get() else {
        return unready("not serving\n");
    };
    match tokio::time::timeout(READINESS_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(error)) => {
            warn!(%error, "not ready: the database does not answer");
            unready("the database does not answer\n")
        }
        Err(_) => {
            warn!(
                timeout_ms = READINESS_TIMEOUT.as_millis() as u64,
                "not ready: the database did not answer in time"
            );
            unready("the database did not answer in time\n")
        }
    }
}

fn unready(why: &'static str) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
}

async fn metrics_text(State(state): State<Arc<AdminState>>) -> Response {
    use prometheus::Encoder as _;
    let encoder = prometheus::TextEncoder::new();
    let mut body = Vec::new();
    match encoder.encode(&state.metrics.gather(), &mut body) {
        Ok(()) => (
            [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            String::from_utf8_lossy(&body).into_owned(),
        )
            .into_response(),
        Err(error) => {
            warn!(%error, "could not encode the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
