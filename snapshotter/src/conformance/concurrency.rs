//! Races between clients, and cleanup of what nothing refers to.

use std::sync::Barrier;

use super::{err_kind, get, put, Env, Factory, Must};
use crate::{ErrorKind, Kind, Labels};

const THREADS: usize = 8;

/// Names under `<root>/snapshots` that look like leftovers of a prepare (for layouts that have
/// that directory; others have nothing to check).
fn temp_leftovers(env: &Env) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(env.root().join("snapshots")) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        // Spares are the pool of ready directories overlay keeps (storage/spares.rs), at most
        // a few, not leftovers.
        .filter(|n| n.parse::<u64>().is_err() && !n.starts_with("spare-"))
        .collect()
}

/// Exactly one of many simultaneous prepares of one key wins; the rest get AlreadyExists and
/// leave nothing behind.
pub fn concurrent_prepares_same_key(f: Factory) {
    let env = Env::new(f);
    env.layer("base", None, |d| put(d, "f", "1"));
    let sn = env.sn();
    let barrier = Barrier::new(THREADS);
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let labels = super::labels(&[("thread", &i.to_string())]);
                    sn.prepare("same", Some("base"), labels)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("prepare thread"))
            .collect()
    });
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "{results:?}");
    for r in results.iter().filter(|r| r.is_err()) {
        let e = r.as_ref().expect_err("filtered to errors");
        assert_eq!(e.kind, ErrorKind::AlreadyExists, "{e}");
    }
    let won = results
        .into_iter()
        .find_map(|r| r.ok())
        .expect("one winner");
    assert_eq!(sn.mounts("same").must("mounts"), won);
    assert_eq!(sn.stat("same").must("stat").kind, Kind::Active);
    assert_eq!(sn.list().must("list").len(), 2);
    let m = env.mount(&won);
    assert_eq!(get(m.path(), "f").as_deref(), Some("1"));
    drop(m);
    assert_eq!(temp_leftovers(&env), Vec::<String>::new());
}

/// Simultaneous prepares, commits and removes of different keys all succeed independently.
pub fn concurrent_prepares_other_keys(f: Factory) {
    let env = Env::new(f);
    env.layer("base", None, |d| put(d, "f", "1"));
    let sn = env.sn();
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for i in 0..THREADS {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for round in 0..5 {
                    let key = format!("k-{i}-{round}");
                    sn.prepare(&key, Some("base"), Labels::new())
                        .must(format_args!("prepare {key}"));
                    if round % 2 == 0 {
                        sn.commit(&format!("c-{i}-{round}"), &key, Labels::new())
                            .must("commit");
                    } else {
                        sn.remove(&key).must(format_args!("remove {key}"));
                    }
                }
            });
        }
    });
    let all = sn.list().must("list");
    // base plus three commits per thread (rounds 0, 2, 4).
    assert_eq!(all.len(), 1 + THREADS * 3);
    assert!(all.iter().all(|i| i.kind == Kind::Committed));
    // Removed snapshots' trees wait for cleanup (as containerd's collector removes them).
    sn.cleanup().must("cleanup");
    assert_eq!(temp_leftovers(&env), Vec::<String>::new());
}

/// Cleanup removes directories no snapshot owns (a crash's leftovers) and nothing else.
pub fn cleanup_removes_orphans(f: Factory) {
    let mut env = Env::new(f);
    env.layer("base", None, |d| put(d, "f", "1"));
    env.sn()
        .prepare("a", Some("base"), Labels::new())
        .must("prepare");
    let dir = env.root().join("snapshots");
    let orphans = ["987654", "tmp-1", "rm-5", "junk"];
    if dir.is_dir() {
        for o in orphans {
            put(&dir.join(o), "fs/file", "orphan");
        }
    }
    env.sn().cleanup().must("cleanup");
    for o in orphans {
        assert!(!dir.join(o).exists(), "{o} survived cleanup");
    }
    let sn = env.sn();
    let m = env.mount(&sn.mounts("a").must("mounts a"));
    assert_eq!(get(m.path(), "f").as_deref(), Some("1"));
    drop(m);
    assert_eq!(
        err_kind(sn.stat("987654"), "stat an orphan"),
        ErrorKind::NotFound
    );

    // Leftovers from before a restart go too, and the snapshots still work.
    if dir.is_dir() {
        for o in orphans {
            put(&dir.join(o), "fs/file", "orphan");
        }
    }
    env.reopen(f);
    env.sn().cleanup().must("cleanup after reopen");
    for o in orphans {
        assert!(!dir.join(o).exists(), "{o} survived cleanup after reopen");
    }
    let sn = env.sn();
    sn.prepare("b", Some("base"), Labels::new())
        .must("prepare after cleanup");
    let m = env.mount(&sn.mounts("b").must("mounts b"));
    assert_eq!(get(m.path(), "f").as_deref(), Some("1"));
}
