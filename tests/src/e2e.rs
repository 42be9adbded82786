//! Shared set-up of berthd's end-to-end tests: whether they can run here, a daemon to run them
//! against, and ctr invocations the harness's [`Ctr`] does not cover (input on stdin).

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::harness::{skip_reason, Berthd, Ctr, CTR_BIN};
use crate::image::BUSYBOX_PATH;

/// Why berthd's end-to-end tests cannot run here, printed; `extra` names more needed binaries.
fn skip(extra: &[&str]) -> bool {
    let mut needed = vec![CTR_BIN];
    needed.extend_from_slice(extra);
    match skip_reason(&needed) {
        Some(reason) => {
            eprintln!("skipping: {reason}");
            true
        }
        None => false,
    }
}

/// A fresh berthd, or `None` (with the reason printed) when the test cannot run here: not root,
/// or ctr missing. The test then returns and passes.
pub fn berthd() -> Option<Berthd> {
    if skip(&[]) {
        return None;
    }
    Some(Berthd::start().expect("start berthd"))
}

/// Like [`berthd`], for tests that also import the busybox test image.
pub fn berthd_with_busybox() -> Option<Berthd> {
    if skip(&[BUSYBOX_PATH]) {
        return None;
    }
    Some(Berthd::start().expect("start berthd"))
}

/// Runs `ctr args...` with `input` on its stdin (`ctr content ingest` reads the blob there).
pub fn ctr_with_input(ctr: &Ctr, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(CTR_BIN)
        .arg("-a")
        .arg(&ctr.address)
        .arg("-n")
        .arg(&ctr.namespace)
        .args(args)
        .env_remove("CONTAINERD_ADDRESS")
        .env_remove("CONTAINERD_NAMESPACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("spawn {CTR_BIN}: {err}"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    // A writer thread, so a ctr that fails before reading everything cannot block the test.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for ctr");
    writer.join().expect("stdin writer thread");
    out
}

/// `ctr content ingest REF` of `data`; panics if it fails.
pub fn ingest(ctr: &Ctr, reference: &str, data: &[u8]) {
    let out = ctr_with_input(ctr, &["content", "ingest", reference], data);
    assert!(
        out.status.success(),
        "ctr content ingest {reference} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Pseudo-random bytes from a seed (xorshift), so blobs differ between tests and runs can be
/// compared.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Runs one full garbage collection now, in `ctr`'s namespace: creates a throwaway lease and
/// deletes it with `--sync`. Tests call it instead of waiting for the background collector, e.g.
/// after `ctr images import`, whose index blob is garbage once the import's lease is gone.
pub fn collect_garbage(ctr: &Ctr) {
    let id = "berth-tests-gc-trigger";
    ctr.ok(&["leases", "create", "--id", id]);
    ctr.ok(&["leases", "rm", "--sync", id]);
}
