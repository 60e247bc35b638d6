//! The messages of `accord.v1` by name, so the commands read YAML into them
//! and print them as YAML or JSON with the proto3 JSON mapping (field names
//! as in the .proto files, enums by name, timestamps in RFC 3339, durations
//! as "3600s").

use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(crate::proto::FILE_DESCRIPTOR_SET)
        .expect("the generated descriptor set decodes")
});

/// The descriptor of `accord.v1.{name}`.
pub fn descriptor(name: &str) -> MessageDescriptor {
    POOL.get_message_by_name(&format!("accord.v1.{name}"))
        .unwrap_or_else(|| panic!("accord.v1.{name} is in the descriptor set"))
}

/// A generated message as JSON: proto field names, fields at their
/// default left out.
pub fn to_json<M: prost::Message + prost::Name>(message: &M) -> serde_json::Value {
    let mut dynamic = DynamicMessage::new(descriptor(M::NAME));
    dynamic
        .transcode_from(message)
        .expect("a generated message transcodes to its own descriptor");
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(true);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .expect("a message serializes to JSON")
}
