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

/// Installs the handlers and blocks the signals; returns the mask to wait
/// with (the previous one, with them unblocked).
pub fn install() -> io::Result<libc::sigset_t> {
    // SAFETY: zeroed memory is a valid (empty) sigset_t/sigaction; every
    // pointer passed below points to a live local; on_signal only stores
    // to atomics, which is async-signal-safe. No SA_RESTART: a blocking
    // call is interrupted so the loop sees the flag.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        cvt(libc::sigemptyset(&mut set))?;
        for s in HANDLED {
            cvt(libc::sigaddset(&mut set, s))?;
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            cvt(libc::sigemptyset(&mut sa.sa_mask))?;
            cvt(libc::sigaction(s, &sa, std::ptr::null_mut()))?;
        }
        let mut old: libc::sigset_t = std::mem::zeroed();
        cvt(libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old))?;
        for s in HANDLED {
            cvt(libc::sigdelset(&mut old, s))?;
        }
        Ok(old)
    }
}
