//! Code generated from `proto/accord/v1` by `build.rs`, kept apart from the
//! hand-written API layer.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod accord {
    pub mod v1 {
        tonic::include_proto!("accord.v1");
    }
}

pub use accord::v1;

/// The encoded file descriptor set that server reflection serves.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("accord_descriptor");
