//! Deterministic random-datagram test: real kernel-shaped messages for live
//! logs, mutated (bit flips, truncation, extension, field overwrites with
//! interesting values, data_size past the end, wrong connector ids and
//! netlink types, huge payloads, non-kernel senders, spliced payloads) and
//! fed to `Server::handle_datagram` on a registry with live core and
//! file-backed disk logs.
//!
//! Two oracles per datagram: the reference model (reply byte for byte), and
//! for every message the model says is rejected (dropped, or an error
//! reply), a snapshot of everything observable about every log before and
//! after — it must not change. Files are compared with the model every 64
//! datagrams.
//!
//! Replay: DMULOGD_SEED=0x... DMULOGD_STEPS=N cargo test --release --test fuzz_datagrams -- --nocapture
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]

mod common;
mod support_model;

use common::TempDir;
use support_model::*;

const NL_FIELDS: &[(usize, usize)] = &[
    (0, 4),   // nlmsg_len
    (4, 2),   // nlmsg_type
    (6, 2),   // nlmsg_flags
    (8, 4),   // nlmsg_seq
    (12, 4),  // nlmsg_pid
    (16, 4),  // cn idx
    (20, 4),  // cn val
    (24, 4),  // cn seq
    (28, 4),  // cn ack
    (32, 2),  // cn len
    (34, 2),  // cn flags
    (36, 8),  // luid
    (44, 1),  // uuid[0]
    (171, 1), // uuid[127]
    (172, 1), // uuid[128]: the NUL the kernel always leaves
    (173, 3), // padding
    (176, 4), // version
    (180, 4), // error
    (184, 4), // seq
    (188, 4), // request_type
    (192, 4), // data_size
];

/// The low `w` bytes of `v` as a field of that width holds them: integers
/// (2, 4 or 8 bytes) in native order, byte strings (uuid bytes, padding)
/// low byte first. Slicing `to_ne_bytes()` instead would hand a big-endian
/// host the high bytes, 0 for every small value, and the interesting
/// lengths would never reach the 16-bit fields there.
fn field_bytes(v: u64, w: usize) -> Vec<u8> {
    match w {
        2 => (v as u16).to_ne_bytes().to_vec(),
        4 => (v as u32).to_ne_bytes().to_vec(),
        8 => v.to_ne_bytes().to_vec(),
        _ => v.to_le_bytes()[..w].to_vec(),
    }
}

struct BaseLog {
    uuid: Vec<u8>,
    luid: u64,
    ctr: String,
    /// Resumed (live) or only constructed (an inactive table).
    live: bool,
}

struct World {
    _dir: TempDir,
    model: Model,
    d: InProc,
    rng: Rng,
    base: Vec<BaseLog>,
    seq: u32,
    trace: Trace,
    seed: u64,
    steps: u64,
    step: u64,
}

impl World {
    fn fail(&self, what: &str) -> ! {
        panic!(
            "\nfuzz_datagrams: seed {:#018x}, step {}: {what}\nlast datagrams:\n{}\
             replay: DMULOGD_SEED={:#x} DMULOGD_STEPS={} cargo test --release --test fuzz_datagrams -- --nocapture\n",
            self.seed,
            self.step,
            self.trace.dump(),
            self.seed,
            self.steps
        );
    }

