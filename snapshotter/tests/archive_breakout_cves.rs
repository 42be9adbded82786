//! Hostile layers beyond containerd's table: plain `..` and absolute names, and the Rust tar
//! crate CVEs (RUSTSEC-2018-0002, CVE-2021-38511, CVE-2025-62518, CVE-2026-33055,
//! CVE-2026-33056), run against `archive::apply` with the harness of `archive_breakout.rs`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod archive_util;

use archive_util::breakout::*;
use archive_util::*;
use tar::EntryType;

/// Cases beyond containerd's table: plain `..` and absolute names, and the tar crate CVEs.
fn extra_cases() -> Vec<Case> {
    vec![
        case(
            "DotDotNames",
            |_| {
                Tar::new()
                    .file("../victim.txt", b"pwned", 0o644)
                    .file("../../../../brk-etc/passwd", b"pwned", 0o644)
                    .bytes()
            },
            all(vec![
                content("victim.txt", b"pwned"),
                content("brk-etc/passwd", b"pwned"),
            ]),
        ),
        case(
            "AbsoluteHostName",
            |s| {
                Tar::new()
                    .file(&s.host("victim.txt"), b"pwned", 0o644)
                    .bytes()
            },
            Expect::Contained(Box::new(|s| {
                let inside = s.root.join(s.host("victim.txt").trim_start_matches('/'));
                assert_eq!(std::fs::read(inside).unwrap(), b"pwned");
            })),
        ),
        // containerd's SymlinkOverridePath idea: writing through a link to an absolute host
        // directory must land inside the root.
        case(
            "SymlinkToHostDirectory",
            |s| {
                Tar::new()
                    .symlink("hostdir", &s.host("breakout-dir"))
                    .file("hostdir/breakout-file", b"pwned", 0o644)
                    .bytes()
            },
            Expect::Contained(Box::new(|s| {
                let inside = s
                    .root
                    .join(s.host("breakout-dir/breakout-file").trim_start_matches('/'));
                assert_eq!(std::fs::read(inside).unwrap(), b"pwned");
            })),
        ),
        // CVE-2026-33056: a symlink then a directory of the same name must not chmod the
        // symlink's target.
        case(
            "SymlinkThenDirectoryChmod",
            |s| {
                Tar::new()
                    .symlink("x", &s.host("hostdir"))
                    .dir("x", 0o777)
                    .file("x/f", b"in", 0o644)
                    .bytes()
            },
            Expect::Contained(Box::new(|s| {
                let md = lstat(&s.root.join("x"));
                assert!(md.is_dir());
                assert_eq!(
                    std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o7777,
                    0o777
                );
            })),
        ),
        // CVE-2021-38511: `symlink -> ..` then `symlink/x/y` must not create directories
        // outside the root.
        case(
            "SymlinkDotDotThenDeepPath",
            |_| {
                Tar::new()
                    .symlink("up", "..")
                    .file("up/exploit/foo/bar", b"x", 0o644)
                    .symlink("deep", "../../../..")
                    .dir("deep/brk-made", 0o755)
                    .bytes()
            },
            all(vec![
                content("exploit/foo/bar", b"x"),
                Box::new(|s| assert!(lstat(&s.root.join("brk-made")).is_dir())),
            ]),
        ),
        // RUSTSEC-2018-0002: a link followed by a file of the same name wrote through the link.
        case(
            "SymlinkThenSameNamedFile",
            |s| {
                Tar::new()
                    .symlink("link", &s.host("victim.txt"))
                    .file("link", b"pwned", 0o644)
                    .bytes()
            },
            Expect::Contained(Box::new(|s| {
                let md = lstat(&s.root.join("link"));
                assert!(md.is_file());
                assert_eq!(std::fs::read(s.root.join("link")).unwrap(), b"pwned");
            })),
        ),
        case(
            "HardlinkThenSameNamedFile",
            |_| {
                Tar::new()
                    .file("a", b"orig", 0o644)
                    .link("b", "a")
                    .file("b", b"new", 0o644)
                    .bytes()
            },
            all(vec![content("a", b"orig"), content("b", b"new")]),
        ),
        case(
            "RelativeSymlinkOutThenWrite",
            |_| {
                Tar::new()
                    .symlink("out", "../../..")
                    .file("out/victim.txt", b"pwned", 0o644)
                    .bytes()
            },
            Expect::Contained(content("victim.txt", b"pwned")),
        ),
        case(
            "HardlinkToRoot",
            |_| Tar::new().link("x", "..").bytes(),
            Expect::Invalid,
        ),
        case(
            "HardlinkToMissing",
            |_| Tar::new().link("x", "../nothing-here").bytes(),
            Expect::Invalid,
        ),
        case(
            "UnknownTypeflag",
            |_| {
                let mut t = Tar::new();
                let h = t.header("volume", EntryType::new(b'V'), 0o644, 0);
                t.raw(h, &[]).bytes()
            },
            Expect::Invalid,
        ),
        // CVE-2025-62518 / CVE-2026-33055: the PAX size wins over the ustar size, whatever the
        // latter says, so an archive hidden in a file's content is never parsed as entries.
        case(
            "PaxSizeOverridesZeroUstarSize",
            |s| smuggle(s, 0),
            Expect::Contained(smuggled_check()),
        ),
        case(
            "PaxSizeOverridesNonzeroUstarSize",
            |s| smuggle(s, 512),
            Expect::Contained(smuggled_check()),
        ),
    ]
}

/// A file `outer` whose 1536-byte content hides a tar entry `smuggled` right where a parser
/// trusting the ustar size (`ustar_size`) would look for the next header; the PAX size says
/// 1536.
fn smuggle(_: &Sandbox, ustar_size: u64) -> Vec<u8> {
    let inner = Tar::new().file("smuggled", b"pwned", 0o644).bytes();
    let mut content = vec![b'A'; ustar_size as usize];
    content.extend_from_slice(&inner[..1024]);
    content.resize(1536, 0);
    let mut t = Tar::new();
    t.pax(&[("size", b"1536")]);
    let h = t.header("outer", EntryType::Regular, 0o644, ustar_size);
    t.raw(h, &content).bytes()
}

fn smuggled_check() -> Check {
    Box::new(|s| {
        assert_eq!(std::fs::read(s.root.join("outer")).unwrap().len(), 1536);
        assert!(!exists(&s.root.join("smuggled")));
        assert!(!exists(&s.path().join("smuggled")));
    })
}

// One test per case, each run in both whiteout modes.
breakout_tests! {
    extra_cases;
    dot_dot_names => "DotDotNames",
    absolute_host_name => "AbsoluteHostName",
    symlink_to_host_directory => "SymlinkToHostDirectory",
    symlink_then_directory_chmod => "SymlinkThenDirectoryChmod",
    symlink_dot_dot_then_deep_path => "SymlinkDotDotThenDeepPath",
    symlink_then_same_named_file => "SymlinkThenSameNamedFile",
    hardlink_then_same_named_file => "HardlinkThenSameNamedFile",
    relative_symlink_out_then_write => "RelativeSymlinkOutThenWrite",
    hardlink_to_root => "HardlinkToRoot",
    hardlink_to_missing => "HardlinkToMissing",
    unknown_typeflag => "UnknownTypeflag",
    pax_size_overrides_zero_ustar_size => "PaxSizeOverridesZeroUstarSize",
    pax_size_overrides_nonzero_ustar_size => "PaxSizeOverridesNonzeroUstarSize",
}
