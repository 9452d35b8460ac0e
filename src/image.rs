//! A disk log's clean bitmap in memory, and what of it the device holds.
//!
//! Two images of the device's first `len` bytes (header + bitmap, at the
//! device's own offsets, page-aligned so whole pages can be written with
//! `O_DIRECT`):
//! - `mem`, the bitmap the kernel is answered from: MARK clears bits,
//!   CLEAR sets them;
//! - `disk`, the bytes last written to the device (or read from it).
//!
//! Keeping both is what lets a clean bit wait: a page is written from
//! `mem` whole only once the mirror's legs have been flushed; until then
//! it is written with its marks alone (`disk &= mem`), so a region never
//! reads clean on the device before the data that made it clean is on
//! stable media on every leg (dm-log.c `disk_flush` keeps the same order
//! with its flush callback). No mapping of the device exists, so nothing
//! reaches it behind the log's back (background writeback of a shared
//! mapping could write any page at any time).
//!
//! Pages are remembered by why they must be written: `marked` pages carry
//! a mark (the next FLUSH must make them durable, one device cache flush
//! for all), `cleared` pages carry a clear (written after a leg flush).

use crate::bitmap::{page_size, Bitmap};
use crate::disk::BITMAP_OFFSET;
use std::io;

/// Distinct pages remembered one by one; past this every page between the
/// lowest and highest is written.
const PAGES_MAX: usize = 64;

/// A set of page numbers, small and ordered by arrival.
#[derive(Default, Debug)]
pub struct Pages {
    list: Vec<usize>,
    /// Past `PAGES_MAX`: every page in `lo..=hi`.
    span: Option<(usize, usize)>,
}

impl Pages {
    #[inline]
    pub fn add(&mut self, page: usize) {
        if let Some((lo, hi)) = &mut self.span {
            *lo = (*lo).min(page);
            *hi = (*hi).max(page);
            return;
        }
        if self.list.last() == Some(&page) || self.list.contains(&page) {
            return;
        }
        if self.list.len() == PAGES_MAX {
            let lo = self.list.iter().copied().min().unwrap_or(page).min(page);
            let hi = self.list.iter().copied().max().unwrap_or(page).max(page);
            self.span = Some((lo, hi));
            self.list.clear();
        } else {
            self.list.push(page);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty() && self.span.is_none()
    }

    pub fn clear(&mut self) {
        self.list.clear();
        self.span = None;
    }

    /// Runs of consecutive pages, ascending: `(first, last)`.
    fn runs(&self) -> Vec<(usize, usize)> {
        if let Some(span) = self.span {
            return vec![span];
        }
        let mut pages = self.list.clone();
        pages.sort_unstable();
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for p in pages {
            match runs.last_mut() {
                Some((_, hi)) if *hi + 1 == p => *hi = p,
                _ => runs.push((p, p)),
            }
        }
        runs
    }
}

/// What a disk log needs from its device: reads and writes that reach the
/// device itself (no page cache in between for a block device), and a
/// flush of its volatile write cache.
pub trait BlockIo {
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
}

/// Why a write of the image failed: the status letters of dm-log.c.
#[derive(Debug)]
pub enum WriteError {
    /// Writing a page failed (`D`).
    Write(io::Error),
    /// The device's cache flush failed (`F`).
    Flush(io::Error),
}

pub struct DiskImage {
    mem: Bitmap,
    disk: Bitmap,
    /// Bytes of the image on the device: header + bitmap, rounded up to
    /// the device's logical block size.
    len: usize,
    page: usize,
    marked: Pages,
    cleared: Pages,
    /// Marks were written since the device's cache was last flushed.
    unflushed: bool,
}

impl DiskImage {
    /// An image of `bits` regions, `len` bytes on the device.
    pub fn new(bits: u64, len: usize) -> io::Result<DiskImage> {
        Ok(DiskImage {
            mem: Bitmap::anon_image(BITMAP_OFFSET, bits, len)?,
            disk: Bitmap::anon_image(BITMAP_OFFSET, bits, len)?,
            len,
            page: page_size(),
            marked: Pages::default(),
            cleared: Pages::default(),
            unflushed: false,
        })
    }

    pub fn bits(&self) -> &Bitmap {
        &self.mem
    }

    /// The image as the device holds it (what was last read or written).
    pub fn on_disk(&self) -> &[u8] {
        &self.disk.image()[..self.len]
    }

    fn page_of(&self, region: u64) -> usize {
        self.mem.byte_of(region) / self.page
    }

    /// MARK: the region is dirty, and its page must be durable before the
    /// next FLUSH is answered — even if the bit was 0 already (an earlier
    /// write of it may have failed, or not been flushed).
    pub fn mark(&mut self, region: u64) {
        self.mem.put(region, false);
        self.marked.add(self.page_of(region));
    }

