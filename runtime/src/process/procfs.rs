//! Reading a process's liveness from /proc, to tell the container's init from a recycled pid.

/// State letter and start time (in clock ticks since boot) from `/proc/<pid>/stat`.
pub fn stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; the fields after its last ')' are fixed.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state come fields 4..=21; the start time is field 22 of the whole line.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// The process exists, is not a zombie, and is the one that started at `start_time`.
pub fn is_alive(pid: i32, start_time: u64) -> bool {
    pid > 0 && matches!(stat(pid), Some((s, t)) if t == start_time && s != 'Z' && s != 'X')
}

/// The number of threads of the calling process.
pub fn own_threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(1)
}

/// fork copies only the calling thread; a child of a multithreaded process could deadlock on a lock
/// another thread held (the allocator's, for one). Refuse instead of risking it.
pub fn require_single_thread(what: &str) -> crate::error::Result<()> {
    match own_threads() {
        1 => Ok(()),
        n => Err(crate::error::Error::Unsupported(format!(
            "{what} forks and must be called from a single-threaded process (this one has {n} threads)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive() {
        let me = std::process::id() as i32;
        let (state, start) = stat(me).expect("own stat");
        assert!(state == 'R' || state == 'S', "{state}");
        assert!(is_alive(me, start));
        assert!(!is_alive(me, start + 1));
        assert!(!is_alive(0, 0));
    }

    #[test]
    fn threads_are_counted() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        assert!(own_threads() >= 2);
        assert!(require_single_thread("create").is_err());
        tx.send(()).expect("wake thread");
        t.join().expect("join").expect("recv");
    }
}
