//! Benchmark 2 — flush cost against bitmap size.
//!
//! File-backed disk logs of 2^10, 2^16, 2^20 and 2^24 regions, on tmpfs
//! and on a disk file system (/var/tmp, or BENCH_DISKDIR) where
//! msync(MS_SYNC) does real writeback. One op is a MARK of one region + a
//! FLUSH (two requests, timed together): what every mirror write waits for
//! before it starts. Only touched pages should be synced, so the cost must
//! not grow with the bitmap.
//!
//! Two region patterns:
//!   random  — the region is drawn at random over the whole bitmap and is
//!             cleared again (CLEAR + FLUSH, untimed) after the timed part:
//!             the kernel's write cycle, each write in a new place;
//!   same    — always region 0 (re-cleared the same way): one page, the
//!             cost of a single-page sync as the file grows.
//! The cases take turns op by op (a shared disk's load drifts by the
//! second); the latency figures pool every op of a case.
//!
//! Output: $BENCH_OUT/2-flush.md and rows in $BENCH_OUT/targets.md.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // figures and byte offsets, all small

mod benchkit;
use benchkit::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SIZES: [u32; 4] = [10, 16, 20, 24];
const REGION_SIZE: u64 = 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pattern {
    Random,
    Same,
}

struct Case {
    bits: u32,
    pattern: Pattern,
    log: LogId,
    lat_us: Vec<f64>,
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if s.is_empty() {
        return f64::NAN;
    }
    let i = ((s.len() as f64 - 1.0) * p).round() as usize;
    s[i]
}

/// Prepared datagrams of one case.
struct Dgrams {
    mark: Dgram,
    clear: Dgram,
    flush: Dgram,
}

/// One MARK+FLUSH op (timed) on `c`, then its CLEAR+FLUSH (untimed).
fn one_op(cl: &mut Client<'_>, c: &mut Case, d: &mut Dgrams, rng: &mut Rng) {
    let r = match c.pattern {
        Pattern::Random => rng.below(1u64 << c.bits),
        Pattern::Same => 0,
    };
    d.mark.set_u64(0, r);
    d.clear.set_u64(0, r);
    let t = Instant::now();
    cl.call(&mut d.mark, true);
    cl.call(&mut d.flush, true);
    c.lat_us.push(t.elapsed().as_secs_f64() * 1e6);
    cl.call(&mut d.clear, true);
    cl.call(&mut d.flush, true);
}

/// Rounds of one op per case, in turn, until `budget` is spent or every
/// case has `max_ops`: each size sees the same conditions (a shared disk's
/// load drifts by the second), so the ratios between sizes are fair.
fn run(srv: &mut Server, cases: &mut [Case], rng: &mut Rng, budget: Duration, max_ops: usize) {
    let mut ds: Vec<Dgrams> = cases
        .iter()
        .map(|c| Dgrams {
            mark: Dgram::regions(&c.log, MARK_REGION, 1),
            clear: Dgram::regions(&c.log, CLEAR_REGION, 1),
            flush: Dgram::new(&c.log, FLUSH, &[]),
        })
        .collect();
    let mut cl = Client::new(srv);
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < budget && n < max_ops {
        for (c, d) in cases.iter_mut().zip(ds.iter_mut()) {
            one_op(&mut cl, c, d, rng);
        }
        n += 1;
    }
}

struct FsResult {
    dir: PathBuf,
    fs: String,
    cases: Vec<Case>,
}

fn bench_fs(dir: &Path, runs: usize, dur: Duration, max_ops: usize) -> Result<FsResult, String> {
    let scratch = TempDir::try_new_in(dir, "bench-flush").map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut d = Server::spawn(&dmulogd_bin(), &[]);
    let mut cases = Vec::new();
    // One log per case: a random-region log's lazily cleared pages must
    // not be synced by a same-region op.
    for bits in SIZES {
        for pattern in [Pattern::Random, Pattern::Same] {
            let regions = 1u64 << bits;
            let tag = if pattern == Pattern::Random { "random" } else { "same" };
            let file = scratch.log_file(&format!("log-2^{bits}-{tag}"), log_bytes(regions));
            let log = LogId::new(
                &format!("BENCH-flush-{bits}-{tag}"),
                0xffff_8880_0010_0000 + u64::from(bits) * 2 + u64::from(pattern == Pattern::Same),
            );
            let ctr = format!("{} disk {} {REGION_SIZE} nosync", regions * REGION_SIZE, file.display());
            let r = d.request(&log, CTR, ctr.as_bytes());
            if r.error != 0 {
                return Err(format!("CTR {ctr:?} failed with {}", r.error));
            }
            let r = d.request(&log, RESUME, &[]);
            if r.error != 0 {
                return Err(format!("RESUME of the 2^{bits} log failed with {}", r.error));
            }
            cases.push(Case { bits, pattern, log, lat_us: Vec::new() });
        }
    }
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    let budget = dur * u32::try_from(runs * cases.len()).unwrap_or(1);
    run(&mut d, &mut cases, &mut rng, budget / 10, max_ops / 10);
    for c in cases.iter_mut() {
        c.lat_us.clear();
    }
    run(&mut d, &mut cases, &mut rng, budget, max_ops);
    d.stop();
    Ok(FsResult { dir: dir.to_path_buf(), fs: fs_type(dir).1, cases })
}

