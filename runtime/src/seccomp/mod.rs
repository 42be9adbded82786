//! seccomp: the spec's `linux.seccomp` compiled to a classic BPF filter in Rust, and installed as late as
//! possible before exec.
//!
//! Policy (documented, like runc's): syscall names this architecture does not know are skipped, since
//! profiles list syscalls of other architectures and newer kernels; a foreign architecture (the x32 ABI,
//! 32-bit compat calls) gets the default action. SCMP_ACT_NOTIFY and listener paths are refused.

pub mod bpf;

use std::str::FromStr;

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use crate::error::{Error, Result};
use bpf::{Cmp, Insn, Op, Target};

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;
/// x32 syscalls share x86_64's audit arch and are told apart by this bit in the number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

/// A compiled filter, ready to install.
#[derive(Debug, Clone)]
pub struct Filter {
    pub program: Vec<Insn>,
    pub flags: libc::c_ulong,
    /// Names skipped because this architecture has no such syscall.
    pub unknown: Vec<String>,
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<u32> {
    let data = errno.unwrap_or(libc::EPERM as u32) & 0xffff;
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActErrno => RET_ERRNO | data,
        LinuxSeccompAction::ScmpActTrace => RET_TRACE | data,
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        LinuxSeccompAction::ScmpActAllow => RET_ALLOW,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(Error::Unsupported(
                "seccomp action SCMP_ACT_NOTIFY is not supported".into(),
            ))
        }
    })
}

fn cmp(op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> (Cmp, u64) {
    match op {
        LinuxSeccompOperator::ScmpCmpEq => (Cmp::Eq, value),
        LinuxSeccompOperator::ScmpCmpNe => (Cmp::Ne, value),
        LinuxSeccompOperator::ScmpCmpLt => (Cmp::Lt, value),
        LinuxSeccompOperator::ScmpCmpLe => (Cmp::Le, value),
        LinuxSeccompOperator::ScmpCmpGt => (Cmp::Gt, value),
        LinuxSeccompOperator::ScmpCmpGe => (Cmp::Ge, value),
        // The spec's masked-equal: `value` is the mask, `valueTwo` the expected result.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            (Cmp::MaskedEq { mask: value }, value_two.unwrap_or(0))
        }
    }
}

pub fn compile(s: &LinuxSeccomp) -> Result<Filter> {
    if s.listener_path().is_some() {
        return Err(Error::Unsupported(
            "seccomp listenerPath is not supported".into(),
        ));
    }
    let default = action(s.default_action(), s.default_errno_ret())?;
    let mut program = vec![
        bpf::load(bpf::OFF_ARCH),
        Insn {
            code: 0x15,
            jt: 1,
            jf: 0,
            k: AUDIT_ARCH,
        },
        bpf::ret(default),
        bpf::load(bpf::OFF_NR),
    ];
    if cfg!(target_arch = "x86_64") {
        program.extend(
            bpf::assemble(&[bpf::jge(
                X32_SYSCALL_BIT,
                Target::Ahead(0),
                Target::Ahead(1),
            )])
            .expect("short jump"),
        );
        program.push(bpf::ret(default));
    }
    let mut unknown = Vec::new();
    for rule in s.syscalls().iter().flatten() {
        let ret = action(rule.action(), rule.errno_ret())?;
        let args = rule.args().clone().unwrap_or_default();
        if ret == default && args.is_empty() {
            continue;
        }
        for name in rule.names() {
            let Ok(nr) = syscalls::Sysno::from_str(name) else {
                unknown.push(name.clone());
                continue;
            };
            let mut ops: Vec<Op> = vec![
                Op::Plain(bpf::load(bpf::OFF_NR)),
                bpf::jeq(nr.id() as u32, Target::Ahead(0), Target::Fail),
            ];
            for a in &args {
                if a.index() > 5 {
                    return Err(Error::invalid(format!(
                        "seccomp rule for {name}: argument index {} is out of range",
                        a.index()
                    )));
                }
                let (c, v) = cmp(a.op(), a.value(), a.value_two());
                ops.extend(bpf::compare(a.index() as u32, c, v));
            }
            ops.push(Op::Plain(bpf::ret(ret)));
            program.extend(bpf::assemble(&ops).ok_or_else(|| {
                Error::invalid(format!("seccomp rule for {name} has too many conditions"))
            })?);
        }
    }
    program.push(bpf::ret(default));
    if program.len() > usize::from(u16::MAX) {
        return Err(Error::invalid(
            "seccomp profile compiles to too large a filter",
        ));
    }
    let flags = s.flags().iter().flatten().fold(0, |acc, f| {
        acc | match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 1,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => 2,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => 4,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        }
    });
    Ok(Filter {
        program,
        flags,
        unknown,
    })
}

