//! The real binary on a socketpair, driven through whole mirror life
//! cycles with kernel-shaped datagrams.

mod common;
use common::*;
use dmulogd::wire::RequestSpec;

const LEN: u64 = 64 * 1024; // sectors: 64 regions of 1024
const REGIONS: u64 = 64;

fn disk_args(path: &std::path::Path, sync: &str) -> String {
    format!("{LEN} disk {} 1024 {sync}", path.display()).trim_end().to_owned()
}

#[test]
fn whole_mirror_life_cycle_with_table_swap() {
    let dir = TempDir::new("life");
    let file = dir.log_file("log", 1024 + 4096);
    let mut d = Daemon::spawn(&[]);
    let live = Kernel::new("LVM-mirror-uuid", 0xffff_8880_0000_1000);
    let args = disk_args(&file, "");

    // CTR of a file-backed log: no device name in the reply.
    let r = live.ctr(&mut d, &args);
    assert_eq!((r.error, r.payload.len()), (0, 0));
    assert_eq!(live.u64_of(&mut d, GET_REGION_SIZE, &[]), 1024);
    assert_eq!(live.sync_count(&mut d), 0);
    // A resent CTR with the same arguments keeps the log.
    assert_eq!(live.ctr(&mut d, &args).error, 0);
    live.ok(&mut d, RESUME, &[]);
    // A fresh file has no header: a new log, every region out of sync.
    assert_eq!(live.sync_count(&mut d), 0);
    assert!(!live.in_sync(&mut d, 5));
    assert!(!live.is_clean(&mut d, 5), "new log: regions dirty");

    // Resync everything.
    while let Some(r) = live.resync_work(&mut d) {
        assert_eq!(live.set_sync(&mut d, r, true).error, 0);
        assert_eq!(live.clear(&mut d, &[r]).error, 0);
    }
    assert_eq!(live.flush(&mut d, &[]).error, 0);
    assert_eq!(live.sync_count(&mut d), REGIONS);

    // A write: mark + flush must be on disk when FLUSH is answered. The
    // MARK's write also carries the clean bits the last FLUSH's leg flush
    // let out.
    assert_eq!(live.mark(&mut d, &[3, 40]).error, 0);
    assert!(disk_clean_bit(&file, 0));
    assert_eq!(live.flush(&mut d, &[]).error, 0);
    assert!(!disk_clean_bit(&file, 3) && !disk_clean_bit(&file, 40));
    assert!(!live.is_clean(&mut d, 3));
    // Integrated flush (v3): the payload is marked, then flushed.
    assert_eq!(live.flush(&mut d, &[7]).error, 0);
    assert!(!disk_clean_bit(&file, 7));
    assert_eq!(live.clear(&mut d, &[3, 40, 7]).error, 0);
    assert_eq!(live.flush(&mut d, &[]).error, 0);
    assert!(live.is_clean(&mut d, 3));
    assert_eq!(live.status(&mut d, STATUS_INFO), format!("3 disk {} A", file.display()));

    // Suspend with one region left dirty; then the reload: same uuid, new luid.
    assert_eq!(live.mark(&mut d, &[9]).error, 0);
    assert_eq!(live.flush(&mut d, &[]).error, 0);
    live.ok(&mut d, PRESUSPEND, &[]);
    live.ok(&mut d, POSTSUSPEND, &[]);
    let next = Kernel::new("LVM-mirror-uuid", 0xffff_8880_0000_2000);
    assert_eq!(next.ctr(&mut d, &args).error, 0);
    // The two logs never mix: the new one is not resumed yet.
    assert_eq!(next.mark(&mut d, &[1]).error, ESRCH, "disk log not resumed");
    next.ok(&mut d, RESUME, &[]);
    // The swap kept the on-disk state: only region 9 is out of sync.
    assert_eq!(next.sync_count(&mut d), REGIONS - 1);
    assert!(!next.in_sync(&mut d, 9));
    assert_eq!(next.resync_work(&mut d), Some(9));
    live.ok(&mut d, DTR, &[]);
    // The old luid is gone; the new log lives on.
    assert_eq!(live.req(&mut d, GET_SYNC_COUNT, &[]).error, ESRCH);
    assert_eq!(next.set_sync(&mut d, 9, true).error, 0);
    assert_eq!(next.sync_count(&mut d), REGIONS);
    next.ok(&mut d, PRESUSPEND, &[]);
    next.ok(&mut d, POSTSUSPEND, &[]);
    next.ok(&mut d, DTR, &[]);
    assert!(d.close().success());
}

