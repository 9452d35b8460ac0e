//! Benchmark 4 — footprint: binary size, resident memory, start-up time.
//!
//!   * size of the static stripped binary (target/static/dmulogd), and
//!     whether it still has a symbol table;
//!   * VmRSS (with its anon/file/shmem split) of a daemon that has just
//!     answered its first request; with 1,000 core logs (CTR + RESUME each,
//!     1 GiB mirrors of 512 KiB regions: 2,048 regions); with one disk log
//!     of 2^24 regions (a file on tmpfs);
//!   * start-up: exec until the first reply to a request queued on the
//!     socketpair before the exec (the echo responder's figure alongside:
//!     what any process start costs here); and `dmulogd --daemon` until the
//!     parent returns (bound to the netlink connector; skipped with a note
//!     where the host kernel has none).
//!
//! Output: $BENCH_OUT/4-footprint.md and rows in $BENCH_OUT/targets.md.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // figures and byte offsets, all small

mod benchkit;
use benchkit::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// (has .symtab, has .debug_info) from the ELF section headers.
fn elf_symbols(path: &Path) -> Option<(bool, bool)> {
    let b = std::fs::read(path).ok()?;
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 {
        return None;
    }
    let u16_at = |o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize;
    let (shoff, shentsize, shnum, shstrndx) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    if shoff == 0 || shoff + shnum * shentsize > b.len() {
        return Some((false, false));
    }
    let sh = |i: usize| shoff + i * shentsize;
    let strtab = u64_at(sh(shstrndx) + 0x18);
    let (mut symtab, mut debug) = (false, false);
    for i in 0..shnum {
        let name_off = strtab + u32_at(sh(i));
        let name: Vec<u8> = b[name_off..].iter().take_while(|&&c| c != 0).copied().collect();
        if u32_at(sh(i) + 4) == 2 {
            symtab = true;
        }
        if name == b".debug_info" {
            debug = true;
        }
    }
    Some((symtab, debug))
}

/// Spawns `bin` on a socketpair with a request already queued; the time
/// from just before the spawn until its reply arrives.
fn first_reply(bin: &Path) -> (Duration, Server) {
    let mut s = Server::spawn_queued(bin);
    let mut buf = [0u8; 4096];
    s.recv_into(&mut buf);
    let t = s.spawned.elapsed();
    s.seq += 1;
    (t, s)
}

trait Queued {
    fn spawn_queued(bin: &Path) -> Server;
}

impl Queued for Server {
    /// Like `Server::spawn`, but the first request is queued on the socket
    /// before the process is created, so nothing on the client side waits.
    fn spawn_queued(bin: &Path) -> Server {
        let (ours, theirs) = socketpair();
        let probe = LogId::new("BENCH-nobody", 1);
        let mut d = Dgram::new(&probe, GET_SYNC_COUNT, &[]);
        d.set_seq(1);
        send_dgram(&ours, &d.bytes);
        let run_dir = private_run_dir();
        let spawned = Instant::now();
        let child = spawn_server(bin, theirs, run_dir.path(), &[], "warn");
        Server { child, sock: ours, seq: 1, spawned, run_dir: Some(run_dir) }
    }
}

fn kib(m: &Memory) -> String {
    format!("{} KiB (anon {}, file {}, shmem {}, locked {})", m.rss, m.anon, m.file, m.shmem, m.locked)
}

fn map_count(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/maps")).map(|s| s.lines().count()).unwrap_or(0)
}

fn alive(pid: i32) -> bool {
    // A zombie still has /proc/PID; look at its state too.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// `dmulogd --daemon`: time until the parent returns; then stops the
/// detached child (by the pid in its pidfile) with SIGTERM (no live logs:
/// it exits). Err with a reason when the daemon cannot bind netlink here.
fn daemon_mode(bin: &Path, dir: &Path, reps: usize) -> Result<(Vec<f64>, String), String> {
    let mut times = Vec::new();
    let mut note = String::new();
    for i in 0..reps {
        let pidfile = dir.join(format!("dmulogd-{i}.pid"));
        // Not a pipe: the detached child keeps stderr open for its logging,
        // so a pipe would never reach EOF.
        let errfile = dir.join(format!("dmulogd-{i}.err"));
        let errf = std::fs::File::create(&errfile).map_err(|e| format!("{}: {e}", errfile.display()))?;
        let t = Instant::now();
        let out = Command::new(bin)
            .args(["--daemon", "--pidfile"])
            .arg(&pidfile)
            .arg("--run-dir")
            .arg(dir.join("run"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(errf)
            .status()
            .map_err(|e| format!("spawn: {e}"))?;
        let el = t.elapsed();
        let err = std::fs::read_to_string(&errfile).unwrap_or_default().trim().to_owned();
        if !out.success() {
            return Err(format!("`dmulogd --daemon` exited with {out}: {}", err.lines().last().unwrap_or("")));
        }
        if i == 0 && !err.is_empty() {
            note = err.lines().map(|l| l.trim()).collect::<Vec<_>>().join(" / ");
        }
        times.push(el.as_secs_f64() * 1e3);
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| format!("no pid in {} after --daemon returned", pidfile.display()))?;
        // SAFETY: kill on a pid we started (read from its own pidfile).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let t = Instant::now();
        while alive(pid) && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(2));
        }
        if alive(pid) {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return Err(format!("detached daemon {pid} ignored SIGTERM with no live logs"));
        }
    }
    Ok((times, note))
}

