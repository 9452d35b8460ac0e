//! Log devices and state files that fail or change under a live log.
//! dmulogd reads and writes a log device with plain (direct, for a block
//! device) I/O: a write that fails fails the log (status `D`; `F` for a
//! failed cache flush) and no FLUSH after a mark is acknowledged until the
//! mark is on the device; a file cut short is simply written again. Its
//! own state files are mapped: one truncated under it raises SIGBUS, which
//! is survived (src/fault.rs), as is a SIGBUS sent by `kill`. Every other
//! log carries on.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]

mod common;

use common::*;
use std::path::Path;

const N: u64 = 64;

/// The daemon as it runs by default: logging at info level (so SIGUSR1
/// summaries are computed). Every test here spawns through this, so the
/// environment is set before any thread reads it.
fn spawn() -> Daemon {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::env::set_var("DMULOGD_TEST_LOG", "info"));
    Daemon::spawn(&[])
}

fn ctr(path: &Path, extra: &str) -> String {
    format!("{} disk {} 1024 {extra}", N * 1024, path.display()).trim_end().to_owned()
}

struct Setup {
    _dir: TempDir,
    d: Daemon,
    gone: Kernel,
    gone_file: std::path::PathBuf,
    other: Kernel,
    other_file: std::path::PathBuf,
    core: Kernel,
}

/// Two disk logs and a core log, resumed, with some flushed marks.
fn setup(tag: &str) -> Setup {
    let dir = TempDir::new(tag);
    let gone_file = dir.log_file("gone", 1024 + 4096);
    let other_file = dir.log_file("other", 1024 + 4096);
    let mut d = spawn();
    let gone = Kernel::new("LVM-gone", 1);
    let other = Kernel::new("LVM-other", 2);
    let core = Kernel::new("LVM-core", 3);
    assert_eq!(gone.ctr(&mut d, &ctr(&gone_file, "nosync")).error, 0);
    assert_eq!(other.ctr(&mut d, &ctr(&other_file, "nosync")).error, 0);
    assert_eq!(core.ctr(&mut d, "65536 core 1024 nosync").error, 0);
    for k in [&gone, &other, &core] {
        k.ok(&mut d, RESUME, &[]);
        assert_eq!(k.mark(&mut d, &[1, 2]).error, 0);
        assert_eq!(k.flush(&mut d, &[]).error, 0);
    }
    Setup { _dir: dir, d, gone, gone_file, other, other_file, core }
}

/// The other logs still work, fully, and the daemon is alive.
fn others_work(s: &mut Setup) {
    let Setup { d, other, other_file, core, .. } = s;
    assert_eq!(other.mark(d, &[9]).error, 0);
    assert_eq!(other.flush(d, &[]).error, 0);
    assert!(!disk_clean_bit(other_file, 9));
    assert_eq!(other.clear(d, &[9]).error, 0);
    assert_eq!(other.status(d, STATUS_INFO), format!("3 disk {} A", other_file.display()));
    assert_eq!(core.mark(d, &[9]).error, 0);
    assert!(!core.is_clean(d, 9));
    assert_eq!(core.sync_count(d), N);
    assert!(s.d.child.try_wait().unwrap().is_none(), "dmulogd died");
}

/// A file cut short under a live log: the next FLUSH writes the marked
/// page again, so every acknowledged mark is on the file; nothing fails.
#[test]
fn log_file_truncated_while_live_gets_its_marks_written_again() {
    let mut s = setup("trunc");
    std::fs::OpenOptions::new().write(true).open(&s.gone_file).unwrap().set_len(0).unwrap();
    assert_eq!(s.gone.mark(&mut s.d, &[5]).error, 0);
    assert_eq!(s.gone.flush(&mut s.d, &[]).error, 0);
    for r in [1u64, 2, 5] {
        assert!(!disk_clean_bit(&s.gone_file, r), "region {r}: acknowledged mark not in the file");
        assert!(!s.gone.is_clean(&mut s.d, r));
    }
    assert_eq!(s.gone.status(&mut s.d, STATUS_INFO), format!("3 disk {} A", s.gone_file.display()));
    others_work(&mut s);
}

