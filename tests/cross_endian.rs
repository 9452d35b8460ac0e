//! Byte order, pinned. `make be-test` (tests/cross/be-test.sh) runs this
//! file on s390x, a big-endian target, under qemu-user as well as on the
//! host, and every expectation here holds on both byte orders:
//! - netlink fields are in the host's own order (the connector copies the
//!   kernel's structs as they lie in memory): the expected datagrams are
//!   built field by field with `to_ne_bytes`, so they differ between x86_64
//!   and s390x, and one field is also checked against literal bytes for
//!   the build target's order, which shows which order the run really had;
//! - the on-disk log is little-endian everywhere, as dm-log.c writes it
//!   (`__le32` header fields, `set_bit_le`: region r is bit r%8 of byte
//!   r/8): literal bytes, the same on every architecture;
//! - `tests/data/x86_64-log.img`, a log that the daemon's own request
//!   handling wrote on x86_64, reads back region for region (raw, through
//!   `inspect` and through a RESUME), and the same requests write the
//!   same bytes again: on s390x, big-endian writes what x86_64 wrote.
//!
//! be-test.sh also carries an image the s390x run wrote back to the host
//! (`DMULOGD_FOREIGN_IMAGE`), so both directions are read.
#![allow(clippy::cast_possible_truncation)]

#[allow(dead_code)] // the scratch directory type of every test file; some of it is unused here
#[path = "shared/tempdir.rs"]
mod tempdir;

use dmulogd::disk::{Header, BITMAP_OFFSET};
use dmulogd::dm::LegSource;
use dmulogd::registry::{Options, Registry};
use dmulogd::server::Server;
use dmulogd::wire::{Answer, Body, Reply, Request, RequestSpec, RequestType, SEND_BUF_LEN};
use std::path::{Path, PathBuf};
use tempdir::TempDir;

/// The committed image: 1000 regions of 1024 sectors, written on x86_64
/// by [`write_fixture_log`] (regenerate with
/// `DMULOGD_WRITE_IMAGE=tests/data/x86_64-log.img cargo test --test cross_endian`).
const FIXTURE: &str = "tests/data/x86_64-log.img";
const REGIONS: u64 = 1000;
const REGION_SIZE: u64 = 1024;
/// What the fixture holds dirty: both ends of bytes and of 64-bit words
/// (a bitmap kept in host-order words would move 7, 63, 64 and 999), a
/// run across a word boundary, a region cleared again (100, not listed)
/// and one marked by a version-3 integrated FLUSH (500).
const DIRTY: [u64; 17] = [0, 1, 7, 8, 9, 63, 64, 65, 101, 255, 256, 500, 511, 512, 777, 998, 999];
const DIRTY_TEXT: &str = "dirty regions: 0-1 7-9 63-65 101 255-256 500 511-512 777 998-999\n";
/// 1024 + 1000 regions rounded up to 64 bits (128 bytes).
const FIXTURE_LEN: usize = 1152;
/// The header of a 1000-region log (0x3e8), as any architecture writes it.
const FIXTURE_HEADER: [u8; 16] = [0x72, 0x52, 0x69, 0x4d, 2, 0, 0, 0, 0xe8, 0x03, 0, 0, 0, 0, 0, 0];

/// The daemon's own request handling in this process, spoken to with
/// kernel-shaped datagrams for one log (`RequestSpec` builds them the way
/// `dm_ulog_sendto_server` does, `Reply::decode` checks what comes back).
struct Kernel {
    server: Server,
    out: Vec<u8>,
    seq: u32,
}

const PORT: u32 = 0x00c0_ffee;
const UUID: &[u8] = b"LVM-crossendian";
const LUID: u64 = 0xffff_8880_0102_0304;

