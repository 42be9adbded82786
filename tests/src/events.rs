//! `ctr events` running in the background, its output collected for the test to wait on.
//!
//! ctr prints one line per envelope, `<date> <time> <zone> UTC <namespace> <topic> <json>`, and
//! only when it could decode the event's `Any`, which it does by looking the type URL up as a
//! bare message name: a decoded line proves the daemon sent containerd's type URLs.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{Ctr, CTR_BIN};

/// One line of `ctr events`.
#[derive(Debug, Clone)]
pub struct EventLine {
    pub namespace: String,
    pub topic: String,
    /// The decoded event, as ctr marshalled it.
    pub event: serde_json::Value,
    pub raw: String,
}

impl EventLine {
    pub fn parse(line: &str) -> Option<EventLine> {
        // date, time, offset, "UTC", namespace, topic, json (which may hold spaces)
        let fields: Vec<&str> = line.splitn(7, ' ').collect();
        let [_, _, _, _, namespace, topic, json] = fields.as_slice() else {
            return None;
        };
        Some(EventLine {
            namespace: namespace.to_string(),
            topic: topic.to_string(),
            event: serde_json::from_str(json).ok()?,
            raw: line.to_string(),
        })
    }
}

/// A `ctr events` process; killed (by its pid) and reaped on drop.
pub struct CtrEvents {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
}

fn collect(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("event output lock")
                .extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

impl CtrEvents {
    /// Starts `ctr events [filters...]` against `ctr`'s daemon.
    pub fn spawn(ctr: &Ctr, filters: &[&str]) -> CtrEvents {
        let mut child = Command::new(CTR_BIN)
            .arg("-a")
            .arg(&ctr.address)
            .arg("-n")
            .arg(&ctr.namespace)
            .arg("events")
            .args(filters)
            .env_remove("CONTAINERD_ADDRESS")
            .env_remove("CONTAINERD_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("spawn {CTR_BIN} events: {err}"));
        let out = collect(child.stdout.take().expect("stdout is piped"));
        let err = collect(child.stderr.take().expect("stderr is piped"));
        CtrEvents { child, out, err }
    }

    /// Every complete line printed so far.
    pub fn lines(&self) -> Vec<String> {
        let out = self.out.lock().expect("event output lock");
        let text = String::from_utf8_lossy(&out);
        let complete = text.rsplit_once('\n').map_or("", |(done, _)| done);
        complete.lines().map(str::to_string).collect()
    }

    /// Every decoded event so far.
    pub fn events(&self) -> Vec<EventLine> {
        self.lines()
            .iter()
            .filter_map(|l| EventLine::parse(l))
            .collect()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().expect("event error lock")).into_owned()
    }

    /// Waits (polling) until an event matches `pred`; panics with everything seen after `timeout`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&EventLine) -> bool) -> EventLine {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.events().into_iter().find(|e| pred(e)) {
                return e;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no matching event after {timeout:?}; stdout:\n{}\nstderr:\n{}",
                    self.lines().join("\n"),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the subscription is live: calls `poke(n)` (which should publish an event
    /// carrying `n`) until `seen(line, n)` is true for some printed event, so that events a test
    /// causes afterwards cannot be missed.
    pub fn wait_subscribed(
        &self,
        mut poke: impl FnMut(u32),
        seen: impl Fn(&EventLine, u32) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut n = 0;
        while Instant::now() < deadline {
            poke(n);
            let until = Instant::now() + Duration::from_millis(200);
            while Instant::now() < until {
                if self.events().iter().any(|e| (0..=n).any(|k| seen(e, k))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            n += 1;
        }
        panic!(
            "ctr events never showed a probe event; stdout:\n{}\nstderr:\n{}",
            self.lines().join("\n"),
            self.stderr()
        );
    }
}

impl Drop for CtrEvents {
    fn drop(&mut self) {
        // Child::kill signals this child's pid only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
