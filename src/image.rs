//! A disk log's clean bitmap in memory, and what of it the device holds.
//!
//! Two images of the device's first `len` bytes (header + bitmap, at the
//! device's own offsets, page-aligned so whole pages can be written with
//! `O_DIRECT`):
//! - `mem`, the bitmap the kernel is answered from: MARK clears bits,
//!   CLEAR sets them;
//! - `disk`, the bytes last written to the device (or read from it), with
//!   every mark since applied: a dirty bit may reach the device at any
//!   time, a clean one only after a leg flush, so `disk` only ever holds
//!   bytes the device may hold.
//!
//! Keeping both is what lets a clean bit wait: a page is written from
//! `mem` whole only once the mirror's legs have been flushed; until then
//! it is written as `disk` has it, with its marks alone, so a region never
//! reads clean on the device before the data that made it clean is on
//! stable media on every leg (dm-log.c `disk_flush` keeps the same order
//! with its flush callback). No mapping of the device exists, so nothing
//! reaches it behind the log's back (background writeback of a shared
//! mapping could write any page at any time).
//!
//! Pages are remembered by why they must be written: `marked` pages carry
//! a mark (the next FLUSH must make them durable, one device cache flush
//! for all), `cleared` pages carry a clear that waits for a leg flush,
//! `staged` pages carry clean bits whose legs were flushed (copied into
//! `disk`, not written yet). Staged clean bits ride along with the next
//! write rather than costing one of their own: the kernel's write cycle
//! is CLEAR, FLUSH, MARK, FLUSH, so the FLUSH after a CLEAR flushes the
//! legs and the MARK that follows writes the clean bits with its marks,
//! one I/O instead of two. With no MARK to carry them, the loop's clear
//! timer writes them (a clean bit that never reaches the device only
//! costs a resync of its region after a crash).
//!
//! Whatever a write carries goes out in as few I/Os as possible: pages
//! closer than [`MERGE_GAP`] are written as one contiguous range, the pages
//! in between taken from `disk`, which the device already holds (or, after
//! a failed write, bytes that may legally be there: marks, and clean bits
//! whose legs were flushed). On a real device an I/O costs far more than a
//! few more pages in it: the kernel's own disk log writes its whole bitmap
//! in one I/O at every flush, and a MARK of 16 random regions of a large
//! bitmap written page by page was 16 I/Os where the kernel's is one.

use crate::bitmap::{page_size, Bitmap};
use crate::disk::BITMAP_OFFSET;
use std::io;

/// Distinct pages remembered one by one; past this every page between the
/// lowest and highest is written.
const PAGES_MAX: usize = 64;

/// Pages to write that are at most this many bytes apart go out in one
/// I/O with the bytes between them: rewriting up to 256 KiB the device
/// already holds costs less than another I/O (the kernel's disk log
/// rewrites its whole bitmap, 2 MiB at 2^24 regions, at every flush), and
/// the bound keeps a mark at each end of a huge bitmap from costing its
/// whole size.
const MERGE_GAP: usize = 256 << 10;

