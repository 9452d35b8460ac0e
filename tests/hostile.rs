//! Hostile and broken peers at the socketpair level: the kernel resends a
//! request after 15 s with a new seq (its first reply lost), replies are
//! matched by seq in any order, and datagrams larger than the kernel can
//! send are refused. (Non-kernel netlink senders are dropped by
//! `Request::decode`, covered by the wire unit tests and
//! tests/fuzz_datagrams.rs; the socketpair carries no sender.)
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]

mod common;
mod support_model;

use common::*;
use dmulogd::wire::{Reply, RequestSpec};
use std::collections::HashMap;
use support_model::{regions_payload, Rng};

const N: u64 = 96; // regions per log below

fn disk_ctr(path: &std::path::Path) -> String {
    format!("{} disk {} 1024", N * 1024, path.display())
}

/// Every region's (IS_CLEAN, IN_SYNC), the sync count and the status.
fn state(k: &Kernel, d: &mut Daemon) -> (Vec<(bool, bool)>, u64, String) {
    let bits = (0..N).map(|r| (k.is_clean(d, r), k.in_sync(d, r))).collect();
    (bits, k.sync_count(d), k.status(d, STATUS_INFO))
}

/// The same kernel-like workload goes to two daemons: `a` sees each
/// request once, `b` sees some of them twice — the resend either right
/// after the original or after queries the kernel's other contexts sent
/// meanwhile. Every resend must be answered like the original (DTR: by
/// -ESRCH), and the two daemons must end in the same state.
#[test]
fn resent_requests_are_answered_like_the_original() {
    let dir = TempDir::new("resend");
    let mut resends = HashMap::<u32, u64>::new();
    for round in 0..6u64 {
        let mut rng = Rng::new(0x5e4d + round);
        let fa = dir.log_file(&format!("a{round}"), 1024 + 4096);
        let fb = dir.log_file(&format!("b{round}"), 1024 + 4096);
        let mut a = Daemon::spawn(&[]);
        let mut b = Daemon::spawn(&[]);
        let ka = Kernel::new("LVM-resend", 0xffff_8880_0000_1000 + round);
        let kb = ka.clone();
        let ctr_a = disk_ctr(&fa);
        let ctr_b = disk_ctr(&fb);
        let mut step = |ty: u32, pa: Vec<u8>, pb: Vec<u8>, a: &mut Daemon, b: &mut Daemon, rng: &mut Rng| {
            let ra = ka.req(a, ty, &pa);
            let rb = kb.req(b, ty, &pb);
            assert_eq!((ra.error, &ra.payload), (rb.error, &rb.payload), "type {ty}: the two daemons differ");
            if rng.percent(35) {
                // Queries from other contexts before the resend.
                for _ in 0..rng.below(4) {
                    let r = rng.below(N);
                    kb.req(b, rng.pick(&[IS_CLEAN, IN_SYNC, IS_REMOTE_RECOVERING]), &r.to_ne_bytes());
                }
                let again = kb.req(b, ty, &pb);
                let want = if ty == DTR { (ESRCH, vec![]) } else { (rb.error, rb.payload.clone()) };
                assert_eq!((again.error, again.payload), want, "resent request of type {ty} answered differently");
                *resends.entry(ty).or_default() += 1;
            }
            ra
        };
        step(CTR, ctr_a.clone().into_bytes(), ctr_b.clone().into_bytes(), &mut a, &mut b, &mut rng);
        step(RESUME, vec![], vec![], &mut a, &mut b, &mut rng);
        for _ in 0..400 {
            match rng.below(10) {
                0..=2 => {
                    let rs: Vec<u64> = (0..rng.range(1, 8)).map(|_| rng.below(N)).collect();
                    step(MARK_REGION, regions_payload(&rs), regions_payload(&rs), &mut a, &mut b, &mut rng);
                    step(FLUSH, vec![], vec![], &mut a, &mut b, &mut rng);
                }
                3 => {
                    let rs: Vec<u64> = (0..rng.range(1, 8)).map(|_| rng.below(N)).collect();
                    step(FLUSH, regions_payload(&rs), regions_payload(&rs), &mut a, &mut b, &mut rng);
                }
                4 | 5 => {
                    let rs: Vec<u64> = (0..rng.range(1, 8)).map(|_| rng.below(N)).collect();
                    step(CLEAR_REGION, regions_payload(&rs), regions_payload(&rs), &mut a, &mut b, &mut rng);
                    step(FLUSH, vec![], vec![], &mut a, &mut b, &mut rng);
                }
                6 | 7 => {
                    let w = step(GET_RESYNC_WORK, vec![], vec![], &mut a, &mut b, &mut rng);
                    if w.u64_at(0) == Some(1) {
                        let mut p = w.u64_at(1).unwrap().to_ne_bytes().to_vec();
                        p.extend_from_slice(&i64::from(rng.percent(80)).to_ne_bytes());
                        step(SET_REGION_SYNC, p.clone(), p, &mut a, &mut b, &mut rng);
                    }
                }
                8 => {
                    step(PRESUSPEND, vec![], vec![], &mut a, &mut b, &mut rng);
                    step(POSTSUSPEND, vec![], vec![], &mut a, &mut b, &mut rng);
                    step(RESUME, vec![], vec![], &mut a, &mut b, &mut rng);
                }
                _ => {
                    // The reconnect CTR form too: same arguments, kept.
                    let mut pa = ctr_a.clone().into_bytes();
                    let mut pb = ctr_b.clone().into_bytes();
                    if rng.one_in(2) {
                        pa.push(0);
                        pb.push(0);
                    }
                    step(CTR, pa, pb, &mut a, &mut b, &mut rng);
                }
            }
        }
        let (sa, sb) = (state(&ka, &mut a), state(&kb, &mut b));
        assert_eq!(sa.0, sb.0, "region states differ");
        assert_eq!(sa.1, sb.1, "sync counts differ");
        step(PRESUSPEND, vec![], vec![], &mut a, &mut b, &mut rng);
        step(POSTSUSPEND, vec![], vec![], &mut a, &mut b, &mut rng);
        let (ba, bb) = (std::fs::read(&fa).unwrap(), std::fs::read(&fb).unwrap());
        assert_eq!(ba, bb, "log files differ after the same workload with resends");
        step(DTR, vec![], vec![], &mut a, &mut b, &mut rng);
        assert_eq!(kb.req(&mut b, GET_SYNC_COUNT, &[]).error, ESRCH, "the log is gone after DTR");
    }
    for ty in [CTR, RESUME, MARK_REGION, CLEAR_REGION, FLUSH, SET_REGION_SYNC, GET_RESYNC_WORK, POSTSUSPEND, DTR] {
        assert!(resends.get(&ty).copied().unwrap_or(0) > 0, "no resend of type {ty} was tried: {resends:?}");
    }
}