    /// Sends one datagram to both the daemon and the model and compares.
    fn send(&mut self, dgram: &[u8], sender: u32, label: &str) -> Option<Vec<u8>> {
        let expected = self.model.apply_datagram(dgram, sender, self.d.port);
        let rejected = match &expected {
            None => true,
            Some(b) => decode_reply(b).unwrap().0 != 0,
        };
        let before = rejected.then(|| snapshot(&self.d.server.registry));
        let actual = self.d.handle(dgram, sender);
        let shown = match &expected {
            None => "dropped".to_string(),
            Some(b) => {
                let (e, p) = decode_reply(b).unwrap();
                if e == 0 {
                    format!("ok {}", show_payload(&p))
                } else {
                    format!("error {e}")
                }
            }
        };
        let head = decode(dgram, sender).map_or_else(
            || format!("{} bytes", dgram.len()),
            |d| {
                format!(
                    "{}(type {:#x}) {}/{:#x} v{} payload {}",
                    t::name(d.rtype),
                    d.rtype,
                    String::from_utf8_lossy(&d.uuid),
                    d.luid,
                    d.version,
                    d.payload.len()
                )
            },
        );
        self.trace.push(format!("{}: {label}: {head} sender {sender} -> {shown}", self.step));
        if expected != actual {
            self.fail(&diff_reply(&expected, &actual));
        }
        if let Some(before) = before {
            if snapshot(&self.d.server.registry) != before {
                self.fail("a rejected datagram changed a log's observable state");
            }
        }
        actual
    }

    fn request(&mut self, uuid: &[u8], luid: u64, ty: u32, payload: Vec<u8>) -> i32 {
        self.seq = self.seq.wrapping_add(1);
        let dgram = Req::new(uuid, luid, ty, payload).encode(self.seq);
        let r = self.send(&dgram, 0, "restore");
        decode_reply(&r.expect("a good request gets a reply")).unwrap().0
    }

    /// Puts the base logs back as they were (mutations may have destroyed,
    /// suspended or resumed them) and destroys logs mutations created.
    fn restore(&mut self) {
        let extra: Vec<(Vec<u8>, u64)> = self
            .model
            .logs
            .iter()
            .filter(|l| !self.base.iter().any(|b| b.uuid == l.uuid && b.luid == l.luid))
            .map(|l| (l.uuid.clone(), l.luid))
            .collect();
        for (u, l) in extra {
            assert_eq!(self.request(&u, l, t::DTR, vec![]), 0);
        }
        for k in 0..self.base.len() {
            let (uuid, luid, ctr, live) = {
                let b = &self.base[k];
                (b.uuid.clone(), b.luid, b.ctr.clone(), b.live)
            };
            let state = self
                .model
                .find(&uuid, luid)
                .map(|i| (self.model.logs[i].resumed, self.model.logs[i].loaded, self.model.logs[i].args.clone()));
            let want_args = parse_ctr(ctr.as_bytes(), false).unwrap();
            match state {
                Some((resumed, _, args)) if live && args == want_args => {
                    if !resumed {
                        assert_eq!(self.request(&uuid, luid, t::RESUME, vec![]), 0);
                    }
                }
                Some((_, loaded, args)) if !live && !loaded && args == want_args => {}
                Some(_) => {
                    assert_eq!(self.request(&uuid, luid, t::DTR, vec![]), 0);
                    self.build(k);
                }
                None => self.build(k),
            }
        }
    }

    fn build(&mut self, k: usize) {
        let (uuid, luid, ctr, live) = {
            let b = &self.base[k];
            (b.uuid.clone(), b.luid, b.ctr.clone(), b.live)
        };
        assert_eq!(self.request(&uuid, luid, t::CTR, ctr.into_bytes()), 0);
        if live {
            assert_eq!(self.request(&uuid, luid, t::RESUME, vec![]), 0);
        }
    }

