//! Reference model of dm-log-userspace as dmulogd promises to serve it, and
//! everything the hardening tests share: a seeded PRNG, an independent
//! datagram decoder and reply encoder (written from docs/protocol.md §1–2,
//! not from `wire.rs`), the log model (docs/protocol.md §3–4 and dm-log.c,
//! plus the deviations dmulogd documents), a kernel-shaped random request generator and an
//! in-process harness around `Server::handle_datagram`.
//!
//! Used by tests/model.rs, tests/fuzz_datagrams.rs, tests/crash.rs,
//! tests/hostile.rs, tests/limits.rs and (through `#[path]`) the fuzz/
//! crate, so it depends on nothing but dmulogd, libc and std.
//!
//! Semantics modelled where dmulogd deliberately follows the kernel or
//! chooses (docs/protocol.md §4 and §7; commit messages, doc comments in src/):
//! - `sync` and `nosync` both start a new disk log at every RESUME, except
//!   the first RESUME of a log built by the kernel's reconnect CTR (payload
//!   ending in NUL) for a log whose state file says it had been resumed,
//!   which loads the on-disk bitmap and keeps the restored sync bitmap;
//!   with no state file to tell, that first RESUME loads the device unless
//!   the word is `sync`;
//! - a resent GET_RESYNC_WORK while the region last handed out is still
//!   recovering returns that same region;
//! - a disk log answers MARK, CLEAR, an integrated FLUSH, IN_SYNC,
//!   GET_RESYNC_WORK, SET_REGION_SYNC and IS_REMOTE_RECOVERING with -ESRCH
//!   before a RESUME loaded it (its first RESUME was lost: the kernel then
//!   reconnects), and IS_CLEAN = 0;
//! - a disk log's file changes only when the daemon writes it: at RESUME
//!   (header and whole bitmap), at a FLUSH with anything marked or cleared
//!   since the last write, and at POSTSUSPEND of a live log (the harness
//!   gives the daemon legs that always flush, so clean bits go out with
//!   the marks); the binary's clear timer may write a log with pending
//!   clean bits at any time (`check_files` accepts either state of them);
//! - a CTR with other arguments for an existing (uuid, luid) replaces it;
//! - CLEAR sets no clean bit once the log's health is not Alive;
//! - STATUS strings are sent with their NUL counted;
//! - requests whose payload is "—" in docs/protocol.md §3.1 ignore any payload they carry;
//! - a request for an unknown log gets -ESRCH before its payload is looked
//!   at; the type, version and 332-byte limits are checked before that;
//! - an -ESRCH reply carries zeros of the request's reply-buffer size (the
//!   kernel retries with the size it got back); other errors carry no data;
//! - with a state directory (the binary's `<run-dir>/state`), every log's
//!   sync bitmap and a core log's clean bitmap survive a daemon restart: a
//!   reconnect CTR for the same (uuid, luid, region count) of a log that
//!   had been resumed takes them back, and a disk log's first RESUME then
//!   keeps that sync bitmap.
#![allow(dead_code, clippy::cast_possible_truncation, clippy::cast_sign_loss)]

use dmulogd::wire::RequestSpec;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------- constants

pub mod t {
    pub const CTR: u32 = 1;
    pub const DTR: u32 = 2;
    pub const PRESUSPEND: u32 = 3;
    pub const POSTSUSPEND: u32 = 4;
    pub const RESUME: u32 = 5;
    pub const GET_REGION_SIZE: u32 = 6;
    pub const IS_CLEAN: u32 = 7;
    pub const IN_SYNC: u32 = 8;
    pub const FLUSH: u32 = 9;
    pub const MARK_REGION: u32 = 10;
    pub const CLEAR_REGION: u32 = 11;
    pub const GET_RESYNC_WORK: u32 = 12;
    pub const SET_REGION_SYNC: u32 = 13;
    pub const GET_SYNC_COUNT: u32 = 14;
    pub const STATUS_INFO: u32 = 15;
    pub const STATUS_TABLE: u32 = 16;
    pub const IS_REMOTE_RECOVERING: u32 = 17;

    pub fn name(t: u32) -> &'static str {
        const N: [&str; 18] = [
            "?",
            "CTR",
            "DTR",
            "PRESUSPEND",
            "POSTSUSPEND",
            "RESUME",
            "GET_REGION_SIZE",
            "IS_CLEAN",
            "IN_SYNC",
            "FLUSH",
            "MARK",
            "CLEAR",
            "GET_RESYNC_WORK",
            "SET_REGION_SYNC",
            "GET_SYNC_COUNT",
            "STATUS_INFO",
            "STATUS_TABLE",
            "IS_REMOTE_RECOVERING",
        ];
        N.get((t & 0xff) as usize).copied().unwrap_or("?")
    }
}

pub const EINVAL: i32 = -libc::EINVAL;
pub const ESRCH: i32 = -libc::ESRCH;
pub const EEXIST: i32 = -libc::EEXIST;
pub const ENOMEM: i32 = -libc::ENOMEM;
pub const ENOENT: i32 = -libc::ENOENT;
pub const EISDIR: i32 = -libc::EISDIR;
pub const EIO: i32 = -libc::EIO;

pub const HEADERS: usize = 16 + 20 + 160;
pub const MAX_PAYLOAD: usize = 332;
pub const MAGIC: u32 = 0x4D69_5272;
pub const BITMAP_OFFSET: usize = 1024;

// ---------------------------------------------------------------- PRNG

/// SplitMix64: tiny, fast, and good enough to drive test generators.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi.wrapping_sub(lo) == u64::MAX {
            return self.next_u64();
        }
        lo + self.below(hi - lo + 1)
    }
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
    pub fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize].clone()
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// A well-mixed seed from a small number (test index, time).
pub fn mix(x: u64) -> u64 {
    Rng::new(x ^ 0x6a09_e667_f3bc_c909).next_u64()
}

/// Reads `NAME` as decimal or 0x-hex.
pub fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim().replace('_', "");
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// The seeds a test runs: `DMULOGD_SEED` alone when set (replay), else
/// `count` fixed seeds derived from `base` (deterministic CI).
pub fn seeds(base: u64, count: u64) -> Vec<u64> {
    match env_u64("DMULOGD_SEED") {
        Some(s) => vec![s],
        None => (0..count).map(|i| mix(base.wrapping_mul(1000).wrapping_add(i))).collect(),
    }
}

/// Steps per seed: `DMULOGD_STEPS` when set, else `default`.
pub fn steps(default: u64) -> u64 {
    env_u64("DMULOGD_STEPS").unwrap_or(default)
}

// ---------------------------------------------------------------- wire, from docs/protocol.md

fn ne32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}
fn ne16(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes(b[at..at + 2].try_into().unwrap())
}
fn ne64(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().unwrap())
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// A request as docs/protocol.md §1 says the daemon must accept it.
#[derive(Clone, Debug)]
pub struct Decoded {
    pub cn_seq: u32,
    /// The 160-byte dm_ulog_request header exactly as sent.
    pub header: Vec<u8>,
    pub luid: u64,
    pub uuid: Vec<u8>,
    pub version: u32,
    pub seq: u32,
    pub rtype: u32,
    pub payload: Vec<u8>,
}

/// docs/protocol.md §1: accept only sender port 0, an NLMSG_DONE netlink header whose
/// length fits the datagram, connector id {7,1}, `cn_msg.len >= 160` within
/// the netlink message, and `data_size <= cn_msg.len - 160`. Bytes after
/// the lengths given are ignored.
pub fn decode(d: &[u8], sender: u32) -> Option<Decoded> {
    if sender != 0 || d.len() < HEADERS {
        return None;
    }
    let nl_len = ne32(d, 0) as usize;
    if ne16(d, 4) != 3 || nl_len < HEADERS || nl_len > d.len() {
        return None;
    }
    let msg = &d[..nl_len];
    if ne32(msg, 16) != 7 || ne32(msg, 20) != 1 {
        return None;
    }
    let cn_len = ne16(msg, 32) as usize;
    if cn_len < 160 || 36 + cn_len > msg.len() {
        return None;
    }
    let body = &msg[36..36 + cn_len];
    let data_size = ne32(body, 156) as usize;
    if data_size > cn_len - 160 {
        return None;
    }
    let raw_uuid = &body[8..137];
    let end = raw_uuid.iter().position(|&b| b == 0).unwrap_or(129);
    Some(Decoded {
        cn_seq: ne32(msg, 24),
        header: body[..160].to_vec(),
        luid: ne64(body, 0),
        uuid: raw_uuid[..end].to_vec(),
        version: ne32(body, 140),
        seq: ne32(body, 148),
        rtype: ne32(body, 152),
        payload: body[160..160 + data_size].to_vec(),
    })
}

