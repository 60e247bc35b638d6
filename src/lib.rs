//! Accord: a multi-tenant SLA registry served over gRPC.

pub mod admin; // the admin HTTP server: /livez, /readyz, /metrics
pub mod admission; // fair shares of calls and watches, request-body deadline
pub mod api; // gRPC services: decode, authorize, call a service, encode
pub mod app; // Application::build(config, listener), serve until shutdown
pub mod auth; // API keys to principals, the RPC -> roles table
pub mod cli; // the operator commands: get, resolve, apply, as gRPC clients
pub mod config; // layered configuration: defaults < file < environment < flags
pub mod deadline; // every call's deadline, and what is left of it for the store
pub mod domain; // validated types and pure rules: no I/O, no async
pub mod error; // the domain error and its one mapping to tonic::Status
pub mod first_run; // the bootstrap key generated beside an embedded database on first start
pub mod metrics; // RPC durations by method and code; ingestion, pool, breaches, streams
pub mod proto; // code generated from proto/accord/v1
pub mod redact; // configured secrets kept out of logs and errors
pub mod server_span; // the OpenTelemetry server span of every gRPC call
pub mod service; // use cases per resource: transactions, audit, caches, change feed
pub mod store; // the Store trait and its PostgreSQL and SQLite backends
pub mod telemetry; // logging, traces, and the meter provider behind OTLP and /metrics
