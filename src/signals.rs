//! Signals: set flags from async-signal-safe handlers; the loop acts on
//! them between requests.
//!
//! SIGTERM/SIGINT: exit if no log is live, otherwise flush everything and
//! keep serving (mirrors with a userspace log block all I/O without a
//! server). SIGQUIT: flush everything and exit even with live logs.
//! SIGUSR1: log one summary line per log. SIGHUP: ignored (logged).
//! SIGIO: a `dmulogd status` query is waiting on the control socket (which
//! is set to raise it, [`crate::control::signal_queries`]).
//!
//! The loop sleeps in a plain blocking `recv` on the request socket (the
//! floor a server can reach: `recv` + `send` per request; a `ppoll` before
//! every `recv` cost a third more system calls). Signals stay unblocked
//! and their handlers are installed without SA_RESTART, so a signal that
//! arrives while `recv` sleeps ends it with EINTR. One that arrives after
//! the loop looked at the flags but before `recv` started would be missed
//! until the next request, which may never come: so the handler also
//! shortens the socket's receive timeout to the shortest there is
//! (`setsockopt` is async-signal-safe), and that `recv` returns at once
//! (within a clock tick). The loop sets its own timeout again
//! ([`take_clobbered`]) always *before* it looks at the flags: a signal
//! after that has its flag seen or its short timeout in force.

use crate::sys::cvt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static TERM: AtomicBool = AtomicBool::new(false);
static QUIT: AtomicBool = AtomicBool::new(false);
static USR1: AtomicBool = AtomicBool::new(false);
static HUP: AtomicBool = AtomicBool::new(false);
static QUERY: AtomicBool = AtomicBool::new(false);
/// Set with any of the above, so the loop's per-request check is one load.
static ANY: AtomicBool = AtomicBool::new(false);
/// The socket the loop sleeps on (-1: none), whose receive timeout a
/// handler shortens.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// A handler shortened WAKE_FD's receive timeout since the loop last set it.
static CLOBBERED: AtomicBool = AtomicBool::new(false);

const HANDLED: [libc::c_int; 6] =
    [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGUSR1, libc::SIGHUP, libc::SIGIO];

/// The shortest receive timeout: 1 µs, which the kernel rounds up to one
/// clock tick (a zero timeval would mean "no timeout").
const SHORTEST: libc::timeval = libc::timeval { tv_sec: 0, tv_usec: 1 };

extern "C" fn on_signal(sig: libc::c_int) {
    let flag = match sig {
        libc::SIGTERM | libc::SIGINT => &TERM,
        libc::SIGQUIT => &QUIT,
        libc::SIGUSR1 => &USR1,
        libc::SIGIO => &QUERY,
        _ => &HUP,
    };
    flag.store(true, Ordering::Relaxed);
    ANY.store(true, Ordering::Release);
    let fd = WAKE_FD.load(Ordering::Acquire);
    if fd >= 0 {
        CLOBBERED.store(true, Ordering::Release);
        // SAFETY: errno is thread-local and always valid to read.
        let saved_errno = unsafe { *libc::__errno_location() };
        // SAFETY: setsockopt is async-signal-safe; SHORTEST is a valid
        // timeval of the size given, and a stale fd only yields EBADF.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&SHORTEST as *const libc::timeval).cast(),
                TIMEVAL_LEN,
            )
        };
        // SAFETY: as above; the interrupted code finds its errno intact.
        unsafe { *libc::__errno_location() = saved_errno };
    }
}

// A timeval is 16 bytes; the cast cannot truncate.
#[allow(clippy::cast_possible_truncation)]
const TIMEVAL_LEN: libc::socklen_t = std::mem::size_of::<libc::timeval>() as libc::socklen_t;

#[derive(Default, Debug, PartialEq, Eq)]
pub struct Pending {
    pub term: bool,
    pub quit: bool,
    pub usr1: bool,
    pub hup: bool,
    /// SIGIO: the control socket has queries (or may have).
    pub query: bool,
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
        query: QUERY.swap(false, Ordering::Relaxed),
    }
}

/// A signal arrived that [`take`] has not taken yet.
pub fn any() -> bool {
    ANY.load(Ordering::Relaxed)
}

/// True (once) when a handler shortened the wake socket's receive timeout
/// since the last call: the loop must set its own again, before it looks
/// at the flags.
pub fn take_clobbered() -> bool {
    CLOBBERED.load(Ordering::Relaxed) && CLOBBERED.swap(false, Ordering::Acquire)
}

/// While alive, handlers shorten `fd`'s receive timeout (see the module
/// doc); the loop holds one for the socket it sleeps on.
pub struct WakeOn(());

impl WakeOn {
    pub fn new(fd: BorrowedFd<'_>) -> WakeOn {
        WAKE_FD.store(fd.as_raw_fd(), Ordering::Release);
        WakeOn(())
    }
}

impl Drop for WakeOn {
    fn drop(&mut self) {
        WAKE_FD.store(-1, Ordering::Release);
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

/// Installs the handlers, without SA_RESTART (a blocking `recv` is
/// interrupted so the loop sees the flag), and unblocks the signals in
/// case the parent left them blocked.
pub fn install() -> io::Result<()> {
    let mut set = empty_set()?;
    for s in HANDLED {
        // SAFETY: `set` is an initialised sigset_t; `s` a valid signal.
        cvt(unsafe { libc::sigaddset(&mut set, s) })?;
        // SAFETY: all-zero is a valid sigaction (no flags, no handler yet).
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        sa.sa_mask = empty_set()?;
        // SAFETY: `sa` is initialised; on_signal only stores to atomics and
        // calls setsockopt, both async-signal-safe, and keeps errno.
        cvt(unsafe { libc::sigaction(s, &sa, std::ptr::null_mut()) })?;
    }
    // SAFETY: `set` is an initialised sigset_t; no old mask is asked for.
    cvt(unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    use std::time::{Duration, Instant};

    /// A signal that lands after the loop's last look at the flags, just
    /// before it sleeps in `recv`, must not leave it asleep: the handler's
    /// short timeout makes that `recv` return at once. (Without it this
    /// `recv` sleeps the 20 s the socket was given.)
    #[test]
    fn a_signal_before_the_recv_ends_it_at_once() {
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors socketpair writes.
        cvt(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0, fds.as_mut_ptr()) }).unwrap();
        // SAFETY: fresh descriptors we own.
        let (ours, _peer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        crate::sys::set_recv_timeout(ours.as_fd(), Some(Duration::from_secs(20))).unwrap();
        let wake = WakeOn::new(ours.as_fd());
        // What the kernel does when the signal arrives (called directly:
        // the test harness runs other tests in threads of this process).
        on_signal(libc::SIGUSR1);
        assert!(take_clobbered() && !take_clobbered());
        assert!(take().usr1);
        let t = Instant::now();
        let mut buf = [0u8; 8];
        // SAFETY: buf is valid for writes of its length.
        let r = unsafe { libc::recv(ours.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let e = io::Error::last_os_error();
        assert_eq!(r, -1);
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
        assert!(t.elapsed() < Duration::from_secs(5), "recv slept {:?}", t.elapsed());
        drop(wake);
        // No wake socket: flags only.
        on_signal(libc::SIGIO);
        assert!(!take_clobbered());
        assert!(take().query);
    }
}