/// The reply datagram docs/protocol.md §1 prescribes for `d` (with `payload` as the
/// model decided it, error replies included).
pub fn reply_bytes(d: &Decoded, port: u32, error: i32, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADERS + payload.len());
    b.extend_from_slice(&((HEADERS + payload.len()) as u32).to_ne_bytes());
    b.extend_from_slice(&3u16.to_ne_bytes());
    b.extend_from_slice(&0u16.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&port.to_ne_bytes());
    b.extend_from_slice(&7u32.to_ne_bytes());
    b.extend_from_slice(&1u32.to_ne_bytes());
    b.extend_from_slice(&d.cn_seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&((160 + payload.len()) as u16).to_ne_bytes());
    b.extend_from_slice(&0u16.to_ne_bytes());
    let mut h = d.header.clone();
    h[144..148].copy_from_slice(&error.to_ne_bytes());
    h[156..160].copy_from_slice(&(payload.len() as u32).to_ne_bytes());
    b.extend_from_slice(&h);
    b.extend_from_slice(payload);
    b
}

pub fn regions_payload(rs: &[u64]) -> Vec<u8> {
    rs.iter().flat_map(|r| r.to_ne_bytes()).collect()
}

fn u64s(vals: &[u64]) -> Vec<u8> {
    regions_payload(vals)
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

// ---------------------------------------------------------------- the model

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncArg {
    Default,
    Sync,
    NoSync,
}

/// A parsed constructor string; equality decides idempotent CTR vs -EEXIST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    pub target_len: u64,
    pub type_name: String,
    pub device: Option<String>,
    pub region_size: u32,
    pub sync: SyncArg,
    pub region_count: u64,
}

pub fn bitmap_bytes(n: u64) -> u64 {
    n.div_ceil(64) * 8
}

impl Args {
    pub fn memory(&self) -> u64 {
        bitmap_bytes(self.region_count).saturating_mul(if self.device.is_some() { 4 } else { 3 })
    }
}

/// The CTR string rules of docs/protocol.md §3.4, written independently of `log.rs`.
pub fn parse_ctr(payload: &[u8], allow_clustered: bool) -> Result<Args, i32> {
    let end = payload.iter().position(|&b| b == 0).unwrap_or(payload.len());
    let text = std::str::from_utf8(&payload[..end]).map_err(|_| EINVAL)?;
    let w: Vec<&str> = text.split([' ', '\t', '\n', '\r', '\x0c']).filter(|s| !s.is_empty()).collect();
    if w.len() < 2 {
        return Err(EINVAL);
    }
    let target_len: u64 = w[0].parse().map_err(|_| EINVAL)?;
    if target_len == 0 {
        return Err(EINVAL);
    }
    let disk = match w[1] {
        "core" => false,
        "disk" => true,
        "clustered-core" if allow_clustered => false,
        "clustered-disk" if allow_clustered => true,
        _ => return Err(EINVAL),
    };
    let rest = &w[2..];
    let want = if disk { 2 } else { 1 };
    if rest.len() != want && rest.len() != want + 1 {
        return Err(EINVAL);
    }
    let region_size: u32 = rest[want - 1].parse().map_err(|_| EINVAL)?;
    if region_size < 2 || region_size & (region_size - 1) != 0 || u64::from(region_size) > target_len {
        return Err(EINVAL);
    }
    let sync = match rest.get(want) {
        None => SyncArg::Default,
        Some(&"sync") => SyncArg::Sync,
        Some(&"nosync") => SyncArg::NoSync,
        Some(_) => return Err(EINVAL),
    };
    let rs = u64::from(region_size);
    Ok(Args {
        target_len,
        type_name: w[1].to_owned(),
        device: disk.then(|| rest[0].to_owned()),
        region_size,
        sync,
        region_count: target_len / rs + u64::from(target_len % rs != 0),
    })
}

/// A log file as the model expects it on disk (the whole file).
#[derive(Clone, Debug)]
pub struct MFile {
    pub path: PathBuf,
    /// Other spellings of the path that open the same file.
    pub aliases: Vec<String>,
    pub bytes: Vec<u8>,
}

impl MFile {
    pub fn bit(&self, r: u64) -> bool {
        self.bytes[BITMAP_OFFSET + (r / 8) as usize] & (1 << (r % 8)) != 0
    }
    pub fn set(&mut self, r: u64, v: bool) {
        let b = &mut self.bytes[BITMAP_OFFSET + (r / 8) as usize];
        if v {
            *b |= 1 << (r % 8);
        } else {
            *b &= !(1 << (r % 8));
        }
    }
    /// Regions whose bitmap fits the file.
    pub fn capacity(&self) -> u64 {
        (self.bytes.len().saturating_sub(BITMAP_OFFSET) as u64 / 8) * 64
    }
}

#[derive(Clone, Debug)]
pub struct MLog {
    pub uuid: Vec<u8>,
    pub luid: u64,
    pub args: Args,
    /// Index into `Model::files` for a disk log.
    pub file: Option<usize>,
    /// The clean bits the kernel is answered from (a disk log's file holds
    /// what was last written).
    pub clean: Vec<bool>,
    pub sync: Vec<bool>,
    pub recovering: Vec<bool>,
    pub resumed: bool,
    /// Resumed at least once (recorded in the state file).
    pub ever_resumed: bool,
    pub loaded: bool,
    pub prior: Prior,
    /// A CLEAR changed a bit since the last write (disk logs).
    pub clears_pending: bool,
    pub sync_search: u64,
    pub last_work: Option<u64>,
    pub touched_dirtied: bool,
    pub touched_cleaned: bool,
    pub health: u8,
    /// Regions marked since the last write (their pages must be durable).
    pub pending: Vec<u64>,
    /// Pages of the file a write would cover: those of every mark and of
    /// every clear that changed a bit since the last write.
    pub pages: std::collections::BTreeSet<usize>,
}

/// What a disk log's first RESUME may assume (the daemon's `log::Prior`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prior {
    New,
    Live,
    Unknown,
}

impl MLog {
    pub fn n(&self) -> u64 {
        self.args.region_count
    }
    pub fn sync_count(&self) -> u64 {
        self.sync.iter().filter(|&&b| b).count() as u64
    }
}

/// What a request did, as the model expects it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub error: i32,
    pub payload: Vec<u8>,
}

fn ok(payload: Vec<u8>) -> Result<Vec<u8>, i32> {
    Ok(payload)
}

/// Marks that a FLUSH reply promised durable: (file, regions whose bit
/// this log's marks changed since its last sync). Their pages are written
/// back when the reply goes out: msync writes every dirty page it covers.
#[derive(Clone, Debug, Default)]
pub struct Durable {
    pub file: usize,
    pub regions: Vec<u64>,
}

#[derive(Clone, Debug)]
pub struct Model {
    pub logs: Vec<MLog>,
    pub files: Vec<MFile>,
    pub memory_limit: u64,
    pub memory_used: u64,
    pub allow_clustered: bool,
    /// Device arguments that are not model files and what opening them gives.
    pub special: Vec<(String, i32)>,
    /// Set by a FLUSH that made marks durable (for page-cache probes).
    pub last_durable: Vec<Durable>,
    /// The daemon keeps state files that outlive it (see the module doc).
    pub persist_state: bool,
    pub saved_sync: HashMap<(Vec<u8>, u64), (Vec<bool>, bool)>,
    pub saved_clean: HashMap<(Vec<u8>, u64), Vec<bool>>,
}

/// Reply-buffer size the kernel passes for a request type (what an -ESRCH
/// reply is padded to).
pub fn reply_buffer(ty: u32) -> usize {
    match ty & 0xff {
        t::GET_REGION_SIZE | t::IS_CLEAN | t::IN_SYNC | t::GET_SYNC_COUNT => 8,
        t::GET_RESYNC_WORK | t::IS_REMOTE_RECOVERING => 16,
        t::STATUS_INFO => 128,
        _ => 0,
    }
}

impl Model {
    pub fn new(memory_limit: u64, allow_clustered: bool) -> Model {
        Model {
            logs: Vec::new(),
            files: Vec::new(),
            memory_limit,
            memory_used: 0,
            allow_clustered,
            special: Vec::new(),
            last_durable: Vec::new(),
            persist_state: false,
            saved_sync: HashMap::new(),
            saved_clean: HashMap::new(),
        }
    }

    /// Forgets every log (the daemon restarted); files persist, and so do
    /// state files when the daemon keeps them.
    pub fn restart(&mut self) {
        if self.persist_state {
            for l in &self.logs {
                let key = (l.uuid.clone(), l.luid);
                self.saved_sync.insert(key.clone(), (l.sync.clone(), l.ever_resumed));
                if l.file.is_none() {
                    self.saved_clean.insert(key, l.clean.clone());
                }
            }
        }
        self.logs.clear();
        self.memory_used = 0;
    }

    pub fn find(&self, uuid: &[u8], luid: u64) -> Option<usize> {
        self.logs.iter().position(|l| l.uuid == uuid && l.luid == luid)
    }

    fn resolve(&self, dev: &str) -> Result<usize, i32> {
        if let Some((_, e)) = self.special.iter().find(|(s, _)| s == dev) {
            return Err(*e);
        }
        self.files.iter().position(|f| f.path.to_str() == Some(dev) || f.aliases.iter().any(|a| a == dev)).ok_or(ENOENT)
    }

