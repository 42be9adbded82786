//! cgroup v2 device control: an eBPF program of type CGROUP_DEVICE, generated from the spec's device
//! rules and attached to the container's cgroup (v2 has no devices.allow/deny files).
//!
//! Semantics follow the v1 files the rules were written for: the last rule that matches a request
//! decides, nothing matching means deny. So the rules are emitted in reverse, each returning on a match.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Context, Error, Result};

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const MOV_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const AND_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const RSH_K: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

/// A rule reduced to what the program compares: `None` is a wildcard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub kind: Option<i32>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: i32,
}

pub fn rule(d: &LinuxDeviceCgroup) -> Result<Rule> {
    let kind = match d.typ() {
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Some(DEV_CHAR),
        Some(LinuxDeviceType::B) => Some(DEV_BLOCK),
        Some(LinuxDeviceType::A) | None => None,
        Some(LinuxDeviceType::P) => {
            return Err(Error::invalid("device cgroup rule type \"p\" is not valid"))
        }
    };
    let mut access = 0;
    for c in d
        .access()
        .as_deref()
        .filter(|a| !a.is_empty())
        .unwrap_or("rwm")
        .chars()
    {
        access |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            other => {
                return Err(Error::invalid(format!(
                    "device cgroup access {other:?} is not one of r, w, m"
                )))
            }
        };
    }
    let num = |n: Option<i64>| n.filter(|n| *n >= 0).map(|n| n as u32);
    Ok(Rule {
        allow: d.allow(),
        kind,
        major: num(d.major()),
        minor: num(d.minor()),
        access,
    })
}

/// The default devices every container may use, allowed after the spec's rules (as for v1).
pub fn default_rules() -> Vec<Rule> {
    let c = |major, minor: Option<u32>| Rule {
        allow: true,
        kind: Some(DEV_CHAR),
        major: Some(major),
        minor,
        access: ACC_READ | ACC_WRITE | ACC_MKNOD,
    };
    vec![
        c(1, Some(3)),
        c(1, Some(5)),
        c(1, Some(7)),
        c(1, Some(8)),
        c(1, Some(9)),
        c(5, Some(0)),
        c(5, Some(1)),
        c(5, Some(2)),
        c(136, None),
        c(10, Some(200)),
    ]
}

/// The program: r3 = type, r4 = access, r5 = major, r6 = minor, then one block per rule.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(MOV_X, 3, 2, 0, 0),
        insn(AND_K, 3, 0, 0, 0xffff),
        insn(MOV_X, 4, 2, 0, 0),
        insn(RSH_K, 4, 0, 0, 16),
        insn(LDX_W, 5, 1, 4, 0),
        insn(LDX_W, 6, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        // Each check jumps past the rest of this block when it fails; `skip` is filled in once the
        // block's length is known.
        let mut block: Vec<(Insn, bool)> = Vec::new();
        if let Some(k) = r.kind {
            block.push((insn(JNE_K, 3, 0, 0, k), true));
        }
        let all = ACC_READ | ACC_WRITE | ACC_MKNOD;
        if r.access != all {
            // The request must be a subset of the rule's access: (access & !rule) == 0.
            block.push((insn(MOV_X, 7, 4, 0, 0), false));
            block.push((insn(AND_K, 7, 0, 0, !r.access & all), false));
            block.push((insn(JNE_K, 7, 0, 0, 0), true));
        }
        if let Some(m) = r.major {
            block.push((insn(JNE_K, 5, 0, 0, m as i32), true));
        }
        if let Some(m) = r.minor {
            block.push((insn(JNE_K, 6, 0, 0, m as i32), true));
        }
        block.push((insn(MOV_K, 0, 0, 0, i32::from(r.allow)), false));
        block.push((insn(EXIT, 0, 0, 0, 0), false));
        let len = block.len();
        let unconditional = !block.iter().any(|(_, is_check)| *is_check);
        for (i, (mut ins, is_check)) in block.into_iter().enumerate() {
            if is_check {
                ins.off = (len - i - 1) as i16;
            }
            p.push(ins);
        }
        // A rule matching everything ends the program: the verifier refuses unreachable code.
        if unconditional {
            return p;
        }
    }
    p.push(insn(MOV_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

fn bpf(cmd: libc::c_long, attr: &mut [u8]) -> std::io::Result<i64> {
    // SAFETY: bpf(2) reads `attr.len()` bytes of the attribute union from the buffer we own, and writes
    // results (a query's count) back into it; any pointers inside it point to buffers live for the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// The ids of the device programs attached to the cgroup directory itself (not inherited ones).
pub fn attached(dir: &Path) -> Result<Vec<u32>> {
    let cgroup = std::fs::File::open(dir).ctx(|| format!("open cgroup {}", dir.display()))?;
    let mut ids = vec![0u32; 64];
    loop {
        // BPF_PROG_QUERY: target_fd, attach_type, query_flags, attach_flags (out), prog_ids, prog_cnt.
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&(cgroup.as_raw_fd() as u32).to_ne_bytes());
        attr[4..8].copy_from_slice(&BPF_CGROUP_DEVICE.to_ne_bytes());
        attr[16..24].copy_from_slice(&(ids.as_mut_ptr() as u64).to_ne_bytes());
        attr[24..28].copy_from_slice(&(ids.len() as u32).to_ne_bytes());
        let result = bpf(BPF_PROG_QUERY, &mut attr);
        let count = u32::from_ne_bytes(attr[24..28].try_into().expect("4 bytes")) as usize;
        match result {
            Ok(_) => {
                ids.truncate(count);
                return Ok(ids);
            }
            // More programs than room: the kernel reported how many, ask again with enough.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && count > ids.len() => {
                ids = vec![0; count];
            }
            Err(e) => {
                return Err(e).ctx(|| format!("query device programs of cgroup {}", dir.display()))
            }
        }
    }
}

fn detach(cgroup: &std::fs::File, id: u32, dir: &Path) -> Result<()> {
    // BPF_PROG_GET_FD_BY_ID: prog_id.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&id.to_ne_bytes());
    let fd = match bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) {
        Ok(fd) => fd,
        // Detached and freed by someone else in the meantime: nothing left to do.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e).ctx(|| format!("open device program {id}")),
    };
    // SAFETY: the kernel just returned this program descriptor and nothing else owns it.
    let prog = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // BPF_PROG_DETACH: target_fd, attach_bpf_fd, attach_type.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&(cgroup.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog.as_raw_fd() as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&BPF_CGROUP_DEVICE.to_ne_bytes());
    match bpf(BPF_PROG_DETACH, &mut attr) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(e).ctx(|| {
            format!(
                "detach old device program {id} from cgroup {}",
                dir.display()
            )
        }),
    }
}

