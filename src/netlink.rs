//! The netlink connector socket: the only place with netlink syscalls.
//!
//! `socket(AF_NETLINK, SOCK_DGRAM, NETLINK_CONNECTOR)`, bound with
//! `nl_groups = 0` and then joined to group CN_IDX_DM (7) with
//! NETLINK_ADD_MEMBERSHIP. (`nl_groups` is a bitmask: binding with 7 would
//! join groups 1-3 instead, the mistake of the old example in the kernel
//! header.) Joining needs CAP_NET_ADMIN, and the kernel ignores replies
//! from a process without CAP_SYS_ADMIN.

use crate::sys::{cvt, cvt_size};
use crate::transport::{Recv, Transport};
use crate::wire::CN_IDX_DM;
use std::fmt;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

const NETLINK_CONNECTOR: libc::c_int = 11;
/// Queue room for bursts of requests (every mirror write sends several).
const RCVBUF: libc::c_int = 4 << 20;
// Both sizes are a handful of bytes; the casts cannot truncate.
#[allow(clippy::cast_possible_truncation)]
const ADDR_LEN: libc::socklen_t = size_of::<libc::sockaddr_nl>() as libc::socklen_t;
#[allow(clippy::cast_possible_truncation)]
const INT_LEN: libc::socklen_t = size_of::<libc::c_int>() as libc::socklen_t;

pub struct NetlinkSocket {
    fd: OwnedFd,
    port: u32,
}

/// Why the socket could not be set up, with what to do about it.
#[derive(Debug)]
pub enum SetupError {
    NoConnector(io::Error),
    NotPermitted(&'static str, io::Error),
    Other(&'static str, io::Error),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::NoConnector(e) => write!(
                f,
                "netlink connector socket: {e}: this kernel has no netlink connector (CONFIG_CONNECTOR); \
                 dm-log-userspace cannot work without it"
            ),
            SetupError::NotPermitted(op, e) => {
                write!(f, "{op}: {e}: dmulogd needs CAP_NET_ADMIN and CAP_SYS_ADMIN (run it as root)")
            }
            SetupError::Other(op, e) => write!(f, "{op}: {e}"),
        }
    }
}

impl std::error::Error for SetupError {}

fn kernel_addr() -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
    let mut a: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    a.nl_family = libc::sa_family_t::try_from(libc::AF_NETLINK).expect("AF_NETLINK fits");
    a
}

fn perm_or(op: &'static str, e: io::Error) -> SetupError {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => SetupError::NotPermitted(op, e),
        _ => SetupError::Other(op, e),
    }
}

/// Another process already listening on the device-mapper connector group
/// (cmirrord, LVM's cluster log server, or a second dmulogd without the
/// instance lock): both would answer every request, first answer wins,
/// and each would break the other's logs. `/proc/net/netlink` lists every
/// netlink socket: protocol (`Eth`) 11 is the connector, and `Groups` is
/// the bitmask of its first 32 groups (group 7 is bit 6).
pub fn other_listener() -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/netlink").ok()?;
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (proto, port, groups) = (f.get(1)?, f.get(2)?, f.get(3)?);
        let groups = u32::from_str_radix(groups, 16).ok()?;
        if *proto != "11" || groups & (1 << (CN_IDX_DM - 1)) == 0 {
            return None;
        }
        // A process's first netlink socket has its pid as port.
        let comm = std::fs::read_to_string(format!("/proc/{port}/comm")).ok();
        Some(match comm {
            Some(c) => format!("netlink port {port} ({}, pid {port})", c.trim()),
            None => format!("netlink port {port}"),
        })
    })
}

impl NetlinkSocket {
    pub fn open() -> Result<NetlinkSocket, SetupError> {
        // SAFETY: plain socket(2) call with constant arguments.
        let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, NETLINK_CONNECTOR) };
        let raw = cvt(raw).map_err(|e| match e.raw_os_error() {
            Some(libc::EPROTONOSUPPORT) | Some(libc::EAFNOSUPPORT) => SetupError::NoConnector(e),
            _ => perm_or("socket", e),
        })?;
        // SAFETY: raw is a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let addr = kernel_addr();
        let len = ADDR_LEN;
        // SAFETY: addr is a valid sockaddr_nl of `len` bytes.
        cvt(unsafe { libc::bind(fd.as_raw_fd(), (&addr as *const libc::sockaddr_nl).cast(), len) })
            .map_err(|e| perm_or("bind", e))?;
        let mut bound = kernel_addr();
        let mut blen = len;
        // SAFETY: bound/blen are valid for writes of a sockaddr_nl.
        cvt(unsafe { libc::getsockname(fd.as_raw_fd(), (&mut bound as *mut libc::sockaddr_nl).cast(), &mut blen) })
            .map_err(|e| SetupError::Other("getsockname", e))?;
        let group = libc::c_int::try_from(CN_IDX_DM).expect("group 7 fits");
        setsockopt(&fd, libc::SOL_NETLINK, libc::NETLINK_ADD_MEMBERSHIP, group)
            .map_err(|e| perm_or("join connector group 7 (CN_IDX_DM)", e))?;
        // Best effort: FORCE needs CAP_NET_ADMIN, the plain one is capped.
        if setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF).is_err() {
            let _ = setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF);
        }
        Ok(NetlinkSocket { fd, port: bound.nl_pid })
    }
}

fn setsockopt(fd: &OwnedFd, level: libc::c_int, opt: libc::c_int, val: libc::c_int) -> io::Result<()> {
    // SAFETY: val is a live c_int and the length says so.
    let r = unsafe { libc::setsockopt(fd.as_raw_fd(), level, opt, (&val as *const libc::c_int).cast(), INT_LEN) };
    cvt(r).map(drop)
}

impl Transport for NetlinkSocket {
    fn recv(&mut self, buf: &mut [u8], wait: bool) -> io::Result<Recv> {
        let mut from = kernel_addr();
        let mut flen = ADDR_LEN;
        // SAFETY: buf is valid for buf.len() bytes of writes (MSG_TRUNC
        // reports longer datagrams without writing past it); from/flen are
        // valid for a sockaddr_nl.
        let r = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                crate::transport::recv_flags(wait),
                (&mut from as *mut libc::sockaddr_nl).cast(),
                &mut flen,
            )
        };
        match cvt_size(r) {
            Ok(len) => Ok(Recv::Datagram { len, sender: from.nl_pid }),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {
                Ok(Recv::Empty)
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Ok(Recv::Lost),
            Err(e) => Err(e),
        }
    }

    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn send(&mut self, dgram: &[u8]) -> io::Result<()> {
        let to = kernel_addr();
        let send = || {
            // SAFETY: dgram is valid for reads of its length; `to` is a
            // valid sockaddr_nl naming the kernel (port 0).
            let r = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    dgram.as_ptr().cast(),
                    dgram.len(),
                    0,
                    (&to as *const libc::sockaddr_nl).cast(),
                    ADDR_LEN,
                )
            };
            cvt_size(r)
        };
        crate::transport::retry_eintr(send).map(drop)
    }

    fn port(&self) -> u32 {
        self.port
    }
}