#[test]
fn restart_after_kill9_keeps_every_acknowledged_mark() {
    let dir = TempDir::new("restart");
    let file = dir.log_file("log", 1024 + 4096);
    let args = disk_args(&file, "nosync");
    let k = Kernel::new("LVM-restart", 0xffff_8880_dead_0000);
    let mut d = Daemon::spawn(&[]);
    assert_eq!(k.ctr(&mut d, &args).error, 0);
    k.ok(&mut d, RESUME, &[]);
    assert_eq!(k.sync_count(&mut d), REGIONS);
    // A workload: marks acknowledged by FLUSH, some cleared again, and
    // some marks never flushed.
    let mut acked = Vec::new();
    for i in 0..20u64 {
        let r = (i * 13) % REGIONS;
        assert_eq!(k.mark(&mut d, &[r]).error, 0);
        assert_eq!(k.flush(&mut d, &[]).error, 0);
        if i % 3 == 0 {
            assert_eq!(k.clear(&mut d, &[r]).error, 0);
        } else {
            acked.push(r);
        }
    }
    acked.retain(|r| !(0..20u64).filter(|i| i % 3 == 0).any(|i| (i * 13) % REGIONS == *r));
    assert_eq!(k.mark(&mut d, &[63]).error, 0); // not flushed: no promise
    d.kill9();

    let mut d = Daemon::spawn(&[]);
    // The new process knows nothing: the kernel gets -ESRCH, with a zeroed
    // payload of IN_SYNC's reply size so the kernel's retry after the
    // reconnect still has room for the answer ...
    let r = k.req(&mut d, IN_SYNC, &5u64.to_ne_bytes());
    assert_eq!((r.error, r.payload.clone()), (ESRCH, vec![0; 8]));
    let r = k.req(&mut d, GET_RESYNC_WORK, &[]);
    assert_eq!((r.error, r.payload.len()), (ESRCH, 16));
    let r = k.mark(&mut d, &[1]);
    assert_eq!((r.error, r.payload.len()), (ESRCH, 0), "no reply buffer for MARK");
    // ... and sends the reconnect CTR (NUL-terminated, no reply buffer)
    // and RESUME. Without `nosync` the on-disk bitmap is used.
    let r = k.ctr_reconnect(&mut d, &disk_args(&file, ""));
    assert_eq!((r.error, r.payload.len()), (0, 0));
    k.ok(&mut d, RESUME, &[]);
    // Without the previous daemon's state (its run directory is gone) the
    // sync state is rebuilt from the device: every acknowledged mark is
    // there, so its region is dirty and out of sync.
    for &r in &acked {
        assert!(!k.is_clean(&mut d, r), "acknowledged mark of region {r} lost");
        assert!(!k.in_sync(&mut d, r), "region {r} with a lost state must be resynced");
    }
    assert!(!acked.is_empty());
    let out_of_sync = REGIONS - k.sync_count(&mut d);
    assert!(out_of_sync >= acked.len() as u64);
    // Everything comes back after resync.
    while let Some(r) = k.resync_work(&mut d) {
        k.set_sync(&mut d, r, true);
    }
    assert_eq!(k.sync_count(&mut d), REGIONS);
}

#[test]
fn reconnect_of_a_nosync_log_keeps_its_dirty_regions() {
    let dir = TempDir::new("renosync");
    let file = dir.log_file("log", 1024 + 4096);
    let args = disk_args(&file, "nosync");
    let k = Kernel::new("LVM-renosync", 0xffff_8880_beef_0000);
    let mut d = Daemon::spawn(&[]);
    assert_eq!(k.ctr(&mut d, &args).error, 0);
    k.ok(&mut d, RESUME, &[]);
    assert_eq!(k.mark(&mut d, &[5, 6]).error, 0);
    assert_eq!(k.flush(&mut d, &[]).error, 0);
    d.kill9();
    let mut d = Daemon::spawn(&[]);
    // The kernel resends the table's own words, nosync included. A new
    // all-clean log here would forget 5 and 6, which the kernel still holds
    // marked and will not mark again.
    assert_eq!(k.ctr_reconnect(&mut d, &args).error, 0);
    // Another kernel context, reconnecting at the same time, may get its
    // MARK in before the RESUME: -ESRCH (nothing is loaded yet), so that
    // context reconnects too, then marks.
    assert_eq!(k.mark(&mut d, &[9]).error, ESRCH);
    assert_eq!(k.ctr_reconnect(&mut d, &args).error, 0);
    k.ok(&mut d, RESUME, &[]);
    k.ok(&mut d, RESUME, &[]);
    assert_eq!(k.mark(&mut d, &[9]).error, 0);
    assert_eq!(k.flush(&mut d, &[]).error, 0);
    assert!(!k.is_clean(&mut d, 9) && !disk_clean_bit(&file, 9));
    assert!(!k.is_clean(&mut d, 5) && !k.is_clean(&mut d, 6));
    // No state file said the log was live: the device's bitmap is loaded
    // (nosync is not applied) and 5, 6 are out of sync, to be resynced.
    assert!(!k.in_sync(&mut d, 5));
    assert_eq!(k.sync_count(&mut d), REGIONS - 2);
    assert!(!disk_clean_bit(&file, 5));
    // A fresh activation with nosync (no trailing NUL) starts a new log.
    let fresh = Kernel::new("LVM-renosync", 0xffff_8880_beef_1000);
    k.ok(&mut d, POSTSUSPEND, &[]);
    assert_eq!(fresh.ctr(&mut d, &args).error, 0);
    fresh.ok(&mut d, RESUME, &[]);
    assert_eq!(fresh.sync_count(&mut d), REGIONS);
}

