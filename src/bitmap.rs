//! A bitmap living in a memory mapping: a shared mapping of the log device
//! (the on-disk clean bitmap) or anonymous memory (core logs, the sync and
//! recovering bitmaps).
//!
//! Bit order is the kernel's `test_bit_le`: region `i` is bit `i % 8` of
//! byte `i / 8`, whatever the host's endianness, so the mapped bytes are
//! exactly the bytes on disk.
//!
//! The mapping remembers which pages had a bit *cleared* since the last
//! sync, so making marks durable costs one `msync` of those pages, never
//! of the whole bitmap: flush cost does not grow with the log. Bits that
//! are *set* are not remembered: in the clean bitmap a set bit is a clear
//! (a region clean again), which may reach the disk lazily — syncing its
//! page at every FLUSH would cost a second writeback per write.

use memmap2::{MmapMut, MmapOptions};
use std::fs::File;
use std::io;

/// Distinct touched pages remembered one by one; past this the range
/// between the lowest and highest is synced (only dirty pages in it are
/// written by the kernel, so this stays cheap).
const TOUCHED_MAX: usize = 64;

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|&p| p > 0).unwrap_or(4096)
}

/// Bytes a bitmap of `bits` bits takes: rounded up to 64 bits, as the
/// kernel's dm-log sizes its `clean_bits` (an array of unsigned long).
pub fn bitmap_bytes(bits: u64) -> Option<u64> {
    bits.checked_add(63).map(|b| b / 64 * 8)
}

#[derive(Default)]
struct Touched {
    pages: Vec<usize>,
    overflow: bool,
    lo: usize,
    hi: usize,
}

impl Touched {
    #[inline]
    fn add(&mut self, page: usize) {
        if self.pages.last() == Some(&page) {
            return;
        }
        if self.pages.is_empty() && !self.overflow {
            self.lo = page;
            self.hi = page;
        } else {
            self.lo = self.lo.min(page);
            self.hi = self.hi.max(page);
        }
        if self.overflow || self.pages.contains(&page) {
            return;
        }
        if self.pages.len() == TOUCHED_MAX {
            self.overflow = true;
            self.pages.clear();
        } else {
            self.pages.push(page);
        }
    }

    fn is_empty(&self) -> bool {
        self.pages.is_empty() && !self.overflow
    }

    fn reset(&mut self) {
        self.pages.clear();
        self.overflow = false;
    }
}

pub struct Bitmap {
    map: MmapMut,
    offset: usize,
    bits: u64,
    bytes: usize,
    page: usize,
    file_backed: bool,
    touched: Touched,
}

impl Bitmap {
    /// A zeroed bitmap in anonymous memory. Pages are allocated on first
    /// write, so large mostly-untouched bitmaps cost little resident memory.
    pub fn anon(bits: u64) -> io::Result<Bitmap> {
        let bytes = Self::byte_len(bits)?;
        let map = MmapOptions::new().len(bytes.max(1)).map_anon()?;
        Ok(Bitmap { map, offset: 0, bits, bytes, page: page_size(), file_backed: false, touched: Touched::default() })
    }

    /// Maps `offset + bitmap_bytes(bits)` bytes of `file` shared; the
    /// bitmap starts at `offset`. The caller has checked the file is large
    /// enough. Returns the bitmap and nothing is read yet.
    ///
    /// dmulogd must be the only writer of a live log device: another
    /// process writing the same blocks would change the bitmap under us
    /// (this is why file-backed mappings are `unsafe` in memmap2).
    pub fn map_file(file: &File, offset: usize, bits: u64) -> io::Result<Bitmap> {
        let bytes = Self::byte_len(bits)?;
        // SAFETY: the mapping is MAP_SHARED over a log device this daemon
        // owns while the log is live (see above); the length is explicit,
        // so memmap2 never asks the (possibly block) file for its size.
        let map = unsafe { MmapOptions::new().len(offset + bytes).map_mut(file)? };
        Ok(Bitmap { map, offset, bits, bytes, page: page_size(), file_backed: true, touched: Touched::default() })
    }

