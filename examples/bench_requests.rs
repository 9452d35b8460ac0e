//! Benchmark 1 — the request path without a kernel.
//!
//! The real dmulogd binary (target/static/dmulogd) serves one end of a
//! SOCK_SEQPACKET socketpair (`--transport-fd`); this driver plays the
//! kernel on the other end with kernel-shaped datagrams (`wire::RequestSpec`),
//! one request outstanding at a time (the kernel serialises requests per
//! log) and, for the transport limit, 32 in flight. The baseline is
//! examples/echo_responder.rs over the same kind of socketpair, measured in
//! the same run, interleaved with the daemon's cases so drift hits both.
//!
//! Cases, for a core log and a disk log backed by a file on tmpfs
//! (2^16 regions each):
//!   IN_SYNC, IS_CLEAN                     1 request per op
//!   MARK+FLUSH                            2 requests (the write's first half)
//!   FLUSH with regions (v3 integrated)    1 request
//!   CLEAR+FLUSH                           2 requests (the write's second half)
//!   GET_RESYNC_WORK+SET_REGION_SYNC       2 requests (on a `sync` log: work
//!                                         always available; re-armed by
//!                                         POSTSUSPEND+RESUME when exhausted)
//!   IN_SYNC, 32 in flight                 1 request
//! Regions are drawn at random over the bitmap. Compound ops time only
//! their own requests: the steps that re-arm a region (e.g. CLEAR+FLUSH
//! after a timed MARK+FLUSH) run between the timed parts.
//!
//! Output: a table on stdout and in $BENCH_OUT/1-requests.md; target rows
//! in $BENCH_OUT/targets.md.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // figures and byte offsets, all small

mod benchkit;
use benchkit::*;
use std::time::{Duration, Instant};

const REGIONS: u64 = 1 << 16;
const REGION_SIZE: u64 = 1024;
const DEPTH: usize = 32;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    InSync,
    IsClean,
    MarkFlush,
    IntegratedFlush,
    ClearFlush,
    Resync,
    Pipelined,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::InSync => "IN_SYNC",
            Kind::IsClean => "IS_CLEAN",
            Kind::MarkFlush => "MARK+FLUSH",
            Kind::IntegratedFlush => "FLUSH with region (v3 integrated)",
            Kind::ClearFlush => "CLEAR+FLUSH",
            Kind::Resync => "GET_RESYNC_WORK+SET_REGION_SYNC",
            Kind::Pipelined => "IN_SYNC, 32 in flight",
        }
    }
    fn requests(self) -> u32 {
        match self {
            Kind::MarkFlush | Kind::ClearFlush | Kind::Resync => 2,
            _ => 1,
        }
    }
}

/// Which server a case talks to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    Echo,
    Daemon,
}

struct Case {
    who: Who,
    log_name: &'static str,
    kind: Kind,
    /// The log the steady-state requests go to.
    log: LogId,
    /// A `sync` log for the resync case.
    resync_log: LogId,
    rates: Vec<f64>,
    /// Per run: requests/s ÷ the paired echo measurement's requests/s.
    ratios: Vec<f64>,
}

/// Prepared datagrams for one case.
struct Dgrams {
    one: Dgram,
    mark: Dgram,
    clear: Dgram,
    flush: Dgram,
    iflush: Dgram,
    work: Dgram,
    set: Dgram,
    postsuspend: Dgram,
    resume: Dgram,
}

impl Dgrams {
    fn new(c: &Case) -> Dgrams {
        let t = match c.kind {
            Kind::IsClean => IS_CLEAN,
            _ => IN_SYNC,
        };
        Dgrams {
            one: Dgram::regions(&c.log, t, 1),
            mark: Dgram::regions(&c.log, MARK_REGION, 1),
            clear: Dgram::regions(&c.log, CLEAR_REGION, 1),
            flush: Dgram::new(&c.log, FLUSH, &[]),
            iflush: Dgram::regions(&c.log, FLUSH, 1),
            work: Dgram::new(&c.resync_log, GET_RESYNC_WORK, &[]),
            set: Dgram::regions(&c.resync_log, SET_REGION_SYNC, 2),
            postsuspend: Dgram::new(&c.resync_log, POSTSUSPEND, &[]),
            resume: Dgram::new(&c.resync_log, RESUME, &[]),
        }
    }
}

