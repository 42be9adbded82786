//! The breakout harness: a hostile layer is applied into a sandbox's `root/`, the sandbox's
//! "host" files and a few real host paths are checked untouched, then the outcome is checked.

use berth_snapshotter::archive::WhiteoutMode;
use berth_snapshotter::ErrorKind;

use super::{assert_same_tree, exists, inode_in_root, write, Sandbox};

pub type Check = Box<dyn Fn(&Sandbox)>;
pub type MakeTar = Box<dyn Fn(&Sandbox) -> Vec<u8>>;

pub enum Expect {
    /// Refused with InvalidArgument.
    Invalid,
    /// Applied; the check looks at the result inside the root.
    Contained(Check),
}

pub struct Case {
    pub name: &'static str,
    /// Makes the tree the layer lands on.
    pub pre: fn(&Sandbox),
    pub tar: MakeTar,
    pub expect: Expect,
    /// Whiteout cases whose outcome differs in overlay mode run in remove mode only.
    pub remove_only: bool,
}

/// Paths on the real host that an escape through an absolute link (`/brk-etc`, `/dne`) or a
/// relative climb out of the sandbox would create.
pub const CANARIES: &[&str] = &[
    "/brk-etc",
    "/dne",
    "/dummy",
    "/brk-made",
    "/victim.txt",
    "/exploit",
];

pub fn nothing(_: &Sandbox) {}

/// `brk-etc/passwd` in the root, with `content`.
pub fn etc_passwd(s: &Sandbox, content: &[u8]) {
    std::fs::create_dir_all(s.root.join("brk-etc")).unwrap();
    write(&s.root.join("brk-etc/passwd"), content, 0o644);
}

pub fn symlink(target: &str, at: &std::path::Path) {
    std::os::unix::fs::symlink(target, at).unwrap();
}

pub fn unbroken() -> Expect {
    Expect::Contained(Box::new(|s| {
        assert_eq!(
            std::fs::read(s.root.join("brk-etc/unbroken")).unwrap(),
            b"unbroken"
        );
    }))
}

pub fn same(a: &'static str, b: &'static str) -> Expect {
    Expect::Contained(Box::new(move |s| {
        assert_eq!(
            inode_in_root(&s.root, a),
            inode_in_root(&s.root, b),
            "{a} and {b}"
        );
    }))
}

pub fn content(p: &'static str, want: &'static [u8]) -> Check {
    Box::new(move |s| assert_eq!(std::fs::read(s.root.join(p)).unwrap(), want, "{p}"))
}

pub fn absent(p: &'static str) -> Check {
    Box::new(move |s| assert!(!exists(&s.root.join(p)), "{p} exists"))
}

pub fn all(checks: Vec<Check>) -> Expect {
    Expect::Contained(Box::new(move |s| checks.iter().for_each(|c| c(s))))
}

pub fn case(
    name: &'static str,
    tar: impl Fn(&Sandbox) -> Vec<u8> + 'static,
    expect: Expect,
) -> Case {
    Case {
        name,
        pre: nothing,
        tar: Box::new(tar),
        expect,
        remove_only: false,
    }
}

pub fn with_pre(mut c: Case, pre: fn(&Sandbox)) -> Case {
    c.pre = pre;
    c
}

pub fn remove_only(mut c: Case) -> Case {
    c.remove_only = true;
    c
}

pub fn run(c: &Case, mode: WhiteoutMode) {
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

/// Runs the case called `name` in remove mode and, unless it is marked remove-only, in overlay
/// mode.
pub fn run_named(cases: &[Case], name: &str) {
    let c = cases
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no breakout case {name}"));
    run(c, WhiteoutMode::Remove);
    if !c.remove_only {
        run(c, WhiteoutMode::Overlay);
    }
}

/// Asserts that `tested` names every case of the table exactly once.
pub fn check_named(cases: &[Case], tested: &[&str]) {
    let mut all: Vec<&str> = cases.iter().map(|c| c.name).collect();
    let mut tested = tested.to_vec();
    all.sort_unstable();
    tested.sort_unstable();
    assert_eq!(all, tested, "every breakout case has its own test");
}

/// `breakout_tests! { table_fn; test_name => "CaseName", ... }` makes one `#[test]` per case
/// of the table `table_fn()` returns, and one that checks none is left out.
#[allow(unused_macros)] // only the breakout test crates use it
macro_rules! breakout_tests {
    ($cases:ident; $($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                $crate::archive_util::breakout::run_named(&$cases(), $name);
            }
        )*
        #[test]
        fn every_case_has_a_test() {
            $crate::archive_util::breakout::check_named(&$cases(), &[$($name),*]);
        }
    };
}
#[allow(unused_imports)]
pub(crate) use breakout_tests;
