//! Log lines that land right wherever stderr goes.
//!
//! - A terminal or a file: `dmulogd[pid]: LEVEL: message`.
//! - The journal (systemd sets JOURNAL_STREAM to stderr's device:inode):
//!   a syslog priority prefix `<N>` so the journal records the level, and
//!   no name (journald adds `dmulogd[pid]:` itself).
//! - The kernel log (/dev/kmsg, where an initramfs daemon's stderr goes):
//!   the prefix and the name, and at most [`KMSG_BURST`] lines per
//!   [`KMSG_WINDOW`]: the kernel drops the rest of a burst from one opener
//!   (10 per 5 s) and reports the count only when the file is closed, so a
//!   long SIGUSR1 dump would be cut silently. Lines past the burst are
//!   counted here and the count is logged when the window reopens.

use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

pub const KMSG_BURST: u32 = 9;
pub const KMSG_WINDOW: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Plain = 0,
    Journal = 1,
    Kmsg = 2,
}

impl Style {
    pub fn parse(s: &str) -> Option<Style> {
        match s {
            "plain" => Some(Style::Plain),
            "journal" => Some(Style::Journal),
            "kmsg" => Some(Style::Kmsg),
            _ => None,
        }
    }
}

static STYLE: AtomicU8 = AtomicU8::new(Style::Plain as u8);

pub fn style() -> Style {
    match STYLE.load(Ordering::Relaxed) {
        1 => Style::Journal,
        2 => Style::Kmsg,
        _ => Style::Plain,
    }
}

pub fn set_style(s: Style) {
    STYLE.store(s as u8, Ordering::Relaxed);
}

/// What stderr is now: the journal, the kernel log, or anything else.
pub fn detect() -> Style {
    if crate::daemon::stderr_is_journal() {
        return Style::Journal;
    }
    match std::fs::metadata("/proc/self/fd/2") {
        // /dev/kmsg is character device 1:11.
        Ok(m) if m.file_type().is_char_device() && m.rdev() == libc::makedev(1, 11) => Style::Kmsg,
        _ => Style::Plain,
    }
}

/// syslog priority of a level.
fn priority(l: log::Level) -> u8 {
    match l {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// One record as `style` writes it.
pub fn line(style: Style, level: log::Level, msg: &std::fmt::Arguments<'_>) -> String {
    let pid = std::process::id();
    match style {
        Style::Plain => format!("dmulogd[{pid}]: {level}: {msg}\n"),
        Style::Journal => format!("<{}>{msg}\n", priority(level)),
        Style::Kmsg => format!("<{}>dmulogd[{pid}]: {msg}\n", priority(level)),
    }
}

/// Where records go: stderr, kept within the kernel log's burst limit
/// when stderr is /dev/kmsg.
#[derive(Default)]
struct Sink {
    window: Option<Instant>,
    shown: u32,
    dropped: u64,
}

impl Sink {
    /// True when a record may be written now (kmsg), after reporting what
    /// the last window dropped.
    fn admit(&mut self, now: Instant) -> bool {
        if style() != Style::Kmsg {
            return true;
        }
        match self.window {
            Some(t) if now.duration_since(t) < KMSG_WINDOW => {
                self.shown += 1;
                if self.shown > KMSG_BURST {
                    self.dropped += 1;
                    return false;
                }
                true
            }
            _ => {
                self.window = Some(now);
                self.shown = 1;
                if self.dropped > 0 {
                    let n = std::mem::take(&mut self.dropped);
                    let note =
                        line(Style::Kmsg, log::Level::Warn, &format_args!("{n} log lines dropped (kernel log limit)"));
                    let _ = io::stderr().write_all(note.as_bytes());
                    self.shown = 2;
                }
                true
            }
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.admit(Instant::now()) {
            io::stderr().write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sets up the logger: `verbosity` -1 warnings only, 0 info, 1 debug, 2+
/// trace; RUST_LOG overrides. `style` None: detect from stderr.
pub fn init(verbosity: i32, forced: Option<Style>) {
    set_style(forced.unwrap_or_else(detect));
    let level = match verbosity {
        i32::MIN..=-1 => log::LevelFilter::Warn,
        0 => log::LevelFilter::Info,
        1 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    let mut b = env_logger::Builder::new();
    b.filter_level(level);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
    }
    b.target(env_logger::Target::Pipe(Box::new(Sink::default())));
    b.format(|buf, rec| buf.write_all(line(style(), rec.level(), rec.args()).as_bytes()));
    let _ = b.try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_by_style() {
        let pid = std::process::id();
        let l = |s| line(s, log::Level::Warn, &format_args!("x {}", 1));
        assert_eq!(l(Style::Plain), format!("dmulogd[{pid}]: WARN: x 1\n"));
        assert_eq!(l(Style::Journal), "<4>x 1\n");
        assert_eq!(l(Style::Kmsg), format!("<4>dmulogd[{pid}]: x 1\n"));
    }

    #[test]
    fn kmsg_bursts_stay_within_the_kernel_limit() {
        set_style(Style::Kmsg);
        let mut s = Sink::default();
        let t = Instant::now();
        let admitted = (0..30).filter(|_| s.admit(t)).count();
        assert_eq!(admitted, KMSG_BURST as usize);
        assert_eq!(s.dropped, 30 - u64::from(KMSG_BURST));
        // The next window reports the drop (one line) and admits again.
        assert!(s.admit(t + KMSG_WINDOW));
        assert_eq!((s.dropped, s.shown), (0, 2));
        set_style(Style::Plain);
    }
}
