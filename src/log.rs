//! One dirty log: the state machine behind every request, with the
//! semantics of the kernel's `core` and `disk` logs (drivers/md/dm-log.c).
//!
//! State per log: the `clean` bitmap (1 = clean; for a disk log this *is*
//! the on-disk bitmap, mapped shared), the `sync` bitmap (1 = in sync), the
//! `recovering` bitmap, the `sync_search` cursor, an exact `sync_count`,
//! the `touched_dirtied` / `touched_cleaned` flags and the device health.
//!
//! Durability rule (dm-log.c `disk_flush`): a FLUSH that follows any MARK
//! makes the marked bits durable on the log device before it is answered,
//! because the kernel starts writing to the legs as soon as it has the
//! reply; a crash then leaves the region dirty and it is resynced. Clears
//! may reach the disk lazily: a region that is cleared is in sync on every
//! leg, so finding it dirty after a crash only costs a needless resync.
//! A log whose device cannot be read is treated as entirely out of sync.

use crate::bitmap::{bitmap_bytes, Bitmap};
use crate::device::{self, LogDevice};
use crate::disk::{self, Header, BITMAP_OFFSET};
use crate::error::Error;
use crate::state;
use log::warn;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// No argument: trust the on-disk bitmap (a core log starts unsynced).
    Default,
    /// `sync`: a new log, every region out of sync (full resync).
    Sync,
    /// `nosync`: a new log, every region in sync (no initial resync).
    NoSync,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogArgs {
    pub target_len: u64,
    /// As written in the table: core, disk, clustered-core, clustered-disk.
    pub type_name: String,
    /// The log device argument of a disk log, as given.
    pub device: Option<String>,
    pub region_size: u32,
    pub sync: SyncMode,
    pub region_count: u64,
}

/// Daemon-wide settings that shape how logs are built.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Serve clustered-core / clustered-disk as single-node logs.
    pub allow_clustered: bool,
    /// Where sync state survives a daemon restart ([`crate::state`]),
    /// opened once by the registry; None keeps it in memory only.
    pub state_dir: Option<PathBuf>,
}

impl LogArgs {
    /// Parses the CTR payload: `"<target sectors> <type> <args...>"`, the
    /// uuid and `integrated_flush` already stripped by the kernel. The
    /// payload may or may not end in NUL; anything after a NUL is ignored.
    pub fn parse(payload: &[u8], opts: &Options) -> Result<LogArgs, Error> {
        let end = payload.iter().position(|&b| b == 0).unwrap_or(payload.len());
        let text = std::str::from_utf8(&payload[..end])
            .map_err(|_| Error::BadArgument("constructor string is not text".into()))?;
        let words: Vec<&str> = text.split_ascii_whitespace().collect();
        let bad = |what: String| Error::BadArgument(what);
        let (len, kind) = match words.as_slice() {
            [len, kind, ..] => (*len, *kind),
            _ => return Err(bad(format!("constructor string {text:?} has no target length and log type"))),
        };
        let target_len: u64 =
            len.parse().ok().filter(|&n| n > 0).ok_or_else(|| bad(format!("target length {len:?}")))?;
        let disk = match kind {
            "core" => false,
            "disk" => true,
            "clustered-core" | "clustered-disk" if opts.allow_clustered => kind == "clustered-disk",
            "clustered-core" | "clustered-disk" => {
                return Err(Error::Unsupported(format!(
                    "log type {kind} needs a cluster log server (cmirrord); dmulogd is single-node \
                     (start it with --allow-clustered to serve it as a local log)"
                )))
            }
            other => return Err(Error::Unsupported(format!("log type {other:?}"))),
        };
        let args = &words[2..];
        let want = if disk { 2 } else { 1 };
        if args.len() < want || args.len() > want + 1 {
            let shape = if disk { "<log_dev> <region_size> [sync|nosync]" } else { "<region_size> [sync|nosync]" };
            return Err(bad(format!("{kind} takes {shape}, got {:?}", args.join(" "))));
        }
        let device = disk.then(|| args[0].to_owned());
        let rs = args[want - 1];
        let region_size: u32 =
            rs.parse().ok().filter(|&r: &u32| r >= 2 && r.is_power_of_two() && u64::from(r) <= target_len).ok_or_else(
                || {
                    bad(format!(
                        "region size {rs:?} (a power of two, at least 2 and at most the target length {target_len})"
                    ))
                },
            )?;
        let sync = match args.get(want) {
            None => SyncMode::Default,
            Some(&"sync") => SyncMode::Sync,
            Some(&"nosync") => SyncMode::NoSync,
            Some(other) => return Err(bad(format!("sync argument {other:?} (sync or nosync)"))),
        };
        let region_count = target_len.div_ceil(u64::from(region_size));
        Ok(LogArgs { target_len, type_name: kind.to_owned(), device, region_size, sync, region_count })
    }

