//! Records: create, stat, commit, update, list, remove, reopen, and what must be refused.

use super::{err_kind, get, labels, put, Env, Factory, Must};
use crate::{ErrorKind, Kind, Labels};

/// Prepare, write, commit, build on it, view it, remove everything.
pub fn basic_lifecycle(f: Factory) {
    let env = Env::new(f);
    let sn = env.sn();
    let mounts = sn
        .prepare("a", None, labels(&[("l", "1")]))
        .must("prepare a");
    assert!(!mounts.is_empty());
    assert_eq!(sn.mounts("a").must("mounts a"), mounts);
    {
        let m = env.mount(&mounts);
        put(m.path(), "hello", "world");
    }
    sn.commit("base", "a", labels(&[("c", "2")]))
        .must("commit a");
    assert_eq!(
        err_kind(sn.stat("a"), "stat a after commit"),
        ErrorKind::NotFound
    );
    let base = sn.stat("base").must("stat base");
    assert_eq!(base.kind, Kind::Committed);
    assert_eq!(base.parent, None);

    sn.prepare("b", Some("base"), Labels::new())
        .must("prepare b");
    let vm = sn.view("v", Some("base"), Labels::new()).must("view v");
    {
        let m = env.mount(&sn.mounts("b").must("mounts b"));
        assert_eq!(get(m.path(), "hello").as_deref(), Some("world"));
        let v = env.mount(&vm);
        assert_eq!(get(v.path(), "hello").as_deref(), Some("world"));
    }
    assert_eq!(sn.list().must("list").len(), 3);
    sn.remove("b").must("remove b");
    sn.remove("v").must("remove v");
    sn.remove("base").must("remove base");
    assert!(sn.list().must("list").is_empty());
}

pub fn stat_active_and_committed(f: Factory) {
    let env = Env::new(f);
    let sn = env.sn();
    sn.prepare("a", None, labels(&[("x", "1")]))
        .must("prepare a");
    let a = sn.stat("a").must("stat a");
    assert_eq!(
        (a.name.as_str(), a.kind, a.parent.as_deref()),
        ("a", Kind::Active, None)
    );
    assert_eq!(a.labels, labels(&[("x", "1")]));
    assert!(a.created <= a.updated);

    sn.commit("c", "a", labels(&[("y", "2")])).must("commit");
    let c = sn.stat("c").must("stat c");
    assert_eq!(
        (c.name.as_str(), c.kind, c.parent.as_deref()),
        ("c", Kind::Committed, None)
    );
    // Labels are the commit's, not inherited from the active snapshot.
    assert_eq!(c.labels, labels(&[("y", "2")]));
    assert!(c.created >= a.created);

    sn.prepare("b", Some("c"), Labels::new()).must("prepare b");
    let b = sn.stat("b").must("stat b");
    assert_eq!((b.kind, b.parent.as_deref()), (Kind::Active, Some("c")));
    sn.view("v", Some("c"), Labels::new()).must("view v");
    let v = sn.stat("v").must("stat v");
    assert_eq!((v.kind, v.parent.as_deref()), (Kind::View, Some("c")));
    assert_eq!(err_kind(sn.stat("nope"), "stat nope"), ErrorKind::NotFound);
}

/// Removing twice (a client closing twice) and removing what never was.
pub fn remove_twice_and_missing(f: Factory) {
    let env = Env::new(f);
    let sn = env.sn();
    assert_eq!(
        err_kind(sn.remove("missing"), "remove missing"),
        ErrorKind::NotFound
    );
    sn.prepare("a", None, Labels::new()).must("prepare a");
    sn.remove("a").must("remove a");
    assert_eq!(
        err_kind(sn.remove("a"), "remove a again"),
        ErrorKind::NotFound
    );
    assert_eq!(err_kind(sn.stat("a"), "stat a"), ErrorKind::NotFound);
    assert_eq!(err_kind(sn.mounts("a"), "mounts a"), ErrorKind::NotFound);
    // The key is free again.
    sn.prepare("a", None, Labels::new()).must("prepare a again");
}

