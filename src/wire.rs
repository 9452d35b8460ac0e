//! The datagram format between the kernel's dm-log-userspace and dmulogd.
//!
//! Pure encode/decode: nothing here touches a file descriptor, so every
//! malformed shape can be tested and fuzzed with plain byte vectors. All
//! fields are in host byte order (netlink is native-endian); they are read
//! with `from_ne_bytes` at named offsets, never by casting the buffer.
//!
//! One datagram from the kernel (`cn_netlink_send`):
//!
//! ```text
//! offset  size  what
//!      0    16  nlmsghdr   len u32 | type u16 (NLMSG_DONE) | flags u16 | seq u32 | pid u32
//!     16    20  cn_msg     id.idx u32 (7) | id.val u32 (1) | seq u32 | ack u32 | len u16 | flags u16
//!     36   160  dm_ulog_request
//!                 +0   luid u64          +140 version u32
//!                 +8   uuid [u8; 129]    +144 error i32
//!                 +137 padding [u8; 3]   +148 seq u32
//!                                        +152 request_type u32
//!                                        +156 data_size u32
//!    196     n  payload (n = data_size)
//! ```
//!
//! A reply has the same shape: our port in `nlmsghdr.pid`, the request's
//! cn seq, `ack = 0`, the request header echoed with `error` and
//! `data_size` set, then the reply payload. The kernel matches replies on
//! `dm_ulog_request.seq`, so replies may go out in any order. The protocol
//! as the kernel speaks it: docs/protocol.md §1–3.

use std::ops::Range;

pub const NLMSG_HDRLEN: usize = 16;
pub const CN_MSG_LEN: usize = 20;
pub const REQUEST_LEN: usize = 160;
/// Bytes in front of the payload in every datagram.
pub const HEADERS_LEN: usize = NLMSG_HDRLEN + CN_MSG_LEN + REQUEST_LEN;
/// The kernel sends from a 512-byte buffer that starts with the cn_msg
/// (`DM_ULOG_PREALLOCED_SIZE`), so no real request carries more than this.
pub const MAX_REQUEST_PAYLOAD: usize = 512 - CN_MSG_LEN - REQUEST_LEN;
/// Largest reply payload we ever produce (a status string or device name);
/// the kernel's biggest reply buffer is DM_NAME_LEN / a status line.
pub const MAX_REPLY_PAYLOAD: usize = 512;
/// Receive buffer: comfortably larger than anything legitimate, so an
/// oversized datagram is seen whole (and rejected) rather than truncated.
pub const RECV_BUF_LEN: usize = 4096;
pub const SEND_BUF_LEN: usize = HEADERS_LEN + MAX_REPLY_PAYLOAD;

pub const NLMSG_DONE: u16 = 3;
/// Connector id of dm-log-userspace: CN_IDX_DM / CN_VAL_DM_USERSPACE_LOG.
pub const CN_IDX_DM: u32 = 7;
pub const CN_VAL_DM_USERSPACE_LOG: u32 = 1;
/// Versions of `dm_ulog_request` we understand. 2 added the device name in
/// the CTR reply, 3 the integrated flush (marks carried by FLUSH).
pub const VERSIONS: std::ops::RangeInclusive<u32> = 1..=3;
pub const UUID_LEN: usize = 129;

type Field = Range<usize>;

// nlmsghdr
const NL_LEN: Field = 0..4;
const NL_TYPE: Field = 4..6;
const NL_FLAGS: Field = 6..8;
const NL_SEQ: Field = 8..12;
const NL_PID: Field = 12..16;
// cn_msg, relative to its start
const CN_IDX: Field = 0..4;
const CN_VAL: Field = 4..8;
const CN_SEQ: Field = 8..12;
const CN_ACK: Field = 12..16;
const CN_LEN: Field = 16..18;
const CN_FLAGS: Field = 18..20;
// dm_ulog_request, relative to its start
const RQ_LUID: Field = 0..8;
const RQ_UUID: Field = 8..8 + UUID_LEN;
const RQ_VERSION: Field = 140..144;
const RQ_ERROR: Field = 144..148;
const RQ_SEQ: Field = 148..152;
const RQ_TYPE: Field = 152..156;
const RQ_DATA_SIZE: Field = 156..160;

const CN: usize = NLMSG_HDRLEN;
const RQ: usize = NLMSG_HDRLEN + CN_MSG_LEN;

