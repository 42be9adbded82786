//! Test support for Berth's end-to-end tests and benchmarks.
//!
//! Owns offline test images (`image`: OCI and docker-archive tarballs built from Debian's static
//! busybox or from generated data, with no network), a process harness (`harness`) that runs
//! berthd, the real containerd for comparison, and the real `ctr` against either of them, and the
//! client side of the end-to-end tests: shared set-up (`e2e`), a gRPC client for the daemon's
//! socket (`grpc`), `ctr events` in the background (`events`), and views of a daemon's root on
//! disk (`store`). The side-by-side benchmark against containerd lives in `bench`.

pub mod bench;
pub mod e2e;
pub mod events;
pub mod grpc;
pub mod harness;
pub mod image;
pub mod store;
