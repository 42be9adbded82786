//! The container's init process: what it does between fork and exec.

pub mod exec;
pub mod fds;
pub mod identity;
pub mod init;
pub mod lsm;
pub mod placement;
pub mod procfs;
pub mod rlimits;
pub mod stage1;
