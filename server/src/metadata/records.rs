//! The stored records. They are protobuf messages of our own (not the API's), so the schema can
//! grow fields without a migration; the API types are converted to and from them at the service edge.

use std::collections::HashMap;

pub type Labels = HashMap<String, String>;

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamespaceRec {
    #[prost(map = "string, string", tag = "1")]
    pub labels: Labels,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct DescriptorRec {
    #[prost(string, tag = "1")]
    pub media_type: String,
    #[prost(string, tag = "2")]
    pub digest: String,
    #[prost(int64, tag = "3")]
    pub size: i64,
    #[prost(map = "string, string", tag = "4")]
    pub annotations: Labels,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ImageRec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(map = "string, string", tag = "2")]
    pub labels: Labels,
    #[prost(message, optional, tag = "3")]
    pub target: Option<DescriptorRec>,
    #[prost(int64, tag = "4")]
    pub created_at: i64,
    #[prost(int64, tag = "5")]
    pub updated_at: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerRec {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(map = "string, string", tag = "2")]
    pub labels: Labels,
    #[prost(string, tag = "3")]
    pub image: String,
    #[prost(string, tag = "4")]
    pub runtime_name: String,
    #[prost(message, optional, tag = "5")]
    pub runtime_options: Option<prost_types::Any>,
    #[prost(message, optional, tag = "6")]
    pub spec: Option<prost_types::Any>,
    #[prost(string, tag = "7")]
    pub snapshotter: String,
    #[prost(string, tag = "8")]
    pub snapshot_key: String,
    #[prost(int64, tag = "9")]
    pub created_at: i64,
    #[prost(int64, tag = "10")]
    pub updated_at: i64,
    #[prost(map = "string, message", tag = "11")]
    pub extensions: HashMap<String, prost_types::Any>,
    #[prost(string, tag = "12")]
    pub sandbox: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseRec {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(map = "string, string", tag = "2")]
    pub labels: Labels,
    #[prost(int64, tag = "3")]
    pub created_at: i64,
}

/// A namespace's record of a blob in the content store.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BlobRec {
    #[prost(string, tag = "1")]
    pub digest: String,
    #[prost(int64, tag = "2")]
    pub size: i64,
    #[prost(map = "string, string", tag = "3")]
    pub labels: Labels,
    #[prost(int64, tag = "4")]
    pub created_at: i64,
    #[prost(int64, tag = "5")]
    pub updated_at: i64,
}

/// An ingest started in a namespace; the bytes live in the content store under an internal ref.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IngestRec {
    #[prost(string, tag = "1")]
    pub expected: String,
    #[prost(int64, tag = "2")]
    pub created_at: i64,
    /// When an ingest held by no lease may be collected (unix nanos).
    #[prost(int64, tag = "3")]
    pub expires_at: i64,
}