/// Everything containerd refuses, with its error kinds; nothing changes on refusal.
pub fn refusals(f: Factory) {
    let env = Env::new(f);
    let sn = env.sn();
    env.layer("base", None, |d| put(d, "f", "1"));
    sn.prepare("a", Some("base"), Labels::new())
        .must("prepare a");
    sn.view("v", Some("base"), Labels::new()).must("view v");

    let e = |r, what| err_kind(r, what);
    assert_eq!(
        e(
            sn.prepare("a", None, Labels::new()).map(|_| ()),
            "key taken"
        ),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        e(
            sn.view("base", None, Labels::new()).map(|_| ()),
            "name taken"
        ),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        e(
            sn.prepare("x", Some("nope"), Labels::new()).map(|_| ()),
            "missing parent"
        ),
        ErrorKind::NotFound
    );
    assert_eq!(
        e(
            sn.prepare("x", Some("a"), Labels::new()).map(|_| ()),
            "active parent"
        ),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        e(
            sn.prepare("x", Some("v"), Labels::new()).map(|_| ()),
            "view parent"
        ),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        e(sn.commit("c", "v", Labels::new()), "commit a view"),
        ErrorKind::FailedPrecondition
    );
    assert_eq!(
        e(sn.commit("c", "base", Labels::new()), "commit committed"),
        ErrorKind::FailedPrecondition
    );
    assert_eq!(
        e(sn.commit("base", "a", Labels::new()), "commit onto a name"),
        ErrorKind::AlreadyExists
    );
    assert_eq!(
        e(sn.commit("c", "nope", Labels::new()), "commit missing"),
        ErrorKind::NotFound
    );
    assert_eq!(
        e(sn.mounts("base").map(|_| ()), "mounts of committed"),
        ErrorKind::FailedPrecondition
    );
    assert_eq!(
        e(sn.remove("base"), "remove a parent"),
        ErrorKind::FailedPrecondition
    );
    assert_eq!(
        e(sn.prepare("", None, Labels::new()).map(|_| ()), "empty key"),
        ErrorKind::InvalidArgument
    );

    assert_eq!(sn.stat("a").must("stat a").kind, Kind::Active);
    assert_eq!(sn.stat("v").must("stat v").kind, Kind::View);
    assert_eq!(err_kind(sn.stat("c"), "stat c"), ErrorKind::NotFound);
    assert_eq!(err_kind(sn.stat("x"), "stat x"), ErrorKind::NotFound);
    assert_eq!(sn.list().must("list").len(), 3);
}

/// `labels` replaces, `labels.<k>` sets or deletes one, no paths replaces all.
pub fn update_labels(f: Factory) {
    let env = Env::new(f);
    let sn = env.sn();
    sn.prepare("a", None, labels(&[("a", "1"), ("b", "2")]))
        .must("prepare");
    let before = sn.stat("a").must("stat");
    std::thread::sleep(std::time::Duration::from_millis(2));

    let paths = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let i = sn
        .update(
            "a",
            labels(&[("b", "20"), ("c", "3")]),
            &paths(&["labels.b"]),
        )
        .must("update b");
    assert_eq!(i.labels, labels(&[("a", "1"), ("b", "20")]));
    assert!(i.updated > before.updated);
    assert_eq!(i.created, before.created);
    let i = sn
        .update("a", Labels::new(), &paths(&["labels.a"]))
        .must("delete a");
    assert_eq!(i.labels, labels(&[("b", "20")]));
    let i = sn
        .update("a", labels(&[("z", "9")]), &paths(&["labels"]))
        .must("replace");
    assert_eq!(i.labels, labels(&[("z", "9")]));
    let i = sn
        .update("a", labels(&[("y", "8")]), &[])
        .must("replace all");
    assert_eq!(i.labels, labels(&[("y", "8")]));
    assert_eq!(sn.stat("a").must("stat").labels, labels(&[("y", "8")]));

    let r = sn.update("a", Labels::new(), &paths(&["parent"]));
    assert_eq!(err_kind(r, "update parent"), ErrorKind::InvalidArgument);
    assert_eq!(sn.stat("a").must("stat").labels, labels(&[("y", "8")]));
    let r = sn.update("nope", Labels::new(), &[]);
    assert_eq!(err_kind(r, "update missing"), ErrorKind::NotFound);
}

