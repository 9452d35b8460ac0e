//! The mirror's legs, found through the device-mapper ioctl interface.
//!
//! dm-log.c flushes every leg (its flush callback: an empty PREFLUSH bio)
//! before it writes a bitmap that carries new clean bits, so a write that
//! completed on a leg with a volatile cache is on stable media before its
//! region reads clean. dm-log-userspace gives the server no such callback
//! and no leg in the CTR, so dmulogd looks the legs up: every mirror table,
//! live or inactive, whose `userspace` log names the log's uuid, lists its
//! legs as `MAJ:MIN` (the kernel prints the table, not the user's words);
//! they are opened read-only and `fdatasync`ed, which sends the same
//! PREFLUSH.
//!
//! Only table *text* is asked for (`DM_STATUS_TABLE_FLAG`): a mirror's
//! status *info* asks its log server, which is us, and would deadlock.
//! The legs are flushed directly, never through the mirror: a flush of the
//! mirror would wait for its worker, which waits for our reply.
//!
//! `struct dm_ioctl` (include/uapi/linux/dm-ioctl.h), native byte order:
//! ```text
//!   0 u32 version[3]   12 u32 data_size    16 u32 data_start
//!  20 u32 target_count 24 i32 open_count   28 u32 flags
//!  32 u32 event_nr     36 u32 padding      40 u64 dev
//!  48 char name[128]  176 char uuid[129]  305 char data[7]    (312 bytes)
//! ```
//! DM_LIST_DEVICES answers `dm_name_list` entries at `data_start`
//! (`u64 dev; u32 next; char name[]`, `next` relative to the entry, 0 for
//! the last, `dev` 0 for an empty list); DM_TABLE_STATUS answers
//! `dm_target_spec` entries (`u64 start; u64 length; i32 status; u32 next;
//! char type[16]`, 40 bytes, then the NUL-terminated parameters; `next`
//! relative to `data_start`).

use crate::sys::cvt;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};

const HEADER: usize = 312;
const NAME: std::ops::Range<usize> = 48..176;
const TARGET_SPEC_LEN: usize = 40;
const FLAG_STATUS_TABLE: u32 = 1 << 4;
const FLAG_BUFFER_FULL: u32 = 1 << 8;
const FLAG_QUERY_INACTIVE: u32 = 1 << 12;
const CMD_LIST_DEVICES: u32 = 2;
const CMD_TABLE_STATUS: u32 = 12;
/// `MAPPER_CTRL_MINOR` on the misc major: /dev/mapper/control.
const CONTROL: (u32, u32) = (10, 236);

/// What the log needs from the mirror's legs: one flush of them all.
pub trait Legs {
    fn flush(&mut self) -> io::Result<()>;
}

/// Legs opened by `MAJ:MIN` (or, for tests, by path).
pub struct LegFiles {
    files: Vec<(String, File)>,
}

