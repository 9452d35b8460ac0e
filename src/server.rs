//! The request loop: receive → decode → dispatch → reply, one request at a
//! time, and what each request does.
//!
//! Every well-framed request gets exactly one reply (the kernel resends
//! unanswered requests every 15 s, forever); a datagram that cannot be
//! attributed to a kernel request is dropped. Either way bad input is
//! logged at a limited rate and never changes a log.

use crate::error::Error;
use crate::registry::Registry;
use crate::signals;
use crate::transport::{Recv, Transport};
use crate::wire::{
    self, Answer, Body, Request, RequestType, HEADERS_LEN, MAX_REQUEST_PAYLOAD, RECV_BUF_LEN, SEND_BUF_LEN,
};
use log::{debug, info, log, warn, Level};
use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

/// At most `BURST` lines per `WINDOW` for each kind of complaint; the rest
/// are counted and reported when the window reopens.
const BURST: u32 = 10;
const WINDOW: Duration = Duration::from_secs(10);

#[derive(Default)]
struct RateLimit {
    since: Option<Instant>,
    shown: u32,
    suppressed: u64,
}

impl RateLimit {
    /// True when a line may be written now; reports what was suppressed.
    fn allow(&mut self) -> bool {
        let now = Instant::now();
        match self.since {
            Some(t) if now.duration_since(t) < WINDOW => {
                if self.shown < BURST {
                    self.shown += 1;
                    true
                } else {
                    self.suppressed += 1;
                    false
                }
            }
            _ => {
                if self.suppressed > 0 {
                    warn!("{} similar messages suppressed", self.suppressed);
                }
                self.since = Some(now);
                self.shown = 1;
                self.suppressed = 0;
                true
            }
        }
    }
}

#[derive(Default, Debug, Clone, Copy)]
pub struct Stats {
    pub requests: u64,
    pub errors: u64,
    pub dropped: u64,
}

/// How long a clean bit may wait for a FLUSH before the loop writes it
/// itself (dm-log-userspace with `integrated_flush` sends that FLUSH 3 s
/// late; a crash meanwhile costs a resync of every region still waiting).
pub const CLEAR_DELAY: Duration = Duration::from_millis(800);

/// How late the clear timer may fire while the loop sleeps: the receive
/// timeout is relative to each `recv`, so it is set again only when it
/// would overshoot the deadline by more than this (under load, about once
/// per `TIMER_SLACK` instead of once per request).
const TIMER_SLACK: Duration = Duration::from_millis(50);

/// Whether the socket's receive timeout `set` must change for a sleep of
/// at most `want` (None: for ever).
fn timer_needs_setting(set: Option<Duration>, want: Option<Duration>) -> bool {
    match (set, want) {
        (None, None) => false,
        (Some(_), None) | (None, Some(_)) => true,
        (Some(s), Some(w)) => s > w + TIMER_SLACK,
    }
}

pub struct Server {
    pub registry: Registry,
    pub stats: Stats,
    /// When pending clean bits must be written (see [`CLEAR_DELAY`]).
    clear_deadline: Option<Instant>,
    seen_faults: u64,
    dropped_log: RateLimit,
    error_log: RateLimit,
}

/// How serving ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// No log was live (or the test transport closed).
    Clean,
    /// SIGQUIT with this many live logs: their mirrors block until a
    /// server returns, which the exit status says.
    LiveLogs(usize),
}

/// What the loop does after looking at signals.
#[derive(Debug, PartialEq, Eq)]
enum Control {
    Serve,
    Exit,
}

impl Server {
    pub fn new(registry: Registry) -> Server {
        Server {
            registry,
            stats: Stats::default(),
            clear_deadline: None,
            seen_faults: crate::fault::count(),
            dropped_log: RateLimit::default(),
            error_log: RateLimit::default(),
        }
    }