#[test]
fn restart_with_run_dir_restores_the_sync_state_the_kernel_relies_on() {
    let dir = TempDir::new("restore");
    let run = TempDir::new("restore-run");
    let file = dir.log_file("log", 1024 + 4096);
    let k = Kernel::new("LVM-restore", 0xffff_8880_aaaa_0000);
    let c = Kernel::new("LVM-restore-core", 0xffff_8880_aaaa_1000);
    let mut d = Daemon::spawn_in(run.path(), &[]);
    assert_eq!(k.ctr(&mut d, &disk_args(&file, "")).error, 0);
    k.ok(&mut d, RESUME, &[]);
    assert_eq!(c.ctr(&mut d, "65536 core 1024").error, 0);
    c.ok(&mut d, RESUME, &[]);
    // Resync both logs except regions 60..64; then writes in flight.
    for l in [&k, &c] {
        while let Some(r) = l.resync_work(&mut d) {
            l.set_sync(&mut d, r, r < 60);
            l.clear(&mut d, &[r]);
        }
        assert_eq!(l.flush(&mut d, &[]).error, 0);
        assert_eq!(l.mark(&mut d, &[2, 3]).error, 0);
        assert_eq!(l.flush(&mut d, &[]).error, 0);
    }
    d.kill9();
    let mut d = Daemon::spawn_in(run.path(), &[]);
    for (l, args) in [(&k, disk_args(&file, "")), (&c, "65536 core 1024".to_owned())] {
        assert_eq!(l.req(&mut d, IN_SYNC, &2u64.to_ne_bytes()).error, ESRCH);
        assert_eq!(l.ctr_reconnect(&mut d, &args).error, 0);
        l.ok(&mut d, RESUME, &[]);
        // The kernel's view: 2 and 3 are in sync (being written to both
        // legs), 60..63 are not; nothing else changed.
        assert_eq!(l.sync_count(&mut d), 60);
        assert!(l.in_sync(&mut d, 2) && l.in_sync(&mut d, 3));
        assert!(!l.in_sync(&mut d, 60));
        // ... and the marks are still there.
        assert!(!l.is_clean(&mut d, 2) && !l.is_clean(&mut d, 3));
        assert_eq!(l.resync_work(&mut d), Some(60));
    }
    // DTR forgets the state: a reconnect after it starts from scratch.
    k.ok(&mut d, DTR, &[]);
    assert_eq!(std::fs::read_dir(run.path().join("state")).unwrap().count(), 2, "only the core log's files remain");
}

#[test]
fn log_device_must_be_block_device_or_file() {
    // A character device is refused. (Block devices, and the MAJ:MIN in
    // the CTR reply, need device-mapper: tests/vm covers them.)
    let mut d = Daemon::spawn(&[]);
    let k = Kernel::new("c", 1);
    let r = k.ctr(&mut d, "1024 disk /dev/null 8");
    assert_eq!((r.error, r.payload.len()), (EINVAL, 0));
}