/// One measurement of `dur`: ops/s.
fn measure_once(srv: &mut Server, c: &Case, d: &mut Dgrams, rng: &mut Rng, dur: Duration) -> f64 {
    let mut cl = Client::new(srv);
    match c.kind {
        Kind::InSync | Kind::IsClean => rate(dur, || {
            d.one.set_u64(0, rng.below(REGIONS));
            cl.call(&mut d.one, true);
            None
        }),
        Kind::MarkFlush => rate(dur, || {
            let r = rng.below(REGIONS);
            d.mark.set_u64(0, r);
            d.clear.set_u64(0, r);
            let t = Instant::now();
            cl.call(&mut d.mark, true);
            cl.call(&mut d.flush, true);
            let spent = t.elapsed();
            cl.call(&mut d.clear, true);
            cl.call(&mut d.flush, true);
            Some(spent)
        }),
        Kind::IntegratedFlush => rate(dur, || {
            let r = rng.below(REGIONS);
            d.iflush.set_u64(0, r);
            d.clear.set_u64(0, r);
            let t = Instant::now();
            cl.call(&mut d.iflush, true);
            let spent = t.elapsed();
            cl.call(&mut d.clear, true);
            cl.call(&mut d.flush, true);
            Some(spent)
        }),
        Kind::ClearFlush => rate(dur, || {
            let r = rng.below(REGIONS);
            d.mark.set_u64(0, r);
            d.clear.set_u64(0, r);
            cl.call(&mut d.mark, true);
            cl.call(&mut d.flush, true);
            let t = Instant::now();
            cl.call(&mut d.clear, true);
            cl.call(&mut d.flush, true);
            Some(t.elapsed())
        }),
        Kind::Resync => rate(dur, || {
            let t = Instant::now();
            cl.call(&mut d.work, true);
            let found = c.who == Who::Echo || reply_u64(&cl.buf, 0) == 1;
            if found {
                let r = if c.who == Who::Echo { 0 } else { reply_u64(&cl.buf, 1) };
                d.set.set_u64(0, r);
                d.set.set_u64(1, 0); // still out of sync: work stays available
                cl.call(&mut d.set, true);
                Some(t.elapsed())
            } else {
                // Exhausted: re-arm (a suspend/resume cycle rewinds the
                // cursor) and count this op as if it had been a pair.
                let spent = t.elapsed() * 2;
                cl.call(&mut d.postsuspend, true);
                cl.call(&mut d.resume, true);
                Some(spent)
            }
        }),
        Kind::Pipelined => {
            // Prime DEPTH requests, then one new request per reply.
            let mut seqs = std::collections::VecDeque::with_capacity(DEPTH);
            for _ in 0..DEPTH {
                let s = cl.srv.next_seq();
                d.one.set_seq(s);
                d.one.set_u64(0, rng.below(REGIONS));
                cl.srv.send(&d.one.bytes);
                seqs.push_back(s);
            }
            let r = rate(dur, || {
                cl.srv.recv_into(&mut cl.buf);
                let want = seqs.pop_front().unwrap();
                assert_eq!(reply_seq(&cl.buf), want, "pipelined reply out of order");
                assert_eq!(reply_error(&cl.buf), 0);
                let s = cl.srv.next_seq();
                d.one.set_seq(s);
                d.one.set_u64(0, rng.below(REGIONS));
                cl.srv.send(&d.one.bytes);
                seqs.push_back(s);
                None
            });
            while let Some(want) = seqs.pop_front() {
                cl.srv.recv_into(&mut cl.buf);
                assert_eq!(reply_seq(&cl.buf), want);
            }
            r
        }
    }
}

fn setup_log(d: &mut Server, log: &LogId, ctr: &str) {
    d.ok(log, CTR, ctr.as_bytes());
    d.ok(log, RESUME, &[]);
}

