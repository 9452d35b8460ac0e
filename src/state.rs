//! Log state that must outlive the daemon but not the machine.
//!
//! After a daemon restart the kernel reconnects (CTR + RESUME) and carries
//! on with what it already knows: in particular it caches `in_sync_hint`,
//! and once it has seen a mirror fully in sync it never asks for resync
//! work again until the table is resumed for real. A restarted daemon must
//! therefore answer with the *same* sync state as before, not one rebuilt
//! from the clean bitmap: calling an in-sync region "not in sync" makes
//! dm-raid1 write it to one leg only and nobody resyncs it.
//!
//! So the sync bitmap of every log (and the clean bitmap of a core log,
//! which has no device) lives in a file under the run directory — tmpfs
//! `/run`, which survives a daemon restart and not a reboot, exactly the
//! lifetime of the kernel's own view. The bitmap is mmap'd, so it is as
//! fast as anonymous memory and always current, even after kill -9.
//!
//! ```text
//! offset  size  what (native endian: never leaves this machine)
//!      0     8  magic "dmulogS2"
//!      8     8  luid
//!     16     8  region count
//!     24     4  uuid length
//!     28   129  uuid
//!    157     1  1 once the log has been resumed (sync file)
//!    160     n  bitmap (region i = bit i%8 of byte i/8), n = count rounded up to 64 bits
//! ```

use crate::bitmap::{bitmap_bytes, Bitmap};
use crate::sys::cvt;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// S2 added the resumed flag: an S1 file says nothing about it, so it is
/// not taken back (a restart then treats the log as one it cannot tell).
const MAGIC: &[u8; 8] = b"dmulogS2";
/// Byte of the header set once the log has been resumed (sync files).
const RESUMED: usize = 157;
const HEADER: usize = 160;
const UUID_MAX: usize = 129;

/// Which bitmap of a log a file holds.
#[derive(Clone, Copy)]
pub enum Kind {
    Sync,
    Clean,
}

/// FNV-1a: a stable, dependency-free name for a uuid of up to 128 bytes
/// (too long to use as a file name as it is).
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// The state directory, opened once at start. Files are made relative to
/// this descriptor, so after an initramfs switch-root (which moves /run to
/// the real root) they still land in the real /run, not in the emptied
/// initramfs that remains the daemon's own root.
#[derive(Debug)]
pub struct StateDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl StateDir {
    pub fn open(path: &Path) -> io::Result<StateDir> {
        std::fs::create_dir_all(path)?;
        let c = CString::new(path.as_os_str().as_bytes())?;
        // SAFETY: c is a valid C string for the duration of the call.
        let fd = cvt(unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) })?;
        // SAFETY: fd is a fresh descriptor we own.
        Ok(StateDir { fd: unsafe { OwnedFd::from_raw_fd(fd) }, path: path.to_owned() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open_file(&self, name: &str, flags: libc::c_int) -> io::Result<File> {
        let c = CString::new(name)?;
        // SAFETY: c is a valid C string; the directory fd is open.
        let fd = cvt(unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags | libc::O_CLOEXEC, 0o600) })?;
        // SAFETY: fd is a fresh descriptor we own.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    fn unlink(&self, name: &str) {
        if let Ok(c) = CString::new(name) {
            // SAFETY: c is a valid C string; failure (ENOENT) is fine.
            unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) };
        }
    }
}

pub fn name(uuid: &[u8], luid: u64, kind: Kind) -> String {
    let ext = match kind {
        Kind::Sync => "sync",
        Kind::Clean => "clean",
    };
    format!("{luid:016x}-{:016x}.{ext}", fnv1a(uuid))
}

fn header(uuid: &[u8], luid: u64, bits: u64) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0..8].copy_from_slice(MAGIC);
    h[8..16].copy_from_slice(&luid.to_ne_bytes());
    h[16..24].copy_from_slice(&bits.to_ne_bytes());
    let n = uuid.len().min(UUID_MAX);
    h[24..28].copy_from_slice(&u32::try_from(n).expect("short").to_ne_bytes());
    h[28..28 + n].copy_from_slice(&uuid[..n]);
    h
}

