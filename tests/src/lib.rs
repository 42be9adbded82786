//! Test support for Berth's end-to-end tests and benchmarks.
//!
//! Owns two things: offline test images (`image`: OCI and docker-archive tarballs built from Debian's
//! static busybox or from generated data, with no network), and a process harness (`harness`) that runs
//! berthd, the real containerd for comparison, and the real `ctr` against either of them.

pub mod harness;
pub mod image;
