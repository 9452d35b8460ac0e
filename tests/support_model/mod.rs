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
//! One file per role, all re-exported here:
//! - `rng.rs`: the seeded PRNG (tests/shared/rng.rs, which the benchmarks
//!   share) and the seeds, steps and environment of a run;
//! - `codec.rs`: request numbers, errnos, the datagram decoder and reply
//!   encoder, from docs/protocol.md alone;
//! - `model.rs`: the log model (`Model`, `MLog`, `Args`, `parse_ctr`);
//! - `gen.rs`: the kernel-shaped request generator (`Gen`, `Req`, `Frame`);
//! - `files.rs`: a world's log files (`make_files`, `check_files`) and
//!   page-cache probes (`page_dirty`, `on_tmpfs`);
//! - `inproc.rs`: the in-process harness (`InProc`, `snapshot`,
//!   `check_registry`);
//! - `report.rs`: failure reports (`diff_reply`, `Trace`, `ReplayOnPanic`).
//!
//! Scratch directories are tests/common's `TempDir` (tests/shared), which
//! the in-process tests and the fuzz/ crate include as they need it.
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
//!   (header and whole bitmap), at a MARK of a live log (its pages, and
//!   the clean bits the last leg flush let out), at an integrated FLUSH
//!   with marks (legs flushed first, so its clean bits go with them), and
//!   at POSTSUSPEND of a live log; a FLUSH with no marks flushes the legs
//!   (the harness gives the daemon legs that always flush) and leaves its
//!   clean bits for the next MARK; the binary's clear timer may write a
//!   log with pending clean bits at any time (`check_files` accepts either
//!   state of them);
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

mod codec;
mod files;
mod gen;
mod inproc;
mod model;
mod report;
mod rng;

#[allow(unused_imports)] // each test uses the parts it needs
pub use {codec::*, files::*, gen::*, inproc::*, model::*, report::*, rng::*};
