//! Mount options as the spec writes them (`"ro"`, `"nosuid"`, `"rbind"`, `"size=65536k"`), split into the
//! flags for mount(2), the propagation changes to apply afterwards, and the filesystem data string.

use nix::mount::MsFlags;

#[derive(Debug, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: MsFlags,
    /// Flags the options explicitly clear (`rw`, `suid`...), kept so a bind remount can drop them.
    pub cleared: MsFlags,
    pub propagation: Vec<MsFlags>,
    pub data: Vec<String>,
    pub bind: bool,
    pub recursive: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            data: Vec::new(),
            bind: false,
            recursive: false,
        }
    }
}

pub fn parse(options: &[String]) -> MountOptions {
    let mut out = MountOptions::default();
    for opt in options {
        let set = |f: MsFlags| (f, false);
        let clear = |f: MsFlags| (f, true);
        let flag = match opt.as_str() {
            "ro" => set(MsFlags::MS_RDONLY),
            "rw" => clear(MsFlags::MS_RDONLY),
            "nosuid" => set(MsFlags::MS_NOSUID),
            "suid" => clear(MsFlags::MS_NOSUID),
            "nodev" => set(MsFlags::MS_NODEV),
            "dev" => clear(MsFlags::MS_NODEV),
            "noexec" => set(MsFlags::MS_NOEXEC),
            "exec" => clear(MsFlags::MS_NOEXEC),
            "sync" => set(MsFlags::MS_SYNCHRONOUS),
            "async" => clear(MsFlags::MS_SYNCHRONOUS),
            "dirsync" => set(MsFlags::MS_DIRSYNC),
            "remount" => set(MsFlags::MS_REMOUNT),
            "mand" => set(MsFlags::MS_MANDLOCK),
            "nomand" => clear(MsFlags::MS_MANDLOCK),
            "atime" => clear(MsFlags::MS_NOATIME),
            "noatime" => set(MsFlags::MS_NOATIME),
            "diratime" => clear(MsFlags::MS_NODIRATIME),
            "nodiratime" => set(MsFlags::MS_NODIRATIME),
            "relatime" => set(MsFlags::MS_RELATIME),
            "norelatime" => clear(MsFlags::MS_RELATIME),
            "strictatime" => set(MsFlags::MS_STRICTATIME),
            "nostrictatime" => clear(MsFlags::MS_STRICTATIME),
            "bind" => {
                out.bind = true;
                continue;
            }
            "rbind" => {
                out.bind = true;
                out.recursive = true;
                continue;
            }
            other => {
                if let Some(p) = propagation(other) {
                    out.propagation.push(p);
                } else if other != "defaults" && other != "tmpcopyup" {
                    out.data.push(other.to_string());
                }
                continue;
            }
        };
        match flag {
            (f, false) => {
                out.flags |= f;
                out.cleared &= !f;
            }
            (f, true) => {
                out.flags &= !f;
                out.cleared |= f;
            }
        }
    }
    out
}

/// Propagation keywords as used by mounts and by `linux.rootfsPropagation`.
pub fn propagation(opt: &str) -> Option<MsFlags> {
    let rec = MsFlags::MS_REC;
    Some(match opt {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | rec,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | rec,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | rec,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | rec,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_data_and_propagation_are_split() {
        let o = parse(&strings(&[
            "nosuid",
            "strictatime",
            "mode=755",
            "size=65536k",
            "rprivate",
        ]));
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, strings(&["mode=755", "size=65536k"]));
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        assert!(!o.bind);
    }

    #[test]
    fn later_options_win() {
        let o = parse(&strings(&["ro", "rw", "rbind"]));
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(o.cleared.contains(MsFlags::MS_RDONLY));
        assert!(o.bind && o.recursive);
    }
}
