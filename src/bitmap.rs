//! A bitmap living in a memory mapping: anonymous memory (a disk log's
//! in-memory image, every recovering bitmap, the sync and core clean
//! bitmaps when there is no state directory) or a shared mapping of a
//! state file in tmpfs (`crate::state`), which survives a daemon restart.
//!
//! Bit order is the kernel's `test_bit_le`: region `i` is bit `i % 8` of
//! byte `i / 8`, whatever the host's endianness, so a bitmap's bytes are
//! exactly the bytes of the on-disk format (`crate::disk`).
//!
//! A bitmap may sit at an offset inside its mapping, behind a header: the
//! state files' header, or the 1 KiB on-disk header of a disk log's image,
//! which keeps the image's bytes at the device's own offsets (so whole
//! pages of it can be written with direct I/O).
//!
//! Nothing here writes a log device: a disk log writes its image
//! explicitly ([`crate::image`]), never through a mapping, so no page can
//! reach the device behind the log's back.

use memmap2::{MmapMut, MmapOptions};
use std::fs::File;
use std::io;

pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|&p| p > 0).unwrap_or(4096)
}

/// Bytes a bitmap of `bits` bits takes: rounded up to 64 bits, as the
/// kernel's dm-log sizes its `clean_bits` (an array of unsigned long).
pub fn bitmap_bytes(bits: u64) -> Option<u64> {
    bits.checked_add(63).map(|b| b / 64 * 8)
}

pub struct Bitmap {
    map: MmapMut,
    offset: usize,
    bits: u64,
    bytes: usize,
    /// A shared file mapping, registered with [`crate::fault`].
    file_backed: bool,
}

impl Bitmap {
    /// A zeroed bitmap in anonymous memory. Pages are allocated on first
    /// write, so large mostly-untouched bitmaps cost little resident memory.
    pub fn anon(bits: u64) -> io::Result<Bitmap> {
        Self::anon_image(0, bits, 0)
    }

    /// A zeroed bitmap at `offset` of an anonymous, page-aligned mapping of
    /// at least `len` bytes: a disk log's image, header bytes in front.
    pub fn anon_image(offset: usize, bits: u64, len: usize) -> io::Result<Bitmap> {
        let bytes = Self::byte_len(bits)?;
        let total = (offset + bytes).max(len).max(1);
        let map = MmapOptions::new().len(total).map_anon()?;
        Ok(Bitmap { map, offset, bits, bytes, file_backed: false })
    }

    /// Maps `offset + bitmap_bytes(bits)` bytes of a state file shared; the
    /// bitmap starts at `offset`. The caller made the file large enough.
    pub fn map_file(file: &File, offset: usize, bits: u64) -> io::Result<Bitmap> {
        let bytes = Self::byte_len(bits)?;
        // SAFETY: the mapping is MAP_SHARED over a state file in the
        // daemon's private state directory, which nothing else writes; the
        // length is explicit and the file was allocated to it. If the file
        // is truncated anyway, the SIGBUS is survived (crate::fault).
        let map = unsafe { MmapOptions::new().len(offset + bytes).map_mut(file)? };
        crate::fault::register(map.as_ptr() as usize, map.len());
        Ok(Bitmap { map, offset, bits, bytes, file_backed: true })
    }

    fn byte_len(bits: u64) -> io::Result<usize> {
        bitmap_bytes(bits)
            .and_then(|b| usize::try_from(b).ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bitmap too large"))
    }

    pub fn bits(&self) -> u64 {
        self.bits
    }

    /// The bitmap's bytes, as they are on disk.
    pub fn bytes(&self) -> &[u8] {
        &self.map[self.offset..self.offset + self.bytes]
    }

    /// The whole mapping: header, bitmap and any rounding after it.
    pub fn image(&self) -> &[u8] {
        &self.map
    }

    /// The whole mapping, writable (loading an image, writing a header).
    pub fn image_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }

    #[inline]
    fn locate(&self, i: u64) -> (usize, u8) {
        debug_assert!(i < self.bits);
        // i < bits and bits fit a usize byte count, so i / 8 fits too.
        let byte = usize::try_from(i / 8).expect("bit index fits the mapping");
        (self.offset + byte, 1u8 << (i % 8))
    }

    /// Offset in the mapping of the byte holding bit `i`.
    #[inline]
    pub fn byte_of(&self, i: u64) -> usize {
        self.locate(i).0
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
        self.map[b] = new;
        new != old
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
            self.map[b] = fill;
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
        for i in self.bits..end {
            let byte = self.offset + usize::try_from(i / 8).expect("fits");
            self.map[byte] &= !(1u8 << (i % 8));
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

    /// Makes this bitmap's bits a copy of `other`'s (same size).
    pub fn copy_from(&mut self, other: &Bitmap) {
        assert_eq!(self.bytes, other.bytes);
        let (o, n) = (self.offset, self.bytes);
        self.map[o..o + n].copy_from_slice(other.bytes());
    }

    /// True when `addr` lies in this bitmap's file mapping.
    pub fn maps_addr(&self, addr: usize) -> bool {
        let start = self.map.as_ptr() as usize;
        self.file_backed && addr >= start && addr < start + self.map.len()
    }

    pub fn is_file_backed(&self) -> bool {
        self.file_backed
    }
}

impl Drop for Bitmap {
    fn drop(&mut self) {
        if self.file_backed {
            crate::fault::unregister(self.map.as_ptr() as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn image_keeps_the_bitmap_at_its_device_offset() {
        let mut b = Bitmap::anon_image(1024, 100, 1536).unwrap();
        assert_eq!(b.image().len(), 1536);
        assert_eq!(b.map.as_ptr() as usize % page_size(), 0, "page-aligned for direct I/O");
        b.put(9, true);
        assert_eq!(b.image()[1025], 0b10);
        assert_eq!(b.byte_of(9), 1025);
    }

    #[test]
    fn state_file_round_trip() {
        let p = std::env::temp_dir().join(format!("dmulogd-bitmap-{}", std::process::id()));
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&p).unwrap();
        file.set_len(160 + 16).unwrap();
        let mut b = Bitmap::map_file(&file, 160, 100).unwrap();
        assert!(b.is_file_backed() && b.maps_addr(b.map.as_ptr() as usize + 5));
        b.put(99, true);
        drop(b);
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes[160 + 12], 0b1000);
        std::fs::remove_file(&p).unwrap();
    }
}