    pub fn clean(&self, i: usize, r: u64) -> bool {
        self.logs[i].clean[r as usize]
    }

    fn set_clean(&mut self, i: usize, r: u64, v: bool) {
        let l = &mut self.logs[i];
        if l.file.is_some() && (!v || !l.clean[r as usize]) {
            l.pages.insert((BITMAP_OFFSET + (r / 8) as usize) / 4096);
            l.clears_pending |= v;
        }
        l.clean[r as usize] = v;
    }

    /// The bytes the daemon writes for log `i`'s touched pages into `file`:
    /// its header, and its in-memory bits (padding bits clear); the page
    /// holding the header carries bytes 16..1024 as the file has them.
    #[allow(clippy::needless_range_loop)]
    pub fn write_pages(l: &MLog, file: &mut MFile) {
        let n = l.n();
        let len = BITMAP_OFFSET + bitmap_bytes(n) as usize;
        let mut header = Vec::new();
        header.extend_from_slice(&MAGIC.to_le_bytes());
        header.extend_from_slice(&2u32.to_le_bytes());
        header.extend_from_slice(&n.to_le_bytes());
        for &p in &l.pages {
            for o in p * 4096..((p + 1) * 4096).min(len) {
                if o < 16 {
                    file.bytes[o] = header[o];
                } else if o >= BITMAP_OFFSET {
                    let first = ((o - BITMAP_OFFSET) * 8) as u64;
                    file.bytes[o] = (0..8).fold(0u8, |b, k| {
                        let r = first + k;
                        b | (u8::from(r < n && l.clean[r as usize]) << k)
                    });
                }
            }
        }
    }

    /// The daemon writes a disk log's pending pages (legs always flush in
    /// the harness, so clean bits go too).
    fn write_file(&mut self, i: usize) {
        let Some(f) = self.logs[i].file else { return };
        Self::write_pages(&self.logs[i], &mut self.files[f]);
        let l = &mut self.logs[i];
        l.clears_pending = false;
        l.pending.clear();
        l.pages.clear();
    }

    /// IS_CLEAN as the kernel would read it.
    pub fn is_clean(&self, i: usize, r: u64) -> bool {
        self.logs[i].loaded && self.clean(i, r)
    }

    /// Applies a decoded request; returns the reply error and payload.
    pub fn apply(&mut self, d: &Decoded) -> Outcome {
        self.last_durable.clear();
        match self.apply_inner(d) {
            Ok(payload) => Outcome { error: 0, payload },
            Err(ESRCH) => Outcome { error: ESRCH, payload: vec![0; reply_buffer(d.rtype)] },
            Err(error) => Outcome { error, payload: Vec::new() },
        }
    }

    /// Applies a datagram; None when it must be dropped without a reply.
    pub fn apply_datagram(&mut self, dgram: &[u8], sender: u32, port: u32) -> Option<Vec<u8>> {
        let d = decode(dgram, sender)?;
        let o = self.apply(&d);
        Some(reply_bytes(&d, port, o.error, &o.payload))
    }

    fn apply_inner(&mut self, d: &Decoded) -> Result<Vec<u8>, i32> {
        let ty = d.rtype & 0xff;
        if ty == 0 || ty > 17 {
            return Err(EINVAL);
        }
        if !(1..=3).contains(&d.version) {
            return Err(EINVAL);
        }
        if d.payload.len() > MAX_PAYLOAD {
            return Err(EINVAL);
        }
        let p = &d.payload[..];
        if ty == t::CTR {
            return self.ctr(d);
        }
        let i = self.find(&d.uuid, d.luid).ok_or(ESRCH)?;
        let n = self.logs[i].n();
        let one = |p: &[u8]| -> Result<u64, i32> {
            let b: [u8; 8] = p.try_into().map_err(|_| EINVAL)?;
            let r = u64::from_ne_bytes(b);
            if r < n {
                Ok(r)
            } else {
                Err(EINVAL)
            }
        };
        let regions = |p: &[u8]| -> Result<Vec<u64>, i32> {
            if p.len() % 8 != 0 {
                return Err(EINVAL);
            }
            Ok(p.chunks(8).map(|c| u64::from_ne_bytes(c.try_into().unwrap())).collect())
        };
        match ty {
            t::DTR => {
                let l = self.logs.remove(i);
                self.memory_used -= l.args.memory();
                let key = (l.uuid, l.luid);
                self.saved_sync.remove(&key);
                self.saved_clean.remove(&key);
                ok(vec![])
            }
            t::PRESUSPEND => ok(vec![]),
            t::POSTSUSPEND => {
                let l = &mut self.logs[i];
                let was = std::mem::replace(&mut l.resumed, false);
                if was && l.loaded && l.file.is_some() && (l.touched_dirtied || l.clears_pending) {
                    self.write_file(i);
                }
                let l = &mut self.logs[i];
                l.touched_dirtied = false;
                l.touched_cleaned = false;
                ok(vec![])
            }
            t::RESUME => self.resume(i),
            t::GET_REGION_SIZE => ok(u64s(&[u64::from(self.logs[i].args.region_size)])),
            t::IS_CLEAN => {
                let r = one(p)?;
                ok(u64s(&[u64::from(self.is_clean(i, r))]))
            }
            t::IN_SYNC => {
                let r = one(p)?;
                self.loaded(i)?;
                ok(u64s(&[u64::from(self.logs[i].sync[r as usize])]))
            }
            t::MARK_REGION => {
                let rs = regions(p)?;
                self.mark(i, &rs)?;
                ok(vec![])
            }
            t::CLEAR_REGION => {
                let rs = regions(p)?;
                self.check(i, &rs)?;
                if self.logs[i].health == b'A' {
                    for &r in &rs {
                        self.set_clean(i, r, true);
                    }
                }
                self.logs[i].touched_cleaned = true;
                ok(vec![])
            }
            t::FLUSH => {
                let rs = regions(p)?;
                if !rs.is_empty() {
                    self.mark(i, &rs)?;
                }
                let l = &self.logs[i];
                if !l.touched_dirtied && !l.touched_cleaned {
                    return ok(vec![]);
                }
                if let (Some(f), true, true) = (l.file, l.loaded && l.resumed, l.touched_dirtied) {
                    let regions = l.pending.clone();
                    self.last_durable.push(Durable { file: f, regions });
                }
                let l = &self.logs[i];
                if l.file.is_some() && l.resumed && l.loaded && (l.touched_dirtied || l.clears_pending) {
                    self.write_file(i);
                }
                let l = &mut self.logs[i];
                l.touched_dirtied = false;
                l.touched_cleaned = false;
                l.pending.clear();
                ok(vec![])
            }
            t::GET_RESYNC_WORK => {
                self.loaded(i)?;
                let l = &mut self.logs[i];
                if let Some(r) = l.last_work {
                    if l.recovering[r as usize] {
                        return ok(u64s(&[1, r]));
                    }
                }
                while l.sync_search < n {
                    let from = l.sync_search as usize;
                    let Some(off) = l.sync[from..].iter().position(|&s| !s) else {
                        l.sync_search = n;
                        break;
                    };
                    let r = (from + off) as u64;
                    l.sync_search = r + 1;
                    if !l.recovering[r as usize] {
                        l.recovering[r as usize] = true;
                        l.last_work = Some(r);
                        return ok(u64s(&[1, r]));
                    }
                }
                ok(u64s(&[0, 0]))
            }
            t::SET_REGION_SYNC => {
                if p.len() != 16 {
                    return Err(EINVAL);
                }
                let r = one(&p[..8])?;
                self.loaded(i)?;
                let v = i64::from_ne_bytes(p[8..16].try_into().unwrap()) != 0;
                let l = &mut self.logs[i];
                l.recovering[r as usize] = false;
                l.sync[r as usize] = v;
                ok(vec![])
            }
            t::GET_SYNC_COUNT => ok(u64s(&[self.logs[i].sync_count()])),
            t::STATUS_INFO => ok(cstr(&self.status_info(i))),
            t::STATUS_TABLE => ok(cstr(&self.status_table(i))),
            t::IS_REMOTE_RECOVERING => {
                one(p)?;
                self.loaded(i)?;
                let hint = self.logs[i].sync.iter().position(|&s| !s).map_or(n, |h| h as u64);
                ok(u64s(&[0, hint]))
            }
            _ => unreachable!(),
        }
    }

    pub fn status_info(&self, i: usize) -> String {
        let l = &self.logs[i];
        match &l.args.device {
            None => format!("1 {}", l.args.type_name),
            Some(dev) => format!("3 {} {} {}", l.args.type_name, dev, l.health as char),
        }
    }

    pub fn status_table(&self, i: usize) -> String {
        let a = &self.logs[i].args;
        let (argc, word) = match a.sync {
            SyncArg::Default => (0, ""),
            SyncArg::Sync => (1, "sync "),
            SyncArg::NoSync => (1, "nosync "),
        };
        match &a.device {
            None => format!("{} {} {} {}", a.type_name, 1 + argc, a.region_size, word),
            Some(dev) => format!("{} {} {} {} {}", a.type_name, 2 + argc, dev, a.region_size, word),
        }
    }

