//! The daemon's request handling in this process (`Server::handle_datagram`
//! on a live registry) and its state compared with the model.

use super::*;
use std::path::Path;

/// Everything a kernel could observe about every log, in a stable order.
pub fn snapshot(reg: &dmulogd::registry::Registry) -> Vec<u8> {
    let mut logs: Vec<_> = reg.iter().collect();
    logs.sort_by(|a, b| (&a.uuid, a.luid).cmp(&(&b.uuid, b.luid)));
    let mut s = Vec::new();
    for l in logs {
        s.extend_from_slice(&l.uuid);
        s.extend_from_slice(&l.luid.to_ne_bytes());
        s.push(u8::from(l.is_resumed()));
        s.extend_from_slice(format!("{:?}", l.health()).as_bytes());
        s.extend_from_slice(&l.sync_count().to_ne_bytes());
        s.extend_from_slice(l.clean_bits().bytes());
        let n = l.region_count();
        let mut byte = 0u8;
        for r in 0..n {
            byte = byte << 1 | u8::from(l.in_sync(r).unwrap_or(false)) << 1 | u8::from(l.is_clean(r).unwrap());
            if r % 4 == 3 {
                s.push(byte);
                byte = 0;
            }
        }
        s.push(byte);
        s.extend_from_slice(l.status_info().as_bytes());
        s.extend_from_slice(l.status_table().as_bytes());
    }
    s
}

/// Compares the daemon's registry with the model log by log.
pub fn check_registry(model: &Model, reg: &mut dmulogd::registry::Registry, rng: &mut Rng) -> Result<(), String> {
    use dmulogd::log::Health;
    if reg.len() != model.logs.len() {
        return Err(format!("daemon has {} logs, model {}", reg.len(), model.logs.len()));
    }
    for (i, ml) in model.logs.iter().enumerate() {
        let name = format!("{}/{:#x}", String::from_utf8_lossy(&ml.uuid), ml.luid);
        let dl = reg.get(&ml.uuid, ml.luid).map_err(|e| format!("log {name} missing in the daemon: {e}"))?;
        let health = match dl.health() {
            Health::Alive => b'A',
            Health::Failed => b'D',
            Health::FlushFailed => b'F',
        };
        if (dl.is_resumed(), health, dl.sync_count()) != (ml.resumed, ml.health, ml.sync_count()) {
            return Err(format!(
                "log {name}: daemon resumed={} health={} sync_count={}, model resumed={} health={} sync_count={}",
                dl.is_resumed(),
                health as char,
                dl.sync_count(),
                ml.resumed,
                ml.health as char,
                ml.sync_count()
            ));
        }
        let n = ml.n();
        let all = n <= 8192;
        let count = if all { n } else { 4096 };
        for k in 0..count {
            let r = if all { k } else { rng.below(n) };
            // A disk log no RESUME loaded answers IN_SYNC with -ESRCH.
            let (c, s) = (dl.is_clean(r).unwrap(), dl.in_sync(r).ok());
            if c != model.is_clean(i, r) || s != ml.loaded.then_some(ml.sync[r as usize]) {
                return Err(format!(
                    "log {name} region {r}: daemon clean={c} in_sync={s:?}, model clean={} in_sync={}",
                    model.is_clean(i, r),
                    ml.sync[r as usize]
                ));
            }
        }
        if dl.status_info() != model.status_info(i) || dl.status_table() != model.status_table(i) {
            return Err(format!(
                "log {name}: status {:?}/{:?}, model {:?}/{:?}",
                dl.status_info(),
                dl.status_table(),
                model.status_info(i),
                model.status_table(i)
            ));
        }
    }
    Ok(())
}

/// The daemon's request handling in this process.
pub struct InProc {
    pub server: dmulogd::server::Server,
    pub port: u32,
    out: Vec<u8>,
    opts: dmulogd::registry::Options,
    memory_limit: u64,
}

impl InProc {
    /// `state`: keep state files in `<run_dir>/state` as the binary does.
    pub fn new(memory_limit: u64, allow_clustered: bool, run_dir: &Path, state: bool) -> InProc {
        // Legs that always flush: clean bits go out with the next write.
        let opts = dmulogd::registry::Options {
            allow_clustered,
            state_dir: state.then(|| run_dir.join("state")),
            legs: dmulogd::dm::LegSource::Paths(Vec::new()),
        };
        InProc {
            server: Self::server(&opts, memory_limit),
            port: 4321,
            out: vec![0; dmulogd::wire::SEND_BUF_LEN],
            opts,
            memory_limit,
        }
    }

    fn server(opts: &dmulogd::registry::Options, memory_limit: u64) -> dmulogd::server::Server {
        dmulogd::server::Server::new(dmulogd::registry::Registry::new(opts.clone(), memory_limit))
    }

    /// A fresh daemon: what a restart leaves (state files stay).
    pub fn restart(&mut self) {
        self.server = Self::server(&self.opts, self.memory_limit);
        self.port += 1;
    }

    pub fn handle(&mut self, dgram: &[u8], sender: u32) -> Option<Vec<u8>> {
        let n = self.server.handle_datagram(dgram, sender, self.port, &mut self.out)?;
        Some(self.out[..n].to_vec())
    }
}
