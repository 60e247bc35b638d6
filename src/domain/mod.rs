//! Validated types and the rules of the registry. The domain never sees protobuf
//! types or SQL: the API hands it parsed values, and it reads and writes through
//! the `Store` trait inside one transaction per operation.

pub mod agreement;
pub mod api_key;
pub mod audit;
pub mod changes;
pub mod entitlement;
pub mod fields;
pub mod filter;
pub mod names;
pub mod overrides;
pub mod page;
pub mod party;
pub mod registry;
pub mod resolver;
pub mod service;
pub mod tenant;
pub mod terms;

pub use registry::{Registry, RequestKey};