#[test]
fn resent_get_resync_work_and_set_region_sync_keep_one_recovery_and_an_exact_count() {
    let mut d = Daemon::spawn(&[]);
    let k = Kernel::new("LVM-work", 1);
    assert_eq!(k.ctr(&mut d, "16384 core 1024").error, 0);
    k.ok(&mut d, RESUME, &[]);
    let first = k.resync_work(&mut d).unwrap();
    // Lost reply, resent three times: still the same region.
    for _ in 0..3 {
        assert_eq!(k.resync_work(&mut d), Some(first));
    }
    for _ in 0..3 {
        assert_eq!(k.set_sync(&mut d, first, true).error, 0);
    }
    assert_eq!(k.sync_count(&mut d), 1, "SET_REGION_SYNC resent: counted once");
    assert_ne!(k.resync_work(&mut d), Some(first), "a finished region is not handed out again");
    // Resent RESUME: no rewind, no re-read.
    k.ok(&mut d, RESUME, &[]);
    assert_eq!(k.sync_count(&mut d), 1);
    assert!(k.in_sync(&mut d, first));
}

#[test]
fn reordered_life_cycle_requests_fail_cleanly_and_recover() {
    let dir = TempDir::new("reorder");
    let f = dir.log_file("log", 1024 + 64);
    let mut d = Daemon::spawn(&[]);
    let k = Kernel::new("LVM-reorder", 2);
    let ctr = format!("65536 disk {} 1024", f.display());
    // RESUME and I/O overtaking their CTR: -ESRCH, nothing created.
    assert_eq!(k.req(&mut d, RESUME, &[]).error, ESRCH);
    assert_eq!(k.mark(&mut d, &[1]).error, ESRCH);
    assert_eq!(k.ctr(&mut d, &ctr).error, 0);
    // MARK overtaking RESUME on a disk log: refused, state untouched
    // (-ESRCH: the kernel takes it for a lost RESUME and reconnects.)
    assert_eq!(k.mark(&mut d, &[1]).error, ESRCH);
    assert_eq!(k.flush(&mut d, &[2]).error, ESRCH);
    assert_eq!(k.req(&mut d, IN_SYNC, &1u64.to_ne_bytes()).error, ESRCH);
    assert!(!k.is_clean(&mut d, 1), "a disk log not yet resumed answers IS_CLEAN = 0");
    k.ok(&mut d, RESUME, &[]);
    assert_eq!(k.mark(&mut d, &[1]).error, 0);
    assert_eq!(k.flush(&mut d, &[]).error, 0);
    assert!(!disk_clean_bit(&f, 1));
    // DTR, then its resend, then requests of the dead log: all -ESRCH.
    k.ok(&mut d, POSTSUSPEND, &[]);
    k.ok(&mut d, DTR, &[]);
    for t in [DTR, RESUME, POSTSUSPEND, MARK_REGION, GET_SYNC_COUNT, STATUS_INFO] {
        assert_eq!(k.req(&mut d, t, &[]).error, ESRCH, "type {t} after DTR");
    }
    // The kernel's reconnect brings it back from the file.
    assert_eq!(k.ctr_reconnect(&mut d, &ctr).error, 0);
    k.ok(&mut d, RESUME, &[]);
    assert!(!k.in_sync(&mut d, 1), "the flushed mark survived DTR + reconnect");
}

