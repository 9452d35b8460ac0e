//! Surviving a log device that disappears under its mapping.
//!
//! Touching a mapped page past the end of a truncated file (or one the
//! kernel can no longer read) raises SIGBUS, which would kill the daemon
//! and with it every mirror's I/O. The handler instead maps a zero page
//! over the faulting page and records the address; the access then
//! completes (a zero bit reads as dirty: the safe direction), and after the
//! request the loop fails the log that owns the address and answers -EIO.

use crate::sys::cvt;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

static FAULTS: AtomicU64 = AtomicU64::new(0);
static LAST_ADDR: AtomicUsize = AtomicUsize::new(0);
static PAGE: AtomicUsize = AtomicUsize::new(4096);

extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for SA_SIGINFO handlers;
    // si_addr is the faulting address for SIGBUS.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE.load(Ordering::Relaxed);
    let base = addr & !(page - 1);
    // SAFETY: mmap is async-signal-safe; MAP_FIXED replaces exactly the one
    // page that faulted, which belongs to a log mapping of ours (the only
    // file mappings this static binary makes). If it fails we restore the
    // default action so the retried access kills the process as before.
    let r = unsafe {
        libc::mmap(
            base as *mut libc::c_void,
            page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if r == libc::MAP_FAILED {
        // SAFETY: resetting a handler is async-signal-safe.
        unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
        return;
    }
    LAST_ADDR.store(addr, Ordering::Relaxed);
    FAULTS.fetch_add(1, Ordering::Relaxed);
}

/// Number of faults survived so far; compare before and after a request.
pub fn count() -> u64 {
    FAULTS.load(Ordering::Relaxed)
}

pub fn last_addr() -> usize {
    LAST_ADDR.load(Ordering::Relaxed)
}

pub fn install() -> io::Result<()> {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if let Ok(p) = usize::try_from(p) {
        PAGE.store(p, Ordering::Relaxed);
    }
    // SAFETY: a zeroed sigaction is valid; the handler has the SA_SIGINFO
    // signature and only calls mmap/signal and touches atomics.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigbus as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        cvt(libc::sigemptyset(&mut sa.sa_mask))?;
        cvt(libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()))?;
    }
    Ok(())
}
