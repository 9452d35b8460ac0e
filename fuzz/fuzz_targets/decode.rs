//! `Request::decode` on arbitrary bytes from an arbitrary sender: it never
//! panics, it accepts exactly what docs/protocol.md §1 accepts (the
//! independent decoder of tests/support_model), and an accepted request's
//! reply, encoded with any payload and error, decodes back through
//! `wire::Reply::decode` to the same fields and is byte for byte the reply
//! docs/protocol.md §1 describes.
//!
//! Input: byte 0 chooses the sender (bit 7: a non-kernel port from bytes
//! 1..5), the reply payload length and error; the rest is the datagram.
#![no_main]

use dmulogd::wire::{Reply, Request, HEADERS_LEN, MAX_REPLY_PAYLOAD, SEND_BUF_LEN};
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support_model/mod.rs"]
#[allow(unused_imports)]
mod support_model;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else { return };
    let (sender, dgram) = if ctl & 0x80 != 0 && rest.len() >= 4 {
        (u32::from_ne_bytes(rest[..4].try_into().unwrap()), &rest[4..])
    } else {
        (0, rest)
    };
    let theirs = Request::decode(dgram, sender);
    let ours = support_model::decode(dgram, sender);
    let (r, o) = match (theirs, ours) {
        (Err(_), None) => return,
        (Ok(r), Some(o)) => (r, o),
        (theirs, ours) => panic!("decoders disagree: wire {theirs:?}, model {ours:?}"),
    };
    assert_eq!(
        (r.luid(), r.uuid(), r.version(), r.seq(), r.raw_type(), r.payload, r.cn_seq()),
        (o.luid, &o.uuid[..], o.version, o.seq, o.rtype, &o.payload[..], o.cn_seq)
    );
    // Any reply the server could build for it.
    let plen = usize::from(ctl & 0x3f) * (MAX_REPLY_PAYLOAD / 63);
    let plen = plen.min(MAX_REPLY_PAYLOAD);
    let error = [0, -22, -3, -5, -12, -17][usize::from(ctl >> 6 & 1) * (dgram.len() % 6)];
    let payload: Vec<u8> = (0..plen).map(|i| (i as u8) ^ ctl).collect();
    let mut out = vec![0u8; SEND_BUF_LEN];
    out[HEADERS_LEN..HEADERS_LEN + plen].copy_from_slice(&payload);
    let port = 0x1234_5678 ^ u32::from(ctl);
    let n = r.encode_reply(&mut out, port, error, plen);
    let rep = Reply::decode(&out[..n]).expect("an encoded reply decodes");
    assert_eq!(
        (rep.nl_pid, rep.cn_seq, rep.luid, &rep.uuid[..], rep.seq, rep.request_type, rep.error, &rep.payload[..]),
        (port, r.cn_seq(), r.luid(), r.uuid(), r.seq(), r.raw_type(), error, &payload[..])
    );
    assert_eq!(&out[..n], &support_model::reply_bytes(&o, port, error, &payload)[..], "reply differs from the model");
});
