//! containerd's `TestBreakouts` table (pkg/archive/tar_test.go) run against `archive::apply`
//! (the Rust tar crate CVEs are in `archive_breakout_cves.rs`). Each case applies a hostile layer into `root/` inside a
//! sandbox that also holds "host" files; whatever the outcome, nothing outside `root/` may
//! change. The layer then either fails with InvalidArgument or is contained the way containerd
//! contains it (links pointing out are created but resolve inside the root).
//!
//! containerd's cases use `/etc`; here that directory is `brk-etc`, so that a regression can
//! only create new, recognisable paths on the host (the canaries below), never touch its
//! real `/etc`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod archive_util;

use archive_util::breakout::*;
use archive_util::*;
use berth_snapshotter::archive::WhiteoutMode;

fn containerd_cases() -> Vec<Case> {
    let u = b"unbroken";
    vec![
        case(
            "SymlinkAbsolute",
            |_| {
                Tar::new()
                    .dir("brk-etc", 0o755)
                    .symlink("localetc", "/brk-etc")
                    .file("/localetc/unbroken", u, 0o644)
                    .bytes()
            },
            unbroken(),
        ),
        case(
            "SymlinkUpAndOut",
            |_| {
                Tar::new()
                    .dir("brk-etc", 0o755)
                    .dir("dummy", 0o755)
                    .symlink("localetc", "/dummy/../brk-etc")
                    .file("/localetc/unbroken", u, 0o644)
                    .bytes()
            },
            unbroken(),
        ),
        case(
            "SymlinkMultipleAbsolute",
            |_| {
                Tar::new()
                    .dir("brk-etc", 0o755)
                    .dir("dummy", 0o755)
                    .symlink("/dummy/brk-etc", "/brk-etc")
                    .symlink("localetc", "/dummy/brk-etc")
                    .file("/dummy/brk-etc/unbroken", u, 0o644)
                    .bytes()
            },
            unbroken(),
        ),
        case(
            "SymlinkMultipleRelative",
            |_| {
                Tar::new()
                    .dir("brk-etc", 0o755)
                    .dir("dummy", 0o755)
                    .symlink("/dummy/brk-etc", "/brk-etc")
                    .symlink("localetc", "./dummy/brk-etc")
                    .file("/dummy/brk-etc/unbroken", u, 0o644)
                    .bytes()
            },
            unbroken(),
        ),
        case(
            "SymlinkEmptyFile",
            |_| {
                Tar::new()
                    .dir("brk-etc", 0o755)
                    .file("brk-etc/emptied", b"notempty", 0o644)
                    .symlink("localetc", "/brk-etc")
                    .file("/localetc/emptied", b"", 0o644)
                    .bytes()
            },
            Expect::Contained(content("brk-etc/emptied", b"")),
        ),
        case(
            "HardlinkRelative",
            |_| {
                Tar::new()
                    .dir("brk-etc", 0o770)
                    .file("/brk-etc/passwd", b"inside", 0o644)
                    .dir("breakouts", 0o755)
                    .symlink("breakouts/d1", "../../brk-etc")
                    .link("breakouts/mypasswd", "/breakouts/d1/passwd")
                    .bytes()
            },
            same("breakouts/mypasswd", "brk-etc/passwd"),
        ),
        case(
            "HardlinkDownAndOut",
            |_| {
                Tar::new()
                    .dir("brk-etc", 0o770)
                    .file("/brk-etc/passwd", b"inside", 0o644)
                    .dir("breakouts", 0o755)
                    .dir("downandout", 0o755)
                    .symlink("breakouts/d1", "../downandout/../../brk-etc")
                    .link("breakouts/mypasswd", "/breakouts/d1/passwd")
                    .bytes()
            },
            same("breakouts/mypasswd", "brk-etc/passwd"),
        ),
        case(
            "HardlinkAbsolute",
            |_| {
                Tar::new()
                    .dir("brk-etc", 0o770)
                    .file("/brk-etc/passwd", b"inside", 0o644)
                    .symlink("localetc", "/brk-etc")
                    .link("localpasswd", "/localetc/passwd")
                    .bytes()
            },
            same("localpasswd", "brk-etc/passwd"),
        ),
        case(
            "HardlinkRelativeLong",
            |_| {
                Tar::new()
                    .dir("brk-etc", 0o770)
                    .file("/brk-etc/passwd", b"inside", 0o644)
                    .symlink("localetc", "../../../../../../../brk-etc")
                    .link("localpasswd", "/localetc/passwd")
                    .bytes()
            },
            same("localpasswd", "brk-etc/passwd"),
        ),
        case(
            "HardlinkRelativeUpAndOut",
            |_| {
                Tar::new()
                    .dir("brk-etc", 0o770)
                    .file("/brk-etc/passwd", b"inside", 0o644)
                    .symlink("localetc", "upandout/../../../brk-etc")
                    .link("localpasswd", "/localetc/passwd")
                    .bytes()
            },
            same("localpasswd", "brk-etc/passwd"),
        ),
        case(
            "HardlinkDirectRelative",
            |_| {
                Tar::new()
                    .dir("brk-etc", 0o770)
                    .file("/brk-etc/passwd", b"inside", 0o644)
                    .link("localpasswd", "../../../../../brk-etc/passwd")
                    .bytes()
            },
            same("localpasswd", "brk-etc/passwd"),
        ),
        case(
            "HardlinkDirectAbsolute",
            |_| {
                Tar::new()
                    .dir("brk-etc", 0o770)
                    .file("/brk-etc/passwd", b"inside", 0o644)
                    .link("localpasswd", "/brk-etc/passwd")
                    .bytes()
            },
            same("localpasswd", "brk-etc/passwd"),
        ),
        case(
            "SymlinkParentDirectory",
            |_| {
                Tar::new()
                    .dir("brk-etc", 0o770)
                    .file("/brk-etc/passwd", b"inside", 0o644)
                    .symlink("..", "/brk-etc/")
                    .link("localpasswd", "/brk-etc/passwd")
                    .bytes()
            },
            same("localpasswd", "brk-etc/passwd"),
        ),
        case(
            "SymlinkEmptyFilename",
            |_| {
                Tar::new()
                    .dir("brk-etc", 0o770)
                    .file("/brk-etc/passwd", b"inside", 0o644)
                    .symlink("", "/brk-etc/")
                    .link("localpasswd", "/brk-etc/passwd")
                    .bytes()
            },
            same("localpasswd", "brk-etc/passwd"),
        ),
        case(
            "SymlinkParentRelative",
            |_| {
                Tar::new()
                    .dir("brk-etc", 0o770)
                    .file("/brk-etc/passwd", b"inside", 0o644)
                    .symlink("localetc/sub/..", "/brk-etc/")
                    .link("/localetc/localpasswd", "/brk-etc/passwd")
                    .bytes()
            },
            same("localetc/localpasswd", "brk-etc/passwd"),
        ),
        case(
            "SymlinkSlashEnded",
            |_| {
                Tar::new()
                    .dir("brk-etc", 0o770)
                    .file("/brk-etc/passwd", b"inside", 0o644)
                    .dir("localetc/", 0o770)
                    .link("/localetc/localpasswd", "/brk-etc/passwd")
                    .bytes()
            },
            same("localetc/localpasswd", "brk-etc/passwd"),
        ),
        with_pre(
            case(
                "SymlinkOverrideDirectory",
                |_| {
                    Tar::new()
                        .symlink("localetc", "/brk-etc")
                        .link("/localetc/localpasswd", "/brk-etc/passwd")
                        .bytes()
                },
                same("localetc/localpasswd", "brk-etc/passwd"),
            ),
            |s| {
                etc_passwd(s, b"inside");
                std::fs::create_dir(s.root.join("localetc")).unwrap();
            },
        ),
        with_pre(
            case(
                "SymlinkOverrideDirectoryRelative",
                |_| {
                    Tar::new()
                        .symlink("localetc", "../../brk-etc")
                        .link("/localetc/localpasswd", "/brk-etc/passwd")
                        .bytes()
                },
                same("localetc/localpasswd", "brk-etc/passwd"),
            ),
            |s| {
                etc_passwd(s, b"inside");
                std::fs::create_dir(s.root.join("localetc")).unwrap();
            },
        ),
        with_pre(
            case(
                "DirectoryOverrideSymlink",
                |_| {
                    Tar::new()
                        .dir("/localetc/", 0o755)
                        .link("/localetc/localpasswd", "/brk-etc/passwd")
                        .bytes()
                },
                all(vec![
                    Box::new(|s| assert!(lstat(&s.root.join("localetc")).is_dir())),
                    Box::new(|s| {
                        assert_eq!(
                            inode_in_root(&s.root, "localetc/localpasswd"),
                            inode_in_root(&s.root, "brk-etc/passwd")
                        )
                    }),
                ]),
            ),
            |s| {
                etc_passwd(s, b"inside");
                symlink("/brk-etc", &s.root.join("localetc"));
            },
        ),
        with_pre(
            case(
                "DirectoryOverrideSymlinkAndHardlink",
                |_| {
                    Tar::new()
                        .dir("/localetc/", 0o755)
                        .file("/localetc/localpasswd", b"different", 0o644)
                        .bytes()
                },
                all(vec![
                    Box::new(|s| {
                        assert_ne!(
                            inode_in_root(&s.root, "localetc/localpasswd"),
                            inode_in_root(&s.root, "brk-etc/passwd")
                        )
                    }),
                    content("brk-etc/passwd", b"inside"),
                    content("localetc/localpasswd", b"different"),
                ]),
            ),
            |s| {
                etc_passwd(s, b"inside");
                symlink("brk-etc", &s.root.join("localetc"));
                std::fs::hard_link(
                    s.root.join("brk-etc/passwd"),
                    s.root.join("brk-etc/localpasswd"),
                )
                .unwrap();
            },
        ),
        with_pre(
            case(
                "WhiteoutRootParent",
                |_| Tar::new().file(".wh...", b"", 0o644).bytes(),
                Expect::Invalid,
            ),
            |s| etc_passwd(s, b"inside"),
        ),
        with_pre(
            case(
                "WhiteoutParent",
                |_| Tar::new().file("brk-etc/.wh...", b"", 0o644).bytes(),
                Expect::Invalid,
            ),
            |s| etc_passwd(s, b"inside"),
        ),
        with_pre(
            case(
                "WhiteoutRoot",
                |_| Tar::new().file(".wh..", b"", 0o644).bytes(),
                Expect::Invalid,
            ),
            |s| etc_passwd(s, b"inside"),
        ),
        with_pre(
            case(
                "WhiteoutCurrentDirectory",
                |_| Tar::new().file("brk-etc/.wh..", b"", 0o644).bytes(),
                Expect::Invalid,
            ),
            |s| etc_passwd(s, b"inside"),
        ),
        with_pre(
            case(
                "WhiteoutEmptyName",
                |_| Tar::new().file("brk-etc/.wh.", b"", 0o644).bytes(),
                Expect::Invalid,
            ),
            |s| etc_passwd(s, b"inside"),
        ),
        remove_only(with_pre(
            case(
                "WhiteoutSymlink",
                |_| Tar::new().file(".wh.localetc", b"", 0o644).bytes(),
                all(vec![
                    content("brk-etc/passwd", b"all users"),
                    absent("localetc"),
                ]),
            ),
            |s| {
                etc_passwd(s, b"all users");
                symlink("/brk-etc", &s.root.join("localetc"));
            },
        )),
        remove_only(with_pre(
            case(
                "WhiteoutSymlinkPath",
                |_| {
                    Tar::new()
                        .file("localetc/.wh.whitedout", b"", 0o644)
                        .bytes()
                },
                all(vec![
                    content("brk-etc/passwd", b"all users"),
                    absent("brk-etc/whitedout"),
                ]),
            ),
            |s| {
                etc_passwd(s, b"all users");
                write(&s.root.join("brk-etc/whitedout"), b"ahhhh whiteout", 0o644);
                symlink("/brk-etc", &s.root.join("localetc"));
            },
        )),
        with_pre(
            case(
                "WhiteoutDirectoryName",
                |_| {
                    Tar::new()
                        .file(".wh.brk-etc/somefile", b"non-empty", 0o644)
                        .bytes()
                },
                all(vec![
                    content("brk-etc/passwd", b"all users"),
                    content(".wh.brk-etc/somefile", b"non-empty"),
                ]),
            ),
            |s| {
                etc_passwd(s, b"all users");
                symlink("/brk-etc", &s.root.join("localetc"));
            },
        ),
        remove_only(with_pre(
            case(
                "WhiteoutDeadSymlinkParent",
                |_| Tar::new().file("localetc/.wh.brk-etc", b"", 0o644).bytes(),
                Expect::Contained(content("brk-etc/passwd", b"all users")),
            ),
            |s| {
                etc_passwd(s, b"all users");
                symlink("/dne", &s.root.join("localetc"));
            },
        )),
        remove_only(with_pre(
            case(
                "WhiteoutRelativePath",
                |_| Tar::new().file("dne/../.wh.brk-etc", b"", 0o644).bytes(),
                Expect::Contained(absent("brk-etc/passwd")),
            ),
            |s| {
                etc_passwd(s, b"all users");
                symlink("/dne", &s.root.join("localetc"));
            },
        )),
        case(
            "HardlinkSymlinkBeforeCreateTarget",
            |_| {
                Tar::new()
                    .dir("brk-etc", 0o770)
                    .symlink("localpasswd", "/brk-etc/passwd")
                    .link("localpasswd-dup", "localpasswd")
                    .file("/brk-etc/passwd", b"after", 0o644)
                    .bytes()
            },
            same("localpasswd-dup", "brk-etc/passwd"),
        ),
        case(
            "HardlinkSymlinkRelative",
            |_| {
                Tar::new()
                    .dir("brk-etc", 0o770)
                    .file("/brk-etc/passwd", b"inside", 0o644)
                    .symlink("passwdlink", "../../../../../brk-etc/passwd")
                    .link("localpasswd", "/passwdlink")
                    .bytes()
            },
            all(vec![
                Box::new(|s| {
                    assert_eq!(
                        std::fs::read_link(s.root.join("localpasswd")).unwrap(),
                        std::fs::read_link(s.root.join("passwdlink")).unwrap()
                    )
                }),
                Box::new(|s| {
                    assert_eq!(
                        inode_in_root(&s.root, "localpasswd"),
                        inode_in_root(&s.root, "brk-etc/passwd")
                    )
                }),
            ]),
        ),
        case(
            "HardlinkSymlinkAbsolute",
            |_| {
                Tar::new()
                    .dir("brk-etc", 0o770)
                    .file("/brk-etc/passwd", b"inside", 0o644)
                    .symlink("passwdlink", "/brk-etc/passwd")
                    .link("localpasswd", "/passwdlink")
                    .bytes()
            },
            all(vec![
                Box::new(|s| {
                    assert_eq!(
                        std::fs::read_link(s.root.join("localpasswd")).unwrap(),
                        std::fs::read_link(s.root.join("passwdlink")).unwrap()
                    )
                }),
                Box::new(|s| {
                    assert_eq!(
                        inode_in_root(&s.root, "localpasswd"),
                        inode_in_root(&s.root, "brk-etc/passwd")
                    )
                }),
            ]),
        ),
        // A host file's 0400 must survive a hard link to a symlink that points at it.
        case(
            "HardlinkSymlinkChmod",
            |s| {
                let (target, outside) = (s.host("perm400"), s.host("also-exists-outside-root"));
                Tar::new()
                    .symlink(&outside, &target)
                    .link("sketchylink", &outside)
                    .bytes()
            },
            Expect::Contained(Box::new(|s| {
                assert!(lstat(&s.root.join("sketchylink")).file_type().is_symlink());
            })),
        ),
    ]
}

