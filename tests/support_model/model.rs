//! The log model: constructor arguments, the log files as the model
//! expects them on disk, and every request's effect on a log and its reply
//! (docs/protocol.md §3–4 and dm-log.c, plus the deviations listed in
//! mod.rs).

use super::codec::{cstr, le32, le64, u64s};
use super::*;
use std::collections::HashMap;
use std::path::PathBuf;

// ---------------------------------------------------------------- on-disk format

pub const MAGIC: u32 = 0x4D69_5272;
pub const BITMAP_OFFSET: usize = 1024;

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
    /// Pages of marks not written yet (MARK writes them at once, marks
    /// only, when the log is live), and pages of clears that changed a bit
    /// since the last write (written whole after a leg flush).
    pub mark_pages: std::collections::BTreeSet<usize>,
    pub clear_pages: std::collections::BTreeSet<usize>,
    /// Pages of clears whose legs were flushed, in `disk` already: written
    /// with the next marks (or by the timer, or at POSTSUSPEND).
    pub staged_pages: std::collections::BTreeSet<usize>,
    /// The bits the daemon's image of the device holds (what it last wrote
    /// or read): a marks-only write is `disk &= clean`.
    pub disk: Vec<bool>,
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
            let page = (BITMAP_OFFSET + (r / 8) as usize) / 4096;
            if v {
                l.clear_pages.insert(page);
                l.clears_pending = true;
            } else {
                l.mark_pages.insert(page);
            }
        }
        l.clean[r as usize] = v;
    }

    /// The daemon writes `pages` of log `l` into `file`: its image of the
    /// device, updated from its in-memory bits — whole (`with_clears`, after
    /// a leg flush) or marks only (`disk &= clean`). Header bytes are the
    /// log's header; bytes 16..1024 stay as the file has them; padding
    /// bits are clear. Pages at most `MERGE_GAP_PAGES` apart go out in one
    /// write, the pages between them as the daemon's image has them.
    #[allow(clippy::needless_range_loop)]
    pub fn write_pages(l: &mut MLog, file: &mut MFile, pages: &std::collections::BTreeSet<usize>, with_clears: bool) {
        const MERGE_GAP_PAGES: usize = 64; // src/image.rs MERGE_GAP, 256 KiB
        let n = l.n();
        let len = BITMAP_OFFSET + bitmap_bytes(n) as usize;
        let mut header = Vec::new();
        header.extend_from_slice(&MAGIC.to_le_bytes());
        header.extend_from_slice(&2u32.to_le_bytes());
        header.extend_from_slice(&n.to_le_bytes());
        let mut written = Vec::new();
        for &p in pages {
            match written.last_mut() {
                Some((_, hi)) if p <= *hi + 1 + MERGE_GAP_PAGES => *hi = p,
                _ => written.push((p, p)),
            }
        }
        for p in written.into_iter().flat_map(|(lo, hi)| lo..=hi) {
            let touched = pages.contains(&p);
            for o in p * 4096..((p + 1) * 4096).min(len) {
                if o < 16 {
                    file.bytes[o] = header[o];
                } else if o >= BITMAP_OFFSET {
                    let first = ((o - BITMAP_OFFSET) * 8) as u64;
                    file.bytes[o] = (0..8).fold(0u8, |b, k| {
                        let r = first + k;
                        if r >= n {
                            return b;
                        }
                        let d = &mut l.disk[r as usize];
                        if touched {
                            *d = l.clean[r as usize] && (with_clears || *d);
                        }
                        b | (u8::from(*d) << k)
                    });
                }
            }
        }
    }

    /// The legs were flushed (they always are in the harness): the clean
    /// bits of cleared pages go into the daemon's image, to be written
    /// with the next marks.
    pub fn stage(l: &mut MLog) {
        let n = l.n();
        for &p in &l.clear_pages {
            for o in (p * 4096).max(BITMAP_OFFSET)..(p + 1) * 4096 {
                let first = ((o - BITMAP_OFFSET) * 8) as u64;
                for r in first..(first + 8).min(n) {
                    l.disk[r as usize] = l.clean[r as usize];
                }
            }
        }
        let pages = std::mem::take(&mut l.clear_pages);
        l.staged_pages.extend(pages);
    }

    /// MARK on a live disk log: its pages go out at once, marks only, with
    /// the staged pages.
    fn write_marks(&mut self, i: usize) {
        let Some(f) = self.logs[i].file else { return };
        let l = &mut self.logs[i];
        let mut pages = std::mem::take(&mut l.mark_pages);
        pages.extend(std::mem::take(&mut l.staged_pages));
        Self::write_pages(l, &mut self.files[f], &pages, false);
        l.clears_pending = !l.clear_pages.is_empty();
    }

    /// The clear timer or POSTSUSPEND: legs flushed, then marks not
    /// written yet and every staged page.
    fn write_file(&mut self, i: usize) {
        if self.logs[i].file.is_none() {
            return;
        }
        Self::stage(&mut self.logs[i]);
        self.write_marks(i);
        let l = &mut self.logs[i];
        l.clears_pending = false;
        l.pending.clear();
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
                    self.check(i, &rs)?;
                    // An integrated FLUSH flushes the legs before it
                    // writes its marks, and its clean bits go with them.
                    let l = &mut self.logs[i];
                    if l.file.is_some() && l.resumed && l.loaded {
                        Self::stage(l);
                    }
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
                // Legs flushed, clean bits staged for the next MARK (a MARK
                // wrote the marks already).
                let l = &mut self.logs[i];
                if l.file.is_some() && l.resumed && l.loaded && (l.touched_dirtied || l.clears_pending) {
                    Self::stage(l);
                    if !l.mark_pages.is_empty() {
                        self.write_marks(i);
                    }
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
        if self.logs[i].resumed {
            self.write_marks(i);
        }
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
            mark_pages: Default::default(),
            clear_pages: Default::default(),
            staged_pages: Default::default(),
            disk: vec![false; n],
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
        l.mark_pages.clear();
        l.clear_pages.clear();
        l.staged_pages.clear();
        l.disk = l.clean.clone();
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
