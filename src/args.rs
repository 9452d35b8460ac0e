//! A log's table arguments: the CTR payload parsed, nothing opened.
//!
//! The kernel strips the uuid and `integrated_flush` from the table's log
//! arguments and sends `"<target sectors> <type> <args...>"`, with or
//! without a trailing NUL (the reconnect CTR after -ESRCH has one).

use crate::bitmap::bitmap_bytes;
use crate::error::Error;

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

impl LogArgs {
    /// Parses the CTR payload: `"<target sectors> <type> <args...>"`, the
    /// uuid and `integrated_flush` already stripped by the kernel. The
    /// payload may or may not end in NUL; anything after a NUL is ignored.
    pub fn parse(payload: &[u8], allow_clustered: bool) -> Result<LogArgs, Error> {
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
            "clustered-core" | "clustered-disk" if allow_clustered => kind == "clustered-disk",
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

    /// Bitmap memory this log needs, for the daemon's memory limit: sync,
    /// recovering, and the clean bitmap (core) or the two images of the
    /// device's bitmap (disk, see `crate::image`).
    pub fn memory_bytes(&self) -> u64 {
        let one = bitmap_bytes(self.region_count).unwrap_or(u64::MAX);
        let n = if self.is_disk() { 4 } else { 3 };
        one.saturating_mul(n)
    }

    pub fn sync_word(&self) -> &'static str {
        match self.sync {
            SyncMode::Default => "",
            SyncMode::Sync => "sync ",
            SyncMode::NoSync => "nosync ",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<LogArgs, Error> {
        LogArgs::parse(s.as_bytes(), false)
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
        assert!(LogArgs::parse(b"16384 clustered-disk 8:0 1024", true).unwrap().is_disk());
        assert!(!LogArgs::parse(b"16384 clustered-core 1024", true).unwrap().is_disk());
    }
}