impl Kernel {
    fn new() -> Kernel {
        // Legs that always flush (none to open): clean bits go out with
        // the next write, as on a mirror whose legs were found.
        let opts = Options { allow_clustered: false, state_dir: None, legs: LegSource::Paths(Vec::new()) };
        Kernel { server: Server::new(Registry::new(opts, 1 << 30)), out: vec![0; SEND_BUF_LEN], seq: 0 }
    }

    fn request(&mut self, t: RequestType, payload: &[u8]) -> Reply {
        self.seq += 1;
        let d =
            RequestSpec { luid: LUID, uuid: UUID, version: 3, seq: self.seq, request_type: t as u32, payload }.encode();
        let n = self.server.handle_datagram(&d, 0, PORT, &mut self.out).expect("every kernel request is answered");
        let r = Reply::decode(&self.out[..n]).expect("a reply the kernel accepts");
        assert_eq!((r.seq, r.nl_pid, r.luid, r.uuid.as_slice()), (self.seq, PORT, LUID, UUID), "{}", t.name());
        r
    }

    fn ok(&mut self, t: RequestType, payload: &[u8]) -> Reply {
        let r = self.request(t, payload);
        assert_eq!(r.error, 0, "{} failed", t.name());
        r
    }

    fn ctr(&mut self, path: &Path, regions: u64, word: &str) {
        let ctr = format!("{} disk {} {REGION_SIZE} {word}", regions * REGION_SIZE, path.display());
        self.ok(RequestType::Ctr, ctr.trim_end().as_bytes());
    }

    fn u64_reply(&mut self, t: RequestType, payload: &[u8]) -> u64 {
        let r = self.ok(t, payload);
        assert_eq!(r.payload.len(), 8, "{}", t.name());
        r.u64_at(0).expect("8 bytes")
    }
}

/// A region payload: native-endian u64s, as the kernel sends them.
fn regions(rs: &[u64]) -> Vec<u8> {
    rs.iter().flat_map(|r| r.to_ne_bytes()).collect()
}