    pub fn is_disk(&self) -> bool {
        self.device.is_some()
    }

    /// Anonymous bitmap memory this log needs (clean for core logs, sync,
    /// recovering), for the daemon's memory limit.
    pub fn memory_bytes(&self) -> u64 {
        let one = bitmap_bytes(self.region_count).unwrap_or(u64::MAX);
        let n = if self.is_disk() { 2 } else { 3 };
        one.saturating_mul(n)
    }

    fn sync_word(&self) -> &'static str {
        match self.sync {
            SyncMode::Default => "",
            SyncMode::Sync => "sync ",
            SyncMode::NoSync => "nosync ",
        }
    }
}

/// Health of a disk log's device, as the `disk` log reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// `A`: alive.
    Alive,
    /// `D`: the device failed a read or write.
    Failed,
    /// `F`: making the bitmap durable failed.
    FlushFailed,
}

impl Health {
    fn letter(self) -> char {
        match self {
            Health::Alive => 'A',
            Health::Failed => 'D',
            Health::FlushFailed => 'F',
        }
    }
}

pub struct Log {
    pub uuid: Box<[u8]>,
    pub luid: u64,
    pub args: LogArgs,
    clean: Bitmap,
    sync: Bitmap,
    recovering: Bitmap,
    dev: Option<LogDevice>,
    /// The clean bitmap was replaced by memory after the device failed to
    /// read: nothing may touch the mapping again, every flush fails.
    detached: bool,
    /// RESUMEd and not suspended since.
    resumed: bool,
    /// The clean bitmap has been loaded (disk logs: by the first RESUME).
    loaded: bool,
    sync_search: u64,
    sync_count: u64,
    /// Every region below this is in sync (a lower bound, advanced lazily),
    /// so IS_REMOTE_RECOVERING's hint never rescans the whole bitmap.
    low_unsynced: u64,
    /// Last region handed out by GET_RESYNC_WORK (see there).
    last_work: Option<u64>,
    touched_dirtied: bool,
    touched_cleaned: bool,
    health: Health,
    /// Built by the kernel's reconnect CTR (after -ESRCH): the mirror is
    /// live and its state is on the log device, whatever sync word the
    /// table carries.
    reconnect: bool,
    /// The sync bitmap came back from the previous daemon's state file: the
    /// first RESUME keeps it instead of rebuilding it from the clean bits.
    sync_restored: bool,
}

fn check_region(r: u64, count: u64) -> Result<u64, Error> {
    if r < count {
        Ok(r)
    } else {
        Err(Error::BadRegion { region: r, count })
    }
}