/// The request types of `dm-log-userspace.h` (type = request_type & 0xff):
/// what each carries in ([`Body`]), what its reply carries ([`Answer`]).
/// Integers are native-endian u64/i64; strings are sent with their NUL
/// counted in `data_size`. See docs/protocol.md for when the kernel sends
/// each one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestType {
    /// In: the constructor string, `"<target sectors> <type> <args...>"`
    /// (ends in NUL when it is the reconnect CTR). Out: `"MAJ:MIN\0"` of a
    /// block log device, to the first CTR of a table (v2+), else nothing.
    Ctr = 1,
    /// In: nothing. Out: nothing. The table is gone.
    Dtr,
    /// In: nothing. Out: nothing.
    Presuspend,
    /// In: nothing. Out: nothing; the log is made durable first.
    Postsuspend,
    /// In: nothing. Out: nothing; a disk log reads its device.
    Resume,
    /// In: nothing. Out: u64 region size in sectors.
    GetRegionSize,
    /// In: u64 region. Out: i64 1 (clean) or 0.
    IsClean,
    /// In: u64 region. Out: i64 1 (in sync) or 0.
    InSync,
    /// In: nothing, or u64 regions to mark first (v3 integrated flush).
    /// Out: nothing; marks are durable when the reply is sent.
    Flush,
    /// In: u64 regions. Out: nothing.
    MarkRegion,
    /// In: u64 regions. Out: nothing.
    ClearRegion,
    /// In: nothing. Out: {i64 found; u64 region}.
    GetResyncWork,
    /// In: {u64 region; i64 in_sync}. Out: nothing.
    SetRegionSync,
    /// In: nothing. Out: u64 regions in sync.
    GetSyncCount,
    /// In: nothing. Out: the status line (`1 core`, `3 disk MAJ:MIN A`).
    StatusInfo,
    /// In: nothing. Out: the table line (current kernels build their own).
    StatusTable,
    /// In: u64 region. Out: {i64 recovering elsewhere (0); u64 in_sync_hint}.
    IsRemoteRecovering,
}

impl RequestType {
    pub const ALL: [RequestType; 17] = [
        RequestType::Ctr,
        RequestType::Dtr,
        RequestType::Presuspend,
        RequestType::Postsuspend,
        RequestType::Resume,
        RequestType::GetRegionSize,
        RequestType::IsClean,
        RequestType::InSync,
        RequestType::Flush,
        RequestType::MarkRegion,
        RequestType::ClearRegion,
        RequestType::GetResyncWork,
        RequestType::SetRegionSync,
        RequestType::GetSyncCount,
        RequestType::StatusInfo,
        RequestType::StatusTable,
        RequestType::IsRemoteRecovering,
    ];

    pub fn from_raw(raw: u32) -> Option<RequestType> {
        let t = (raw & 0xff) as usize;
        (1..=Self::ALL.len()).contains(&t).then(|| RequestType::ALL[t - 1])
    }

    /// Size of the reply buffer the kernel passes for this request, when it
    /// is fixed: what `userspace_do_request()` callers give as `rdata_size`.
    pub fn reply_buffer(self) -> usize {
        match self {
            RequestType::GetRegionSize | RequestType::IsClean | RequestType::InSync | RequestType::GetSyncCount => 8,
            RequestType::GetResyncWork | RequestType::IsRemoteRecovering => 16,
            // The rest of the status line; its real size is not sent.
            RequestType::StatusInfo => 128,
            _ => 0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RequestType::Ctr => "CTR",
            RequestType::Dtr => "DTR",
            RequestType::Presuspend => "PRESUSPEND",
            RequestType::Postsuspend => "POSTSUSPEND",
            RequestType::Resume => "RESUME",
            RequestType::GetRegionSize => "GET_REGION_SIZE",
            RequestType::IsClean => "IS_CLEAN",
            RequestType::InSync => "IN_SYNC",
            RequestType::Flush => "FLUSH",
            RequestType::MarkRegion => "MARK_REGION",
            RequestType::ClearRegion => "CLEAR_REGION",
            RequestType::GetResyncWork => "GET_RESYNC_WORK",
            RequestType::SetRegionSync => "SET_REGION_SYNC",
            RequestType::GetSyncCount => "GET_SYNC_COUNT",
            RequestType::StatusInfo => "STATUS_INFO",
            RequestType::StatusTable => "STATUS_TABLE",
            RequestType::IsRemoteRecovering => "IS_REMOTE_RECOVERING",
        }
    }
}

