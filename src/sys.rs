//! The one helper every syscall wrapper uses, and the receive timeout the
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

/// How long a blocking `recv` on `fd` may sleep before it fails with
/// EAGAIN (SO_RCVTIMEO); None: for ever. A timeout is rounded up to 1 µs
/// (zero would mean for ever) and the kernel rounds it up to a clock tick.
pub fn set_recv_timeout(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<()> {
    let tv = match timeout {
        None => libc::timeval { tv_sec: 0, tv_usec: 0 },
        Some(t) => libc::timeval {
            tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_usec: libc::suseconds_t::from(t.subsec_micros()),
        },
    };
    let tv = if timeout.is_some() && tv.tv_sec == 0 && tv.tv_usec == 0 {
        libc::timeval { tv_sec: 0, tv_usec: 1 }
    } else {
        tv
    };
    // A timeval is 16 bytes; the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation)]
    let len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: tv is a live timeval of the size given.
    let r = unsafe {
        libc::setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVTIMEO, (&tv as *const libc::timeval).cast(), len)
    };
    cvt(r).map(drop)
}
