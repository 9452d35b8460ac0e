//! Crash tests. `kill -9` of the real binary at random points of a random
//! workload on file-backed disk logs, then what the kernel does after
//! -ESRCH: the reconnect CTR (the table's string with its NUL) and RESUME.
//! The promise checked: no mark acknowledged by a FLUSH (or POSTSUSPEND)
//! reply that was READ is ever lost — its on-disk bit is 0 before the
//! restart's RESUME and the region reads IS_CLEAN = 0 after it — unless a
//! CLEAR of it was sent since. When the restarted daemon has no state files
//! of the old one (a fresh run directory) the region must also read
//! IN_SYNC = 0; with the old run directory the sync state comes back as
//! the old daemon left it, so IN_SYNC is not checked then.
//!
//! And, because a kill -9 leaves the page cache intact, a probe of what a
//! power cut would keep: once a FLUSH is answered, the pages holding its
//! marks are no longer dirty in the page cache (cachestat(2)).
//!
//! Replay: DMULOGD_SEED=0x... DMULOGD_STEPS=<kill points per seed> cargo test --release --test crash kill_9 -- --nocapture
//! (DMULOGD_CRASH_DEBUG=1 prints every request and reply read.)
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]

mod common;
mod support_model;

use common::*;
use dmulogd::wire::RequestSpec;
use std::collections::HashMap;
use std::path::Path;
use std::path::PathBuf;
use support_model::{env_u64, on_tmpfs, page_dirty, regions_payload, seeds, steps, Rng, Trace};

struct CLog {
    k: Kernel,
    file: PathBuf,
    ctr: String,
    n: u64,
    /// `sync`/`nosync` in the table: a RESUME after a plain CTR starts a
    /// new log, so suspend/resume is only done once a reconnect built it.
    fresh_on_resume: bool,
    /// Marks sent to the running daemon, in order: (index, region); an
    /// acknowledgement covers those sent to the same process before it.
    marks: Vec<(u64, u64)>,
    /// Per region: the newest acknowledged mark, and the last CLEAR sent.
    acked_mark: Vec<Option<u64>>,
    last_clear: Vec<Option<u64>>,
    /// Index of the next request (this log's send order).
    sent: u64,
}

impl CLog {
    /// Regions whose mark was acknowledged and not cleared since.
    fn must_be_dirty(&self) -> Vec<u64> {
        (0..self.n)
            .filter(|&r| match (self.acked_mark[r as usize], self.last_clear[r as usize]) {
                (Some(m), c) => c.map_or(true, |c| c < m),
                _ => false,
            })
            .collect()
    }

    /// A FLUSH or POSTSUSPEND at `idx` was answered 0.
    fn ack(&mut self, idx: u64) {
        for &(m, r) in self.marks.iter().filter(|(m, _)| *m <= idx) {
            let a = &mut self.acked_mark[r as usize];
            *a = Some(a.map_or(m, |x| x.max(m)));
        }
    }

    /// The daemon was killed: what it was sent is acknowledged or lost.
    fn new_process(&mut self) {
        self.marks.clear();
    }

    /// Forget marks older than a RESUME that starts a new log.
    fn reset(&mut self) {
        self.marks.clear();
        self.acked_mark.iter_mut().for_each(|m| *m = None);
    }
}

#[derive(Default, Debug)]
struct Totals {
    kill_points: u64,
    requests: u64,
    acked_flushes: u64,
    checked_regions: u64,
}

fn on_disk_bit(path: &std::path::Path, r: u64) -> bool {
    disk_clean_bit(path, r)
}