/// Why a datagram was dropped without a reply. Only datagrams we cannot
/// attribute to a kernel request land here; a well-framed request with a
/// bad type or payload gets an error reply instead.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Sender is not the kernel (`nl_pid != 0`).
    NotKernel(u32),
    /// Shorter than the three headers.
    Short(usize),
    /// nlmsghdr length or type inconsistent with the datagram.
    BadNetlink { len: u32, kind: u16, got: usize },
    /// cn_msg id is not dm-log-userspace's.
    WrongId { idx: u32, val: u32 },
    /// cn_msg.len disagrees with the datagram or is shorter than a request.
    BadCnLen { cn_len: u16, got: usize },
    /// data_size runs past cn_msg.len.
    DataPastEnd { data_size: u32, room: usize },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::NotKernel(pid) => write!(f, "datagram from netlink port {pid}, not the kernel"),
            DecodeError::Short(n) => write!(f, "datagram of {n} bytes is shorter than the {HEADERS_LEN}-byte headers"),
            DecodeError::BadNetlink { len, kind, got } => {
                write!(f, "bad nlmsghdr (len {len}, type {kind}) in a {got}-byte datagram")
            }
            DecodeError::WrongId { idx, val } => write!(f, "connector id {{{idx},{val}}} is not dm-log-userspace"),
            DecodeError::BadCnLen { cn_len, got } => {
                write!(f, "cn_msg.len {cn_len} does not fit a {got}-byte datagram")
            }
            DecodeError::DataPastEnd { data_size, room } => {
                write!(f, "data_size {data_size} runs past the {room} payload bytes present")
            }
        }
    }
}

fn u16_at(b: &[u8], r: Field) -> u16 {
    u16::from_ne_bytes(b[r].try_into().expect("field is 2 bytes"))
}
fn u32_at(b: &[u8], r: Field) -> u32 {
    u32::from_ne_bytes(b[r].try_into().expect("field is 4 bytes"))
}
/// True when a byte of `v` is zero (the classic bit trick: only a zero
/// byte borrows into its top bit without having had it set).
#[inline]
pub fn has_zero_byte(v: u64) -> bool {
    v.wrapping_sub(0x0101_0101_0101_0101) & !v & 0x8080_8080_8080_8080 != 0
}

/// Byte slices equal, compared eight bytes at a time (musl's bcmp goes
/// byte by byte, and every request compares its log's uuid).
#[inline]
pub fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().expect("8 bytes"));
    a.len() == b.len()
        && a.chunks_exact(8).zip(b.chunks_exact(8)).all(|(x, y)| word(x) == word(y))
        && a.chunks_exact(8).remainder().iter().zip(b.chunks_exact(8).remainder()).all(|(x, y)| x == y)
}

fn u64_at(b: &[u8], r: Field) -> u64 {
    u64::from_ne_bytes(b[r].try_into().expect("field is 8 bytes"))
}
fn put(b: &mut [u8], r: Field, v: &[u8]) {
    b[r].copy_from_slice(v);
}

/// A validated request borrowed from the receive buffer.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    cn_seq: u32,
    header: &'a [u8],
    pub payload: &'a [u8],
}