/// A set of page numbers, small and kept sorted (a binary search per
/// add; a write walks it in order with no allocation).
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
        let Err(at) = self.list.binary_search(&page) else { return };
        if self.list.len() == PAGES_MAX {
            let lo = self.list[0].min(page);
            let hi = self.list[PAGES_MAX - 1].max(page);
            self.span = Some((lo, hi));
            self.list.clear();
        } else {
            self.list.insert(at, page);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty() && self.span.is_none()
    }

    pub fn clear(&mut self) {
        self.list.clear();
        self.span = None;
    }

    /// Adds every page of `other`.
    fn extend(&mut self, other: &Pages) {
        match other.span {
            // A span is every page in it: keep it one, whatever `self` holds.
            Some((lo, hi)) => {
                let (mut lo, mut hi) = (lo, hi);
                self.for_each_run(0, |a, b| {
                    lo = lo.min(a);
                    hi = hi.max(b);
                });
                self.list.clear();
                self.span = Some((lo, hi));
            }
            None => other.list.iter().for_each(|&p| self.add(p)),
        }
    }

    /// Calls `f(first, last)` for the pages as ascending ranges, two
    /// ranges merged when at most `gap` pages lie between them (0: only
    /// adjacent ones).
    fn for_each_run(&self, gap: usize, mut f: impl FnMut(usize, usize)) {
        if let Some((lo, hi)) = self.span {
            return f(lo, hi);
        }
        let mut run: Option<(usize, usize)> = None;
        for &p in &self.list {
            run = match run {
                Some((lo, hi)) if p <= hi + 1 + gap => Some((lo, p)),
                Some((lo, hi)) => {
                    f(lo, hi);
                    Some((p, p))
                }
                None => Some((p, p)),
            };
        }
        if let Some((lo, hi)) = run {
            f(lo, hi);
        }
    }

    #[cfg(test)]
    fn runs(&self, gap: usize) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        self.for_each_run(gap, |lo, hi| v.push((lo, hi)));
        v
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
    staged: Pages,
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
            staged: Pages::default(),
            unflushed: false,
        })
    }

    pub fn bits(&self) -> &Bitmap {
        &self.mem
    }

    /// The image as the device holds it (what was last read or written),
    /// with marks not written yet.
    pub fn on_disk(&self) -> &[u8] {
        &self.disk.image()[..self.len]
    }

    fn page_of(&self, region: u64) -> usize {
        self.mem.byte_of(region) / self.page
    }

    /// MARK: the region is dirty, and its page must be durable before the
    /// next FLUSH is answered — even if the bit was 0 already (an earlier
    /// write of it may have failed, or not been flushed). A dirty bit may
    /// reach the device at any time, so it goes into `disk` at once: a
    /// write then sends `disk` as it is, with no pass over the page.
    pub fn mark(&mut self, region: u64) {
        self.mem.put(region, false);
        self.disk.put(region, false);
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

    /// Clean bits wait for the device (for a leg flush, or staged).
    pub fn has_clears(&self) -> bool {
        !self.cleared.is_empty() || !self.staged.is_empty()
    }

    /// Clean bits wait for a leg flush before they may be written.
    pub fn needs_leg_flush(&self) -> bool {
        !self.cleared.is_empty()
    }

    /// Reads the whole image from the device into both images.
    pub fn read(&mut self, io: &mut dyn BlockIo) -> io::Result<()> {
        let len = self.len;
        io.read_at(&mut self.disk.image_mut()[..len], 0)?;
        self.mem.image_mut()[..len].copy_from_slice(&self.disk.image()[..len]);
        self.marked.clear();
        self.cleared.clear();
        self.staged.clear();
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
        self.staged.clear();
    }

    /// Writes the whole in-memory image and flushes the device's cache
    /// (resume: dm-log.c writes the header and bitmap and flushes them).
    pub fn write_all(&mut self, io: &mut dyn BlockIo) -> Result<(), WriteError> {
        let len = self.len;
        self.disk.image_mut()[..len].copy_from_slice(&self.mem.image()[..len]);
        io.write_at(&self.disk.image()[..len], 0).map_err(WriteError::Write)?;
        self.marked.clear();
        self.cleared.clear();
        self.staged.clear();
        io.flush().map_err(WriteError::Flush)?;
        self.unflushed = false;
        Ok(())
    }

    /// Writes the marked pages as `disk` holds them — marks, and clean bits
    /// only where staged after a leg flush — with any staged pages, and no
    /// cache flush: MARK does this before it is answered, so a mark is on
    /// the device even if the daemon dies before the FLUSH — the kernel
    /// then reconnects and resends only the FLUSH, and the new daemon's
    /// RESUME, which reads the device, must find the mark there.
    pub fn write_marks(&mut self, io: &mut dyn BlockIo) -> Result<(), WriteError> {
        if self.staged.is_empty() {
            let marked = std::mem::take(&mut self.marked);
            let written = self.write_pages(io, &marked);
            self.marked = marked;
            written?;
        } else {
            let mut pages = std::mem::take(&mut self.staged);
            pages.extend(&self.marked);
            let written = self.write_pages(io, &pages);
            self.staged = pages;
            written?;
        }
        self.unflushed |= !self.marked.is_empty();
        self.marked.clear();
        self.staged.clear();
        Ok(())
    }

    /// Writes what is pending and flushes the device's cache once if a
    /// mark was written since the last flush (a clear that does not reach
    /// stable media only costs a resync after a crash). `legs_flushed`:
    /// the mirror's legs were just flushed, so the clean bits waiting for
    /// that are staged. Staged clean bits go out with marks, or, with
    /// `clears_too` (the clear timer, POSTSUSPEND, exit), on their own;
    /// a FLUSH leaves them for the next MARK. On failure everything stays
    /// pending, so a retry writes it again.
    pub fn write_pending(
        &mut self,
        io: &mut dyn BlockIo,
        legs_flushed: bool,
        clears_too: bool,
    ) -> Result<(), WriteError> {
        if legs_flushed {
            self.stage_clears();
        }
        if !self.marked.is_empty() || (clears_too && !self.staged.is_empty()) {
            self.write_marks(io)?;
        }
        if self.unflushed {
            io.flush().map_err(WriteError::Flush)?;
            self.unflushed = false;
        }
        Ok(())
    }

    /// The legs were just flushed: every clean bit cleared so far may reach
    /// the device, so its page goes into `disk` whole from memory.
    fn stage_clears(&mut self) {
        let (page, len) = (self.page, self.len);
        let (mem, disk) = (&self.mem, &mut self.disk);
        self.cleared.for_each_run(0, |lo, hi| {
            let r = lo * page..((hi + 1) * page).min(len);
            if !r.is_empty() {
                disk.image_mut()[r.clone()].copy_from_slice(&mem.image()[r]);
            }
        });
        self.staged.extend(&self.cleared);
        self.cleared.clear();
    }

    /// Writes `pages` as `disk` holds them. Pages closer than
    /// [`MERGE_GAP`] share one I/O, with the device's own bytes between.
    fn write_pages(&mut self, io: &mut dyn BlockIo, pages: &Pages) -> Result<(), WriteError> {
        let (page, len) = (self.page, self.len);
        let mut result = Ok(());
        pages.for_each_run(MERGE_GAP / page, |lo, hi| {
            let r = lo * page..((hi + 1) * page).min(len);
            if result.is_ok() && !r.is_empty() {
                result = io.write_at(&self.disk.image()[r.clone()], r.start as u64).map_err(WriteError::Write);
            }
        });
        result
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
        let (mut dev, mut img, bits) = clean_device(3);
        let len = dev.bytes.len();
        // Marks on pages 0, 1 and 3 (the bitmap starts 1 KiB in): one
        // write from the first to the last (page 2 as the device has it),
        // one flush.
        img.mark(0);
        img.mark(8 * page as u64);
        img.mark(bits - 1);
        img.write_pending(&mut dev, false, true).unwrap();
        assert_eq!(dev.calls, vec![format!("write 0+{len}"), "flush".into()]);
        assert!(!bit(&dev, 0) && !bit(&dev, bits - 1));
        // A clear without a leg flush stays in memory, even when a mark
        // writes its page.
        dev.calls.clear();
        img.clear(0);
        img.mark(1);
        img.write_pending(&mut dev, false, true).unwrap();
        assert!(img.bits().test(0) && !bit(&dev, 0), "clean in memory, dirty on disk");
        assert!(img.has_clears());
        // With the legs flushed it goes out, without a cache flush.
        dev.calls.clear();
        img.write_pending(&mut dev, true, true).unwrap();
        assert!(bit(&dev, 0));
        assert_eq!(dev.calls, vec![format!("write 0+{page}")]);
        // Nothing pending: nothing written.
        dev.calls.clear();
        img.write_pending(&mut dev, true, true).unwrap();
        assert!(dev.calls.is_empty());
    }

    /// A device of `pages` pages of bitmap, all clean, read into an image.
    /// A device holding a log of `bits` regions, every bitmap byte
    /// `fill`, and its image read from it.
    fn device(bits: u64, fill: u8) -> (MemDev, DiskImage) {
        let len = BITMAP_OFFSET + bits as usize / 8;
        let mut dev = MemDev { bytes: vec![fill; len], ..Default::default() };
        let mut img = DiskImage::new(bits, len).unwrap();
        img.read(&mut dev).unwrap();
        (dev, img)
    }

    fn clean_device(pages: usize) -> (MemDev, DiskImage, u64) {
        let bits = (8 * page_size() * pages) as u64;
        let (dev, img) = device(bits, 0xff);
        (dev, img, bits)
    }

    /// However many pages a MARK or a FLUSH touches, within
    /// [`MERGE_GAP`]: one write, one cache flush (the kernel's disk log
    /// writes its bitmap in one I/O; page by page was an I/O per region on
    /// a large bitmap). Pending clean bits without a leg flush are not in
    /// it; after one, marks and clears share the write.
    #[test]
    fn one_write_and_one_flush_however_many_pages() {
        let page = page_size();
        let (mut dev, mut img, bits) = clean_device(64);
        let per_page = 8 * page as u64;
        // A clear waiting for its legs, in a page the write spans.
        img.clear(0);
        img.mark(per_page * 2 + 5);
        img.write_marks(&mut dev).unwrap();
        dev.calls.clear();
        img.clear(per_page * 2 + 5);
        // 32 regions on 32 pages, as a MARK of 32 random regions.
        let regions: Vec<u64> = (0..32).map(|k| (k * 2 + 1) * per_page + k).collect();
        regions.iter().for_each(|&r| img.mark(r));
        img.write_marks(&mut dev).unwrap();
        assert_eq!(dev.calls.len(), 1, "{:?}", dev.calls);
        assert!(regions.iter().all(|&r| !bit(&dev, r)), "every mark written");
        assert!(bit(&dev, 0) && !bit(&dev, per_page * 2 + 5), "no clean bit before a leg flush");
        img.write_pending(&mut dev, false, true).unwrap();
        assert_eq!(dev.calls[1..], ["flush".to_string()]);
        // An integrated FLUSH: marks and the legs-flushed clears, one write
        // (from the first to the last page), one flush.
        dev.calls.clear();
        img.mark(bits - 1);
        img.mark(per_page * 10);
        img.write_pending(&mut dev, true, false).unwrap();
        let first = (BITMAP_OFFSET + (per_page as usize * 2 + 5) / 8) / page * page;
        assert_eq!(dev.calls, vec![format!("write {first}+{}", dev.bytes.len() - first), "flush".into()]);
        assert!(bit(&dev, per_page * 2 + 5) && !bit(&dev, bits - 1) && !bit(&dev, per_page * 10));
        // Nothing new: no I/O at all.
        dev.calls.clear();
        img.write_pending(&mut dev, true, true).unwrap();
        assert!(dev.calls.is_empty());
    }

    /// Pages farther apart than [`MERGE_GAP`] are separate writes: a mark
    /// at each end of a huge bitmap does not rewrite all of it.
    #[test]
    fn far_apart_pages_are_written_apart() {
        let page = page_size();
        let pages = MERGE_GAP / page + 3;
        let (mut dev, mut img, bits) = clean_device(pages);
        img.mark(0);
        img.mark(bits - 1);
        img.write_marks(&mut dev).unwrap();
        let last = (BITMAP_OFFSET + (bits as usize - 1) / 8) / page * page;
        assert_eq!(dev.calls, vec![format!("write 0+{page}"), format!("write {last}+{}", dev.bytes.len() - last)]);
    }

    #[test]
    fn a_mark_is_on_the_device_before_its_flush() {
        let (mut dev, mut img) = device(64, 0xff);
        let len = dev.bytes.len();
        img.clear(9); // pending clear: never written by a mark
        img.mark(3);
        img.write_marks(&mut dev).unwrap();
        assert!(!bit(&dev, 3), "a daemon killed now must leave the mark on the device");
        assert_eq!(dev.calls, vec![format!("write 0+{len}")], "no cache flush at MARK");
        dev.calls.clear();
        img.write_pending(&mut dev, false, true).unwrap();
        assert_eq!(dev.calls, vec!["flush".to_string()], "the FLUSH makes it durable");
    }

    #[test]
    fn a_mark_of_a_dirty_bit_is_still_made_durable() {
        let (mut dev, mut img) = device(64, 0);
        img.mark(3);
        img.write_pending(&mut dev, true, true).unwrap();
        assert_eq!(dev.calls.last().map(String::as_str), Some("flush"));
    }

    #[test]
    fn failures_keep_everything_pending() {
        let (mut dev, mut img) = device(64, 0xff);
        img.mark(3);
        dev.fail_write = true;
        assert!(matches!(img.write_pending(&mut dev, true, true), Err(WriteError::Write(_))));
        dev.fail_write = false;
        dev.fail_flush = true;
        assert!(matches!(img.write_pending(&mut dev, true, true), Err(WriteError::Flush(_))));
        dev.fail_flush = false;
        dev.calls.clear();
        // Written already (direct I/O has no page cache to lose it): the
        // retry flushes again.
        img.write_pending(&mut dev, true, true).unwrap();
        assert_eq!(dev.calls, vec!["flush".to_string()]);
    }

    #[test]
    fn many_pages_become_a_span() {
        let mut p = Pages::default();
        for k in (0..200).rev() {
            p.add(k * 2);
        }
        assert_eq!(p.runs(0), vec![(0, 398)]);
        p.clear();
        assert!(p.is_empty());
        p.add(5);
        p.add(5);
        p.add(3);
        p.add(4);
        assert_eq!(p.runs(0), vec![(3, 5)]);
    }
}