    fn byte_len(bits: u64) -> io::Result<usize> {
        bitmap_bytes(bits)
            .and_then(|b| usize::try_from(b).ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bitmap too large"))
    }

    pub fn bits(&self) -> u64 {
        self.bits
    }

    /// The bitmap's bytes (the on-disk image for a file-backed bitmap).
    pub fn bytes(&self) -> &[u8] {
        &self.map[self.offset..self.offset + self.bytes]
    }

    /// The bytes in front of the bitmap (the on-disk header), for writing.
    /// They live in the first page(s), which are recorded as touched.
    pub fn header_mut(&mut self) -> &mut [u8] {
        if self.file_backed && self.offset > 0 {
            for p in 0..=(self.offset - 1) / self.page {
                self.touched.add(p);
            }
        }
        &mut self.map[..self.offset]
    }

    #[inline]
    fn locate(&self, i: u64) -> (usize, u8) {
        debug_assert!(i < self.bits);
        // i < bits and bits fit a usize byte count, so i / 8 fits too.
        let byte = usize::try_from(i / 8).expect("bit index fits the mapping");
        (self.offset + byte, 1u8 << (i % 8))
    }

    #[inline]
    pub fn test(&self, i: u64) -> bool {
        let (b, m) = self.locate(i);
        self.map[b] & m != 0
    }

    /// Sets bit `i` to `v`; true when it changed.
    #[inline]
    pub fn put(&mut self, i: u64, v: bool) -> bool {
        let (b, m) = self.locate(i);
        let old = self.map[b];
        let new = if v { old | m } else { old & !m };
        if new == old {
            return false;
        }
        self.map[b] = new;
        if self.file_backed && !v {
            self.touched.add(b / self.page);
        }
        true
    }

    /// Sets bits `[from, to)` to `v` (`to <= bits`).
    pub fn put_range(&mut self, from: u64, to: u64, v: bool) {
        let mut i = from;
        while i < to && i % 8 != 0 {
            self.put(i, v);
            i += 1;
        }
        let fill = if v { 0xff } else { 0 };
        while i + 8 <= to {
            let (b, _) = self.locate(i);
            if self.map[b] != fill {
                self.map[b] = fill;
                if self.file_backed && !v {
                    self.touched.add(b / self.page);
                }
            }
            i += 8;
        }
        while i < to {
            self.put(i, v);
            i += 1;
        }
    }

    /// Clears the padding bits past `bits` up to the 64-bit boundary, as the
    /// kernel does at resume ("device has shrunk").
    pub fn clear_padding(&mut self) {
        let end = u64::try_from(self.bytes).expect("usize fits u64") * 8;
        let mut i = self.bits;
        while i < end {
            let byte = self.offset + usize::try_from(i / 8).expect("fits");
            let m = 1u8 << (i % 8);
            if self.map[byte] & m != 0 {
                self.map[byte] &= !m;
                if self.file_backed {
                    self.touched.add(byte / self.page);
                }
            }
            i += 1;
        }
    }

    /// Number of set bits (padding bits are kept clear).
    pub fn count_ones(&self) -> u64 {
        self.bytes()
            .chunks_exact(8)
            .map(|c| u64::from(u64::from_le_bytes(c.try_into().expect("8 bytes")).count_ones()))
            .sum()
    }

    /// Lowest clear bit at or after `from`, if any below `bits`.
    pub fn next_zero(&self, from: u64) -> Option<u64> {
        let bytes = self.bytes();
        let mut i = from;
        while i < self.bits && i % 64 != 0 {
            if !self.test(i) {
                return Some(i);
            }
            i += 1;
        }
        while i < self.bits {
            let w = usize::try_from(i / 8).expect("fits");
            let word = u64::from_le_bytes(bytes[w..w + 8].try_into().expect("8 bytes"));
            if word != u64::MAX {
                let z = i + u64::from((!word).trailing_zeros());
                return (z < self.bits).then_some(z);
            }
            i += 64;
        }
        None
    }

    /// Makes this bitmap a copy of `other` (same size).
    pub fn copy_from(&mut self, other: &Bitmap) {
        assert_eq!(self.bytes, other.bytes);
        let (o, n) = (self.offset, self.bytes);
        self.map[o..o + n].copy_from_slice(other.bytes());
        if self.file_backed {
            let first = o / self.page;
            let last = (o + n - 1) / self.page;
            self.touched.add(first);
            self.touched.add(last);
        }
    }

    /// True when `addr` lies in this bitmap's file mapping.
    pub fn maps_addr(&self, addr: usize) -> bool {
        let start = self.map.as_ptr() as usize;
        self.file_backed && addr >= start && addr < start + self.map.len()
    }

    pub fn has_touched(&self) -> bool {
        !self.touched.is_empty()
    }

    /// Makes every page touched since the last sync durable: `msync(MS_SYNC)`
    /// per run of pages, which on a block device also flushes its write
    /// cache (blkdev_fsync). A no-op for anonymous bitmaps.
    pub fn sync_touched(&mut self) -> io::Result<()> {
        if !self.file_backed || self.touched.is_empty() {
            self.touched.reset();
            return Ok(());
        }
        let page = self.page;
        let len = self.map.len();
        let mut runs: Vec<(usize, usize)> = Vec::new();
        if self.touched.overflow {
            runs.push((self.touched.lo, self.touched.hi));
        } else {
            let pages = &mut self.touched.pages;
            pages.sort_unstable();
            for &p in pages.iter() {
                match runs.last_mut() {
                    Some((_, hi)) if *hi + 1 == p => *hi = p,
                    _ => runs.push((p, p)),
                }
            }
        }
        for (lo, hi) in runs {
            let start = lo * page;
            let end = ((hi + 1) * page).min(len);
            // memmap2 checks the range against the mapping before msync.
            self.map.flush_range(start, end - start)?;
        }
        self.touched.reset();
        Ok(())
    }

    /// Dirties every touched page again (rewriting one byte in place).
    /// After a failed writeback the kernel marks the page clean and reports
    /// the error once, so a plain retry of msync "succeeds" with nothing
    /// written; this makes the retry a real write.
    pub fn redirty_touched(&mut self) {
        if !self.file_backed {
            return;
        }
        let pages: Vec<usize> = if self.touched.overflow {
            (self.touched.lo..=self.touched.hi).collect()
        } else {
            self.touched.pages.clone()
        };
        for p in pages {
            let at = p * self.page;
            if at < self.map.len() {
                let byte = &mut self.map[at];
                // SAFETY: `byte` is a valid, aligned, exclusive reference
                // into the mapping; volatile keeps the same-value store.
                unsafe { std::ptr::write_volatile(byte, std::ptr::read_volatile(byte)) };
            }
        }
    }

    /// Makes the whole mapping durable.
    pub fn sync_all(&mut self) -> io::Result<()> {
        if self.file_backed {
            self.map.flush()?;
        }
        self.touched.reset();
        Ok(())
    }

    /// Keeps the mapping resident so later accesses never fault on the
    /// device (a failing device would otherwise raise SIGBUS). Best effort.
    pub fn lock_resident(&self) -> io::Result<()> {
        self.map.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn sizes_round_to_64_bits() {
        assert_eq!(bitmap_bytes(1), Some(8));
        assert_eq!(bitmap_bytes(64), Some(8));
        assert_eq!(bitmap_bytes(65), Some(16));
        assert_eq!(bitmap_bytes(u64::MAX), None);
    }

    #[test]
    fn bit_order_is_little_endian_bytes() {
        let mut b = Bitmap::anon(100).unwrap();
        assert!(b.put(0, true));
        assert!(b.put(9, true));
        assert!(b.put(63, true));
        assert!(!b.put(63, true));
        assert_eq!(b.bytes()[0], 0b0000_0001);
        assert_eq!(b.bytes()[1], 0b0000_0010);
        assert_eq!(b.bytes()[7], 0b1000_0000);
        assert_eq!(b.count_ones(), 3);
    }

    #[test]
    fn ranges_padding_and_search() {
        let mut b = Bitmap::anon(130).unwrap();
        b.put_range(0, 130, true);
        assert_eq!(b.count_ones(), 130);
        assert_eq!(b.next_zero(0), None);
        b.put(77, false);
        b.put(129, false);
        assert_eq!(b.next_zero(0), Some(77));
        assert_eq!(b.next_zero(78), Some(129));
        assert_eq!(b.next_zero(130), None);
        b.put_range(3, 70, false);
        assert_eq!(b.count_ones(), 130 - 67 - 2);
        // Padding bits set by a raw write are cleared.
        b.map[16] = 0xff; // bits 128..136
        b.clear_padding();
        assert_eq!(b.map[16], 0b0000_0011); // 128, 129 valid; 130.. padding
    }

    #[test]
    fn only_cleared_bits_wait_for_the_next_sync() {
        let p = std::env::temp_dir().join(format!("dmulogd-lazy-{}", std::process::id()));
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&p).unwrap();
        file.set_len(1024 + 4096 * 4).unwrap();
        let mut b = Bitmap::map_file(&file, 1024, 8 * 4096 * 3).unwrap();
        b.put(8 * 4096 * 2, true); // a clear: lazy
        b.put(3, true);
        assert!(!b.has_touched());
        b.put(3, false); // a mark: must be synced
        assert!(b.has_touched());
        assert_eq!(b.touched.pages, vec![0]);
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn file_round_trip_through_msync() {
        let dir = std::env::temp_dir().join(format!("dmulogd-bitmap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        file.set_len(1024 + 4096 * 3).unwrap();
        let bits = 8 * 4096 * 2 + 5;
        let mut b = Bitmap::map_file(&file, 1024, bits).unwrap();
        b.put_range(0, bits, true);
        b.sync_all().unwrap();
        b.put(0, false);
        b.put(8 * 4096 + 3, false); // a different page
        b.put(bits - 1, false);
        assert!(b.has_touched());
        b.sync_touched().unwrap();
        assert!(!b.has_touched());
        let mut disk = Vec::new();
        std::fs::File::open(&path).unwrap().read_to_end(&mut disk).unwrap();
        assert_eq!(disk[1024], 0xfe);
        assert_eq!(disk[1024 + 4096], !(1u8 << 3));
        let last = usize::try_from((bits - 1) / 8).unwrap();
        assert_eq!(disk[1024 + last] & (1 << ((bits - 1) % 8)), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn touched_pages_overflow_to_a_range() {
        let mut t = Touched::default();
        for p in (0..200).rev() {
            t.add(p * 2);
        }
        assert!(t.overflow);
        assert_eq!((t.lo, t.hi), (0, 398));
        t.reset();
        assert!(t.is_empty());
        t.add(5);
        t.add(5);
        t.add(3);
        assert_eq!(t.pages, vec![5, 3]);
    }
}
