//! A forged request from a second netlink connector socket, on the real
//! kernel's connector: the daemon must drop it (only the kernel, port 0,
//! may speak dm-log-userspace) and keep serving.
//!
//! The host kernel has the netlink connector even without device-mapper,
//! so this runs the real binary on netlink, as root. Where the connector or
//! root is missing it says so and checks nothing.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]

use dmulogd::wire::RequestSpec;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn connector_socket() -> Option<OwnedFd> {
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 11) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: zeroed sockaddr_nl is valid.
    let mut a: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    a.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: a is a valid sockaddr_nl of the given size.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&a as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    (r == 0).then_some(fd)
}

fn send_to(fd: &OwnedFd, port: u32, groups: u32, dgram: &[u8]) -> bool {
    // SAFETY: zeroed sockaddr_nl is valid.
    let mut a: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    a.nl_family = libc::AF_NETLINK as u16;
    a.nl_pid = port;
    a.nl_groups = groups;
    // SAFETY: dgram and a are valid for the sizes given.
    let r = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            dgram.as_ptr().cast(),
            dgram.len(),
            0,
            (&a as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    r == dgram.len() as isize
}

/// Kills the daemon if the test fails half-way: an orphan would keep the
/// test runner's output pipe open.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn requests_from_another_netlink_socket_are_dropped() {
    // SAFETY: geteuid has no preconditions.
    // A security check that cannot run must not pass: make test runs as
    // root on a kernel with the netlink connector (CONFIG_CONNECTOR=y).
    assert_eq!(unsafe { libc::geteuid() }, 0, "netlink_sender needs root (the connector group needs CAP_NET_ADMIN)");
    let forger = connector_socket().expect("no netlink connector in this kernel: the forged-sender check cannot run");
    let run = std::env::temp_dir().join(format!("dmulogd-nl-{}", std::process::id()));
    let mut child = Reap(
        Command::new(env!("CARGO_BIN_EXE_dmulogd"))
            .args(["--no-pidfile", "--run-dir"])
            .arg(&run)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dmulogd"),
    );
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_for = |what: &str| -> String {
        loop {
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(l) if l.contains(what) => return l,
                Ok(_) => {}
                Err(_) => panic!("dmulogd did not log {what:?} within 20 s"),
            }
        }
    };
    wait_for("serving dm-log-userspace requests");
    // A kernel-shaped CTR, sent point to point to the daemon's port (its
    // pid: the first netlink socket of a process gets it) and multicast
    // to the connector group it listens on.
    let ctr = RequestSpec { luid: 1, uuid: b"FORGED", version: 3, seq: 1, request_type: 1, payload: b"8192 core 1024" }
        .encode();
    assert!(send_to(&forger, child.0.id(), 0, &ctr), "unicast to the daemon: {}", std::io::Error::last_os_error());
    let multicast = send_to(&forger, 0, 1 << (7 - 1), &ctr);
    let drop_line = wait_for("dropped: datagram from netlink port");
    assert!(drop_line.contains("not the kernel"), "{drop_line}");
    // SIGUSR1: the summary says what was served.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGUSR1) };
    let summary = wait_for("requests,");
    let expect_dropped = if multicast { "2 datagrams dropped" } else { "1 datagrams dropped" };
    assert!(summary.contains("0 logs; 0 requests"), "a forged request was served: {summary}");
    assert!(summary.contains(expect_dropped), "{summary} (multicast sent: {multicast})");
    // SAFETY: as above.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    assert!(child.0.wait().unwrap().success(), "no live logs: SIGTERM exits 0");
    let _ = std::fs::remove_dir_all(&run);
}
