//! Surviving a state file that is truncated under its mapping.
//!
//! The only file mappings dmulogd makes are its state files
//! ([`crate::state`]); log devices are read and written with plain I/O.
//! Touching a mapped page past the end of a truncated file raises SIGBUS,
//! which would kill the daemon and with it every mirror's I/O. The handler
//! instead maps a zero page over the faulting page and records the
//! address; the access then completes (a zero bit reads as "not in sync" /
//! dirty: the safe direction), and the loop fails the log that owns the
//! address and answers -EIO.
//!
//! The handler acts only on a real access fault (`BUS_ADRERR`,
//! `BUS_OBJERR`) inside a mapping registered here: a `kill -BUS` carries a
//! sender pid where the address would be, and a fault anywhere else (a
//! machine-check on anonymous memory, the binary's own file) must not be
//! papered over with zeros, so those get the default action.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// File mappings the handler may repair: (start, length) pairs, 0 = free.
/// Two state files per log at most; a mapping that finds no slot is not
/// registered, and a fault in it kills the daemon as it would without
/// this module.
const SLOTS: usize = 1 << 15;
static STARTS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static LENS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];

/// Faulting addresses, in a ring the loop reads after each request.
const RING: usize = 64;
static ADDRS: [AtomicUsize; RING] = [const { AtomicUsize::new(0) }; RING];
static FAULTS: AtomicU64 = AtomicU64::new(0);
/// `kill -BUS` and other sent SIGBUS, ignored.
static SENT: AtomicU64 = AtomicU64::new(0);
static PAGE: AtomicUsize = AtomicUsize::new(4096);

fn slot_of(start: usize) -> usize {
    (start / 4096).wrapping_mul(0x9E37_79B9) % SLOTS
}

/// Records a file mapping the handler may repair.
pub fn register(start: usize, len: usize) {
    let first = slot_of(start);
    for k in 0..SLOTS {
        let i = (first + k) % SLOTS;
        if STARTS[i].load(Ordering::Relaxed) == 0 {
            LENS[i].store(len, Ordering::Relaxed);
            STARTS[i].store(start, Ordering::Release);
            return;
        }
    }
    log::warn!("more than {SLOTS} state file mappings: a truncated state file would not be survived");
}

/// Forgets a mapping (before it is unmapped).
pub fn unregister(start: usize) {
    let first = slot_of(start);
    for k in 0..SLOTS {
        let i = (first + k) % SLOTS;
        if STARTS[i].load(Ordering::Relaxed) == start {
            STARTS[i].store(0, Ordering::Release);
            return;
        }
    }
}

fn registered(addr: usize) -> bool {
    STARTS.iter().zip(LENS.iter()).any(|(s, l)| {
        let s = s.load(Ordering::Acquire);
        s != 0 && addr >= s && addr - s < l.load(Ordering::Relaxed)
    })
}

extern "C" fn on_sigbus(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: errno is thread-local and always valid to read.
    let saved_errno = unsafe { *libc::__errno_location() };
    // SAFETY: the kernel passes a valid siginfo_t to SA_SIGINFO handlers.
    let code = unsafe { (*info).si_code };
    if code <= 0 {
        // Sent by a process (SI_USER, SI_QUEUE, SI_TKILL): no address.
        SENT.fetch_add(1, Ordering::Relaxed);
        return;
    }
    // SAFETY: for a kernel-generated SIGBUS si_addr is the faulting address.
    let addr = unsafe { (*info).si_addr() } as usize;
    if !(code == libc::BUS_ADRERR || code == libc::BUS_OBJERR) || !registered(addr) {
        // SAFETY: resetting a handler is async-signal-safe; the access is
        // retried on return and now takes the default action.
        unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
        return;
    }
    let page = PAGE.load(Ordering::Relaxed);
    let base = addr & !(page - 1);
    // SAFETY: mmap is async-signal-safe; MAP_FIXED replaces exactly the one
    // page that faulted, inside a registered state file mapping.
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
        // SAFETY: as above; the retried access kills the process.
        unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
        return;
    }
    let n = FAULTS.load(Ordering::Relaxed);
    ADDRS[usize::try_from(n % RING as u64).unwrap_or(0)].store(addr, Ordering::Relaxed);
    FAULTS.store(n + 1, Ordering::Release);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
}

/// Number of faults survived so far; compare before and after a request.
pub fn count() -> u64 {
    FAULTS.load(Ordering::Acquire)
}

/// Addresses of faults `since..count()`; None when more happened than the
/// ring keeps (the caller then checks every log).
pub fn addrs_since(since: u64) -> Option<Vec<usize>> {
    let now = count();
    if now - since > RING as u64 {
        return None;
    }
    Some((since..now).map(|k| ADDRS[usize::try_from(k % RING as u64).unwrap_or(0)].load(Ordering::Relaxed)).collect())
}

/// Records a fault as the handler would (tests of what follows a fault).
#[cfg(test)]
pub(crate) fn simulate(addr: usize) {
    let n = FAULTS.load(Ordering::Relaxed);
    ADDRS[usize::try_from(n % RING as u64).unwrap_or(0)].store(addr, Ordering::Relaxed);
    FAULTS.store(n + 1, Ordering::Release);
}

/// SIGBUS signals sent by processes and ignored.
pub fn sent() -> u64 {
    SENT.load(Ordering::Relaxed)
}

pub fn install() -> std::io::Result<()> {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if let Ok(p) = usize::try_from(p) {
        PAGE.store(p, Ordering::Relaxed);
    }
    // SAFETY: all-zero is a valid sigaction.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = on_sigbus as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize;
    sa.sa_flags = libc::SA_SIGINFO;
    // SAFETY: sa_mask is a valid sigset_t inside `sa`.
    crate::sys::cvt(unsafe { libc::sigemptyset(&mut sa.sa_mask) })?;
    // SAFETY: `sa` is initialised; the handler only makes async-signal-safe
    // calls and touches atomics.
    crate::sys::cvt(unsafe { libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()) })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_is_found_and_forgotten() {
        let start = 0x7f00_1234_5000;
        register(start, 8192);
        assert!(registered(start) && registered(start + 8191));
        assert!(!registered(start + 8192) && !registered(start - 1));
        unregister(start);
        assert!(!registered(start));
    }
}
