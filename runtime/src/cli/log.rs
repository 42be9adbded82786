//! Error and debug output: always to stderr, and to the --log file in text or the json lines containerd's
//! runc shim parses (`{"level":"error","msg":...,"time":...}`).

use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

struct Logger {
    file: Option<Mutex<std::fs::File>>,
    json: bool,
    debug: bool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

pub fn init(path: Option<&Path>, format: &str, debug: bool) {
    let file = path.and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| eprintln!("berth-runtime: open log {}: {e}", p.display()))
            .ok()
            .map(Mutex::new)
    });
    let _ = LOGGER.set(Logger {
        file,
        json: format == "json",
        debug,
    });
}

fn write(level: &str, msg: &str) {
    let Some(l) = LOGGER.get() else { return };
    let Some(file) = &l.file else { return };
    let time = berth_runtime::util::rfc3339_now();
    let line = if l.json {
        serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string()
    } else {
        format!("time=\"{time}\" level={level} msg={msg:?}")
    };
    if let Ok(mut f) = file.lock() {
        let _ = writeln!(f, "{line}");
    }
}

pub fn error(msg: &str) {
    eprintln!("berth-runtime: {msg}");
    write("error", msg);
}

pub fn debug(msg: &str) {
    if LOGGER.get().is_some_and(|l| l.debug) {
        eprintln!("berth-runtime: {msg}");
        write("debug", msg);
    }
}
