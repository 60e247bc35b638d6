//! What every API test shares, so that a test file holds only its tests:
//!
//! - `server`: a fresh database per test (SQLite, or PostgreSQL with
//!   ACCORD_TEST_DATABASE_URL), the real server on it, more replicas;
//! - `clients`: calling as someone (a bearer key, a client of each service);
//! - `world`: the fixture builder, a tenant and what a test builds in it;
//! - `terms`, `clock`: agreement terms and instants with sensible defaults;
//! - `entitlement_view`: an entitlement's values with their provenance;
//! - `measurements`: measurements of each kind to report, and reading back
//!   what the store keeps of them;
//! - `compliance`: fixed 2026 instants, calendar objectives, credits and
//!   caps, and the requests and answers of ComplianceService;
//! - `assertions`: codes, field violations, reasons, waiting for what holds
//!   eventually;
//! - `audit_trail`: the RPC and the snapshots of an audit event;
//! - `binary`: the `accord` binary as a child process;
//! - `admin_http`: GETs to the admin HTTP server, Prometheus text read strictly;
//! - `on_both_backends!`: one test per backend for each named test.
//!
//! `use crate::support::*;` brings all of it.

mod admin_http;
mod assertions;
mod audit_trail;
mod binary;
mod clients;
mod clock;
mod compliance;
mod entitlement_view;
mod measurements;
mod server;
mod terms;
mod world;

pub use admin_http::*;
pub use assertions::*;
pub use audit_trail::*;
pub use binary::*;
pub use clients::*;
pub use clock::*;
pub use compliance::*;
pub use entitlement_view::*;
pub use measurements::*;
pub use server::*;
pub use terms::*;
pub use world::*;

/// Generates one test per backend, in modules `sqlite` and `postgres`, for
/// each named test:
///
/// - `on_both_backends!(a, b)`: `async fn(TestServer)`, on a fresh server;
/// - `on_both_backends!(configured by tweak: a, b)`: the same, on a server
///   whose `Config` the `fn(&mut Config)` named `tweak` changed;
/// - `on_both_backends!(backend: a, b)`: `async fn(Backend)`, for tests that
///   start what they need themselves (other settings, several servers, the
///   binary, a store without a server).
///
/// PostgreSQL tests are skipped when ACCORD_TEST_DATABASE_URL is unset.
#[macro_export]
macro_rules! on_both_backends {
    (@each $run:path => $($name:ident),*) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $run($crate::support::Backend::Sqlite, super::$name).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $run($crate::support::Backend::Postgres, super::$name).await
                }
            )*
        }
    };
    (configured by $tweak:ident: $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = $crate::support::Backend::Sqlite;
                    $crate::support::run_configured(backend, super::$tweak, super::$name).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = $crate::support::Backend::Postgres;
                    $crate::support::run_configured(backend, super::$tweak, super::$name).await
                }
            )*
        }
    };
    (backend: $($name:ident),* $(,)?) => {
        $crate::on_both_backends!(@each $crate::support::run_on => $($name),*);
    };
    ($($name:ident),* $(,)?) => {
        $crate::on_both_backends!(@each $crate::support::run => $($name),*);
    };
}
