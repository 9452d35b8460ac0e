//! Random, mostly kernel-shaped request sequences over several logs: the
//! requests (and how their datagrams are framed or misframed), the tables
//! the kernel knows, and the generator that resends, reconnects, swaps
//! tables and restarts the daemon as the kernel and an operator would.

use super::*;
use dmulogd::wire::RequestSpec;
use std::collections::VecDeque;
use std::fmt::Write as _;

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
