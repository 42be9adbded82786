//! Classic BPF for seccomp: instruction encoding and 64-bit argument comparisons built from 32-bit
//! halves (seccomp's BPF machine has a 32-bit accumulator).

pub use libc::sock_filter as Insn;

const BPF_LD: u16 = 0x00;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_ALU: u16 = 0x04;
const BPF_AND: u16 = 0x50;
const BPF_JMP: u16 = 0x05;
const BPF_JEQ: u16 = 0x10;
const BPF_JGT: u16 = 0x20;
const BPF_JGE: u16 = 0x30;
const BPF_K: u16 = 0x00;
const BPF_RET: u16 = 0x06;

/// Offsets into `struct seccomp_data`.
pub const OFF_NR: u32 = 0;
pub const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

pub fn load(offset: u32) -> Insn {
    Insn {
        code: BPF_LD | BPF_W | BPF_ABS,
        jt: 0,
        jf: 0,
        k: offset,
    }
}

pub fn ret(k: u32) -> Insn {
    Insn {
        code: BPF_RET | BPF_K,
        jt: 0,
        jf: 0,
        k,
    }
}

fn and(k: u32) -> Insn {
    Insn {
        code: BPF_ALU | BPF_AND | BPF_K,
        jt: 0,
        jf: 0,
        k,
    }
}

/// A jump target inside a rule: a fixed number of instructions ahead, or "this rule does not match"
/// (resolved to the start of the next rule when the block is assembled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Ahead(u8),
    Fail,
}

/// An instruction whose jump targets are still symbolic.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    Plain(Insn),
    Jump {
        code: u16,
        k: u32,
        jt: Target,
        jf: Target,
    },
}

fn jump(cmp: u16, k: u32, jt: Target, jf: Target) -> Op {
    Op::Jump {
        code: BPF_JMP | cmp | BPF_K,
        k,
        jt,
        jf,
    }
}

pub fn jeq(k: u32, jt: Target, jf: Target) -> Op {
    jump(BPF_JEQ, k, jt, jf)
}

pub fn jge(k: u32, jt: Target, jf: Target) -> Op {
    jump(BPF_JGE, k, jt, jf)
}

/// Low and high word offsets of syscall argument `index` (little-endian layout).
fn arg_words(index: u32) -> (u32, u32) {
    let lo = OFF_ARGS + 8 * index;
    if cfg!(target_endian = "little") {
        (lo, lo + 4)
    } else {
        (lo + 4, lo)
    }
}

/// The comparison operators of the runtime spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `(arg & mask) == value`.
    MaskedEq {
        mask: u64,
    },
}

/// Instructions that fall through when `arg[index] <cmp> value` holds and jump to `Fail` otherwise.
pub fn compare(index: u32, cmp: Cmp, value: u64) -> Vec<Op> {
    use Target::{Ahead, Fail};
    let (lo_off, hi_off) = arg_words(index);
    let (hi, lo) = ((value >> 32) as u32, value as u32);
    let p = Op::Plain;
    match cmp {
        Cmp::Eq => vec![
            p(load(hi_off)),
            jeq(hi, Ahead(0), Fail),
            p(load(lo_off)),
            jeq(lo, Ahead(0), Fail),
        ],
        Cmp::Ne => vec![
            p(load(hi_off)),
            jeq(hi, Ahead(0), Ahead(2)),
            p(load(lo_off)),
            jeq(lo, Fail, Ahead(0)),
        ],
        Cmp::MaskedEq { mask } => vec![
            p(load(hi_off)),
            p(and((mask >> 32) as u32)),
            jeq(hi, Ahead(0), Fail),
            p(load(lo_off)),
            p(and(mask as u32)),
            jeq(lo, Ahead(0), Fail),
        ],
        Cmp::Gt | Cmp::Ge => vec![
            p(load(hi_off)),
            jump(BPF_JGT, hi, Ahead(3), Ahead(0)),
            jeq(hi, Ahead(0), Fail),
            p(load(lo_off)),
            jump(
                if cmp == Cmp::Gt { BPF_JGT } else { BPF_JGE },
                lo,
                Ahead(0),
                Fail,
            ),
        ],
        Cmp::Lt | Cmp::Le => vec![
            p(load(hi_off)),
            jump(BPF_JGT, hi, Fail, Ahead(0)),
            jeq(hi, Ahead(0), Ahead(2)),
            p(load(lo_off)),
            jump(
                if cmp == Cmp::Lt { BPF_JGE } else { BPF_JGT },
                lo,
                Fail,
                Ahead(0),
            ),
        ],
    }
}

/// Resolves `Fail` to the instruction just past the block, whose length is fixed now.
pub fn assemble(ops: &[Op]) -> Option<Vec<Insn>> {
    let len = ops.len();
    ops.iter()
        .enumerate()
        .map(|(i, op)| match *op {
            Op::Plain(insn) => Some(insn),
            Op::Jump { code, k, jt, jf } => {
                let resolve = |t: Target| match t {
                    Target::Ahead(n) => Some(n),
                    Target::Fail => u8::try_from(len - i - 1).ok(),
                };
                Some(Insn {
                    code,
                    jt: resolve(jt)?,
                    jf: resolve(jf)?,
                    k,
                })
            }
        })
        .collect()
}

/// Runs a program on a `seccomp_data`, for tests: returns the action value.
#[cfg(test)]
pub fn interpret(prog: &[Insn], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
    let word = |off: u32| -> u32 {
        match off {
            OFF_NR => nr,
            OFF_ARCH => arch,
            o => {
                let i = ((o - OFF_ARGS) / 8) as usize;
                if (o - OFF_ARGS) % 8 == 0 {
                    args[i] as u32
                } else {
                    (args[i] >> 32) as u32
                }
            }
        }
    };
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let insn = prog[pc];
        match insn.code {
            c if c == BPF_LD | BPF_W | BPF_ABS => acc = word(insn.k),
            c if c == BPF_ALU | BPF_AND | BPF_K => acc &= insn.k,
            c if c == BPF_RET | BPF_K => return insn.k,
            c => {
                let taken = match c & 0xf0 {
                    BPF_JEQ => acc == insn.k,
                    BPF_JGT => acc > insn.k,
                    BPF_JGE => acc >= insn.k,
                    other => panic!("unexpected jump {other:#x}"),
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
        }
        pc += 1;
    }
}
