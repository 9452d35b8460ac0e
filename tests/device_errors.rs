//! A log device that fails under a live log. A regular file truncated
//! while mapped raises SIGBUS on the next access to its pages; dmulogd
//! survives it (src/fault.rs) and must fail only that log: error replies,
//! status `3 disk PATH D` (or `F`), never a FLUSH acknowledged for a mark
//! that cannot be on the device, and every other log carries on.
//!
//! (msync failures are not provoked: tmpfs and ext4 do not fail them on
//! demand, and a failing block device needs device-mapper, which the VM
//! tests have.)
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

fn failed_status(k: &Kernel, d: &mut Daemon, path: &Path) {
    let s = k.status(d, STATUS_INFO);
    let ok = [format!("3 disk {} D", path.display()), format!("3 disk {} F", path.display())];
    assert!(ok.contains(&s), "status of the log whose device vanished: {s:?}");
}

/// After the device vanished: marks may be taken, but no FLUSH after a
/// mark may be acknowledged, whatever else happens.
fn never_acknowledges_a_flush(k: &Kernel, d: &mut Daemon) {
    for round in 0..3u64 {
        let m = k.mark(d, &[10 + round]);
        let f = k.flush(d, &[]);
        assert!(
            m.error != 0 || f.error != 0,
            "round {round}: MARK and FLUSH both acknowledged on a log whose device is gone (the mark is nowhere durable)"
        );
        let f = k.flush(d, &[20 + round]);
        assert_ne!(f.error, 0, "round {round}: integrated FLUSH acknowledged on a log whose device is gone");
    }
}

#[test]
fn log_file_truncated_while_live_fails_that_log_only() {
    let mut s = setup("trunc");
    std::fs::OpenOptions::new().write(true).open(&s.gone_file).unwrap().set_len(0).unwrap();
    // The first request that touches the mapping: an error, not a crash.
    let r = s.gone.mark(&mut s.d, &[5]);
    assert_ne!(r.error, 0, "MARK on a vanished device acknowledged");
    failed_status(&s.gone, &mut s.d, &s.gone_file);
    others_work(&mut s);
    never_acknowledges_a_flush(&s.gone, &mut s.d);
    // Queries still answer (from memory), and never call a marked region clean.
    for r in [1u64, 2, 5] {
        let rep = s.gone.req(&mut s.d, IS_CLEAN, &r.to_ne_bytes());
        assert!(rep.error != 0 || rep.u64_at(0) == Some(0), "region {r} reads clean: {rep:?}");
    }
    // Suspend and resume: the device is still gone.
    s.gone.ok(&mut s.d, PRESUSPEND, &[]);
    assert_ne!(s.gone.req(&mut s.d, POSTSUSPEND, &[]).error, 0, "POSTSUSPEND cannot sync a vanished device");
    let _ = s.gone.req(&mut s.d, RESUME, &[]);
    failed_status(&s.gone, &mut s.d, &s.gone_file);
    never_acknowledges_a_flush(&s.gone, &mut s.d);
    others_work(&mut s);
    s.gone.ok(&mut s.d, DTR, &[]);
    others_work(&mut s);
}

#[test]
fn log_file_truncated_before_resume() {
    let dir = TempDir::new("trunc-ctr");
    let f = dir.log_file("log", 1024 + 4096);
    let mut d = spawn();
    let k = Kernel::new("LVM-early", 1);
    assert_eq!(k.ctr(&mut d, &ctr(&f, "")).error, 0);
    std::fs::OpenOptions::new().write(true).open(&f).unwrap().set_len(100).unwrap();
    assert_ne!(k.req(&mut d, RESUME, &[]).error, 0, "RESUME of an unreadable device succeeded");
    failed_status(&k, &mut d, &f);
    // Unreadable: every region out of sync.
    assert_eq!(k.sync_count(&mut d), 0);
    never_acknowledges_a_flush(&k, &mut d);
    assert!(d.child.try_wait().unwrap().is_none());
}