    /// CLEAR: the region is clean in memory; on the device once the legs
    /// are flushed.
    pub fn clear(&mut self, region: u64) {
        if self.mem.put(region, true) {
            self.cleared.add(self.page_of(region));
        }
    }

    /// Marks not yet durable (written or not).
    pub fn has_marks(&self) -> bool {
        !self.marked.is_empty() || self.unflushed
    }

    pub fn has_clears(&self) -> bool {
        !self.cleared.is_empty()
    }

    /// Reads the whole image from the device into both images.
    pub fn read(&mut self, io: &mut dyn BlockIo) -> io::Result<()> {
        let len = self.len;
        io.read_at(&mut self.disk.image_mut()[..len], 0)?;
        self.mem.image_mut()[..len].copy_from_slice(&self.disk.image()[..len]);
        self.marked.clear();
        self.cleared.clear();
        self.unflushed = false;
        Ok(())
    }

    /// The in-memory image, for building it at resume (header and bits);
    /// [`DiskImage::write_all`] then writes all of it.
    pub fn mem_mut(&mut self) -> &mut Bitmap {
        &mut self.mem
    }

    /// Forgets what the device holds: every bit dirty, nothing pending
    /// (the device could not be read).
    pub fn reset(&mut self) {
        let n = self.mem.bits();
        self.mem.put_range(0, n, false);
        self.disk.put_range(0, n, false);
        self.marked.clear();
        self.cleared.clear();
    }

    /// Writes the whole in-memory image and flushes the device's cache
    /// (resume: dm-log.c writes the header and bitmap and flushes them).
    pub fn write_all(&mut self, io: &mut dyn BlockIo) -> Result<(), WriteError> {
        let len = self.len;
        self.disk.image_mut()[..len].copy_from_slice(&self.mem.image()[..len]);
        io.write_at(&self.disk.image()[..len], 0).map_err(WriteError::Write)?;
        self.marked.clear();
        self.cleared.clear();
        io.flush().map_err(WriteError::Flush)?;
        self.unflushed = false;
        Ok(())
    }

    /// Writes the marked pages, marks only (no clean bit goes out), and no
    /// cache flush: MARK does this before it is answered, so a mark is on
    /// the device even if the daemon dies before the FLUSH — the kernel
    /// then reconnects and resends only the FLUSH, and the new daemon's
    /// RESUME, which reads the device, must find the mark there.
    pub fn write_marks(&mut self, io: &mut dyn BlockIo) -> Result<(), WriteError> {
        let pages = std::mem::take(&mut self.marked);
        if let Err(e) = self.write_runs(io, &pages, false) {
            self.marked = pages;
            return Err(e);
        }
        self.unflushed |= !pages.is_empty();
        Ok(())
    }

    /// Writes what is pending and flushes the device's cache once if a
    /// mark was written since the last flush (a clear that does not reach
    /// stable media only costs a resync after a crash). `legs_flushed`:
    /// the mirror's legs were just flushed, so clean bits may go out;
    /// otherwise pages are written with their marks only and clears stay
    /// pending. On failure everything stays pending, so a retry writes it
    /// again.
    pub fn write_pending(&mut self, io: &mut dyn BlockIo, legs_flushed: bool) -> Result<(), WriteError> {
        self.write_marks(io)?;
        if legs_flushed && !self.cleared.is_empty() {
            let pages = std::mem::take(&mut self.cleared);
            if let Err(e) = self.write_runs(io, &pages, true) {
                self.cleared = pages;
                return Err(e);
            }
        }
        if self.unflushed {
            io.flush().map_err(WriteError::Flush)?;
            self.unflushed = false;
        }
        Ok(())
    }

