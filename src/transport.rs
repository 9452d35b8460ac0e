//! The seam between the request loop and the kernel: netlink in
//! production ([`crate::netlink`]), an inherited datagram socket in tests
//! (`--transport-fd`), carrying the very same bytes, so tests exercise the
//! same framing, parsing and dispatch.

use crate::sys::{cvt, cvt_size};
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};

pub enum Recv {
    /// A datagram of `len` bytes (it may be longer than the buffer, then it
    /// was truncated and must be dropped) from netlink port `sender`.
    Datagram { len: usize, sender: u32 },
    /// Nothing queued.
    Empty,
    /// The kernel could not queue messages because our queue overflowed
    /// (ENOBUFS): it takes that as a missing server and reconnects.
    Lost,
    /// The peer went away (socketpair only).
    Closed,
}

pub trait Transport {
    /// Blocking receive: sleeps until a datagram comes, a signal arrives
    /// (then or just before: see [`crate::signals`]) or the socket's
    /// receive timeout ([`crate::sys::set_recv_timeout`]) passes; the last
    /// two are [`Recv::Empty`].
    /// With `wait` false, returns at once ([`Recv::Empty`] when nothing
    /// is queued).
    fn recv(&mut self, buf: &mut [u8], wait: bool) -> io::Result<Recv>;
    /// The socket, for its receive timeout and the signal handlers.
    fn fd(&self) -> std::os::fd::BorrowedFd<'_>;
    fn send(&mut self, dgram: &[u8]) -> io::Result<()>;
    /// Our netlink port, written into reply headers.
    fn port(&self) -> u32;
}

/// Retries a call that a signal interrupted: a reply must not be lost to
/// one (the kernel would wait 15 s for its resend).
pub fn retry_eintr<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// A `SOCK_SEQPACKET`/`SOCK_DGRAM` socket inherited from a test harness.
/// Everything on it counts as coming from the kernel (port 0).
pub struct FdTransport {
    fd: OwnedFd,
    pid: u32,
}

impl FdTransport {
    /// # Safety
    /// `fd` must be an open socket that nothing else owns.
    pub unsafe fn from_raw(fd: RawFd) -> FdTransport {
        // SAFETY: the caller hands over ownership of an open fd.
        FdTransport { fd: unsafe { OwnedFd::from_raw_fd(fd) }, pid: std::process::id() }
    }
}

/// The receive flags: MSG_TRUNC (the full datagram length is reported
/// without writing past the buffer), MSG_DONTWAIT unless `wait`.
pub fn recv_flags(wait: bool) -> libc::c_int {
    if wait {
        libc::MSG_TRUNC
    } else {
        libc::MSG_TRUNC | libc::MSG_DONTWAIT
    }
}

fn recv_fd(fd: &OwnedFd, buf: &mut [u8], wait: bool) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: buf is valid for writes of buf.len() bytes; with MSG_TRUNC
    // the kernel reports a longer datagram without writing past it.
    let r = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), recv_flags(wait)) };
    cvt_size(r)
}

impl Transport for FdTransport {
    fn recv(&mut self, buf: &mut [u8], wait: bool) -> io::Result<Recv> {
        match recv_fd(&self.fd, buf, wait) {
            Ok(0) => Ok(Recv::Closed),
            Ok(len) => Ok(Recv::Datagram { len, sender: 0 }),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {
                Ok(Recv::Empty)
            }
            Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => Ok(Recv::Closed),
            Err(e) => Err(e),
        }
    }

    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn send(&mut self, dgram: &[u8]) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let send = || {
            // SAFETY: dgram is valid for reads of its length; MSG_NOSIGNAL
            // turns a closed peer into EPIPE instead of SIGPIPE.
            let r = unsafe { libc::send(self.fd.as_raw_fd(), dgram.as_ptr().cast(), dgram.len(), libc::MSG_NOSIGNAL) };
            cvt_size(r)
        };
        retry_eintr(send).map(drop)
    }

    fn port(&self) -> u32 {
        self.pid
    }
}

/// Checks that `fd` is an open socket before the daemon takes it over.
pub fn check_socket(fd: RawFd) -> io::Result<()> {
    // SAFETY: fstat writes into a zeroed local stat buffer; an invalid fd
    // only yields EBADF.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("fd {fd} is not a socket")));
    }
    Ok(())
}
