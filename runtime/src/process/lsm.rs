//! Linux security module labels: `process.apparmorProfile`, `process.selinuxLabel` and
//! `linux.mountLabel`, applied when the host runs the module.
//!
//! What happens when it does not follows runc, with the error moved to validation so nothing is left
//! behind: runc refuses an SELinux label up front ("selinux label is specified in config, but selinux is
//! disabled or not supported") and fails in init writing an AppArmor profile the kernel cannot take
//! ("apparmor failed to apply profile: write /proc/self/attr/exec: invalid argument"), and its mount
//! label makes the mounts fail. One deliberate difference: the AppArmor profile `unconfined` is accepted
//! on a host without AppArmor, since unconfined is exactly what the process gets there.

use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Process;

use crate::error::{Error, Result};

/// The profile name that asks for no confinement.
const UNCONFINED: &str = "unconfined";
const SELINUX_MAGIC: u32 = 0xf97c_ff8c;

/// AppArmor is enabled the way runc decides it: its securityfs directory exists and the module says
/// `Y`.
pub fn apparmor_enabled() -> bool {
    Path::new("/sys/kernel/security/apparmor").exists()
        && std::fs::read("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|b| b.first() == Some(&b'Y'))
}

/// SELinux is enabled when selinuxfs is mounted at its usual place.
pub fn selinux_enabled() -> bool {
    nix::sys::statfs::statfs("/sys/fs/selinux")
        .is_ok_and(|s| s.filesystem_type().0 as u32 == SELINUX_MAGIC)
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// Refuses labels the host cannot apply, before anything is created.
pub fn check(process: &Process, mount_label: Option<&str>) -> Result<()> {
    check_with(process, mount_label, apparmor_enabled(), selinux_enabled())
}

fn check_with(
    process: &Process,
    mount_label: Option<&str>,
    apparmor: bool,
    selinux: bool,
) -> Result<()> {
    if let Some(p) = non_empty(process.apparmor_profile()) {
        if !apparmor && p != UNCONFINED {
            return Err(Error::Unsupported(format!(
                "apparmor profile {p:?} is specified in config, but apparmor is disabled or not supported"
            )));
        }
        if p.contains('\n') {
            return Err(Error::invalid(format!(
                "apparmor profile {p:?} is not a valid name"
            )));
        }
    }
    if let Some(l) = non_empty(process.selinux_label()) {
        if !selinux {
            return Err(Error::Unsupported(format!(
                "selinux label {l:?} is specified in config, but selinux is disabled or not supported"
            )));
        }
    }
    if let Some(l) = mount_label.filter(|l| !l.is_empty()) {
        if !selinux {
            return Err(Error::Unsupported(format!(
                "linux.mountLabel {l:?} is specified in config, but selinux is disabled or not supported"
            )));
        }
        // The label goes in double quotes (MCS categories contain commas); a quote inside would end it.
        if l.trim_matches('"').contains('"') {
            return Err(Error::invalid(format!(
                "linux.mountLabel {l:?} is not a valid label"
            )));
        }
    }
    Ok(())
}

/// The calling thread's attribute file, through /proc/thread-self (attributes are per task) with the
/// module's own directory preferred over the shared legacy file.
fn attr_path(module: Option<&str>, attr: &str) -> PathBuf {
    let base = if Path::new("/proc/thread-self").exists() {
        PathBuf::from("/proc/thread-self/attr")
    } else {
        PathBuf::from("/proc/self/attr")
    };
    match module {
        Some(m) if base.join(m).join(attr).exists() => base.join(m).join(attr),
        _ => base.join(attr),
    }
}

/// Writes one value to a process attribute file in a single write, as the LSMs require.
pub fn write_attr(path: &Path, value: &str, what: &str) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| Error::Init(format!("{what}: write {}: {e}", path.display())))
}

/// Sets the labels the next exec takes on: the AppArmor profile (what libapparmor's aa_change_onexec
/// does) and the SELinux exec context. Runs in the container process before it drops privileges;
/// [`check`] has made sure the host can take them.
pub fn apply(process: &Process) -> Result<()> {
    if let Some(p) = non_empty(process.apparmor_profile()) {
        if apparmor_enabled() {
            write_attr(
                &attr_path(Some("apparmor"), "exec"),
                &format!("exec {p}"),
                &format!("apply apparmor profile {p:?}"),
            )?;
        }
    }
    if let Some(l) = non_empty(process.selinux_label()) {
        write_attr(
            &attr_path(None, "exec"),
            l,
            &format!("set selinux process label {l:?}"),
        )?;
    }
    Ok(())
}