/// Installs the filter on the calling thread. Without no_new_privs this needs CAP_SYS_ADMIN, so the
/// caller installs it before dropping capabilities in that case.
pub fn install(f: &Filter) -> Result<()> {
    let prog = libc::sock_fprog {
        len: f.program.len() as u16,
        filter: f.program.as_ptr() as *mut Insn,
    };
    // SAFETY: seccomp(SECCOMP_SET_MODE_FILTER) reads `prog`, which points at `f.program`, alive for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            1,
            f.flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(Error::Init(format!(
            "install seccomp filter: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> Filter {
        compile(&serde_json::from_str(json).expect("profile")).expect("compile")
    }

    fn nr(name: &str) -> u32 {
        syscalls::Sysno::from_str(name).expect("known").id() as u32
    }

    #[test]
    fn actions_and_arguments_select_correctly() {
        let f = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["mkdir","not_a_syscall"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
                {"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
                {"names":["kill"],"action":"SCMP_ACT_KILL_PROCESS","args":[{"index":1,"value":4294967296,"op":"SCMP_CMP_GE"}]},
                {"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":2,"value":255,"valueTwo":1,"op":"SCMP_CMP_MASKED_EQ"}]}
            ]}"#,
        );
        assert_eq!(f.unknown, vec!["not_a_syscall".to_string()]);
        let run =
            |name: &str, args: [u64; 6]| bpf::interpret(&f.program, nr(name), AUDIT_ARCH, args);
        assert_eq!(run("mkdir", [0; 6]), RET_ERRNO | 13);
        assert_eq!(run("getpid", [0; 6]), RET_ALLOW);
        assert_eq!(run("personality", [8, 0, 0, 0, 0, 0]), RET_ERRNO | 1);
        assert_eq!(
            run("personality", [8 | (1 << 32), 0, 0, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(run("kill", [1, 1 << 32, 0, 0, 0, 0]), RET_KILL_PROCESS);
        assert_eq!(run("kill", [1, 9, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run("read", [0, 0, 0x101, 0, 0, 0]), RET_ERRNO | 1);
        assert_eq!(run("read", [0, 0, 0x102, 0, 0, 0]), RET_ALLOW);
        // A foreign architecture gets the default action.
        assert_eq!(
            bpf::interpret(&f.program, nr("mkdir"), 0x4000_0003, [0; 6]),
            RET_ALLOW
        );
    }

    #[test]
    fn ordering_comparisons_cover_both_words() {
        for (op, value, arg, want) in [
            ("SCMP_CMP_LT", 1u64 << 32, 5u64, true),
            ("SCMP_CMP_LT", 1 << 32, 1 << 32, false),
            ("SCMP_CMP_LE", 1 << 32, 1 << 32, true),
            ("SCMP_CMP_GT", 7, 1 << 32, true),
            ("SCMP_CMP_GT", 7, 7, false),
            ("SCMP_CMP_NE", 7, 7, false),
            ("SCMP_CMP_NE", 7, 7 | (1 << 40), true),
        ] {
            let f = profile(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["dup"],"action":"SCMP_ACT_ERRNO",
                    "args":[{{"index":0,"value":{value},"op":"{op}"}}]}}]}}"#
            ));
            let got = bpf::interpret(&f.program, nr("dup"), AUDIT_ARCH, [arg, 0, 0, 0, 0, 0]);
            assert_eq!(got == RET_ERRNO | 1, want, "{op} {value} on {arg}");
        }
    }

    #[test]
    fn notify_is_refused() {
        let s: LinuxSeccomp =
            serde_json::from_str(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#).expect("profile");
        assert!(compile(&s).is_err());
    }
}
