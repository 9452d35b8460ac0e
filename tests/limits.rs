//! Limits of the real binary: logs that cannot fit their device or the
//! memory budget, the longest uuid, ten thousand logs, a 2^24-region disk
//! log, and memory that stays flat under a long request stream.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]

mod common;
mod support_model;

use common::*;
use dmulogd::wire::RequestSpec;
use support_model::{regions_payload, Rng};

const ENOMEM: i32 = -libc::ENOMEM;

/// A live log that must keep answering while others are refused.
fn canary(d: &mut Daemon) -> Kernel {
    let k = Kernel::new("LVM-canary", 0xcafe);
    assert_eq!(k.ctr(d, "8192 core 1024 nosync").error, 0);
    k.ok(d, RESUME, &[]);
    k
}

fn serving(k: &Kernel, d: &mut Daemon) {
    assert_eq!(k.sync_count(d), 8, "the daemon stopped serving its other logs");
}

#[test]
fn ctr_whose_regions_do_not_fit_the_log_file_is_refused() {
    let dir = TempDir::new("fit");
    let mut d = Daemon::spawn(&[]);
    let c = canary(&mut d);
    // 1..=64 regions need 1024 + 8 bytes; 65 need 1024 + 16.
    for (bytes, regions, want) in [
        (0u64, 1u64, EINVAL),
        (1023, 1, EINVAL),
        (1024, 1, EINVAL),
        (1031, 64, EINVAL),
        (1032, 64, 0),
        (1032, 65, EINVAL),
        (1040, 65, 0),
        (1024 + (1 << 21) - 1, 1 << 24, EINVAL),
    ] {
        let f = dir.log_file(&format!("f{bytes}-{regions}"), bytes);
        let k = Kernel::new("LVM-fit", bytes * 1000 + regions);
        let r = k.ctr(&mut d, &format!("{} disk {} 2", regions * 2, f.display()));
        assert_eq!((r.error, r.payload.len()), (want, 0), "{bytes}-byte file, {regions} regions");
        assert_eq!(k.req(&mut d, RESUME, &[]).error, if want == 0 { 0 } else { ESRCH });
        serving(&c, &mut d);
    }
    // A path that is not there, a directory, a character device.
    let k = Kernel::new("LVM-fit", 1);
    assert_ne!(k.ctr(&mut d, &format!("8192 disk {}/missing 1024", dir.path().display())).error, 0);
    assert_eq!(k.ctr(&mut d, "8192 disk dmulogd-no-such-dir/log 1024").error, -libc::ENOENT);
    assert_eq!(k.ctr(&mut d, &format!("8192 disk {} 1024", dir.path().display())).error, -libc::EISDIR);
    assert_eq!(k.ctr(&mut d, "8192 disk /dev/zero 1024").error, EINVAL);
    serving(&c, &mut d);
}

/// A log file that does not exist is -ENOENT, with a log line saying so.
///
/// Regression, where PID 1's root is not reachable through /proc/1/root
/// (containers, sandboxes, this CI): src/device.rs `open_path()` looked a
/// missing absolute path up again in PID 1's root and returned *that*
/// error, so the CTR failed with -EACCES, "Permission denied", for a file
/// that simply is not there.
#[test]
fn missing_log_file_is_enoent() {
    let dir = TempDir::new("missing");
    let mut d = Daemon::spawn(&[]);
    let k = Kernel::new("LVM-missing", 1);
    let r = k.ctr(&mut d, &format!("8192 disk {}/missing 1024", dir.path().display()));
    assert_eq!(
        r.error,
        -libc::ENOENT,
        "a missing log file: got errno {} ({})",
        -r.error,
        std::io::Error::from_raw_os_error(-r.error)
    );
}

