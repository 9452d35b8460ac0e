//! Finding and opening a log device named in a table line.
//!
//! The kernel passes the table's argument unchanged: `MAJ:MIN` (what LVM
//! writes), a block-device path, or — for tests and file-backed setups — a
//! regular file. In an initramfs without udev there may be no node for
//! `MAJ:MIN`; after an initramfs switch-root, the daemon started there
//! keeps the emptied initramfs as its root, where neither /dev nor /sys
//! has anything left. So every name is looked up in two roots: our own, and
//! PID 1's (the real root) through a /proc descriptor opened at start,
//! which stays valid when /proc itself is moved. For `MAJ:MIN` the
//! candidates are `/dev/block/MAJ:MIN` and the `DEVNAME` that
//! `/sys/dev/block/MAJ:MIN/uevent` gives; failing those, a private node
//! made with mknod(2) in [`NODE_DIR`] (not under /run, which is `nodev`).
//! Every candidate is checked to really be that block device.

use crate::error::Error;
use crate::image::BlockIo;
use crate::sys::cvt;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where private device nodes go when no node exists for `MAJ:MIN`.
pub const NODE_DIR: &str = "/dev/.dmulogd";

static PROC: OnceLock<OwnedFd> = OnceLock::new();

/// Opens /proc once, so that PID 1's root stays reachable after a
/// switch-root has moved /proc away from ours. Best effort.
pub fn remember_proc() {
    let c = CString::new("/proc").expect("no NUL");
    // SAFETY: c is a valid C string for the duration of the call.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd >= 0 {
        // SAFETY: fd is a fresh descriptor we own.
        let _ = PROC.set(unsafe { OwnedFd::from_raw_fd(fd) });
    }
}

pub struct LogDevice {
    pub file: File,
    /// The node or file actually opened (as it was reached).
    pub path: PathBuf,
    /// `MAJ:MIN` for a block device, else the path as given.
    pub name: String,
    /// Set for block devices: what the CTR reply names for dm_get_device.
    pub devno: Option<(u32, u32)>,
    pub size: u64,
    /// Logical block size (direct I/O unit) of a block device; 1 for a file.
    pub block: usize,
}

/// Parses `MAJ:MIN` (decimal, as dm prints device numbers).
pub fn parse_devno(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(':')?;
    let ok = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
    (ok(a) && ok(b)).then(|| Some((a.parse().ok()?, b.parse().ok()?)))?
}

