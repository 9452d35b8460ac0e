//! One dirty log: the state machine behind every request, with the
//! semantics of the kernel's `core` and `disk` logs (drivers/md/dm-log.c).
//! It makes no syscall itself: a disk log reaches its device and the
//! mirror's legs through the [`BlockIo`] and [`Legs`] it is given
//! ([`crate::open`] builds them), and state files are plain memory here.
//!
//! State per log: the `sync` bitmap (1 = in sync), the `recovering`
//! bitmap, the `sync_search` cursor, an exact `sync_count`, and its
//! [`Backing`]: a core log's clean bitmap, or a disk log's image of its
//! device ([`DiskImage`]) with the device, the legs and the health.
//!
//! Durability (dm-log.c `disk_flush`): a FLUSH that follows a MARK makes
//! the marked bits durable on the log device before it is answered,
//! because the kernel writes to the legs as soon as it has the reply; a
//! crash then leaves the region dirty and it is resynced. A clean bit is
//! written only after the mirror's legs were flushed, so a region never
//! reads clean on the device before its data is on stable media on every
//! leg; the next FLUSH flushes the legs and the next MARK's write carries
//! it, or the loop's timer writes it when no MARK comes
//! ([`Log::write_clears`]), or POSTSUSPEND does. A log whose device
//! cannot be read is treated as entirely out of sync. docs/protocol.md §4
//! describes these semantics request by request.

use crate::args::{LogArgs, SyncMode};
use crate::bitmap::Bitmap;
use crate::disk::{self, Header};
use crate::dm::Legs;
use crate::error::Error;
use crate::image::{BlockIo, DiskImage, WriteError};
use log::warn;
use std::io;

/// Health of a disk log's device, as dm-log.c's status reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// `A`: alive.
    Alive,
    /// `D`: reading or writing the bitmap failed.
    Failed,
    /// `F`: flushing the device's write cache failed (shown over `D`).
    FlushFailed,
}

impl Health {
    pub fn letter(self) -> char {
        match self {
            Health::Alive => 'A',
            Health::Failed => 'D',
            Health::FlushFailed => 'F',
        }
    }
}

/// What the first RESUME may assume, from how the log was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prior {
    /// A table's CTR, or the kernel's reconnect CTR for a log the previous
    /// daemon never resumed: an activation, where the sync word applies.
    New,
    /// A reconnect CTR for a log the previous daemon had resumed (its state
    /// file says so): the mirror is live, its device holds its marks and
    /// the state file its sync bitmap, whatever the sync word says.
    Live,
    /// A reconnect CTR with no state file to tell: the device's bitmap is
    /// loaded (what a live mirror needs) unless `sync` asks for a new log.
    Unknown,
}

/// Where a log's clean bits live.
pub enum Backing {
    /// `core`: in memory (a state file when there is one).
    Core { clean: Bitmap },
    /// `disk`: on a log device.
    Disk(Box<Disk>),
}

pub struct Disk {
    /// `MAJ:MIN` of a block device, else the path as given.
    pub name: String,
    pub devno: Option<(u32, u32)>,
    image: DiskImage,
    /// Opened at the first RESUME: the CTR of a table that never goes live
    /// (its load failed after our CTR, and no DTR comes) pins nothing.
    io: Option<Box<dyn BlockIo>>,
    /// None: not found; clean bits then stay in memory.
    legs: Option<Box<dyn Legs>>,
    /// The bitmap was read by a RESUME.
    loaded: bool,
    health: Health,
    /// A leg flush failed and was reported; cleared when one succeeds.
    legs_failed: bool,
}

impl Disk {
    pub fn new(name: String, devno: Option<(u32, u32)>, image: DiskImage) -> Disk {
        Disk { name, devno, image, io: None, legs: None, loaded: false, health: Health::Alive, legs_failed: false }
    }

    /// Flushes the legs when clean bits wait; true when they may be written.
    fn flush_legs(&mut self) -> bool {
        let Some(legs) = self.legs.as_mut() else { return false };
        match legs.flush() {
            Ok(()) => {
                self.legs_failed = false;
                true
            }
            Err(e) => {
                if !std::mem::replace(&mut self.legs_failed, true) {
                    warn!("{}: {e}; clean bits stay in memory until a leg flush succeeds", self.name);
                }
                false
            }
        }
    }