#[test]
fn ctr_needing_more_memory_than_allowed_is_enomem() {
    let mut d = Daemon::spawn(&["--max-memory", "1"]);
    let c = canary(&mut d); // 3 x 8 bytes
    let big = Kernel::new("LVM-mem", 1);
    // 2^22 regions: 3 x 512 KiB > 1 MiB.
    assert_eq!(big.ctr(&mut d, &format!("{} core 2", 2u64 << 22)).error, ENOMEM);
    assert_eq!(big.req(&mut d, GET_SYNC_COUNT, &[]).error, ESRCH, "a refused CTR leaves no log");
    // 2^21 regions: 3 x 256 KiB fits; a second one does not; after the
    // first is destroyed it does again (memory is given back).
    let a = Kernel::new("LVM-mem", 2);
    let b = Kernel::new("LVM-mem", 3);
    let ctr = format!("{} core 2", 2u64 << 21);
    assert_eq!(a.ctr(&mut d, &ctr).error, 0);
    assert_eq!(b.ctr(&mut d, &ctr).error, ENOMEM);
    a.ok(&mut d, DTR, &[]);
    assert_eq!(b.ctr(&mut d, &ctr).error, 0);
    b.ok(&mut d, RESUME, &[]);
    assert_eq!(b.sync_count(&mut d), 0);
    serving(&c, &mut d);
    // Absurd sizes under the default limit too, disk logs included (the
    // memory check comes before the device is opened).
    let mut d = Daemon::spawn(&[]);
    let c = canary(&mut d);
    let k = Kernel::new("LVM-absurd", 9);
    for s in [
        "18446744073709551615 core 2",
        "18446744073709551615 core 1048576",
        "18446744073709551615 disk /nonexistent 2",
        "18446744073709551615 core 2 nosync",
    ] {
        assert_eq!(k.ctr(&mut d, s).error, ENOMEM, "{s}");
        serving(&c, &mut d);
    }
    assert_eq!(k.ctr(&mut d, "18446744073709551616 core 2").error, EINVAL, "target length past u64");
    // With the budget lifted, the allocation itself fails cleanly.
    let mut d = Daemon::spawn(&["--max-memory", "18446744073709551615"]);
    let c = canary(&mut d);
    assert_eq!(k.ctr(&mut d, "18446744073709551615 core 2").error, ENOMEM);
    serving(&c, &mut d);
}

#[test]
fn uuid_of_128_bytes_works_and_is_compared_whole() {
    let mut d = Daemon::spawn(&[]);
    let long: String = (0..128).map(|i| char::from(b'A' + (i % 26) as u8)).collect();
    let k = Kernel::new(&long, 0xffff_8880_1234_0000);
    let r = k.ctr(&mut d, "8192 core 1024");
    assert_eq!(r.error, 0);
    assert_eq!(r.uuid, long.as_bytes(), "all 128 bytes echoed");
    k.ok(&mut d, RESUME, &[]);
    assert_eq!(k.mark(&mut d, &[3]).error, 0);
    assert!(!k.is_clean(&mut d, 3));
    // The same uuid but for its last byte is another log.
    let mut other = long.clone().into_bytes();
    other[127] = b'z';
    let o = Kernel { uuid: other, luid: k.luid, version: 3 };
    assert_eq!(o.req(&mut d, IS_CLEAN, &3u64.to_ne_bytes()).error, ESRCH);
    assert_eq!(o.ctr(&mut d, "8192 core 1024").error, 0);
    o.ok(&mut d, RESUME, &[]);
    assert!(o.is_clean(&mut d, 3), "logs with uuids differing in byte 128 are separate");
    assert!(!k.is_clean(&mut d, 3));
    assert_eq!(k.status(&mut d, STATUS_TABLE), "core 1 1024 ");
}