/// Unreadable at RESUME (too short for its bitmap): the log fails (`D`),
/// every region out of sync, and marks still reach the file.
#[test]
fn log_file_truncated_before_resume() {
    let dir = TempDir::new("trunc-ctr");
    let f = dir.log_file("log", 1024 + 4096);
    let mut d = spawn();
    let k = Kernel::new("LVM-early", 1);
    assert_eq!(k.ctr(&mut d, &ctr(&f, "")).error, 0);
    std::fs::OpenOptions::new().write(true).open(&f).unwrap().set_len(100).unwrap();
    assert_ne!(k.req(&mut d, RESUME, &[]).error, 0, "RESUME of an unreadable device succeeded");
    assert_eq!(k.status(&mut d, STATUS_INFO), format!("3 disk {} D", f.display()));
    assert_eq!(k.sync_count(&mut d), 0);
    assert!(!k.is_clean(&mut d, 3));
    assert_eq!(k.mark(&mut d, &[3]).error, 0);
    assert_eq!(k.flush(&mut d, &[]).error, 0);
    assert!(!disk_clean_bit(&f, 3));
    assert!(d.child.try_wait().unwrap().is_none());
}

/// The pair of a table swap shares one file: once the old log is
/// suspended, nothing it is sent writes the file any more (the new log, or
/// the kernel's own, owns it now).
#[test]
fn a_suspended_log_never_writes_its_device() {
    let dir = TempDir::new("pair");
    let f = dir.log_file("log", 1024 + 4096);
    let mut d = spawn();
    let old = Kernel::new("LVM-pair", 1);
    let new = Kernel::new("LVM-pair", 2);
    assert_eq!(old.ctr(&mut d, &ctr(&f, "nosync")).error, 0);
    old.ok(&mut d, RESUME, &[]);
    assert_eq!(new.ctr(&mut d, &ctr(&f, "")).error, 0);
    old.ok(&mut d, PRESUSPEND, &[]);
    old.ok(&mut d, POSTSUSPEND, &[]);
    new.ok(&mut d, RESUME, &[]);
    assert_eq!(new.mark(&mut d, &[4]).error, 0);
    assert_eq!(new.flush(&mut d, &[]).error, 0);
    let before = std::fs::read(&f).unwrap();
    // Stray requests to the suspended log: answered, never written.
    assert_eq!(old.mark(&mut d, &[3]).error, 0);
    assert_eq!(old.clear(&mut d, &[4]).error, 0);
    let _ = old.flush(&mut d, &[]);
    let _ = old.req(&mut d, POSTSUSPEND, &[]);
    // SAFETY: signalling our own child (SIGTERM: flush every live log).
    unsafe { libc::kill(d.pid(), libc::SIGTERM) };
    assert_eq!(new.sync_count(&mut d), N, "still serving after SIGTERM");
    assert_eq!(std::fs::read(&f).unwrap(), before, "a suspended log wrote its device");
    old.ok(&mut d, DTR, &[]);
    assert_eq!(std::fs::read(&f).unwrap(), before, "DTR wrote the device");
}

/// Waits until the daemon has taken a signal and is back waiting for
/// requests: no signal pending and the process asleep.
fn wait_signal_handled(pid: i32, sig: i32) {
    let bit = 1u64 << (sig - 1);
    let start = std::time::Instant::now();
    loop {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |name: &str| {
            let l = s.lines().find(|l| l.starts_with(name)).unwrap();
            u64::from_str_radix(l.split_whitespace().nth(1).unwrap(), 16).unwrap()
        };
        let sleeping = s.lines().any(|l| l.starts_with("State:") && l.contains("S (sleeping)"));
        if field("SigPnd:") & bit == 0 && field("ShdPnd:") & bit == 0 && sleeping {
            return;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "signal {sig} never handled");
        std::thread::yield_now();
    }
}