    /// Decodes one datagram and, for a kernel request, writes the reply
    /// into `out`; returns its length, or None when the datagram is dropped.
    /// A fault during the request fails it (faults from before it were
    /// attributed by the loop's check before the receive).
    pub fn handle_datagram(&mut self, dgram: &[u8], sender: u32, port: u32, out: &mut [u8]) -> Option<usize> {
        let req = match Request::decode(dgram, sender) {
            Ok(r) => r,
            Err(e) => {
                self.stats.dropped += 1;
                if self.dropped_log.allow() {
                    warn!("dropped: {e}");
                }
                return None;
            }
        };
        self.stats.requests += 1;
        let mut result = self.dispatch(&req, &mut out[HEADERS_LEN..]);
        if self.check_faults() {
            if result.is_ok() && req.request_type() == Some(RequestType::Ctr) {
                // Nothing half-built survives a CTR that faulted.
                let _ = self.registry.remove(req.uuid(), req.luid());
            }
            result = Err(Error::io("access", "log device", io::Error::from_raw_os_error(libc::EIO)));
        }
        let (error, len) = match result {
            Ok(len) => (0, len),
            Err(e) => {
                self.stats.errors += 1;
                // Unknown logs are routine after a restart: the kernel
                // answers -ESRCH with CTR + RESUME.
                let level = if matches!(e, Error::UnknownLog | Error::NotLoaded) { Level::Info } else { Level::Warn };
                if self.error_log.allow() {
                    let name = req.request_type().map_or("?", RequestType::name);
                    log!(
                        level,
                        "{name} (type {}) for {}/{:#x}: {e}",
                        req.raw_type(),
                        String::from_utf8_lossy(req.uuid()),
                        req.luid()
                    );
                }
                // dm_consult_userspace() stores an error reply's data_size
                // into the caller's rdata_size, and after -ESRCH the kernel
                // reconnects and retries with that same, now zero, size: the
                // real answer then fails with -ENOSPC (an IN_SYNC read as
                // "not in sync" sends a write to one leg only). So -ESRCH
                // carries zeros of the request's reply size, which keeps the
                // kernel's buffer size intact for the retry.
                let keep = match (&e, req.request_type()) {
                    (Error::UnknownLog | Error::NotLoaded, Some(t)) => t.reply_buffer(),
                    _ => 0,
                };
                out[HEADERS_LEN..HEADERS_LEN + keep].fill(0);
                (e.errno(), keep)
            }
        };
        Some(req.encode_reply(out, port, error, len))
    }

    /// Carries out one request; reply payload goes to `out`, its length is
    /// returned. An unknown log gets -ESRCH before its payload is looked at
    /// (after a restart every request of a live table ends up here first).
    pub fn dispatch(&mut self, req: &Request<'_>, out: &mut [u8]) -> Result<usize, Error> {
        let t = req.request_type().map_or_else(|| Err(Error::UnknownRequest(req.raw_type())), Ok)?;
        if !wire::VERSIONS.contains(&req.version()) {
            return Err(Error::Unsupported(format!("request version {}", req.version())));
        }
        let p = req.payload;
        if p.len() > MAX_REQUEST_PAYLOAD {
            return Err(Error::BadPayload { request: t.name(), size: p.len() });
        }
        let luid = req.luid();
        debug!(
            "{} {}/{:#x} seq {} ({} bytes)",
            t.name(),
            String::from_utf8_lossy(req.uuid()),
            luid,
            req.seq(),
            p.len()
        );
        // Only requests that make or unmake a log need the uuid as a
        // slice; the others compare it in place (Request::uuid_is).
        let uuid = || req.uuid();
        let body = || Body::decode(t, p).map_err(|e| Error::BadPayload { request: e.request, size: e.size });
        let answer = match t {
            // The device name goes only to the CTR of userspace_ctr(),
            // whose string has no trailing NUL: the reconnect CTR after
            // -ESRCH sends strlen+1 bytes and passes *no* reply buffer, so
            // any data there fails with -ENOSPC and the kernel retries for
            // ever.
            RequestType::Ctr => {
                let created = self.registry.create(uuid(), luid, p)?;
                if created.new {
                    info!(
                        "created log {}/{:#x}: {}",
                        String::from_utf8_lossy(uuid()),
                        luid,
                        String::from_utf8_lossy(p.split(|&b| b == 0).next().unwrap_or(&[]))
                    );
                }
                match created.devno {
                    Some(name) if req.version() >= 2 && p.last() != Some(&0) => Answer::Str(name),
                    _ => Answer::Nothing,
                }
            }
            RequestType::Dtr => {
                self.registry.remove(uuid(), luid)?;
                info!("destroyed log {}/{:#x}", String::from_utf8_lossy(uuid()), luid);
                Answer::Nothing
            }
            RequestType::Resume => {
                self.registry.resume(uuid(), luid)?;
                self.note_clears(uuid(), luid);
                Answer::Nothing
            }
            _ => {
                let log = self.registry.find(luid, |u| req.uuid_is(u))?;
                match (t, body()?) {
                    (RequestType::Presuspend, _) => Answer::Nothing,
                    (RequestType::Postsuspend, _) => {
                        log.postsuspend()?;
                        Answer::Nothing
                    }
                    (RequestType::GetRegionSize, _) => Answer::U64(u64::from(log.args.region_size)),
                    (RequestType::IsClean, Body::Region(r)) => Answer::flag(log.is_clean(r)?),
                    (RequestType::InSync, Body::Region(r)) => Answer::flag(log.in_sync(r)?),
                    (RequestType::Flush, Body::Regions(rs)) => {
                        log.flush(rs)?;
                        Answer::Nothing
                    }
                    (RequestType::MarkRegion, Body::Regions(rs)) => {
                        log.mark(rs)?;
                        Answer::Nothing
                    }
                    (RequestType::ClearRegion, Body::Regions(rs)) => {
                        log.clear(rs)?;
                        if log.clears_pending() && self.clear_deadline.is_none() {
                            self.clear_deadline = Some(Instant::now() + CLEAR_DELAY);
                        }
                        Answer::Nothing
                    }
                    (RequestType::GetResyncWork, _) => {
                        let work = log.get_resync_work()?;
                        Answer::Pair(u64::from(work.is_some()), work.unwrap_or(0))
                    }
                    (RequestType::SetRegionSync, Body::SetSync { region, in_sync }) => {
                        log.set_region_sync(region, in_sync)?;
                        Answer::Nothing
                    }
                    (RequestType::GetSyncCount, _) => Answer::U64(log.sync_count()),
                    (RequestType::StatusInfo, _) => Answer::Str(log.status_info()),
                    (RequestType::StatusTable, _) => Answer::Str(log.status_table()),
                    (RequestType::IsRemoteRecovering, Body::Region(r)) => Answer::Pair(0, log.in_sync_hint(r)?),
                    (t, b) => unreachable!("{} decoded as {b:?}", t.name()),
                }
            }
        };
        Ok(answer.encode(out))
    }