#[test]
fn ten_thousand_core_logs() {
    let start = std::time::Instant::now();
    let mut d = Daemon::spawn(&[]);
    const LOGS: u64 = 10_000;
    let kernel = |i: u64| Kernel::new(&format!("LVM-many-{:05}", i % 5000), 0xffff_8880_0000_0000 + (i << 12));
    // CTR + RESUME + a mark each, pipelined in bursts.
    let mut i = 0;
    while i < LOGS {
        let burst = (LOGS - i).min(12);
        for j in i..i + burst {
            let k = kernel(j);
            let ctr = format!("{} core 1024 {}", (j % 300 + 1) * 1024, if j % 2 == 0 { "nosync" } else { "" });
            for (t, p) in [
                (CTR, ctr.trim_end().as_bytes().to_vec()),
                (RESUME, vec![]),
                (MARK_REGION, regions_payload(&[j % 7 % (j % 300 + 1)])),
            ] {
                let seq = d.next_seq();
                d.send_raw(
                    &RequestSpec { luid: k.luid, uuid: &k.uuid, version: 3, seq, request_type: t, payload: &p }
                        .encode(),
                );
            }
        }
        for _ in 0..burst * 3 {
            let r = d.recv();
            assert_eq!(r.error, 0, "log #{i}..: {r:?}");
        }
        i += burst;
    }
    let mut rng = Rng::new(10_000);
    for _ in 0..300 {
        let j = rng.below(LOGS);
        let k = kernel(j);
        let n = j % 300 + 1;
        let marked = j % 7 % n;
        assert!(!k.is_clean(&mut d, marked), "log {j}: mark lost");
        let other = (marked + 1) % n;
        if other != marked {
            assert!(k.is_clean(&mut d, other), "log {j}: region {other} dirty");
        }
        assert_eq!(k.sync_count(&mut d), if j % 2 == 0 { n } else { 0 }, "log {j}");
        assert_eq!(k.u64_of(&mut d, GET_REGION_SIZE, &[]), 1024);
    }
    // And they all go away.
    for j in 0..LOGS {
        let k = kernel(j);
        let seq = d.next_seq();
        d.send_raw(
            &RequestSpec { luid: k.luid, uuid: &k.uuid, version: 3, seq, request_type: DTR, payload: &[] }.encode(),
        );
        if j % 32 == 31 || j == LOGS - 1 {
            for _ in 0..=(j % 32) {
                assert_eq!(d.recv().error, 0);
            }
        }
    }
    assert_eq!(kernel(17).req(&mut d, GET_SYNC_COUNT, &[]).error, ESRCH);
    eprintln!("10,000 logs created, checked and destroyed in {:.1?}", start.elapsed());
}

#[test]
fn disk_log_of_2_pow_24_regions() {
    const N: u64 = 1 << 24;
    let dir = TempDir::new("huge");
    let f = dir.log_file("log", 1024 + (1 << 21));
    let ctr = format!("{} disk {} 1024 nosync", N * 1024, f.display());
    let mut d = Daemon::spawn(&[]);
    let k = Kernel::new("LVM-huge", 0xffff_8880_0024_0000);
    assert_eq!(k.ctr(&mut d, &ctr).error, 0);
    k.ok(&mut d, RESUME, &[]);
    assert_eq!(k.sync_count(&mut d), N);
    let mut rng = Rng::new(24);
    let mut marked: Vec<u64> = vec![0, 7, 8, 63, 64, 32767, 32768, (1 << 23) - 1, 1 << 23, N - 65, N - 64, N - 1];
    marked.extend((0..20).map(|_| rng.below(N)));
    for chunk in marked.chunks(7) {
        assert_eq!(k.mark(&mut d, chunk).error, 0);
    }
    assert_eq!(k.flush(&mut d, &[]).error, 0);
    let bytes = std::fs::read(&f).unwrap();
    assert_eq!(&bytes[0..4], &0x4D69_5272u32.to_le_bytes());
    assert_eq!(&bytes[8..16], &N.to_le_bytes());
    let bitmap = &bytes[1024..];
    assert_eq!(bitmap.len() as u64, N / 8);
    let zeros: Vec<u64> = (0..N).filter(|&r| bitmap[(r / 8) as usize] & (1 << (r % 8)) == 0).collect();
    let mut want = marked.clone();
    want.sort_unstable();
    want.dedup();
    assert_eq!(zeros, want, "exactly the marked regions are dirty on disk");
    assert_eq!(k.u64_of(&mut d, IS_REMOTE_RECOVERING, &5u64.to_ne_bytes()), 0);
    let r = k.ok(&mut d, IS_REMOTE_RECOVERING, &5u64.to_ne_bytes());
    assert_eq!(r.u64_at(1), Some(N), "every region is in sync: the hint is region_count");
    // Clears reach the disk at the latest at POSTSUSPEND.
    assert_eq!(k.clear(&mut d, &want[..6]).error, 0);
    k.ok(&mut d, PRESUSPEND, &[]);
    k.ok(&mut d, POSTSUSPEND, &[]);
    for &r in &want[..6] {
        assert!(disk_clean_bit(&f, r), "clear of {r} not on disk after POSTSUSPEND");
    }
    // A daemon restart keeps the remaining marks (reconnect under nosync).
    d.kill9();
    let mut d = Daemon::spawn(&[]);
    assert_eq!(k.ctr_reconnect(&mut d, &ctr).error, 0);
    k.ok(&mut d, RESUME, &[]);
    for &r in &want[6..] {
        assert!(!k.in_sync(&mut d, r), "mark of {r} lost across the restart");
    }
    assert_eq!(k.sync_count(&mut d), N - (want.len() as u64 - 6));
}