    /// A disk log no RESUME loaded: -ESRCH, so the kernel reconnects.
    fn loaded(&self, i: usize) -> Result<(), i32> {
        if self.logs[i].loaded {
            Ok(())
        } else {
            Err(ESRCH)
        }
    }

    fn check(&self, i: usize, rs: &[u64]) -> Result<(), i32> {
        self.loaded(i)?;
        let l = &self.logs[i];
        if rs.iter().any(|&r| r >= l.n()) {
            return Err(EINVAL);
        }
        Ok(())
    }

    fn mark(&mut self, i: usize, rs: &[u64]) -> Result<(), i32> {
        self.check(i, rs)?;
        for &r in rs {
            // Every mark's page is written and flushed at the next FLUSH,
            // even when the bit was 0 already.
            if self.logs[i].file.is_some() {
                self.logs[i].pending.push(r);
            }
            self.set_clean(i, r, false);
        }
        self.logs[i].touched_dirtied = true;
        Ok(())
    }

    fn ctr(&mut self, d: &Decoded) -> Result<Vec<u8>, i32> {
        let args = parse_ctr(&d.payload, self.allow_clustered)?;
        // Another log at the same luid with other arguments is dead: it is
        // replaced, once the new one is built.
        let mut replaced = None;
        if let Some(i) = self.find(&d.uuid, d.luid) {
            if self.logs[i].args == args {
                return ok(vec![]);
            }
            replaced = Some(i);
        }
        let freed = replaced.map_or(0, |i| self.logs[i].args.memory());
        let need = args.memory();
        if need > self.memory_limit.saturating_sub(self.memory_used - freed) {
            return Err(ENOMEM);
        }
        let file = match &args.device {
            None => None,
            Some(dev) => {
                let f = self.resolve(dev)?;
                if (self.files[f].bytes.len() as u64) < BITMAP_OFFSET as u64 + bitmap_bytes(args.region_count) {
                    return Err(EINVAL);
                }
                Some(f)
            }
        };
        let n = args.region_count as usize;
        let nosync = args.sync == SyncArg::NoSync;
        let reconnect = d.payload.last() == Some(&0) && replaced.is_none();
        if let Some(i) = replaced {
            let l = self.logs.remove(i);
            self.memory_used -= l.args.memory();
        }
        // State files: a reconnect CTR of the same log and size takes them
        // back; the log continues as live only if it had been resumed.
        let key = (d.uuid.clone(), d.luid);
        let saved = if self.persist_state { self.saved_sync.remove(&key) } else { None };
        let saved_clean = if self.persist_state { self.saved_clean.remove(&key) } else { None };
        let prior = match &saved {
            _ if !reconnect => Prior::New,
            Some((v, true)) if v.len() == n => Prior::Live,
            Some((v, false)) if v.len() == n => Prior::New,
            _ => Prior::Unknown,
        };
        let live = prior == Prior::Live;
        let sync = match saved {
            Some((v, _)) if live => v,
            _ => vec![nosync; n],
        };
        let clean = match saved_clean {
            Some(v) if live && file.is_none() && v.len() == n => v,
            _ => vec![true; n],
        };
        self.memory_used += need;
        self.logs.push(MLog {
            uuid: d.uuid.clone(),
            luid: d.luid,
            file,
            clean,
            sync,
            recovering: vec![false; n],
            resumed: false,
            // The state file keeps its flag when it is taken back.
            ever_resumed: live,
            loaded: file.is_none(),
            prior,
            clears_pending: false,
            sync_search: 0,
            last_work: None,
            touched_dirtied: false,
            touched_cleaned: false,
            health: b'A',
            pending: Vec::new(),
            pages: Default::default(),
            args,
        });
        // A regular file: no device name in the reply.
        ok(vec![])
    }

    fn resume(&mut self, i: usize) -> Result<Vec<u8>, i32> {
        let l = &mut self.logs[i];
        if l.resumed {
            return ok(vec![]);
        }
        l.sync_search = 0;
        l.last_work = None;
        l.recovering.iter_mut().for_each(|b| *b = false);
        l.resumed = true;
        l.ever_resumed = true;
        l.touched_dirtied = false;
        l.touched_cleaned = false;
        let prior = std::mem::replace(&mut l.prior, Prior::New);
        let Some(f) = l.file else {
            return ok(vec![]);
        };
        let n = l.n();
        let file = &mut self.files[f];
        let (magic, version, nr) = (le32(&file.bytes, 0), le32(&file.bytes, 4), le64(&file.bytes, 8));
        // A new log: `sync`/`nosync` on a table's activation, or no header.
        let fresh = match prior {
            Prior::New => l.args.sync != SyncArg::Default,
            Prior::Live => false,
            Prior::Unknown => l.args.sync == SyncArg::Sync,
        };
        let nr = if fresh || magic != MAGIC {
            0
        } else if version == 1 || version == 2 {
            nr
        } else {
            l.health = b'D';
            0
        };
        let fill = l.args.sync == SyncArg::NoSync && prior != Prior::Unknown;
        l.clean = (0..n).map(|r| if r < nr { file.bit(r) } else { fill }).collect();
        if prior != Prior::Live {
            l.sync = l.clean.clone();
        }
        l.loaded = true;
        l.clears_pending = false;
        l.pending.clear();
        l.pages.clear();
        for r in 0..n {
            file.set(r, l.clean[r as usize]);
        }
        for r in n..bitmap_bytes(n) * 8 {
            file.set(r, false);
        }
        file.bytes[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        file.bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
        file.bytes[8..16].copy_from_slice(&n.to_le_bytes());
        ok(vec![])
    }
}

// ---------------------------------------------------------------- requests

/// One request as the generator builds it, before framing.
#[derive(Clone, Debug)]
pub struct Req {
    pub uuid: Vec<u8>,
    pub luid: u64,
    pub version: u32,
    pub rtype: u32,
    pub payload: Vec<u8>,
    /// Netlink sender port (0 = the kernel).
    pub sender: u32,
    pub frame: Frame,
}

/// How the datagram around a request is (mis)framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    Good,
    /// Cut to this many bytes.
    Truncate(usize),
    WrongConnector,
    WrongNlType,
    DataPastEnd,
    /// Bytes after the netlink message (ignored by the decoder).
    Trailing(usize),
}

impl Req {
    pub fn new(uuid: &[u8], luid: u64, rtype: u32, payload: Vec<u8>) -> Req {
        Req { uuid: uuid.to_vec(), luid, version: 3, rtype, payload, sender: 0, frame: Frame::Good }
    }

    pub fn encode(&self, seq: u32) -> Vec<u8> {
        let mut b = RequestSpec {
            luid: self.luid,
            uuid: &self.uuid,
            version: self.version,
            seq,
            request_type: self.rtype,
            payload: &self.payload,
        }
        .encode();
        match self.frame {
            Frame::Good => {}
            Frame::Truncate(n) => b.truncate(n),
            Frame::WrongConnector => b[16..20].copy_from_slice(&8u32.to_ne_bytes()),
            Frame::WrongNlType => b[4..6].copy_from_slice(&2u16.to_ne_bytes()),
            Frame::DataPastEnd => {
                let ds = self.payload.len() as u32 + 1;
                b[192..196].copy_from_slice(&ds.to_ne_bytes());
            }
            Frame::Trailing(n) => b.extend(std::iter::repeat(0xa5).take(n)),
        }
        b
    }

    pub fn describe(&self) -> String {
        let mut s = format!(
            "{}(type {:#x}) {}/{:#x} v{}",
            t::name(self.rtype),
            self.rtype,
            String::from_utf8_lossy(&self.uuid),
            self.luid,
            self.version
        );
        let ty = self.rtype & 0xff;
        if ty == t::CTR {
            let _ = write!(s, " {:?}", String::from_utf8_lossy(&self.payload));
        } else if !self.payload.is_empty() {
            if self.payload.len() % 8 == 0 && self.payload.len() <= 64 {
                let v: Vec<u64> = self.payload.chunks(8).map(|c| u64::from_ne_bytes(c.try_into().unwrap())).collect();
                let _ = write!(s, " {v:?}");
            } else {
                let _ = write!(s, " <{} bytes>", self.payload.len());
            }
        }
        if self.sender != 0 {
            let _ = write!(s, " sender={}", self.sender);
        }
        if self.frame != Frame::Good {
            let _ = write!(s, " frame={:?}", self.frame);
        }
        s
    }
}

// ---------------------------------------------------------------- files