/// Mount data with the SELinux `context=` option for `linux.mountLabel`, as runc adds it to tmpfs,
/// devpts and the other filesystems it creates (not proc, sysfs or mqueue, which have their own labels).
pub fn mount_data(data: &str, typ: &str, label: Option<&str>) -> String {
    match label.filter(|l| !l.is_empty()) {
        Some(l) if !matches!(typ, "proc" | "sysfs" | "mqueue") => {
            let ctx = format!("context=\"{}\"", l.trim_matches('"'));
            if data.is_empty() {
                ctx
            } else {
                format!("{data},{ctx}")
            }
        }
        _ => data.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(json: serde_json::Value) -> Process {
        let mut base =
            serde_json::json!({"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}});
        base.as_object_mut()
            .expect("object")
            .extend(json.as_object().expect("object").clone());
        serde_json::from_value(base).expect("process")
    }

    #[test]
    fn labels_without_the_module_are_refused_like_runc() {
        let aa = process(serde_json::json!({"apparmorProfile": "berth-test"}));
        let err = check_with(&aa, None, false, false).expect_err("no apparmor");
        assert!(err.to_string().contains("apparmor is disabled"), "{err}");
        check_with(&aa, None, true, false).expect("apparmor enabled");
        let unconfined = process(serde_json::json!({"apparmorProfile": "unconfined"}));
        check_with(&unconfined, None, false, false).expect("unconfined needs nothing");
        let se = process(serde_json::json!({"selinuxLabel": "system_u:system_r:container_t:s0"}));
        let err = check_with(&se, None, false, false).expect_err("no selinux");
        assert!(err.to_string().contains("selinux is disabled"), "{err}");
        check_with(&se, None, false, true).expect("selinux enabled");
        let plain = process(serde_json::json!({}));
        let err = check_with(
            &plain,
            Some("system_u:object_r:container_file_t:s0"),
            false,
            false,
        )
        .expect_err("mount label without selinux");
        assert!(err.to_string().contains("mountLabel"), "{err}");
        check_with(
            &plain,
            Some("system_u:object_r:container_file_t:s0"),
            false,
            true,
        )
        .expect("mount label with selinux");
        check_with(&plain, None, false, false).expect("no labels");
    }

    #[test]
    fn mount_label_becomes_a_context_option() {
        let l = Some("system_u:object_r:container_file_t:s0:c1,c2");
        assert_eq!(
            mount_data("mode=755,size=65536k", "tmpfs", l),
            "mode=755,size=65536k,context=\"system_u:object_r:container_file_t:s0:c1,c2\""
        );
        assert_eq!(
            mount_data("", "devpts", Some("a:b:c:s0")),
            "context=\"a:b:c:s0\""
        );
        assert_eq!(mount_data("", "proc", l), "");
        assert_eq!(mount_data("mode=755", "tmpfs", None), "mode=755");
    }

    #[test]
    fn attribute_writes_go_to_the_file_in_one_piece() {
        let tmp = tempfile::NamedTempFile::new().expect("tempfile");
        write_attr(tmp.path(), "exec berth-test", "apply apparmor profile").expect("write");
        assert_eq!(
            std::fs::read_to_string(tmp.path()).expect("read"),
            "exec berth-test"
        );
    }

    #[test]
    fn the_kernel_refusal_names_the_label() {
        if apparmor_enabled() || selinux_enabled() {
            eprintln!("skipped: the host runs an LSM that may accept the write");
            return;
        }
        let path = attr_path(Some("apparmor"), "exec");
        if !path.exists() {
            eprintln!("skipped: no {}", path.display());
            return;
        }
        let err = write_attr(
            &path,
            "exec berth-test",
            "apply apparmor profile \"berth-test\"",
        )
        .expect_err("no LSM takes the write");
        let text = err.to_string();
        assert!(
            text.contains("berth-test") && text.contains("attr/exec"),
            "{text}"
        );
    }
}
