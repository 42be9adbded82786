//! containerd's API definitions (the `.proto` files under `proto/`) compiled
//! for Berth: prost messages plus tonic servers and clients, one module per
//! proto package (`containerd::services::content::v1`, `grpc::health::v1`,
//! `google::rpc`, ...). Well-known `google.protobuf` types are `prost_types`.
//!
//! This crate holds no logic: no service behaviour, storage or validation.
//! Its only helper is [`any`], which packs `Any` values the way containerd's
//! clients expect them.

include!(concat!(env!("OUT_DIR"), "/_includes.rs"));

pub mod any;

#[cfg(test)]
mod wire_tests;