fn run(seed: u64, kills: u64, totals: &mut Totals) {
    let mut rng = Rng::new(seed);
    let dir = TempDir::new("crash");
    let mut trace = Trace::default();
    let fail = |what: String, trace: &Trace| -> ! {
        panic!(
            "\ncrash: seed {seed:#x}: {what}\nlast events:\n{}replay: DMULOGD_SEED={seed:#x} DMULOGD_STEPS={kills} cargo test --release --test crash kill_9 -- --nocapture\n",
            trace.dump()
        )
    };
    let mut logs: Vec<CLog> = (0..rng.range(1, 3))
        .map(|i| {
            let n = rng.range(8, 400);
            let rs = 1024u64;
            let file = dir.log_file(&format!("log{i}"), 1024 + n.div_ceil(64) * 8 + rng.below(2) * 4096);
            let mode = rng.pick(&["", "", "sync", "nosync"]);
            let ctr = format!("{} disk {} {rs} {mode}", n * rs - rng.below(rs), file.display()).trim_end().to_owned();
            CLog {
                k: Kernel::new(&format!("LVM-crash-{i}"), 0xffff_8880_0000_0000 + (i << 12)),
                file,
                ctr,
                n,
                fresh_on_resume: !mode.is_empty(),
                marks: Vec::new(),
                acked_mark: vec![None; n as usize],
                last_clear: vec![None; n as usize],
                sent: 0,
            }
        })
        .collect();
    let mut first = true;
    let run_dir = TempDir::new("crash-run");
    for kill in 0..kills {
        // /run survives a daemon restart, unless it was not writable or
        // the old daemon's files are gone: both, at random.
        let shared = rng.one_in(2);
        let mut d = if shared { Daemon::spawn_in(run_dir.path(), &[]) } else { Daemon::spawn(&[]) };
        // The kernel's view after the restart: -ESRCH, then CTR + RESUME.
        for l in logs.iter_mut() {
            let must = l.must_be_dirty();
            if !first {
                for &r in &must {
                    if on_disk_bit(&l.file, r) {
                        fail(
                            format!("kill {kill}: {} region {r}: acknowledged mark not on disk after kill -9", l.ctr),
                            &trace,
                        );
                    }
                }
                assert_eq!(l.k.req(&mut d, GET_SYNC_COUNT, &[]).error, ESRCH);
                let r = l.k.ctr_reconnect(&mut d, &l.ctr);
                assert_eq!((r.error, r.payload.len()), (0, 0), "reconnect CTR");
                // The first RESUME after a reconnect loads the device (a
                // live log's state file says so; with no state file, only
                // `sync` starts over, which leaves every region dirty);
                // later ones apply the sync word again, as dm-log.c does,
                // so such logs are never suspended here.
            } else {
                assert_eq!(l.k.ctr(&mut d, &l.ctr).error, 0);
            }
            l.k.ok(&mut d, RESUME, &[]);
            if first && l.fresh_on_resume {
                l.reset();
            }
            // IN_SYNC + IS_CLEAN of every region that must be dirty,
            // pipelined 32 at a time (the socketpair buffers ~160 each way).
            let checks: Vec<(u32, u64)> = must
                .iter()
                .flat_map(|&r| if shared { vec![(IS_CLEAN, r)] } else { vec![(IN_SYNC, r), (IS_CLEAN, r)] })
                .collect();
            for chunk in checks.chunks(32) {
                let mut want = HashMap::new();
                for &(t, r) in chunk {
                    let seq = d.next_seq();
                    d.send_raw(
                        &RequestSpec {
                            luid: l.k.luid,
                            uuid: &l.k.uuid,
                            version: 3,
                            seq,
                            request_type: t,
                            payload: &r.to_ne_bytes(),
                        }
                        .encode(),
                    );
                    want.insert(seq, (t, r));
                }
                for _ in 0..want.len() {
                    let rep = d.recv();
                    let (t, r) = want.remove(&rep.seq).expect("reply to a check");
                    if rep.error != 0 || rep.u64_at(0) != Some(0) {
                        fail(format!("kill {kill}: {} region {r}: acknowledged mark lost after restart ({} = {:?}, error {})", l.ctr, if t == IN_SYNC { "IN_SYNC" } else { "IS_CLEAN" }, rep.u64_at(0), rep.error), &trace);
                    }
                    totals.checked_regions += 1;
                }
            }
            trace.push(format!("kill {kill}: {} reconnected, {} acknowledged marks checked", l.ctr, must.len()));
        }
        first = false;
        // A burst of the workload, sent without waiting.
        // At most ~40 datagrams in flight each way: the socketpair's send
        // buffers would fill and block both ends.
        let burst = rng.range(1, 36);
        let mut pending: HashMap<u32, (usize, u32, u64)> = HashMap::new(); // seq -> (log, type, index)
        let mut order = Vec::new();
        for _ in 0..burst {
            let li = rng.below(logs.len() as u64) as usize;
            let l = &mut logs[li];
            let n = l.n;
            let batch = |rng: &mut Rng| (0..rng.range(1, 32)).map(|_| rng.below(n)).collect::<Vec<u64>>();
            let mut suspend = false;
            let (t, p, marks, clears): (u32, Vec<u8>, Vec<u64>, Vec<u64>) = match rng.below(20) {
                0..=5 => {
                    let b = batch(&mut rng);
                    (MARK_REGION, regions_payload(&b), b, vec![])
                }
                6..=9 => (FLUSH, vec![], vec![], vec![]),
                10..=11 => {
                    let b = batch(&mut rng);
                    (FLUSH, regions_payload(&b), b, vec![])
                }
                12..=15 => {
                    let b = batch(&mut rng);
                    (CLEAR_REGION, regions_payload(&b), vec![], b)
                }
                16 => (GET_RESYNC_WORK, vec![], vec![], vec![]),
                17 => {
                    let mut p = rng.below(n).to_ne_bytes().to_vec();
                    p.extend_from_slice(&1i64.to_ne_bytes());
                    (SET_REGION_SYNC, p, vec![], vec![])
                }
                18 if !l.fresh_on_resume => {
                    suspend = true;
                    (POSTSUSPEND, vec![], vec![], vec![])
                }
                _ => (IN_SYNC, rng.below(n).to_ne_bytes().to_vec(), vec![], vec![]),
            };
            let idx = l.sent;
            l.sent += 1;
            for &r in &marks {
                l.marks.push((idx, r));
            }
            for &r in &clears {
                l.last_clear[r as usize] = Some(idx);
            }
            let seq = d.next_seq();
            d.send_raw(
                &RequestSpec { luid: l.k.luid, uuid: &l.k.uuid, version: 3, seq, request_type: t, payload: &p }
                    .encode(),
            );
            pending.insert(seq, (li, t, idx));
            order.push(seq);
            if std::env::var_os("DMULOGD_CRASH_DEBUG").is_some() {
                eprintln!("kill {kill}: log{li} seq {seq} idx {idx} type {t} marks {marks:?} clears {clears:?}");
            }
            if suspend {
                let seq = d.next_seq();
                l.sent += 1;
                d.send_raw(
                    &RequestSpec {
                        luid: l.k.luid,
                        uuid: &l.k.uuid,
                        version: 3,
                        seq,
                        request_type: RESUME,
                        payload: &[],
                    }
                    .encode(),
                );
                pending.insert(seq, (li, RESUME, l.sent - 1));
            }
            totals.requests += 1;
        }
        // Read some replies; a FLUSH or POSTSUSPEND answered 0 acknowledges
        // every mark sent before it.
        let read = match rng.below(4) {
            0 => 0,
            1 => pending.len(),
            _ => rng.below(pending.len() as u64 + 1) as usize,
        };
        for _ in 0..read {
            let rep = d.recv();
            let (li, t, idx) = pending.remove(&rep.seq).expect("reply to a request of the burst");
            if rep.error != 0 {
                fail(format!("kill {kill}: request type {t} of a valid workload failed: {rep:?}"), &trace);
            }
            if std::env::var_os("DMULOGD_CRASH_DEBUG").is_some() {
                eprintln!("kill {kill}: read reply seq {} log{li} type {t} idx {idx}", rep.seq);
            }
            if t == FLUSH || t == POSTSUSPEND {
                logs[li].ack(idx);
                totals.acked_flushes += 1;
            }
        }
        trace.push(format!("kill {kill}: sent {burst} requests, read {read} replies, killing"));
        // Kill at a random moment: now, after a short spin, or with more
        // requests on the way.
        match rng.below(3) {
            0 => {}
            1 => {
                let until = std::time::Instant::now() + std::time::Duration::from_micros(rng.below(300));
                while std::time::Instant::now() < until {
                    std::hint::spin_loop();
                }
            }
            _ => {
                for _ in 0..rng.range(1, 8) {
                    let li = rng.below(logs.len() as u64) as usize;
                    let l = &mut logs[li];
                    let r = rng.below(l.n);
                    let idx = l.sent;
                    l.sent += 1;
                    l.marks.push((idx, r));
                    let seq = d.next_seq();
                    d.send_raw(
                        &RequestSpec {
                            luid: l.k.luid,
                            uuid: &l.k.uuid,
                            version: 3,
                            seq,
                            request_type: FLUSH,
                            payload: &regions_payload(&[r]),
                        }
                        .encode(),
                    );
                }
            }
        }
        d.kill9();
        logs.iter_mut().for_each(CLog::new_process);
        totals.kill_points += 1;
    }
}

