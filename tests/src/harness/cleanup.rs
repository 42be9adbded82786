//! Leaves the machine as a test found it: kills the processes a daemon left behind (shims and the
//! containers under them), detaches mounts under the daemon's temp dir, then removes the dir.
//!
//! Processes are chosen by pid from /proc, never by name: a process is ours if its command line
//! names our temp dir (shims get `-address <tempdir>/...sock`), or it descends from one that does.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Where containerd 1.6's runc shim keeps runc state, one dir per namespace.
const RUNC_ROOT: &str = "/run/containerd/runc";

/// Parent and state letter of every live process, from /proc/<pid>/stat.
fn process_table() -> HashMap<i32, (i32, char)> {
    let mut table = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return table;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name is parenthesised and may contain spaces; fields follow the last ')'.
        let Some(tail) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = tail.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        table.insert(pid, (ppid, state));
    }
    table
}

fn cmdline_mentions(pid: i32, needle: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .any(|arg| String::from_utf8_lossy(arg).contains(needle))
        })
        .unwrap_or(false)
}

/// Pids whose command line mentions a path inside `dir`, plus all their descendants; never this process or
/// its ancestors.
pub fn processes_under(dir: &Path) -> BTreeSet<i32> {
    // The trailing slash keeps /tmp/berth-ab from matching /tmp/berth-abc.
    let needle = format!("{}/", dir.to_string_lossy().trim_end_matches('/'));
    let table = process_table();
    let me = std::process::id() as i32;
    let mut ancestors = BTreeSet::new();
    let mut cur = me;
    while cur > 1 && ancestors.insert(cur) {
        cur = table.get(&cur).map(|(ppid, _)| *ppid).unwrap_or(0);
    }

    let mut found: BTreeSet<i32> = table
        .keys()
        .copied()
        .filter(|pid| !ancestors.contains(pid) && cmdline_mentions(*pid, &needle))
        .collect();
    // Descendants: containers run under their shim, with nothing of ours in their command line.
    loop {
        let more: Vec<i32> = table
            .iter()
            .filter(|(pid, (ppid, _))| found.contains(ppid) && !found.contains(pid))
            .map(|(pid, _)| *pid)
            .filter(|pid| !ancestors.contains(pid))
            .collect();
        if more.is_empty() {
            break;
        }
        found.extend(more);
    }
    found
}

/// SIGKILLs `pids` and waits (up to 5 s) until each is gone or a zombie.
pub fn kill_all(pids: &BTreeSet<i32>) {
    for pid in pids {
        // ESRCH only means it already exited.
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let table = process_table();
        let alive = pids.iter().any(
            |pid| matches!(table.get(pid), Some((_, state)) if *state != 'Z' && *state != 'X'),
        );
        if !alive {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Undoes the octal escapes (`\040` for a space...) of /proc/self/mountinfo.
fn unescape_mount_path(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let code = bytes[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(u8::try_from(code).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points at or below `dir`, deepest (latest mounted) first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.reverse();
    found
}

/// Detaches every mount under `dir`; true when none is left.
pub fn unmount_under(dir: &Path) -> bool {
    for _ in 0..3 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return true;
        }
        for mount in mounts {
            if let Err(err) = nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH) {
                eprintln!("berth-tests: unmount {}: {err}", mount.display());
            }
        }
    }
    mounts_under(dir).is_empty()
}

/// Cgroup paths (relative to each hierarchy's root) that `pid` is in.
fn cgroups_of(pid: i32) -> BTreeSet<String> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .map(str::to_string)
        .collect()
}

/// `(namespace, id)` from a containerd shim command line (`-namespace NS -id ID`).
fn shim_container(pid: i32) -> Option<(String, String)> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    Some((value("-namespace")?, value("-id")?))
}

/// A single path component that is safe to join under a system dir.
fn plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

