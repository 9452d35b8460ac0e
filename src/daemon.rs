//! Process-level set-up: detaching, and the initrd `@` convention.

use crate::sys::cvt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};

/// The two sides of a fork: the parent waits on `ready` for the child's
/// word, the child gives it ([`Detached::ready`]) once it really serves.
pub enum Detached {
    Parent { child: u32, ready: File },
    Child { ready: File },
}

/// Forks. The child starts a new session, moves to `/` and points stdin
/// and stdout at /dev/null; it keeps stderr until it is ready (its start-up
/// errors still reach the caller), then [`quiet_stderr`].
pub fn detach() -> io::Result<Detached> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both descriptors are fresh and ours.
    let (r, w) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    // SAFETY: the process is single-threaded here, so fork is safe; the
    // child only continues ordinary Rust code.
    let pid = cvt(unsafe { libc::fork() })?;
    if pid > 0 {
        drop(w);
        return Ok(Detached::Parent { child: pid.unsigned_abs(), ready: r });
    }
    drop(r);
    // SAFETY: setsid has no memory-safety preconditions.
    cvt(unsafe { libc::setsid() })?;
    std::env::set_current_dir("/")?;
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
    for fd in [0, 1] {
        // SAFETY: dup2 onto a standard descriptor from an open file.
        cvt(unsafe { libc::dup2(null.as_raw_fd(), fd) })?;
    }
    Ok(Detached::Child { ready: w })
}

/// The child's word to the waiting parent: ready, or why not.
pub fn ready(mut pipe: File, outcome: Result<(), &str>) {
    let msg = match outcome {
        Ok(()) => "0".to_owned(),
        Err(e) => format!("1{e}"),
    };
    let _ = pipe.write_all(msg.as_bytes());
}

/// The parent's side: exit status 0 only when the child said it is ready.
pub fn wait_ready(mut pipe: File) -> Result<(), String> {
    let mut msg = String::new();
    let _ = pipe.read_to_string(&mut msg);
    match msg.split_at_checked(1) {
        Some(("0", _)) => Ok(()),
        Some(("1", why)) => Err(why.to_owned()),
        _ => Err("the daemon exited before it was ready".to_owned()),
    }
}

/// After the parent returned: stderr must not keep the caller's pipe or
/// terminal open (`x=$(dmulogd --daemon 2>&1)` would wait for the daemon
/// to exit). It stays where it is when it is the journal (systemd's
/// JOURNAL_STREAM names it) or a file (`2>>/var/log/dmulogd.log`: nobody
/// waits on a file); otherwise the log goes to the kernel log (/dev/kmsg:
/// an initramfs has no other), or nowhere. True when stderr was moved.
pub fn quiet_stderr() -> bool {
    let is_file = std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.is_file());
    if stderr_is_journal() || is_file {
        return false;
    }
    let target = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/kmsg")
        .or_else(|_| std::fs::OpenOptions::new().write(true).open("/dev/null"));
    let Ok(f) = target else { return false };
    // SAFETY: dup2 onto stderr from an open file.
    unsafe { libc::dup2(f.as_raw_fd(), 2) >= 0 }
}

/// True when fd 2 is the journal stream systemd gave us.
pub fn stderr_is_journal() -> bool {
    let Ok(want) = std::env::var("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = want.split_once(':') else { return false };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else { return false };
    use std::os::unix::fs::MetadataExt;
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

/// Closes every descriptor from 3 up but `keep` (a daemon must not hold
/// its caller's pipes and files open).
pub fn close_inherited(keep: Option<i32>) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return };
    let fds: Vec<i32> = dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    for fd in fds.into_iter().filter(|&fd| fd > 2 && Some(fd) != keep) {
        // SAFETY: closing a descriptor nothing in this process uses yet
        // (called first thing); EBADF for the directory's own fd is fine.
        unsafe { libc::close(fd) };
    }
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
