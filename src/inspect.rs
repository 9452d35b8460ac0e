//! `dmulogd inspect PATH`: what a log device or file holds, read with
//! plain reads (never mapped, never written, direct I/O on a device), for the kernel's `disk` log
//! and dmulogd alike since they share the format.

use crate::bitmap::bitmap_bytes;
use crate::control::json_str;
use crate::disk::{Header, BITMAP_OFFSET, HEADER_LEN};
use memmap2::MmapOptions;
use std::fmt::Write as _;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;

/// What `inspect` found: a log, or why there is none.
pub struct Report {
    pub name: String,
    pub found: Result<LogInfo, String>,
}

/// A valid log's header and its bitmap's dirty regions.
pub struct LogInfo {
    pub version: u32,
    pub regions: u64,
    pub bitmap_bytes: u64,
    scan: Scan,
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
}

impl Report {
    /// A valid log was found (exit status 0; 1 otherwise).
    pub fn valid(&self) -> bool {
        self.found.is_ok()
    }

    /// The text `inspect` prints: one `key: value` per line (scripts in
    /// the VM suite parse "dirty regions:"), ASCII only.
    pub fn text(&self) -> String {
        let name = &self.name;
        let l = match &self.found {
            Err(why) => return format!("{name}: {why}\n"),
            Ok(l) => l,
        };
        let mut t = String::new();
        let _ = writeln!(t, "{name}: dirty log, magic MiRr, version {}", l.version);
        let _ = writeln!(t, "regions: {}", l.regions);
        let _ = writeln!(t, "bitmap: {} bytes at offset {BITMAP_OFFSET}", l.bitmap_bytes);
        let _ = writeln!(t, "clean: {}", l.regions - l.scan.dirty);
        let _ = writeln!(t, "dirty: {}", l.scan.dirty);
        let shown: Vec<String> =
            l.scan.ranges.iter().map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
        let _ = writeln!(
            t,
            "dirty regions: {}{}",
            if shown.is_empty() { "none".to_owned() } else { shown.join(" ") },
            if l.scan.more > 0 {
                format!(" ...and more (--limit {})", l.scan.limit.unwrap_or(0))
            } else {
                String::new()
            }
        );
        t
    }

    /// The same as one JSON object: `log` says whether one was found;
    /// without one, `reason`; with one, `dirty_ranges` as inclusive
    /// `[first, last]` pairs, `truncated` when `--limit` cut them short.
    pub fn json(&self) -> String {
        let path = json_str(self.name.as_bytes());
        match &self.found {
            Err(why) => format!("{{\"path\":{path},\"log\":false,\"reason\":{}}}\n", json_str(why.as_bytes())),
            Ok(l) => {
                let ranges: Vec<String> = l.scan.ranges.iter().map(|(a, b)| format!("[{a},{b}]")).collect();
                format!(
                    "{{\"path\":{path},\"log\":true,\"version\":{},\"regions\":{},\"bitmap_offset\":{BITMAP_OFFSET},\
                     \"bitmap_bytes\":{},\"clean\":{},\"dirty\":{},\"dirty_ranges\":[{}],\"truncated\":{}}}\n",
                    l.version,
                    l.regions,
                    l.bitmap_bytes,
                    l.regions - l.scan.dirty,
                    l.scan.dirty,
                    ranges.join(","),
                    l.scan.more > 0
                )
            }
        }
    }
}

/// The header's verdict, or why there is no log.
fn header(image: &[u8]) -> Result<(Header, u64), String> {
    if image.len() < HEADER_LEN {
        return Err(format!("{} bytes, too short for a dirty log header", image.len()));
    }
    let h = Header::from_disk(&image[..HEADER_LEN]);
    match h.validate() {
        Ok(Some(nr)) => Ok((h, nr)),
        Ok(None) => Err(format!("no dirty log (magic {:#010x}, want 0x4d695272 \"MiRr\")", h.magic)),
        Err(v) => Err(format!("dirty log of unknown version {v}")),
    }
}

/// Direct I/O wants aligned buffers and lengths: the log is read in whole
/// 1 MiB units into page-aligned anonymous memory.
const UNIT: usize = 1 << 20;

/// Reads the header, checks the device holds the bitmap it claims, then
/// scans the bitmap in bounded chunks (a header claiming 2^34 regions must
/// not make us read or hold gigabytes). `read(offset, buf)` fills `buf`
/// from `offset` on (short only at the end of the device).
fn scan_log(
    size: u64,
    limit: Option<usize>,
    mut read: impl FnMut(u64, &mut [u8]) -> std::io::Result<usize>,
    buf: &mut [u8],
) -> std::io::Result<Result<LogInfo, String>> {
    let n = read(0, buf)?;
    let (h, nr) = match header(&buf[..n]) {
        Ok(v) => v,
        Err(why) => return Ok(Err(why)),
    };
    let bytes = bitmap_bytes(nr).unwrap_or(u64::MAX);
    if size < (BITMAP_OFFSET as u64).saturating_add(bytes) {
        return Ok(Err(format!("header claims {nr} regions ({bytes}-byte bitmap) but the device holds {size} bytes")));
    }
    let mut scan = Scan::new(nr, limit);
    let end = BITMAP_OFFSET as u64 + bytes;
    let unit = buf.len() as u64;
    let mut off = 0u64;
    let mut got = n;
    loop {
        let lo = usize::try_from((BITMAP_OFFSET as u64).saturating_sub(off)).unwrap_or(usize::MAX).min(got);
        let hi = usize::try_from(end.saturating_sub(off)).unwrap_or(usize::MAX).min(got);
        if lo < hi {
            scan.feed(&buf[lo..hi]);
        }
        off += unit;
        if off >= end || (got as u64) < unit {
            break;
        }
        got = read(off, buf)?;
    }
    Ok(Ok(LogInfo { version: h.version, regions: nr, bitmap_bytes: bytes, scan }))
}