/// The roots a name is looked up in: ours, then PID 1's.
#[derive(Clone, Copy)]
enum Root {
    Own,
    Pid1(&'static OwnedFd),
}

fn roots() -> impl Iterator<Item = Root> {
    std::iter::once(Root::Own).chain(PROC.get().map(Root::Pid1))
}

/// Opens absolute `path` in `root`.
fn open_in(root: Root, path: &str, flags: libc::c_int) -> io::Result<(File, String)> {
    let (dirfd, rel, shown) = match root {
        Root::Own => (libc::AT_FDCWD, path.to_owned(), path.to_owned()),
        Root::Pid1(proc) => {
            let rel = format!("1/root{path}");
            (proc.as_raw_fd(), rel.clone(), format!("/proc/{rel}"))
        }
    };
    let c = CString::new(rel)?;
    // SAFETY: c is a valid C string; dirfd is AT_FDCWD or an open /proc fd.
    let fd = cvt(unsafe { libc::openat(dirfd, c.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: fd is a fresh descriptor we own.
    Ok((unsafe { File::from_raw_fd(fd) }, shown))
}

fn is_devno(f: &File, devno: (u32, u32)) -> bool {
    f.metadata()
        .map(|m| m.file_type().is_block_device() && m.rdev() == libc::makedev(devno.0, devno.1))
        .unwrap_or(false)
}

fn mknod_block(path: &Path, devno: (u32, u32)) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call;
    // mknod only reads it.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFBLK | 0o600, libc::makedev(devno.0, devno.1)) };
    cvt(r).map(drop)
}

/// Opens block device `devno` through the first node found.
pub fn open_devno(devno: (u32, u32), flags: libc::c_int) -> Result<(File, String), Error> {
    let (maj, min) = devno;
    for root in roots() {
        let mut candidates = vec![format!("/dev/block/{maj}:{min}")];
        if let Ok((mut f, _)) = open_in(root, &format!("/sys/dev/block/{maj}:{min}/uevent"), libc::O_RDONLY) {
            let mut uevent = String::new();
            let _ = f.read_to_string(&mut uevent);
            if let Some(name) = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME=")) {
                candidates.push(format!("/dev/{name}"));
            }
        }
        for c in candidates {
            if let Ok((f, shown)) = open_in(root, &c, flags) {
                if is_devno(&f, devno) {
                    return Ok((f, shown));
                }
            }
        }
    }
    let private = Path::new(NODE_DIR).join(format!("blk-{maj}-{min}"));
    let shown = private.display().to_string();
    std::fs::create_dir_all(NODE_DIR).map_err(|e| Error::io("create", NODE_DIR, e))?;
    let _ = std::fs::remove_file(&private);
    mknod_block(&private, devno).map_err(|e| Error::io("mknod", &shown, e))?;
    let (f, shown) = open_in(Root::Own, &shown, flags).map_err(|e| Error::io("open", &shown, e))?;
    if !is_devno(&f, devno) {
        return Err(Error::BadArgument(format!("{shown} is not block device {maj}:{min}")));
    }
    Ok((f, shown))
}

/// Opens a path in our root, or — when it is absolute and missing here —
/// in PID 1's. The fallback only ever wins by succeeding: where PID 1's
/// root is out of reach (containers), the error reported is our own.
fn open_path(arg: &str) -> Result<(File, String), Error> {
    match open_in(Root::Own, arg, libc::O_RDWR) {
        Ok(found) => Ok(found),
        Err(e) if e.kind() == io::ErrorKind::NotFound && arg.starts_with('/') => {
            let other = roots().skip(1).find_map(|root| open_in(root, arg, libc::O_RDWR).ok());
            other.ok_or_else(|| Error::io("open", arg, e))
        }
        Err(e) => Err(Error::io("open", arg, e)),
    }
}

/// Opens the log device named by `arg` read-write, without O_EXCL: the
/// kernel itself claims the device through dm_get_device once our CTR reply
/// names it, and two tables (live and inactive) may share one log device.
///
/// A block device is switched to `O_DIRECT`: the kernel's own `disk` log
/// reads and writes it with dm-io, past the page cache, and the cache
/// outlives any one opener while a live table holds the device open, so
/// only direct I/O sees what is really there (and leaves nothing cached
/// to be written back later). A regular file's page cache is the file.
pub fn open(arg: &str) -> Result<LogDevice, Error> {
    let (mut file, shown) = match parse_devno(arg) {
        Some(devno) => open_devno(devno, libc::O_RDWR)?,
        None => open_path(arg)?,
    };
    let meta = file.metadata().map_err(|e| Error::io("stat", &shown, e))?;
    let ft = meta.file_type();
    let devno = if ft.is_block_device() {
        Some((libc::major(meta.rdev()), libc::minor(meta.rdev())))
    } else if ft.is_file() {
        None
    } else {
        return Err(Error::BadArgument(format!("log device {arg}: not a block device or regular file")));
    };
    let size = file.seek(SeekFrom::End(0)).map_err(|e| Error::io("size", &shown, e))?;
    let block = match devno {
        Some(_) => {
            set_direct(&file).map_err(|e| Error::io("O_DIRECT on", &shown, e))?;
            logical_block_size(&file).map_err(|e| Error::io("block size of", &shown, e))?
        }
        None => 1,
    };
    let name = match devno {
        Some((a, b)) => format!("{a}:{b}"),
        None => arg.to_owned(),
    };
    Ok(LogDevice { file, path: PathBuf::from(shown), name, devno, size, block })
}

fn set_direct(f: &File) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; no memory is passed.
    let flags = cvt(unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFL, flags | libc::O_DIRECT) }).map(drop)
}

/// `BLKSSZGET`: the smallest unit direct I/O may address on the device.
fn logical_block_size(f: &File) -> io::Result<usize> {
    let mut size: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer, which is valid.
    cvt(unsafe { libc::ioctl(f.as_raw_fd(), libc::_IO(0x12, 104), &mut size) })?;
    usize::try_from(size).ok().filter(|&s| s > 0).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
}

impl LogDevice {
    /// Bytes of the log on this device (header + bitmap of `regions`),
    /// rounded up to the logical block size as dm-log.c sizes its buffer.
    pub fn image_len(&self, regions: u64) -> Option<u64> {
        let b = self.block as u64;
        crate::disk::device_bytes(regions)?.checked_add(b - 1).map(|n| n / b * b)
    }
}

impl BlockIo for LogDevice {
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    /// fdatasync: on a block device, blkdev_fsync flushes the device's
    /// volatile write cache (and, with direct writes, there is nothing in
    /// the page cache to write first).
    fn flush(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devno_syntax() {
        assert_eq!(parse_devno("253:2"), Some((253, 2)));
        assert_eq!(parse_devno("8:0"), Some((8, 0)));
        for bad in ["", ":", "8:", ":0", "a:b", "/dev/sda", "8:0:1", "-1:2", "99999999999:1"] {
            assert_eq!(parse_devno(bad), None, "{bad}");
        }
    }

    #[test]
    fn opens_regular_file_and_reports_size() {
        let p = std::env::temp_dir().join(format!("dmulogd-dev-{}", std::process::id()));
        std::fs::write(&p, vec![0u8; 5000]).unwrap();
        let d = open(p.to_str().unwrap()).unwrap();
        assert_eq!(d.size, 5000);
        assert_eq!(d.devno, None);
        assert_eq!(d.name, p.to_str().unwrap());
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(open(p.to_str().unwrap()), Err(Error::Io { op: "open", .. })));
        assert!(matches!(open("/dev/null"), Err(Error::BadArgument(_))));
        // Found through PID 1's root as well (here the same root).
        remember_proc();
        std::fs::write(&p, vec![0u8; 10]).unwrap();
        assert_eq!(open(p.to_str().unwrap()).unwrap().size, 10);
        std::fs::remove_file(&p).unwrap();
    }
}