/// A scratch directory, on tmpfs when there is one (fast msync), removed
/// on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str, prefer_tmpfs: bool) -> Scratch {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let base = if prefer_tmpfs && Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let p = base.join(format!("dmulogd-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Initial content of a log file: what a previous life may have left.
pub fn random_file_image(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    match rng.below(7) {
        0 => {}                  // all zero: no log
        1 => b = rng.bytes(len), // garbage: bad magic
        k => {
            // A log header with a bitmap of random density, some garbage
            // in the unused header bytes and past the bitmap.
            for x in b.iter_mut() {
                *x = match rng.below(4) {
                    0 => 0,
                    1 => 0xff,
                    _ => rng.next_u64() as u8,
                };
            }
            let cap = ((len.saturating_sub(BITMAP_OFFSET)) / 8 * 64) as u64;
            let version = match k {
                2 => 1,
                3 => 9,
                _ => 2,
            };
            let nr = match rng.below(4) {
                0 => rng.below(cap + 1),
                1 => u64::MAX - rng.below(3),
                _ => rng.below(cap / 2 + 1),
            };
            b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
            b[4..8].copy_from_slice(&(version as u32).to_le_bytes());
            b[8..16].copy_from_slice(&nr.to_le_bytes());
        }
    }
    b
}

/// Page-cache state of the page holding byte `off` of `file`, from the
/// cachestat(2) syscall (Linux 6.5+): Some(true) when it is dirty or under
/// writeback, None when the kernel cannot say.
pub fn page_dirty(file: &std::fs::File, off: u64) -> Option<bool> {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    let range = Range { off: off & !4095, len: 4096 };
    let mut st = Stat::default();
    // SAFETY: cachestat(fd, &range, &stat, 0) reads `range` and writes
    // `stat`, both live locals of the layout the kernel expects.
    let r = unsafe { libc::syscall(451, file.as_raw_fd(), &range as *const Range, &mut st as *mut Stat, 0u32) };
    if r == 0 {
        return Some(st.nr_dirty + st.nr_writeback > 0);
    }
    page_dirty_by_eviction(file, off & !4095)
}

/// Without cachestat (Linux < 6.5): asks the kernel to drop the page from
/// the cache. A clean page goes; a dirty one is only queued for writeback
/// and stays resident (mincore), so "still resident" means "was dirty".
/// Reads the page first so a page that was not cached shows as clean.
fn page_dirty_by_eviction(file: &std::fs::File, off: u64) -> Option<bool> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 1];
    file.read_at(&mut b, off).ok()?;
    let len = libc::off_t::try_from(off).ok()?;
    // SAFETY: fadvise on an open descriptor; no memory is passed.
    if unsafe { libc::posix_fadvise(file.as_raw_fd(), len, 4096, libc::POSIX_FADV_DONTNEED) } != 0 {
        return None;
    }
    // SAFETY: a private read-only mapping of one page of an open file.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), len) };
    if p == libc::MAP_FAILED {
        return None;
    }
    let mut vec = [0u8; 1];
    // SAFETY: `p` is a live one-page mapping; `vec` has room for one page.
    let r = unsafe { libc::mincore(p, 4096, vec.as_mut_ptr()) };
    // SAFETY: unmapping what was mapped above.
    unsafe { libc::munmap(p, 4096) };
    (r == 0).then_some(vec[0] & 1 != 0)
}

/// True when `path` is on tmpfs (where pages never get written back).
pub fn on_tmpfs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: statfs writes into a zeroed local of the right type.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above; c is NUL-terminated and outlives the call.
    let r = unsafe { libc::statfs(c.as_ptr(), &mut s) };
    r == 0 && s.f_type as u64 == 0x0102_1994
}

// ---------------------------------------------------------------- generator

/// A table as the kernel knows it: what it sends again after -ESRCH.
#[derive(Clone, Debug)]
pub struct Table {
    pub uuid: Vec<u8>,
    pub luid: u64,
    pub ctr: String,
}

pub enum Step {
    Req(Req),
    /// Kill and restart the daemon (the model forgets every log).
    Restart,
}

/// Random, mostly kernel-shaped request sequences over several logs.
pub struct Gen {
    pub rng: Rng,
    /// Requests planned ahead (swaps, reconnects, resends).
    pub queue: VecDeque<Req>,
    pub tables: Vec<Table>,
    uuids: Vec<Vec<u8>>,
    next_luid: u64,
    /// Allow the Restart step.
    pub restarts: bool,
    /// Max live logs the generator aims for.
    pub max_logs: usize,
    /// Upper bound on region counts (memory of the model and checks).
    pub max_regions: u64,
}

const REGION_SIZES: [u32; 7] = [2, 8, 64, 128, 1024, 2048, 65536];

