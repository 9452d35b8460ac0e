//! Process-level set-up: detaching, and the initrd `@` convention.

use crate::sys::cvt;
use std::io;

/// Forks. In the parent returns `Some(child_pid)` (the caller records it
/// and exits 0: the socket is already bound and listening); in the child
/// starts a new session, moves to `/` and points stdin/stdout at
/// /dev/null, keeping stderr for the log.
pub fn detach() -> io::Result<Option<u32>> {
    // SAFETY: the process is single-threaded here, so fork is safe; the
    // child only continues ordinary Rust code.
    let pid = cvt(unsafe { libc::fork() })?;
    if pid > 0 {
        return Ok(Some(pid.unsigned_abs()));
    }
    // SAFETY: setsid has no memory-safety preconditions.
    cvt(unsafe { libc::setsid() })?;
    std::env::set_current_dir("/")?;
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
    use std::os::fd::AsRawFd;
    for fd in [0, 1] {
        // SAFETY: dup2 onto the standard descriptors from an open file.
        cvt(unsafe { libc::dup2(null.as_raw_fd(), fd) })?;
    }
    Ok(None)
}

/// systemd's ROOT_STORAGE_DAEMONS convention: a process whose argv[0]
/// starts with '@' is spared by the initrd→root switch and the shutdown
/// killing spree. Done only inside an initrd (/etc/initrd-release).
///
/// argv[0] lives at `arg_start` (field 48 of /proc/self/stat), in our own
/// stack; overwriting its first byte is what `ps` and systemd then read.
pub fn mark_initrd_storage_daemon() -> io::Result<bool> {
    if !std::path::Path::new("/etc/initrd-release").exists() {
        return Ok(false);
    }
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the parenthesised comm; arg_start is field 48 overall.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let arg_start: usize = rest
        .split_whitespace()
        .nth(48 - 3)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no arg_start in /proc/self/stat"))?;
    if arg_start == 0 {
        return Ok(false);
    }
    let argv0 = std::env::args_os().next().unwrap_or_default();
    use std::os::unix::ffi::OsStrExt;
    let first = argv0.as_bytes().first().copied();
    let p = arg_start as *mut u8;
    // SAFETY: arg_start is the kernel's record of where our argv strings
    // are; that memory is mapped, writable and ours for the whole life of
    // the process. We check it holds argv[0]'s first byte before writing.
    unsafe {
        if Some(p.read_volatile()) != first {
            return Ok(false);
        }
        p.write_volatile(b'@');
    }
    Ok(true)
}