#[test]
fn log_file_cut_short_fails_the_log_on_the_lost_pages() {
    let dir = TempDir::new("trunc-part");
    let f = dir.log_file("log", 1024 + 3 * 4096);
    let n = 3 * 4096 * 8;
    let mut d = spawn();
    let k = Kernel::new("LVM-part", 1);
    assert_eq!(k.ctr(&mut d, &format!("{} disk {} 2 nosync", n * 2, f.display())).error, 0);
    k.ok(&mut d, RESUME, &[]);
    std::fs::OpenOptions::new().write(true).open(&f).unwrap().set_len(4096).unwrap();
    // A region on the lost pages.
    let lost = n - 1;
    let m = k.mark(&mut d, &[lost]);
    let fl = k.flush(&mut d, &[]);
    assert!(m.error != 0 || fl.error != 0, "mark on a lost page acknowledged by FLUSH");
    failed_status(&k, &mut d, &f);
    never_acknowledges_a_flush(&k, &mut d);
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

/// The same vanished device, but the first access to its pages is the
/// SIGUSR1 summary (outside any request). The fault is survived there too;
/// the log must still end up failed rather than taking marks into memory
/// that the kernel believes are on the device.
///
/// Regression: the SIGBUS taken in `Log::summary()` → `count_ones()`
/// during `on_signals` was counted by src/fault.rs but never attributed to
/// the log (only `handle_datagram` compared `fault::count()` around
/// `dispatch`), so later MARKs went into the zero pages mapped over the
/// file, FLUSH msynced nothing and answered 0, and the status stayed `A`.
#[test]
fn log_file_truncated_then_sigusr1_still_fails_the_log() {
    let mut s = setup("trunc-usr1");
    std::fs::OpenOptions::new().write(true).open(&s.gone_file).unwrap().set_len(0).unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(s.d.pid(), libc::SIGUSR1) };
    wait_signal_handled(s.d.pid(), libc::SIGUSR1);
    others_work(&mut s);
    never_acknowledges_a_flush(&s.gone, &mut s.d);
    failed_status(&s.gone, &mut s.d, &s.gone_file);
}

/// The pair of a table swap shares one file: when it vanishes, both fail.
#[test]
fn both_logs_of_a_table_swap_fail_when_their_shared_file_vanishes() {
    let dir = TempDir::new("trunc-pair");
    let f = dir.log_file("log", 1024 + 4096);
    let mut d = spawn();
    let old = Kernel::new("LVM-pair", 1);
    let new = Kernel::new("LVM-pair", 2);
    assert_eq!(old.ctr(&mut d, &ctr(&f, "")).error, 0);
    old.ok(&mut d, RESUME, &[]);
    assert_eq!(new.ctr(&mut d, &ctr(&f, "")).error, 0);
    old.ok(&mut d, PRESUSPEND, &[]);
    old.ok(&mut d, POSTSUSPEND, &[]);
    new.ok(&mut d, RESUME, &[]);
    std::fs::OpenOptions::new().write(true).open(&f).unwrap().set_len(0).unwrap();
    never_acknowledges_a_flush(&new, &mut d);
    failed_status(&new, &mut d, &f);
    // The old table's log, never touched since, fails on its first access.
    let r = old.mark(&mut d, &[3]);
    let fl = old.flush(&mut d, &[]);
    assert!(r.error != 0 || fl.error != 0);
    failed_status(&old, &mut d, &f);
    old.ok(&mut d, DTR, &[]);
    assert!(d.child.try_wait().unwrap().is_none());
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
    let Some(_m) = Mount::tmpfs(run.path(), "64k") else {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    };
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
        let dir = TempDir::new("loop");
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
    let Some(lo) = Loop::new(&clean_image(N, 1024 + 4096 + 4096)) else {
        eprintln!("skipped: no loop device here");
        return;
    };
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
    b.ok(&mut d, DTR, &[]);
    v1.ok(&mut d, DTR, &[]);
    a.ok(&mut d, RESUME, &[]);
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
/// immutable): the FLUSH after a MARK fails and the status says F. The
/// page that failed is now clean in the page cache and the error has been
/// reported once, so a later msync of it succeeds with nothing written —
/// a later FLUSH must not be acknowledged for marks that never reached the
/// device.
///
/// Regression: after the first failure `Log::flush()` (src/log.rs) used
/// to msync again, msync returned 0 (the failed page no longer dirty, the
/// writeback error consumed), and the FLUSH was answered 0 while the
/// device still said "clean".
#[test]
fn failed_msync_is_never_followed_by_an_acknowledged_flush() {
    const N: u64 = 32768;
    let Some(lo) = Loop::new(&clean_image(N, 1024 + 4096 + 4096)) else {
        eprintln!("skipped: no loop device here");
        return;
    };
    let mut d = spawn();
    let k = Kernel::new("LVM-eio", 1);
    assert_eq!(k.ctr(&mut d, &format!("{} disk {} 2", N * 2, lo.dev)).error, 0);
    k.ok(&mut d, RESUME, &[]);
    assert_eq!(k.mark(&mut d, &[7]).error, 0);
    assert_eq!(k.flush(&mut d, &[]).error, 0);
    if !lo.immutable(true) {
        eprintln!("skipped: chattr +i not possible here");
        return;
    }
    let r = 20000;
    assert_eq!(k.mark(&mut d, &[r]).error, 0);
    let first = k.flush(&mut d, &[]);
    assert_ne!(first.error, 0, "FLUSH acknowledged though the device failed the write");
    assert_eq!(k.status(&mut d, STATUS_INFO), format!("3 disk {} F", lo.devno()));
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
    assert!(d.child.try_wait().unwrap().is_none());
}