    /// A kernel-shaped message for a base log with a valid payload.
    fn base_message(&mut self) -> (Vec<u8>, u64) {
        let k = self.rng.below(self.base.len() as u64) as usize;
        let (uuid, luid, ctr) = (self.base[k].uuid.clone(), self.base[k].luid, self.base[k].ctr.clone());
        let n = self.model.find(&uuid, luid).map_or(64, |i| self.model.logs[i].n());
        let ty = self.rng.range(1, 17) as u32;
        let rng = &mut self.rng;
        let region = |rng: &mut Rng| if rng.one_in(4) { n - 1 } else { rng.below(n) };
        let payload = match ty {
            t::CTR => {
                let mut p = ctr.into_bytes();
                if rng.one_in(2) {
                    p.push(0);
                }
                p
            }
            t::IS_CLEAN | t::IN_SYNC | t::IS_REMOTE_RECOVERING => region(rng).to_ne_bytes().to_vec(),
            t::MARK_REGION | t::CLEAR_REGION | t::FLUSH => {
                let k = rng.below(33);
                regions_payload(&(0..k).map(|_| region(rng)).collect::<Vec<_>>())
            }
            t::SET_REGION_SYNC => {
                let mut p = region(rng).to_ne_bytes().to_vec();
                p.extend_from_slice(&rng.pick(&[0i64, 1]).to_ne_bytes());
                p
            }
            _ => vec![],
        };
        self.seq = self.seq.wrapping_add(1);
        let v = if self.rng.one_in(5) { self.rng.range(1, 2) as u32 } else { 3 };
        let mut r = Req::new(&uuid, luid, ty, payload);
        r.version = v;
        (r.encode(self.seq), n)
    }

    fn interesting32(&mut self, len: usize, n: u64) -> u32 {
        let l = len as u32;
        let n = n as u32;
        let random = self.rng.next_u64() as u32;
        self.rng.pick(&[
            0,
            1,
            2,
            3,
            7,
            8,
            15,
            16,
            17,
            20,
            35,
            36,
            159,
            160,
            161,
            195,
            196,
            197,
            332,
            333,
            512,
            4096,
            0x7fff,
            0x8000,
            0xffff,
            0x1_0000,
            i32::MAX as u32,
            0x8000_0000,
            u32::MAX - 1,
            u32::MAX,
            l.wrapping_sub(1),
            l,
            l + 1,
            l.wrapping_sub(196),
            l.wrapping_sub(196).wrapping_add(1),
            l.wrapping_sub(36),
            l.wrapping_sub(35),
            n.wrapping_sub(1),
            n,
            n + 1,
            random,
        ])
    }