/// A bitmap kept in a state file; `restored` says it came from a previous
/// daemon's file rather than being created zeroed.
pub struct Stored {
    pub bitmap: Bitmap,
    pub restored: bool,
    /// A restored file says its log had been resumed (see [`mark_resumed`]).
    pub resumed: bool,
}

/// Records in a log's sync file that the log has been resumed: a daemon
/// restarted later then knows the kernel's reconnect CTR continues a live
/// mirror, not one still waiting for its first RESUME.
pub fn mark_resumed(sync: &mut Bitmap) {
    if sync.is_file_backed() {
        sync.image_mut()[RESUMED] = 1;
    }
}

/// Opens (when `reuse` and a file for exactly this log exists) or creates
/// the state file and maps its bitmap.
pub fn open(dir: &StateDir, uuid: &[u8], luid: u64, kind: Kind, bits: u64, reuse: bool) -> io::Result<Stored> {
    let n = name(uuid, luid, kind);
    let want = header(uuid, luid, bits);
    let bytes = bitmap_bytes(bits).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "too many regions"))?;
    let len = HEADER as u64 + bytes;
    if reuse {
        if let Ok(f) = dir.open_file(&n, libc::O_RDWR) {
            let mut got = [0u8; HEADER];
            let read = f.read_exact_at(&mut got, 0).is_ok();
            let resumed = got[RESUMED] == 1;
            got[RESUMED] = 0;
            if read && got == want && f.metadata()?.len() == len {
                let bitmap = Bitmap::map_file(&f, HEADER, bits)?;
                return Ok(Stored { bitmap, restored: true, resumed });
            }
        }
    }
    dir.unlink(&n);
    let f = dir.open_file(&n, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL)?;
    // Allocate every page now: on a full tmpfs a later write through the
    // mapping would raise SIGBUS; here it is a clean ENOSPC, and the log
    // keeps its state in memory instead.
    let ilen = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: fallocate on a descriptor we own; no memory is passed.
    if let Err(e) = cvt(unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, ilen) }) {
        dir.unlink(&n);
        return Err(e);
    }
    f.write_all_at(&want, 0)?;
    let bitmap = Bitmap::map_file(&f, HEADER, bits)?;
    Ok(Stored { bitmap, restored: false, resumed: false })
}

/// Forgets a log's state files (DTR).
pub fn remove(dir: &StateDir, uuid: &[u8], luid: u64) {
    for kind in [Kind::Sync, Kind::Clean] {
        dir.unlink(&name(uuid, luid, kind));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_reopen_and_rejects_a_different_log() {
        let path = std::env::temp_dir().join(format!("dmulogd-state-{}", std::process::id()));
        let dir = StateDir::open(&path).unwrap();
        let mut s = open(&dir, b"uuid-a", 7, Kind::Sync, 100, true).unwrap();
        assert!(!s.restored);
        s.bitmap.put(42, true);
        drop(s);
        let s = open(&dir, b"uuid-a", 7, Kind::Sync, 100, true).unwrap();
        assert!(s.restored && s.bitmap.test(42));
        // Not reused: a fresh CTR, another size, another uuid.
        assert!(!open(&dir, b"uuid-a", 7, Kind::Sync, 100, false).unwrap().restored);
        assert!(!open(&dir, b"uuid-a", 7, Kind::Sync, 101, true).unwrap().restored);
        let s = open(&dir, b"uuid-b", 7, Kind::Sync, 101, true).unwrap();
        assert!(!s.restored && !s.bitmap.test(42));
        remove(&dir, b"uuid-b", 7);
        assert!(!path.join(name(b"uuid-b", 7, Kind::Sync)).exists());
        // Files follow the directory, not its path (switch-root moves /run).
        let moved = path.with_extension("moved");
        std::fs::rename(&path, &moved).unwrap();
        drop(open(&dir, b"uuid-c", 1, Kind::Clean, 8, false).unwrap());
        assert!(moved.join(name(b"uuid-c", 1, Kind::Clean)).exists());
        std::fs::remove_dir_all(&moved).unwrap();
    }
}
