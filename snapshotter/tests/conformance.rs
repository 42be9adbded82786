//! The conformance suite for both snapshotters (needs root: it mounts).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use berth_snapshotter::native::Native;
use berth_snapshotter::overlay::Overlay;
use berth_snapshotter::Snapshotter;

fn overlay(root: &Path) -> Box<dyn Snapshotter> {
    Box::new(Overlay::open(root).expect("open overlay snapshotter"))
}

fn native(root: &Path) -> Box<dyn Snapshotter> {
    Box::new(Native::open(root).expect("open native snapshotter"))
}

berth_snapshotter::snapshotter_conformance!(overlayfs, super::overlay);
berth_snapshotter::snapshotter_conformance!(native, super::native);