/// Loads the program for `rules` (plus the defaults) and attaches it to the cgroup directory in place of
/// any device program attached there before. Programs attached with ALLOW_MULTI all have to allow an
/// access, so an update that only added one could never grant anything new. The new program goes in
/// before the old ones come out: the cgroup is never without a filter.
pub fn attach(dir: &Path, rules: &[Rule]) -> Result<()> {
    let old = attached(dir)?;
    let prog = program(rules);
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 16 * 1024];
    // union bpf_attr for BPF_PROG_LOAD: prog_type, insn_cnt, insns, license, log_level, log_size, log_buf.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_CGROUP_DEVICE.to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(prog.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    attr[24..28].copy_from_slice(&1u32.to_ne_bytes());
    attr[28..32].copy_from_slice(&(log.len() as u32).to_ne_bytes());
    attr[32..40].copy_from_slice(&(log.as_mut_ptr() as u64).to_ne_bytes());
    let fd = bpf(BPF_PROG_LOAD, &mut attr).map_err(|e| {
        let verifier = String::from_utf8_lossy(&log);
        Error::Init(format!(
            "load device cgroup program: {e}: {}",
            verifier.trim_end_matches('\0').trim()
        ))
    })?;
    // SAFETY: the kernel just returned this program descriptor and nothing else owns it.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let cgroup = std::fs::File::open(dir).ctx(|| format!("open cgroup {}", dir.display()))?;
    // BPF_PROG_ATTACH: target_fd, attach_bpf_fd, attach_type, attach_flags.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&(cgroup.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog_fd.as_raw_fd() as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&BPF_CGROUP_DEVICE.to_ne_bytes());
    attr[12..16].copy_from_slice(&BPF_F_ALLOW_MULTI.to_ne_bytes());
    bpf(BPF_PROG_ATTACH, &mut attr)
        .ctx(|| format!("attach device program to cgroup {}", dir.display()))?;
    for id in old {
        detach(&cgroup, id, dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Evaluates the generated program on one request, as the kernel would.
    fn run(p: &[Insn], kind: i32, access: i32, major: u32, minor: u32) -> i64 {
        let mut r = [0i64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            match i.code {
                LDX_W => {
                    r[dst] = match i.off {
                        0 => (access << 16 | kind) as i64,
                        4 => major as i64,
                        _ => minor as i64,
                    }
                }
                MOV_X => r[dst] = r[src],
                MOV_K => r[dst] = i.imm as i64,
                AND_K => r[dst] &= i.imm as i64,
                RSH_K => r[dst] >>= i.imm,
                JNE_K => {
                    if r[dst] != i.imm as i64 {
                        pc += i.off as usize;
                    }
                }
                EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn last_matching_rule_decides() {
        let spec: Vec<LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":10,"minor":-1,"access":"r"},
                {"allow":false,"type":"c","major":10,"minor":229,"access":"rwm"}]"#,
        )
        .expect("rules");
        let mut rules: Vec<Rule> = spec.iter().map(|d| rule(d).expect("rule")).collect();
        rules.extend(default_rules());
        let p = program(&rules);
        assert_eq!(
            run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3),
            1,
            "/dev/null by default"
        );
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 10, 1), 1, "c 10:* r");
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 10, 1), 0, "write not granted");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 10, 229), 0, "later deny wins");
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 0), 0, "deny all");
    }
}
