//! Black-box tests through the real gRPC server, each on a fresh database, on
//! SQLite and (with ACCORD_TEST_DATABASE_URL) PostgreSQL.

mod support;

mod admin;
mod agreements;
mod audit;
mod auth;
mod breaches;
mod cli;
mod cli_commands;
mod cli_report;
mod compliance;
mod credits;
mod drain;
mod entitlement_cache;
mod entitlements;
mod fairness;
mod idempotency;
mod ingestion_durability;
mod isolation;
mod key_lifetime;
mod measurements;
mod metrics;
mod not_found_and_stale;
mod overrides;
mod pagination;
mod parties;
mod revisions;
mod round_trip;
mod row_level_security;
mod secrets;
mod server;
mod services;
mod size_limits;
mod startup;
mod store_contract;
mod store_limits;
mod tenant_reuse;
mod tenants;
mod tls;
mod traces;
mod upgrade;

// Entitlement resolution: the table of cases is in `entitlements`.
mod entitlement_errors;
mod entitlement_model;