impl<'a> Request<'a> {
    /// Validates framing: sender, netlink header, connector id and every
    /// length. `sender_port` is the source `nl_pid` (0 for the kernel).
    pub fn decode(dgram: &'a [u8], sender_port: u32) -> Result<Request<'a>, DecodeError> {
        if sender_port != 0 {
            return Err(DecodeError::NotKernel(sender_port));
        }
        if dgram.len() < HEADERS_LEN {
            return Err(DecodeError::Short(dgram.len()));
        }
        let nl_len = u32_at(dgram, NL_LEN);
        let nl_type = u16_at(dgram, NL_TYPE);
        if nl_type != NLMSG_DONE || (nl_len as usize) < HEADERS_LEN || nl_len as usize > dgram.len() {
            return Err(DecodeError::BadNetlink { len: nl_len, kind: nl_type, got: dgram.len() });
        }
        let msg = &dgram[..nl_len as usize];
        let cn = &msg[CN..];
        let (idx, val) = (u32_at(cn, CN_IDX), u32_at(cn, CN_VAL));
        if (idx, val) != (CN_IDX_DM, CN_VAL_DM_USERSPACE_LOG) {
            return Err(DecodeError::WrongId { idx, val });
        }
        let cn_len = u16_at(cn, CN_LEN);
        let body_room = msg.len() - RQ;
        if (cn_len as usize) < REQUEST_LEN || cn_len as usize > body_room {
            return Err(DecodeError::BadCnLen { cn_len, got: dgram.len() });
        }
        let body = &msg[RQ..RQ + cn_len as usize];
        let data_size = u32_at(body, RQ_DATA_SIZE);
        let room = body.len() - REQUEST_LEN;
        if data_size as usize > room {
            return Err(DecodeError::DataPastEnd { data_size, room });
        }
        Ok(Request {
            cn_seq: u32_at(cn, CN_SEQ),
            header: &body[..REQUEST_LEN],
            payload: &body[REQUEST_LEN..REQUEST_LEN + data_size as usize],
        })
    }

    pub fn luid(&self) -> u64 {
        u64_at(self.header, RQ_LUID)
    }
    /// The uuid up to its first NUL (the kernel NUL-pads it).
    pub fn uuid(&self) -> &'a [u8] {
        let raw = &self.header[RQ_UUID];
        // Eight bytes at a time up to the word with the NUL: every request
        // looks its log up by uuid, and a byte loop (or musl's strnlen) over
        // an LVM uuid was a tenth of a request's instructions.
        let words = raw.chunks_exact(8).take_while(|w| !has_zero_byte(u64::from_ne_bytes((*w).try_into().expect("8"))));
        let start = 8 * words.count();
        let end = raw[start..].iter().position(|&b| b == 0).map_or(raw.len(), |i| start + i);
        &raw[..end]
    }
    /// The uuid is `uuid` (which holds no NUL): its bytes, then a NUL or
    /// the end of the field. What [`Request::uuid`] `== uuid` says, without
    /// looking for the end first.
    pub fn uuid_is(&self, uuid: &[u8]) -> bool {
        let raw = &self.header[RQ_UUID];
        raw.get(..uuid.len()).is_some_and(|head| bytes_eq(head, uuid)) && raw.get(uuid.len()).map_or(true, |&b| b == 0)
    }
    pub fn version(&self) -> u32 {
        u32_at(self.header, RQ_VERSION)
    }
    pub fn seq(&self) -> u32 {
        u32_at(self.header, RQ_SEQ)
    }
    pub fn cn_seq(&self) -> u32 {
        self.cn_seq
    }
    pub fn raw_type(&self) -> u32 {
        u32_at(self.header, RQ_TYPE)
    }
    pub fn request_type(&self) -> Option<RequestType> {
        RequestType::from_raw(self.raw_type())
    }

    /// Writes the reply datagram into `out`, whose bytes from
    /// [`HEADERS_LEN`] on already hold `payload_len` bytes of reply
    /// payload (`data_size`). Returns the datagram length.
    pub fn encode_reply(&self, out: &mut [u8], own_port: u32, error: i32, payload_len: usize) -> usize {
        let total = frame(out, own_port, 0, self.cn_seq, payload_len);
        let rq = &mut out[RQ..HEADERS_LEN];
        rq.copy_from_slice(self.header);
        put(rq, RQ_ERROR, &error.to_ne_bytes());
        put(rq, RQ_DATA_SIZE, &u32::try_from(payload_len).expect("small").to_ne_bytes());
        total
    }
}

/// Writes the nlmsghdr and cn_msg in front of a `dm_ulog_request` with
/// `data_size` payload bytes; returns the datagram length.
fn frame(out: &mut [u8], nl_pid: u32, nl_seq: u32, cn_seq: u32, data_size: usize) -> usize {
    let total = HEADERS_LEN + data_size;
    put(out, NL_LEN, &u32::try_from(total).expect("datagram fits u32").to_ne_bytes());
    put(out, NL_TYPE, &NLMSG_DONE.to_ne_bytes());
    put(out, NL_FLAGS, &0u16.to_ne_bytes());
    put(out, NL_SEQ, &nl_seq.to_ne_bytes());
    put(out, NL_PID, &nl_pid.to_ne_bytes());
    let cn = &mut out[CN..RQ];
    put(cn, CN_IDX, &CN_IDX_DM.to_ne_bytes());
    put(cn, CN_VAL, &CN_VAL_DM_USERSPACE_LOG.to_ne_bytes());
    put(cn, CN_SEQ, &cn_seq.to_ne_bytes());
    put(cn, CN_ACK, &0u32.to_ne_bytes());
    put(cn, CN_LEN, &u16::try_from(REQUEST_LEN + data_size).unwrap_or(u16::MAX).to_ne_bytes());
    put(cn, CN_FLAGS, &0u16.to_ne_bytes());
    total
}

