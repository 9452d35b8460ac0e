//! dmulogd: a userspace dirty-log server for device-mapper mirrors.
//!
//! Layout: a pure core — [`wire`] (datagram codec), [`args`] (table
//! arguments), [`disk`] (on-disk header), [`image`] (a disk log's bitmap
//! and what of it the device holds), [`log`] (one log's state machine,
//! over [`image::BlockIo`] and [`dm::Legs`]), [`registry`] (logs by uuid
//! and luid) and [`server`] (dispatch and the loop) — and a thin shell of
//! one file per kernel concern: [`open`] (building a log: state files,
//! device, legs), [`device`] (finding and doing I/O on log devices), [`dm`]
//! (the mirror's legs through device-mapper ioctls), [`netlink`],
//! [`bitmap`] (mmap), [`state`], [`fault`] (SIGBUS), [`signals`],
//! [`pidfile`], [`daemon`]. The protocol and on-disk format:
//! docs/protocol.md.

pub mod args;
pub mod bitmap;
pub mod cli;
pub mod control;
pub mod daemon;
pub mod device;
pub mod disk;
pub mod dm;
pub mod error;
pub mod fault;
pub mod image;
pub mod inspect;
pub mod log;
pub mod logging;
pub mod netlink;
pub mod open;
pub mod pidfile;
pub mod registry;
pub mod server;
pub mod signals;
pub mod state;
pub mod sys;
pub mod transport;
pub mod wire;
