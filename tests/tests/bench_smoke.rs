//! Keeps the benchmark from rotting: runs `bench --quick` (20 metadata ops, 10 MiB images with
//! and without unpack, 10 snapshot prepare+remove pairs) against the debug berthd and checks
//! that it prints every figure, that both daemons end the workload in the same state, and that
//! nothing of the run is left behind.

use std::path::Path;
use std::process::{Command, Output};

use berth_tests::harness::{mounts_under, processes_under, skip_reason, CONTAINERD_BIN, CTR_BIN};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(args)
        // Kept dirs would fail the cleanup checks below.
        .env_remove("BERTH_KEEP_TEMP")
        .output()
        .expect("run the bench binary")
}

#[test]
fn quick_benchmark_prints_figures_and_cleans_up() {
    if let Some(reason) = skip_reason(&[CTR_BIN, CONTAINERD_BIN]) {
        eprintln!("skipping: {reason}");
        return;
    }
    let out = bench(&["--quick"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench --quick failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );

    assert!(stdout.contains("| metric"), "no table:\n{stdout}");
    for metric in [
        "images import --no-unpack 10 MiB/8 layers, median of 3",
        "20 metadata ops via ctr",
        "20 metadata ops via gRPC in-process",
        "images import (unpack to overlayfs) 10 MiB/10 layers, median of 3",
        "snapshot prepare+rm via ctr (2 processes), median of 10",
        "snapshot prepare+rm via ctr (2 processes), p90 of 10",
        "snapshot Prepare+Remove via gRPC in-process, median of 10",
        "snapshot Prepare+Remove via gRPC in-process, p90 of 10",
        "idle RSS after start-up",
        "idle RSS after the workload",
    ] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with('|') && l.contains(metric))
            .unwrap_or_else(|| panic!("no row {metric:?}:\n{stdout}"));
        // Both figures and a ratio: no cell of the row is a placeholder.
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert!(
            cells[2..5].iter().all(|c| !c.is_empty() && *c != "-"),
            "row without figures: {row}"
        );
    }
    assert_eq!(
        stdout.matches("identical on both daemons").count(),
        2,
        "both views should leave the daemons in the same state:\n{stdout}"
    );

    let removed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("cleanup: "))
        .and_then(|l| l.split(" removed ").nth(1))
        .unwrap_or_else(|| panic!("no cleanup line:\n{stdout}"));
    let dirs: Vec<&Path> = removed.split(", ").map(Path::new).collect();
    assert_eq!(dirs.len(), 3, "berthd, containerd and work dirs: {removed}");
    for dir in dirs {
        assert!(!dir.exists(), "{} left behind", dir.display());
        assert!(
            mounts_under(dir).is_empty(),
            "mounts under {}",
            dir.display()
        );
        assert!(
            processes_under(dir).is_empty(),
            "processes of {}",
            dir.display()
        );
    }
}

#[test]
fn bad_arguments_get_usage() {
    let out = bench(&["--ops", "many"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--ops: \"many\" is not a number"),
        "{stderr}"
    );
    assert!(stderr.contains("usage: bench"), "{stderr}");
}
