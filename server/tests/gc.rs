#![allow(clippy::unwrap_used)]
//! The collector against a real store on a temp dir: what images, leases and gc labels keep, and
//! what goes.

use std::collections::HashMap;
use std::sync::Arc;

use berth_server::content::Digest;
use berth_server::error::Kind;
use berth_server::gc;
use berth_server::metadata::{content, images, leases, DescriptorRec, ImageRec};
use berth_server::Meta;

fn meta() -> (tempfile::TempDir, Arc<Meta>) {
    let dir = tempfile::tempdir().unwrap();
    let m = Meta::open(dir.path()).unwrap();
    (dir, m)
}

fn put(m: &Meta, ns: &str, data: &[u8], labels: &[(&str, String)], lease: Option<&str>) -> Digest {
    let d = Digest::of(data);
    let mut w = content::writer(
        m,
        ns,
        &format!("ref-{d}"),
        data.len() as i64,
        Some(d.clone()),
        lease,
    )
    .unwrap();
    w.inner.write_at(0, data).unwrap();
    let labels: HashMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    w.commit(m, data.len() as i64, Some(d.clone()), labels)
        .unwrap()
}

fn image(m: &Meta, ns: &str, name: &str, target: &Digest) {
    images::create(
        m,
        ns,
        ImageRec {
            name: name.into(),
            target: Some(DescriptorRec {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                digest: target.to_string(),
                size: 1,
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .unwrap();
}

fn has(m: &Meta, ns: &str, d: &Digest) -> bool {
    match content::info(m, ns, d) {
        Ok(_) => true,
        Err(e) if e.is(Kind::NotFound) => false,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn image_delete_sync_frees_referenced_content() {
    let (_dir, m) = meta();
    let layer = put(&m, "a", b"layer", &[], None);
    let config = put(&m, "a", b"config", &[], None);
    let manifest = put(
        &m,
        "a",
        b"manifest",
        &[
            ("containerd.io/gc.ref.content.l.0", layer.to_string()),
            ("containerd.io/gc.ref.content.config", config.to_string()),
        ],
        None,
    );
    let stray = put(&m, "a", b"stray", &[], None);
    image(&m, "a", "img", &manifest);
    gc::collect(&m).unwrap();
    assert!(has(&m, "a", &layer) && has(&m, "a", &config) && has(&m, "a", &manifest));
    assert!(!has(&m, "a", &stray), "unreferenced content is collected");
    assert!(!m.content.exists(&stray));

    images::delete(&m, "a", "img", true).unwrap();
    for d in [&layer, &config, &manifest] {
        assert!(!has(&m, "a", d));
        assert!(!m.content.exists(d), "{d} left on disk");
    }
}

#[test]
fn lease_keeps_content_until_it_goes() {
    let (_dir, m) = meta();
    leases::create(&m, "a", "l1", HashMap::new()).unwrap();
    let d = put(&m, "a", b"leased", &[], Some("l1"));
    gc::collect(&m).unwrap();
    assert!(has(&m, "a", &d));
    leases::delete(&m, "a", "l1", true).unwrap();
    assert!(!has(&m, "a", &d));
    assert!(!m.content.exists(&d));
}

#[test]
fn expired_lease_is_collected() {
    let (_dir, m) = meta();
    let past = HashMap::from([(
        leases::LABEL_EXPIRE.to_string(),
        "2001-01-01T00:00:00Z".to_string(),
    )]);
    leases::create(&m, "a", "old", past).unwrap();
    let d = put(&m, "a", b"old lease", &[], Some("old"));
    let s = gc::collect(&m).unwrap();
    assert_eq!(s.leases, 1);
    assert!(!has(&m, "a", &d));
    assert!(leases::get(&m, "a", "old").unwrap_err().is(Kind::NotFound));
}

#[test]
fn gc_root_label_keeps_content() {
    let (_dir, m) = meta();
    let d = put(&m, "a", b"rooted", &[(gc::LABEL_ROOT, "now".into())], None);
    gc::collect(&m).unwrap();
    assert!(has(&m, "a", &d));
}

#[test]
fn blob_shared_by_two_namespaces_stays_until_both_drop_it() {
    let (_dir, m) = meta();
    let d1 = put(&m, "a", b"shared", &[(gc::LABEL_ROOT, "x".into())], None);
    // The blob is on disk already: namespace b is given it at once (containerd's shared policy),
    // and the writer answers AlreadyExists, which clients take as done.
    let e = content::writer(&m, "b", "r", 6, Some(d1.clone()), None)
        .err()
        .unwrap();
    assert!(e.is(Kind::AlreadyExists));
    assert!(has(&m, "b", &d1));
    gc::collect(&m).unwrap();
    assert!(!has(&m, "b", &d1));
    assert!(has(&m, "a", &d1));
    assert!(m.content.exists(&d1), "still held by namespace a");
}

#[test]
fn flat_lease_does_not_follow_references() {
    let (_dir, m) = meta();
    let child = put(&m, "a", b"child", &[], None);
    let flat = HashMap::from([(leases::LABEL_FLAT.to_string(), String::new())]);
    leases::create(&m, "a", "flat", flat).unwrap();
    let parent = put(
        &m,
        "a",
        b"parent",
        &[("containerd.io/gc.ref.content.m.0", child.to_string())],
        Some("flat"),
    );
    gc::collect(&m).unwrap();
    assert!(has(&m, "a", &parent));
    assert!(!has(&m, "a", &child));
}