impl Log {
    /// CTR: builds the log. A disk log's device is opened, size-checked and
    /// mapped here, but its contents are read only at RESUME: the inactive
    /// table's log may share the device with the live one.
    ///
    /// `reconnect` is set for the CTR the kernel sends after -ESRCH (a
    /// daemon restart). That RESUME continues a running mirror rather than
    /// activating one, so it loads the on-disk bitmap even under `sync` or
    /// `nosync`: with `nosync`, starting a new (all clean) log would forget
    /// regions the kernel still holds marked dirty and will not mark again,
    /// and a power cut would then leave them unsynced.
    pub fn create(
        uuid: &[u8],
        luid: u64,
        args: LogArgs,
        reconnect: bool,
        state_dir: Option<&state::StateDir>,
    ) -> Result<Log, Error> {
        let n = args.region_count;
        let nomem = |e: std::io::Error| Error::io("allocate bitmap for", "log", e);
        // A bitmap in the state directory when there is one, else memory.
        let stored = |kind: state::Kind| -> Option<state::Stored> {
            let dir = state_dir?;
            state::open(dir, uuid, luid, kind, n, reconnect)
                .map_err(|e| {
                    warn!("state file in {}: {e}; keeping this log's state in memory only", dir.path().display())
                })
                .ok()
        };
        let (clean, dev) = match &args.device {
            None => {
                let (mut c, restored) = match stored(state::Kind::Clean) {
                    Some(st) => (st.bitmap, st.restored),
                    None => (Bitmap::anon(n).map_err(nomem)?, false),
                };
                if !restored {
                    c.put_range(0, n, true);
                }
                (c, None)
            }
            Some(name) => {
                let dev = device::open(name)?;
                let need = disk::device_bytes(n).unwrap_or(u64::MAX);
                if dev.size < need {
                    return Err(Error::BadArgument(format!(
                        "log device {name} is too small: {n} regions need {need} bytes, it has {}",
                        dev.size
                    )));
                }
                let map = Bitmap::map_file(&dev.file, BITMAP_OFFSET, n)
                    .map_err(|e| Error::io("map", &dev.path.display().to_string(), e))?;
                (map, Some(dev))
            }
        };
        let (mut sync, sync_restored) = match stored(state::Kind::Sync) {
            Some(st) => (st.bitmap, st.restored),
            None => (Bitmap::anon(n).map_err(nomem)?, false),
        };
        let sync_count = if sync_restored {
            sync.count_ones()
        } else if args.sync == SyncMode::NoSync {
            sync.put_range(0, n, true);
            n
        } else {
            sync.put_range(0, n, false);
            0
        };
        if sync_restored {
            log::info!(
                "log {}/{luid:#x}: sync state restored from the previous daemon ({sync_count}/{n} in sync)",
                String::from_utf8_lossy(uuid)
            );
        }
        Ok(Log {
            uuid: uuid.into(),
            luid,
            recovering: Bitmap::anon(n).map_err(nomem)?,
            // A reconnect log's device holds the live bitmap already (its
            // page cache is what the previous daemon mapped), and other
            // kernel contexts may send MARK/CLEAR between this CTR and the
            // RESUME that follows it: serve them. A fresh disk log's device
            // may still belong to the live table: not before RESUME.
            loaded: dev.is_none() || reconnect,
            clean,
            sync,
            dev,
            detached: false,
            resumed: false,
            sync_search: 0,
            sync_count,
            low_unsynced: 0,
            last_work: None,
            touched_dirtied: false,
            touched_cleaned: false,
            health: Health::Alive,
            reconnect,
            sync_restored,
            args,
        })
    }

    pub fn region_count(&self) -> u64 {
        self.args.region_count
    }

    /// `MAJ:MIN` of a block log device: what the CTR reply names.
    pub fn device_number(&self) -> Option<String> {
        let (a, b) = self.dev.as_ref()?.devno?;
        Some(format!("{a}:{b}"))
    }

    pub fn health(&self) -> Health {
        self.health
    }

    pub fn is_resumed(&self) -> bool {
        self.resumed
    }

    /// The on-disk bitmap bytes (tests and SIGUSR1 summaries).
    pub fn clean_bytes(&self) -> &[u8] {
        self.clean.bytes()
    }

    fn dev_name(&self) -> String {
        self.dev.as_ref().map(|d| d.path.display().to_string()).unwrap_or_default()
    }

    /// RESUME. Core: rewind the resync cursor. Disk: load the bitmap as
    /// dm-log.c `disk_resume` does — a missing or foreign header, or an
    /// explicit `sync`/`nosync`, means a new log; regions past the on-disk
    /// count are dirty (clean with `nosync`); clean is copied to sync; the
    /// header and bitmap are written back and made durable. A second
    /// RESUME without a suspend in between is a no-op (the kernel resends).
    pub fn resume(&mut self) -> Result<(), Error> {
        if self.resumed {
            return Ok(());
        }
        self.sync_search = 0;
        self.low_unsynced = 0;
        self.last_work = None;
        self.recovering.put_range(0, self.region_count(), false);
        if self.dev.is_none() {
            self.resumed = true;
            return Ok(());
        }
        let n = self.region_count();
        let on_disk = if self.detached { None } else { self.read_header() };
        let nr = match on_disk {
            None => 0,
            Some(_) if self.args.sync != SyncMode::Default && !self.reconnect => 0,
            Some(h) => match h.validate() {
                Ok(Some(nr)) => nr,
                Ok(None) => 0,
                Err(v) => {
                    warn!(
                        "{}: incompatible disk log version {v}; treating every region as out of sync",
                        self.dev_name()
                    );
                    self.health = Health::Failed;
                    0
                }
            },
        };
        if nr < n {
            self.clean.put_range(nr, n, self.args.sync == SyncMode::NoSync);
        }
        self.clean.clear_padding();
        if !std::mem::take(&mut self.sync_restored) {
            self.sync.copy_from(&self.clean);
        }
        self.sync_count = self.sync.count_ones();
        self.loaded = true;
        self.resumed = true;
        if self.detached {
            return Err(Error::io("read", &self.dev_name(), std::io::Error::from_raw_os_error(libc::EIO)));
        }
        self.clean.header_mut()[..disk::HEADER_LEN].copy_from_slice(&Header::new(n).to_disk());
        if let Err(e) = self.clean.sync_all() {
            self.health = Health::FlushFailed;
            return Err(Error::io("write header of", &self.dev_name(), e));
        }
        if let Err(e) = self.clean.lock_resident() {
            log::debug!("{}: cannot lock the bitmap in memory ({e}); continuing", self.dev_name());
        }
        self.touched_dirtied = false;
        self.touched_cleaned = false;
        Ok(())
    }

