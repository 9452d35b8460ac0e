//! Shared plumbing of the benchmark drivers (`bench_*` examples): a server
//! process (the real dmulogd, or the echo responder) on one end of a
//! `SOCK_SEQPACKET` socketpair, a kernel-shaped client on the other, kernel
//! datagrams patched in place, medians, file-system checks and the
//! markdown fragments that `bench/run.sh` assembles into bench/RESULTS.md.
//!
//! Not an example itself: a directory without `main.rs` is not picked up
//! by cargo; each driver includes it with `mod benchkit;`. The socketpair,
//! the spawning, the scratch directories and the PRNG are the tests' own
//! (tests/shared, included with `#[path]`).
#![allow(dead_code)]

#[path = "../../tests/shared/rng.rs"]
mod rng;
#[path = "../../tests/shared/tempdir.rs"]
mod tempdir;
#[path = "../../tests/shared/transport.rs"]
mod transport;

#[allow(unused_imports)] // each driver uses the parts it needs
pub use {rng::Rng, tempdir::TempDir, transport::*};

use dmulogd::wire::{Reply, RequestSpec, HEADERS_LEN};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// Offsets inside a datagram (see src/wire.rs).
const NL_SEQ: usize = 8;
const CN_SEQ: usize = 16 + 8;
const RQ: usize = 36;
const RQ_ERROR: usize = RQ + 144;
const RQ_SEQ: usize = RQ + 148;

// ------------------------------------------------------------ arguments

/// `--name value` from the command line, else the environment, else `default`.
pub fn arg(name: &str, env: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == name) {
        if let Some(v) = args.get(i + 1) {
            return v.clone();
        }
    }
    std::env::var(env).unwrap_or_else(|_| default.to_owned())
}

pub fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// The daemon binary under test: `--dmulogd` / `DMULOGD_BIN`, else the
/// static build `make static` leaves in target/static.
pub fn dmulogd_bin() -> PathBuf {
    PathBuf::from(arg("--dmulogd", "DMULOGD_BIN", &format!("{}/target/static/dmulogd", env!("CARGO_MANIFEST_DIR"))))
}

/// The echo responder built next to this driver.
pub fn echo_bin() -> PathBuf {
    let me = std::env::current_exe().expect("current_exe");
    me.with_file_name("echo_responder")
}

/// Where the markdown fragments go (`--out` / `BENCH_OUT`).
pub fn out_dir() -> PathBuf {
    let d = PathBuf::from(arg("--out", "BENCH_OUT", &format!("{}/target/bench", env!("CARGO_MANIFEST_DIR"))));
    std::fs::create_dir_all(&d).expect("create the output directory");
    d
}

/// Scales every measuring time: `BENCH_SCALE=0.2` for a quick look.
pub fn scale() -> f64 {
    std::env::var("BENCH_SCALE").ok().and_then(|s| s.parse().ok()).filter(|&s: &f64| s > 0.0).unwrap_or(1.0)
}

// ------------------------------------------------------------ processes

/// A server process serving one end of a socketpair; `sock` is ours.
pub struct Server {
    pub child: Child,
    pub sock: OwnedFd,
    pub seq: u32,
    /// When the child was spawned (just before fork/exec).
    pub spawned: Instant,
    /// The server's private `--run-dir` (state files, device nodes),
    /// removed when the server is dropped: benchmarks never touch the
    /// machine's /run/dmulogd.
    pub run_dir: Option<TempDir>,
}

/// A private run directory for one server, on tmpfs like /run when there
/// is one.
pub fn private_run_dir() -> TempDir {
    let parent = tmpfs_dir().unwrap_or_else(|_| std::env::temp_dir());
    TempDir::try_new_in(&parent, "bench-run").expect("create a private run directory")
}