#[test]
fn kill_9_at_random_points_never_loses_an_acknowledged_mark() {
    let start = std::time::Instant::now();
    let mut totals = Totals::default();
    let kills = steps(400);
    for seed in seeds(31, 3) {
        run(seed, kills, &mut totals);
    }
    eprintln!("crash: {totals:?} in {:.1?}", start.elapsed());
    assert!(totals.checked_regions > 0 && totals.acked_flushes > 0, "{totals:?}");
}

/// What a power cut keeps: a FLUSH reply means the pages holding the marks
/// it covers have been written and flushed (not dirty, not under
/// writeback in the file's page cache). Marks spread over up to 100 bitmap
/// pages, past the 64 pages dmulogd tracks one by one, plain and
/// integrated flushes, clears between. The probe is proven able to see a
/// dirty page on this file system first (the test dirties one itself); a
/// file system where it cannot (tmpfs) fails the test instead of skipping
/// it: the log file lives under target/, not in a tmpfs /tmp.
#[test]
fn flush_reply_means_the_marked_pages_are_written_back() {
    let dir = TempDir::new_in(Path::new(env!("CARGO_TARGET_TMPDIR")), "durable");
    assert!(
        !on_tmpfs(dir.path()),
        "{} is tmpfs, whose pages are never written back: the probe cannot work",
        dir.path().display()
    );
    const PAGES: u64 = 100;
    let f = dir.log_file("log", 1024 + PAGES * 4096);
    let n = PAGES * 4096 * 8;
    // Calibration: a page this test dirties must read as dirty.
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&f).unwrap();
        file.write_all_at(&[0xff], 1024 + 5 * 4096).unwrap();
        assert_eq!(page_dirty(&file, 1024 + 5 * 4096), Some(true), "the page-cache probe cannot see a dirty page here");
        file.sync_all().unwrap();
        assert_eq!(page_dirty(&file, 1024 + 5 * 4096), Some(false), "the page-cache probe calls a written page dirty");
    }
    let mut d = Daemon::spawn(&[]);
    let k = Kernel::new("LVM-durable", 1);
    assert_eq!(k.ctr(&mut d, &format!("{} disk {} 2 nosync", n * 2, f.display())).error, 0);
    k.ok(&mut d, RESUME, &[]);
    let file = std::fs::File::open(&f).unwrap();
    let page_of = |r: u64| 1024 + r / 8;
    let mut rng = Rng::new(env_u64("DMULOGD_SEED").unwrap_or(41));
    let mut dirty_regions = std::collections::BTreeSet::new();
    let mut probes = 0u64;
    for round in 0..steps(40) {
        // Regions that are clean now, on distinct pages.
        let want_pages = if rng.one_in(3) { rng.range(65, PAGES) } else { rng.range(1, 10) };
        let mut marks = Vec::new();
        let mut pages = std::collections::BTreeSet::new();
        while (marks.len() as u64) < want_pages {
            let r = rng.below(n);
            if !dirty_regions.contains(&r) && pages.insert(page_of(r) / 4096) {
                marks.push(r);
            }
        }
        let integrated = rng.one_in(3);
        if !integrated {
            for c in marks.chunks(32) {
                assert_eq!(k.mark(&mut d, c).error, 0);
            }
        }
        // Clears of earlier marks, anywhere.
        let old: Vec<u64> = dirty_regions.iter().copied().filter(|_| rng.one_in(3)).take(32).collect();
        if !old.is_empty() {
            assert_eq!(k.clear(&mut d, &old).error, 0);
            old.iter().for_each(|r| {
                dirty_regions.remove(r);
            });
        }
        if integrated {
            for c in marks.chunks(32) {
                assert_eq!(k.flush(&mut d, c).error, 0);
            }
        } else {
            assert_eq!(k.flush(&mut d, &[]).error, 0);
        }
        for &r in &marks {
            probes += 1;
            assert_eq!(
                page_dirty(&file, page_of(r)),
                Some(false),
                "round {round}: FLUSH answered, but the page of marked region {r} (file offset {}) is still dirty: the mark is not durable ({} pages marked)",
                page_of(r),
                marks.len()
            );
            assert!(
                !disk_clean_bit(&f, r),
                "round {round}: FLUSH answered, but marked region {r} is clean in the file"
            );
            dirty_regions.insert(r);
        }
    }
    eprintln!("durability: {probes} marked pages probed clean after FLUSH");
}

