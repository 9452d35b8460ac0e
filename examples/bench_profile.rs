//! A fixed number of one kind of request, for profiling the daemon:
//!
//!   valgrind --tool=callgrind target/.../dmulogd ...   (through a wrapper
//!   script given as --dmulogd / DMULOGD_BIN)
//!
//! Usage: bench_profile [--op in_sync|is_clean|mark_flush|iflush|clear_flush|resync]
//!                      [--log core|disk] [--n N] [--regions N]
//! Instructions per request = (Ir at N2 - Ir at N1) / (requests at N2 - at N1):
//! the difference of two runs cancels start-up and set-up.
//! Prints the number of requests sent.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // figures and byte offsets, all small

mod benchkit;
use benchkit::*;

fn main() {
    let op = arg("--op", "BENCH_OP", "in_sync");
    let kind = arg("--log", "BENCH_LOG", "core");
    let n: u64 = arg("--n", "BENCH_N", "10000").parse().expect("--n N");
    let regions: u64 = arg("--regions", "BENCH_REGIONS", "65536").parse().expect("--regions N");
    let tmp = tmpfs_dir().unwrap_or_else(|e| panic!("{e}"));
    let scratch = TempDir::try_new_in(&tmp, "bench-profile").unwrap();
    let mut d = Server::spawn(&dmulogd_bin(), &[]);
    let log = LogId::new("BENCH-profile", 0xffff_8880_0000_7000);
    let sync = if op == "resync" { "sync" } else { "nosync" };
    let ctr = match kind.as_str() {
        "disk" => {
            format!("{} disk {} 1024 {sync}", regions * 1024, scratch.log_file("log", log_bytes(regions)).display())
        }
        _ => format!("{} core 1024 {sync}", regions * 1024),
    };
    d.ok(&log, CTR, ctr.as_bytes());
    d.ok(&log, RESUME, &[]);
    let mut one = Dgram::regions(&log, if op == "is_clean" { IS_CLEAN } else { IN_SYNC }, 1);
    let mut mark = Dgram::regions(&log, MARK_REGION, 1);
    let mut clear = Dgram::regions(&log, CLEAR_REGION, 1);
    let mut flush = Dgram::new(&log, FLUSH, &[]);
    let mut iflush = Dgram::regions(&log, FLUSH, 1);
    let mut work = Dgram::new(&log, GET_RESYNC_WORK, &[]);
    let mut set = Dgram::regions(&log, SET_REGION_SYNC, 2);
    let mut rng = Rng::new(42);
    let mut sent = 2u64;
    let mut cl = Client::new(&mut d);
    for _ in 0..n {
        let r = rng.below(regions);
        match op.as_str() {
            "in_sync" | "is_clean" => {
                one.set_u64(0, r);
                cl.call(&mut one, true);
                sent += 1;
            }
            "mark_flush" | "clear_flush" => {
                mark.set_u64(0, r);
                clear.set_u64(0, r);
                cl.call(&mut mark, true);
                cl.call(&mut flush, true);
                cl.call(&mut clear, true);
                cl.call(&mut flush, true);
                sent += 4;
            }
            "iflush" => {
                iflush.set_u64(0, r);
                clear.set_u64(0, r);
                cl.call(&mut iflush, true);
                cl.call(&mut clear, true);
                cl.call(&mut flush, true);
                sent += 3;
            }
            "resync" => {
                cl.call(&mut work, true);
                let r = reply_u64(&cl.buf, 1);
                set.set_u64(0, r);
                set.set_u64(1, 0);
                cl.call(&mut set, true);
                sent += 2;
            }
            other => panic!("unknown --op {other}"),
        }
    }
    d.stop();
    println!("{sent}");
}
