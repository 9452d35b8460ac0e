//! Command line: a hand-written parser with a pure `parse` that tests call.

use std::path::PathBuf;

pub const USAGE: &str = "\
dmulogd — userspace dirty-log server for device-mapper mirrors

Usage:
  dmulogd [OPTIONS]          serve the kernel's dm-log-userspace requests
  dmulogd inspect PATH       show the dirty log on a device or file
                             (exit 1 when it holds no valid log)
  dmulogd status [--json]    ask the running daemon (root): its options and
                             every log; exit 0, 3 when none runs, 1 on error

Options:
  -d, --daemon               detach; the parent exits 0 once the daemon
                             serves, 1 with the reason otherwise
  -p, --pidfile PATH         pid file [default: /run/dmulogd.pid]; a second
                             instance fails, naming the running one
      --no-pidfile           no pid file (the single-instance lock stays)
      --allow-clustered      serve clustered-core/clustered-disk logs as
                             single-node logs (only when no other node uses them)
      --max-memory MIB       bitmap memory all logs may use [default: 1024]
      --run-dir DIR          state kept across daemon restarts, private device
                             nodes [default: /run/dmulogd; keep it on tmpfs]
  -v, --verbose              more logging (-vv: every request); RUST_LOG overrides
  -q, --quiet                warnings and errors only
      --log-style STYLE      plain, journal (<N> priority prefixes, no name)
                             or kmsg (prefixes, at most 9 lines per 5 s)
                             [default: journal under systemd, kmsg when
                             stderr is /dev/kmsg or --daemon left no other]
  -h, --help                 this text
  -V, --version              version

Signals: TERM/INT exit when no log is live, otherwise flush and keep
serving; QUIT flushes and exits even with live logs; USR1 logs one line
per log.

Table line: mirror ... userspace <argc> <uuid> [integrated_flush]
            core <region_size> [sync|nosync]
          | disk <log_dev> <region_size> [sync|nosync]
";

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Serve(ServeOpts),
    Inspect(PathBuf),
    /// Ask the running daemon; `true`: as JSON.
    Status(bool),
    Help,
    Version,
}

#[derive(Debug, PartialEq, Eq)]
pub struct ServeOpts {
    pub daemon: bool,
    pub pidfile: Option<PathBuf>,
    pub allow_clustered: bool,
    pub max_memory_mib: u64,
    pub run_dir: PathBuf,
    /// Testing seam: serve this inherited socket instead of netlink.
    pub transport_fd: Option<i32>,
    /// Testing seam: every log's legs are these files (comma-separated;
    /// empty: no legs to flush), instead of the device-mapper tables.
    pub test_legs: Option<Vec<String>>,
    /// -1 quiet, 0 default, 1.. verbose.
    pub verbosity: i32,
    /// How log lines are written; None: from what stderr is.
    pub log_style: Option<crate::logging::Style>,
}

impl Default for ServeOpts {
    fn default() -> Self {
        ServeOpts {
            daemon: false,
            pidfile: Some(PathBuf::from("/run/dmulogd.pid")),
            allow_clustered: false,
            max_memory_mib: 1024,
            run_dir: PathBuf::from("/run/dmulogd"),
            transport_fd: None,
            test_legs: None,
            log_style: None,
            verbosity: 0,
        }
    }
}

/// Parses the arguments after argv[0].
pub fn parse(args: &[String]) -> Result<Command, String> {
    let mut o = ServeOpts::default();
    let mut pidfile_given = false;
    let mut it = args.iter();
    let value = |it: &mut std::slice::Iter<'_, String>, flag: &str| {
        it.next().cloned().ok_or_else(|| format!("{flag} needs a value"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "status" => {
                return match it.as_slice() {
                    [] => Ok(Command::Status(false)),
                    [j] if j == "--json" => Ok(Command::Status(true)),
                    rest => Err(format!("unexpected argument {:?} after status (status [--json])", rest[0])),
                };
            }
            "inspect" => {
                let path = value(&mut it, "inspect")?;
                if let Some(extra) = it.next() {
                    return Err(format!("unexpected argument {extra:?} after inspect PATH"));
                }
                return Ok(Command::Inspect(PathBuf::from(path)));
            }
            "-d" | "--daemon" => o.daemon = true,
            "-p" | "--pidfile" => {
                o.pidfile = Some(PathBuf::from(value(&mut it, a)?));
                pidfile_given = true;
            }
            "--no-pidfile" => {
                o.pidfile = None;
                pidfile_given = true;
            }
            "--allow-clustered" => o.allow_clustered = true,
            "--max-memory" => {
                let v = value(&mut it, a)?;
                o.max_memory_mib = v.parse().map_err(|_| format!("--max-memory: {v:?} is not a number of MiB"))?;
            }
            "--run-dir" => o.run_dir = PathBuf::from(value(&mut it, a)?),
            "--transport-fd" => {
                let v = value(&mut it, a)?;
                o.transport_fd = Some(v.parse().map_err(|_| format!("--transport-fd: {v:?} is not an fd"))?);
            }
            "--log-style" => {
                let v = value(&mut it, a)?;
                o.log_style = Some(
                    crate::logging::Style::parse(&v)
                        .ok_or_else(|| format!("--log-style: {v:?} (plain, journal or kmsg)"))?,
                );
            }
            "--test-legs" => {
                let v = value(&mut it, a)?;
                o.test_legs = Some(v.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect());
            }
            "-v" | "--verbose" => o.verbosity += 1,
            "-vv" => o.verbosity += 2,
            "-q" | "--quiet" => o.verbosity = -1,
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    // A test transport is not the machine's one server: no lock by default.
    if o.transport_fd.is_some() && !pidfile_given {
        o.pidfile = None;
    }
    Ok(Command::Serve(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, String> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn defaults_and_flags() {
        assert_eq!(p(""), Ok(Command::Serve(ServeOpts::default())));
        let Ok(Command::Serve(o)) = p("-d -p /tmp/x.pid --allow-clustered -v -v --max-memory 5") else { panic!() };
        assert!(o.daemon && o.allow_clustered);
        assert_eq!(o.pidfile, Some(PathBuf::from("/tmp/x.pid")));
        assert_eq!((o.verbosity, o.max_memory_mib), (2, 5));
        let Ok(Command::Serve(o)) = p("--transport-fd 3") else { panic!() };
        assert_eq!((o.transport_fd, o.pidfile), (Some(3), None));
    }

    #[test]
    fn commands_and_errors() {
        assert_eq!(p("--help"), Ok(Command::Help));
        assert_eq!(p("-d --version"), Ok(Command::Version));
        assert_eq!(p("inspect /dev/sdb"), Ok(Command::Inspect(PathBuf::from("/dev/sdb"))));
        assert!(p("inspect").is_err());
        assert!(p("inspect a b").is_err());
        assert!(p("--bogus").is_err());
        assert!(p("--pidfile").is_err());
        assert!(p("--max-memory lots").is_err());
    }
}
