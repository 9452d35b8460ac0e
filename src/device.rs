//! Finding and opening a log device named in a table line.
//!
//! The kernel passes the table's argument unchanged: `MAJ:MIN` (what LVM
//! writes), a block-device path, or — for tests and file-backed setups — a
//! regular file. In an initramfs without udev there may be no node for
//! `MAJ:MIN`, so resolution tries, in order: `/dev/block/MAJ:MIN`, the
//! `DEVNAME` that `/sys/dev/block/MAJ:MIN/uevent` gives under `/dev`, and
//! finally a private node made with mknod(2) in the daemon's run directory.
//! Every candidate is checked to really be that block device.

use crate::error::Error;
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub struct LogDevice {
    pub file: File,
    /// The node or file actually opened.
    pub path: PathBuf,
    /// `MAJ:MIN` for a block device, else the path as given.
    pub name: String,
    /// Set for block devices: what the CTR reply names for dm_get_device.
    pub devno: Option<(u32, u32)>,
    pub size: u64,
}

/// Parses `MAJ:MIN` (decimal, as dm prints device numbers).
pub fn parse_devno(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(':')?;
    let ok = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
    (ok(a) && ok(b)).then(|| Some((a.parse().ok()?, b.parse().ok()?)))?
}

fn is_block(path: &Path, devno: (u32, u32)) -> bool {
    std::fs::metadata(path)
        .map(|m| m.file_type().is_block_device() && m.rdev() == libc::makedev(devno.0, devno.1))
        .unwrap_or(false)
}

fn mknod_block(path: &Path, devno: (u32, u32)) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call;
    // mknod only reads it.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFBLK | 0o600, libc::makedev(devno.0, devno.1)) };
    crate::sys::cvt(r).map(drop)
}

/// Finds a node for block device `devno`.
pub fn resolve_devno(devno: (u32, u32), run_dir: &Path) -> Result<PathBuf, Error> {
    let (maj, min) = devno;
    let by_num = PathBuf::from(format!("/dev/block/{maj}:{min}"));
    if is_block(&by_num, devno) {
        return Ok(by_num);
    }
    if let Ok(uevent) = std::fs::read_to_string(format!("/sys/dev/block/{maj}:{min}/uevent")) {
        if let Some(name) = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME=")) {
            let p = Path::new("/dev").join(name);
            if is_block(&p, devno) {
                return Ok(p);
            }
        }
    }
    let private = run_dir.join(format!("blk-{maj}-{min}"));
    if is_block(&private, devno) {
        return Ok(private);
    }
    std::fs::create_dir_all(run_dir).map_err(|e| Error::io("create", &run_dir.display().to_string(), e))?;
    let _ = std::fs::remove_file(&private);
    mknod_block(&private, devno).map_err(|e| Error::io("mknod", &private.display().to_string(), e))?;
    Ok(private)
}

/// Opens the log device named by `arg` read-write, without O_EXCL: the
/// kernel itself claims the device through dm_get_device once our CTR reply
/// names it, and two tables (live and inactive) may share one log device.
pub fn open(arg: &str, run_dir: &Path) -> Result<LogDevice, Error> {
    let path = match parse_devno(arg) {
        Some(devno) => resolve_devno(devno, run_dir)?,
        None => PathBuf::from(arg),
    };
    let shown = path.display().to_string();
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| Error::io("open", &shown, e))?;
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
    let name = match devno {
        Some((a, b)) => format!("{a}:{b}"),
        None => arg.to_owned(),
    };
    Ok(LogDevice { file, path, name, devno, size })
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
        let d = open(p.to_str().unwrap(), Path::new("/nonexistent")).unwrap();
        assert_eq!(d.size, 5000);
        assert_eq!(d.devno, None);
        assert_eq!(d.name, p.to_str().unwrap());
        std::fs::remove_file(&p).unwrap();
        assert!(matches!(open(p.to_str().unwrap(), Path::new("/x")), Err(Error::Io { op: "open", .. })));
        assert!(matches!(open("/dev/null", Path::new("/x")), Err(Error::BadArgument(_))));
    }
}
