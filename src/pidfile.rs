//! One dmulogd per machine: an instance lock, and the pid file.
//!
//! The lock is an abstract Unix socket (`@dmulogd`): binding it fails while
//! another process holds it, nothing on a file system can remove it (an
//! flock on a pid file is defeated by unlinking the file, which systemd does
//! to PIDFile= on stop), and it disappears with the process however that
//! ends. The pid file is also flock'ed, for tools that look there; both
//! belong to descriptors a forked daemon inherits.

use crate::sys::cvt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Name of the abstract socket (per network namespace).
const LOCK_NAME: &[u8] = crate::control::NAME;

pub struct InstanceLock {
    fd: std::os::fd::OwnedFd,
}

impl InstanceLock {
    pub fn acquire() -> io::Result<InstanceLock> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket(2) call with constant arguments.
        let fd = cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let (addr, len) = crate::control::address(LOCK_NAME);
        // SAFETY: addr is a valid sockaddr_un and len covers its used part.
        let r = unsafe { libc::bind(fd.as_raw_fd(), (&addr as *const libc::sockaddr_un).cast(), len) };
        match cvt(r) {
            Ok(_) => {
                // It also takes `dmulogd status` queries (crate::control).
                crate::control::pass_credentials(std::os::fd::AsFd::as_fd(&fd))?;
                Ok(InstanceLock { fd })
            }
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                match holder() {
                    Some(pid) => format!("another dmulogd (pid {pid}) is running on this machine"),
                    None => "another dmulogd is running on this machine (it holds the abstract socket @dmulogd)".into(),
                },
            )),
            Err(e) => Err(e),
        }
    }
}

impl InstanceLock {
    /// The socket, for `dmulogd status` queries.
    pub fn socket(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.fd)
    }
}

/// The process holding `@dmulogd`: its socket inode from /proc/net/unix,
/// then the process with a descriptor on that inode (what `ss -xp` does).
pub fn holder() -> Option<u32> {
    let unix = std::fs::read_to_string("/proc/net/unix").ok()?;
    let want = format!("@{}", std::str::from_utf8(LOCK_NAME).ok()?);
    let inode = unix.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.last() == Some(&want.as_str())).then(|| f.get(6).map(|s| (*s).to_owned()))?
    })?;
    let target = format!("socket:[{inode}]");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|p| {
        let pid: u32 = p.file_name().to_str()?.parse().ok()?;
        let fds = std::fs::read_dir(p.path().join("fd")).ok()?;
        fds.flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str()))
            .then_some(pid)
    })
}

pub struct PidFile {
    file: File,
    path: PathBuf,
}

impl PidFile {
    /// Creates and locks `path`; fails naming the running instance.
    pub fn lock(path: &Path) -> io::Result<PidFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o644).open(path)?;
        // It is truncated, rewritten and removed at exit: never a device.
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
        }
        // SAFETY: flock on an fd we own; no memory is passed.
        if let Err(e) = cvt(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }) {
            if e.kind() == io::ErrorKind::WouldBlock {
                let mut s = String::new();
                let _ = file.read_to_string(&mut s);
                let pid = s.trim();
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "another dmulogd (pid {}) holds {}",
                        if pid.is_empty() { "?" } else { pid },
                        path.display()
                    ),
                ));
            }
            return Err(e);
        }
        Ok(PidFile { file, path: path.to_owned() })
    }

    pub fn write_pid(&mut self, pid: u32) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        writeln!(self.file, "{pid}")?;
        self.file.sync_data()
    }

    /// Removes the file at a clean exit (the lock goes with the process).
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
