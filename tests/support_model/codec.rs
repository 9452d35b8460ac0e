//! The protocol as docs/protocol.md §1–2 states it, written independently
//! of `src/wire.rs` (this is the oracle `wire.rs` is checked against):
//! request numbers, errnos, header sizes, a datagram decoder, the reply
//! encoder and a reply decoder.

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
pub(super) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
pub(super) fn le64(b: &[u8], at: usize) -> u64 {
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

pub(super) fn u64s(vals: &[u64]) -> Vec<u8> {
    regions_payload(vals)
}

pub(super) fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

pub fn decode_reply(b: &[u8]) -> Option<(i32, Vec<u8>)> {
    (b.len() >= HEADERS).then(|| (i32::from_ne_bytes(b[180..184].try_into().unwrap()), b[HEADERS..].to_vec()))
}