impl LegFiles {
    pub fn names(&self) -> Vec<&str> {
        self.files.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Opens each leg read-only (a flush needs no write access).
    pub fn open(names: &[String]) -> io::Result<LegFiles> {
        let mut files = Vec::new();
        for n in names {
            let f = match crate::device::parse_devno(n) {
                Some(devno) => {
                    crate::device::open_devno(devno, libc::O_RDONLY).map_err(|e| io::Error::other(e.to_string()))?.0
                }
                None => File::open(n)?,
            };
            files.push((n.clone(), f));
        }
        Ok(LegFiles { files })
    }
}

impl Legs for LegFiles {
    fn flush(&mut self) -> io::Result<()> {
        for (name, f) in &self.files {
            f.sync_data().map_err(|e| io::Error::new(e.kind(), format!("flush leg {name}: {e}")))?;
        }
        Ok(())
    }
}

fn ne32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn cstr(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

/// The device-mapper control node.
pub struct Control(File);

impl Control {
    pub fn open() -> io::Result<Control> {
        match File::options().read(true).write(true).open("/dev/mapper/control") {
            Ok(f) => Ok(Control(f)),
            // An initramfs without devtmpfs' node, or after switch-root.
            Err(_) => {
                std::fs::create_dir_all(crate::device::NODE_DIR)?;
                let node = std::path::Path::new(crate::device::NODE_DIR).join("mapper-control");
                open_char_node(&node, CONTROL).map(Control)
            }
        }
    }

    /// One ioctl; grows the buffer while the kernel says it was too small.
    fn call(&self, cmd: u32, flags: u32, name: &[u8]) -> io::Result<Vec<u8>> {
        let mut size = 16 << 10;
        loop {
            let mut buf = vec![0u8; size];
            buf[0..12].copy_from_slice(&[4u32, 0, 0].map(u32::to_ne_bytes).concat());
            let total = u32::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
            buf[12..16].copy_from_slice(&total.to_ne_bytes());
            buf[16..20].copy_from_slice(&u32::try_from(HEADER).expect("312 fits").to_ne_bytes());
            buf[28..32].copy_from_slice(&flags.to_ne_bytes());
            let n = name.len().min(NAME.len() - 1);
            buf[NAME.start..NAME.start + n].copy_from_slice(&name[..n]);
            let req = libc::_IOWR::<[u8; HEADER]>(0xfd, cmd);
            // SAFETY: `buf` is a dm_ioctl header followed by `size - 312`
            // bytes of room, and data_size tells the kernel exactly that.
            cvt(unsafe { libc::ioctl(self.0.as_raw_fd(), req, buf.as_mut_ptr()) })?;
            if ne32(&buf, 28) & FLAG_BUFFER_FULL != 0 && size < 16 << 20 {
                size *= 4;
                continue;
            }
            return Ok(buf);
        }
    }

    /// Names of every mapped device.
    pub fn list(&self) -> io::Result<Vec<Vec<u8>>> {
        let buf = self.call(CMD_LIST_DEVICES, 0, &[])?;
        let start = usize::try_from(ne32(&buf, 16)).unwrap_or(usize::MAX);
        let mut names = Vec::new();
        let mut at = start;
        while at + 12 <= buf.len() {
            let dev = u64::from_ne_bytes(buf[at..at + 8].try_into().expect("8 bytes"));
            if dev == 0 {
                break;
            }
            names.push(cstr(&buf[at + 12..]).to_vec());
            let next = usize::try_from(ne32(&buf, at + 8)).unwrap_or(0);
            if next == 0 {
                break;
            }
            at += next;
        }
        Ok(names)
    }

    /// `(target type, parameters)` of a device's live or inactive table.
    pub fn table(&self, name: &[u8], inactive: bool) -> io::Result<Vec<(String, String)>> {
        let flags = FLAG_STATUS_TABLE | if inactive { FLAG_QUERY_INACTIVE } else { 0 };
        let buf = self.call(CMD_TABLE_STATUS, flags, name)?;
        let start = usize::try_from(ne32(&buf, 16)).unwrap_or(usize::MAX);
        let count = ne32(&buf, 20);
        let mut out = Vec::new();
        let mut at = start;
        for _ in 0..count {
            if at + TARGET_SPEC_LEN > buf.len() {
                break;
            }
            let ty = String::from_utf8_lossy(cstr(&buf[at + 24..at + 40])).into_owned();
            let params = String::from_utf8_lossy(cstr(&buf[at + TARGET_SPEC_LEN..])).into_owned();
            out.push((ty, params));
            at = start + usize::try_from(ne32(&buf, at + 20)).unwrap_or(usize::MAX / 2);
        }
        Ok(out)
    }
}

/// The legs of a mirror table whose userspace log has `uuid`, from the
/// mirror target's parameters as the kernel prints them:
/// `userspace <argc> <uuid> [integrated_flush] <type> <args...> <nr_legs>
/// <MAJ:MIN> <offset>... [<nr_features> <feature>...]`.
pub fn mirror_legs(params: &str, uuid: &[u8]) -> Option<Vec<String>> {
    let w: Vec<&str> = params.split_ascii_whitespace().collect();
    if w.first() != Some(&"userspace") {
        return None;
    }
    let argc: usize = w.get(1)?.parse().ok()?;
    if w.get(2)?.as_bytes() != uuid {
        return None;
    }
    let at = 2 + argc;
    let legs: usize = w.get(at)?.parse().ok()?;
    (0..legs).map(|k| w.get(at + 1 + 2 * k).map(|s| (*s).to_owned())).collect()
}

/// Every leg of every table (live or inactive) whose userspace log names
/// `uuid`; None when no such table exists.
pub fn find_legs(uuid: &[u8]) -> io::Result<Option<Vec<String>>> {
    let ctl = Control::open()?;
    let mut legs: Vec<String> = Vec::new();
    let mut found = false;
    for name in ctl.list()? {
        for inactive in [false, true] {
            // A device removed meanwhile: ENXIO; skip it.
            let Ok(targets) = ctl.table(&name, inactive) else { continue };
            for (ty, params) in targets {
                if ty != "mirror" {
                    continue;
                }
                if let Some(l) = mirror_legs(&params, uuid) {
                    found = true;
                    for leg in l {
                        if !legs.contains(&leg) {
                            legs.push(leg);
                        }
                    }
                }
            }
        }
    }
    Ok(found.then_some(legs))
}

/// Where a log's legs come from.
#[derive(Clone, Debug, Default)]
pub enum LegSource {
    /// The device-mapper tables (production).
    #[default]
    DeviceMapper,
    /// These paths, for every log (tests: `--test-legs`).
    Paths(Vec<String>),
}

impl LegSource {
    /// Finds and opens the legs of the mirror whose log has `uuid`.
    pub fn open(&self, uuid: &[u8]) -> io::Result<Option<LegFiles>> {
        let names = match self {
            LegSource::Paths(p) => p.clone(),
            LegSource::DeviceMapper => match find_legs(uuid)? {
                Some(n) => n,
                None => return Ok(None),
            },
        };
        LegFiles::open(&names).map(Some)
    }
}

/// Opens a character device node by number: /dev/mapper/control when no
/// node exists (made in the private node directory).
pub(crate) fn open_char_node(path: &std::path::Path, devno: (u32, u32)) -> io::Result<File> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())?;
    // SAFETY: c is a valid C string for the duration of the call.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(devno.0, devno.1)) };
    if r != 0 && io::Error::last_os_error().kind() != io::ErrorKind::AlreadyExists {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: c is a valid C string for the duration of the call.
    let fd = cvt(unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })?;
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { File::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legs_from_kernel_table_text() {
        let p = "userspace 4 MY-UUID disk 253:2 1024 2 253:0 0 253:1 0 1 handle_errors";
        assert_eq!(mirror_legs(p, b"MY-UUID"), Some(vec!["253:0".into(), "253:1".into()]));
        assert_eq!(mirror_legs(p, b"OTHER"), None);
        let p = "userspace 5 U integrated_flush core 1024 nosync 3 8:16 0 8:32 2048 8:48 0";
        assert_eq!(mirror_legs(p, b"U"), Some(vec!["8:16".into(), "8:32".into(), "8:48".into()]));
        assert_eq!(mirror_legs("disk 2 253:2 1024 2 8:0 0 8:16 0", b"U"), None);
        assert_eq!(mirror_legs("userspace 4 U core 1024 nosync 2 8:0", b"U"), None, "truncated");
    }

    #[test]
    fn ioctl_numbers_match_the_kernel_header() {
        if cfg!(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "s390x")) {
            // DM_LIST_DEVICES and DM_TABLE_STATUS as strace prints them.
            assert_eq!(libc::_IOWR::<[u8; HEADER]>(0xfd, CMD_LIST_DEVICES) as u64, 0xc138_fd02);
            assert_eq!(libc::_IOWR::<[u8; HEADER]>(0xfd, CMD_TABLE_STATUS) as u64, 0xc138_fd0c);
            assert_eq!(libc::_IO(0x12, 104) as u64, 0x1268, "BLKSSZGET");
        }
    }
}
