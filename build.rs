//! Generates the gRPC code for `proto/accord/v1` and the file descriptor set that
//! server reflection serves. protoc comes from `protoc-bin-vendored` unless `PROTOC`
//! points at another one.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/accord/v1/tenant.proto",
    "proto/accord/v1/party.proto",
    "proto/accord/v1/service.proto",
    "proto/accord/v1/terms.proto",
    "proto/accord/v1/agreement.proto",
    "proto/accord/v1/api_key.proto",
    "proto/accord/v1/audit.proto",
    "proto/accord/v1/entitlement.proto",
    "proto/accord/v1/measurement.proto",
    "proto/accord/v1/compliance.proto",
    "proto/accord/v1/breach.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    if std::env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    }
    // BTreeMap keeps map fields in a stable order, so the encoding of a request is
    // deterministic and can be hashed for request_id idempotency.
    config.btree_map(["."]);
    // Each message names itself (`prost::Name`), so the API finds its
    // descriptor: an update without a mask changes the fields the client set.
    config.enable_type_names();
    // google.rpc.Status (vendored under proto/google/rpc) is tonic-types' own
    // type, so a batch item's error converts with tonic's richer-error helpers.
    config.extern_path(".google.rpc", "::tonic_types::pb");
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("accord_descriptor.bin"))
        .compile_with_config(config, PROTOS, &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
