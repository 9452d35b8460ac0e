//! `dmulogd status`: asking the running daemon, over the abstract socket
//! `@dmulogd` that is also its single-instance lock ([`crate::pidfile`]).
//!
//! A query is one datagram, `status` or `status json`, from an autobound
//! socket; the daemon answers with the kernel-checked credentials of the
//! sender in hand (SCM_CREDENTIALS): root only, since the report names
//! every mirror's devices. The answer is one or more datagrams of text
//! and an empty one that ends it (a report of many logs outgrows one
//! datagram).

use crate::sys::{cvt, cvt_size};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

pub const NAME: &[u8] = b"dmulogd";
/// Largest datagram of an answer.
const CHUNK: usize = 32 << 10;

/// `sockaddr_un` of the abstract name, and its length.
pub fn address(name: &[u8]) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: sockaddr_un is plain data; all-zero is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::sa_family_t::try_from(libc::AF_UNIX).expect("fits");
    // sun_path[0] = 0 selects the abstract namespace.
    for (d, &s) in addr.sun_path[1..].iter_mut().zip(name) {
        *d = s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + 1 + name.len();
    (addr, libc::socklen_t::try_from(len).expect("small"))
}

fn dgram_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call with constant arguments.
    let fd = cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Asks the kernel to attach the sender's credentials to what we receive.
pub fn pass_credentials(fd: BorrowedFd<'_>) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `on` is a live c_int and the length says so.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            (&on as *const libc::c_int).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).expect("4"),
        )
    };
    cvt(r).map(drop)
}

/// One query received: its text, who sent it, and where to answer.
pub struct Query {
    pub text: String,
    pub uid: Option<u32>,
    from: libc::sockaddr_un,
    from_len: libc::socklen_t,
}

/// Makes a query arriving on the control socket raise SIGIO in this
/// process: the request loop sleeps in `recv` on the kernel's socket and
/// learns of queries from the signal ([`crate::signals`]). Called by the
/// process that serves (after `--daemon` forked), with the handler
/// installed (SIGIO's default action kills).
pub fn signal_queries(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: getpid cannot fail.
    let pid = unsafe { libc::getpid() };
    // SAFETY: F_SETOWN takes a pid; an invalid fd only yields EBADF.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETOWN, pid) })?;
    // SAFETY: F_GETFL takes no argument.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: F_SETFL with the flags just read plus O_ASYNC.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_ASYNC) }).map(drop)
}

/// Receives one query without blocking; None when there is none.
pub fn receive(fd: BorrowedFd<'_>) -> io::Result<Option<Query>> {
    let mut buf = [0u8; 256];
    // SAFETY: all-zero is a valid sockaddr_un / msghdr / cmsg buffer.
    let mut from: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut cbuf = [0u64; 8];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: all-zero is a valid msghdr; every pointer is set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut from as *mut libc::sockaddr_un).cast();
    msg.msg_namelen = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_un>()).expect("small");
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: `msg` points at live buffers of the sizes it states.
    let r = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    let n = match cvt_size(r) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut uid = None;
    // SAFETY: CMSG_FIRSTHDR/NXTHDR walk the control buffer the kernel
    // filled, within msg_controllen.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !c.is_null() {
        // SAFETY: `c` points at a complete cmsghdr inside `cbuf`.
        let h = unsafe { &*c };
        if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SCM_CREDENTIALS {
            // SAFETY: an SCM_CREDENTIALS message carries one ucred; it may
            // be unaligned in the buffer, so it is read unaligned.
            let cred: libc::ucred = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast()) };
            uid = Some(cred.uid);
        }
        // SAFETY: as above.
        c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
    }
    Ok(Some(Query { text: String::from_utf8_lossy(&buf[..n]).trim().to_owned(), uid, from, from_len: msg.msg_namelen }))
}

/// Sends `answer` back in chunks, then the empty datagram that ends it.
pub fn answer(fd: BorrowedFd<'_>, q: &Query, answer: &str) -> io::Result<()> {
    let send = |b: &[u8]| -> io::Result<()> {
        // SAFETY: `b` is valid for its length; `q.from` is the sender's
        // address as recvmsg gave it.
        let r = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                b.as_ptr().cast(),
                b.len(),
                libc::MSG_DONTWAIT,
                (&q.from as *const libc::sockaddr_un).cast(),
                q.from_len,
            )
        };
        cvt_size(r).map(drop)
    };
    for chunk in answer.as_bytes().chunks(CHUNK) {
        send(chunk)?;
    }
    send(&[])
}

/// Why `dmulogd status` got no report.
#[derive(Debug)]
pub enum QueryError {
    /// Nothing listens on @dmulogd.
    NotRunning,
    Other(io::Error),
}

/// The client: sends `query` to the running daemon and collects the
/// answer (`timeout` per datagram).
pub fn query(query: &str, timeout: Duration) -> Result<String, QueryError> {
    let fd = dgram_socket().map_err(QueryError::Other)?;
    // Autobind: an abstract name of the kernel's choice, to be answered at.
    let fam = libc::sa_family_t::try_from(libc::AF_UNIX).expect("fits");
    // SAFETY: binding a sockaddr of only the family asks for autobind.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&fam as *const libc::sa_family_t).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::sa_family_t>()).expect("2"),
        )
    };
    cvt(r).map_err(QueryError::Other)?;
    crate::sys::set_recv_timeout(fd.as_fd(), Some(timeout)).map_err(QueryError::Other)?;
    let (addr, len) = address(NAME);
    // SAFETY: `addr` is a valid sockaddr_un of `len` bytes.
    let r = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            query.as_ptr().cast(),
            query.len(),
            0,
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    };
    if let Err(e) = cvt_size(r) {
        return Err(match e.raw_os_error() {
            Some(libc::ECONNREFUSED) | Some(libc::ENOENT) => QueryError::NotRunning,
            _ => QueryError::Other(e),
        });
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        // SAFETY: `buf` is valid for writes of its length.
        let r = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        match cvt_size(r) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(QueryError::Other(io::Error::new(io::ErrorKind::TimedOut, "no answer from dmulogd")))
            }
            Err(e) => return Err(QueryError::Other(e)),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// A JSON string (uuids may hold any byte).
pub fn json_str(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for &c in b {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(c)),
            _ => s.push_str(&format!("\\u{c:04x}")),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_every_odd_byte() {
        assert_eq!(json_str(b"LVM-\"x\\\n\xff"), "\"LVM-\\\"x\\\\\\u000a\\u00ff\"");
    }
}