    /// After a SIGBUS was survived (src/fault.rs), wherever it happened:
    /// each faulting address is attributed to the log whose state file it
    /// was in (several may fault between two checks; if more than the
    /// handler's ring kept, every log with state files is told). True when
    /// there were new faults.
    fn check_faults(&mut self) -> bool {
        let now = crate::fault::count();
        if now == self.seen_faults {
            return false;
        }
        let addrs = crate::fault::addrs_since(self.seen_faults);
        self.seen_faults = now;
        match addrs {
            Some(addrs) => {
                for addr in addrs {
                    if !self.registry.iter_mut().any(|log| log.on_fault(addr)) {
                        warn!("survived SIGBUS at {addr:#x} outside any log's state file");
                    }
                }
            }
            None => {
                for log in self.registry.iter_mut().filter(|l| l.has_state_files()) {
                    log.state_faulted();
                }
            }
        }
        true
    }

    /// Arms the clear timer when the log just resumed holds clean bits that
    /// wait for the device.
    fn note_clears(&mut self, uuid: &[u8], luid: u64) {
        if let Ok(log) = self.registry.get(uuid, luid) {
            if log.clears_pending() && self.clear_deadline.is_none() {
                self.clear_deadline = Some(Instant::now() + CLEAR_DELAY);
            }
        }
    }

    /// The clear timer: every live log's clean bits that no FLUSH wrote go
    /// to the device now (after a leg flush).
    fn write_clears(&mut self) {
        self.clear_deadline = None;
        for log in self.registry.iter_mut() {
            if log.clears_pending() {
                if let Err(e) = log.write_clears() {
                    if self.error_log.allow() {
                        warn!("writing clean bits of log {}: {e}", String::from_utf8_lossy(&log.uuid));
                    }
                }
            }
        }
    }

