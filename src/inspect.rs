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

/// Ranges printed before "…and N more".
const MAX_RANGES: usize = 64;

pub struct Report {
    pub text: String,
    pub valid: bool,
}

/// Describes the log in `image` (header + bitmap bytes).
pub fn describe(name: &str, image: &[u8]) -> Report {
    let mut t = String::new();
    if image.len() < HEADER_LEN {
        let _ = writeln!(t, "{name}: {} bytes, too short for a dirty log header", image.len());
        return Report { text: t, valid: false };
    }
    let h = Header::from_disk(&image[..HEADER_LEN]);
    let nr = match h.validate() {
        Ok(Some(nr)) => nr,
        Ok(None) => {
            let _ = writeln!(t, "{name}: no dirty log (magic {:#010x}, want 0x4d695272 \"MiRr\")", h.magic);
            return Report { text: t, valid: false };
        }
        Err(v) => {
            let _ = writeln!(t, "{name}: dirty log of unknown version {v}");
            return Report { text: t, valid: false };
        }
    };
    let bytes = bitmap_bytes(nr).and_then(|b| usize::try_from(b).ok()).unwrap_or(usize::MAX);
    let Some(bitmap) = image.get(BITMAP_OFFSET..BITMAP_OFFSET.saturating_add(bytes)) else {
        let _ = writeln!(t, "{name}: header claims {nr} regions but the device is too small for their bitmap");
        return Report { text: t, valid: false };
    };
    let clean = |i: u64| bitmap[usize::try_from(i / 8).expect("fits")] & (1 << (i % 8)) != 0;
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let mut dirty = 0u64;
    for i in 0..nr {
        if !clean(i) {
            dirty += 1;
            match ranges.last_mut() {
                Some((_, end)) if *end + 1 == i => *end = i,
                _ => ranges.push((i, i)),
            }
        }
    }
    let _ = writeln!(t, "{name}: dirty log, magic MiRr, version {}", h.version);
    let _ = writeln!(t, "regions: {nr}");
    let _ = writeln!(t, "bitmap: {bytes} bytes at offset {BITMAP_OFFSET}");
    let _ = writeln!(t, "clean: {}", nr - dirty);
    let _ = writeln!(t, "dirty: {dirty}");
    let shown: Vec<String> =
        ranges.iter().take(MAX_RANGES).map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
    let more = ranges.len().saturating_sub(MAX_RANGES);
    let _ = writeln!(
        t,
        "dirty regions: {}{}",
        if shown.is_empty() { "none".to_owned() } else { shown.join(" ") },
        if more > 0 { format!(" …and {more} more ranges") } else { String::new() }
    );
    Report { text: t, valid: true }
}

/// Reads the header, then as much bitmap as it claims. A block device is
/// read with `O_DIRECT`: the kernel's `disk` log writes past the page
/// cache, which may hold stale pages as long as a live table keeps the
/// device open.
pub fn inspect(path: &Path) -> std::io::Result<Report> {
    let f = File::open(path)?;
    let block = f.metadata()?.file_type().is_block_device();
    if block {
        // SAFETY: fcntl on a descriptor we own; no memory is passed.
        let flags = crate::sys::cvt(unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) })?;
        // SAFETY: as above.
        crate::sys::cvt(unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFL, flags | libc::O_DIRECT) })?;
    }
    // Direct I/O wants aligned buffers and lengths: read whole 64 KiB units
    // into page-aligned anonymous memory.
    const UNIT: usize = 64 << 10;
    let mut image = MmapOptions::new().len(UNIT).map_anon()?;
    let n = read_full(&f, &mut image, 0)?;
    let mut len = n;
    if n >= HEADER_LEN {
        if let Ok(Some(nr)) = Header::from_disk(&image[..HEADER_LEN]).validate() {
            let want = bitmap_bytes(nr).and_then(|b| usize::try_from(b).ok()).unwrap_or(0).min(1 << 30);
            let total = (BITMAP_OFFSET + want).div_ceil(UNIT) * UNIT;
            if total > UNIT && n == UNIT {
                let mut all = MmapOptions::new().len(total).map_anon()?;
                all[..UNIT].copy_from_slice(&image[..]);
                len = UNIT + read_full(&f, &mut all[UNIT..], UNIT as u64)?;
                image = all;
            }
        }
    }
    Ok(describe(&path.display().to_string(), &image[..len]))
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
}