/// A SIGBUS sent with kill carries a sender pid where a fault address
/// would be: it is no fault, and nothing may be mapped over "its address".
#[test]
fn a_sigbus_sent_by_kill_is_ignored() {
    let mut s = setup("killbus");
    for _ in 0..3 {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(s.d.pid(), libc::SIGBUS) };
        wait_signal_handled(s.d.pid(), libc::SIGBUS);
    }
    others_work(&mut s);
    assert_eq!(s.gone.sync_count(&mut s.d), N);
}

/// A state file truncated under the daemon (its run directory is tmpfs
/// /run, which an operator can reach): the access faults, the fault is
/// survived and attributed to its log, the request is answered, zero
/// pages read as "not in sync" (the safe direction), other logs carry on.
#[test]
fn a_state_file_truncated_under_the_daemon_is_survived() {
    let run = TempDir::new("staterun");
    let mut d = Daemon::spawn_in(run.path(), &[]);
    let k = Kernel::new("LVM-statefile", 1);
    let other = Kernel::new("LVM-statefile-other", 2);
    assert_eq!(k.ctr(&mut d, "65536 core 1024 nosync").error, 0);
    assert_eq!(other.ctr(&mut d, "65536 core 1024 nosync").error, 0);
    k.ok(&mut d, RESUME, &[]);
    other.ok(&mut d, RESUME, &[]);
    let name = dmulogd::state::name(b"LVM-statefile", 1, dmulogd::state::Kind::Sync);
    let path = run.path().join("state").join(name);
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
    let r = k.req(&mut d, IN_SYNC, &3u64.to_ne_bytes());
    assert!(r.error != 0 || r.u64_at(0) == Some(0), "a region of a lost state file reads in sync: {r:?}");
    assert_eq!(k.set_sync(&mut d, 3, true).error, 0);
    assert!(other.in_sync(&mut d, 3) && other.sync_count(&mut d) == N);
    assert!(d.child.try_wait().unwrap().is_none(), "dmulogd died");
}

