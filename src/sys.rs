//! The one helper every syscall wrapper uses, and the readiness wait the
//! transports share.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// Turns a `-1` return into the thread's errno.
pub fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Like [`cvt`] for calls returning `ssize_t`.
pub fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(r).map_err(|_| io::Error::last_os_error())
}

/// Blocks until `fd` is readable, a signal arrives or `timeout` passes. The
/// daemon keeps its signals blocked everywhere else; `ppoll` unblocks them
/// (`mask`) only while waiting, atomically, so a signal can never slip in
/// between the last check of the flags and going to sleep.
pub fn wait_readable(fd: BorrowedFd<'_>, mask: &libc::sigset_t, timeout: Option<Duration>) -> io::Result<()> {
    wait_any(fd, None, mask, timeout).map(drop)
}

/// [`wait_readable`] on `fd` and, when given, `other`; true when `other`
/// is readable.
pub fn wait_any(
    fd: BorrowedFd<'_>,
    other: Option<BorrowedFd<'_>>,
    mask: &libc::sigset_t,
    timeout: Option<Duration>,
) -> io::Result<bool> {
    let pfd = |fd: BorrowedFd<'_>| libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let mut fds = [pfd(fd), other.map_or(libc::pollfd { fd: -1, events: 0, revents: 0 }, pfd)];
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(t.subsec_nanos()),
    });
    let tp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` holds two valid pollfds (a negative fd is ignored), the
    // timeout pointer is NULL (wait forever) or points to `ts`, which
    // outlives the call, and `mask` points to an initialised sigset_t.
    let r = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, tp, mask) };
    match cvt(r) {
        Ok(_) => Ok(fds[1].revents != 0),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(e),
    }
}