    /// Writes `pages` from memory: whole (`with_clears`, after a leg
    /// flush) or with their marks alone (`disk &= mem`: a bit goes to 0
    /// where memory has 0 and stays as the device has it elsewhere; the
    /// header bytes agree in both images).
    fn write_runs(&mut self, io: &mut dyn BlockIo, pages: &Pages, with_clears: bool) -> Result<(), WriteError> {
        for (lo, hi) in pages.runs() {
            let start = lo * self.page;
            let end = ((hi + 1) * self.page).min(self.len);
            if start >= end {
                continue;
            }
            let (mem, disk) = (&self.mem.image()[start..end], &mut self.disk.image_mut()[start..end]);
            if with_clears {
                disk.copy_from_slice(mem);
            } else {
                disk.iter_mut().zip(mem).for_each(|(d, m)| *d &= m);
            }
            io.write_at(&self.disk.image()[start..end], start as u64).map_err(WriteError::Write)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    /// A device in memory that records every call.
    #[derive(Default)]
    pub struct MemDev {
        pub bytes: Vec<u8>,
        pub calls: Vec<String>,
        pub fail_write: bool,
        pub fail_flush: bool,
    }

    impl BlockIo for MemDev {
        fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            let o = offset as usize;
            buf.copy_from_slice(&self.bytes[o..o + buf.len()]);
            Ok(())
        }
        fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
            if self.fail_write {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            let o = offset as usize;
            self.bytes[o..o + buf.len()].copy_from_slice(buf);
            self.calls.push(format!("write {o}+{}", buf.len()));
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            if self.fail_flush {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            self.calls.push("flush".into());
            Ok(())
        }
    }

    fn bit(dev: &MemDev, r: u64) -> bool {
        dev.bytes[BITMAP_OFFSET + (r / 8) as usize] & (1 << (r % 8)) != 0
    }

    #[test]
    fn marks_are_written_and_flushed_once_clears_wait_for_the_legs() {
        let page = page_size();
        let bits = (8 * page * 3) as u64;
        let len = BITMAP_OFFSET + bits as usize / 8;
        let mut dev = MemDev { bytes: vec![0xff; len], ..Default::default() };
        let mut img = DiskImage::new(bits, len).unwrap();
        img.read(&mut dev).unwrap();
        // Marks on pages 0, 1 and 3 (the bitmap starts 1 KiB in): two
        // runs, two writes, one flush.
        img.mark(0);
        img.mark(8 * page as u64);
        img.mark(bits - 1);
        img.write_pending(&mut dev, false).unwrap();
        let last = 3 * page;
        assert_eq!(
            dev.calls,
            vec![format!("write 0+{}", 2 * page), format!("write {last}+{}", len - last), "flush".into()]
        );
        assert!(!bit(&dev, 0) && !bit(&dev, bits - 1));
        // A clear without a leg flush stays in memory, even when a mark
        // writes its page.
        dev.calls.clear();
        img.clear(0);
        img.mark(1);
        img.write_pending(&mut dev, false).unwrap();
        assert!(img.bits().test(0) && !bit(&dev, 0), "clean in memory, dirty on disk");
        assert!(img.has_clears());
        // With the legs flushed it goes out, without a cache flush.
        dev.calls.clear();
        img.write_pending(&mut dev, true).unwrap();
        assert!(bit(&dev, 0));
        assert_eq!(dev.calls, vec![format!("write 0+{page}")]);
        // Nothing pending: nothing written.
        dev.calls.clear();
        img.write_pending(&mut dev, true).unwrap();
        assert!(dev.calls.is_empty());
    }

    #[test]
    fn a_mark_is_on_the_device_before_its_flush() {
        let len = BITMAP_OFFSET + 8;
        let mut dev = MemDev { bytes: vec![0xff; len], ..Default::default() };
        let mut img = DiskImage::new(64, len).unwrap();
        img.read(&mut dev).unwrap();
        img.clear(9); // pending clear: never written by a mark
        img.mark(3);
        img.write_marks(&mut dev).unwrap();
        assert!(!bit(&dev, 3), "a daemon killed now must leave the mark on the device");
        assert_eq!(dev.calls, vec![format!("write 0+{len}")], "no cache flush at MARK");
        dev.calls.clear();
        img.write_pending(&mut dev, false).unwrap();
        assert_eq!(dev.calls, vec!["flush".to_string()], "the FLUSH makes it durable");
    }

    #[test]
    fn a_mark_of_a_dirty_bit_is_still_made_durable() {
        let len = BITMAP_OFFSET + 8;
        let mut dev = MemDev { bytes: vec![0; len], ..Default::default() };
        let mut img = DiskImage::new(64, len).unwrap();
        img.read(&mut dev).unwrap();
        img.mark(3);
        img.write_pending(&mut dev, true).unwrap();
        assert_eq!(dev.calls.last().map(String::as_str), Some("flush"));
    }

    #[test]
    fn failures_keep_everything_pending() {
        let len = BITMAP_OFFSET + 8;
        let mut dev = MemDev { bytes: vec![0xff; len], ..Default::default() };
        let mut img = DiskImage::new(64, len).unwrap();
        img.read(&mut dev).unwrap();
        img.mark(3);
        dev.fail_write = true;
        assert!(matches!(img.write_pending(&mut dev, true), Err(WriteError::Write(_))));
        dev.fail_write = false;
        dev.fail_flush = true;
        assert!(matches!(img.write_pending(&mut dev, true), Err(WriteError::Flush(_))));
        dev.fail_flush = false;
        dev.calls.clear();
        // Written already (direct I/O has no page cache to lose it): the
        // retry flushes again.
        img.write_pending(&mut dev, true).unwrap();
        assert_eq!(dev.calls, vec!["flush".to_string()]);
    }

    #[test]
    fn many_pages_become_a_span() {
        let mut p = Pages::default();
        for k in (0..200).rev() {
            p.add(k * 2);
        }
        assert_eq!(p.runs(), vec![(0, 398)]);
        p.clear();
        assert!(p.is_empty());
        p.add(5);
        p.add(5);
        p.add(3);
        p.add(4);
        assert_eq!(p.runs(), vec![(3, 5)]);
    }
}