    /// Writes what is pending (see [`DiskImage::write_pending`]); staged
    /// clean bits only with `clears_too`.
    fn write(&mut self, clears_too: bool) -> Result<(), Error> {
        let legs_flushed = self.image.needs_leg_flush() && self.flush_legs();
        let Some(io) = self.io.as_mut() else {
            return Err(Error::io("write", &self.name, io::Error::from_raw_os_error(libc::EIO)));
        };
        match self.image.write_pending(io.as_mut(), legs_flushed, clears_too) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.failed(e)),
        }
    }

    fn failed(&mut self, e: WriteError) -> Error {
        match e {
            WriteError::Write(e) => {
                if self.health == Health::Alive {
                    self.health = Health::Failed;
                }
                Error::io("write", &self.name, e)
            }
            WriteError::Flush(e) => {
                self.health = Health::FlushFailed;
                Error::io("flush", &self.name, e)
            }
        }
    }
}

pub struct Log {
    pub uuid: Box<[u8]>,
    pub luid: u64,
    pub args: LogArgs,
    backing: Backing,
    sync: Bitmap,
    recovering: Bitmap,
    /// RESUMEd and not suspended since.
    resumed: bool,
    prior: Prior,
    sync_search: u64,
    sync_count: u64,
    /// Every region below this is in sync (a lower bound, advanced lazily),
    /// so IS_REMOTE_RECOVERING's hint never rescans the whole bitmap.
    low_unsynced: u64,
    /// Last region handed out by GET_RESYNC_WORK (see there).
    last_work: Option<u64>,
}

fn check_region(r: u64, count: u64) -> Result<u64, Error> {
    if r < count {
        Ok(r)
    } else {
        Err(Error::BadRegion { region: r, count })
    }
}

impl Log {
    /// CTR: a log over bitmaps made by [`crate::open`]. `sync` holds the
    /// initial sync bits (restored from a state file for `Prior::Live`).
    pub fn new(
        uuid: &[u8],
        luid: u64,
        args: LogArgs,
        backing: Backing,
        sync: Bitmap,
        recovering: Bitmap,
        prior: Prior,
    ) -> Log {
        let sync_count = sync.count_ones();
        Log {
            uuid: uuid.into(),
            luid,
            args,
            backing,
            sync,
            recovering,
            resumed: false,
            prior,
            sync_search: 0,
            sync_count,
            low_unsynced: 0,
            last_work: None,
        }
    }

    pub fn region_count(&self) -> u64 {
        self.args.region_count
    }

    /// `MAJ:MIN` of a block log device: what the CTR reply names.
    pub fn device_number(&self) -> Option<String> {
        match &self.backing {
            Backing::Disk(d) => d.devno.map(|(a, b)| format!("{a}:{b}")),
            Backing::Core { .. } => None,
        }
    }

    pub fn health(&self) -> Health {
        match &self.backing {
            Backing::Disk(d) => d.health,
            Backing::Core { .. } => Health::Alive,
        }
    }

    pub fn is_resumed(&self) -> bool {
        self.resumed
    }

    /// A disk log whose bitmap no RESUME has read yet.
    fn unloaded(&self) -> bool {
        matches!(&self.backing, Backing::Disk(d) if !d.loaded)
    }

    /// The kernel asks this only of a live log. A disk log that was never
    /// loaded then lost its first RESUME (`userspace_resume` does not
    /// reconnect when the server was missing or its queue full): -ESRCH
    /// makes the kernel reconnect (CTR + RESUME) and retry, which loads it.
    fn need_loaded(&self) -> Result<(), Error> {
        if self.unloaded() {
            Err(Error::NotLoaded)
        } else {
            Ok(())
        }
    }

    /// A disk log that has no device or legs yet: [`Log::attach`] them
    /// before its RESUME.
    pub fn wants_attachment(&self) -> bool {
        matches!(&self.backing, Backing::Disk(d) if d.io.is_none() || d.legs.is_none())
    }

    pub fn has_device(&self) -> bool {
        matches!(&self.backing, Backing::Disk(d) if d.io.is_some())
    }

    pub fn has_legs(&self) -> bool {
        matches!(&self.backing, Backing::Disk(d) if d.legs.is_some())
    }

    /// Gives a disk log its device and (when found) the mirror's legs.
    pub fn attach(&mut self, io: Option<Box<dyn BlockIo>>, legs: Option<Box<dyn Legs>>) {
        if let Backing::Disk(d) = &mut self.backing {
            if d.io.is_none() {
                d.io = io;
            }
            if d.legs.is_none() {
                d.legs = legs;
            }
        }
    }

    /// The clean bits the kernel is answered from.
    pub fn clean_bits(&self) -> &Bitmap {
        match &self.backing {
            Backing::Core { clean } => clean,
            Backing::Disk(d) => d.image.bits(),
        }
    }

