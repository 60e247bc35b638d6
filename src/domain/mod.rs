//! Validated types and the pure rules of the registry: what a value must be
//! on its own, and what may happen to it (an agreement's lifecycle, the party
//! tree, overlap, resolution), and the compliance mathematics. No I/O, no
//! async, no caches: the API hands these types parsed values, and the
//! services (`crate::service`) read and write them through the store and ask
//! them whether a step is allowed.

pub mod agreement;
pub mod api_key;
pub mod audit;
pub mod breach;
pub mod changes;
pub mod compliance;
pub mod entitlement;
pub mod fields;
pub mod filter;
pub mod measurement;
pub mod names;
pub mod overrides;
pub mod page;
pub mod party;
pub mod request_id;
pub mod service;
pub mod tenant;
pub mod terms;
