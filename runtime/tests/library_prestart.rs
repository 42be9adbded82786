//! `helper::prestart`: a helper started ahead of each create or exec, from a multithreaded caller. In a
//! test binary of its own, so the idle helper it looks for is the only one among this process's
//! children. Needs root; skipped otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_runtime::{Container, ExecOptions, ProcessIo};
use common::library::{
    assert_gone, become_subreaper, exit_code, nice_of, options, own_children, pipe, read_all, Busy,
};
use common::{unique_id, Bundle, Runtime, BIN};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// This process's children that run the helper mode.
fn helpers() -> Vec<i32> {
    own_children()
        .into_iter()
        .filter(|c| c.state != 'Z')
        .filter(|c| {
            let cmdline = std::fs::read(format!("/proc/{}/cmdline", c.pid)).unwrap_or_default();
            cmdline.split(|b| *b == 0).nth(1) == Some(b"__berth-runtime-helper")
        })
        .map(|c| c.pid)
        .collect()
}

/// Waits until exactly one idle helper is there and returns it.
fn the_spare(not: Option<i32>) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = helpers();
        if let [one] = found[..] {
            if Some(one) != not {
                // The library checks a new spare in just after spawning it, from a thread of its
                // own: on a busy machine the next call could otherwise come first and, finding no
                // spare yet, start a helper of its own.
                std::thread::sleep(Duration::from_millis(200));
                return one;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no single spare helper: {found:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn run_once(rt: &Runtime, b: &Bundle, helper: &Path, id: &str) {
    let (out, out_w) = pipe();
    let mut opts = options(rt, b, id);
    opts.helper_binary = Some(helper.to_path_buf());
    opts.io = ProcessIo {
        stdout: Some(out_w),
        ..Default::default()
    };
    let mut c = berth_runtime::container::create(&opts).expect("create");
    drop(opts);
    c.start().expect("start");
    assert_eq!(exit_code(c.pid()), 0);
    assert_eq!(read_all(out), "hello\n");
    Container::load(rt.root.path(), id)
        .expect("load")
        .delete(false)
        .expect("delete");
    assert_gone(rt, b, id);
}

#[test]
fn prestarted_helpers_serve_create_and_exec_and_survive_a_killed_spare() {
    require_root!();
    become_subreaper();
    let _busy = Busy::start(4);
    let rt = Runtime::new();
    let b = Bundle::new(&["echo", "hello"]);
    // Its own path: the library keeps the prestart setting per helper binary path.
    let link = rt.root.path().with_extension("helper");
    std::os::unix::fs::symlink(BIN, &link).expect("symlink the runtime");
    berth_runtime::helper::prestart(Some(&link)).expect("prestart");
    let mut spare = the_spare(None);

    for i in 0..3 {
        run_once(&rt, &b, &link, &unique_id(&format!("warm{i}")));
        // The spare served the call and a new one waits, started at the lowest priority so that it
        // does not compete with the container just created.
        spare = the_spare(Some(spare));
        assert_eq!(
            nice_of(spare),
            19,
            "a spare started after a call idles at nice 19"
        );
    }

    // A spare that died while it waited is replaced by a fresh helper for the call.
    kill(Pid::from_raw(spare), Signal::SIGKILL).expect("kill the spare");
    run_once(&rt, &b, &link, &unique_id("after-kill"));
    spare = the_spare(Some(spare));

    // exec goes through the spare as well.
    let sleeper = Bundle::new(&["sleep", "300"]);
    let id = unique_id("warm-exec");
    let mut opts = options(&rt, &sleeper, &id);
    opts.helper_binary = Some(link.clone());
    // Time for the idle spare to make the network namespace it hands to the next init.
    std::thread::sleep(Duration::from_millis(100));
    let mut c = berth_runtime::container::create(&opts).expect("create");
    c.start().expect("start");
    // That namespace is new (not the caller's, nor the previous container's) and empty but for lo.
    let net = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/net")).expect("ns link");
    assert_ne!(net(&c.pid().to_string()), net("self"));
    let dev = std::fs::read_to_string(format!("/proc/{}/net/dev", c.pid())).expect("net/dev");
    let ifaces: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(ifaces, ["lo"], "{dev}");
    // The spare took the caller's priority back before forking the init.
    assert_eq!(nice_of(c.pid()), nice_of(std::process::id() as i32));
    spare = the_spare(Some(spare));
    let (out, out_w) = pipe();
    let mut p = c.state.config.process().clone().expect("process");
    p.set_args(Some(vec!["echo".into(), "from exec".into()]));
    let eopts = ExecOptions {
        io: ProcessIo {
            stdout: Some(out_w),
            ..Default::default()
        },
        helper_binary: Some(PathBuf::from(&link)),
        ..Default::default()
    };
    let pid = c.exec(&p, &eopts).expect("exec");
    drop(eopts);
    assert_eq!(exit_code(pid.as_raw()), 0);
    assert_eq!(read_all(out), "from exec\n");
    the_spare(Some(spare));
    let init = c.pid();
    c.delete(true).expect("delete");
    assert_eq!(exit_code(init), 128 + Signal::SIGKILL as i32);
    assert_gone(&rt, &sleeper, &id);
    std::fs::remove_file(&link).expect("remove the symlink");
}