/// Fields of a request as the kernel builds it; used by tests, benchmarks
/// and the fuzzer to make kernel-shaped datagrams.
#[derive(Clone, Debug)]
pub struct RequestSpec<'a> {
    pub luid: u64,
    pub uuid: &'a [u8],
    pub version: u32,
    pub seq: u32,
    pub request_type: u32,
    pub payload: &'a [u8],
}

impl RequestSpec<'_> {
    /// Encodes the datagram exactly as `dm_ulog_sendto_server` +
    /// `cn_netlink_send` lay it out.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; HEADERS_LEN + self.payload.len()];
        frame(&mut b, 0, self.seq, self.seq, self.payload.len());
        let rq = &mut b[RQ..HEADERS_LEN];
        put(rq, RQ_LUID, &self.luid.to_ne_bytes());
        let n = self.uuid.len().min(UUID_LEN - 1);
        rq[RQ_UUID.start..RQ_UUID.start + n].copy_from_slice(&self.uuid[..n]);
        put(rq, RQ_VERSION, &self.version.to_ne_bytes());
        put(rq, RQ_SEQ, &self.seq.to_ne_bytes());
        put(rq, RQ_TYPE, &self.request_type.to_ne_bytes());
        let ds = u32::try_from(self.payload.len()).expect("small");
        put(rq, RQ_DATA_SIZE, &ds.to_ne_bytes());
        b[HEADERS_LEN..].copy_from_slice(self.payload);
        b
    }
}

/// A reply as seen by the kernel side (tests and benchmarks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub nl_pid: u32,
    pub cn_seq: u32,
    pub luid: u64,
    pub uuid: Vec<u8>,
    pub seq: u32,
    pub request_type: u32,
    pub error: i32,
    pub payload: Vec<u8>,
}

impl Reply {
    /// Parses a reply datagram, checking the framing the way the kernel's
    /// connector and `cn_ulog_callback` do.
    pub fn decode(d: &[u8]) -> Option<Reply> {
        if d.len() < HEADERS_LEN || u32_at(d, NL_LEN) as usize != d.len() || u16_at(d, NL_TYPE) != NLMSG_DONE {
            return None;
        }
        let cn = &d[CN..RQ];
        if (u32_at(cn, CN_IDX), u32_at(cn, CN_VAL)) != (CN_IDX_DM, CN_VAL_DM_USERSPACE_LOG) {
            return None;
        }
        let rq = &d[RQ..HEADERS_LEN];
        let ds = u32_at(rq, RQ_DATA_SIZE) as usize;
        if u16_at(cn, CN_LEN) as usize != REQUEST_LEN + ds || HEADERS_LEN + ds != d.len() {
            return None;
        }
        let raw = &rq[RQ_UUID];
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        Some(Reply {
            nl_pid: u32_at(d, NL_PID),
            cn_seq: u32_at(cn, CN_SEQ),
            luid: u64_at(rq, RQ_LUID),
            uuid: raw[..end].to_vec(),
            seq: u32_at(rq, RQ_SEQ),
            request_type: u32_at(rq, RQ_TYPE),
            error: i32::from_ne_bytes(rq[RQ_ERROR].try_into().expect("4 bytes")),
            payload: d[HEADERS_LEN..].to_vec(),
        })
    }

    pub fn u64_at(&self, i: usize) -> Option<u64> {
        Some(u64::from_ne_bytes(self.payload.get(i * 8..i * 8 + 8)?.try_into().ok()?))
    }
}

/// A payload of u64 regions, read as it is iterated.
#[derive(Clone, Debug)]
pub struct Regions<'a>(std::slice::ChunksExact<'a, u8>);

impl Iterator for Regions<'_> {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        self.0.next().map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes")))
    }
}