// One test per case, each run in both whiteout modes (remove mode only where marked).
breakout_tests! {
    containerd_cases;
    symlink_absolute => "SymlinkAbsolute",
    symlink_up_and_out => "SymlinkUpAndOut",
    symlink_multiple_absolute => "SymlinkMultipleAbsolute",
    symlink_multiple_relative => "SymlinkMultipleRelative",
    symlink_empty_file => "SymlinkEmptyFile",
    hardlink_relative => "HardlinkRelative",
    hardlink_down_and_out => "HardlinkDownAndOut",
    hardlink_absolute => "HardlinkAbsolute",
    hardlink_relative_long => "HardlinkRelativeLong",
    hardlink_relative_up_and_out => "HardlinkRelativeUpAndOut",
    hardlink_direct_relative => "HardlinkDirectRelative",
    hardlink_direct_absolute => "HardlinkDirectAbsolute",
    symlink_parent_directory => "SymlinkParentDirectory",
    symlink_empty_filename => "SymlinkEmptyFilename",
    symlink_parent_relative => "SymlinkParentRelative",
    symlink_slash_ended => "SymlinkSlashEnded",
    symlink_override_directory => "SymlinkOverrideDirectory",
    symlink_override_directory_relative => "SymlinkOverrideDirectoryRelative",
    directory_override_symlink => "DirectoryOverrideSymlink",
    directory_override_symlink_and_hardlink => "DirectoryOverrideSymlinkAndHardlink",
    whiteout_root_parent => "WhiteoutRootParent",
    whiteout_parent => "WhiteoutParent",
    whiteout_root => "WhiteoutRoot",
    whiteout_current_directory => "WhiteoutCurrentDirectory",
    whiteout_empty_name => "WhiteoutEmptyName",
    whiteout_symlink => "WhiteoutSymlink",
    whiteout_symlink_path => "WhiteoutSymlinkPath",
    whiteout_directory_name => "WhiteoutDirectoryName",
    whiteout_dead_symlink_parent => "WhiteoutDeadSymlinkParent",
    whiteout_relative_path => "WhiteoutRelativePath",
    hardlink_symlink_before_create_target => "HardlinkSymlinkBeforeCreateTarget",
    hardlink_symlink_relative => "HardlinkSymlinkRelative",
    hardlink_symlink_absolute => "HardlinkSymlinkAbsolute",
    hardlink_symlink_chmod => "HardlinkSymlinkChmod",
}

/// In overlay mode a whiteout through a symlinked parent lands inside the root too.
#[test]
fn overlay_whiteout_through_symlink_stays_inside() {
    let s = Sandbox::new();
    etc_passwd(&s, b"all users");
    symlink("/brk-etc", &s.root.join("localetc"));
    let host = s.host_state();
    let layer = Tar::new().file("localetc/.wh.passwd", b"", 0o644).bytes();
    s.apply(&layer, WhiteoutMode::Overlay).unwrap();
    assert_same_tree(&host, &s.host_state());
    let md = lstat(&s.root.join("brk-etc/passwd"));
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &md.file_type()
    ));
    assert!(lstat(&s.root.join("localetc")).file_type().is_symlink());
}