fn main() {
    let runs: usize = arg("--runs", "BENCH_RUNS", "7").parse().unwrap_or(7);
    let dur = Duration::from_secs_f64(0.2 * scale());
    let tmp = match tmpfs_dir() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bench_requests: {e}; set BENCH_TMPFS to a tmpfs directory");
            std::process::exit(1);
        }
    };
    let scratch = TempDir::try_new_in(&tmp, "bench-requests").expect("scratch directory on tmpfs");
    let bin = dmulogd_bin();
    if !bin.exists() {
        eprintln!("bench_requests: {} is missing: run `make static` first", bin.display());
        std::process::exit(1);
    }
    let echo_path = echo_bin();
    if !echo_path.exists() {
        eprintln!("bench_requests: {} is missing: run `cargo build --release --examples`", echo_path.display());
        std::process::exit(1);
    }

    let pinning = pin_cpu();
    let mut echo = Server::spawn(&echo_path, &[]);
    let mut daemon = Server::spawn(&bin, &[]);
    let len = REGIONS * REGION_SIZE;
    let core = LogId::new("BENCH-core", 0xffff_8880_0000_1000);
    let core_sync = LogId::new("BENCH-core-sync", 0xffff_8880_0000_2000);
    let disk = LogId::new("BENCH-disk", 0xffff_8880_0000_3000);
    let disk_sync = LogId::new("BENCH-disk-sync", 0xffff_8880_0000_4000);
    let f_disk = scratch.log_file("disk", log_bytes(REGIONS));
    let f_disk_sync = scratch.log_file("disk-sync", log_bytes(REGIONS));
    setup_log(&mut daemon, &core, &format!("{len} core {REGION_SIZE} nosync"));
    setup_log(&mut daemon, &core_sync, &format!("{len} core {REGION_SIZE} sync"));
    setup_log(&mut daemon, &disk, &format!("{len} disk {} {REGION_SIZE} nosync", f_disk.display()));
    setup_log(&mut daemon, &disk_sync, &format!("{len} disk {} {REGION_SIZE} sync", f_disk_sync.display()));
    // Sanity: the answers are the ones a kernel expects.
    let r = daemon.ok(&core, IN_SYNC, &5u64.to_ne_bytes());
    assert_eq!(r.u64_at(0), Some(1), "nosync core log: region in sync");
    let r = daemon.ok(&disk_sync, GET_RESYNC_WORK, &[]);
    assert_eq!(r.u64_at(0), Some(1), "sync disk log: resync work available");
    daemon.ok(&disk_sync, SET_REGION_SYNC, &regions_payload(&[r.u64_at(1).unwrap(), 0]));

    let mut cases: Vec<Case> = Vec::new();
    let mk = |who, log_name, kind, log: &LogId, resync_log: &LogId| Case {
        who,
        log_name,
        kind,
        log: log.clone(),
        resync_log: resync_log.clone(),
        rates: Vec::new(),
        ratios: Vec::new(),
    };
    // The two echo cases are measured right before every daemon case of
    // the same depth, so each daemon figure has a baseline taken seconds,
    // not minutes, apart: the machine may be shared, and its load drifts.
    let mut echo1 = mk(Who::Echo, "echo", Kind::InSync, &core, &core_sync);
    let mut echo32 = mk(Who::Echo, "echo", Kind::Pipelined, &core, &core_sync);
    for (name, log, sync_log) in [("core", &core, &core_sync), ("disk (tmpfs file)", &disk, &disk_sync)] {
        for kind in [
            Kind::InSync,
            Kind::IsClean,
            Kind::MarkFlush,
            Kind::IntegratedFlush,
            Kind::ClearFlush,
            Kind::Resync,
            Kind::Pipelined,
        ] {
            cases.push(mk(Who::Daemon, name, kind, log, sync_log));
        }
    }

    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut dgrams: Vec<Dgrams> = cases.iter().map(Dgrams::new).collect();
    let mut d_echo1 = Dgrams::new(&echo1);
    let mut d_echo32 = Dgrams::new(&echo32);
    // Warm-up, then `runs` rounds; each round measures every case once,
    // each daemon case paired with an echo measurement just before it.
    measure_once(&mut echo, &echo1, &mut d_echo1, &mut rng, dur / 4);
    measure_once(&mut echo, &echo32, &mut d_echo32, &mut rng, dur / 4);
    for (c, d) in cases.iter().zip(dgrams.iter_mut()) {
        measure_once(&mut daemon, c, d, &mut rng, dur / 4);
    }
    for round in 0..runs {
        for (c, d) in cases.iter_mut().zip(dgrams.iter_mut()) {
            let (e, de) =
                if c.kind == Kind::Pipelined { (&mut echo32, &mut d_echo32) } else { (&mut echo1, &mut d_echo1) };
            let base = measure_once(&mut echo, e, de, &mut rng, dur);
            e.rates.push(base);
            let r = measure_once(&mut daemon, c, d, &mut rng, dur);
            c.rates.push(r);
            c.ratios.push(r * f64::from(c.kind.requests()) / base);
        }
        eprintln!("bench_requests: round {}/{runs} done", round + 1);
    }
    let mem = daemon.memory();
    echo.stop();
    daemon.stop();

    let mut f = Fragment::new("1-requests.md");
    f.line("## 1. Request path, no kernel (socketpair)");
    f.line("");
    f.line(format!(
        "dmulogd (`{}`) on a SOCK_SEQPACKET socketpair, driven with kernel-shaped datagrams; logs of {REGIONS} regions, \
         disk log files on {} ({}). Median of {runs} runs of {:.2} s each after a warm-up. \
         Baseline: `echo_responder` (blocking recv, send; no parsing) on the same kind of socketpair, \
         measured for {:.2} s right before every daemon run at the same depth (1 or 32 in flight). \
         *vs echo* = median over the runs of (daemon requests/s ÷ the paired echo requests/s). Scheduling: {pinning}.",
        bin.display(),
        tmp.display(),
        fs_type(&tmp).1,
        dur.as_secs_f64(),
        dur.as_secs_f64(),
    ));
    f.line("");
    f.line("| log | operation | req/op | ops/s (median) | requests/s | µs/op | vs echo | runs min–max ops/s |");
    f.line("|---|---|---:|---:|---:|---:|---:|---|");
    for e in [&echo1, &echo32] {
        let m = median(&e.rates);
        f.line(format!(
            "| echo (baseline) | {} | 1 | {} | {} | {:.1} | 1.00x | {}–{} |",
            e.kind.name(),
            thousands(m),
            thousands(m),
            1e6 / m,
            thousands(min(&e.rates)),
            thousands(max(&e.rates))
        ));
    }
    for c in &cases {
        let m = median(&c.rates);
        let reqs = m * f64::from(c.kind.requests());
        f.line(format!(
            "| {} | {} | {} | {} | {} | {:.1} | {:.2}x | {}–{} |",
            c.log_name,
            c.kind.name(),
            c.kind.requests(),
            thousands(m),
            thousands(reqs),
            1e6 / m,
            median(&c.ratios),
            thousands(min(&c.rates)),
            thousands(max(&c.rates))
        ));
    }
    f.line("");
    f.line(format!(
        "Daemon memory after the run: VmRSS {} KiB (anon {} KiB, file {} KiB, shmem {} KiB).",
        mem.rss, mem.anon, mem.file, mem.shmem
    ));
    f.line("");
    f.save();

    // Ratios are of requests/s. A MARK+FLUSH op is two round trips, so its
    // ops/s can never pass 0.5x of the echo's requests/s even for a daemon
    // that costs nothing: the 0.5x bar is read as requests/s (the flush
    // may cost the daemon as much as one more round trip), and the ops/s
    // ratio (half of it) is shown alongside.
    let find = |log: &str, k: Kind| {
        cases.iter().find(|c| c.log_name.starts_with(log) && c.kind == k).map(|c| median(&c.ratios)).unwrap()
    };
    target("IN_SYNC (core log) vs echo baseline", find("core", Kind::InSync), 0.8, true, "x");
    target("IN_SYNC (disk log, tmpfs file) vs echo baseline", find("disk", Kind::InSync), 0.8, true, "x");
    let mf = find("disk", Kind::MarkFlush);
    target(
        &format!("MARK+FLUSH (disk log, tmpfs file), requests/s vs echo (ops/s vs echo: {:.2}x)", mf / 2.0),
        mf,
        0.5,
        true,
        "x",
    );
}
