//! One error type for the library, each variant carrying a containerd error kind so the shim can map it to
//! a gRPC code in one place.

use std::path::PathBuf;

/// containerd's error kinds, the subset the runtime can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ErrorKind {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    Unavailable,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bundle's config.json, a CLI argument or an id is unusable; nothing was changed.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("container {0:?}: does not exist")]
    NotFound(String),
    #[error("container {0:?}: already exists")]
    AlreadyExists(String),
    /// The container exists but is in the wrong state for the operation.
    #[error("container {id:?}: {msg}")]
    FailedPrecondition { id: String, msg: String },
    /// The host lacks a feature the spec asks for (a controller, a namespace kind).
    #[error("{0}")]
    Unsupported(String),
    #[error("{context}: {source}")]
    Sys {
        context: String,
        #[source]
        source: nix::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Path {
        context: String,
        #[source]
        source: pathrs::error::Error,
    },
    /// An error that the container's init (or exec) process reported before it could exec; the text
    /// already says what failed.
    #[error("{0}")]
    Init(String),
    #[error("state file {path:?}: {msg}")]
    CorruptState { path: PathBuf, msg: String },
    /// An error the runtime helper process reported (see `helper`) that has no variant of its own to
    /// come back as; kind and message are the helper's.
    #[error("{msg}")]
    Reported { kind: ErrorKind, msg: String },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Error::FailedPrecondition { .. } => ErrorKind::FailedPrecondition,
            Error::Unsupported(_) => ErrorKind::FailedPrecondition,
            Error::Init(_) => ErrorKind::FailedPrecondition,
            Error::Sys { .. } | Error::Io { .. } | Error::Path { .. } => ErrorKind::Internal,
            Error::CorruptState { .. } => ErrorKind::Internal,
            Error::Reported { kind, .. } => *kind,
        }
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    pub fn precondition(id: &str, msg: impl Into<String>) -> Self {
        Error::FailedPrecondition {
            id: id.to_string(),
            msg: msg.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a description of what was being done to a low-level error.
pub trait Context<T> {
    fn ctx<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, nix::Error> {
    fn ctx<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|source| Error::Sys {
            context: context().into(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn ctx<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context().into(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, pathrs::error::Error> {
    fn ctx<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|source| Error::Path {
            context: context().into(),
            source,
        })
    }
}
