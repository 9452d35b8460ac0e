//! Errors of request handling, and the one place where each becomes the
//! negative errno the kernel receives in `dm_ulog_request.error`.

use std::fmt;
use std::io;

/// Why a request failed. Every variant maps to exactly one errno in
/// [`Error::errno`]; `Display` is the log line.
#[derive(Debug)]
pub enum Error {
    /// No log with this (uuid, luid). The kernel answers -ESRCH by sending
    /// CTR + RESUME again, which is how logs come back after a restart.
    UnknownLog,
    /// CTR for an existing (uuid, luid) with different arguments.
    Exists,
    /// A CTR argument is wrong; the string names it.
    BadArgument(String),
    /// The log type is one dmulogd does not serve (or not without an option).
    Unsupported(String),
    /// Request type outside 1..=17.
    UnknownRequest(u32),
    /// Payload has the wrong size for the request.
    BadPayload { request: &'static str, size: usize },
    /// A region index at or past `region_count`.
    BadRegion { region: u64, count: u64 },
    /// A disk log was asked for its bitmap before a RESUME loaded it: its
    /// first RESUME was lost. -ESRCH makes the kernel reconnect (CTR +
    /// RESUME) and retry, as for an unknown log.
    NotLoaded,
    /// The log needs more memory than the daemon may use.
    NoMemory { needed: u64, left: u64 },
    /// Opening, sizing, reading or syncing the log device failed.
    Io { op: &'static str, path: String, source: io::Error },
}

impl Error {
    pub fn io(op: &'static str, path: &str, source: io::Error) -> Error {
        Error::Io { op, path: path.to_owned(), source }
    }

    /// The negative errno sent back to the kernel for this error.
    pub fn errno(&self) -> i32 {
        -match self {
            Error::UnknownLog | Error::NotLoaded => libc::ESRCH,
            Error::Exists => libc::EEXIST,
            Error::BadArgument(_)
            | Error::Unsupported(_)
            | Error::UnknownRequest(_)
            | Error::BadPayload { .. }
            | Error::BadRegion { .. } => libc::EINVAL,
            Error::NoMemory { .. } => libc::ENOMEM,
            // The kernel resends a request answered -EAGAIN at once, for
            // ever, and takes -ESRCH for a missing server: an I/O error
            // carrying either becomes -EIO.
            Error::Io { source, .. } => match source.raw_os_error() {
                Some(e) if e > 0 && e != libc::EAGAIN && e != libc::ESRCH => e,
                _ => libc::EIO,
            },
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnknownLog => write!(f, "no such log (uuid, luid)"),
            Error::Exists => write!(f, "log exists with different arguments"),
            Error::BadArgument(what) => write!(f, "bad log argument: {what}"),
            Error::Unsupported(what) => write!(f, "unsupported: {what}"),
            Error::UnknownRequest(t) => write!(f, "unknown request type {t}"),
            Error::BadPayload { request, size } => {
                write!(f, "{request}: payload of {size} bytes has the wrong size")
            }
            Error::BadRegion { region, count } => {
                write!(f, "region {region} out of range (log has {count} regions)")
            }
            Error::NotLoaded => write!(f, "disk log never resumed (its RESUME was lost): asking for a reconnect"),
            Error::NoMemory { needed, left } => {
                write!(f, "log needs {needed} bytes of bitmap memory, {left} left (see --max-memory)")
            }
            Error::Io { op, path, source } => write!(f, "{op} {path}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_are_negative_and_specific() {
        assert_eq!(Error::UnknownLog.errno(), -libc::ESRCH);
        assert_eq!(Error::Exists.errno(), -libc::EEXIST);
        assert_eq!(Error::BadRegion { region: 9, count: 8 }.errno(), -libc::EINVAL);
        let io = Error::io("sync", "/x", io::Error::from_raw_os_error(libc::EIO));
        assert_eq!(io.errno(), -libc::EIO);
        let other = Error::io("sync", "/x", io::Error::other("no errno"));
        assert_eq!(other.errno(), -libc::EIO);
        for looping in [libc::EAGAIN, libc::ESRCH] {
            let e = Error::io("write", "/x", io::Error::from_raw_os_error(looping));
            assert_eq!(e.errno(), -libc::EIO, "errno {looping} would make the kernel loop");
        }
        assert_eq!(Error::NotLoaded.errno(), -libc::ESRCH);
    }
}
