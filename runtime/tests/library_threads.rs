//! The library API called from a multithreaded process, the shim's situation: `create` and `exec` go
//! through the runtime helper (a fresh single-threaded runtime process), everything else runs in the
//! calling process while other threads keep allocating. Each scenario runs a few times to shake out
//! races. Needs root; skipped otherwise.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use berth_runtime::{Container, ContainerStatus, ErrorKind, ExecOptions, ProcessIo};
use common::library::{
    assert_gone, assert_no_runtime_zombies, assert_sealed_exe, become_subreaper, exit_code,
    options, parent_of, pipe, read_all, Busy,
};
use common::{unique_id, Bundle, Runtime, BIN};
use nix::sys::signal::Signal;

#[test]
fn create_start_wait_delete_with_io_from_threads() {
    require_root!();
    become_subreaper();
    let _busy = Busy::start(4);
    let b = Bundle::new(&["sh", "-c", "echo out; echo err >&2; cat <&3; exit 3"]);
    let rt = Runtime::new();
    for i in 0..5 {
        let id = unique_id(&format!("lib-cycle{i}"));
        let (out, out_w) = pipe();
        let (err, err_w) = pipe();
        let (data_r, data_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        std::fs::File::from(data_w)
            .write_all(b"through fd 3\n")
            .expect("fill the data pipe");
        let mut opts = options(&rt, &b, &id);
        opts.io = ProcessIo {
            stdout: Some(out_w),
            stderr: Some(err_w),
            extra: vec![Arc::new(data_r)],
            ..Default::default()
        };
        let mut c = berth_runtime::container::create(&opts).expect("create");
        drop(opts);
        assert_eq!(c.status(), ContainerStatus::Created);
        assert_sealed_exe(c.pid());
        assert_eq!(
            parent_of(c.pid()),
            std::process::id() as i32,
            "init is the caller's child"
        );
        assert_no_runtime_zombies();
        c.start().expect("start");
        assert_eq!(exit_code(c.pid()), 3);
        assert_eq!(read_all(out), "out\nthrough fd 3\n");
        assert_eq!(read_all(err), "err\n");
        let c = Container::load(rt.root.path(), &id).expect("load");
        assert_eq!(c.status(), ContainerStatus::Stopped);
        c.delete(false).expect("delete");
        assert_gone(&rt, &b, &id);
    }
}

#[test]
fn exec_console_kill_and_delete_from_threads() {
    require_root!();
    become_subreaper();
    let _busy = Busy::start(4);
    let b = Bundle::new(&["sleep", "300"]);
    let rt = Runtime::new();
    for round in 0..3 {
        let id = unique_id(&format!("lib-exec{round}"));
        let mut c = berth_runtime::container::create(&options(&rt, &b, &id)).expect("create");
        c.start().expect("start");
        assert_eq!(c.status(), ContainerStatus::Running);
        let base = c
            .state
            .config
            .process()
            .clone()
            .expect("the bundle has a process");

        // Plain exec with stdout and a preserved descriptor.
        let (out, out_w) = pipe();
        let (data_r, data_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        std::fs::File::from(data_w)
            .write_all(b"exec fd\n")
            .expect("fill the data pipe");
        let mut p = base.clone();
        p.set_args(Some(vec![
            "sh".into(),
            "-c".into(),
            "hostname; cat <&3".into(),
        ]));
        let opts = ExecOptions {
            io: ProcessIo {
                stdout: Some(out_w),
                extra: vec![Arc::new(data_r)],
                ..Default::default()
            },
            helper_binary: Some(PathBuf::from(BIN)),
            ..Default::default()
        };
        let pid = c.exec(&p, &opts).expect("exec");
        drop(opts);
        assert_eq!(exit_code(pid.as_raw()), 0);
        assert_eq!(read_all(out), "berth\nexec fd\n");

        // A terminal through a console socket.
        let sock = rt.root.path().join(format!("console{round}.sock"));
        let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind console socket");
        let receiver = std::thread::spawn(move || common::receive_master(listener));
        let mut p = base.clone();
        p.set_terminal(Some(true));
        p.set_args(Some(vec![
            "sh".into(),
            "-c".into(),
            "[ -t 0 ] && [ -t 1 ] && echo on-a-tty; sleep 1".into(),
        ]));
        let opts = ExecOptions {
            console_socket: Some(sock),
            helper_binary: Some(PathBuf::from(BIN)),
            ..Default::default()
        };
        let pid = c.exec(&p, &opts).expect("exec with a terminal");
        let seen = common::read_until(receiver.join().expect("receiver"), "on-a-tty");
        assert!(seen.contains("on-a-tty"), "{seen:?}");
        assert_eq!(exit_code(pid.as_raw()), 0);

        // A failing exec is the helper's error, kind and message intact.
        let mut p = base.clone();
        p.set_args(Some(vec!["no-such-program".into()]));
        let opts = ExecOptions {
            helper_binary: Some(PathBuf::from(BIN)),
            ..Default::default()
        };
        let e = c.exec(&p, &opts).expect_err("missing program");
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
        assert!(
            e.to_string()
                .contains("\"no-such-program\": executable file not found in $PATH"),
            "{e}"
        );

        c.kill(Signal::SIGKILL, false).expect("kill");
        assert_eq!(exit_code(c.pid()), 128 + Signal::SIGKILL as i32);
        Container::load(rt.root.path(), &id)
            .expect("load")
            .delete(false)
            .expect("delete");
        assert_gone(&rt, &b, &id);
    }
}

#[test]
fn failed_create_reports_like_the_cli_and_leaves_nothing() {
    require_root!();
    become_subreaper();
    let _busy = Busy::start(4);
    let b = Bundle::new(&["no-such-program"]);
    let rt = Runtime::new();
    let cli_id = unique_id("lib-fail-cli");
    let cli = rt.fails(&["create", "-b", b.path().to_str().expect("utf-8"), &cli_id]);
    for i in 0..3 {
        let id = unique_id(&format!("lib-fail{i}"));
        let e = berth_runtime::container::create(&options(&rt, &b, &id))
            .expect_err("create of a missing program");
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
        assert_eq!(
            cli.trim(),
            format!("berth-runtime: {e}"),
            "same message as the CLI"
        );
        assert_gone(&rt, &b, &id);
        // The init, killed by the helper, was reaped by the library, the helper too.
        assert_no_runtime_zombies();
    }

    // An existing id comes back as the same variant the in-process path returns.
    let id = unique_id("lib-dup");
    let ok = Bundle::new(&["true"]);
    let c = berth_runtime::container::create(&options(&rt, &ok, &id)).expect("create");
    let e = berth_runtime::container::create(&options(&rt, &ok, &id)).expect_err("duplicate");
    assert!(
        matches!(&e, berth_runtime::Error::AlreadyExists(x) if *x == id),
        "{e:?}"
    );
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    let pid = c.pid();
    c.delete(true).expect("delete a created container");
    assert_eq!(exit_code(pid), 128 + Signal::SIGKILL as i32);
    assert_gone(&rt, &ok, &id);
}

#[test]
fn user_namespace_init_is_the_callers_child() {
    require_root!();
    become_subreaper();
    let _busy = Busy::start(2);
    let b = Bundle::new(&["sh", "-c", "exit 5"]);
    b.map_root_in_user_namespace();
    let rt = Runtime::new();
    let id = unique_id("lib-userns");
    let mut c = berth_runtime::container::create(&options(&rt, &b, &id)).expect("create");
    assert_eq!(
        parent_of(c.pid()),
        std::process::id() as i32,
        "init forked by stage 1 is the caller's child"
    );
    assert_no_runtime_zombies();
    c.start().expect("start");
    assert_eq!(exit_code(c.pid()), 5);
    c.delete(false).expect("delete");
    assert_gone(&rt, &b, &id);
}