fn manifest(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The requests that wrote the fixture, into the zero-filled file `path`:
/// a new log (`nosync`: every region clean), marks, a clear, a version-3
/// FLUSH carrying a mark, then suspend and remove it as a table swap does.
fn write_fixture_log(path: &Path) {
    let mut k = Kernel::new();
    k.ctr(path, REGIONS, "nosync");
    k.ok(RequestType::Resume, &[]);
    let mut marks: Vec<u64> = DIRTY.iter().copied().filter(|&r| r != 500).collect();
    marks.push(100);
    k.ok(RequestType::MarkRegion, &regions(&marks));
    k.ok(RequestType::Flush, &[]);
    k.ok(RequestType::ClearRegion, &regions(&[100]));
    k.ok(RequestType::Flush, &regions(&[500]));
    assert_eq!(k.u64_reply(RequestType::IsClean, &regions(&[100])), 1);
    assert_eq!(k.u64_reply(RequestType::IsClean, &regions(&[500])), 0);
    assert_eq!(k.u64_reply(RequestType::GetSyncCount, &[]), REGIONS, "nosync: all in sync");
    k.ok(RequestType::Postsuspend, &[]);
    k.ok(RequestType::Dtr, &[]);
}

/// Checks a log image that should hold [`DIRTY`]: its bytes against the
/// little-endian layout, `inspect` (what an operator runs) and a RESUME
/// of it by the daemon (what the kernel then asks).
fn check_image(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(bytes.len(), FIXTURE_LEN, "{}", path.display());
    assert_eq!(bytes[..16], FIXTURE_HEADER, "header");
    assert_eq!(Header::from_disk(&bytes[..16]).validate(), Ok(Some(REGIONS)));
    assert!(bytes[16..BITMAP_OFFSET].iter().all(|&b| b == 0), "unused header bytes");
    // set_bit_le, spelled out: region r is bit r%8 of byte r/8; 1 = clean;
    // the padding bits past the last region (1000..1024) are 0.
    let bitmap = &bytes[BITMAP_OFFSET..];
    for r in 0..(bitmap.len() as u64 * 8) {
        let bit = bitmap[(r / 8) as usize] >> (r % 8) & 1 == 1;
        assert_eq!(bit, r < REGIONS && !DIRTY.contains(&r), "bit of region {r}");
    }
    // The same, as literal bytes at the places a word-order bug would move.
    assert_eq!(bitmap[..2], [0x7c, 0xfc], "regions 0, 1, 7, 8, 9");
    assert_eq!(bitmap[7..9], [0x7f, 0xfc], "regions 63, 64, 65");
    assert_eq!(bitmap[124..], [0x3f, 0, 0, 0], "regions 998, 999, then padding");

    let report = dmulogd::inspect::inspect(path, None).unwrap();
    let text = report.text();
    assert!(report.valid(), "{text}");
    for line in ["version 2\n", "regions: 1000\n", "clean: 983\n", "dirty: 17\n", DIRTY_TEXT] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }

    // The daemon loads it at RESUME (no sync word: trust the device) and
    // answers from it; it then writes back the very bytes it read.
    let dir = TempDir::new("cross-endian-read");
    let copy = dir.path().join("log");
    std::fs::write(&copy, &bytes).unwrap();
    let mut k = Kernel::new();
    k.ctr(&copy, REGIONS, "");
    k.ok(RequestType::Resume, &[]);
    for r in 0..REGIONS {
        let clean = k.u64_reply(RequestType::IsClean, &regions(&[r]));
        assert_eq!(clean, u64::from(!DIRTY.contains(&r)), "IS_CLEAN {r}");
    }
    assert_eq!(k.u64_reply(RequestType::GetSyncCount, &[]), REGIONS - DIRTY.len() as u64);
    let work = k.ok(RequestType::GetResyncWork, &[]);
    assert_eq!((work.u64_at(0), work.u64_at(1)), (Some(1), Some(0)), "found, region 0");
    k.ok(RequestType::Postsuspend, &[]);
    k.ok(RequestType::Dtr, &[]);
    assert!(std::fs::read(&copy).unwrap() == bytes, "RESUME wrote back other bytes than it read");
}

/// be-test.sh sets this to "big" for the s390x run: the run must then
/// really be big-endian, or nothing here proved anything about it.
#[test]
fn runs_on_the_byte_order_it_was_meant_for() {
    if let Ok(want) = std::env::var("DMULOGD_EXPECT_ENDIAN") {
        let have = if cfg!(target_endian = "big") { "big" } else { "little" };
        assert_eq!(have, want);
    }
    assert_eq!(0x0102_0304u32.to_ne_bytes() == [1, 2, 3, 4], cfg!(target_endian = "big"));
}

