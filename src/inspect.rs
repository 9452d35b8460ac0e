//! `dmulogd inspect PATH`: what a log device or file holds, read with
//! plain reads (never mapped, never written, direct I/O on a device), for the kernel's `disk` log
//! and dmulogd alike since they share the format.

use crate::bitmap::bitmap_bytes;
use crate::disk::{Header, BITMAP_OFFSET, HEADER_LEN};
use memmap2::MmapOptions;
use std::fmt::Write as _;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;

pub struct Report {
    pub text: String,
    pub valid: bool,
}

/// The dirty regions of a bitmap, taken in chunks of any size.
struct Scan {
    nr: u64,
    next: u64,
    dirty: u64,
    ranges: Vec<(u64, u64)>,
    limit: Option<usize>,
    more: u64,
}

impl Scan {
    fn new(nr: u64, limit: Option<usize>) -> Scan {
        Scan { nr, next: 0, dirty: 0, ranges: Vec::new(), limit, more: 0 }
    }

    /// The next bytes of the bitmap (bits past `nr` are ignored).
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == 0xff || self.next >= self.nr {
                self.next += 8;
                continue;
            }
            for k in 0..8 {
                let i = self.next + k;
                if i < self.nr && b & (1 << k) == 0 {
                    self.dirty += 1;
                    let full = self.limit.is_some_and(|l| self.ranges.len() >= l);
                    match self.ranges.last_mut() {
                        Some((_, end)) if *end + 1 == i => *end = i,
                        _ if full => self.more += 1,
                        _ => self.ranges.push((i, i)),
                    }
                }
            }
            self.next += 8;
        }
    }

    fn write(&self, t: &mut String) {
        let _ = writeln!(t, "clean: {}", self.nr - self.dirty);
        let _ = writeln!(t, "dirty: {}", self.dirty);
        let shown: Vec<String> =
            self.ranges.iter().map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
        let _ = writeln!(
            t,
            "dirty regions: {}{}",
            if shown.is_empty() { "none".to_owned() } else { shown.join(" ") },
            if self.more > 0 { format!(" ...and more (--limit {})", self.limit.unwrap_or(0)) } else { String::new() }
        );
    }
}

/// The header's verdict, or the report saying why there is no log.
fn header(name: &str, image: &[u8], t: &mut String) -> Option<(Header, u64)> {
    if image.len() < HEADER_LEN {
        let _ = writeln!(t, "{name}: {} bytes, too short for a dirty log header", image.len());
        return None;
    }
    let h = Header::from_disk(&image[..HEADER_LEN]);
    match h.validate() {
        Ok(Some(nr)) => Some((h, nr)),
        Ok(None) => {
            let _ = writeln!(t, "{name}: no dirty log (magic {:#010x}, want 0x4d695272 \"MiRr\")", h.magic);
            None
        }
        Err(v) => {
            let _ = writeln!(t, "{name}: dirty log of unknown version {v}");
            None
        }
    }
}

/// Describes the log in `image` (header + bitmap bytes).
pub fn describe(name: &str, image: &[u8]) -> Report {
    let mut t = String::new();
    let Some((h, nr)) = header(name, image, &mut t) else { return Report { text: t, valid: false } };
    let bytes = bitmap_bytes(nr).unwrap_or(u64::MAX);
    if (image.len() as u64) < BITMAP_OFFSET as u64 + bytes.min(u64::MAX - 1024) {
        let _ = writeln!(t, "{name}: header claims {nr} regions but the device is too small for their bitmap");
        return Report { text: t, valid: false };
    }
    let mut scan = Scan::new(nr, None);
    scan.feed(&image[BITMAP_OFFSET..]);
    let _ = writeln!(t, "{name}: dirty log, magic MiRr, version {}", h.version);
    let _ = writeln!(t, "regions: {nr}");
    let _ = writeln!(t, "bitmap: {bytes} bytes at offset {BITMAP_OFFSET}");
    scan.write(&mut t);
    Report { text: t, valid: true }
}