/// A table destroyed while its daemon was restarting: the DTR reaches the
/// new daemon before any reconnect and gets -ESRCH (the kernel ignores a
/// DTR's error). The old daemon's state files for that log must not stay
/// in <run-dir>/state for ever.
///
/// Regression: `Registry::remove()` used to return UnknownLog before it
/// reached `state::remove()`, so the files of every log destroyed across a
/// daemon restart leaked on /run until reboot.
#[test]
fn dtr_after_a_restart_removes_the_old_daemons_state_files() {
    use dmulogd::state::{name, Kind};
    let run = TempDir::new("leak-run");
    let dir = TempDir::new("leak");
    let f = dir.log_file("log", 1024 + 64);
    let core = Kernel::new("LVM-leak-core", 0xffff_8880_0000_1000);
    let disk = Kernel::new("LVM-leak-disk", 0xffff_8880_0000_2000);
    let mut d = Daemon::spawn_in(run.path(), &[]);
    assert_eq!(core.ctr(&mut d, "65536 core 1024").error, 0);
    assert_eq!(disk.ctr(&mut d, &format!("65536 disk {} 1024", f.display())).error, 0);
    core.ok(&mut d, RESUME, &[]);
    disk.ok(&mut d, RESUME, &[]);
    let files = |k: &Kernel| {
        [Kind::Sync, Kind::Clean]
            .into_iter()
            .map(|kind| run.path().join("state").join(name(&k.uuid, k.luid, kind)))
            .filter(|p| p.exists())
            .collect::<Vec<_>>()
    };
    assert_eq!(files(&core).len(), 2, "test premise: a core log keeps sync and clean state files");
    assert_eq!(files(&disk).len(), 1, "test premise: a disk log keeps a sync state file");
    d.kill9();
    let mut d = Daemon::spawn_in(run.path(), &[]);
    for k in [&core, &disk] {
        assert_eq!(k.req(&mut d, DTR, &[]).error, ESRCH);
    }
    let left: Vec<_> = files(&core).into_iter().chain(files(&disk)).collect();
    assert!(left.is_empty(), "state files of destroyed logs left behind: {left:?}");
}
