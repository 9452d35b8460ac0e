//! An arbitrary byte stream, split into datagrams, fed to
//! `Server::handle_datagram` on a live registry: two core logs, two
//! file-backed disk logs and the inactive reload of one of them. It never
//! panics; every reply equals the reference model's (tests/support_model),
//! so logs change only through well-formed valid requests; a rejected
//! datagram (dropped, or answered with an error) leaves every log's
//! observable state untouched; and at the end the logs and the files match
//! the model.
//!
//! Input, repeated: a tag byte, then
//! - tag & 3 == 0: a raw datagram of (u16 length % 1024) bytes, sent from
//!   port 0 or (tag & 4) a non-kernel port;
//! - otherwise a kernel-shaped request for log (tag >> 2) % 6 (5: a log
//!   that does not exist) with request type, version (% 5) and payload
//!   length from the next three bytes, payload from the bytes after.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;

#[path = "../../tests/support_model/mod.rs"]
#[allow(unused_imports)]
mod support_model;
#[path = "../../tests/shared/tempdir.rs"]
#[allow(dead_code)]
mod tempdir;

use support_model::*;

const LOGS: [(&[u8], u64); 6] = [
    (b"LVM-core", 0x1000),
    (b"LVM-core-ns", 0x2000),
    (b"LVM-disk", 0x3000),
    (b"LVM-disk-ns", 0x4000),
    (b"LVM-disk", 0x5000),
    (b"LVM-nobody", 0x6000),
];

static DIR: std::sync::OnceLock<tempdir::TempDir> = std::sync::OnceLock::new();

extern "C" fn remove_dir() {
    if let Some(d) = DIR.get() {
        let _ = std::fs::remove_dir_all(d.path());
    }
}

/// A scratch directory for the log files, removed when libFuzzer exits
/// (a static is never dropped).
fn dir() -> &'static PathBuf {
    &DIR.get_or_init(|| {
        let d = tempdir::TempDir::prefer_tmpfs("fuzz");
        // SAFETY: registers a plain extern "C" function with no arguments.
        unsafe { libc::atexit(remove_dir) };
        d
    })
    .0
}

fn send(model: &mut Model, d: &mut InProc, dgram: &[u8], sender: u32) {
    let expected = model.apply_datagram(dgram, sender, d.port);
    let rejected = expected.as_ref().map_or(true, |b| decode_reply(b).unwrap().0 != 0);
    let before = rejected.then(|| snapshot(&d.server.registry));
    let actual = d.handle(dgram, sender);
    assert!(expected == actual, "{}", diff_reply(&expected, &actual));
    if let Some(before) = before {
        assert!(snapshot(&d.server.registry) == before, "a rejected datagram changed a log");
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = dir();
    let mut model = Model::new(1 << 20, false);
    // Two log files with a previous life: a valid header, mixed bits.
    for (k, len) in [(0usize, 1024 + 40), (1, 1024 + 4096)] {
        let path = dir.join(format!("log{k}"));
        let mut bytes = vec![0u8; len];
        for (i, b) in bytes.iter_mut().enumerate().skip(1024) {
            *b = (i as u8).wrapping_mul(37);
        }
        bytes[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
        bytes[8..16].copy_from_slice(&(((len - 1024) * 8) as u64).to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        model.files.push(MFile { path, aliases: vec![], bytes });
    }
    let mut d = InProc::new(1 << 20, false, dir, false);
    let f = |k: usize| model.files[k].path.display().to_string();
    let ctrs = [
        "12800 core 128".to_string(),
        "8960 core 128 nosync".to_string(),
        format!("40960 disk {} 128", f(0)),
        format!("128000 disk {} 128 nosync", f(1)),
        format!("40960 disk {} 128", f(0)),
    ];
    let mut seq = 1u32;
    for (i, ctr) in ctrs.iter().enumerate() {
        let (uuid, luid) = LOGS[i];
        for (t, p) in [(t::CTR, ctr.as_bytes().to_vec()), (t::RESUME, vec![])] {
            if t == t::RESUME && i == 4 {
                continue; // the inactive table: constructed only
            }
            seq += 1;
            let dg = Req::new(uuid, luid, t, p).encode(seq);
            send(&mut model, &mut d, &dg, 0);
        }
    }
    let mut rest = data;
    while let Some((&tag, tail)) = rest.split_first() {
        rest = tail;
        seq = seq.wrapping_add(1);
        if tag & 3 == 0 {
            let len = rest.get(..2).map_or(rest.len(), |b| usize::from(u16::from_ne_bytes([b[0], b[1]])) % 1024);
            rest = rest.get(2..).unwrap_or(&[]);
            let len = len.min(rest.len());
            let (dg, tail) = rest.split_at(len);
            rest = tail;
            let sender = if tag & 4 != 0 { u32::from(tag) << 8 | 1 } else { 0 };
            send(&mut model, &mut d, dg, sender);
        } else {
            let (uuid, luid) = LOGS[usize::from(tag >> 2) % LOGS.len()];
            let Some(&[ty, version, plen]) = rest.get(..3).map(|b| <&[u8; 3]>::try_from(b).unwrap()) else { break };
            rest = &rest[3..];
            let plen = (usize::from(plen) * 2).min(rest.len());
            let (payload, tail) = rest.split_at(plen);
            rest = tail;
            let mut r = Req::new(uuid, luid, u32::from(ty) | u32::from(tag & 0x80) << 1, payload.to_vec());
            r.version = u32::from(version % 5);
            send(&mut model, &mut d, &r.encode(seq), 0);
        }
    }
    check_files(&model).unwrap();
    let mut rng = Rng::new(1);
    check_registry(&model, &mut d.server.registry, &mut rng).unwrap();
});