/// Reads the header, checks the device holds the bitmap it claims, then
/// scans the bitmap in bounded chunks (a header claiming 2^34 regions must
/// not make us read or hold gigabytes). A block device is read with
/// `O_DIRECT`: the kernel's `disk` log writes past the page cache, which
/// may hold stale pages as long as a live table keeps the device open.
/// Err: the device could not be read (exit status 2, where "no log" is 1).
pub fn inspect(path: &Path, limit: Option<usize>) -> std::io::Result<Report> {
    let f = File::open(path)?;
    let block = f.metadata()?.file_type().is_block_device();
    if block {
        // SAFETY: fcntl on a descriptor we own; no memory is passed.
        let flags = crate::sys::cvt(unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) })?;
        // SAFETY: as above.
        crate::sys::cvt(unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFL, flags | libc::O_DIRECT) })?;
    }
    let size = {
        use std::io::{Seek, SeekFrom};
        (&f).seek(SeekFrom::End(0))?
    };
    let name = path.display().to_string();
    // Direct I/O wants aligned buffers and lengths: whole 1 MiB units into
    // page-aligned anonymous memory.
    const UNIT: usize = 1 << 20;
    let mut buf = MmapOptions::new().len(UNIT).map_anon()?;
    let n = read_full(&f, &mut buf, 0)?;
    let mut t = String::new();
    let Some((h, nr)) = header(&name, &buf[..n], &mut t) else { return Ok(Report { text: t, valid: false }) };
    let bytes = bitmap_bytes(nr).unwrap_or(u64::MAX);
    if size < (BITMAP_OFFSET as u64).saturating_add(bytes) {
        let _ =
            writeln!(t, "{name}: header claims {nr} regions ({bytes}-byte bitmap) but the device holds {size} bytes");
        return Ok(Report { text: t, valid: false });
    }
    let mut scan = Scan::new(nr, limit);
    let end = BITMAP_OFFSET as u64 + bytes;
    let mut off = 0u64;
    let mut got = n;
    loop {
        let lo = usize::try_from((BITMAP_OFFSET as u64).saturating_sub(off)).unwrap_or(UNIT).min(got);
        let hi = usize::try_from(end.saturating_sub(off)).unwrap_or(UNIT).min(got);
        if lo < hi {
            scan.feed(&buf[lo..hi]);
        }
        off += UNIT as u64;
        if off >= end || got < UNIT {
            break;
        }
        got = read_full(&f, &mut buf, off)?;
    }
    let _ = writeln!(t, "{name}: dirty log, magic MiRr, version {}", h.version);
    let _ = writeln!(t, "regions: {nr}");
    let _ = writeln!(t, "bitmap: {bytes} bytes at offset {BITMAP_OFFSET}");
    scan.write(&mut t);
    Ok(Report { text: t, valid: true })
}

fn read_full(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_dirty_ranges() {
        let mut img = vec![0u8; BITMAP_OFFSET + 8];
        img[..16].copy_from_slice(&Header::new(20).to_disk());
        img[BITMAP_OFFSET] = 0b1111_0001; // 1,2,3 dirty
        img[BITMAP_OFFSET + 1] = 0xff;
        img[BITMAP_OFFSET + 2] = 0b0000_0111; // 19 dirty (bits >= 20 ignored)
        let r = describe("x", &img);
        assert!(r.valid);
        assert!(r.text.contains("regions: 20\n"), "{}", r.text);
        assert!(r.text.contains("dirty: 4\n"), "{}", r.text);
        assert!(r.text.contains("dirty regions: 1-3 19\n"), "{}", r.text);
    }

    #[test]
    fn invalid_images() {
        assert!(!describe("x", &[0u8; 8]).valid);
        assert!(!describe("x", &[0u8; 2048]).valid);
        let mut img = vec![0u8; 1030];
        img[..16].copy_from_slice(&Header::new(64).to_disk());
        assert!(!describe("x", &img).valid, "bitmap truncated");
    }

    #[test]
    fn a_huge_claim_is_refused_at_once_and_ranges_can_be_limited() {
        let p = std::env::temp_dir().join(format!("dmulogd-inspect-{}", std::process::id()));
        let mut img = vec![0u8; BITMAP_OFFSET + 8];
        img[..16].copy_from_slice(&Header::new(1 << 34).to_disk());
        std::fs::write(&p, &img).unwrap();
        let r = inspect(&p, None).unwrap();
        assert!(!r.valid && r.text.contains("device holds"), "{}", r.text);
        img[..16].copy_from_slice(&Header::new(64).to_disk());
        img[BITMAP_OFFSET..].copy_from_slice(&[0b1010_1010; 8]); // every other region dirty
        std::fs::write(&p, &img).unwrap();
        let r = inspect(&p, Some(3)).unwrap();
        assert!(r.text.contains("dirty: 32\n") && r.text.contains("dirty regions: 0 2 4 ...and more"), "{}", r.text);
        assert!(r.text.is_ascii());
        std::fs::remove_file(&p).unwrap();
    }
}