#[test]
fn bad_requests_get_error_replies_and_change_nothing() {
    let mut d = Daemon::spawn(&[]);
    let k = Kernel::new("bad", 7);
    assert_eq!(k.ctr(&mut d, "8192 core 1024 nosync").error, 0);
    k.ok(&mut d, RESUME, &[]);
    // Unknown type, out-of-range regions, ragged arrays, wrong sizes.
    assert_eq!(k.req(&mut d, 99, &[]).error, EINVAL);
    assert_eq!(k.req(&mut d, 0, &[]).error, EINVAL);
    assert_eq!(k.mark(&mut d, &[1, 8]).error, EINVAL);
    assert!(k.is_clean(&mut d, 1), "rejected MARK changed nothing");
    assert_eq!(k.req(&mut d, MARK_REGION, &[0; 12]).error, EINVAL);
    assert_eq!(k.req(&mut d, IS_CLEAN, &[0; 4]).error, EINVAL);
    assert_eq!(k.req(&mut d, IN_SYNC, &8u64.to_ne_bytes()).error, EINVAL);
    assert_eq!(k.flush(&mut d, &[2, 9]).error, EINVAL);
    assert!(k.is_clean(&mut d, 2), "rejected integrated FLUSH changed nothing");
    assert_eq!(k.req(&mut d, SET_REGION_SYNC, &[0; 8]).error, EINVAL);
    // Unknown log.
    assert_eq!(Kernel::new("bad", 8).req(&mut d, GET_SYNC_COUNT, &[]).error, ESRCH);
    // A payload larger than the kernel can send.
    let big = vec![0u8; 400];
    assert_eq!(k.req(&mut d, CLEAR_REGION, &big).error, EINVAL);
    // A version the protocol never had.
    let seq = d.next_seq();
    let r =
        d.request(RequestSpec { luid: 7, uuid: b"bad", version: 9, seq, request_type: GET_SYNC_COUNT, payload: &[] });
    assert_eq!(r.error, EINVAL);
    // Malformed datagrams are dropped: no reply, and the daemon still serves.
    let mut bad =
        RequestSpec { luid: 7, uuid: b"bad", version: 3, seq: 1, request_type: MARK_REGION, payload: &[0; 8] }.encode();
    bad[16] = 9; // connector idx
    d.send_raw(&bad);
    d.send_raw(&[1, 2, 3]);
    assert!(!d.reply_pending(200), "malformed datagrams get no reply");
    assert!(k.is_clean(&mut d, 0));
    assert_eq!(k.sync_count(&mut d), 8);
    assert_eq!(k.status(&mut d, STATUS_INFO), "1 core");
    assert_eq!(k.status(&mut d, STATUS_TABLE), "core 2 1024 nosync ");
}

#[test]
fn clustered_types_need_the_option() {
    let mut d = Daemon::spawn(&[]);
    let k = Kernel::new("cl", 1);
    assert_eq!(k.ctr(&mut d, "8192 clustered-core 1024").error, EINVAL);
    drop(d);
    let mut d = Daemon::spawn(&["--allow-clustered"]);
    assert_eq!(k.ctr(&mut d, "8192 clustered-core 1024").error, 0);
    assert_eq!(k.status(&mut d, STATUS_INFO), "1 clustered-core");
}

#[test]
fn sigterm_with_live_logs_keeps_serving_and_without_exits() {
    let mut d = Daemon::spawn(&[]);
    let k = Kernel::new("t", 1);
    assert_eq!(k.ctr(&mut d, "8192 core 1024").error, 0);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(d.pid(), libc::SIGTERM) };
    // Still serving after the signal (the request is answered).
    assert_eq!(k.sync_count(&mut d), 0);
    k.ok(&mut d, DTR, &[]);
    // SAFETY: as above.
    unsafe { libc::kill(d.pid(), libc::SIGTERM) };
    let status = wait_timeout(&mut d.child, std::time::Duration::from_secs(20)).expect("exits");
    assert!(status.success());
    // SIGQUIT with a live log exits, and says so in its status (4).
    let mut d = Daemon::spawn(&[]);
    assert_eq!(k.ctr(&mut d, "8192 core 1024").error, 0);
    // SAFETY: as above.
    unsafe { libc::kill(d.pid(), libc::SIGQUIT) };
    let status = wait_timeout(&mut d.child, std::time::Duration::from_secs(20)).expect("exits");
    assert_eq!(status.code(), Some(4), "SIGQUIT with live logs");
}

