use serde_json::json;

/// What this build supports, in the shape of runc's `features` output (runtime-spec features.md).
pub fn run() -> anyhow::Result<()> {
    let caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    let features = json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": berth_runtime::state::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": [
            "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "mand", "noatime",
            "nodev", "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime", "nosuid",
            "private", "rbind", "relatime", "remount", "ro", "rprivate", "rshared", "rslave",
            "runbindable", "rw", "shared", "slave", "strictatime", "suid", "sync", "unbindable"
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": [if cfg!(target_arch = "aarch64") { "SCMP_ARCH_AARCH64" } else { "SCMP_ARCH_X86_64" }],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                    "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
            },
            // Supported by this build; whether the host runs the module is checked per container.
            "apparmor": {"enabled": true},
            "selinux": {"enabled": true}
        },
        "annotations": {"io.github.berth.runtime.version": env!("CARGO_PKG_VERSION")}
    });
    println!("{}", serde_json::to_string_pretty(&features)?);
    Ok(())
}
