//! One error type for the daemon, carrying containerd's error kinds. The kind decides the gRPC code,
//! and that mapping lives here and nowhere else.

use std::fmt;

/// containerd's `errdefs` classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    Unavailable,
    NotImplemented,
    ResourceExhausted,
    OutOfRange,
    DataLoss,
    Canceled,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: Kind,
    pub msg: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, msg: impl Into<String>) -> Self {
        Error {
            kind,
            msg: msg.into(),
        }
    }
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::new(Kind::InvalidArgument, msg)
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, msg)
    }
    pub fn exists(msg: impl Into<String>) -> Self {
        Self::new(Kind::AlreadyExists, msg)
    }
    pub fn precondition(msg: impl Into<String>) -> Self {
        Self::new(Kind::FailedPrecondition, msg)
    }
    pub fn unavailable(msg: impl Into<String>) -> Self {
        Self::new(Kind::Unavailable, msg)
    }
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(Kind::Internal, msg)
    }
    pub fn is(&self, kind: Kind) -> bool {
        self.kind == kind
    }
    /// Prefixes the message with context, keeping the kind: `image "x": not found`.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.msg = format!("{what}: {}", self.msg);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => Kind::NotFound,
            std::io::ErrorKind::AlreadyExists => Kind::AlreadyExists,
            std::io::ErrorKind::InvalidInput => Kind::InvalidArgument,
            _ => Kind::Internal,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::internal(format!("metadata store: {e}"))
    }
}

impl From<berth_snapshotter::Error> for Error {
    fn from(e: berth_snapshotter::Error) -> Self {
        use berth_snapshotter::ErrorKind as S;
        let kind = match e.kind {
            S::InvalidArgument => Kind::InvalidArgument,
            S::NotFound => Kind::NotFound,
            S::AlreadyExists => Kind::AlreadyExists,
            S::FailedPrecondition => Kind::FailedPrecondition,
            S::ResourceExhausted => Kind::ResourceExhausted,
            S::Unavailable => Kind::Unavailable,
            S::Internal => Kind::Internal,
        };
        Error::new(kind, e.msg)
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        use tonic::Code;
        let code = match e.kind {
            Kind::InvalidArgument => Code::InvalidArgument,
            Kind::NotFound => Code::NotFound,
            Kind::AlreadyExists => Code::AlreadyExists,
            Kind::FailedPrecondition => Code::FailedPrecondition,
            Kind::Unavailable => Code::Unavailable,
            Kind::NotImplemented => Code::Unimplemented,
            Kind::ResourceExhausted => Code::ResourceExhausted,
            Kind::OutOfRange => Code::OutOfRange,
            Kind::DataLoss => Code::DataLoss,
            Kind::Canceled => Code::Cancelled,
            Kind::Internal => Code::Unknown,
        };
        tonic::Status::new(code, e.msg)
    }
}