/// Removes the cgroups killed processes were in, and their parents while empty. rmdir only
/// succeeds on an empty cgroup, so a cgroup anything else still uses stays.
fn remove_cgroups(paths: &BTreeSet<String>) {
    let hierarchies = cgroup_mounts();
    for path in paths {
        let mut rel = Path::new(path.trim_start_matches('/'));
        // Zombies still hold their cgroup for a moment after SIGKILL; parents need no patience.
        let mut attempts = 50;
        while !rel.as_os_str().is_empty() {
            let exists = |rel: &Path| hierarchies.iter().any(|h| h.join(rel).is_dir());
            for _ in 0..attempts {
                for hierarchy in &hierarchies {
                    let _ = std::fs::remove_dir(hierarchy.join(rel));
                }
                if !exists(rel) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if exists(rel) {
                break;
            }
            rel = rel.parent().unwrap_or(Path::new(""));
            attempts = 1;
        }
    }
}

/// Kills what runs from `dir`, detaches its mounts and deletes it, unless `BERTH_KEEP_TEMP` is set.
/// A dir that still has mounts is left in place: deleting through a mount could reach host files.
///
/// What the killed processes kept outside `dir` goes too: their cgroups (not the ones this
/// process is in) and, for containerd shims, runc's state dir for their container.
pub fn clean_dir(dir: &Path) {
    let strays = processes_under(dir);
    if !strays.is_empty() {
        let own = cgroups_of(std::process::id() as i32);
        let cgroups: BTreeSet<String> = strays
            .iter()
            .flat_map(|pid| cgroups_of(*pid))
            .filter(|path| !own.contains(path) && path != "/")
            .collect();
        let containers: Vec<(String, String)> = strays
            .iter()
            .filter_map(|pid| shim_container(*pid))
            .collect();
        kill_all(&strays);
        remove_cgroups(&cgroups);
        for (namespace, id) in containers {
            if plain_name(&namespace) && plain_name(&id) {
                let state = Path::new(RUNC_ROOT).join(&namespace).join(&id);
                if state.join("state.json").exists() {
                    let _ = std::fs::remove_dir_all(&state);
                }
            }
        }
    }
    if !unmount_under(dir) {
        eprintln!(
            "berth-tests: mounts remain under {}, leaving it",
            dir.display()
        );
        return;
    }
    remove_overlay_aliases(dir);
    if std::env::var_os("BERTH_KEEP_TEMP").is_some() {
        eprintln!("berth-tests: keeping {}", dir.display());
        return;
    }
    if let Err(err) = std::fs::remove_dir_all(dir) {
        eprintln!("berth-tests: remove {}: {err}", dir.display());
    }
}

/// The overlay snapshotter's short aliases (`/run/berth-l/<name>` -> `<root>/snapshots/...`)
/// that point into `dir`: a daemon killed with SIGKILL leaves its alias behind.
fn remove_overlay_aliases(dir: &Path) {
    let Ok(entries) = std::fs::read_dir("/run/berth-l") else {
        return;
    };
    for e in entries.flatten() {
        if std::fs::read_link(e.path()).is_ok_and(|target| target.starts_with(dir)) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Mount points of the cgroup hierarchies (v1 controllers and v2), from /proc/self/mountinfo.
fn cgroup_mounts() -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split(' ').next()?;
            let point = left.split(' ').nth(4)?;
            (fstype == "cgroup" || fstype == "cgroup2")
                .then(|| PathBuf::from(unescape_mount_path(point)))
        })
        .collect()
}

/// Removes what containerd's runc shim keeps per namespace outside its own dirs: the parent
/// cgroup `/<namespace>` in every hierarchy and `/run/containerd/runc/<namespace>`. Only empty
/// dirs go (rmdir), so anything another daemon still uses in the same namespace stays.
pub fn remove_namespace_leftovers(namespace: &str) {
    if !plain_name(namespace) {
        return;
    }
    for hierarchy in cgroup_mounts() {
        let dir = hierarchy.join(namespace);
        if dir.is_dir() {
            let _ = std::fs::remove_dir(&dir);
        }
    }
    let _ = std::fs::remove_dir(Path::new(RUNC_ROOT).join(namespace));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape_mount_path(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mount_path(r"/tmp/plain"), "/tmp/plain");
        assert_eq!(unescape_mount_path(r"/x\134y"), r"/x\y");
    }
}
