//! Building a log: its state files, its device, its legs. Everything a
//! [`Log`] needs from outside memory is opened here, so the state machine
//! in [`crate::log`] stays free of I/O.

use crate::args::{LogArgs, SyncMode};
use crate::bitmap::Bitmap;
use crate::dm::{LegSource, Legs};
use crate::error::Error;
use crate::image::{BlockIo, DiskImage};
use crate::log::{Backing, Disk, Log, Prior};
use crate::state::{self, StateDir};
use log::{info, warn};

/// CTR. `reconnect`: the kernel's CTR after -ESRCH (a daemon restart).
/// State files are taken back only for a reconnect, and only a log the
/// previous daemon had resumed continues as live (see [`Prior`]).
///
/// A disk log's device is opened here only to check it (a block device or
/// file, large enough) and to name it in the reply; it is opened for good
/// at the first RESUME ([`attach`]).
pub fn log(uuid: &[u8], luid: u64, args: LogArgs, reconnect: bool, dir: Option<&StateDir>) -> Result<Log, Error> {
    let n = args.region_count;
    let nomem = |e: std::io::Error| Error::io("allocate bitmap for", "log", e);
    // The device first: a CTR that fails leaves no state file behind.
    let disk = match &args.device {
        None => None,
        Some(name) => {
            let dev = crate::device::open(name)?;
            let len = dev.image_len(n).unwrap_or(u64::MAX);
            if dev.size < len {
                return Err(Error::BadArgument(format!(
                    "log device {name} is too small: {n} regions need {len} bytes, it has {}",
                    dev.size
                )));
            }
            let len = usize::try_from(len).map_err(|_| Error::BadArgument(format!("log of {n} regions")))?;
            let image = DiskImage::new(n, len).map_err(nomem)?;
            Some(Box::new(Disk::new(dev.name.clone(), dev.devno, image)))
        }
    };
    let stored = |kind: state::Kind, reuse: bool| -> Option<state::Stored> {
        let dir = dir?;
        state::open(dir, uuid, luid, kind, n, reuse)
            .map_err(|e| warn!("state file in {}: {e}; keeping this log's state in memory only", dir.path().display()))
            .ok()
    };
    let sync_file = stored(state::Kind::Sync, reconnect);
    let prior = match &sync_file {
        _ if !reconnect => Prior::New,
        Some(s) if s.restored && s.resumed => Prior::Live,
        Some(s) if s.restored => Prior::New,
        _ => Prior::Unknown,
    };
    let live = prior == Prior::Live;
    let (mut sync, restored) = match sync_file {
        Some(s) => (s.bitmap, s.restored && live),
        None => (Bitmap::anon(n).map_err(nomem)?, false),
    };
    if !restored {
        sync.put_range(0, n, args.sync == SyncMode::NoSync);
    } else {
        info!(
            "log {}/{luid:#x}: sync state restored from the previous daemon ({}/{n} in sync)",
            String::from_utf8_lossy(uuid),
            sync.count_ones()
        );
    }
    let backing = match &args.device {
        None => {
            let (mut clean, restored) = match stored(state::Kind::Clean, live) {
                Some(s) => (s.bitmap, s.restored),
                None => (Bitmap::anon(n).map_err(nomem)?, false),
            };
            if !restored {
                clean.put_range(0, n, true);
            }
            Backing::Core { clean }
        }
        Some(_) => Backing::Disk(disk.expect("checked first")),
    };
    let recovering = Bitmap::anon(n).map_err(nomem)?;
    Ok(Log::new(uuid, luid, args, backing, sync, recovering, prior))
}

/// Before a disk log's RESUME: opens its device (checked to be the one
/// the CTR named) and finds and opens the mirror's legs. Failures are
/// logged; the RESUME then fails the log (no device) or keeps clean bits
/// in memory (no legs).
pub fn attach(log: &mut Log, legs: &LegSource) {
    let who = format!("log {}/{:#x}", String::from_utf8_lossy(&log.uuid), log.luid);
    let io: Option<Box<dyn BlockIo>> = if log.has_device() {
        None
    } else {
        let name = log.args.device.clone().unwrap_or_default();
        match crate::device::open(&name) {
            Ok(d) if log.device_number() == d.devno.map(|(a, b)| format!("{a}:{b}")) => Some(Box::new(d)),
            Ok(d) => {
                warn!("{who}: {name} is now {}, not the device its table named", d.name);
                None
            }
            Err(e) => {
                warn!("{who}: {e}");
                None
            }
        }
    };
    let found: Option<Box<dyn Legs>> = if log.has_legs() {
        None
    } else {
        match legs.open(&log.uuid) {
            Ok(Some(l)) => {
                log::debug!("{who}: legs {}", l.names().join(" "));
                Some(Box::new(l))
            }
            Ok(None) => {
                warn!(
                    "{who}: no device-mapper mirror table names this log, so its legs cannot be flushed: \
                     regions cleared while it is live stay dirty on the device (a crash resyncs them)"
                );
                None
            }
            Err(e) => {
                warn!("{who}: finding the mirror's legs: {e}; clean bits stay in memory");
                None
            }
        }
    };
    log.attach(io, found);
}
