//! `dmulogd`: argument handling, logging and process set-up; the work is
//! in the library.

use dmulogd::cli::{self, Command, ServeOpts};
use dmulogd::netlink::NetlinkSocket;
use dmulogd::pidfile::{InstanceLock, PidFile};
use dmulogd::registry::{Options, Registry};
use dmulogd::server::{Server, Stopped};
use dmulogd::transport::{self, FdTransport};
use dmulogd::{daemon, device, fault, inspect, signals};
use log::{error, info, warn};
use std::io::Write;
use std::process::ExitCode;

/// Warns early about what would make the kernel ignore us.
fn preflight() {
    if !std::path::Path::new("/sys/module/dm_log_userspace").exists() {
        let loaded = std::process::Command::new("modprobe")
            .arg("dm-log-userspace")
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !loaded {
            warn!(
                "kernel module dm-log-userspace is not loaded and modprobe failed: \
                 load it (modprobe dm-log-userspace) before creating mirrors with a userspace log"
            );
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        warn!("not running as root: the kernel drops replies from processes without CAP_SYS_ADMIN");
    }
}

fn serve(mut o: ServeOpts) -> Result<Stopped, String> {
    o.validate()?;
    if o.daemon {
        daemon::close_inherited(o.transport_fd);
    }
    dmulogd::logging::init(o.verbosity, o.log_style);
    // The daemon moves to /: a relative pid file would be created here
    // and removed (not) there.
    if let Some(p) = o.pidfile.take() {
        o.pidfile = Some(std::path::absolute(&p).map_err(|e| format!("pidfile {}: {e}", p.display()))?);
    }
    match daemon::mark_initrd_storage_daemon() {
        Ok(true) => info!("in an initrd: argv[0] marked '@' so switch-root and shutdown spare this process"),
        Ok(false) => {}
        Err(e) => warn!("cannot mark argv[0] with '@': {e}"),
    }
    // The machine's netlink server holds the instance lock, with or
    // without a pid file; a test transport only when given a pid file.
    let _instance = match (&o.transport_fd, &o.pidfile) {
        (Some(_), None) => None,
        _ => Some(InstanceLock::acquire().map_err(|e| e.to_string())?),
    };
    if o.transport_fd.is_none() {
        if let Some(who) = dmulogd::netlink::other_listener() {
            return Err(format!(
                "{who} already listens on the device-mapper connector group: another userspace log server \
                 (cmirrord?) is running, and both cannot serve one kernel; stop it first"
            ));
        }
    }
    let mut pidfile = match &o.pidfile {
        Some(p) => Some(PidFile::lock(p).map_err(|e| format!("pidfile {}: {e}", p.display()))?),
        None => None,
    };
    device::remember_proc();
    let legs = match &o.test_legs {
        Some(paths) => dmulogd::dm::LegSource::Paths(paths.clone()),
        None => dmulogd::dm::LegSource::DeviceMapper,
    };
    let opts = Options { allow_clustered: o.allow_clustered, state_dir: Some(o.run_dir.join("state")), legs };
    let mut server = Server::new(Registry::new(opts, o.max_memory_mib.saturating_mul(1 << 20)));
    // Bind before detaching: when `--daemon` returns 0, the kernel can
    // already reach us and mirrors can be activated at once.
    enum T {
        Netlink(NetlinkSocket),
        Fd(FdTransport),
    }
    let mut t = match o.transport_fd {
        Some(fd) => {
            transport::check_socket(fd).map_err(|e| format!("--transport-fd {fd}: {e}"))?;
            // SAFETY: the fd was checked to be an open socket and is handed
            // to us by the parent that started us; nothing else uses it.
            T::Fd(unsafe { FdTransport::from_raw(fd) })
        }
        None => {
            preflight();
            T::Netlink(NetlinkSocket::open().map_err(|e| e.to_string())?)
        }
    };
    // `--daemon`: the parent exits 0 only once the child has written its
    // pid file and installed its handlers, and 1 with the child's reason
    // otherwise; the child owns the socket, the lock and the pid file.
    let ready_pipe = if o.daemon {
        match daemon::detach().map_err(|e| format!("detach: {e}"))? {
            daemon::Detached::Parent { ready, .. } => match daemon::wait_ready(ready) {
                Ok(()) => std::process::exit(0),
                Err(why) => return Err(why),
            },
            daemon::Detached::Child { ready } => Some(ready),
        }
    } else {
        None
    };
    let started = (|| -> Result<(), String> {
        if let Some(p) = pidfile.as_mut() {
            p.write_pid(std::process::id()).map_err(|e| format!("writing pidfile: {e}"))?;
        }
        signals::install().map_err(|e| format!("signals: {e}"))?;
        fault::install().map_err(|e| format!("SIGBUS handler: {e}"))?;
        Ok(())
    })();
    if let Some(pipe) = ready_pipe {
        daemon::ready(pipe, started.as_ref().map(drop).map_err(String::as_str));
        if started.is_err() {
            // The parent reported it; nothing is left to say here.
            if let Some(p) = pidfile.take() {
                p.remove();
            }
            std::process::exit(1);
        }
        if daemon::quiet_stderr() && o.log_style.is_none() {
            dmulogd::logging::set_style(dmulogd::logging::detect());
        }
    }
    started?;
    info!("serving dm-log-userspace requests (version {})", env!("CARGO_PKG_VERSION"));
    let control = _instance.as_ref().map(InstanceLock::socket);
    let r = match &mut t {
        T::Netlink(s) => server.run(s, control),
        T::Fd(s) => server.run(s, control),
    };
    if let Some(p) = pidfile {
        p.remove();
    }
    r.map_err(|e| format!("receiving requests: {e}"))
}

/// Exit status of a daemon that left live logs behind (SIGQUIT).
const EXIT_LIVE_LOGS: u8 = 4;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let _ = writeln!(std::io::stderr(), "dmulogd[{}]: panic: {info}", std::process::id());
    }));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dmulogd: {e}");
            return ExitCode::from(2);
        }
    };
    match cmd {
        Command::Help => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("dmulogd {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Status(json) => {
            let q = if json { "status json" } else { "status" };
            match dmulogd::control::query(q, std::time::Duration::from_secs(5)) {
                Ok(text) if text.starts_with("error:") => {
                    eprint!("dmulogd: {text}");
                    ExitCode::from(1)
                }
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(dmulogd::control::QueryError::NotRunning) => {
                    eprintln!("dmulogd: not running");
                    ExitCode::from(3)
                }
                Err(dmulogd::control::QueryError::Other(e)) => {
                    eprintln!("dmulogd: status: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Inspect { path, limit, json } => match inspect::inspect(&path, limit) {
            Ok(r) => {
                print!("{}", if json { r.json() } else { r.text() });
                if r.valid() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => {
                eprintln!("dmulogd: inspect {}: {e}", path.display());
                ExitCode::from(2)
            }
        },
        Command::Serve(o) if o.check => match o.validate() {
            Ok(()) => {
                println!("dmulogd: options are good");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("dmulogd: {e}");
                ExitCode::from(2)
            }
        },
        Command::Serve(o) => match serve(o) {
            Ok(Stopped::Clean) => ExitCode::SUCCESS,
            Ok(Stopped::LiveLogs(_)) => ExitCode::from(EXIT_LIVE_LOGS),
            Err(e) => {
                // The logger is up by now and writes to stderr.
                error!("{e}");
                ExitCode::from(1)
            }
        },
    }
}