impl Server {
    /// Starts `bin --transport-fd N --run-dir PRIVATE extra...` with
    /// warnings-only logging.
    pub fn spawn(bin: &Path, extra: &[&str]) -> Server {
        let (ours, theirs) = socketpair();
        let run_dir = private_run_dir();
        let spawned = Instant::now();
        let child = spawn_server(bin, theirs, run_dir.path(), extra, "warn");
        set_recv_timeout(&ours, 60);
        Server { child, sock: ours, seq: 1, spawned, run_dir: Some(run_dir) }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    #[inline]
    pub fn send(&self, d: &[u8]) {
        send_dgram(&self.sock, d);
    }

    /// Blocking receive of one reply into `buf`; its length.
    #[inline]
    pub fn recv_into(&self, buf: &mut [u8]) -> usize {
        let n = recv_dgram(&self.sock, buf);
        assert!(n >= HEADERS_LEN as isize, "no reply from the server ({n}): {}", std::io::Error::last_os_error());
        n as usize
    }

    /// One full request/reply, fully decoded (set-up paths).
    pub fn request(&mut self, log: &LogId, t: u32, payload: &[u8]) -> Reply {
        let seq = self.next_seq();
        let d = RequestSpec { luid: log.luid, uuid: &log.uuid, version: 3, seq, request_type: t, payload }.encode();
        self.send(&d);
        let mut buf = [0u8; 4096];
        let n = self.recv_into(&mut buf);
        let r = Reply::decode(&buf[..n]).expect("well-framed reply");
        assert_eq!(r.seq, seq, "reply matches the request");
        r
    }

    pub fn ok(&mut self, log: &LogId, t: u32, payload: &[u8]) -> Reply {
        let r = self.request(log, t, payload);
        assert_eq!(r.error, 0, "request type {t} for {} failed: {}", String::from_utf8_lossy(&log.uuid), r.error);
        r
    }

    /// Resident memory figures of the server from /proc/PID/status, KiB.
    pub fn memory(&self) -> Memory {
        Memory::of(self.pid())
    }

    /// Closes our end and waits for the server to exit.
    pub fn stop(mut self) {
        let (dummy, _) = socketpair();
        drop(std::mem::replace(&mut self.sock, dummy));
        if wait_timeout(&mut self.child, Duration::from_secs(20)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    pub rss: u64,
    pub anon: u64,
    pub file: u64,
    pub shmem: u64,
    pub locked: u64,
}

impl Memory {
    pub fn of(pid: u32) -> Memory {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let get = |k: &str| {
            s.lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Memory {
            rss: get("VmRSS:"),
            anon: get("RssAnon:"),
            file: get("RssFile:"),
            shmem: get("RssShmem:"),
            locked: get("VmLck:"),
        }
    }
}

// ------------------------------------------------------------ requests

/// One log as the kernel names it.
#[derive(Clone, Debug)]
pub struct LogId {
    pub uuid: Vec<u8>,
    pub luid: u64,
}

impl LogId {
    pub fn new(uuid: &str, luid: u64) -> LogId {
        LogId { uuid: uuid.as_bytes().to_vec(), luid }
    }
}

/// A kernel datagram built once and patched in place (seq, payload u64s),
/// so the client adds as little as possible to each round trip.
pub struct Dgram {
    pub bytes: Vec<u8>,
}

impl Dgram {
    pub fn new(log: &LogId, t: u32, payload: &[u8]) -> Dgram {
        Dgram {
            bytes: RequestSpec { luid: log.luid, uuid: &log.uuid, version: 3, seq: 0, request_type: t, payload }
                .encode(),
        }
    }
    pub fn regions(log: &LogId, t: u32, n: usize) -> Dgram {
        Dgram::new(log, t, &vec![0u8; 8 * n])
    }
    #[inline]
    pub fn set_seq(&mut self, seq: u32) {
        let b = seq.to_ne_bytes();
        self.bytes[NL_SEQ..NL_SEQ + 4].copy_from_slice(&b);
        self.bytes[CN_SEQ..CN_SEQ + 4].copy_from_slice(&b);
        self.bytes[RQ_SEQ..RQ_SEQ + 4].copy_from_slice(&b);
    }
    #[inline]
    pub fn set_u64(&mut self, i: usize, v: u64) {
        let at = HEADERS_LEN + 8 * i;
        self.bytes[at..at + 8].copy_from_slice(&v.to_ne_bytes());
    }
}

#[inline]
pub fn reply_seq(b: &[u8]) -> u32 {
    u32::from_ne_bytes(b[RQ_SEQ..RQ_SEQ + 4].try_into().unwrap())
}
#[inline]
pub fn reply_error(b: &[u8]) -> i32 {
    i32::from_ne_bytes(b[RQ_ERROR..RQ_ERROR + 4].try_into().unwrap())
}
#[inline]
pub fn reply_u64(b: &[u8], i: usize) -> u64 {
    let at = HEADERS_LEN + 8 * i;
    u64::from_ne_bytes(b[at..at + 8].try_into().unwrap())
}

/// A kernel-side client with one reusable receive buffer.
pub struct Client<'a> {
    pub srv: &'a mut Server,
    pub buf: Vec<u8>,
}

impl<'a> Client<'a> {
    pub fn new(srv: &'a mut Server) -> Client<'a> {
        Client { srv, buf: vec![0u8; 4096] }
    }

    /// Sends `d` with a fresh seq, waits for its reply, checks seq and
    /// (when `check`) a zero error. Returns the reply length.
    #[inline]
    pub fn call(&mut self, d: &mut Dgram, check: bool) -> usize {
        let seq = self.srv.next_seq();
        d.set_seq(seq);
        self.srv.send(&d.bytes);
        let n = self.srv.recv_into(&mut self.buf);
        assert_eq!(reply_seq(&self.buf), seq, "reply out of order");
        if check {
            let e = reply_error(&self.buf);
            assert_eq!(e, 0, "request failed with {e}");
        }
        n
    }
}

// ------------------------------------------------------------ statistics

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

pub fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

pub fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// Runs `op` repeatedly for `dur` and returns ops/s. `op` returns the time
/// it wants counted (so set-up steps inside it can be left out), or None
/// to count the whole iteration.
pub fn rate(dur: Duration, mut op: impl FnMut() -> Option<Duration>) -> f64 {
    let start = Instant::now();
    let mut counted = Duration::ZERO;
    let mut whole = true;
    let mut n = 0u64;
    loop {
        // Check the clock every 16 iterations only.
        for _ in 0..16 {
            if let Some(d) = op() {
                counted += d;
                whole = false;
            }
            n += 1;
        }
        if start.elapsed() >= dur {
            break;
        }
    }
    let t = if whole { start.elapsed() } else { counted };
    n as f64 / t.as_secs_f64()
}

/// `runs` measurements of `dur` each after a warm-up; the rates.
pub fn measure(runs: usize, dur: Duration, mut op: impl FnMut() -> Option<Duration>) -> Vec<f64> {
    rate(dur / 4, &mut op);
    (0..runs).map(|_| rate(dur, &mut op)).collect()
}

// ------------------------------------------------------------ file systems

pub const TMPFS_MAGIC: i64 = 0x0102_1994;

/// The file-system type of `p`: its statfs magic and a name.
pub fn fs_type(p: &Path) -> (i64, String) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: zeroed statfs is a valid out buffer; c is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return (0, "unknown".into());
    }
    #[allow(clippy::unnecessary_cast)]
    let m = st.f_type as i64;
    let name = match m {
        0x0102_1994 => "tmpfs",
        0xEF53 => "ext2/3/4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x794C_7630 => "overlayfs",
        0x6969 => "nfs",
        _ => "other",
    };
    (m, format!("{name} (magic {m:#x})"))
}

/// The size of a log file for `regions` regions (header, bitmap), in whole
/// pages: what `TempDir::log_file` is given.
pub fn log_bytes(regions: u64) -> u64 {
    (1024 + regions.div_ceil(64) * 8).div_ceil(4096) * 4096
}

/// The tmpfs directory the benchmarks use: `BENCH_TMPFS` or /dev/shm,
/// checked to really be tmpfs.
pub fn tmpfs_dir() -> Result<PathBuf, String> {
    let p = PathBuf::from(std::env::var("BENCH_TMPFS").unwrap_or_else(|_| "/dev/shm".into()));
    let (m, name) = fs_type(&p);
    if m == TMPFS_MAGIC {
        Ok(p)
    } else {
        Err(format!("{} is {name}, not tmpfs", p.display()))
    }
}

// ------------------------------------------------------------ output

/// A markdown fragment written to `out_dir()/name` and echoed to stdout.
pub struct Fragment {
    path: PathBuf,
    text: String,
}

impl Fragment {
    pub fn new(name: &str) -> Fragment {
        Fragment { path: out_dir().join(name), text: String::new() }
    }
    pub fn line(&mut self, s: impl AsRef<str>) {
        let s = s.as_ref();
        println!("{s}");
        self.text.push_str(s);
        self.text.push('\n');
    }
    pub fn save(&self) {
        std::fs::write(&self.path, &self.text).expect("write the results fragment");
    }
}

/// A target row for the summary: appended to `out_dir()/targets.md`.
/// `higher_is_better`: the measured value must be >= `need`, else <=.
pub fn target(what: &str, measured: f64, need: f64, higher_is_better: bool, unit: &str) {
    let met = if higher_is_better { measured >= need } else { measured <= need };
    // Margin as a share of the bar: how far above (or below) it we are.
    let pct = (measured / need - 1.0) * 100.0;
    let verdict = match (met, higher_is_better) {
        (true, true) => format!("**met** ({pct:.0}% above the bar)"),
        (false, true) => format!("**missed** ({:.0}% below the bar)", -pct),
        (true, false) => format!("**met** ({:.0}% under the limit)", -pct),
        (false, false) => format!("**missed** ({pct:.0}% over the limit)"),
    };
    let cmp = if higher_is_better { ">=" } else { "<=" };
    let row = format!("| {what} | {} | {cmp} {} | {verdict} |", fmt_num(measured, unit), fmt_num(need, unit));
    println!("target: {row}");
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(out_dir().join("targets.md")).unwrap();
    writeln!(f, "{row}").unwrap();
}

/// A row for a target that could not be measured.
pub fn target_skipped(what: &str, why: &str) {
    let row = format!("| {what} | — | — | not measured: {why} |");
    println!("target: {row}");
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(out_dir().join("targets.md")).unwrap();
    writeln!(f, "{row}").unwrap();
}

pub fn fmt_num(v: f64, unit: &str) -> String {
    match unit {
        "x" => format!("{v:.2}x"),
        "KiB" => format!("{v:.0} KiB"),
        "us" => format!("{v:.1} µs"),
        _ => format!("{v:.0} {unit}"),
    }
}

/// 12345.6 -> "12,346"
pub fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ------------------------------------------------------------ scheduling

/// Pins this process (and the servers it spawns afterwards, which inherit
/// the mask) to one CPU. Client and server then hand the CPU to each
/// other on every round trip, with no cross-CPU wake-ups: the figures
/// measure the work per request instead of idle-state exit latencies,
/// which make unpinned runs on a VM vary tenfold. `BENCH_CPU=none`
/// disables pinning; `BENCH_CPU=N` picks the CPU (default: the last one).
/// Returns a description for the results.
pub fn pin_cpu() -> String {
    let want = std::env::var("BENCH_CPU").unwrap_or_default();
    if want == "none" {
        return "not pinned (BENCH_CPU=none)".into();
    }
    // SAFETY: sysconf has no preconditions.
    let ncpu = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    let cpu = want.parse().unwrap_or(ncpu - 1);
    // SAFETY: zeroed cpu_set_t is a valid empty set; CPU_SET writes in it.
    let ok = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    };
    if ok {
        format!("client and server pinned to CPU {cpu} of {ncpu}")
    } else {
        format!("pinning to CPU {cpu} failed ({}); not pinned", std::io::Error::last_os_error())
    }
}