fn vm_rss_kib(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// 200,000 requests of every kind (valid, refused, for unknown logs,
/// malformed) on existing logs: resident memory must not grow with them.
#[test]
fn memory_stays_flat_under_a_long_request_stream() {
    let dir = TempDir::new("rss");
    let f = dir.log_file("log", 1024 + 4096);
    let mut d = Daemon::spawn(&[]);
    let core = Kernel::new("LVM-rss-core", 1);
    let disk = Kernel::new("LVM-rss-disk", 2);
    assert_eq!(core.ctr(&mut d, "1048576 core 128").error, 0);
    assert_eq!(disk.ctr(&mut d, &format!("{} disk {} 128", 32768 * 128, f.display())).error, 0);
    core.ok(&mut d, RESUME, &[]);
    disk.ok(&mut d, RESUME, &[]);
    let mut rng = Rng::new(200_000);
    let stream = |d: &mut Daemon, count: u64, rng: &mut Rng| {
        let mut sent = 0;
        while sent < count {
            let mut expect = 0;
            for _ in 0..32 {
                let k = if rng.one_in(2) { &core } else { &disk };
                let n = 8192u64;
                let (ty, p): (u32, Vec<u8>) = match rng.below(14) {
                    0 | 1 => {
                        (MARK_REGION, regions_payload(&(0..rng.range(1, 32)).map(|_| rng.below(n)).collect::<Vec<_>>()))
                    }
                    2 | 3 => (
                        CLEAR_REGION,
                        regions_payload(&(0..rng.range(1, 32)).map(|_| rng.below(n)).collect::<Vec<_>>()),
                    ),
                    4 => (FLUSH, vec![]),
                    5 => (IS_CLEAN, rng.below(n).to_ne_bytes().to_vec()),
                    6 => (GET_RESYNC_WORK, vec![]),
                    7 => {
                        let mut p = rng.below(n).to_ne_bytes().to_vec();
                        p.extend_from_slice(&1i64.to_ne_bytes());
                        (SET_REGION_SYNC, p)
                    }
                    8 => (STATUS_INFO, vec![]),
                    9 => (IS_REMOTE_RECOVERING, rng.below(n).to_ne_bytes().to_vec()),
                    10 => (MARK_REGION, regions_payload(&[u64::MAX])),
                    11 => (99, vec![]),
                    12 => (GET_SYNC_COUNT, vec![]),
                    _ => (CTR, b"1048576 core 128".to_vec()), // a resend (the disk log: replaced)
                };
                let seq = d.next_seq();
                let luid = if rng.one_in(20) { 777 } else { k.luid };
                let mut dg =
                    RequestSpec { luid, uuid: &k.uuid, version: 3, seq, request_type: ty, payload: &p }.encode();
                if rng.one_in(25) {
                    dg[16] = 9; // not dm-log-userspace: dropped
                } else {
                    expect += 1;
                }
                d.send_raw(&dg);
                sent += 1;
            }
            for _ in 0..expect {
                d.recv();
            }
        }
    };
    // Warm up (allocator pools, page faults of the bitmaps), then measure.
    stream(&mut d, 30_000, &mut rng);
    let before = vm_rss_kib(d.pid());
    let start = std::time::Instant::now();
    stream(&mut d, 200_000, &mut rng);
    let after = vm_rss_kib(d.pid());
    eprintln!("VmRSS {before} KiB -> {after} KiB over 200,000 requests in {:.1?}", start.elapsed());
    assert!(after <= before + 256, "resident memory grew from {before} KiB to {after} KiB over 200,000 requests");
    assert_eq!(core.u64_of(&mut d, GET_REGION_SIZE, &[]), 128);
}