/// What a request carries in, by type (see [`RequestType`]).
#[derive(Clone, Debug)]
pub enum Body<'a> {
    /// The constructor string, as sent.
    Ctr(&'a [u8]),
    /// One region.
    Region(u64),
    /// Regions (`data_size % 8 == 0`; none for a plain FLUSH).
    Regions(Regions<'a>),
    /// SET_REGION_SYNC.
    SetSync { region: u64, in_sync: bool },
    /// Types whose payload is "—": anything sent is ignored.
    Nothing,
}

/// A payload of the wrong size for its request type.
#[derive(Debug, PartialEq, Eq)]
pub struct PayloadError {
    pub request: &'static str,
    pub size: usize,
}

fn u64_of(p: &[u8]) -> Option<u64> {
    Some(u64::from_ne_bytes(p.try_into().ok()?))
}

impl<'a> Body<'a> {
    pub fn decode(t: RequestType, p: &'a [u8]) -> Result<Body<'a>, PayloadError> {
        let bad = || PayloadError { request: t.name(), size: p.len() };
        Ok(match t {
            RequestType::Ctr => Body::Ctr(p),
            RequestType::IsClean | RequestType::InSync | RequestType::IsRemoteRecovering => {
                Body::Region(u64_of(p).ok_or_else(bad)?)
            }
            RequestType::Flush | RequestType::MarkRegion | RequestType::ClearRegion => {
                if p.len() % 8 != 0 {
                    return Err(bad());
                }
                Body::Regions(Regions(p.chunks_exact(8)))
            }
            RequestType::SetRegionSync => {
                if p.len() != 16 {
                    return Err(bad());
                }
                let region = u64_of(&p[..8]).ok_or_else(bad)?;
                let in_sync = i64::from_ne_bytes(p[8..].try_into().expect("8 bytes")) != 0;
                Body::SetSync { region, in_sync }
            }
            _ => Body::Nothing,
        })
    }
}

/// What a reply carries, by type (see [`RequestType`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Nothing,
    /// One u64 (or an i64 0/1 flag).
    U64(u64),
    /// Two: {found, region} or {recovering, hint}.
    Pair(u64, u64),
    /// A string, sent with its NUL counted: the kernel copies exactly
    /// `data_size` bytes and reads a C string.
    Str(String),
}

impl Answer {
    pub fn flag(b: bool) -> Answer {
        Answer::U64(u64::from(b))
    }

    /// Writes the payload into `out`; returns its length (`data_size`).
    pub fn encode(&self, out: &mut [u8]) -> usize {
        match self {
            Answer::Nothing => 0,
            Answer::U64(v) => {
                out[..8].copy_from_slice(&v.to_ne_bytes());
                8
            }
            Answer::Pair(a, b) => {
                out[..8].copy_from_slice(&a.to_ne_bytes());
                out[8..16].copy_from_slice(&b.to_ne_bytes());
                16
            }
            Answer::Str(s) => {
                let n = s.len().min(out.len() - 1);
                out[..n].copy_from_slice(&s.as_bytes()[..n]);
                out[n] = 0;
                n + 1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(t: u32, payload: &[u8]) -> Vec<u8> {
        RequestSpec { luid: 0xffff_8880_1234_5678, uuid: b"LVM-abc", version: 3, seq: 77, request_type: t, payload }
            .encode()
    }

    /// The uuid ends at its first NUL wherever that falls against the
    /// eight-byte words it is scanned in, and fills the field without one.
    #[test]
    fn uuid_ends_at_its_first_nul_at_any_length() {
        for n in 0..=UUID_LEN {
            let uuid: Vec<u8> = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ".iter().copied().cycle().take(n).collect();
            let mut d = RequestSpec { luid: 1, uuid: b"", version: 3, seq: 1, request_type: 8, payload: &[] }.encode();
            let field = &mut d[RQ + RQ_UUID.start..RQ + RQ_UUID.end];
            field[..n].copy_from_slice(&uuid);
            // Bytes past the NUL are not part of it.
            if n + 2 <= UUID_LEN {
                field[n + 1] = b'x';
            }
            let req = Request::decode(&d, 0).unwrap();
            assert_eq!(req.uuid(), &uuid[..], "length {n}");
            assert!(req.uuid_is(&uuid), "length {n}");
            if n > 0 {
                assert!(!req.uuid_is(&uuid[..n - 1]), "a prefix, length {n}");
                let mut other = uuid.clone();
                other[n - 1] = b'a';
                assert!(!req.uuid_is(&other), "another uuid, length {n}");
            }
            assert!(!req.uuid_is(&[uuid.as_slice(), b"Z"].concat()), "a longer one, length {n}");
        }
        for v in [0u64, 0xff00_ffff_ffff_ffff, 0x0101_0101_0101_0100, 0x8000_0000_0000_0080] {
            assert_eq!(has_zero_byte(v), v.to_ne_bytes().contains(&0), "{v:#x}");
        }
        assert!(!has_zero_byte(0x8080_8080_8080_8080) && !has_zero_byte(u64::MAX));
    }

    #[test]
    fn bytes_eq_is_slice_equality() {
        let a: Vec<u8> = (0u8..40).collect();
        for n in 0..40 {
            assert!(bytes_eq(&a[..n], &a[..n]));
            assert!(!bytes_eq(&a[..n], &a[..n + 1]));
            for k in 0..n {
                let mut b = a[..n].to_vec();
                b[k] ^= 0x10;
                assert!(!bytes_eq(&a[..n], &b), "length {n}, byte {k}");
            }
        }
    }

    #[test]
    fn sizes_are_pinned() {
        assert_eq!(NLMSG_HDRLEN, 16);
        assert_eq!(CN_MSG_LEN, 20);
        assert_eq!(REQUEST_LEN, 160);
        assert_eq!(RQ_DATA_SIZE.end, REQUEST_LEN);
        assert_eq!(RQ_UUID.end, 137);
        assert_eq!(MAX_REQUEST_PAYLOAD, 332);
        assert_eq!(MAX_REQUEST_PAYLOAD / 8, 41); // >= 32 regions per batch
    }

    #[test]
    fn decodes_kernel_shaped_request() {
        let region = 5u64.to_ne_bytes();
        let d = spec(8, &region);
        let r = Request::decode(&d, 0).unwrap();
        assert_eq!(r.luid(), 0xffff_8880_1234_5678);
        assert_eq!(r.uuid(), b"LVM-abc");
        assert_eq!(r.version(), 3);
        assert_eq!(r.seq(), 77);
        assert_eq!(r.cn_seq(), 77);
        assert_eq!(r.request_type(), Some(RequestType::InSync));
        assert_eq!(r.payload, &region);
    }

    #[test]
    fn annotated_bytes() {
        // A GET_SYNC_COUNT for uuid "u", luid 1, seq 2: check every field
        // lands at the offset the kernel header gives.
        let d = RequestSpec { luid: 1, uuid: b"u", version: 3, seq: 2, request_type: 14, payload: &[] }.encode();
        assert_eq!(d.len(), 196);
        assert_eq!(&d[0..4], &196u32.to_ne_bytes()); // nlmsg_len
        assert_eq!(&d[4..6], &3u16.to_ne_bytes()); // NLMSG_DONE
        assert_eq!(&d[16..20], &7u32.to_ne_bytes()); // CN_IDX_DM
        assert_eq!(&d[20..24], &1u32.to_ne_bytes()); // CN_VAL_DM_USERSPACE_LOG
        assert_eq!(&d[32..34], &160u16.to_ne_bytes()); // cn_msg.len
        assert_eq!(&d[36..44], &1u64.to_ne_bytes()); // luid
        assert_eq!(d[44], b'u'); // uuid[0]
        assert_eq!(&d[176..180], &3u32.to_ne_bytes()); // version
        assert_eq!(&d[184..188], &2u32.to_ne_bytes()); // seq
        assert_eq!(&d[188..192], &14u32.to_ne_bytes()); // request_type
        assert_eq!(&d[192..196], &0u32.to_ne_bytes()); // data_size
    }

    #[test]
    fn reply_round_trip() {
        let d = spec(14, &[]);
        let r = Request::decode(&d, 0).unwrap();
        let mut out = [0u8; SEND_BUF_LEN];
        out[HEADERS_LEN..HEADERS_LEN + 8].copy_from_slice(&42u64.to_ne_bytes());
        let n = r.encode_reply(&mut out, 1234, 0, 8);
        let rep = Reply::decode(&out[..n]).unwrap();
        assert_eq!(rep.nl_pid, 1234);
        assert_eq!(rep.seq, 77);
        assert_eq!(rep.cn_seq, 77);
        assert_eq!(rep.luid, 0xffff_8880_1234_5678);
        assert_eq!(rep.uuid, b"LVM-abc");
        assert_eq!(rep.error, 0);
        assert_eq!(rep.u64_at(0), Some(42));
        let n = r.encode_reply(&mut out, 1234, -22, 0);
        let rep = Reply::decode(&out[..n]).unwrap();
        assert_eq!((rep.error, rep.payload.len()), (-22, 0));
    }

    #[test]
    fn rejects_every_malformed_shape() {
        let good = spec(7, &3u64.to_ne_bytes());
        assert!(Request::decode(&good, 0).is_ok());
        assert_eq!(Request::decode(&good, 4242).unwrap_err(), DecodeError::NotKernel(4242));
        for n in [0, 15, 16, 36, 195] {
            assert!(matches!(Request::decode(&good[..n.min(good.len())], 0), Err(DecodeError::Short(_))));
        }
        let mut bad = good.clone();
        bad[16..20].copy_from_slice(&8u32.to_ne_bytes());
        assert!(matches!(Request::decode(&bad, 0), Err(DecodeError::WrongId { .. })));
        let mut bad = good.clone();
        bad[20..24].copy_from_slice(&2u32.to_ne_bytes());
        assert!(matches!(Request::decode(&bad, 0), Err(DecodeError::WrongId { .. })));
        let mut bad = good.clone();
        bad[4..6].copy_from_slice(&2u16.to_ne_bytes()); // NLMSG_ERROR
        assert!(matches!(Request::decode(&bad, 0), Err(DecodeError::BadNetlink { .. })));
        let mut bad = good.clone();
        bad[0..4].copy_from_slice(&9999u32.to_ne_bytes());
        assert!(matches!(Request::decode(&bad, 0), Err(DecodeError::BadNetlink { .. })));
        let mut bad = good.clone();
        bad[32..34].copy_from_slice(&100u16.to_ne_bytes()); // < 160
        assert!(matches!(Request::decode(&bad, 0), Err(DecodeError::BadCnLen { .. })));
        let mut bad = good.clone();
        bad[32..34].copy_from_slice(&400u16.to_ne_bytes()); // past the datagram
        assert!(matches!(Request::decode(&bad, 0), Err(DecodeError::BadCnLen { .. })));
        let mut bad = good.clone();
        bad[192..196].copy_from_slice(&9u32.to_ne_bytes()); // data_size past the end
        assert!(matches!(Request::decode(&bad, 0), Err(DecodeError::DataPastEnd { data_size: 9, room: 8 })));
    }

    #[test]
    fn request_type_mask_and_range() {
        assert_eq!(RequestType::from_raw(0x100 | 9), Some(RequestType::Flush));
        assert_eq!(RequestType::from_raw(0), None);
        assert_eq!(RequestType::from_raw(18), None);
        for (i, t) in RequestType::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i + 1);
        }
    }

    #[test]
    fn payloads_by_type() {
        let regions = |p: &[u8]| match Body::decode(RequestType::MarkRegion, p) {
            Ok(Body::Regions(rs)) => Some(rs.collect::<Vec<_>>()),
            _ => None,
        };
        assert_eq!(regions(&[0; 7]), None);
        let p: Vec<u8> = [1u64, 2].iter().flat_map(|r| r.to_ne_bytes()).collect();
        assert_eq!(regions(&p), Some(vec![1, 2]));
        assert!(matches!(Body::decode(RequestType::InSync, &p), Err(PayloadError { request: "IN_SYNC", size: 16 })));
        assert!(matches!(Body::decode(RequestType::InSync, &p[..8]), Ok(Body::Region(1))));
        assert!(matches!(Body::decode(RequestType::SetRegionSync, &p), Ok(Body::SetSync { region: 1, in_sync: true })));
        assert!(matches!(Body::decode(RequestType::GetSyncCount, &p), Ok(Body::Nothing)), "payload of \"—\" ignored");
        // Replies: native-endian integers, strings with their NUL counted.
        let mut out = [0xaau8; 32];
        assert_eq!(Answer::Pair(1, 7).encode(&mut out), 16);
        assert_eq!(&out[8..16], &7u64.to_ne_bytes());
        assert_eq!(Answer::Str("1 core".into()).encode(&mut out), 7);
        assert_eq!(&out[..7], b"1 core\0");
        assert_eq!(Answer::Nothing.encode(&mut out), 0);
    }
}