/// The luid is the kernel's log context address: a CTR with other
/// arguments at a luid whose log was never destroyed (its table's load
/// failed after our CTR, so no DTR came) replaces that dead log instead of
/// blocking the retry with -EEXIST; a failed replacement keeps it.
#[test]
fn a_ctr_with_other_arguments_replaces_a_dead_log() {
    let dir = TempDir::new("zombie");
    let file = dir.log_file("log", 1024 + 4096);
    let mut d = Daemon::spawn(&[]);
    let k = Kernel::new("LVM-zombie", 0xffff_8880_0000_7000);
    assert_eq!(k.ctr(&mut d, &disk_args(&file, "")).error, 0);
    assert_eq!(k.ctr(&mut d, &format!("{} disk /nonexistent/log 1024", REGIONS * 1024)).error, -libc::ENOENT);
    assert_eq!(k.status(&mut d, STATUS_TABLE), format!("disk 2 {} 1024 ", file.display()));
    assert_eq!(k.ctr(&mut d, "65536 core 1024 nosync").error, 0);
    assert_eq!(k.status(&mut d, STATUS_INFO), "1 core");
    assert_eq!(k.sync_count(&mut d), 64);
}

/// A daemon killed between a MARK and its FLUSH: the kernel reconnects
/// and resends only the FLUSH, so the mark must already be on the device
/// for the new daemon's RESUME to find it, and that FLUSH must not be
/// acknowledged with the region clean on disk (a write would then reach
/// one leg with the log saying clean: the lost mark the VM restart power
/// cut found).
#[test]
fn a_mark_survives_a_kill_before_its_flush() {
    for run_dir_survives in [true, false] {
        let dir = TempDir::new("markkill");
        let run = TempDir::new("markkill-run");
        let file = dir.log_file("log", 1024 + 4096);
        let args = disk_args(&file, "nosync");
        let k = Kernel::new("LVM-markkill", 0xffff_8880_cafe_0000);
        let mut d = Daemon::spawn_in(run.path(), &[]);
        assert_eq!(k.ctr(&mut d, &args).error, 0);
        k.ok(&mut d, RESUME, &[]);
        assert_eq!(k.mark(&mut d, &[5, 40]).error, 0);
        d.kill9();
        let mut d = if run_dir_survives { Daemon::spawn_in(run.path(), &[]) } else { Daemon::spawn(&[]) };
        assert_eq!(k.req(&mut d, FLUSH, &[]).error, ESRCH);
        assert_eq!(k.ctr_reconnect(&mut d, &args).error, 0);
        k.ok(&mut d, RESUME, &[]);
        assert_eq!(k.flush(&mut d, &[]).error, 0);
        for r in [5, 40] {
            assert!(
                !disk_clean_bit(&file, r),
                "region {r}: the mark was lost with the daemon (state kept: {run_dir_survives})"
            );
            assert!(!k.is_clean(&mut d, r));
        }
    }
}

/// A clean bit that no FLUSH writes reaches the device by the clear timer
/// (800 ms), with no request at all to wake the loop: it sleeps in `recv`
/// with the timer as the socket's receive timeout. Not before the delay,
/// which is what lets a FLUSH carry it.
#[test]
fn the_clear_timer_writes_a_clean_bit_with_no_traffic() {
    let dir = TempDir::new("cleartimer");
    let file = dir.log_file("log", 1024 + 4096);
    let k = Kernel::new("LVM-cleartimer", 0xffff_8880_cafe_1000);
    let mut d = Daemon::spawn(&[]);
    assert_eq!(k.ctr(&mut d, &disk_args(&file, "nosync")).error, 0);
    k.ok(&mut d, RESUME, &[]);
    assert_eq!(k.mark(&mut d, &[9]).error, 0);
    assert_eq!(k.flush(&mut d, &[]).error, 0);
    assert!(!disk_clean_bit(&file, 9));
    let cleared = std::time::Instant::now();
    assert_eq!(k.clear(&mut d, &[9]).error, 0);
    assert!(!disk_clean_bit(&file, 9), "written before the delay");
    // Poll the file (the daemon is not asked anything meanwhile).
    while !disk_clean_bit(&file, 9) {
        assert!(cleared.elapsed() < std::time::Duration::from_secs(10), "the clear timer never fired");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let took = cleared.elapsed();
    assert!(took >= std::time::Duration::from_millis(700), "written after {took:?}: no delay");
    // Still serving, and a second timer fires as the first did.
    assert_eq!(k.mark(&mut d, &[9]).error, 0);
    assert_eq!(k.flush(&mut d, &[]).error, 0);
    assert_eq!(k.clear(&mut d, &[9]).error, 0);
    let cleared = std::time::Instant::now();
    while !disk_clean_bit(&file, 9) {
        assert!(cleared.elapsed() < std::time::Duration::from_secs(10), "the second clear timer never fired");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
