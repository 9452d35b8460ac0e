//! Signals: set flags from async-signal-safe handlers; the loop acts on
//! them between requests.
//!
//! SIGTERM/SIGINT: exit if no log is live, otherwise flush everything and
//! keep serving (mirrors with a userspace log block all I/O without a
//! server). SIGQUIT: flush everything and exit even with live logs.
//! SIGUSR1: log one summary line per log. SIGHUP: ignored (logged).

use crate::sys::cvt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

static TERM: AtomicBool = AtomicBool::new(false);
static QUIT: AtomicBool = AtomicBool::new(false);
static USR1: AtomicBool = AtomicBool::new(false);
static HUP: AtomicBool = AtomicBool::new(false);
/// Set with any of the above, so the loop's per-request check is one load.
static ANY: AtomicBool = AtomicBool::new(false);

const HANDLED: [libc::c_int; 5] = [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGUSR1, libc::SIGHUP];

extern "C" fn on_signal(sig: libc::c_int) {
    let flag = match sig {
        libc::SIGTERM | libc::SIGINT => &TERM,
        libc::SIGQUIT => &QUIT,
        libc::SIGUSR1 => &USR1,
        _ => &HUP,
    };
    flag.store(true, Ordering::Relaxed);
    ANY.store(true, Ordering::Release);
}

#[derive(Default, Debug, PartialEq, Eq)]
pub struct Pending {
    pub term: bool,
    pub quit: bool,
    pub usr1: bool,
    pub hup: bool,
}

/// Takes (and clears) the signals that arrived since the last call.
pub fn take() -> Pending {
    if !ANY.load(Ordering::Relaxed) || !ANY.swap(false, Ordering::Acquire) {
        return Pending::default();
    }
    Pending {
        term: TERM.swap(false, Ordering::Relaxed),
        quit: QUIT.swap(false, Ordering::Relaxed),
        usr1: USR1.swap(false, Ordering::Relaxed),
        hup: HUP.swap(false, Ordering::Relaxed),
    }
}

/// An empty signal set.
fn empty_set() -> io::Result<libc::sigset_t> {
    // SAFETY: all-zero is a valid sigset_t, which sigemptyset initialises.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live local sigset_t.
    cvt(unsafe { libc::sigemptyset(&mut set) })?;
    Ok(set)
}

/// Installs the handlers and blocks the signals; returns the mask to wait
/// with (the previous one, with them unblocked). No SA_RESTART: a blocking
/// call is interrupted so the loop sees the flag.
pub fn install() -> io::Result<libc::sigset_t> {
    let mut set = empty_set()?;
    for s in HANDLED {
        // SAFETY: `set` is an initialised sigset_t; `s` a valid signal.
        cvt(unsafe { libc::sigaddset(&mut set, s) })?;
        // SAFETY: all-zero is a valid sigaction (no flags, no handler yet).
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        sa.sa_mask = empty_set()?;
        // SAFETY: `sa` is initialised; on_signal only stores to atomics,
        // which is async-signal-safe.
        cvt(unsafe { libc::sigaction(s, &sa, std::ptr::null_mut()) })?;
    }
    let mut old = empty_set()?;
    // SAFETY: both pointers are to live, initialised sigset_t locals.
    cvt(unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old) })?;
    for s in HANDLED {
        // SAFETY: `old` is an initialised sigset_t; `s` a valid signal.
        cvt(unsafe { libc::sigdelset(&mut old, s) })?;
    }
    Ok(old)
}
