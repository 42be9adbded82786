//! What the mounts show: chains, read-only views, changes across layers, metadata, usage, and
//! a 128-layer chain.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::{err_kind, get, put, Env, Factory, Must};
use crate::{ErrorKind, Kind, Labels};

/// Each layer sees its ancestors; parents with children cannot be removed.
pub fn parent_chains(f: Factory) {
    let env = Env::new(f);
    let sn = env.sn();
    env.layer("l1", None, |d| put(d, "a", "1"));
    env.layer("l2", Some("l1"), |d| put(d, "b", "2"));
    env.layer("l3", Some("l2"), |d| put(d, "c", "3"));
    assert_eq!(sn.stat("l3").must("stat l3").parent.as_deref(), Some("l2"));
    assert_eq!(sn.stat("l2").must("stat l2").parent.as_deref(), Some("l1"));

    sn.prepare("top", Some("l3"), Labels::new())
        .must("prepare top");
    {
        let m = env.mount(&sn.mounts("top").must("mounts top"));
        for (f, c) in [("a", "1"), ("b", "2"), ("c", "3")] {
            assert_eq!(get(m.path(), f).as_deref(), Some(c), "file {f}");
        }
    }
    // A view of the middle does not see the layer above it.
    sn.view("mid", Some("l2"), Labels::new()).must("view mid");
    {
        let m = env.mount(&sn.mounts("mid").must("mounts mid"));
        assert_eq!(get(m.path(), "b").as_deref(), Some("2"));
        assert_eq!(get(m.path(), "c"), None);
    }
    for (k, why) in [
        ("l1", "l2 is its child"),
        ("l2", "l3 is its child"),
        ("l3", "top is its child"),
    ] {
        assert_eq!(
            err_kind(sn.remove(k), why),
            ErrorKind::FailedPrecondition,
            "{why}"
        );
    }
    for k in ["top", "l3", "mid", "l2", "l1"] {
        sn.remove(k).must(format_args!("remove {k}"));
    }
    assert!(sn.list().must("list").is_empty());
}

/// Views, with no parent, one parent or a chain, refuse writes.
pub fn views_are_read_only(f: Factory) {
    let env = Env::new(f);
    let sn = env.sn();
    env.layer("l1", None, |d| put(d, "a", "1"));
    env.layer("l2", Some("l1"), |d| put(d, "b", "2"));
    for (key, parent) in [("v0", None), ("v1", Some("l1")), ("v2", Some("l2"))] {
        let mounts = sn
            .view(key, parent, Labels::new())
            .must(format_args!("view {key}"));
        let m = env.mount(&mounts);
        let err = std::fs::write(m.path().join("new"), "x").expect_err("write into a view");
        assert_eq!(err.raw_os_error(), Some(nix::libc::EROFS), "{key}: {err}");
        if parent.is_some() {
            let err = std::fs::remove_file(m.path().join("a")).expect_err("delete in a view");
            assert_eq!(err.raw_os_error(), Some(nix::libc::EROFS), "{key}: {err}");
            assert_eq!(get(m.path(), "a").as_deref(), Some("1"));
        }
    }
}

/// Changing, deleting and adding files and directories in a child layer shows in the layered
/// view, and leaves the parent layer as it was.
pub fn deleted_and_changed_files(f: Factory) {
    let env = Env::new(f);
    let sn = env.sn();
    env.layer("base", None, |d| {
        put(d, "keep", "same");
        put(d, "change", "old");
        put(d, "delete", "gone");
        put(d, "dir/inner", "in");
        put(d, "dir/deep/x", "x");
        put(d, "gone-dir/file", "f");
        put(d, "to-file/child", "c");
    });
    env.layer("child", Some("base"), |d| {
        put(d, "change", "new");
        std::fs::remove_file(d.join("delete")).must("delete");
        std::fs::remove_dir_all(d.join("gone-dir")).must("rmdir");
        std::fs::remove_dir_all(d.join("to-file")).must("rmdir to-file");
        put(d, "to-file", "now a file");
        put(d, "dir/added", "a");
        std::fs::remove_file(d.join("dir/deep/x")).must("delete deep");
        put(d, "new", "fresh");
    });
    sn.view("v", Some("child"), Labels::new())
        .must("view child");
    let m = env.mount(&sn.mounts("v").must("mounts v"));
    let p = m.path();
    assert_eq!(get(p, "keep").as_deref(), Some("same"));
    assert_eq!(get(p, "change").as_deref(), Some("new"));
    assert_eq!(get(p, "delete"), None);
    assert!(!p.join("gone-dir").exists());
    assert_eq!(get(p, "to-file").as_deref(), Some("now a file"));
    assert_eq!(get(p, "dir/inner").as_deref(), Some("in"));
    assert_eq!(get(p, "dir/added").as_deref(), Some("a"));
    assert!(p.join("dir/deep").is_dir());
    assert_eq!(get(p, "dir/deep/x"), None);
    assert_eq!(get(p, "new").as_deref(), Some("fresh"));
    let mut names: Vec<String> = std::fs::read_dir(p)
        .must("read view")
        .map(|e| e.must("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["change", "dir", "keep", "new", "to-file"]);

    sn.view("vb", Some("base"), Labels::new()).must("view base");
    let b = env.mount(&sn.mounts("vb").must("mounts vb"));
    assert_eq!(get(b.path(), "change").as_deref(), Some("old"));
    assert_eq!(get(b.path(), "delete").as_deref(), Some("gone"));
    assert_eq!(get(b.path(), "gone-dir/file").as_deref(), Some("f"));
    assert_eq!(get(b.path(), "new"), None);
}

/// Ownership and modes set in an active snapshot survive commit, seen through a child and a view.
pub fn ownership_and_modes_kept(f: Factory) {
    let env = Env::new(f);
    let sn = env.sn();
    env.layer("base", None, |d| {
        put(d, "plain", "p");
        put(d, "dir/file", "f");
    });
    let chmod = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).must("chmod")
    };
    env.layer("child", Some("base"), |d| {
        // Copied up from the parent, then changed.
        std::os::unix::fs::chown(d.join("plain"), Some(1234), Some(5678)).must("chown plain");
        chmod(&d.join("plain"), 0o4751);
        std::os::unix::fs::chown(d.join("dir"), Some(42), Some(43)).must("chown dir");
        chmod(&d.join("dir"), 0o710);
        // New in this layer.
        put(d, "suid", "s");
        std::os::unix::fs::chown(d.join("suid"), Some(0), Some(7)).must("chown suid");
        chmod(&d.join("suid"), 0o2755);
        std::os::unix::fs::symlink("plain", d.join("link")).must("symlink");
        std::os::unix::fs::lchown(d.join("link"), Some(99), Some(98)).must("lchown link");
        std::fs::create_dir(d.join("sticky")).must("mkdir sticky");
        chmod(&d.join("sticky"), 0o1777);
    });
    let check = |p: &Path, what: &str| {
        let md =
            |rel: &str| std::fs::symlink_metadata(p.join(rel)).must(format_args!("stat {rel}"));
        let m = md("plain");
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (1234, 5678, 0o4751),
            "{what}: plain"
        );
        let m = md("dir");
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (42, 43, 0o710),
            "{what}: dir"
        );
        let m = md("suid");
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (0, 7, 0o2755),
            "{what}: suid"
        );
        let m = md("link");
        assert!(m.file_type().is_symlink(), "{what}: link");
        assert_eq!((m.uid(), m.gid()), (99, 98), "{what}: link owner");
        assert_eq!(md("sticky").mode() & 0o7777, 0o1777, "{what}: sticky");
        assert_eq!(get(p, "dir/file").as_deref(), Some("f"), "{what}: dir/file");
    };
    sn.view("v", Some("child"), Labels::new()).must("view");
    check(env.mount(&sn.mounts("v").must("mounts v")).path(), "view");
    sn.prepare("next", Some("child"), Labels::new())
        .must("prepare next");
    check(
        env.mount(&sn.mounts("next").must("mounts next")).path(),
        "active child",
    );
}

