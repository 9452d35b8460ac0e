//! Logs by (uuid, luid).
//!
//! A table reload builds a second log with the same uuid and a new luid in
//! the inactive slot (seed 000: the luid is the kernel's `log_c` pointer),
//! so the luid alone tells live from inactive; the uuid is still compared
//! so a luid reused after a DTR can never reach a different mirror's log.
//! Logs are found by luid first (one hash of a u64 per request), then by
//! uuid among the (almost always single) entries with that luid.

use crate::args::LogArgs;
use crate::dm::LegSource;
use crate::error::Error;
use crate::log::Log;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::PathBuf;

/// Hashes a luid with one multiplication. Luids come only from the kernel
/// (datagrams from any other sender are dropped before a lookup), so
/// SipHash's defence against chosen keys buys nothing here, and it was a
/// tenth of an IN_SYNC's instructions. A luid is a `log_c` address:
/// aligned, so its low bits are zero; the multiplication moves entropy into
/// the high bits, which hashbrown uses for its buckets and tags.
#[derive(Default)]
pub struct LuidHasher(u64);

impl Hasher for LuidHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        // 2^64 / golden ratio (Fibonacci hashing), then the high half
        // folded down too so low-bit users see it.
        let h = (self.0 ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 32);
    }
}

/// Daemon-wide settings that shape how logs are built.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Serve clustered-core / clustered-disk as single-node logs.
    pub allow_clustered: bool,
    /// Where sync state survives a daemon restart ([`crate::state`]),
    /// opened once by the registry; None keeps it in memory only.
    pub state_dir: Option<PathBuf>,
    /// Where the mirrors' legs are found (device-mapper, or test files).
    pub legs: LegSource,
}

pub struct Registry {
    logs: HashMap<u64, Vec<Log>, BuildHasherDefault<LuidHasher>>,
    count: usize,
    pub opts: Options,
    state: Option<crate::state::StateDir>,
    memory_limit: u64,
    memory_used: u64,
}

/// What a CTR produced.
pub struct Created {
    /// `MAJ:MIN` of a block log device.
    pub devno: Option<String>,
    /// False when an identical log existed (a resent CTR).
    pub new: bool,
}

impl Registry {
    pub fn new(opts: Options, memory_limit: u64) -> Registry {
        let state = opts.state_dir.as_deref().and_then(|p| {
            crate::state::StateDir::open(p)
                .map_err(|e| log::warn!("state directory {}: {e}; sync state will not survive a restart", p.display()))
                .ok()
        });
        Registry { logs: HashMap::default(), count: 0, opts, state, memory_limit, memory_used: 0 }
    }

    pub fn memory_limit(&self) -> u64 {
        self.memory_limit
    }

    pub fn memory_used(&self) -> u64 {
        self.memory_used
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn get(&mut self, uuid: &[u8], luid: u64) -> Result<&mut Log, Error> {
        self.find(luid, |u| crate::wire::bytes_eq(u, uuid))
    }

    /// The log at `luid` whose uuid `is_uuid` accepts (a request compares
    /// its uuid field in place, with no search for its end first).
    pub fn find(&mut self, luid: u64, is_uuid: impl Fn(&[u8]) -> bool) -> Result<&mut Log, Error> {
        self.logs
            .get_mut(&luid)
            .and_then(|v| v.iter_mut().find(|l| is_uuid(&l.uuid)))
            // Not `ok_or`: that builds an Error, and drops it, on every hit.
            .map_or_else(|| Err(Error::UnknownLog), Ok)
    }

    /// CTR. Idempotent: the same arguments for an existing (uuid, luid)
    /// keep the log. Different ones mean the log there is dead: the luid
    /// is the address of the kernel's log context, so no two live logs
    /// share one, and a new context at the same address means the old one
    /// was freed without a DTR (its table's load failed after our CTR).
    /// That zombie is replaced rather than blocking the retry with -EEXIST.
    pub fn create(&mut self, uuid: &[u8], luid: u64, ctr: &[u8]) -> Result<Created, Error> {
        let args = LogArgs::parse(ctr, self.opts.allow_clustered)?;
        let mut replaced = 0;
        if let Ok(existing) = self.get(uuid, luid) {
            if existing.args == args {
                return Ok(Created { devno: existing.device_number(), new: false });
            }
            replaced = existing.args.memory_bytes();
        }
        let need = args.memory_bytes();
        let left = self.memory_limit.saturating_sub(self.memory_used - replaced);
        if need > left {
            return Err(Error::NoMemory { needed: need, left });
        }
        // Only the kernel's reconnect CTR sends the string's NUL. A log
        // replacing a dead one never takes its state files back.
        let reconnect = ctr.last() == Some(&0) && replaced == 0;
        let log = crate::open::log(uuid, luid, args, reconnect, self.state.as_ref())?;
        if replaced > 0 {
            log::warn!(
                "log {}/{luid:#x}: a CTR with other arguments; the old log was never destroyed, replacing it",
                String::from_utf8_lossy(uuid)
            );
            self.forget(uuid, luid)?;
        }
        let devno = log.device_number();
        self.logs.entry(luid).or_default().push(log);
        self.count += 1;
        self.memory_used += need;
        Ok(Created { devno, new: true })
    }

    /// RESUME, after giving a disk log its device and legs.
    pub fn resume(&mut self, uuid: &[u8], luid: u64) -> Result<(), Error> {
        let legs = self.opts.legs.clone();
        let log = self.get(uuid, luid)?;
        if !log.is_resumed() && log.wants_attachment() {
            crate::open::attach(log, &legs);
        }
        log.resume()
    }

    /// DTR: forget the log. Nothing is written: the table that replaced
    /// this one may already own the same log device.
    pub fn remove(&mut self, uuid: &[u8], luid: u64) -> Result<(), Error> {
        // The table is gone either way: a DTR reaching a restarted daemon
        // (-ESRCH, which the kernel ignores) must still drop the state
        // files the previous daemon left for this log.
        if let Some(dir) = &self.state {
            crate::state::remove(dir, uuid, luid);
        }
        self.forget(uuid, luid)
    }

    fn forget(&mut self, uuid: &[u8], luid: u64) -> Result<(), Error> {
        let v = self.logs.get_mut(&luid).ok_or(Error::UnknownLog)?;
        let i = v.iter().position(|l| &*l.uuid == uuid).ok_or(Error::UnknownLog)?;
        let log = v.swap_remove(i);
        if v.is_empty() {
            self.logs.remove(&luid);
        }
        self.count -= 1;
        self.memory_used -= log.args.memory_bytes();
        Ok(())
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Log> {
        self.logs.values_mut().flatten()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Log> {
        self.logs.values().flatten()
    }
}