    /// How long the loop may sleep before the clear timer is due.
    fn timeout(&self) -> Option<Duration> {
        self.clear_deadline.map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// `dmulogd status` queries waiting on the control socket.
    fn on_queries(&mut self, control: Option<BorrowedFd<'_>>) {
        let Some(fd) = control else { return };
        while let Ok(Some(q)) = crate::control::receive(fd) {
            let text = if q.uid != Some(0) {
                "error: dmulogd status is for root only\n".to_owned()
            } else {
                match q.text.as_str() {
                    "status" => self.report(false),
                    "status json" => self.report(true),
                    other => format!("error: unknown query {other:?}\n"),
                }
            };
            if let Err(e) = crate::control::answer(fd, &q, &text) {
                if self.error_log.allow() {
                    warn!("answering a status query: {e}");
                }
            }
        }
    }

    /// What `dmulogd status` prints: the daemon, then one entry per log.
    pub fn report(&self, json: bool) -> String {
        use crate::control::json_str;
        let r = &self.registry;
        let state = r.opts.state_dir.as_ref().map_or("-".to_owned(), |p| p.display().to_string());
        let mut logs: Vec<&crate::log::Log> = r.iter().collect();
        logs.sort_by(|a, b| (&a.uuid, a.luid).cmp(&(&b.uuid, b.luid)));
        let rows: Vec<_> = logs
            .iter()
            .map(|l| {
                let dirty = l.dirty_count();
                (l, l.device_name().unwrap_or_default(), dirty)
            })
            .collect();
        let pid = std::process::id();
        let version = env!("CARGO_PKG_VERSION");
        if json {
            let logs: Vec<String> = rows
                .iter()
                .map(|(l, dev, dirty)| {
                    format!(
                        "{{\"uuid\":{},\"luid\":{},\"type\":{},\"device\":{},\"health\":\"{}\",\"regions\":{},\"in_sync\":{},\"dirty\":{},\"resumed\":{}}}",
                        json_str(&l.uuid),
                        l.luid,
                        json_str(l.args.type_name.as_bytes()),
                        if dev.is_empty() { "null".into() } else { json_str(dev.as_bytes()) },
                        l.health().letter(),
                        l.region_count(),
                        l.sync_count(),
                        dirty.map_or("null".into(), |d| d.to_string()),
                        l.is_resumed()
                    )
                })
                .collect();
            format!(
                "{{\"pid\":{pid},\"version\":\"{version}\",\"allow_clustered\":{},\"max_memory\":{},\"memory_used\":{},\"state_dir\":{},\"requests\":{},\"errors\":{},\"dropped\":{},\"logs\":[{}]}}\n",
                r.opts.allow_clustered,
                r.memory_limit(),
                r.memory_used(),
                json_str(state.as_bytes()),
                self.stats.requests,
                self.stats.errors,
                self.stats.dropped,
                logs.join(",")
            )
        } else {
            let mut s = format!(
                "dmulogd {version}, pid {pid}\noptions: {}max memory {} MiB ({} KiB used)\nstate directory: {state}\n\
                 {} requests, {} error replies, {} datagrams dropped\n{} logs\n",
                if r.opts.allow_clustered { "--allow-clustered, " } else { "" },
                r.memory_limit() >> 20,
                r.memory_used() >> 10,
                self.stats.requests,
                self.stats.errors,
                self.stats.dropped,
                rows.len()
            );
            if !rows.is_empty() {
                s.push_str("UUID LUID TYPE DEVICE HEALTH REGIONS IN_SYNC DIRTY STATE\n");
            }
            for (l, dev, dirty) in rows {
                s.push_str(&format!(
                    "{} {:#x} {} {} {} {} {} {} {}\n",
                    String::from_utf8_lossy(&l.uuid).escape_default(),
                    l.luid,
                    l.args.type_name,
                    if dev.is_empty() { "-" } else { &dev },
                    l.health().letter(),
                    l.region_count(),
                    l.sync_count(),
                    dirty.map_or("-".into(), |d| d.to_string()),
                    if l.is_resumed() { "resumed" } else { "suspended" }
                ));
            }
            s
        }
    }

    /// Makes every log durable; logs failures.
    pub fn persist_all(&mut self) {
        for log in self.registry.iter_mut() {
            if let Err(e) = log.persist() {
                warn!("flushing log {}: {e}", String::from_utf8_lossy(&log.uuid));
            }
        }
    }

    fn on_signals(&mut self, s: signals::Pending) -> Control {
        if s.usr1 {
            info!(
                "{} logs; {} requests, {} error replies, {} datagrams dropped",
                self.registry.len(),
                self.stats.requests,
                self.stats.errors,
                self.stats.dropped
            );
            for log in self.registry.iter() {
                info!("{}", log.summary());
            }
        }
        if s.hup {
            info!("SIGHUP ignored (nothing to reload)");
        }
        if s.quit {
            self.persist_all();
            if !self.registry.is_empty() {
                warn!(
                    "SIGQUIT: exiting with {} live logs; their mirrors will block until a server returns",
                    self.registry.len()
                );
            }
            return Control::Exit;
        }
        if s.term {
            if self.registry.is_empty() {
                info!("terminating: no live logs");
                return Control::Exit;
            }
            self.persist_all();
            warn!(
                "termination requested with {} live logs: flushed, still serving (mirrors need a server; SIGQUIT forces exit)",
                self.registry.len()
            );
        }
        Control::Serve
    }

    /// Serves until told to stop (signals) or the transport closes.
    ///
    /// Per request: one blocking `recv`, one `send`, as the floor does (a
    /// `ppoll` before each `recv` was a third more system calls and ~20%
    /// more server CPU per request in the VM). How signals, status queries
    /// (SIGIO) and the clear timer (the socket's receive timeout) still
    /// wake the loop, with no window to lose one: [`crate::signals`].
    pub fn run<T: Transport>(&mut self, t: &mut T, queries: Option<BorrowedFd<'_>>) -> io::Result<Stopped> {
        let mut rbuf = vec![0u8; RECV_BUF_LEN];
        let mut sbuf = vec![0u8; SEND_BUF_LEN];
        if let Some(fd) = queries {
            crate::control::signal_queries(fd)?;
        }
        let _wake = signals::WakeOn::new(t.fd());
        // The socket's receive timeout as last set (None: for ever, as a
        // new socket has it).
        let mut timeout: Option<Duration> = None;
        // Queries sent before SIGIO was asked for raised none.
        let mut query = queries.is_some();
        loop {
            if self.clear_deadline.is_some_and(|d| Instant::now() >= d) {
                self.write_clears();
                self.check_faults();
            }
            // The timeout first, then the flags (see crate::signals).
            let want = self.timeout();
            if signals::take_clobbered() || timer_needs_setting(timeout, want) {
                crate::sys::set_recv_timeout(t.fd(), want)?;
                timeout = want;
            }
            // Requests queued before a signal are answered before it is
            // acted on (SIGUSR1's summary counts them, SIGQUIT leaves none
            // unanswered): with a signal or query pending the receive does
            // not sleep, and they are taken once it finds the queue empty.
            let signalled = query || signals::any();
            match t.recv(&mut rbuf, !signalled)? {
                Recv::Empty if signalled => {
                    let pending = signals::take();
                    if std::mem::take(&mut query) || pending.query {
                        self.on_queries(queries);
                        // A report reads the state files: a fault there is
                        // not the next request's.
                        self.check_faults();
                    }
                    if pending != signals::Pending::default() {
                        let control = self.on_signals(pending);
                        // A summary (SIGUSR1) may have touched a vanished
                        // device.
                        self.check_faults();
                        if control == Control::Exit {
                            return Ok(match self.registry.len() {
                                0 => Stopped::Clean,
                                n => Stopped::LiveLogs(n),
                            });
                        }
                    }
                }
                Recv::Datagram { len, .. } if len > rbuf.len() => {
                    self.stats.dropped += 1;
                    if self.dropped_log.allow() {
                        warn!("dropped: datagram of {len} bytes is larger than any request");
                    }
                }
                Recv::Datagram { len, sender } => {
                    let port = t.port();
                    if let Some(n) = self.handle_datagram(&rbuf[..len], sender, port, &mut sbuf) {
                        if let Err(e) = t.send(&sbuf[..n]) {
                            if self.error_log.allow() {
                                warn!("sending reply: {e}");
                            }
                        }
                    }
                }
                Recv::Empty => {}
                Recv::Lost => {
                    // The kernel could not queue a request for us: it took
                    // that as "no server" (-ESRCH) and reconnects within
                    // about 2 s (CTR + RESUME, then the request again).
                    if self.dropped_log.allow() {
                        warn!("receive queue overflowed: the kernel will reconnect and resend what it could not queue");
                    }
                }
                Recv::Closed => {
                    info!("transport closed");
                    self.persist_all();
                    return Ok(Stopped::Clean);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Options;
    use crate::wire::RequestSpec;

    /// A fault during a CTR (a state file truncated while it was being
    /// built) must not leave the half-built log registered: the CTR is
    /// answered -EIO and the kernel finds no log.
    #[test]
    fn a_ctr_that_faulted_leaves_no_log() {
        let mut s = Server::new(Registry::new(Options::default(), 1 << 30));
        let ctr = RequestSpec { luid: 7, uuid: b"U", version: 3, seq: 1, request_type: 1, payload: b"8192 core 1024" };
        let mut out = vec![0u8; crate::wire::SEND_BUF_LEN];
        // The fault is recorded after the loop's last check: as if taken
        // inside this request.
        crate::fault::simulate(usize::MAX);
        let n = s.handle_datagram(&ctr.encode(), 0, 1, &mut out).expect("a reply");
        let reply = crate::wire::Reply::decode(&out[..n]).expect("decodes");
        assert_eq!(reply.error, -libc::EIO);
        assert!(s.registry.get(b"U", 7).is_err(), "the CTR that faulted left its log registered");
        assert!(s.registry.is_empty());
    }
}