/// A tmpfs mounted for the test, unmounted on drop.
struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Option<Mount> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then(|| Mount(dir.to_owned()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The run directory (where sync state, and a core log's clean bitmap,
/// live in mmap'd files) is a small tmpfs that fills up — an initramfs
/// /run, say. Writing a page of a state file then raises SIGBUS (tmpfs
/// ENOSPC). Whatever dmulogd does, a log must either work fully (MARK,
/// CLEAR, SET_REGION_SYNC, counts) or not exist: a CTR answered with an
/// error must leave no log behind.
///
/// Regression: state files were sparse, the CTR's first writes to their
/// pages faulted, the CTR was answered -EIO and the failed log stayed
/// registered (a later CTR of the same luid would have got it back).
#[test]
fn full_run_directory_leaves_no_half_built_log() {
    let run = TempDir::new("tinyrun");
    let _m = Mount::tmpfs(run.path(), "64k").expect("mounting a tmpfs (run the tests as root)");
    let mut d = Daemon::spawn_in(run.path(), &[]);
    let small = Kernel::new("LVM-small", 1);
    assert_eq!(small.ctr(&mut d, "65536 core 1024").error, 0);
    small.ok(&mut d, RESUME, &[]);
    // 2^22 regions: 512 KiB per bitmap, far more than the tmpfs holds.
    const N: u64 = 1 << 22;
    let k = Kernel::new("LVM-bigcore", 2);
    let r = k.ctr(&mut d, &format!("{} core 2", 2 * N));
    if r.error == 0 {
        k.ok(&mut d, RESUME, &[]);
        for r in [0, N / 2, N - 1] {
            assert_eq!(k.mark(&mut d, &[r]).error, 0);
            assert!(!k.is_clean(&mut d, r));
            assert_eq!(k.clear(&mut d, &[r]).error, 0);
            assert!(k.is_clean(&mut d, r), "CLEAR of {r} lost");
            assert_eq!(k.set_sync(&mut d, r, true).error, 0);
            assert!(k.in_sync(&mut d, r), "SET_REGION_SYNC of {r} lost");
        }
        assert_eq!(k.sync_count(&mut d), 3);
    } else {
        let again = k.req(&mut d, GET_SYNC_COUNT, &[]);
        assert_eq!(again.error, ESRCH, "CTR failed with {}, but a log was left behind: {again:?}", r.error);
    }
    // The other log is unaffected.
    assert_eq!(small.mark(&mut d, &[3]).error, 0);
    assert!(!small.is_clean(&mut d, 3));
    assert!(d.child.try_wait().unwrap().is_none(), "dmulogd died");
}

/// A loop block device over a file in the ordinary temp directory, for the
/// block-device paths (CTR reply, MAJ:MIN, msync through blkdev_fsync) and
/// for write errors: with the backing file immutable (chattr +i), the
/// loop driver's writes fail and msync returns EIO. Detached on drop.
struct Loop {
    dev: String,
    backing: std::path::PathBuf,
    _dir: TempDir,
}

impl Loop {
    /// A loop device of `bytes` whose content is `image`.
    fn new(image: &[u8]) -> Option<Loop> {
        let dir = TempDir::new_in(Path::new(env!("CARGO_TARGET_TMPDIR")), "loop");
        let backing = dir.path().join("backing");
        std::fs::write(&backing, image).ok()?;
        let out = std::process::Command::new("losetup").args(["-f", "--show"]).arg(&backing).output().ok()?;
        if !out.status.success() {
            return None;
        }
        let dev = String::from_utf8(out.stdout).ok()?.trim().to_owned();
        Some(Loop { dev, backing, _dir: dir })
    }

    fn devno(&self) -> String {
        use std::os::unix::fs::MetadataExt;
        let rdev = std::fs::metadata(&self.dev).unwrap().rdev();
        format!("{}:{}", libc::major(rdev), libc::minor(rdev))
    }

    fn immutable(&self, on: bool) -> bool {
        std::process::Command::new("chattr")
            .arg(if on { "+i" } else { "-i" })
            .arg(&self.backing)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn backing_clean_bit(&self, r: u64) -> bool {
        disk_clean_bit(&self.backing, r)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        self.immutable(false);
        let _ = std::process::Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// True when process `pid` has block device `devno` (MAJ:MIN) open.
fn holds_open(pid: i32, devno: &str) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let (maj, min) = devno.split_once(':').unwrap();
    let want = libc::makedev(maj.parse().unwrap(), min.parse().unwrap());
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .any(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.file_type().is_block_device() && m.rdev() == want))
}

/// A valid log image: header for `n` regions, every region clean.
fn clean_image(n: u64, bytes: usize) -> Vec<u8> {
    let mut b = vec![0u8; bytes];
    b[0..4].copy_from_slice(&0x4D69_5272u32.to_le_bytes());
    b[4..8].copy_from_slice(&2u32.to_le_bytes());
    b[8..16].copy_from_slice(&n.to_le_bytes());
    for r in 0..n {
        b[1024 + (r / 8) as usize] |= 1 << (r % 8);
    }
    b
}

#[test]
fn block_device_log_names_its_device_and_makes_marks_durable() {
    const N: u64 = 32768;
    let lo = Loop::new(&clean_image(N, 1024 + 4096 + 4096)).expect("a loop device (run the tests as root)");
    let devno = lo.devno();
    let mut d = spawn();
    // By path and by MAJ:MIN: the CTR reply names MAJ:MIN (protocol v2+),
    // NUL-terminated, for dm_get_device.
    let a = Kernel::new("LVM-blk", 1);
    let r = a.ctr(&mut d, &format!("{} disk {} 2", N * 2, lo.dev));
    assert_eq!((r.error, &r.payload[..]), (0, format!("{devno}\0").as_bytes()));
    let b = Kernel::new("LVM-blk", 2);
    let r = b.ctr(&mut d, &format!("{} disk {devno} 2", N * 2));
    assert_eq!((r.error, &r.payload[..]), (0, format!("{devno}\0").as_bytes()));
    // The reconnect CTR and a version 1 CTR get no device name.
    assert_eq!(a.ctr_reconnect(&mut d, &format!("{} disk {} 2", N * 2, lo.dev)).payload.len(), 0);
    let v1 = Kernel { version: 1, ..Kernel::new("LVM-blk", 3) };
    let r = v1.ctr(&mut d, &format!("{} disk {devno} 2", N * 2));
    assert_eq!((r.error, r.payload.len()), (0, 0));
    // Logs whose table never goes live (a load that fails after our CTR
    // sends no DTR) must not pin the device: nothing is open before RESUME.
    assert!(!holds_open(d.pid(), &devno), "a log never resumed holds its device open");
    b.ok(&mut d, DTR, &[]);
    v1.ok(&mut d, DTR, &[]);
    a.ok(&mut d, RESUME, &[]);
    assert!(holds_open(d.pid(), &devno), "test premise: a resumed log holds its device");
    assert_eq!(a.sync_count(&mut d), N, "the image's clean bitmap was loaded");
    assert_eq!(a.status(&mut d, STATUS_INFO), format!("3 disk {devno} A"));
    assert_eq!(a.status(&mut d, STATUS_TABLE), format!("disk 2 {devno} 2 "));
    // A mark is on the backing file once FLUSH is answered.
    for r in [5, 20000, N - 1] {
        assert_eq!(a.mark(&mut d, &[r]).error, 0);
        assert_eq!(a.flush(&mut d, &[]).error, 0);
        assert!(!lo.backing_clean_bit(r), "mark of {r} not written through the block device");
    }
    // Too small a device for the regions asked: refused.
    let c = Kernel::new("LVM-blk", 4);
    assert_eq!(c.ctr(&mut d, &format!("{} disk {devno} 2", (N * 4 + 1) * 2)).error, EINVAL);
}

/// The log device fails writes (the loop device's backing file made
/// immutable): the FLUSH after a MARK fails and the status says D (a
/// failed write; F is for a failed cache flush). A later FLUSH must not be
/// acknowledged for marks that never reached the device, and once the
/// device takes writes again the pending marks are written.
#[test]
fn a_failed_write_is_never_followed_by_an_acknowledged_flush() {
    const N: u64 = 32768;
    let lo = Loop::new(&clean_image(N, 1024 + 4096 + 4096)).expect("a loop device (run the tests as root)");
    let mut d = spawn();
    let k = Kernel::new("LVM-eio", 1);
    assert_eq!(k.ctr(&mut d, &format!("{} disk {} 2", N * 2, lo.dev)).error, 0);
    k.ok(&mut d, RESUME, &[]);
    assert_eq!(k.mark(&mut d, &[7]).error, 0);
    assert_eq!(k.flush(&mut d, &[]).error, 0);
    assert!(lo.immutable(true), "chattr +i on the loop device's backing file");
    let r = 20000;
    // The MARK writes its page at once (and fails), or its FLUSH does.
    let mark = k.mark(&mut d, &[r]);
    let first = k.flush(&mut d, &[]);
    assert!(mark.error != 0 || first.error != 0, "MARK and FLUSH acknowledged though the device failed the write");
    assert_eq!(k.status(&mut d, STATUS_INFO), format!("3 disk {} D", lo.devno()));
    assert!(lo.backing_clean_bit(r), "test premise: the mark did not reach the device");
    // The kernel flushes again (more marks, or a retry): never acknowledged
    // while the marks are not on the device.
    for (round, extra) in [(1, vec![]), (2, vec![r]), (3, vec![r + 1])] {
        let f = k.flush(&mut d, &extra);
        assert!(
            f.error != 0 || !lo.backing_clean_bit(r),
            "round {round}: FLUSH answered 0 after a failed write, but region {r} is still clean on the device: an acknowledged mark is lost"
        );
    }
    assert!(lo.immutable(false));
    assert_eq!(k.flush(&mut d, &[]).error, 0, "the device takes writes again");
    assert!(!lo.backing_clean_bit(r) && !lo.backing_clean_bit(r + 1), "pending marks written once the device works");
    assert!(d.child.try_wait().unwrap().is_none());
}
