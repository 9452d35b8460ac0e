//! The pid and lock file: one dmulogd per machine.
//!
//! The lock is an flock(2) on the open file; it belongs to the open file
//! description, so a forked daemon keeps it after the parent exits, and it
//! disappears with the process however that ends (no stale locks).

use crate::sys::cvt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

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
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o644).open(path)?;
        // SAFETY: flock on an fd we own; no memory is passed.
        if let Err(e) = cvt(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }) {
            if e.kind() == io::ErrorKind::WouldBlock {
                let mut s = String::new();
                let _ = file.read_to_string(&mut s);
                let pid = s.trim();
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("another dmulogd (pid {}) holds {}", if pid.is_empty() { "?" } else { pid }, path.display()),
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