fn main() {
    let bin = dmulogd_bin();
    if !bin.exists() {
        eprintln!("bench_footprint: {} is missing: run `make static` first", bin.display());
        std::process::exit(1);
    }
    let reps: usize = arg("--reps", "BENCH_REPS", "21").parse().unwrap_or(21);
    let mut f = Fragment::new("4-footprint.md");
    f.line("## 4. Footprint");
    f.line("");

    // Binary.
    let size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
    let syms = elf_symbols(&bin);
    let stripped = match syms {
        Some((false, false)) => "stripped (no .symtab, no debug info)".to_owned(),
        Some((s, d)) => format!("NOT stripped (.symtab: {s}, .debug_info: {d})"),
        None => "not an ELF64 file?".to_owned(),
    };
    let mut linkage = String::from("?");
    if let Ok(o) = Command::new("file").arg("-b").arg(&bin).output() {
        let s = String::from_utf8_lossy(&o.stdout);
        linkage = s.split(',').filter(|p| p.contains("link")).map(str::trim).collect::<Vec<_>>().join(", ");
    }
    f.line("| figure | value |");
    f.line("|---|---|");
    f.line(format!(
        "| static binary `{}` | {} bytes = {:.1} KiB; {stripped}; {linkage} |",
        bin.display(),
        size,
        size as f64 / 1024.0
    ));

    // Start-up and memory after start.
    pin_cpu();
    let mut t_d = Vec::new();
    let mut t_e = Vec::new();
    let mut start_mem = Memory::default();
    let mut start_maps = 0;
    for i in 0..reps {
        let (t, s) = first_reply(&bin);
        t_d.push(t.as_secs_f64() * 1e3);
        if i == reps - 1 {
            std::thread::sleep(Duration::from_millis(50));
            start_mem = s.memory();
            start_maps = map_count(s.pid());
        }
        s.stop();
        let (t, s) = first_reply(&echo_bin());
        t_e.push(t.as_secs_f64() * 1e3);
        s.stop();
    }
    f.line(format!(
        "| exec → first reply (socketpair, request queued before exec) | median {:.2} ms (min {:.2}, max {:.2}; {reps} starts) |",
        median(&t_d),
        min(&t_d),
        max(&t_d)
    ));
    f.line(format!(
        "| same for the echo responder (glibc, dynamic): any process start here | median {:.2} ms (min {:.2}) |",
        median(&t_e),
        min(&t_e)
    ));
    f.line(format!("| VmRSS after start (first request answered) | {}; {start_maps} mappings |", kib(&start_mem)));

    // 1,000 core logs.
    let mut s = Server::spawn(&bin, &[]);
    let probe = LogId::new("BENCH-nobody", 1);
    let _ = s.request(&probe, GET_SYNC_COUNT, &[]);
    let before = s.memory();
    let t = Instant::now();
    for i in 0..1000u64 {
        let log = LogId::new(&format!("LVM-bench-core-{i:04}"), 0xffff_8880_0100_0000 + i * 0x200);
        s.ok(&log, CTR, b"2097152 core 1024 nosync");
        s.ok(&log, RESUME, &[]);
    }
    let took = t.elapsed();
    std::thread::sleep(Duration::from_millis(50));
    let with_core = s.memory();
    let core_maps = map_count(s.pid());
    s.stop();
    f.line(format!(
        "| VmRSS with 1,000 core logs (2,048 regions each; CTR+RESUME) | {}; {core_maps} mappings; {:.1} KiB per log over the idle daemon; set-up {:.0} ms |",
        kib(&with_core),
        (with_core.rss as f64 - before.rss as f64) / 1000.0,
        took.as_secs_f64() * 1e3
    ));

    // One disk log of 2^24 regions on tmpfs.
    match tmpfs_dir().and_then(|d| TempDir::try_new_in(&d, "bench-footprint").map_err(|e| e.to_string())) {
        Ok(scratch) => {
            let regions = 1u64 << 24;
            let file = scratch.log_file("big", log_bytes(regions));
            let mut s = Server::spawn(&bin, &[]);
            let log = LogId::new("LVM-bench-disk-2^24", 0xffff_8880_0200_0000);
            let t = Instant::now();
            let ctr = format!("{} disk {} 1024 nosync", regions * 1024, file.display());
            s.ok(&log, CTR, ctr.as_bytes());
            s.ok(&log, RESUME, &[]);
            let took = t.elapsed();
            std::thread::sleep(Duration::from_millis(50));
            let m = s.memory();
            s.stop();
            f.line(format!(
                "| VmRSS with one disk log of 2^24 regions (2 MiB bitmap, file on tmpfs) | {}; CTR+RESUME {:.1} ms |",
                kib(&m),
                took.as_secs_f64() * 1e3
            ));
        }
        Err(e) => f.line(format!("| VmRSS with one disk log of 2^24 regions | not measured: {e} |")),
    }

    // --daemon.
    let dir = std::env::temp_dir().join(format!("dmulogd-bench-daemon-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let dreps = reps.min(11);
    match daemon_mode(&bin, &dir, dreps) {
        Ok((times, note)) => {
            let note = if note.is_empty() { String::new() } else { format!("; it said: \"{note}\"") };
            f.line(format!(
                "| `dmulogd --daemon` until the parent returns (netlink bound, pidfile written) | median {:.2} ms (min {:.2}, max {:.2}; {dreps} starts){note} |",
                median(&times),
                min(&times),
                max(&times)
            ));
        }
        Err(e) => f.line(format!("| `dmulogd --daemon` until the parent returns | skipped: {e} |")),
    }
    let _ = std::fs::remove_dir_all(&dir);
    f.line("");
    f.save();

    target("static stripped binary size", size as f64 / 1024.0, 400.0, false, "KiB");
    target("VmRSS after start", start_mem.rss as f64, 1024.0, false, "KiB");
}
