//! What a failing run prints: how two replies differ, the last requests,
//! and how to replay it.

use super::*;
use std::collections::VecDeque;
use std::fmt::Write as _;

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