    /// Reads header and bitmap with pread first: an unreadable device then
    /// fails here with EIO instead of raising SIGBUS on a mapped access.
    /// On failure the clean bitmap is detached into memory.
    fn read_header(&mut self) -> Option<Header> {
        let dev = self.dev.as_ref().expect("disk log");
        let total = BITMAP_OFFSET + self.clean.bytes().len();
        let mut buf = vec![0u8; total.min(1 << 16)];
        let mut off = 0usize;
        let mut header = None;
        while off < total {
            let len = buf.len().min(total - off);
            if let Err(e) = dev.file.read_exact_at(&mut buf[..len], off as u64) {
                warn!("{}: cannot read the log ({e}); every region is out of sync", dev.path.display());
                self.health = Health::Failed;
                self.detach();
                return None;
            }
            if off == 0 {
                header = Some(Header::from_disk(&buf[..disk::HEADER_LEN]));
            }
            off += len;
        }
        header
    }

    /// Replaces the mapped bitmap with anonymous memory holding the same
    /// bits (all dirty if they could not be read).
    fn detach(&mut self) {
        if self.detached {
            return;
        }
        if let Ok(mut mem) = Bitmap::anon(self.region_count()) {
            if self.loaded {
                mem.copy_from(&self.clean);
            }
            self.clean = mem;
            self.detached = true;
        }
    }

    /// Called after a SIGBUS at `addr` was survived (see [`crate::fault`]):
    /// if the address is in this log's mapping, the device is gone or
    /// unreadable — keep the bits (zeroed pages read as dirty) in memory and
    /// fail the log. True when the fault was this log's.
    pub fn on_fault(&mut self, addr: usize) -> bool {
        if !self.clean.maps_addr(addr) {
            return false;
        }
        self.fail_vanished();
        true
    }

    /// True when a disk log's device is now smaller than the log (a file
    /// truncated, a device shrunk or gone): its mapping faults past the end.
    pub fn device_shrank(&self) -> bool {
        let Some(dev) = &self.dev else { return false };
        if self.detached {
            return false;
        }
        let need = disk::device_bytes(self.region_count()).unwrap_or(u64::MAX);
        use std::io::{Seek, SeekFrom};
        match (&dev.file).seek(SeekFrom::End(0)) {
            Ok(size) => size < need,
            Err(_) => true,
        }
    }

    /// Fails the log after its device vanished (see [`Log::on_fault`]).
    pub fn fail_vanished(&mut self) {
        warn!(
            "{}: log device shrank or vanished under its mapping; log failed, regions kept in memory",
            self.dev_name()
        );
        self.health = Health::Failed;
        self.detach();
    }

    /// POSTSUSPEND: make everything durable, clears included.
    pub fn postsuspend(&mut self) -> Result<(), Error> {
        self.resumed = false;
        if !self.loaded || self.dev.is_none() {
            return Ok(());
        }
        if self.detached {
            return Err(Error::io("sync", &self.dev_name(), std::io::Error::from_raw_os_error(libc::EIO)));
        }
        match self.clean.sync_all() {
            Ok(()) => {
                self.touched_dirtied = false;
                self.touched_cleaned = false;
                Ok(())
            }
            Err(e) => {
                self.health = Health::FlushFailed;
                Err(Error::io("sync", &self.dev_name(), e))
            }
        }
    }

    pub fn is_clean(&self, r: u64) -> Result<bool, Error> {
        let r = check_region(r, self.region_count())?;
        Ok(self.loaded && self.clean.test(r))
    }