impl Gen {
    pub fn new(seed: u64) -> Gen {
        let mut rng = Rng::new(seed);
        let n = rng.range(2, 5);
        let mut uuids: Vec<Vec<u8>> =
            (0..n).map(|i| format!("LVM-mirror-{i}-{:08x}", rng.next_u64() as u32).into_bytes()).collect();
        // A 128-byte uuid (the longest the kernel sends) now and then.
        if rng.one_in(3) {
            uuids.push((0..128).map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[i % 36]).collect());
        }
        Gen {
            rng,
            queue: VecDeque::new(),
            tables: Vec::new(),
            uuids,
            next_luid: 0xffff_8880_0000_1000,
            restarts: false,
            max_logs: 8,
            max_regions: 1 << 20,
        }
    }

    fn fresh_luid(&mut self) -> u64 {
        self.next_luid += 0x1000 + (self.rng.below(16) << 4);
        self.next_luid
    }

    /// Region count distribution: mostly small (every region is hit), some
    /// spanning several pages.
    fn region_count(&mut self, cap: u64) -> u64 {
        let n = match self.rng.below(100) {
            0..=24 => self.rng.range(1, 16),
            25..=74 => self.rng.range(17, 300),
            75..=94 => self.rng.range(301, 5000),
            95..=98 => self.rng.range(5001, 70_000),
            _ => self.rng.range(70_001, self.max_regions.max(70_002)),
        };
        n.clamp(1, cap.max(1).min(self.max_regions))
    }

    fn ctr_string(&mut self, target_len: u64, kind: &str, dev: Option<&str>, rs: u32, sync: SyncArg) -> String {
        let sep = |g: &mut Gen| {
            if g.rng.one_in(10) {
                g.rng.pick(&["  ", "\t", " \t "]).to_string()
            } else {
                " ".to_string()
            }
        };
        let mut s = target_len.to_string();
        s += &sep(self);
        s += kind;
        if let Some(d) = dev {
            s += &sep(self);
            s += d;
        }
        s += &sep(self);
        s += &rs.to_string();
        match sync {
            SyncArg::Default => {}
            SyncArg::Sync => {
                s += &sep(self);
                s += "sync";
            }
            SyncArg::NoSync => {
                s += &sep(self);
                s += "nosync";
            }
        }
        if self.rng.one_in(12) {
            s += " ";
        }
        s
    }

    /// A fresh valid constructor string (mostly fitting its file).
    fn new_ctr(&mut self, m: &Model) -> String {
        let disk = !m.files.is_empty() && self.rng.percent(55);
        let rs = self.rng.pick(&REGION_SIZES);
        let sync = match self.rng.below(10) {
            0..=4 => SyncArg::Default,
            5..=6 => SyncArg::Sync,
            _ => SyncArg::NoSync,
        };
        let (dev, cap) = if disk {
            let f = &m.files[self.rng.below(m.files.len() as u64) as usize];
            let dev = if !f.aliases.is_empty() && self.rng.one_in(5) {
                self.rng.pick(&f.aliases)
            } else {
                f.path.to_str().unwrap().to_owned()
            };
            // Now and then a log one region too large for its file.
            let cap = if self.rng.one_in(25) { f.capacity() + 1 } else { f.capacity() };
            (Some(dev), cap)
        } else {
            (None, u64::MAX)
        };
        let n = if disk && self.rng.one_in(25) { cap } else { self.region_count(cap) };
        let rs64 = u64::from(rs);
        let target = if n == 1 { rs64 } else { (n - 1) * rs64 + self.rng.range(1, rs64) };
        let kind = if disk { "disk" } else { "core" };
        self.ctr_string(target, kind, dev.as_deref(), rs, sync)
    }

    /// A constructor string that must be refused (or fail to open).
    fn bad_ctr(&mut self, m: &Model) -> Vec<u8> {
        let file =
            m.files.first().map(|f| f.path.to_str().unwrap().to_owned()).unwrap_or_else(|| "/nonexistent".into());
        let s: String = match self.rng.below(22) {
            0 => String::new(),
            1 => "8192".into(),
            2 => "0 core 1024".into(),
            3 => "-8192 core 1024".into(),
            4 => "8192 core 1000".into(),
            5 => "8192 core 1".into(),
            6 => "8192 core 16384".into(),
            7 => "8192 core 1024 maybe".into(),
            8 => "8192 core".into(),
            9 => "8192 core 1024 sync extra".into(),
            10 => "8192 disk 1024".into(),
            11 => "8192 fancy 1024".into(),
            12 => "8192 clustered-core 1024".into(),
            13 => format!("8192 clustered-disk {file} 1024"),
            14 => "18446744073709551616 core 2".into(),
            15 => "8192 core 4294967296".into(),
            // A missing relative path (absolute ones are also looked up in
            // PID 1's root: tests/limits.rs missing_log_file_is_enoent).
            16 => "8192 disk dmulogd-no-such-dir/log 1024".into(),
            17 => format!("8192 disk {file}/x 1024"),
            18 => "8192 disk /dev/null 8".into(),
            19 => "18446744073709551615 core 2".into(),
            20 => "8192 CORE 1024".into(),
            _ => {
                let k = self.rng.range(1, 40) as usize;
                let mut v = self.rng.bytes(k);
                v.push(0xff); // never valid UTF-8
                return v;
            }
        };
        s.into_bytes()
    }

    fn pick_log(&mut self, m: &Model) -> Option<usize> {
        if m.logs.is_empty() {
            return None;
        }
        // Prefer resumed logs: that is where the kernel's I/O goes.
        for _ in 0..3 {
            let i = self.rng.below(m.logs.len() as u64) as usize;
            if m.logs[i].resumed {
                return Some(i);
            }
        }
        Some(self.rng.below(m.logs.len() as u64) as usize)
    }

    fn region(&mut self, n: u64) -> u64 {
        match self.rng.below(12) {
            0 => 0,
            1 => n - 1,
            2 => (self.rng.pick(&[7u64, 8, 63, 64, 65, 32767, 32768, 32769]) + n - 1) % n,
            3..=5 => self.rng.below(n.min(12)),
            _ => self.rng.below(n),
        }
    }

    fn bad_region(&mut self, n: u64) -> u64 {
        match self.rng.below(6) {
            0 => n,
            1 => n + 1,
            2 => u64::MAX,
            3 => 1 << 63,
            4 => n + self.rng.below(1 << 20),
            _ => self.rng.range(n, u64::MAX),
        }
    }

    fn batch(&mut self, n: u64, max: u64) -> Vec<u64> {
        let k = if self.rng.one_in(20) { 0 } else { self.rng.range(1, max) };
        (0..k).map(|_| self.region(n)).collect()
    }

    /// The next step for the daemon and the model.
    pub fn next(&mut self, m: &Model) -> Step {
        if !self.queue.is_empty() && self.rng.percent(65) {
            return Step::Req(self.queue.pop_front().unwrap());
        }
        let roll = self.rng.below(1000);
        // Life cycle.
        if roll < 40 || m.logs.is_empty() {
            if m.logs.len() >= self.max_logs && !m.logs.is_empty() {
                let i = self.rng.below(m.logs.len() as u64) as usize;
                return Step::Req(self.dtr_req(m, i));
            }
            return Step::Req(self.ctr_new(m));
        }
        if roll < 50 {
            return Step::Req(self.ctr_bad(m));
        }
        let i = self.pick_log(m).unwrap();
        let (uuid, luid, n) = (m.logs[i].uuid.clone(), m.logs[i].luid, m.logs[i].n());
        let req = |ty: u32, p: Vec<u8>| Req::new(&uuid, luid, ty, p);
        if roll < 70 {
            // Resent CTR: identical, reconnect form, or different arguments.
            let tbl = self.tables.iter().find(|tb| tb.uuid == uuid && tb.luid == luid).cloned();
            let Some(tbl) = tbl else { return Step::Req(req(t::GET_SYNC_COUNT, vec![])) };
            let mut p = tbl.ctr.clone().into_bytes();
            match self.rng.below(4) {
                0 => p.push(0),
                1 => {
                    let other = self.new_ctr(m);
                    p = other.into_bytes();
                }
                _ => {}
            }
            return Step::Req(req(t::CTR, p));
        }
        if roll < 100 {
            let r = req(t::RESUME, vec![]);
            if self.rng.one_in(4) {
                self.queue.push_back(r.clone()); // resent
            }
            return Step::Req(r);
        }
        if roll < 120 {
            self.queue.push_back(req(t::POSTSUSPEND, vec![]));
            if self.rng.percent(70) {
                self.queue.push_back(req(t::RESUME, vec![]));
            }
            return Step::Req(req(t::PRESUSPEND, vec![]));
        }
        if roll < 135 {
            let r = self.dtr_req(m, i);
            if self.rng.one_in(4) {
                self.queue.push_back(r.clone()); // resent: -ESRCH
            }
            return Step::Req(r);
        }
        if roll < 148 {
            return Step::Req(self.table_swap(m, i));
        }
        if roll < 152 && self.restarts {
            return Step::Restart;
        }
        if roll < 250 {
            return Step::Req(self.invalid(m, i));
        }
        // I/O and queries on log i.
        let roll = self.rng.below(100);
        let r = match roll {
            0..=17 => req(t::MARK_REGION, regions_payload(&self.batch(n, 32))),
            18..=29 => req(t::CLEAR_REGION, regions_payload(&self.batch(n, 32))),
            30..=39 => req(t::FLUSH, vec![]),
            40..=45 => req(t::FLUSH, regions_payload(&self.batch(n, 32))),
            46..=52 => req(t::IS_CLEAN, self.region(n).to_ne_bytes().to_vec()),
            53..=59 => req(t::IN_SYNC, self.region(n).to_ne_bytes().to_vec()),
            60..=67 => {
                let r = req(t::GET_RESYNC_WORK, vec![]);
                if self.rng.one_in(4) {
                    self.queue.push_front(r.clone()); // resent before SET_REGION_SYNC
                }
                r
            }
            68..=77 => {
                let region = match m.logs[i].last_work {
                    Some(w) if self.rng.percent(75) => w,
                    _ => self.region(n),
                };
                let v: i64 = match self.rng.below(10) {
                    0..=6 => 1,
                    7 => 0,
                    8 => -1,
                    _ => self.rng.pick(&[2, i64::MIN, i64::MAX]),
                };
                let mut p = region.to_ne_bytes().to_vec();
                p.extend_from_slice(&v.to_ne_bytes());
                req(t::SET_REGION_SYNC, p)
            }
            78..=83 => req(t::GET_SYNC_COUNT, vec![]),
            84..=86 => req(t::STATUS_INFO, vec![]),
            87..=88 => req(t::STATUS_TABLE, vec![]),
            89..=95 => req(t::IS_REMOTE_RECOVERING, self.region(n).to_ne_bytes().to_vec()),
            96..=97 => req(t::GET_REGION_SIZE, vec![]),
            _ => req(t::PRESUSPEND, vec![]),
        };
        let mut r = r;
        if self.rng.one_in(12) {
            r.version = self.rng.pick(&[1, 2]);
        }
        if matches!(r.rtype, t::MARK_REGION | t::CLEAR_REGION | t::FLUSH | t::SET_REGION_SYNC) && self.rng.one_in(8) {
            self.queue.push_front(r.clone()); // the kernel's resend after 15 s
        }
        Step::Req(r)
    }

    fn dtr_req(&mut self, m: &Model, i: usize) -> Req {
        Req::new(&m.logs[i].uuid, m.logs[i].luid, t::DTR, vec![])
    }

    fn ctr_new(&mut self, m: &Model) -> Req {
        let uuid = self.rng.pick(&self.uuids);
        let luid = self.fresh_luid();
        let ctr = self.new_ctr(m);
        let mut p = ctr.clone().into_bytes();
        if self.rng.one_in(10) {
            p.push(0); // a reconnect-shaped CTR for a new log
        }
        let r = Req::new(&uuid, luid, t::CTR, p);
        if self.rng.percent(85) {
            self.queue.push_back(Req::new(&uuid, luid, t::RESUME, vec![]));
        }
        r
    }

    fn ctr_bad(&mut self, m: &Model) -> Req {
        let (uuid, luid) = match self.pick_log(m) {
            Some(i) if self.rng.one_in(3) => (m.logs[i].uuid.clone(), m.logs[i].luid),
            _ => (self.rng.pick(&self.uuids), self.fresh_luid()),
        };
        let p = self.bad_ctr(m);
        Req::new(&uuid, luid, t::CTR, p)
    }

    /// A table reload: CTR of the new table (same uuid, new luid, same log
    /// device, maybe resized) while the old one is live, then suspend the
    /// old, resume the new, destroy the old — with other requests between.
    fn table_swap(&mut self, m: &Model, i: usize) -> Req {
        let old = &m.logs[i];
        let (uuid, old_luid) = (old.uuid.clone(), old.luid);
        let luid = self.fresh_luid();
        let ctr = match &old.args.device {
            Some(dev) if self.rng.percent(80) => {
                let f = old.file.unwrap();
                let cap = m.files[f].capacity();
                let n = if self.rng.one_in(3) { self.region_count(cap) } else { old.n() };
                let rs = old.args.region_size;
                let target =
                    if n == 1 { u64::from(rs) } else { (n - 1) * u64::from(rs) + self.rng.range(1, u64::from(rs)) };
                let sync = if self.rng.percent(70) { SyncArg::Default } else { old.args.sync };
                self.ctr_string(target, "disk", Some(dev), rs, sync)
            }
            _ => self.new_ctr(m),
        };
        let q = |ty| Req::new(&uuid, old_luid, ty, vec![]);
        self.queue.push_back(q(t::PRESUSPEND));
        self.queue.push_back(q(t::POSTSUSPEND));
        self.queue.push_back(Req::new(&uuid, luid, t::RESUME, vec![]));
        self.queue.push_back(q(t::DTR));
        Req::new(&uuid, luid, t::CTR, ctr.into_bytes())
    }

    /// A request the daemon must refuse (or, for a few framing shapes,
    /// drop), aimed at log i.
    fn invalid(&mut self, m: &Model, i: usize) -> Req {
        let l = &m.logs[i];
        let (uuid, luid, n) = (l.uuid.clone(), l.luid, l.n());
        let mut r = Req::new(&uuid, luid, t::GET_SYNC_COUNT, vec![]);
        match self.rng.below(16) {
            0 => {
                let mut rs = self.batch(n, 31);
                let at = self.rng.below(rs.len() as u64 + 1) as usize;
                rs.insert(at, self.bad_region(n));
                r.rtype = self.rng.pick(&[t::MARK_REGION, t::CLEAR_REGION, t::FLUSH]);
                r.payload = regions_payload(&rs);
            }
            1 => {
                r.rtype = self.rng.pick(&[t::IS_CLEAN, t::IN_SYNC, t::IS_REMOTE_RECOVERING]);
                r.payload = self.bad_region(n).to_ne_bytes().to_vec();
            }
            2 => {
                let mut p = self.bad_region(n).to_ne_bytes().to_vec();
                p.extend_from_slice(&1i64.to_ne_bytes());
                r.rtype = t::SET_REGION_SYNC;
                r.payload = p;
            }
            3 => {
                // Ragged region arrays.
                r.rtype = self.rng.pick(&[t::MARK_REGION, t::CLEAR_REGION, t::FLUSH]);
                let mut p = regions_payload(&self.batch(n, 8));
                p.extend(std::iter::repeat(0).take(self.rng.range(1, 7) as usize));
                r.payload = p;
            }
            4 => {
                // Wrong sizes for fixed payloads.
                r.rtype = self.rng.pick(&[t::IS_CLEAN, t::IN_SYNC, t::IS_REMOTE_RECOVERING, t::SET_REGION_SYNC]);
                let len = self.rng.pick(&[0usize, 4, 7, 9, 15, 16, 17, 24]);
                let len = if r.rtype == t::SET_REGION_SYNC && len == 16 {
                    8
                } else if len == 8 {
                    0
                } else {
                    len
                };
                r.payload = vec![0; len];
            }
            5 => {
                // Larger than the kernel can send.
                r.rtype = self.rng.pick(&[t::MARK_REGION, t::CLEAR_REGION, t::FLUSH, t::CTR, t::GET_SYNC_COUNT]);
                let k = self.rng.range(42, 120);
                r.payload = regions_payload(&(0..k).map(|_| self.region(n)).collect::<Vec<_>>());
                if self.rng.one_in(2) {
                    r.payload.truncate(MAX_PAYLOAD + 1 + self.rng.below(30) as usize);
                }
            }
            6 => r.rtype = self.rng.pick(&[0, 18, 19, 255, 0x100, 0x1200, 0xffff_ff00, u32::MAX]),
            7 => {
                // High bits of request_type are ignored: still valid.
                r.rtype = self.rng.pick(&[t::GET_SYNC_COUNT, t::IN_SYNC, t::STATUS_INFO])
                    | (self.rng.range(1, 0xff_ffff) as u32) << 8;
                if r.rtype & 0xff == t::IN_SYNC {
                    r.payload = self.region(n).to_ne_bytes().to_vec();
                }
            }
            8 => r.version = self.rng.pick(&[0, 4, 5, 0x100, u32::MAX]),
            9 => r.luid ^= 1 << self.rng.below(64),
            10 => {
                r.uuid = self.rng.pick(&self.uuids);
                if r.uuid == uuid {
                    r.uuid.push(b'x');
                }
            }
            11 => {
                // Every request type on an unknown log.
                r.luid = self.fresh_luid();
                r.rtype = self.rng.range(2, 17) as u32;
                let k = self.rng.pick(&[0usize, 8, 16, 12]);
                r.payload = self.rng.bytes(k);
            }
            12 => r.sender = self.rng.pick(&[1, 4242, u32::MAX]),
            13 => {
                r.frame = self.rng.pick(&[
                    Frame::Truncate(0),
                    Frame::Truncate(15),
                    Frame::Truncate(195),
                    Frame::WrongConnector,
                    Frame::WrongNlType,
                    Frame::DataPastEnd,
                ]);
                r.rtype = t::MARK_REGION;
                r.payload = regions_payload(&[self.region(n)]);
            }
            14 => {
                // Trailing bytes after the message: ignored, the request counts.
                r.frame = Frame::Trailing(self.rng.range(1, 64) as usize);
                r.rtype = t::IN_SYNC;
                r.payload = self.region(n).to_ne_bytes().to_vec();
            }
            _ => {
                // Payload on requests that take none: ignored.
                r.rtype = self.rng.pick(&[
                    t::GET_SYNC_COUNT,
                    t::GET_REGION_SIZE,
                    t::STATUS_INFO,
                    t::PRESUSPEND,
                    t::GET_RESYNC_WORK,
                ]);
                let k = self.rng.range(1, 24) as usize;
                r.payload = self.rng.bytes(k);
            }
        }
        r
    }

    /// Learns from the reply what the kernel would: tables built and
    /// destroyed, and -ESRCH, which makes the kernel resend CTR (with its
    /// NUL) and RESUME before anything else.
    pub fn observe(&mut self, r: &Req, error: Option<i32>) {
        let Some(error) = error else { return };
        let ty = r.rtype & 0xff;
        if r.version == 0 || r.version > 3 || r.sender != 0 || !(1..=17).contains(&ty) {
            return;
        }
        let pos = self.tables.iter().position(|tb| tb.uuid == r.uuid && tb.luid == r.luid);
        match (ty, error, pos) {
            (t::CTR, 0, None) => {
                let end = r.payload.iter().position(|&b| b == 0).unwrap_or(r.payload.len());
                let ctr = String::from_utf8_lossy(&r.payload[..end]).into_owned();
                self.tables.push(Table { uuid: r.uuid.clone(), luid: r.luid, ctr });
            }
            (t::CTR, 0, Some(p)) if r.payload.last() != Some(&0) => {
                // Other arguments at a live luid replace the log.
                let end = r.payload.iter().position(|&b| b == 0).unwrap_or(r.payload.len());
                self.tables[p].ctr = String::from_utf8_lossy(&r.payload[..end]).into_owned();
            }
            (t::DTR, 0, Some(p)) => {
                self.tables.remove(p);
            }
            (ty, ESRCH, Some(p)) if ty != t::DTR && ty != t::CTR => {
                let tb = self.tables[p].clone();
                let mut c = tb.ctr.clone().into_bytes();
                c.push(0);
                self.queue.push_front(r.clone());
                self.queue.push_front(Req::new(&tb.uuid, tb.luid, t::RESUME, vec![]));
                self.queue.push_front(Req::new(&tb.uuid, tb.luid, t::CTR, c));
            }
            _ => {}
        }
    }

    /// After a restart: the kernel's tables whose next request will get
    /// -ESRCH; poke each so the reconnect happens soon.
    pub fn after_restart(&mut self) {
        self.queue.clear();
        for tb in self.tables.clone() {
            self.queue.push_back(Req::new(&tb.uuid, tb.luid, t::GET_SYNC_COUNT, vec![]));
        }
    }
}

