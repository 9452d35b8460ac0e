//! The on-disk format of a dirty log, byte-compatible with the kernel's own
//! `disk` log (drivers/md/dm-log.c), so a log device can move between the
//! kernel's log and dmulogd in both directions without a resync.
//!
//! ```text
//! offset  size  what (little-endian)
//!      0     4  magic      0x4D695272 ("MiRr" read as LE bytes "rRiM")
//!      4     4  version    2 (1 is read as 2 on little-endian hosts)
//!      8     8  nr_regions regions the bitmap below describes
//!     16  1008  unused
//!   1024     n  clean bitmap: region i = bit i%8 of byte i/8, 1 = clean;
//!               n = nr_regions rounded up to 64 bits, in bytes
//! ```
//!
//! (docs/protocol.md §5 says how the kernel reads and writes it.) The
//! in-memory header is a separate type converted only by
//! [`Header::to_disk`] / [`Header::from_disk`], as dm-log.c does with
//! `header_to_disk()` / `header_from_disk()`.

/// `MIRROR_MAGIC`. A header without it means "no log here": a new log.
pub const MAGIC: u32 = 0x4D69_5272;
/// `MIRROR_DISK_VERSION`. Version 1 differs only on big-endian hosts (it
/// stored the bitmap in host order), so a little-endian reader upgrades it.
pub const DISK_VERSION: u32 = 2;
/// The bitmap starts 2 sectors in (`LOG_OFFSET`).
pub const BITMAP_OFFSET: usize = 1024;
pub const HEADER_LEN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub magic: u32,
    pub version: u32,
    pub nr_regions: u64,
}

impl Header {
    pub fn new(nr_regions: u64) -> Header {
        Header { magic: MAGIC, version: DISK_VERSION, nr_regions }
    }

    pub fn from_disk(b: &[u8]) -> Header {
        let le32 = |r: std::ops::Range<usize>| u32::from_le_bytes(b[r].try_into().expect("4 bytes"));
        Header {
            magic: le32(0..4),
            version: le32(4..8),
            nr_regions: u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")),
        }
    }

    pub fn to_disk(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.magic.to_le_bytes());
        b[4..8].copy_from_slice(&self.version.to_le_bytes());
        b[8..16].copy_from_slice(&self.nr_regions.to_le_bytes());
        b
    }

    /// What `read_header()` concludes: `Ok(Some(nr))` for a valid log with
    /// `nr` regions, `Ok(None)` for no log (bad magic: start a new one),
    /// `Err(version)` for a log of an unknown version.
    pub fn validate(&self) -> Result<Option<u64>, u32> {
        if self.magic != MAGIC {
            return Ok(None);
        }
        match self.version {
            1 | DISK_VERSION => Ok(Some(self.nr_regions)),
            v => Err(v),
        }
    }
}

/// Bytes a log of `regions` regions needs on its device.
pub fn device_bytes(regions: u64) -> Option<u64> {
    crate::bitmap::bitmap_bytes(regions)?.checked_add(BITMAP_OFFSET as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_match_the_kernel() {
        let h = Header::new(0x0102_0304_0506_0708);
        let b = h.to_disk();
        assert_eq!(&b[0..4], &[0x72, 0x52, 0x69, 0x4d]); // "rRiM": MiRr little-endian
        assert_eq!(&b[4..8], &[2, 0, 0, 0]);
        assert_eq!(&b[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(Header::from_disk(&b), h);
        assert_eq!(h.validate(), Ok(Some(0x0102_0304_0506_0708)));
    }

    #[test]
    fn validation_follows_read_header() {
        assert_eq!(Header::from_disk(&[0u8; 16]).validate(), Ok(None));
        let mut v1 = Header::new(10);
        v1.version = 1;
        assert_eq!(v1.validate(), Ok(Some(10)));
        let mut v9 = Header::new(10);
        v9.version = 9;
        assert_eq!(v9.validate(), Err(9));
    }

    #[test]
    fn device_size() {
        assert_eq!(device_bytes(1), Some(1032));
        assert_eq!(device_bytes(1 << 24), Some(1024 + (1 << 21)));
        assert_eq!(device_bytes(u64::MAX), None);
    }
}