#[test]
fn request_fields_are_in_native_order() {
    // SET_REGION_SYNC {region 0x0a0b0c0d0e0f1011, in_sync 1}, every field
    // a value whose bytes differ, so a field written in the wrong order or
    // at the wrong offset cannot match.
    let payload = [0x0a0b_0c0d_0e0f_1011u64.to_ne_bytes(), 1i64.to_ne_bytes()].concat();
    let seq = 0x2122_2324u32;
    let mut want: Vec<u8> = Vec::new();
    want.extend((196u32 + 16).to_ne_bytes()); // nlmsg_len
    want.extend(3u16.to_ne_bytes()); // nlmsg_type NLMSG_DONE
    want.extend(0u16.to_ne_bytes()); // nlmsg_flags
    want.extend(seq.to_ne_bytes()); // nlmsg_seq
    want.extend(0u32.to_ne_bytes()); // nlmsg_pid: the kernel
    want.extend(7u32.to_ne_bytes()); // cn_msg.id.idx CN_IDX_DM
    want.extend(1u32.to_ne_bytes()); // cn_msg.id.val CN_VAL_DM_USERSPACE_LOG
    want.extend(seq.to_ne_bytes()); // cn_msg.seq
    want.extend(0u32.to_ne_bytes()); // cn_msg.ack
    want.extend((160u16 + 16).to_ne_bytes()); // cn_msg.len
    want.extend(0u16.to_ne_bytes()); // cn_msg.flags
    want.extend(LUID.to_ne_bytes()); // luid
    let mut uuid = [0u8; 129 + 3]; // uuid, NUL-padded, then 3 padding bytes
    uuid[..UUID.len()].copy_from_slice(UUID);
    want.extend(uuid);
    want.extend(3u32.to_ne_bytes()); // version
    want.extend(0i32.to_ne_bytes()); // error
    want.extend(seq.to_ne_bytes()); // seq
    want.extend(13u32.to_ne_bytes()); // request_type SET_REGION_SYNC
    want.extend(16u32.to_ne_bytes()); // data_size
    want.extend(&payload);
    assert_eq!(want.len(), 212);
    let big = cfg!(target_endian = "big");
    assert_eq!(want[0..4], if big { [0, 0, 0, 212] } else { [212, 0, 0, 0] }, "nlmsg_len, literally");

    let spec = RequestSpec { luid: LUID, uuid: UUID, version: 3, seq, request_type: 13, payload: &payload };
    assert_eq!(spec.encode(), want);
    let r = Request::decode(&want, 0).unwrap();
    assert_eq!((r.luid(), r.uuid(), r.version(), r.seq(), r.cn_seq()), (LUID, UUID, 3, seq, seq));
    assert_eq!(r.request_type(), Some(RequestType::SetRegionSync));
    assert_eq!(r.payload, payload.as_slice());
    match Body::decode(RequestType::SetRegionSync, r.payload).unwrap() {
        Body::SetSync { region, in_sync } => assert_eq!((region, in_sync), (0x0a0b_0c0d_0e0f_1011, true)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn reply_fields_are_in_native_order() {
    let seq = 0x3132_3334u32;
    let d = RequestSpec { luid: LUID, uuid: UUID, version: 3, seq, request_type: 14, payload: &[] }.encode();
    let req = Request::decode(&d, 0).unwrap();
    let mut out = vec![0u8; SEND_BUF_LEN];
    let n = Answer::U64(0x4142_4344_4546_4748).encode(&mut out[196..]);
    let len = req.encode_reply(&mut out, PORT, -22, n);
    let mut want: Vec<u8> = Vec::new();
    want.extend((196u32 + 8).to_ne_bytes()); // nlmsg_len
    want.extend(3u16.to_ne_bytes()); // NLMSG_DONE
    want.extend(0u16.to_ne_bytes()); // flags
    want.extend(0u32.to_ne_bytes()); // nlmsg_seq
    want.extend(PORT.to_ne_bytes()); // nlmsg_pid: our port
    want.extend(7u32.to_ne_bytes()); // CN_IDX_DM
    want.extend(1u32.to_ne_bytes()); // CN_VAL_DM_USERSPACE_LOG
    want.extend(seq.to_ne_bytes()); // cn_msg.seq: the request's
    want.extend(0u32.to_ne_bytes()); // ack
    want.extend((160u16 + 8).to_ne_bytes()); // cn_msg.len
    want.extend(0u16.to_ne_bytes()); // flags
    want.extend(&d[36..36 + 144]); // the request header up to `error`, echoed
    want.extend((-22i32).to_ne_bytes()); // error
    want.extend(seq.to_ne_bytes()); // seq
    want.extend(14u32.to_ne_bytes()); // request_type GET_SYNC_COUNT
    want.extend(8u32.to_ne_bytes()); // data_size
    want.extend(0x4142_4344_4546_4748u64.to_ne_bytes());
    assert_eq!(out[..len], want[..]);
    let big = cfg!(target_endian = "big");
    assert_eq!(
        want[196..],
        if big {
            [0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48]
        } else {
            [0x48, 0x47, 0x46, 0x45, 0x44, 0x43, 0x42, 0x41]
        }
    );

    let rep = Reply::decode(&want).unwrap();
    assert_eq!((rep.nl_pid, rep.cn_seq, rep.seq, rep.luid), (PORT, seq, seq, LUID));
    assert_eq!((rep.request_type, rep.error, rep.u64_at(0)), (14, -22, Some(0x4142_4344_4546_4748)));
    assert_eq!(rep.uuid, UUID);
}

#[test]
fn disk_header_and_bitmap_are_little_endian_literals() {
    // What every architecture must write for a 100-region log (0x64) with
    // regions 0, 9, 31, 32, 63, 64 and 99 dirty: 1 = clean, region r = bit
    // r%8 of byte r/8, bits 100..128 padding (0).
    let header = [0x72, 0x52, 0x69, 0x4d, 2, 0, 0, 0, 0x64, 0, 0, 0, 0, 0, 0, 0];
    #[rustfmt::skip]
    let bitmap = [
        0xfe, 0xfd, 0xff, 0x7f, 0xfe, 0xff, 0xff, 0x7f, // regions 0..64
        0xfe, 0xff, 0xff, 0xff, 0x07, 0x00, 0x00, 0x00, // regions 64..100, padding
    ];
    let dirty = [0u64, 9, 31, 32, 63, 64, 99];
    assert_eq!(Header::new(100).to_disk(), header);

    // The in-memory bitmap is already the disk's byte order.
    let mut b = dmulogd::bitmap::Bitmap::anon(100).unwrap();
    b.put_range(0, 100, true);
    dirty.iter().for_each(|&r| assert!(b.put(r, false)));
    assert_eq!(b.bytes(), bitmap);
    assert_eq!(b.count_ones(), 93);
    assert_eq!(b.next_zero(1), Some(9));
    assert_eq!(b.next_zero(33), Some(63));

    // And what the daemon writes to a log device, whole.
    let dir = TempDir::new("cross-endian-pin");
    let path = dir.log_file("log", 1024 + 16);
    let mut k = Kernel::new();
    k.ctr(&path, 100, "nosync");
    k.ok(RequestType::Resume, &[]);
    k.ok(RequestType::MarkRegion, &regions(&dirty));
    k.ok(RequestType::Flush, &[]);
    k.ok(RequestType::Postsuspend, &[]);
    let mut want = vec![0u8; 1024 + 16];
    want[..16].copy_from_slice(&header);
    want[1024..].copy_from_slice(&bitmap);
    assert_eq!(std::fs::read(&path).unwrap(), want);
}

/// The committed x86_64 image, and on the host after a be-test.sh run
/// also the image that s390x wrote (`DMULOGD_FOREIGN_IMAGE`), read back.
#[test]
fn a_log_written_on_another_architecture_reads_back() {
    check_image(&manifest(FIXTURE));
    if let Some(p) = std::env::var_os("DMULOGD_FOREIGN_IMAGE") {
        check_image(Path::new(&p));
    }
}

/// The fixture's requests write the fixture's bytes, on any architecture.
/// `DMULOGD_WRITE_IMAGE=PATH` keeps a copy of what was written (be-test.sh
/// carries the s390x one back to the host; with the fixture's own path it
/// regenerates the fixture).
#[test]
fn the_same_requests_write_the_same_bytes() {
    let dir = TempDir::new("cross-endian-write");
    let path = dir.log_file("log", FIXTURE_LEN as u64);
    write_fixture_log(&path);
    let written = std::fs::read(&path).unwrap();
    if let Some(keep) = std::env::var_os("DMULOGD_WRITE_IMAGE") {
        std::fs::write(&keep, &written).unwrap();
    }
    let fixture = std::fs::read(manifest(FIXTURE)).unwrap();
    assert!(written == fixture, "the image written here differs from {FIXTURE}");
    check_image(&path);
}