/// Usage counts what a snapshot's own layer holds, and committing keeps the figure.
pub fn usage_figures(f: Factory) {
    let env = Env::new(f);
    let sn = env.sn();
    let mounts = sn.prepare("a", None, Labels::new()).must("prepare");
    let empty = sn.usage("a").must("usage of empty");
    assert!(empty.inodes >= 1, "{empty:?}");
    const MIB: i64 = 1 << 20;
    {
        let m = env.mount(&mounts);
        std::fs::write(m.path().join("big"), vec![0x5au8; MIB as usize]).must("write big");
        for i in 0..3 {
            put(m.path(), &format!("small-{i}"), "s");
        }
        std::fs::hard_link(m.path().join("big"), m.path().join("big-link")).must("hard link");
    }
    let used = sn.usage("a").must("usage");
    // big (once, despite its second link) and three small files.
    assert_eq!(used.inodes - empty.inodes, 4, "{empty:?} → {used:?}");
    assert!(used.size - empty.size >= MIB, "{empty:?} → {used:?}");
    assert!(
        used.size - empty.size <= MIB + 3 * 64 * 1024,
        "{empty:?} → {used:?}"
    );
    sn.commit("c", "a", Labels::new()).must("commit");
    assert_eq!(sn.usage("c").must("usage of committed"), used);
    assert_eq!(
        err_kind(sn.usage("a"), "usage of committed key"),
        ErrorKind::NotFound
    );
    assert_eq!(
        err_kind(sn.usage("nope"), "usage of missing"),
        ErrorKind::NotFound
    );
}

/// 128 layers, each adding a file and rewriting one: a prepare and a view on top mount (with an
/// option string under a page) and show every layer.
pub fn chain_of_128_layers(f: Factory) {
    const LAYERS: usize = 128;
    let env = Env::new(f);
    let sn = env.sn();
    let mut parent: Option<String> = None;
    for i in 0..LAYERS {
        let name = format!("layer-{i:03}");
        env.layer(&name, parent.as_deref(), |d| {
            put(d, &format!("f{i:03}"), &i.to_string());
            put(d, "top", &i.to_string());
        });
        parent = Some(name);
    }
    let parent = parent.expect("layers were made");
    let page = crate::mount::page_size();
    for (key, kind) in [("top", Kind::Active), ("view", Kind::View)] {
        let mounts = if kind == Kind::Active {
            sn.prepare(key, Some(&parent), Labels::new())
        } else {
            sn.view(key, Some(&parent), Labels::new())
        }
        .must(format_args!("{key} on 128 layers"));
        for m in &mounts {
            let data = crate::mount::parse_options(&m.options).1;
            eprintln!(
                "128 layers, {key}: {} mount, data {} bytes",
                m.kind,
                data.len()
            );
            assert!(data.len() < page, "{key}: {} bytes", data.len());
        }
        let m = env.mount(&mounts);
        for i in 0..LAYERS {
            assert_eq!(
                get(m.path(), &format!("f{i:03}")),
                Some(i.to_string()),
                "{key}: f{i:03}"
            );
        }
        assert_eq!(get(m.path(), "top"), Some((LAYERS - 1).to_string()));
        if kind == Kind::Active {
            put(m.path(), "written-on-top", "yes");
            assert_eq!(get(m.path(), "written-on-top").as_deref(), Some("yes"));
        }
    }
}
