//! The transport's limit, for the request benchmarks: a responder that
//! parses nothing and answers every datagram with its first 196 bytes
//! (nlmsghdr + cn_msg + dm_ulog_request) with the lengths patched to a
//! payload-less reply (`data_size = 0`).
//!
//! It makes the same system calls per request as dmulogd's loop
//! (src/server.rs + src/transport.rs): one blocking `recv(MSG_TRUNC)` and
//! one `send(MSG_NOSIGNAL)` per reply — so dmulogd's rate divided by this
//! one is the share of the round trip the daemon's own work costs.
//!
//! Usage: echo_responder --transport-fd N   (exits when the peer closes)
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // figures and byte offsets, all small

use std::os::fd::RawFd;

const HEADERS_LEN: usize = 196;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let fd: RawFd = args
        .iter()
        .position(|a| a == "--transport-fd")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            eprintln!("usage: echo_responder --transport-fd N");
            std::process::exit(2)
        });
    // Our port, computed once (a netlink server knows its port; calling
    // getpid per reply would add a system call the transport does not need).
    let port = std::process::id().to_ne_bytes();
    let mut rbuf = vec![0u8; 4096];
    let mut sbuf = vec![0u8; 4096];
    loop {
        // SAFETY: rbuf is valid for writes of its length; MSG_TRUNC reports
        // the full length without writing past the buffer.
        let n = unsafe { libc::recv(fd, rbuf.as_mut_ptr().cast(), rbuf.len(), libc::MSG_TRUNC) };
        if n == 0 {
            return;
        }
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                Some(libc::ECONNRESET) => return,
                _ => {
                    eprintln!("echo_responder: recv: {e}");
                    std::process::exit(1);
                }
            }
        }
        let n = (n as usize).min(rbuf.len());
        if n < HEADERS_LEN {
            continue;
        }
        sbuf[..HEADERS_LEN].copy_from_slice(&rbuf[..HEADERS_LEN]);
        sbuf[0..4].copy_from_slice(&(HEADERS_LEN as u32).to_ne_bytes()); // nlmsg_len
        sbuf[12..16].copy_from_slice(&port); // nlmsg_pid
        sbuf[32..34].copy_from_slice(&160u16.to_ne_bytes()); // cn_msg.len
        sbuf[180..184].copy_from_slice(&0i32.to_ne_bytes()); // error
        sbuf[192..196].copy_from_slice(&0u32.to_ne_bytes()); // data_size
                                                             // SAFETY: sbuf holds HEADERS_LEN initialised bytes.
        let r = unsafe { libc::send(fd, sbuf.as_ptr().cast(), HEADERS_LEN, libc::MSG_NOSIGNAL) };
        if r < 0 {
            eprintln!("echo_responder: send: {}", std::io::Error::last_os_error());
            return;
        }
    }
}
