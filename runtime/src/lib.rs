//! Berth's OCI runtime: builds and runs containers from OCI bundles. The `berth-runtime` binary is a
//! runc-compatible CLI over this library; the shim can call it in-process.
//!
//! It owns the container's whole life: validating the spec ([`validate`]), the state root
//! ([`container`], [`state`], [`status`]), kernel isolation ([`namespaces`], [`rootfs`],
//! [`cgroups`], [`capabilities`], [`seccomp`]), the init process from fork to exec ([`process`],
//! [`sync`], [`tty`]), [`hooks`], and the host-safety measures ([`exeseal`], [`process::fds`]).
//!
//! Every operation may be called from a multithreaded process (the shim): `create` and `exec`, which
//! fork and run runtime code in the child, do that in a single-threaded helper process run from the
//! sealed runtime binary when the caller is not one itself ([`helper`]). See STATUS.md for what is done
//! and missing.

pub mod capabilities;
pub mod cgroups;
pub mod container;
pub mod error;
pub mod exeseal;
pub mod helper;
pub mod hooks;
pub mod mountattr;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod status;
pub mod sync;
pub mod tty;
pub mod util;
pub mod validate;

pub use container::{Container, CreateOptions, ExecOptions, DEFAULT_ROOT};
pub use error::{Error, ErrorKind, Result};
pub use process::fds::ProcessIo;
pub use status::ContainerStatus;
