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

/// `FILE_DESCRIPTOR_SET`, decoded once: the methods and messages of
/// `accord.v1` as the server sees them.
pub fn descriptor_set() -> &'static prost_types::FileDescriptorSet {
    static SET: std::sync::LazyLock<prost_types::FileDescriptorSet> =
        std::sync::LazyLock::new(|| {
            prost::Message::decode(FILE_DESCRIPTOR_SET)
                .expect("the generated descriptor set decodes")
        });
    &SET
}