pub fn list_everything(f: Factory) {
    let env = Env::new(f);
    let sn = env.sn();
    assert!(sn.list().must("list empty").is_empty());
    env.layer("l1", None, |_| {});
    env.layer("l2", Some("l1"), |_| {});
    sn.prepare("act", Some("l2"), labels(&[("k", "v")]))
        .must("prepare");
    sn.view("view", Some("l1"), Labels::new()).must("view");
    let mut all: Vec<(String, Kind, Option<String>)> = sn
        .list()
        .must("list")
        .into_iter()
        .map(|i| (i.name, i.kind, i.parent))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let s = |x: &str| x.to_string();
    assert_eq!(
        all,
        vec![
            (s("act"), Kind::Active, Some(s("l2"))),
            (s("l1"), Kind::Committed, None),
            (s("l2"), Kind::Committed, Some(s("l1"))),
            (s("view"), Kind::View, Some(s("l1"))),
        ]
    );
}

/// Keys are arbitrary text (unpack uses spaces); none of them may touch the filesystem.
pub fn keys_are_not_paths(f: Factory) {
    let env = Env::new(f);
    let sn = env.sn();
    let keys = [
        "extract-1700000000-abc sha256:0123456789abcdef",
        "../../../../etc",
        "/absolute/key",
        "a/b/c",
        "with\nnewline",
        "ünïcödé ключ",
    ];
    for k in keys {
        sn.prepare(k, None, Labels::new())
            .must(format_args!("prepare {k:?}"));
        assert_eq!(sn.stat(k).must("stat").name, k);
    }
    assert!(!env.root().join("../../../../etc").join("fs").exists());
    assert!(!std::path::Path::new("/absolute/key").exists());
    let name = "sha256:committed name/with slash";
    sn.commit(name, keys[0], Labels::new()).must("commit");
    sn.view("v v", Some(name), Labels::new()).must("view");
    assert_eq!(sn.stat("v v").must("stat").parent.as_deref(), Some(name));
    for k in &keys[1..] {
        sn.remove(k).must(format_args!("remove {k:?}"));
    }
    assert_eq!(sn.list().must("list").len(), 2);
}

/// Records and files survive closing and reopening the snapshotter.
pub fn reopen_keeps_state(f: Factory) {
    let mut env = Env::new(f);
    env.layer("base", None, |d| put(d, "f", "kept"));
    env.sn()
        .prepare("a", Some("base"), labels(&[("k", "v")]))
        .must("prepare");
    env.reopen(f);
    let sn = env.sn();
    assert_eq!(sn.stat("base").must("stat base").kind, Kind::Committed);
    let a = sn.stat("a").must("stat a");
    assert_eq!((a.kind, a.parent.as_deref()), (Kind::Active, Some("base")));
    assert_eq!(a.labels, labels(&[("k", "v")]));
    let m = env.mount(&sn.mounts("a").must("mounts a"));
    assert_eq!(get(m.path(), "f").as_deref(), Some("kept"));
    drop(m);
    // New ids do not collide with the old ones.
    sn.prepare("b", Some("base"), Labels::new())
        .must("prepare b");
    let m = env.mount(&sn.mounts("b").must("mounts b"));
    assert_eq!(get(m.path(), "f").as_deref(), Some("kept"));
}
