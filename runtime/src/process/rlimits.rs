//! Resource limits for the container process.

use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

use crate::error::{Error, Result};

fn resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// Sets each limit; raising a hard limit needs CAP_SYS_RESOURCE, and its absence is reported, not
/// skipped.
pub fn apply(limits: &[PosixRlimit]) -> Result<()> {
    for l in limits {
        let lim = libc::rlimit {
            rlim_cur: l.soft(),
            rlim_max: l.hard(),
        };
        // SAFETY: setrlimit reads the struct we pass by reference; the resource id comes from the table.
        if unsafe { libc::setrlimit(resource(l.typ()), &lim) } != 0 {
            let err = std::io::Error::last_os_error();
            return Err(Error::Init(format!(
                "set rlimit {:?} to {}/{}: {err}",
                l.typ(),
                l.soft(),
                l.hard()
            )));
        }
    }
    Ok(())
}
