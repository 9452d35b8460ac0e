//! The test transport, as tests/common and examples/benchkit both drive it
//! (each includes this file with `#[path]`): a server process (the real
//! dmulogd, or anything else taking `--transport-fd N`) on one end of a
//! `SOCK_SEQPACKET` socketpair, and the request numbers and region arrays
//! of the kernel's datagrams. What each side builds on it (a decoding
//! client for the tests, datagrams patched in place for the benchmarks)
//! stays with it.

use dmulogd::wire::RequestType;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const CTR: u32 = RequestType::Ctr as u32;
pub const DTR: u32 = RequestType::Dtr as u32;
pub const PRESUSPEND: u32 = RequestType::Presuspend as u32;
pub const POSTSUSPEND: u32 = RequestType::Postsuspend as u32;
pub const RESUME: u32 = RequestType::Resume as u32;
pub const GET_REGION_SIZE: u32 = RequestType::GetRegionSize as u32;
pub const IS_CLEAN: u32 = RequestType::IsClean as u32;
pub const IN_SYNC: u32 = RequestType::InSync as u32;
pub const FLUSH: u32 = RequestType::Flush as u32;
pub const MARK_REGION: u32 = RequestType::MarkRegion as u32;
pub const CLEAR_REGION: u32 = RequestType::ClearRegion as u32;
pub const GET_RESYNC_WORK: u32 = RequestType::GetResyncWork as u32;
pub const SET_REGION_SYNC: u32 = RequestType::SetRegionSync as u32;
pub const GET_SYNC_COUNT: u32 = RequestType::GetSyncCount as u32;
pub const STATUS_INFO: u32 = RequestType::StatusInfo as u32;
pub const STATUS_TABLE: u32 = RequestType::StatusTable as u32;
pub const IS_REMOTE_RECOVERING: u32 = RequestType::IsRemoteRecovering as u32;

/// The payload of MARK, CLEAR and FLUSH: region numbers, native endian.
pub fn regions_payload(rs: &[u64]) -> Vec<u8> {
    rs.iter().flat_map(|r| r.to_ne_bytes()).collect()
}

/// A `SOCK_SEQPACKET` socketpair, both ends close-on-exec (a server started
/// by another thread meanwhile inherits neither).
pub fn socketpair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints for socketpair to fill.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
    assert_eq!(r, 0, "socketpair: {}", std::io::Error::last_os_error());
    // SAFETY: both fds are fresh and owned by us from here on.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Starts `bin --transport-fd N --run-dir RUN_DIR args...` serving `theirs`
/// (the other end of our socketpair, closed here once the child has it),
/// with `RUST_LOG=rust_log` and stdin from /dev/null.
pub fn spawn_server(bin: &Path, theirs: OwnedFd, run_dir: &Path, args: &[&str], rust_log: &str) -> Child {
    // SAFETY: F_SETFD on an fd we own: the server inherits this end.
    unsafe { libc::fcntl(theirs.as_raw_fd(), libc::F_SETFD, 0) };
    let child = Command::new(bin)
        .arg("--transport-fd")
        .arg(theirs.as_raw_fd().to_string())
        .arg("--run-dir")
        .arg(run_dir)
        .args(args)
        .env("RUST_LOG", rust_log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    drop(theirs);
    child
}

/// A `recv` on `sock` fails after `secs` seconds without a datagram.
#[allow(clippy::cast_possible_truncation)] // size_of::<timeval>() is 16
pub fn set_recv_timeout(sock: &OwnedFd, secs: libc::time_t) {
    let tv = libc::timeval { tv_sec: secs, tv_usec: 0 };
    // SAFETY: tv is a live timeval of the size given.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
}

/// Sends one datagram, whole.
#[inline]
pub fn send_dgram(sock: &OwnedFd, d: &[u8]) {
    // SAFETY: d is valid for reads of its length.
    let r = unsafe { libc::send(sock.as_raw_fd(), d.as_ptr().cast(), d.len(), libc::MSG_NOSIGNAL) };
    assert_eq!(r, d.len() as isize, "send: {}", std::io::Error::last_os_error());
}

/// Receives one datagram into `buf`: `recv`'s result (its length, 0 at end
/// of file, -1 on an error or the receive timeout). A `recv` interrupted by
/// a signal is retried: with `SO_RCVTIMEO` set, the kernel never restarts
/// it (signal(7)), whatever `SA_RESTART` says, so any signal this process
/// handles would otherwise read as a lost reply.
#[inline]
pub fn recv_dgram(sock: &OwnedFd, buf: &mut [u8]) -> isize {
    loop {
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return n;
        }
    }
}

/// Waits up to `limit` for `child` to exit.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