// ---------------------------------------------------------------- worlds

/// Files for a world: a few sizes, a random previous life each, an alias
/// spelling, and device arguments that do not open as log devices.
pub fn make_files(rng: &mut Rng, dir: &Path, model: &mut Model, big: bool) {
    let mut sizes = vec![BITMAP_OFFSET + 8, BITMAP_OFFSET + 40, BITMAP_OFFSET + 4096, BITMAP_OFFSET + 3 * 4096 + 512];
    if big {
        // Over 64 pages of bitmap: the touched-page list overflows.
        sizes.push(BITMAP_OFFSET + 70 * 4096 + 8);
    }
    for (k, len) in sizes.into_iter().enumerate() {
        let path = dir.join(format!("log{k}"));
        let bytes = random_file_image(rng, len);
        std::fs::write(&path, &bytes).unwrap();
        let alias = format!("{}/./log{k}", dir.display());
        model.files.push(MFile { path, aliases: vec![alias], bytes });
    }
    model.special.push((dir.display().to_string(), EISDIR));
    model.special.push(("/dev/null".into(), EINVAL));
    let first = model.files[0].path.display().to_string();
    model.special.push((format!("{first}/x"), -libc::ENOTDIR));
    model.special.push(("dmulogd-no-such-dir/log".into(), ENOENT));
}