    /// The bytes of a disk log's image as last written to (or read from)
    /// its device, with marks not written yet.
    pub fn disk_image(&self) -> Option<&[u8]> {
        match &self.backing {
            Backing::Disk(d) => Some(d.image.on_disk()),
            Backing::Core { .. } => None,
        }
    }

    /// RESUME. Core: rewind the resync cursor. Disk: load the bitmap as
    /// dm-log.c `disk_resume` does, at every resume — a missing or foreign
    /// header, or `sync`/`nosync`, means a new log; regions past the
    /// on-disk count are dirty (clean with `nosync`); clean is copied to
    /// sync; header and bitmap are written back and flushed. The first
    /// RESUME of a log the kernel reconnected follows [`Prior`] instead.
    /// A second RESUME without a suspend in between is a no-op (a resend).
    pub fn resume(&mut self) -> Result<(), Error> {
        if self.resumed {
            return Ok(());
        }
        self.sync_search = 0;
        self.low_unsynced = 0;
        self.last_work = None;
        let n = self.region_count();
        self.recovering.put_range(0, n, false);
        let prior = std::mem::replace(&mut self.prior, Prior::New);
        let result = match &mut self.backing {
            Backing::Core { .. } => Ok(()),
            Backing::Disk(d) => {
                let r = resume_disk(d, &self.args, prior, n);
                if prior != Prior::Live {
                    self.sync.copy_from(d.image.bits());
                }
                self.sync_count = self.sync.count_ones();
                r
            }
        };
        self.resumed = true;
        crate::state::mark_resumed(&mut self.sync);
        result
    }

    /// POSTSUSPEND: every pending bit goes to the device (clean bits after
    /// a leg flush), as dm-log.c flushes at postsuspend; nothing is written
    /// after this until the next RESUME, which reads the device again (it
    /// may have passed to another table's log meanwhile).
    pub fn postsuspend(&mut self) -> Result<(), Error> {
        let was = std::mem::replace(&mut self.resumed, false);
        match &mut self.backing {
            Backing::Disk(d) if was && d.loaded => d.write(true),
            _ => Ok(()),
        }
    }

    pub fn is_clean(&self, r: u64) -> Result<bool, Error> {
        let r = check_region(r, self.region_count())?;
        Ok(!self.unloaded() && self.clean_bits().test(r))
    }

    pub fn in_sync(&self, r: u64) -> Result<bool, Error> {
        let r = check_region(r, self.region_count())?;
        self.need_loaded()?;
        Ok(self.sync.test(r))
    }

    /// Checks a whole region array before any of it takes effect.
    fn check_all(&self, regions: impl Iterator<Item = u64>) -> Result<(), Error> {
        self.need_loaded()?;
        let n = self.region_count();
        regions.map(|r| check_region(r, n)).try_for_each(|r| r.map(drop))
    }

    /// MARK_REGION: the regions are about to be written; dirty them. A
    /// live disk log writes the marked pages at once (no cache flush: the
    /// FLUSH does that): a daemon killed between MARK and FLUSH must leave
    /// the mark on the device, since the kernel resends only the FLUSH to
    /// the next daemon, which reads the device at its RESUME.
    pub fn mark<I: Iterator<Item = u64> + Clone>(&mut self, regions: I) -> Result<(), Error> {
        self.apply_marks(regions)?;
        match &mut self.backing {
            Backing::Disk(d) if self.resumed => {
                let Some(io) = d.io.as_mut() else { return Ok(()) };
                d.image.write_marks(io.as_mut()).map_err(|e| d.failed(e))
            }
            _ => Ok(()),
        }
    }

    /// Dirties the regions in memory, all checked first; a disk log's
    /// pages then wait for a write.
    fn apply_marks<I: Iterator<Item = u64> + Clone>(&mut self, regions: I) -> Result<(), Error> {
        self.check_all(regions.clone())?;
        match &mut self.backing {
            Backing::Core { clean } => regions.for_each(|r| {
                clean.put(r, false);
            }),
            Backing::Disk(d) => regions.for_each(|r| d.image.mark(r)),
        }
        Ok(())
    }

    /// CLEAR_REGION: writes finished on every leg; the regions are clean
    /// again. A failed disk log keeps them dirty.
    pub fn clear<I: Iterator<Item = u64> + Clone>(&mut self, regions: I) -> Result<(), Error> {
        self.check_all(regions.clone())?;
        match &mut self.backing {
            Backing::Core { clean } => regions.for_each(|r| {
                clean.put(r, true);
            }),
            Backing::Disk(d) if d.health == Health::Alive => regions.for_each(|r| d.image.clear(r)),
            Backing::Disk(_) => {}
        }
        Ok(())
    }

