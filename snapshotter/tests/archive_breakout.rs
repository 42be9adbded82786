//! containerd's `TestBreakouts` table (pkg/archive/tar_test.go) plus the Rust tar crate CVEs,
//! run against `archive::apply`. Each case applies a hostile layer into `root/` inside a
//! sandbox that also holds "host" files; whatever the outcome, nothing outside `root/` may
//! change. The layer then either fails with InvalidArgument or is contained the way containerd
//! contains it (links pointing out are created but resolve inside the root).
//!
//! containerd's cases use `/etc`; here that directory is `brk-etc`, so that a regression can
//! only create new, recognisable paths on the host (the canaries below), never touch its
//! real `/etc`.

mod archive_util;

use archive_util::*;
use berth_snapshotter::archive::WhiteoutMode;
use berth_snapshotter::ErrorKind;
use tar::EntryType;

type Check = Box<dyn Fn(&Sandbox)>;

enum Expect {
    /// Refused with InvalidArgument.
    Invalid,
    /// Applied; the check looks at the result inside the root.
    Contained(Check),
}

struct Case {
    name: &'static str,
    /// Makes the tree the layer lands on.
    pre: fn(&Sandbox),
    tar: Box<dyn Fn(&Sandbox) -> Vec<u8>>,
    expect: Expect,
    /// Whiteout cases whose outcome differs in overlay mode run in remove mode only.
    remove_only: bool,
}

/// Paths on the real host that an escape through an absolute link (`/brk-etc`, `/dne`) or a
/// relative climb out of the sandbox would create.
const CANARIES: &[&str] = &[
    "/brk-etc",
    "/dne",
    "/dummy",
    "/brk-made",
    "/victim.txt",
    "/exploit",
];

fn nothing(_: &Sandbox) {}

/// `brk-etc/passwd` in the root, with `content`.
fn etc_passwd(s: &Sandbox, content: &[u8]) {
    std::fs::create_dir_all(s.root.join("brk-etc")).unwrap();
    write(&s.root.join("brk-etc/passwd"), content, 0o644);
}

fn symlink(target: &str, at: &std::path::Path) {
    std::os::unix::fs::symlink(target, at).unwrap();
}

fn unbroken() -> Expect {
    Expect::Contained(Box::new(|s| {
        assert_eq!(
            std::fs::read(s.root.join("brk-etc/unbroken")).unwrap(),
            b"unbroken"
        );
    }))
}

fn same(a: &'static str, b: &'static str) -> Expect {
    Expect::Contained(Box::new(move |s| {
        assert_eq!(
            inode_in_root(&s.root, a),
            inode_in_root(&s.root, b),
            "{a} and {b}"
        );
    }))
}

fn content(p: &'static str, want: &'static [u8]) -> Check {
    Box::new(move |s| assert_eq!(std::fs::read(s.root.join(p)).unwrap(), want, "{p}"))
}

fn absent(p: &'static str) -> Check {
    Box::new(move |s| assert!(!exists(&s.root.join(p)), "{p} exists"))
}

fn all(checks: Vec<Check>) -> Expect {
    Expect::Contained(Box::new(move |s| checks.iter().for_each(|c| c(s))))
}

fn case(name: &'static str, tar: impl Fn(&Sandbox) -> Vec<u8> + 'static, expect: Expect) -> Case {
    Case {
        name,
        pre: nothing,
        tar: Box::new(tar),
        expect,
        remove_only: false,
    }
}

fn with_pre(mut c: Case, pre: fn(&Sandbox)) -> Case {
    c.pre = pre;
    c
}

fn remove_only(mut c: Case) -> Case {
    c.remove_only = true;
    c
}

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

fn run(c: &Case, mode: WhiteoutMode) {
    let canaries_before: Vec<bool> = CANARIES
        .iter()
        .map(|p| exists(std::path::Path::new(p)))
        .collect();
    let s = Sandbox::new();
    (c.pre)(&s);
    let host = s.host_state();
    let layer = (c.tar)(&s);
    let res = s.apply(&layer, mode);
    assert_same_tree(&host, &s.host_state());
    for (p, before) in CANARIES.iter().zip(canaries_before) {
        assert_eq!(
            exists(std::path::Path::new(p)),
            before,
            "{}: {p} appeared on the host",
            c.name
        );
    }
    match (&c.expect, res) {
        (Expect::Invalid, Err(e)) => {
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{}: {e}", c.name)
        }
        (Expect::Invalid, Ok(_)) => {
            panic!("{} ({mode:?}): applied, expected InvalidArgument", c.name)
        }
        (Expect::Contained(check), Ok(_)) => check(&s),
        (Expect::Contained(_), Err(e)) => panic!("{} ({mode:?}): {e}", c.name),
    }
}

#[test]
fn containerd_breakouts_remove_mode() {
    for c in containerd_cases() {
        run(&c, WhiteoutMode::Remove);
    }
}

#[test]
fn containerd_breakouts_overlay_mode() {
    for c in containerd_cases().iter().filter(|c| !c.remove_only) {
        run(c, WhiteoutMode::Overlay);
    }
}

#[test]
fn tar_crate_cves_and_other_hostile_names() {
    for c in extra_cases() {
        run(&c, WhiteoutMode::Remove);
        run(&c, WhiteoutMode::Overlay);
    }
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