fn main() {
    let runs: usize = arg("--runs", "BENCH_RUNS", "5").parse().unwrap_or(5);
    let dur = Duration::from_secs_f64(0.25 * scale());
    let pinning = pin_cpu();
    let bin = dmulogd_bin();
    if !bin.exists() {
        eprintln!("bench_flush: {} is missing: run `make static` first", bin.display());
        std::process::exit(1);
    }
    let mut f = Fragment::new("2-flush.md");
    f.line("## 2. Flush cost against bitmap size");
    f.line("");
    f.line(format!(
        "One op = MARK of one region + FLUSH (two requests, timed together) on a file-backed disk log; the region is \
         cleared again (CLEAR + FLUSH, untimed) before the next op. *random*: a new random region each op (the \
         kernel's write cycle); *same*: always region 0. The eight cases take turns op by op (a round = one op of \
         each), for up to {:.0} s per file system, so every size sees the same conditions. Scheduling: {pinning}.",
        dur.as_secs_f64() * (runs * 8) as f64
    ));
    f.line("");

    let tmpfs = tmpfs_dir();
    let disk_dir = PathBuf::from(std::env::var("BENCH_DISKDIR").unwrap_or_else(|_| "/var/tmp".into()));
    let mut targets: Vec<(String, f64)> = Vec::new();
    let mut dirs: Vec<(String, Result<PathBuf, String>)> = vec![("tmpfs".into(), tmpfs)];
    let (m, name) = fs_type(&disk_dir);
    dirs.push((
        "disk".into(),
        if m == TMPFS_MAGIC || m == 0 {
            Err(format!("{} is {name}: no disk file system to write back to", disk_dir.display()))
        } else {
            Ok(disk_dir.clone())
        },
    ));
    for (label, dir) in dirs {
        let dir = match dir {
            Ok(d) => d,
            Err(e) => {
                f.line(format!("**{label}: skipped** — {e}."));
                f.line("");
                target_skipped(&format!("flush cost 2^24 / 2^10 regions ({label})"), &e);
                continue;
            }
        };
        eprintln!("bench_flush: {label} ({})", dir.display());
        // Enough ops per case for stable medians; time-bounded anyway.
        let max_ops = if label == "disk" { 2000 } else { usize::MAX };
        let res = match bench_fs(&dir, runs, dur, max_ops) {
            Ok(r) => r,
            Err(e) => {
                f.line(format!("**{label}: failed** — {e}."));
                f.line("");
                target_skipped(&format!("flush cost 2^24 / 2^10 regions ({label})"), &e);
                continue;
            }
        };
        f.line(format!("### {label}: `{}` — {}", res.dir.display(), res.fs));
        f.line("");
        f.line("| regions | bitmap | pattern | ops | median µs/op | p90 µs | p99 µs | ops/s | vs 2^10 (median) |");
        f.line("|---:|---:|---|---:|---:|---:|---:|---:|---:|");
        for pattern in [Pattern::Random, Pattern::Same] {
            let base = res
                .cases
                .iter()
                .find(|c| c.bits == SIZES[0] && c.pattern == pattern)
                .map(|c| median(&c.lat_us))
                .unwrap();
            for c in res.cases.iter().filter(|c| c.pattern == pattern) {
                let m = median(&c.lat_us);
                let bytes = (1u64 << c.bits) / 8;
                let size = if bytes >= 1 << 20 {
                    format!("{} MiB", bytes >> 20)
                } else {
                    format!("{} KiB", bytes.max(1024) >> 10)
                };
                let size = if bytes < 1024 { format!("{bytes} B") } else { size };
                f.line(format!(
                    "| 2^{} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {:.2}x |",
                    c.bits,
                    size,
                    if pattern == Pattern::Random { "random" } else { "same" },
                    c.lat_us.len(),
                    m,
                    percentile(&c.lat_us, 0.9),
                    percentile(&c.lat_us, 0.99),
                    thousands(1e6 / m),
                    m / base
                ));
                if c.bits == 24 {
                    targets.push((
                        format!("{label}, {}", if pattern == Pattern::Random { "random" } else { "same" }),
                        m / base,
                    ));
                }
            }
        }
        f.line("");
    }
    f.save();
    for (what, ratio) in targets {
        target(&format!("flush cost 2^24 / 2^10 regions ({what} region)"), ratio, 1.2, false, "x");
    }
}