    /// FLUSH, with the regions of a version-3 integrated flush (a MARK of
    /// them first; all regions are checked before anything changes). Its
    /// marks are not written on their own: they go out with the FLUSH's
    /// clean bits in one write (no reply has promised them yet, and a
    /// kernel that loses this daemon resends the whole FLUSH).
    pub fn flush<I: Iterator<Item = u64> + Clone>(&mut self, marks: I) -> Result<(), Error> {
        if marks.clone().next().is_some() {
            self.apply_marks(marks)?;
        }
        match &mut self.backing {
            // Only a live log writes: after POSTSUSPEND the device may be
            // another table's log's (the kernel quiesces I/O before it).
            Backing::Disk(d) if self.resumed && d.loaded && (d.image.has_marks() || d.image.has_clears()) => {
                d.write(false)
            }
            _ => Ok(()),
        }
    }

    /// Clean bits wait for the device while the log is live (the loop's
    /// timer then calls [`Log::write_clears`]).
    pub fn clears_pending(&self) -> bool {
        matches!(&self.backing, Backing::Disk(d) if self.resumed && d.loaded && d.legs.is_some() && d.image.has_clears())
    }

    /// Writes pending clean bits after a leg flush, with no FLUSH request:
    /// dm-log-userspace with `integrated_flush` sends the FLUSH after clears
    /// 3 s late, and a crash meanwhile would resync them all.
    pub fn write_clears(&mut self) -> Result<(), Error> {
        match &mut self.backing {
            Backing::Disk(d) if self.resumed && d.loaded => d.write(true),
            _ => Ok(()),
        }
    }