/// Compares every model file with the bytes on disk. A live log with clean
/// bits waiting may have been written by the binary's clear timer: its
/// file may then hold the log's in-memory bits instead.
pub fn check_files(model: &Model) -> Result<(), String> {
    for (k, f) in model.files.iter().enumerate() {
        let disk = std::fs::read(&f.path).map_err(|e| format!("{}: {e}", f.path.display()))?;
        let timer_wrote =
            model.logs.iter().filter(|l| l.file == Some(k) && l.resumed && l.loaded && l.clears_pending).any(|l| {
                let mut alt = MFile { path: f.path.clone(), aliases: Vec::new(), bytes: f.bytes.clone() };
                Model::write_pages(l, &mut alt);
                alt.bytes == disk
            });
        if disk != f.bytes && !timer_wrote {
            let first = disk.iter().zip(&f.bytes).position(|(a, b)| a != b).unwrap_or(disk.len().min(f.bytes.len()));
            let what = if first < 16 {
                "header".to_string()
            } else if first >= BITMAP_OFFSET {
                format!(
                    "bitmap byte {} (regions {}..{})",
                    first - BITMAP_OFFSET,
                    (first - BITMAP_OFFSET) * 8,
                    (first - BITMAP_OFFSET) * 8 + 8
                )
            } else {
                "unused header bytes".to_string()
            };
            return Err(format!(
                "{}: on-disk bytes differ from the model at offset {first} ({what}): disk {:#04x}, model {:#04x} (len {} vs {})",
                f.path.display(),
                disk.get(first).copied().unwrap_or(0),
                f.bytes.get(first).copied().unwrap_or(0),
                disk.len(),
                f.bytes.len()
            ));
        }
    }
    Ok(())
}

/// Everything a kernel could observe about every log, in a stable order.
pub fn snapshot(reg: &dmulogd::registry::Registry) -> Vec<u8> {
    let mut logs: Vec<_> = reg.iter().collect();
    logs.sort_by(|a, b| (&a.uuid, a.luid).cmp(&(&b.uuid, b.luid)));
    let mut s = Vec::new();
    for l in logs {
        s.extend_from_slice(&l.uuid);
        s.extend_from_slice(&l.luid.to_ne_bytes());
        s.push(u8::from(l.is_resumed()));
        s.extend_from_slice(format!("{:?}", l.health()).as_bytes());
        s.extend_from_slice(&l.sync_count().to_ne_bytes());
        s.extend_from_slice(l.clean_bits().bytes());
        let n = l.region_count();
        let mut byte = 0u8;
        for r in 0..n {
            byte = byte << 1 | u8::from(l.in_sync(r).unwrap_or(false)) << 1 | u8::from(l.is_clean(r).unwrap());
            if r % 4 == 3 {
                s.push(byte);
                byte = 0;
            }
        }
        s.push(byte);
        s.extend_from_slice(l.status_info().as_bytes());
        s.extend_from_slice(l.status_table().as_bytes());
    }
    s
}

/// Compares the daemon's registry with the model log by log.
pub fn check_registry(model: &Model, reg: &mut dmulogd::registry::Registry, rng: &mut Rng) -> Result<(), String> {
    use dmulogd::log::Health;
    if reg.len() != model.logs.len() {
        return Err(format!("daemon has {} logs, model {}", reg.len(), model.logs.len()));
    }
    for (i, ml) in model.logs.iter().enumerate() {
        let name = format!("{}/{:#x}", String::from_utf8_lossy(&ml.uuid), ml.luid);
        let dl = reg.get(&ml.uuid, ml.luid).map_err(|e| format!("log {name} missing in the daemon: {e}"))?;
        let health = match dl.health() {
            Health::Alive => b'A',
            Health::Failed => b'D',
            Health::FlushFailed => b'F',
        };
        if (dl.is_resumed(), health, dl.sync_count()) != (ml.resumed, ml.health, ml.sync_count()) {
            return Err(format!(
                "log {name}: daemon resumed={} health={} sync_count={}, model resumed={} health={} sync_count={}",
                dl.is_resumed(),
                health as char,
                dl.sync_count(),
                ml.resumed,
                ml.health as char,
                ml.sync_count()
            ));
        }
        let n = ml.n();
        let all = n <= 8192;
        let count = if all { n } else { 4096 };
        for k in 0..count {
            let r = if all { k } else { rng.below(n) };
            // A disk log no RESUME loaded answers IN_SYNC with -ESRCH.
            let (c, s) = (dl.is_clean(r).unwrap(), dl.in_sync(r).ok());
            if c != model.is_clean(i, r) || s != ml.loaded.then_some(ml.sync[r as usize]) {
                return Err(format!(
                    "log {name} region {r}: daemon clean={c} in_sync={s:?}, model clean={} in_sync={}",
                    model.is_clean(i, r),
                    ml.sync[r as usize]
                ));
            }
        }
        if dl.status_info() != model.status_info(i) || dl.status_table() != model.status_table(i) {
            return Err(format!(
                "log {name}: status {:?}/{:?}, model {:?}/{:?}",
                dl.status_info(),
                dl.status_table(),
                model.status_info(i),
                model.status_table(i)
            ));
        }
    }
    Ok(())
}

/// The daemon's request handling in this process.
pub struct InProc {
    pub server: dmulogd::server::Server,
    pub port: u32,
    out: Vec<u8>,
    opts: dmulogd::registry::Options,
    memory_limit: u64,
}

impl InProc {
    /// `state`: keep state files in `<run_dir>/state` as the binary does.
    pub fn new(memory_limit: u64, allow_clustered: bool, run_dir: &Path, state: bool) -> InProc {
        // Legs that always flush: clean bits go out with the next write.
        let opts = dmulogd::registry::Options {
            allow_clustered,
            state_dir: state.then(|| run_dir.join("state")),
            legs: dmulogd::dm::LegSource::Paths(Vec::new()),
        };
        InProc {
            server: Self::server(&opts, memory_limit),
            port: 4321,
            out: vec![0; dmulogd::wire::SEND_BUF_LEN],
            opts,
            memory_limit,
        }
    }

    fn server(opts: &dmulogd::registry::Options, memory_limit: u64) -> dmulogd::server::Server {
        dmulogd::server::Server::new(dmulogd::registry::Registry::new(opts.clone(), memory_limit))
    }

    /// A fresh daemon: what a restart leaves (state files stay).
    pub fn restart(&mut self) {
        self.server = Self::server(&self.opts, self.memory_limit);
        self.port += 1;
    }

    pub fn handle(&mut self, dgram: &[u8], sender: u32) -> Option<Vec<u8>> {
        let n = self.server.handle_datagram(dgram, sender, self.port, &mut self.out)?;
        Some(self.out[..n].to_vec())
    }
}

/// Explains how two reply datagrams differ.
pub fn diff_reply(expected: &Option<Vec<u8>>, actual: &Option<Vec<u8>>) -> String {
    let show = |r: &Option<Vec<u8>>| match r {
        None => "no reply (dropped)".to_string(),
        Some(b) => match decode_reply(b) {
            Some((err, p)) => format!("error {err}, payload {}", show_payload(&p)),
            None => format!("{} bytes that do not decode", b.len()),
        },
    };
    let mut s = format!("expected {}; got {}", show(expected), show(actual));
    if let (Some(e), Some(a)) = (expected, actual) {
        if let Some(at) = e.iter().zip(a.iter()).position(|(x, y)| x != y) {
            let _ = write!(s, " (first differing byte at offset {at})");
        } else if e.len() != a.len() {
            let _ = write!(s, " (lengths {} vs {})", e.len(), a.len());
        }
    }
    s
}

pub fn decode_reply(b: &[u8]) -> Option<(i32, Vec<u8>)> {
    (b.len() >= HEADERS).then(|| (i32::from_ne_bytes(b[180..184].try_into().unwrap()), b[HEADERS..].to_vec()))
}

pub fn show_payload(p: &[u8]) -> String {
    if p.is_empty() {
        "[]".into()
    } else if p.last() == Some(&0) && p[..p.len() - 1].iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
        format!("{:?}+NUL", String::from_utf8_lossy(&p[..p.len() - 1]))
    } else if p.len() % 8 == 0 {
        format!("{:?}", p.chunks(8).map(|c| u64::from_ne_bytes(c.try_into().unwrap())).collect::<Vec<_>>())
    } else {
        format!("{p:02x?}")
    }
}

/// Prints how to replay a run if it ends in a panic that is not ours (a
/// panic inside the daemon's code, in process).
pub struct ReplayOnPanic(pub String);

impl Drop for ReplayOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.0);
        }
    }
}

/// The last requests of a run, for failure messages.
#[derive(Default)]
pub struct Trace {
    lines: VecDeque<String>,
}

impl Trace {
    pub fn push(&mut self, s: String) {
        if self.lines.len() == 40 {
            self.lines.pop_front();
        }
        self.lines.push_back(s);
    }
    pub fn dump(&self) -> String {
        self.lines.iter().map(|l| format!("    {l}\n")).collect()
    }
}