/// `dmulogd inspect PATH`. A block device is read with `O_DIRECT`: the
/// kernel's `disk` log writes past the page cache, which may hold stale
/// pages as long as a live table keeps the device open.
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
    let mut buf = MmapOptions::new().len(UNIT).map_anon()?;
    let found = scan_log(size, limit, |off, b| read_full(&f, b, off), &mut buf)?;
    Ok(Report { name: path.display().to_string(), found })
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

    /// Describes the log in `image` (header + bitmap bytes), as `inspect`
    /// would read it from a device holding exactly these bytes.
    fn describe(name: &str, image: &[u8], limit: Option<usize>) -> Report {
        let mut buf = vec![0u8; UNIT];
        let read = |off: u64, b: &mut [u8]| {
            let from = usize::try_from(off).unwrap_or(usize::MAX).min(image.len());
            let n = b.len().min(image.len() - from);
            b[..n].copy_from_slice(&image[from..from + n]);
            Ok(n)
        };
        let found = scan_log(image.len() as u64, limit, read, &mut buf).expect("reading memory cannot fail");
        Report { name: name.to_owned(), found }
    }

    #[test]
    fn reports_dirty_ranges() {
        let mut img = vec![0u8; BITMAP_OFFSET + 8];
        img[..16].copy_from_slice(&Header::new(20).to_disk());
        img[BITMAP_OFFSET] = 0b1111_0001; // 1,2,3 dirty
        img[BITMAP_OFFSET + 1] = 0xff;
        img[BITMAP_OFFSET + 2] = 0b0000_0111; // 19 dirty (bits >= 20 ignored)
        let r = describe("x", &img, None);
        assert!(r.valid());
        let t = r.text();
        assert!(t.contains("regions: 20\n"), "{t}");
        assert!(t.contains("dirty: 4\n"), "{t}");
        assert!(t.contains("dirty regions: 1-3 19\n"), "{t}");
        assert_eq!(
            r.json(),
            "{\"path\":\"x\",\"log\":true,\"version\":2,\"regions\":20,\"bitmap_offset\":1024,\"bitmap_bytes\":8,\
             \"clean\":16,\"dirty\":4,\"dirty_ranges\":[[1,3],[19,19]],\"truncated\":false}\n"
        );
        let r = describe("x", &img, Some(1));
        assert!(r.text().contains("dirty regions: 1-3 ...and more (--limit 1)\n"), "{}", r.text());
        assert!(r.json().contains("\"dirty\":4,\"dirty_ranges\":[[1,3]],\"truncated\":true}"), "{}", r.json());
    }

    #[test]
    fn invalid_images() {
        assert!(!describe("x", &[0u8; 8], None).valid());
        let r = describe("x\"y", &[0u8; 2048], None);
        assert_eq!(r.text(), "x\"y: no dirty log (magic 0x00000000, want 0x4d695272 \"MiRr\")\n");
        assert_eq!(
            r.json(),
            "{\"path\":\"x\\\"y\",\"log\":false,\"reason\":\"no dirty log (magic 0x00000000, want 0x4d695272 \\\"MiRr\\\")\"}\n"
        );
        let mut img = vec![0u8; 1030];
        img[..16].copy_from_slice(&Header::new(64).to_disk());
        assert!(!describe("x", &img, None).valid(), "bitmap truncated");
    }

    #[test]
    fn a_huge_claim_is_refused_at_once_and_ranges_can_be_limited() {
        let p = std::env::temp_dir().join(format!("dmulogd-inspect-{}", std::process::id()));
        let mut img = vec![0u8; BITMAP_OFFSET + 8];
        img[..16].copy_from_slice(&Header::new(1 << 34).to_disk());
        std::fs::write(&p, &img).unwrap();
        let r = inspect(&p, None).unwrap();
        assert!(!r.valid() && r.text().contains("device holds"), "{}", r.text());
        img[..16].copy_from_slice(&Header::new(64).to_disk());
        img[BITMAP_OFFSET..].copy_from_slice(&[0b1010_1010; 8]); // every other region dirty
        std::fs::write(&p, &img).unwrap();
        let r = inspect(&p, Some(3)).unwrap();
        let t = r.text();
        assert!(t.contains("dirty: 32\n") && t.contains("dirty regions: 0 2 4 ...and more"), "{t}");
        assert!(t.is_ascii());
        std::fs::remove_file(&p).unwrap();
    }
}