    pub fn in_sync(&self, r: u64) -> Result<bool, Error> {
        let r = check_region(r, self.region_count())?;
        Ok(self.sync.test(r))
    }

    /// Checks a whole region array before any of it takes effect.
    fn check_all(&self, regions: impl Iterator<Item = u64>) -> Result<(), Error> {
        if !self.loaded {
            return Err(Error::NotResumed);
        }
        let n = self.region_count();
        regions.map(|r| check_region(r, n)).try_for_each(|r| r.map(drop))
    }

    /// MARK_REGION: the regions are about to be written; dirty them.
    pub fn mark<I: Iterator<Item = u64> + Clone>(&mut self, regions: I) -> Result<(), Error> {
        self.check_all(regions.clone())?;
        for r in regions {
            self.clean.put(r, false);
        }
        self.touched_dirtied = true;
        Ok(())
    }

    /// CLEAR_REGION: writes finished on every leg; the regions are clean
    /// again. A failed log keeps them dirty, as dm-log.c does.
    pub fn clear<I: Iterator<Item = u64> + Clone>(&mut self, regions: I) -> Result<(), Error> {
        self.check_all(regions.clone())?;
        if self.health == Health::Alive {
            for r in regions {
                self.clean.put(r, true);
            }
        }
        self.touched_cleaned = true;
        Ok(())
    }

    /// FLUSH, with the regions of a version-3 integrated flush (a MARK of
    /// them first; all regions are checked before anything changes).
    pub fn flush<I: Iterator<Item = u64> + Clone>(&mut self, marks: I) -> Result<(), Error> {
        if marks.clone().next().is_some() {
            self.mark(marks)?;
        }
        if !self.touched_dirtied && !self.touched_cleaned {
            return Ok(());
        }
        if self.dev.is_none() || !self.loaded {
            self.touched_dirtied = false;
            self.touched_cleaned = false;
            return Ok(());
        }
        if self.touched_dirtied {
            let r = if self.detached {
                Err(std::io::Error::from_raw_os_error(libc::EIO))
            } else {
                if self.health != Health::Alive {
                    self.clean.redirty_touched();
                }
                self.clean.sync_touched()
            };
            if let Err(e) = r {
                // touched_dirtied stays set: the next FLUSH tries again.
                self.health = Health::FlushFailed;
                return Err(Error::io("sync", &self.dev_name(), e));
            }
        }
        self.touched_dirtied = false;
        self.touched_cleaned = false;
        Ok(())
    }

    /// GET_RESYNC_WORK: the next out-of-sync region not being recovered,
    /// now marked recovering.
    ///
    /// dm-raid1 recovers one region at a time (MAX_RECOVERY = 1), so a
    /// request arriving while the region we last handed out is still
    /// recovering can only be the kernel's resend of a request whose reply
    /// was lost: it gets the same region again instead of a second one
    /// that nobody would ever finish.
    pub fn get_resync_work(&mut self) -> Option<u64> {
        if let Some(r) = self.last_work {
            if self.recovering.test(r) {
                return Some(r);
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
                return Some(r);
            }
        }
        None
    }

