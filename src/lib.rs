//! dmulogd: a userspace dirty-log server for device-mapper mirrors.
//!
//! Layout: a pure core — [`wire`] (datagram codec), [`disk`] (on-disk
//! header), [`log`] (one log's state machine), [`registry`] (logs by uuid
//! and luid) and [`server`] (dispatch and the loop) — and a thin shell of
//! one file per kernel concern: [`netlink`], [`bitmap`] (mmap), [`device`]
//! (finding log devices), [`signals`], [`pidfile`], [`daemon`].

pub mod bitmap;
pub mod cli;
pub mod daemon;
pub mod device;
pub mod disk;
pub mod error;
pub mod fault;
pub mod inspect;
pub mod log;
pub mod netlink;
pub mod pidfile;
pub mod registry;
pub mod server;
pub mod signals;
pub mod state;
pub mod sys;
pub mod transport;
pub mod wire;
