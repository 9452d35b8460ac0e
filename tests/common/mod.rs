//! Test support: the real `dmulogd` binary on a socketpair, driven with the
//! exact datagrams the kernel sends, and a kernel-shaped client for one log.
#![allow(dead_code, clippy::cast_possible_truncation, clippy::cast_sign_loss)]

#[path = "../shared/tempdir.rs"]
mod tempdir;
#[path = "../shared/transport.rs"]
mod transport;

pub use tempdir::TempDir;
pub use transport::*;

use dmulogd::wire::{Reply, RequestSpec};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Child;
use std::time::Duration;

pub const ESRCH: i32 = -libc::ESRCH;
pub const EINVAL: i32 = -libc::EINVAL;
pub const EEXIST: i32 = -libc::EEXIST;

/// The daemon binary serving one end of a socketpair.
pub struct Daemon {
    pub child: Child,
    sock: OwnedFd,
    seq: u32,
    _run_dir: Option<TempDir>,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_dmulogd")
}

impl Daemon {
    /// A daemon with a run directory of its own: a later daemon does not
    /// find its state files (as after a reboot, or with /run not shared).
    pub fn spawn(extra: &[&str]) -> Daemon {
        let dir = TempDir::new("run");
        let mut d = Daemon::spawn_in(dir.path(), extra);
        d._run_dir = Some(dir);
        d
    }

    /// A daemon using `run_dir` (pass the same one to a restarted daemon
    /// to model /run surviving a daemon restart). There is no
    /// device-mapper here, so unless `extra` says otherwise the mirrors'
    /// legs are none at all (`--test-legs ""`): every leg flush succeeds
    /// and clean bits reach the log files as they would with real legs.
    pub fn spawn_in(run_dir: &Path, extra: &[&str]) -> Daemon {
        let (ours, theirs) = socketpair();
        let legs: &[&str] = if extra.contains(&"--test-legs") { &[] } else { &["--test-legs", ""] };
        let args: Vec<&str> = legs.iter().chain(extra).copied().collect();
        let log = std::env::var("DMULOGD_TEST_LOG").unwrap_or_else(|_| "warn".into());
        let child = spawn_server(Path::new(binary()), theirs, run_dir, &args, &log);
        set_recv_timeout(&ours, 20);
        Daemon { child, sock: ours, seq: 1000, _run_dir: None }
    }

    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    pub fn send_raw(&self, dgram: &[u8]) {
        send_dgram(&self.sock, dgram);
    }

    /// Receives one reply; panics after the 20 s timeout (a lost reply is a
    /// bug: every request gets exactly one).
    pub fn recv(&self) -> Reply {
        let mut buf = vec![0u8; 4096];
        let n = recv_dgram(&self.sock, &mut buf);
        assert!(n > 0, "no reply from dmulogd: {}", std::io::Error::last_os_error());
        Reply::decode(&buf[..n as usize]).expect("reply is well framed")
    }

    /// True when a datagram is waiting within `ms` milliseconds.
    pub fn reply_pending(&self, ms: i32) -> bool {
        let mut pfd = libc::pollfd { fd: self.sock.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, ms) > 0 }
    }

    pub fn request(&mut self, spec: RequestSpec<'_>) -> Reply {
        self.send_raw(&spec.encode());
        let r = self.recv();
        assert_eq!(r.seq, spec.seq, "reply matches the request seq");
        assert_eq!(r.request_type, spec.request_type);
        r
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Closes the socket and waits for a clean exit.
    pub fn close(mut self) -> std::process::ExitStatus {
        drop(std::mem::replace(&mut self.sock, socketpair().0));
        wait_timeout(&mut self.child, Duration::from_secs(20)).expect("dmulogd exits when its transport closes")
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One log as the kernel's dm-log-userspace sees it.
#[derive(Clone)]
pub struct Kernel {
    pub uuid: Vec<u8>,
    pub luid: u64,
    pub version: u32,
}

impl Kernel {
    pub fn new(uuid: &str, luid: u64) -> Kernel {
        Kernel { uuid: uuid.as_bytes().to_vec(), luid, version: 3 }
    }

    pub fn req(&self, d: &mut Daemon, t: u32, payload: &[u8]) -> Reply {
        let seq = d.next_seq();
        d.request(RequestSpec {
            luid: self.luid,
            uuid: &self.uuid,
            version: self.version,
            seq,
            request_type: t,
            payload,
        })
    }

    /// The CTR of `userspace_ctr()`: no trailing NUL.
    pub fn ctr(&self, d: &mut Daemon, args: &str) -> Reply {
        self.req(d, CTR, args.as_bytes())
    }

    /// The reconnect CTR after -ESRCH: strlen + 1, no reply buffer.
    pub fn ctr_reconnect(&self, d: &mut Daemon, args: &str) -> Reply {
        let mut p = args.as_bytes().to_vec();
        p.push(0);
        self.req(d, CTR, &p)
    }

    pub fn ok(&self, d: &mut Daemon, t: u32, payload: &[u8]) -> Reply {
        let r = self.req(d, t, payload);
        assert_eq!(r.error, 0, "request {t} failed");
        r
    }

    pub fn mark(&self, d: &mut Daemon, rs: &[u64]) -> Reply {
        self.req(d, MARK_REGION, &regions_payload(rs))
    }

    pub fn clear(&self, d: &mut Daemon, rs: &[u64]) -> Reply {
        self.req(d, CLEAR_REGION, &regions_payload(rs))
    }

    pub fn flush(&self, d: &mut Daemon, rs: &[u64]) -> Reply {
        self.req(d, FLUSH, &regions_payload(rs))
    }

    pub fn u64_of(&self, d: &mut Daemon, t: u32, payload: &[u8]) -> u64 {
        let r = self.ok(d, t, payload);
        r.u64_at(0).expect("u64 reply")
    }

    pub fn is_clean(&self, d: &mut Daemon, r: u64) -> bool {
        self.u64_of(d, IS_CLEAN, &r.to_ne_bytes()) == 1
    }

    pub fn in_sync(&self, d: &mut Daemon, r: u64) -> bool {
        self.u64_of(d, IN_SYNC, &r.to_ne_bytes()) == 1
    }

    pub fn sync_count(&self, d: &mut Daemon) -> u64 {
        self.u64_of(d, GET_SYNC_COUNT, &[])
    }

    pub fn resync_work(&self, d: &mut Daemon) -> Option<u64> {
        let r = self.ok(d, GET_RESYNC_WORK, &[]);
        (r.u64_at(0) == Some(1)).then(|| r.u64_at(1).unwrap())
    }

    pub fn set_sync(&self, d: &mut Daemon, region: u64, in_sync: bool) -> Reply {
        let mut p = region.to_ne_bytes().to_vec();
        p.extend_from_slice(&i64::from(in_sync).to_ne_bytes());
        self.req(d, SET_REGION_SYNC, &p)
    }

    pub fn status(&self, d: &mut Daemon, t: u32) -> String {
        let r = self.ok(d, t, &[]);
        let end = r.payload.iter().position(|&b| b == 0).unwrap_or(r.payload.len());
        String::from_utf8(r.payload[..end].to_vec()).unwrap()
    }
}

/// The clean bitmap of a log file as plain reads see it (1 = clean).
pub fn disk_clean_bit(path: &Path, region: u64) -> bool {
    let data = std::fs::read(path).unwrap();
    data[1024 + (region / 8) as usize] & (1 << (region % 8)) != 0
}
