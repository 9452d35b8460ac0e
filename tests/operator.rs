//! What an operator meets first, on the host's real netlink connector (as
//! root; the host kernel has the connector even without device-mapper):
//! one server per machine whatever the options, no second listener on the
//! connector group, and `--daemon` that reports only what happened and
//! lets go of its caller. One test function: every step needs the
//! machine's single instance lock.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]

mod common;

use common::{Daemon, Kernel, TempDir, RESUME};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn dmulogd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dmulogd"));
    c.env("RUST_LOG", "info").stdin(Stdio::null());
    c
}

/// Runs to completion, output read to its end, within a deadline: a
/// daemon that keeps its caller's pipes open is a failure, not a stall.
fn run(mut c: Command, secs: u64) -> Output {
    let child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn dmulogd");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("dmulogd (or a daemon holding its output) did not finish within {secs} s"))
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A foreground server that is up once its "serving" line is out.
struct Server(Child);

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = dmulogd().args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let mut err = child.stderr.take().unwrap();
        let mut seen = String::new();
        let mut buf = [0u8; 512];
        while !seen.contains("serving dm-log-userspace requests") {
            let n = err.read(&mut buf).unwrap();
            assert!(n > 0, "dmulogd exited before serving: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        // Keep draining in the background so the server never blocks on it.
        std::thread::spawn(move || while err.read(&mut buf).is_ok_and(|n| n > 0) {});
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn wait_gone(pid: i32) {
    let start = Instant::now();
    while alive(pid) && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(start.elapsed() < Duration::from_secs(20), "pid {pid} did not exit");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A second listener on the dm connector group, as cmirrord is.
fn listener() -> OwnedFd {
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 11) };
    assert!(fd >= 0, "no netlink connector in this kernel");
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: all-zero is a valid sockaddr_nl.
    let mut a: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    a.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: `a` is a valid sockaddr_nl of the size given.
    let r = unsafe {
        libc::bind(fd.as_raw_fd(), (&a as *const libc::sockaddr_nl).cast(), std::mem::size_of_val(&a) as u32)
    };
    assert_eq!(r, 0);
    let group: libc::c_int = 7;
    // SAFETY: `group` is a live c_int of the size given.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_NETLINK,
            libc::NETLINK_ADD_MEMBERSHIP,
            (&group as *const libc::c_int).cast(),
            4,
        )
    };
    assert_eq!(r, 0, "joining group 7");
    fd
}

fn pid_in(path: &Path) -> i32 {
    std::fs::read_to_string(path).unwrap().trim().parse().unwrap()
}

#[test]
fn one_server_and_a_daemon_that_reports_what_happened() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "these checks need root (the connector group needs CAP_NET_ADMIN)");
    let run_dir = TempDir::new("operator");
    let rd = run_dir.path().to_str().unwrap();

    // --no-pidfile skips the file, never the instance lock; the refusal
    // names the running server.
    {
        let first = Server::start(&["--no-pidfile", "--run-dir", rd]);
        let mut c = dmulogd();
        c.args(["--no-pidfile", "--run-dir", rd]);
        let o = run(c, 20);
        assert_eq!(o.status.code(), Some(1), "a second server started: {}", stderr(&o));
        let want = format!("another dmulogd (pid {})", first.0.id());
        assert!(stderr(&o).contains(&want), "{:?} does not name the running server ({want})", stderr(&o));
    }

    // Another listener on the connector group (cmirrord): refused.
    {
        let _cmirrord = listener();
        let mut c = dmulogd();
        c.args(["--no-pidfile", "--run-dir", rd]);
        let o = run(c, 20);
        assert_eq!(o.status.code(), Some(1), "started beside another connector listener: {}", stderr(&o));
        assert!(stderr(&o).contains("already listens on the device-mapper connector group"), "{}", stderr(&o));
    }

    // A pid file that cannot be written: exit 1, and no daemon left behind.
    let mut c = dmulogd();
    c.args(["--daemon", "--pidfile", "/dev/full", "--run-dir", rd]);
    let o = run(c, 20);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(Path::new("/dev/full").exists(), "the pid file was removed");
    let probe = Server::start(&["--no-pidfile", "--run-dir", rd]);
    drop(probe);

    // `x=$(dmulogd --daemon 2>&1)`: returns as soon as the daemon serves,
    // with the caller's pipes closed; a relative pid file is made absolute
    // (the daemon moves to /) and removed at exit.
    let cwd = TempDir::new("operator-cwd");
    let mut c = dmulogd();
    c.args(["--daemon", "--pidfile", "rel.pid", "--run-dir", rd]).current_dir(cwd.path());
    let o = run(c, 20);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let pidfile = cwd.path().join("rel.pid");
    let pid = pid_in(&pidfile);
    assert!(alive(pid), "the daemon named in the pid file is not running");
    // SAFETY: signalling the daemon we started (no live logs: it exits).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_gone(pid);
    assert!(!pidfile.exists(), "the relative pid file was left behind");

    // `dmulogd status`: not running (3), the report (0), root only (1).
    let status = |args: &[&str], uid: Option<u32>| {
        let mut c = dmulogd();
        c.arg("status").args(args);
        if let Some(uid) = uid {
            use std::os::unix::process::CommandExt;
            c.uid(uid).gid(uid);
        }
        run(c, 20)
    };
    assert_eq!(status(&[], None).status.code(), Some(3), "no daemon: not running");
    let lock = cwd.path().join("status.pid");
    let mut d = Daemon::spawn_in(run_dir.path(), &["--pidfile", lock.to_str().unwrap()]);
    let core = Kernel::new("LVM-status-core", 0x10);
    let disk = Kernel::new("LVM-status-disk", 0x20);
    let f = cwd.log_file("log", 1024 + 4096);
    assert_eq!(core.ctr(&mut d, "65536 core 1024 nosync").error, 0);
    assert_eq!(disk.ctr(&mut d, &format!("65536 disk {} 1024", f.display())).error, 0);
    core.ok(&mut d, RESUME, &[]);
    assert_eq!(core.mark(&mut d, &[3, 4]).error, 0);
    let o = status(&[], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.contains(&format!("pid {}", d.pid())), "{text}");
    assert!(text.contains("LVM-status-core 0x10 core - A 64 64 2 resumed"), "{text}");
    assert!(text.contains(&format!("LVM-status-disk 0x20 disk {} A 64 0 - suspended", f.display())), "{text}");
    let o = status(&["--json"], None);
    let json = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(json.starts_with('{') && json.trim_end().ends_with('}'), "{json}");
    assert!(json.contains(r#""uuid":"LVM-status-core","luid":16,"type":"core","device":null,"health":"A","regions":64,"in_sync":64,"dirty":2,"resumed":true"#), "{json}");
    assert!(json.contains(r#""dirty":null"#), "an unloaded disk log's dirty count is unknown: {json}");
    let o = status(&[], Some(65534));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("root only"), "{}", stderr(&o));
    drop(d);
}