    /// SET_REGION_SYNC: recovery of `r` ended; record its sync state.
    pub fn set_region_sync(&mut self, r: u64, in_sync: bool) -> Result<(), Error> {
        let r = check_region(r, self.region_count())?;
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

    /// Makes everything durable without changing state (signals, shutdown).
    pub fn persist(&mut self) -> Result<(), Error> {
        if !self.loaded || self.dev.is_none() || self.detached {
            return Ok(());
        }
        self.clean.sync_all().map_err(|e| {
            self.health = Health::FlushFailed;
            Error::io("sync", &self.dev_name(), e)
        })?;
        self.touched_dirtied = false;
        self.touched_cleaned = false;
        Ok(())
    }

    /// IS_REMOTE_RECOVERING: single node, so nothing recovers remotely; the
    /// hint is the lowest region not in sync (the kernel asks again only
    /// for writes at or past it, and throttles those while it waits).
    pub fn in_sync_hint(&mut self, r: u64) -> Result<u64, Error> {
        check_region(r, self.region_count())?;
        let n = self.region_count();
        if self.sync_count == n {
            self.low_unsynced = n;
        } else {
            self.low_unsynced = self.sync.next_zero(self.low_unsynced).unwrap_or(n);
        }
        Ok(self.low_unsynced)
    }

    /// STATUS_INFO as dm-log.c prints it: `1 core` / `3 disk MAJ:MIN A`.
    pub fn status_info(&self) -> String {
        match &self.dev {
            None => format!("1 {}", self.args.type_name),
            Some(d) => format!("3 {} {} {}", self.args.type_name, d.name, self.health.letter()),
        }
    }

    /// STATUS_TABLE as dm-log.c prints it (current kernels build their own).
    pub fn status_table(&self) -> String {
        let a = &self.args;
        let extra = u32::from(a.sync != SyncMode::Default);
        match &self.dev {
            None => format!("{} {} {} {}", a.type_name, 1 + extra, a.region_size, a.sync_word()),
            Some(d) => format!("{} {} {} {} {}", a.type_name, 2 + extra, d.name, a.region_size, a.sync_word()),
        }
    }

    /// One line for SIGUSR1.
    pub fn summary(&self) -> String {
        let clean = if self.loaded { self.clean.count_ones() } else { 0 };
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
            match &self.dev {
                None => String::new(),
                Some(d) => format!(", device {} ({})", d.name, self.health.letter()),
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options::default()
    }

    fn args(s: &str) -> Result<LogArgs, Error> {
        LogArgs::parse(s.as_bytes(), &opts())
    }

    #[test]
    fn parses_kernel_constructor_strings() {
        let a = args("2097152 core 1024 nosync").unwrap();
        assert_eq!((a.region_size, a.region_count, a.sync), (1024, 2048, SyncMode::NoSync));
        assert!(!a.is_disk());
        let a = args("16385 disk 253:2 1024\0").unwrap();
        assert_eq!(a.device.as_deref(), Some("253:2"));
        assert_eq!((a.region_count, a.sync), (17, SyncMode::Default));
        assert_eq!(args("16384 core 2 sync").unwrap().sync, SyncMode::Sync);
    }

    #[test]
    fn rejects_bad_constructor_strings_naming_the_argument() {
        for (s, what) in [
            ("", "no target length"),
            ("16384", "no target length"),
            ("x core 1024", "target length"),
            ("0 core 1024", "target length"),
            ("16384 core 1000", "region size"),
            ("16384 core 1", "region size"),
            ("16384 core 32768", "region size"),
            ("16384 core 1024 maybe", "sync argument"),
            ("16384 core", "core takes"),
            ("16384 core 1024 sync extra", "core takes"),
            ("16384 disk 1024", "disk takes"),
            ("16384 fancy 1024", "log type"),
            ("16384 clustered-core 1024", "cmirrord"),
        ] {
            let e = args(s).unwrap_err().to_string();
            assert!(e.contains(what), "{s:?}: {e}");
        }
        let allow = Options { allow_clustered: true, ..Options::default() };
        assert!(LogArgs::parse(b"16384 clustered-disk 8:0 1024", &allow).unwrap().is_disk());
        assert!(!LogArgs::parse(b"16384 clustered-core 1024", &allow).unwrap().is_disk());
    }

    fn core(s: &str) -> Log {
        Log::create(b"u", 1, args(s).unwrap(), false, None).unwrap()
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
        assert_eq!(l.get_resync_work(), Some(0));
        // Resend while 0 is recovering: the same region again.
        assert_eq!(l.get_resync_work(), Some(0));
        l.set_region_sync(0, true).unwrap();
        assert_eq!(l.sync_count(), 1);
        l.set_region_sync(0, true).unwrap();
        assert_eq!(l.sync_count(), 1, "exact count");
        assert_eq!(l.get_resync_work(), Some(1));
        assert_eq!(l.in_sync_hint(5).unwrap(), 1);
        l.set_region_sync(1, false).unwrap();
        // Failed recovery: not handed out again before the next resume.
        for r in 2..8 {
            assert_eq!(l.get_resync_work(), Some(r));
            l.set_region_sync(r, true).unwrap();
        }
        assert_eq!(l.get_resync_work(), None);
        assert_eq!(l.in_sync_hint(0).unwrap(), 1);
        l.postsuspend().unwrap();
        l.resume().unwrap();
        assert_eq!(l.get_resync_work(), Some(1));
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
        assert_eq!(l.get_resync_work(), None);
        assert_eq!(l.in_sync_hint(0).unwrap(), 8);
        assert_eq!(l.status_table(), "core 2 1024 nosync ");
    }
}