/// Replies carry the request's seq, cn seq, luid, uuid and type, whatever
/// order the requests of several logs arrive in.
#[test]
fn pipelined_requests_of_several_logs_are_matched_by_seq() {
    let mut d = Daemon::spawn(&[]);
    let logs: Vec<Kernel> = (0..3).map(|i| Kernel::new("LVM-same-uuid", 0x100 + i)).collect();
    for (i, k) in logs.iter().enumerate() {
        assert_eq!(k.ctr(&mut d, format!("{} core 1024 {}", N * 1024, ["", "sync", "nosync"][i]).trim_end()).error, 0);
        k.ok(&mut d, RESUME, &[]);
    }
    let mut rng = Rng::new(77);
    for _ in 0..50 {
        let mut sent = HashMap::new();
        for _ in 0..rng.range(1, 40) {
            let i = rng.below(3) as usize;
            let k = &logs[i];
            // Seqs as the kernel makes them: unique, not necessarily in order.
            let seq = rng.next_u64() as u32;
            let (ty, p) = match rng.below(4) {
                0 => (IN_SYNC, rng.below(N).to_ne_bytes().to_vec()),
                1 => (GET_SYNC_COUNT, vec![]),
                2 => (GET_REGION_SIZE, vec![]),
                _ => (STATUS_TABLE, vec![]),
            };
            d.send_raw(
                &RequestSpec { luid: k.luid, uuid: &k.uuid, version: 3, seq, request_type: ty, payload: &p }.encode(),
            );
            sent.insert(seq, (i, ty));
        }
        for _ in 0..sent.len() {
            let r: Reply = d.recv();
            let (i, ty) = sent.remove(&r.seq).expect("reply for a request we sent");
            assert_eq!(
                (r.cn_seq, r.luid, &r.uuid[..], r.request_type, r.error),
                (r.seq, logs[i].luid, &logs[i].uuid[..], ty, 0)
            );
            if ty == GET_SYNC_COUNT {
                assert_eq!(r.u64_at(0), Some([0, 0, N][i]), "log {i} answered for another log");
            }
        }
        assert!(!d.reply_pending(0));
    }
}

/// The kernel sends at most 332 payload bytes. Bigger requests are refused
/// with -EINVAL and change nothing; datagrams bigger than the daemon's
/// receive buffer are dropped without a reply, and it keeps serving.
#[test]
fn requests_larger_than_the_kernel_can_send_are_rejected() {
    let mut d = Daemon::spawn(&[]);
    let k = Kernel::new("LVM-big", 3);
    assert_eq!(k.ctr(&mut d, "65536 core 128 nosync").error, 0); // 512 regions
    k.ok(&mut d, RESUME, &[]);
    // 41 regions (328 bytes) is a legal batch.
    let ok41: Vec<u64> = (0..41).collect();
    assert_eq!(k.mark(&mut d, &ok41).error, 0);
    assert_eq!(k.clear(&mut d, &ok41).error, 0);
    for len in [333usize, 336, 400, 1000, 3800] {
        let regions: Vec<u64> = (100..).take(len.div_ceil(8)).collect();
        let mut p = regions_payload(&regions);
        p.truncate(len);
        for t in [MARK_REGION, FLUSH, CLEAR_REGION, CTR, GET_SYNC_COUNT] {
            assert_eq!(k.req(&mut d, t, &p).error, EINVAL, "type {t} with {len} payload bytes");
        }
    }
    let long_ctr = format!("65536 core 128 {}", "x".repeat(330));
    assert_eq!(Kernel::new("LVM-big", 4).ctr(&mut d, &long_ctr).error, EINVAL);
    for r in 100..150 {
        assert!(k.is_clean(&mut d, r), "region {r} changed by a refused request");
    }
    // Past the receive buffer: consistent lengths, but no reply.
    for len in [4000usize, 8000, 60_000] {
        let p = regions_payload(&(100..).take(len / 8).collect::<Vec<u64>>());
        let seq = d.next_seq();
        d.send_raw(
            &RequestSpec { luid: 3, uuid: b"LVM-big", version: 3, seq, request_type: MARK_REGION, payload: &p }
                .encode(),
        );
        // The next request's reply is the next datagram: nothing for the big one.
        let probe = d.next_seq();
        d.send_raw(
            &RequestSpec {
                luid: 3,
                uuid: b"LVM-big",
                version: 3,
                seq: probe,
                request_type: GET_SYNC_COUNT,
                payload: &[],
            }
            .encode(),
        );
        let r = d.recv();
        if r.seq == seq {
            assert_eq!(r.error, EINVAL, "a {len}-byte payload was accepted");
            assert_eq!(d.recv().seq, probe);
        } else {
            assert_eq!((r.seq, r.u64_at(0)), (probe, Some(512)));
        }
    }
    assert!(k.is_clean(&mut d, 100));
    assert_eq!(k.sync_count(&mut d), 512);
}