    /// GET_RESYNC_WORK: the next out-of-sync region not being recovered,
    /// now marked recovering.
    ///
    /// dm-raid1 recovers one region at a time (MAX_RECOVERY = 1), so a
    /// request arriving while the region we last handed out is still
    /// recovering can only be the kernel's resend of a request whose reply
    /// was lost: it gets the same region again instead of a second one
    /// that nobody would ever finish.
    pub fn get_resync_work(&mut self) -> Result<Option<u64>, Error> {
        self.need_loaded()?;
        if let Some(r) = self.last_work {
            if self.recovering.test(r) {
                return Ok(Some(r));
            }
        }
        let n = self.region_count();
        while self.sync_search < n {
            let Some(r) = self.sync.next_zero(self.sync_search) else {
                self.sync_search = n;
                break;
            };
            self.sync_search = r + 1;
            if !self.recovering.test(r) {
                self.recovering.put(r, true);
                self.last_work = Some(r);
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// SET_REGION_SYNC: recovery of `r` ended; record its sync state.
    pub fn set_region_sync(&mut self, r: u64, in_sync: bool) -> Result<(), Error> {
        let r = check_region(r, self.region_count())?;
        self.need_loaded()?;
        self.recovering.put(r, false);
        if self.sync.put(r, in_sync) {
            if in_sync {
                self.sync_count += 1;
            } else {
                self.sync_count -= 1;
                self.low_unsynced = self.low_unsynced.min(r);
            }
        }
        Ok(())
    }

    pub fn sync_count(&self) -> u64 {
        self.sync_count
    }

    /// Makes everything durable without changing state (signals, exit).
    /// Only a live log writes: a suspended one's device may belong to
    /// another table's log by now.
    pub fn persist(&mut self) -> Result<(), Error> {
        match &mut self.backing {
            Backing::Disk(d) if self.resumed && d.loaded => d.write(true),
            _ => Ok(()),
        }
    }

    /// IS_REMOTE_RECOVERING: single node, so nothing recovers remotely; the
    /// hint is the lowest region not in sync (the kernel asks again only
    /// for writes at or past it, and throttles those while it waits).
    pub fn in_sync_hint(&mut self, r: u64) -> Result<u64, Error> {
        check_region(r, self.region_count())?;
        self.need_loaded()?;
        let n = self.region_count();
        if self.sync_count == n {
            self.low_unsynced = n;
        } else {
            self.low_unsynced = self.sync.next_zero(self.low_unsynced).unwrap_or(n);
        }
        Ok(self.low_unsynced)
    }

    /// After a SIGBUS in one of this log's state files (see
    /// [`crate::fault`]): zero pages now stand where the file was, which
    /// read as out of sync (core: dirty). True when the address was ours.
    pub fn on_fault(&mut self, addr: usize) -> bool {
        let core_clean = matches!(&self.backing, Backing::Core { clean } if clean.maps_addr(addr));
        if !(self.sync.maps_addr(addr) || core_clean || self.recovering.maps_addr(addr)) {
            return false;
        }
        self.state_faulted();
        true
    }

    /// Some page of a state file of this log may now be a zero page: the
    /// counts are taken again from what the bitmaps hold.
    pub fn state_faulted(&mut self) {
        warn!(
            "log {}/{:#x}: its state file was truncated under the daemon; regions there read as out of sync",
            String::from_utf8_lossy(&self.uuid),
            self.luid
        );
        self.sync_count = self.sync.count_ones();
        self.low_unsynced = 0;
    }

    /// True when one of this log's state files is mapped at all (faults
    /// that the handler's ring lost are attributed to every such log).
    pub fn has_state_files(&self) -> bool {
        self.sync.is_file_backed()
    }

    /// STATUS_INFO as dm-log.c prints it: `1 core` / `3 disk MAJ:MIN A`.
    pub fn status_info(&self) -> String {
        match &self.backing {
            Backing::Core { .. } => format!("1 {}", self.args.type_name),
            Backing::Disk(d) => format!("3 {} {} {}", self.args.type_name, d.name, d.health.letter()),
        }
    }

    /// STATUS_TABLE as dm-log.c prints it (current kernels build their own).
    pub fn status_table(&self) -> String {
        let a = &self.args;
        let extra = u32::from(a.sync != SyncMode::Default);
        match &self.backing {
            Backing::Core { .. } => format!("{} {} {} {}", a.type_name, 1 + extra, a.region_size, a.sync_word()),
            Backing::Disk(d) => format!("{} {} {} {} {}", a.type_name, 2 + extra, d.name, a.region_size, a.sync_word()),
        }
    }

    /// Regions dirty in the bits the kernel is answered from; None for a
    /// disk log no RESUME has loaded.
    pub fn dirty_count(&self) -> Option<u64> {
        (!self.unloaded()).then(|| self.region_count() - self.clean_bits().count_ones())
    }

    /// `MAJ:MIN` or path of a disk log's device.
    pub fn device_name(&self) -> Option<String> {
        match &self.backing {
            Backing::Disk(d) => Some(d.name.clone()),
            Backing::Core { .. } => None,
        }
    }

    /// One line for SIGUSR1.
    pub fn summary(&self) -> String {
        let clean = if self.unloaded() { 0 } else { self.clean_bits().count_ones() };
        format!(
            "log {} luid {:#x}: {} regions of {} sectors, {}/{} in sync, {} dirty, {}{}",
            String::from_utf8_lossy(&self.uuid),
            self.luid,
            self.region_count(),
            self.args.region_size,
            self.sync_count,
            self.region_count(),
            self.region_count() - clean,
            if self.resumed { "resumed" } else { "suspended" },
            match &self.backing {
                Backing::Core { .. } => String::new(),
                Backing::Disk(d) => format!(", device {} ({})", d.name, d.health.letter()),
            }
        )
    }
}

/// A disk log's RESUME (see [`Log::resume`]): reads the device past any
/// cache, decides what it holds, and writes the header and bitmap back.
fn resume_disk(d: &mut Disk, args: &LogArgs, prior: Prior, n: u64) -> Result<(), Error> {
    let new_log = match prior {
        Prior::New => args.sync != SyncMode::Default,
        Prior::Live => false,
        Prior::Unknown => args.sync == SyncMode::Sync,
    };
    let Some(io) = d.io.as_mut() else {
        // The device could not be opened: every region out of sync.
        warn!("{}: log device unavailable at resume; every region is out of sync", d.name);
        d.image.reset();
        d.health = Health::Failed;
        d.loaded = true;
        return Err(Error::io("open", &d.name, io::Error::from_raw_os_error(libc::EIO)));
    };
    let read = d.image.read(io.as_mut());
    let nr = match &read {
        Err(e) => {
            warn!("{}: cannot read the log ({e}); every region is out of sync", d.name);
            d.health = Health::Failed;
            0
        }
        Ok(()) if new_log => 0,
        Ok(()) => match Header::from_disk(&d.image.on_disk()[..disk::HEADER_LEN]).validate() {
            Ok(Some(nr)) => nr,
            Ok(None) => 0,
            Err(v) => {
                warn!("{}: incompatible disk log version {v}; every region is out of sync", d.name);
                d.health = Health::Failed;
                0
            }
        },
    };
    let mem = d.image.mem_mut();
    if read.is_err() {
        mem.put_range(0, n, false);
    }
    if nr < n {
        mem.put_range(nr, n, args.sync == SyncMode::NoSync && prior != Prior::Unknown);
    }
    mem.clear_padding();
    mem.image_mut()[..disk::HEADER_LEN].copy_from_slice(&Header::new(n).to_disk());
    d.loaded = true;
    if let Err(e) = read {
        return Err(Error::io("read", &d.name, e));
    }
    let io = d.io.as_mut().expect("checked above");
    d.image.write_all(io.as_mut()).map_err(|e| d.failed(e))
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;
    use crate::disk::BITMAP_OFFSET;
    use std::cell::RefCell;
    use std::rc::Rc;

    fn args(s: &str) -> LogArgs {
        LogArgs::parse(s.as_bytes(), false).unwrap()
    }

    fn core(s: &str) -> Log {
        let a = args(s);
        let n = a.region_count;
        let mut clean = Bitmap::anon(n).unwrap();
        clean.put_range(0, n, true);
        let mut sync = Bitmap::anon(n).unwrap();
        sync.put_range(0, n, a.sync == SyncMode::NoSync);
        Log::new(b"u", 1, a, Backing::Core { clean }, sync, Bitmap::anon(n).unwrap(), Prior::New)
    }

    /// A device and legs in memory sharing one event trace.
    #[derive(Clone, Default)]
    struct Trace(Rc<RefCell<Vec<String>>>);

    struct Dev {
        bytes: Rc<RefCell<Vec<u8>>>,
        trace: Trace,
    }

    impl BlockIo for Dev {
        fn read_at(&mut self, buf: &mut [u8], off: u64) -> io::Result<()> {
            let o = off as usize;
            buf.copy_from_slice(&self.bytes.borrow()[o..o + buf.len()]);
            Ok(())
        }
        fn write_at(&mut self, buf: &[u8], off: u64) -> io::Result<()> {
            let o = off as usize;
            let mut b = self.bytes.borrow_mut();
            let sets_clean = (o..o + buf.len()).any(|i| i >= BITMAP_OFFSET && buf[i - o] & !b[i] != 0);
            b[o..o + buf.len()].copy_from_slice(buf);
            self.trace.0.borrow_mut().push(if sets_clean { "write+clean" } else { "write" }.into());
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.trace.0.borrow_mut().push("flush".into());
            Ok(())
        }
    }

    struct TestLegs(Trace, bool);

    impl Legs for TestLegs {
        fn flush(&mut self) -> io::Result<()> {
            if self.1 {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            self.0 .0.borrow_mut().push("legs".into());
            Ok(())
        }
    }

    fn disk_log(s: &str, bytes: Vec<u8>, legs_fail: Option<bool>, prior: Prior) -> (Log, Rc<RefCell<Vec<u8>>>, Trace) {
        let a = args(s);
        let n = a.region_count;
        let len = disk::device_bytes(n).unwrap() as usize;
        let bytes = Rc::new(RefCell::new(bytes));
        let trace = Trace::default();
        let d = Disk::new("7:0".into(), Some((7, 0)), DiskImage::new(n, len).unwrap());
        let mut sync = Bitmap::anon(n).unwrap();
        sync.put_range(0, n, a.sync == SyncMode::NoSync);
        let mut l = Log::new(b"u", 1, a, Backing::Disk(Box::new(d)), sync, Bitmap::anon(n).unwrap(), prior);
        assert!(l.wants_attachment());
        let legs = legs_fail.map(|f| Box::new(TestLegs(trace.clone(), f)) as Box<dyn Legs>);
        l.attach(Some(Box::new(Dev { bytes: bytes.clone(), trace: trace.clone() })), legs);
        (l, bytes, trace)
    }

    fn image(n: u64, clean: bool) -> Vec<u8> {
        let mut b = vec![if clean { 0xff } else { 0 }; disk::device_bytes(n).unwrap() as usize];
        b[..16].copy_from_slice(&Header::new(n).to_disk());
        b[16..BITMAP_OFFSET].fill(0);
        b
    }

    fn bit(b: &[u8], r: u64) -> bool {
        b[BITMAP_OFFSET + (r / 8) as usize] & (1 << (r % 8)) != 0
    }

    #[test]
    fn core_log_semantics() {
        let mut l = core("8192 core 1024");
        assert_eq!(l.region_count(), 8);
        assert_eq!(l.sync_count(), 0);
        assert!(l.is_clean(0).unwrap());
        assert!(!l.in_sync(0).unwrap());
        l.resume().unwrap();
        l.mark([3u64].into_iter()).unwrap();
        assert!(!l.is_clean(3).unwrap());
        l.flush(std::iter::empty()).unwrap();
        l.clear([3u64].into_iter()).unwrap();
        assert!(l.is_clean(3).unwrap());
        assert!(matches!(l.mark([3u64, 8].into_iter()), Err(Error::BadRegion { region: 8, count: 8 })));
        // Nothing changed by the rejected request.
        assert!(l.is_clean(3).unwrap());
        assert_eq!(l.get_resync_work().unwrap(), Some(0));
        // Resend while 0 is recovering: the same region again.
        assert_eq!(l.get_resync_work().unwrap(), Some(0));
        l.set_region_sync(0, true).unwrap();
        assert_eq!(l.sync_count(), 1);
        l.set_region_sync(0, true).unwrap();
        assert_eq!(l.sync_count(), 1, "exact count");
        assert_eq!(l.get_resync_work().unwrap(), Some(1));
        assert_eq!(l.in_sync_hint(5).unwrap(), 1);
        l.set_region_sync(1, false).unwrap();
        // Failed recovery: not handed out again before the next resume.
        for r in 2..8 {
            assert_eq!(l.get_resync_work().unwrap(), Some(r));
            l.set_region_sync(r, true).unwrap();
        }
        assert_eq!(l.get_resync_work().unwrap(), None);
        assert_eq!(l.in_sync_hint(0).unwrap(), 1);
        l.postsuspend().unwrap();
        l.resume().unwrap();
        assert_eq!(l.get_resync_work().unwrap(), Some(1));
        l.set_region_sync(1, true).unwrap();
        assert_eq!(l.in_sync_hint(0).unwrap(), 8);
        assert_eq!(l.sync_count(), 8);
        assert_eq!(l.status_info(), "1 core");
        assert_eq!(l.status_table(), "core 1 1024 ");
    }

    #[test]
    fn nosync_core_is_in_sync() {
        let mut l = core("8192 core 1024 nosync");
        assert_eq!(l.sync_count(), 8);
        assert!(l.in_sync(7).unwrap());
        assert_eq!(l.get_resync_work().unwrap(), None);
        assert_eq!(l.in_sync_hint(0).unwrap(), 8);
        assert_eq!(l.status_table(), "core 2 1024 nosync ");
    }

    #[test]
    fn legs_are_flushed_before_any_clean_bit_is_written() {
        let (mut l, bytes, trace) = disk_log("8192 disk 7:0 1024", image(8, true), Some(false), Prior::New);
        l.resume().unwrap();
        assert_eq!(*trace.0.borrow(), vec!["write", "flush"]);
        trace.0.borrow_mut().clear();
        // The kernel's write: MARK, FLUSH, (leg I/O), CLEAR, FLUSH, then
        // the next write's MARK, FLUSH.
        l.mark([2u64].into_iter()).unwrap();
        l.flush(std::iter::empty()).unwrap();
        assert!(!bit(&bytes.borrow(), 2));
        l.clear([2u64].into_iter()).unwrap();
        l.flush(std::iter::empty()).unwrap();
        assert!(!bit(&bytes.borrow(), 2), "the FLUSH after a CLEAR flushes the legs only");
        assert!(l.clears_pending(), "the clear timer still has it");
        l.mark([4u64].into_iter()).unwrap();
        assert!(bit(&bytes.borrow(), 2) && !bit(&bytes.borrow(), 4), "the MARK's write carries it");
        l.flush(std::iter::empty()).unwrap();
        assert!(!l.clears_pending());
        // Marks: one write, one cache flush; clears: legs first, then
        // written with the next marks, no cache flush of their own.
        assert_eq!(*trace.0.borrow(), vec!["write", "flush", "legs", "write+clean", "flush"]);
        // A clear with no FLUSH after it: the timer's call, legs first.
        trace.0.borrow_mut().clear();
        l.mark([5u64].into_iter()).unwrap();
        l.flush(std::iter::empty()).unwrap();
        l.clear([5u64].into_iter()).unwrap();
        assert!(l.clears_pending());
        l.write_clears().unwrap();
        assert!(!l.clears_pending() && bit(&bytes.borrow(), 5));
        assert_eq!(*trace.0.borrow(), vec!["write", "flush", "legs", "write+clean"]);
    }

    /// A v3 FLUSH carrying marks on several pages, with clean bits
    /// waiting: legs first, then one write with both, then one cache flush
    /// (its marks are not written on their own first).
    #[test]
    fn an_integrated_flush_is_one_write_and_one_flush() {
        let n = 131_072u64; // 16 KiB of bitmap: several pages
        let (mut l, bytes, trace) = disk_log("1048576 disk 7:0 8", image(n, true), Some(false), Prior::New);
        l.resume().unwrap();
        l.flush([3u64].into_iter()).unwrap();
        l.clear([3u64].into_iter()).unwrap();
        trace.0.borrow_mut().clear();
        let marks = [40_000u64, 9, 120_000, 70_000];
        l.flush(marks.into_iter()).unwrap();
        assert_eq!(*trace.0.borrow(), vec!["legs", "write+clean", "flush"]);
        assert!(bit(&bytes.borrow(), 3) && marks.iter().all(|&r| !bit(&bytes.borrow(), r)));
        // A MARK request is written before its reply, once however many
        // pages; the FLUSH after it only flushes.
        trace.0.borrow_mut().clear();
        l.mark([1u64, 50_000, 100_000].into_iter()).unwrap();
        l.flush(std::iter::empty()).unwrap();
        assert_eq!(*trace.0.borrow(), vec!["write", "flush"]);
    }

    #[test]
    fn without_legs_clean_bits_stay_in_memory() {
        for legs in [None, Some(true)] {
            let (mut l, bytes, trace) = disk_log("8192 disk 7:0 1024", image(8, true), legs, Prior::New);
            l.resume().unwrap();
            l.mark([2u64].into_iter()).unwrap();
            l.flush(std::iter::empty()).unwrap();
            l.clear([2u64].into_iter()).unwrap();
            l.mark([3u64].into_iter()).unwrap();
            l.flush(std::iter::empty()).unwrap();
            l.postsuspend().unwrap();
            assert!(l.is_clean(2).unwrap(), "clean for the kernel");
            assert!(!bit(&bytes.borrow(), 2) && !bit(&bytes.borrow(), 3), "dirty on disk");
            assert!(!trace.0.borrow().iter().any(|e| e == "write+clean"), "{legs:?}: {:?}", trace.0.borrow());
        }
    }

    #[test]
    fn every_resume_rereads_the_device_and_applies_the_sync_word() {
        // Another log changed the device while this one was suspended.
        let (mut l, bytes, _) = disk_log("8192 disk 7:0 1024", image(8, true), Some(false), Prior::New);
        l.resume().unwrap();
        assert_eq!(l.sync_count(), 8);
        l.postsuspend().unwrap();
        bytes.borrow_mut()[BITMAP_OFFSET] = 0b1111_0000;
        l.resume().unwrap();
        assert_eq!(l.sync_count(), 4, "what the device says, not a stale copy");
        // nosync: a new log at every resume, as dm-log.c.
        let (mut l, bytes, _) = disk_log("8192 disk 7:0 1024 nosync", image(8, false), Some(false), Prior::New);
        l.resume().unwrap();
        assert_eq!(l.sync_count(), 8);
        l.postsuspend().unwrap();
        bytes.borrow_mut()[BITMAP_OFFSET] = 0;
        l.resume().unwrap();
        assert_eq!(l.sync_count(), 8);
    }

    #[test]
    fn reconnect_priors() {
        let mut dirty = image(8, true);
        dirty[BITMAP_OFFSET] = 0b1111_1110; // region 0 dirty on disk
                                            // Live: the device's bitmap, whatever the word.
        let (mut l, _, _) = disk_log("8192 disk 7:0 1024 nosync", dirty.clone(), Some(false), Prior::Live);
        l.resume().unwrap();
        assert!(!l.is_clean(0).unwrap());
        // New: the word applies (sync: every region out of sync).
        let (mut l, _, _) = disk_log("8192 disk 7:0 1024 sync", image(8, true), Some(false), Prior::New);
        l.resume().unwrap();
        assert_eq!(l.sync_count(), 0);
        // Unknown: sync is a new log; nosync loads the device.
        let (mut l, _, _) = disk_log("8192 disk 7:0 1024 sync", image(8, true), Some(false), Prior::Unknown);
        l.resume().unwrap();
        assert_eq!(l.sync_count(), 0);
        let (mut l, _, _) = disk_log("8192 disk 7:0 1024 nosync", dirty, Some(false), Prior::Unknown);
        l.resume().unwrap();
        assert!(!l.is_clean(0).unwrap() && l.sync_count() == 7);
    }

    #[test]
    fn a_never_loaded_disk_log_asks_the_kernel_to_reconnect() {
        let (mut l, _, _) = disk_log("8192 disk 7:0 1024", image(8, true), Some(false), Prior::New);
        assert!(matches!(l.mark([1u64].into_iter()), Err(Error::NotLoaded)));
        assert!(matches!(l.in_sync(1), Err(Error::NotLoaded)));
        assert!(matches!(l.get_resync_work(), Err(Error::NotLoaded)));
        assert_eq!(Error::NotLoaded.errno(), -libc::ESRCH);
        // What the kernel may ask before its RESUME still works.
        assert!(!l.is_clean(1).unwrap());
        assert_eq!(l.sync_count(), 0);
        l.flush(std::iter::empty()).unwrap();
        l.resume().unwrap();
        l.mark([1u64].into_iter()).unwrap();
    }
}