    /// One to four mutations of a good message.
    fn mutate(&mut self, mut d: Vec<u8>, n: u64) -> (Vec<u8>, u32, String) {
        let mut sender = 0;
        let mut what = Vec::new();
        for _ in 0..self.rng.range(1, 4) {
            match self.rng.below(11) {
                0 => {
                    let k = self.rng.range(1, 8);
                    for _ in 0..k {
                        if d.is_empty() {
                            break;
                        }
                        let at = self.rng.below(d.len() as u64) as usize;
                        d[at] ^= 1 << self.rng.below(8);
                    }
                    what.push(format!("flip{k}"));
                }
                1 => {
                    let to = match self.rng.below(4) {
                        0 => self.rng.below(17),
                        1 => self.rng.range(16, 36),
                        2 => self.rng.range(36, 196),
                        _ => self.rng.range(196, d.len().max(196) as u64),
                    } as usize;
                    d.truncate(to);
                    what.push(format!("truncate{to}"));
                }
                2 => {
                    let k = self.rng.range(1, 64) as usize;
                    let extra = self.rng.bytes(k);
                    d.extend_from_slice(&extra);
                    what.push(format!("append{k}"));
                }
                3 | 4 => {
                    let (off, w) = self.rng.pick(NL_FIELDS);
                    if d.len() >= off + w {
                        let v = self.interesting32(d.len(), n);
                        let bytes = if w == 8 {
                            self.rng
                                .pick(&[0, 1, n.wrapping_sub(1), n, u64::MAX, 1 << 63, u64::from(v)])
                                .to_ne_bytes()
                                .to_vec()
                        } else {
                            field_bytes(u64::from(v), w.min(4))
                        };
                        d[off..off + bytes.len()].copy_from_slice(&bytes);
                        what.push(format!("field@{off}={v:#x}"));
                    }
                }
                5 => {
                    // A payload u64 (a region, or the in_sync flag).
                    if d.len() >= HEADERS + 8 {
                        let k = self.rng.below(((d.len() - HEADERS) / 8) as u64) as usize;
                        let v = self.rng.pick(&[0, 1, n - 1, n, n + 1, u64::MAX, 1 << 63, 0xffff_ffff, 1 << 32]);
                        d[HEADERS + 8 * k..HEADERS + 8 * k + 8].copy_from_slice(&v.to_ne_bytes());
                        what.push(format!("region[{k}]={v:#x}"));
                    }
                }
                6 => {
                    if d.len() >= HEADERS {
                        let room = (d.len() - HEADERS) as u32;
                        let v = room + self.rng.range(1, 9) as u32;
                        d[192..196].copy_from_slice(&v.to_ne_bytes());
                        what.push(format!("data_size={v}"));
                    }
                }
                7 => {
                    // A consistent longer payload: lengths follow it.
                    if d.len() >= HEADERS {
                        let k = self.rng.pick(&[1usize, 7, 8, 136, 137, 300, 1000, 3000, 9000, 70_000]);
                        let mut extra = self.rng.bytes(k);
                        if self.rng.one_in(2) {
                            extra.iter_mut().for_each(|b| *b &= 0x03);
                        }
                        d.extend_from_slice(&extra);
                        let len = d.len();
                        d[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
                        d[32..34].copy_from_slice(&u16::try_from(len - 36).unwrap_or(u16::MAX).to_ne_bytes());
                        d[192..196].copy_from_slice(&((len - HEADERS) as u32).to_ne_bytes());
                        what.push(format!("grow{k}"));
                    }
                }
                8 => {
                    sender = self.rng.pick(&[1, 2, 4242, u32::MAX]);
                    what.push(format!("sender{sender}"));
                }
                9 => {
                    // Splice in another message's payload, lengths fixed up.
                    let (other, _) = self.base_message();
                    if d.len() >= HEADERS {
                        d.truncate(HEADERS);
                        d.extend_from_slice(&other[HEADERS..]);
                        let len = d.len();
                        d[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
                        d[32..34].copy_from_slice(&((len - 36) as u16).to_ne_bytes());
                        d[192..196].copy_from_slice(&((len - HEADERS) as u32).to_ne_bytes());
                        what.push("splice".into());
                    }
                }
                _ => {
                    // Another request type on the same payload.
                    if d.len() >= HEADERS {
                        let ty = self.rng.pick(&[0u32, 1, 2, 5, 9, 10, 11, 13, 18, 255, 0x10a, 0xffff_ff0b]);
                        d[188..192].copy_from_slice(&ty.to_ne_bytes());
                        what.push(format!("type={ty:#x}"));
                    }
                }
            }
        }
        (d, sender, what.join(","))
    }
}

#[test]
fn mutated_kernel_datagrams_never_change_state_unless_valid() {
    let start = std::time::Instant::now();
    let steps_n = steps(150_000);
    let mut totals = [0u64; 3]; // dropped, error replies, accepted
    for seed in seeds(21, 2) {
        let _replay = ReplayOnPanic(format!(
            "replay: DMULOGD_SEED={seed:#x} DMULOGD_STEPS={steps_n} cargo test --release --test fuzz_datagrams -- --nocapture"
        ));
        let dir = TempDir::prefer_tmpfs("fuzzdg");
        let mut rng = Rng::new(seed);
        let mut model = Model::new(1 << 20, false);
        make_files(&mut rng, dir.path(), &mut model, false);
        model.persist_state = rng.one_in(2);
        let d = InProc::new(1 << 20, false, dir.path(), model.persist_state);
        let f = |k: usize| model.files[k].path.display().to_string();
        // Files: log1 holds 320 regions, log2 32768, log3 ~100k.
        let base = vec![
            BaseLog {
                uuid: b"LVM-core".to_vec(),
                luid: 0xffff_8880_0000_1000,
                ctr: "12800 core 128".into(),
                live: true,
            },
            BaseLog {
                uuid: b"LVM-core-ns".to_vec(),
                luid: 0xffff_8880_0000_2000,
                ctr: "8960 core 128 nosync".into(),
                live: true,
            },
            BaseLog {
                uuid: b"LVM-disk".to_vec(),
                luid: 0xffff_8880_0000_3000,
                ctr: format!("40960 disk {} 128", f(1)),
                live: true,
            },
            BaseLog {
                uuid: b"LVM-disk-ns".to_vec(),
                luid: 0xffff_8880_0000_4000,
                ctr: format!("128000 disk {} 128 nosync", f(2)),
                live: true,
            },
            // The reload of LVM-disk, loaded in the inactive slot.
            BaseLog {
                uuid: b"LVM-disk".to_vec(),
                luid: 0xffff_8880_0000_5000,
                ctr: format!("40960 disk {} 128", f(1)),
                live: false,
            },
        ];
        let mut w =
            World { _dir: dir, model, d, rng, base, seq: 1, trace: Trace::default(), seed, steps: steps_n, step: 0 };
        w.restore();
        // Warm up: mixed clean/dirty/in-sync state through valid requests.
        for _ in 0..2000 {
            let (m, _) = w.base_message();
            w.send(&m, 0, "warm-up");
        }
        w.restore();
        for step in 0..steps_n {
            w.step = step;
            let (m, n) = w.base_message();
            let (m, sender, what) = w.mutate(m, n);
            match w.send(&m, sender, &what) {
                None => totals[0] += 1,
                Some(r) if decode_reply(&r).unwrap().0 != 0 => totals[1] += 1,
                Some(_) => totals[2] += 1,
            }
            w.restore();
            if step % 64 == 63 {
                if let Err(e) = check_files(&w.model) {
                    w.fail(&e);
                }
            }
            if step % 4096 == 4095 {
                let mut rng = Rng::new(step);
                if let Err(e) = check_registry(&w.model, &mut w.d.server.registry, &mut rng) {
                    w.fail(&e);
                }
            }
        }
    }
    eprintln!(
        "fuzz_datagrams: {} mutated datagrams: {} dropped, {} error replies, {} accepted, in {:.1?}",
        totals.iter().sum::<u64>(),
        totals[0],
        totals[1],
        totals[2],
        start.elapsed()
    );
    assert!(totals.iter().all(|&k| k > 0), "every outcome was exercised: {totals:?}");
}

/// The decoder agrees with docs/protocol.md §1 on every truncation and
/// every single-field overwrite of a good message (the model's decoder is
/// written from docs/protocol.md, independently of wire.rs).
#[test]
fn decoder_matches_spec_on_every_truncation_and_field() {
    use dmulogd::wire::Request;
    let good = Req::new(b"LVM-x", 7, t::MARK_REGION, regions_payload(&[1, 2, 3])).encode(9);
    let check = |d: &[u8], sender: u32| {
        let ours = decode(d, sender);
        let theirs = Request::decode(d, sender);
        match (&ours, &theirs) {
            (None, Err(_)) => {}
            (Some(o), Ok(r)) => {
                assert_eq!(
                    (o.luid, &o.uuid[..], o.version, o.seq, o.rtype, &o.payload[..], o.cn_seq),
                    (r.luid(), r.uuid(), r.version(), r.seq(), r.raw_type(), r.payload, r.cn_seq())
                );
            }
            _ => panic!("decoders disagree on {d:02x?} from {sender}: spec {ours:?}, wire {theirs:?}"),
        }
    };
    for len in 0..=good.len() + 4 {
        let mut d = good.clone();
        d.resize(len, 0);
        check(&d, 0);
    }
    let mut rng = Rng::new(5);
    for &(off, w) in NL_FIELDS {
        for v in [
            0u64,
            1,
            2,
            3,
            7,
            8,
            159,
            160,
            161,
            195,
            196,
            197,
            219,
            220,
            221,
            0xffff,
            0x1_0000,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut d = good.clone();
            d[off..off + w].copy_from_slice(&field_bytes(v, w));
            check(&d, 0);
            check(&d, rng.range(1, u64::from(u32::MAX)) as u32);
        }
    }
}
