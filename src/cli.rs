//! Command line: a hand-written parser with a pure `parse` that tests call.

use std::path::PathBuf;

pub const USAGE: &str = "\
dmulogd — userspace dirty-log server for device-mapper mirrors

Usage:
  dmulogd [OPTIONS]          serve the kernel's dm-log-userspace requests
  dmulogd inspect PATH [--limit N] [--json]
                             show the dirty log on a device or file, every
                             dirty range or the first N (exit 1 when it
                             holds no valid log, 2 when it cannot be read)
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
      --check                only check these options and exit (0 when
                             they are good): initramfs hooks run it when
                             they build an image, so a typo fails the build,
                             not the boot
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

/// `inspect PATH [--limit N] [--json]`, in any order.
fn inspect_args(rest: &[&str]) -> Result<Command, String> {
    let (mut path, mut limit, mut json) = (None, None, false);
    let mut it = rest.iter();
    while let Some(&a) = it.next() {
        let n = match a.split_once('=') {
            Some(("--limit", n)) => Some(n),
            _ if a == "--limit" => Some(*it.next().ok_or("--limit needs a value")?),
            _ => None,
        };
        match (a, n) {
            (_, Some(n)) => limit = Some(n.parse().map_err(|_| format!("--limit: {n:?} is not a number of ranges"))?),
            ("--json", _) => json = true,
            (p, _) if p.starts_with('-') => {
                return Err(format!("unknown inspect option {p:?} (inspect PATH [--limit N] [--json])"))
            }
            (p, _) if path.is_none() => path = Some(PathBuf::from(p)),
            (p, _) => return Err(format!("inspect takes one PATH, got a second: {p:?}")),
        }
    }
    let path = path.ok_or("inspect needs a PATH")?;
    Ok(Command::Inspect { path, limit, json })
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Serve(ServeOpts),
    /// A path, at most how many dirty ranges to print, and as JSON.
    Inspect {
        path: PathBuf,
        limit: Option<usize>,
        json: bool,
    },
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
    /// `--check`: validate the options and exit (image build time).
    pub check: bool,
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
            check: false,
            verbosity: 0,
        }
    }
}

impl ServeOpts {
    /// What parsing cannot see: paths that must be absolute.
    pub fn validate(&self) -> Result<(), String> {
        if !self.run_dir.is_absolute() {
            return Err(format!("--run-dir {}: must be an absolute path", self.run_dir.display()));
        }
        Ok(())
    }
}

/// Splits `--name=value` and bundled short flags (`-dv`, `-vvv`) into
/// separate words, so the parser below sees one flag per word.
fn words(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for a in args {
        if let Some((name, value)) = a.strip_prefix("--").and_then(|r| r.split_once('=')) {
            out.push(format!("--{name}"));
            out.push(value.to_owned());
        } else if a.len() > 2
            && a.starts_with('-')
            && !a.starts_with("--")
            && a[1..].bytes().all(|b| b.is_ascii_alphabetic())
        {
            // Short flags bundled; a value-taking -p must come last.
            out.extend(a[1..].chars().map(|c| format!("-{c}")));
        } else {
            out.push(a.clone());
        }
    }
    out
}

/// Parses the arguments after argv[0]. Every argument is looked at (an
/// unknown one is an error even next to --version), and serve options
/// may not precede a command (`-d inspect X` would drop the -d).
pub fn parse(args: &[String]) -> Result<Command, String> {
    let args = words(args);
    let mut o = ServeOpts::default();
    let mut pidfile_given = false;
    let mut serve_flags = 0usize;
    let mut wants: Option<Command> = None;
    let mut it = args.iter();
    let value = |it: &mut std::slice::Iter<'_, String>, flag: &str| {
        it.next().cloned().ok_or_else(|| format!("{flag} needs a value"))
    };
    while let Some(a) = it.next() {
        let before = serve_flags;
        serve_flags += 1;
        match a.as_str() {
            "-h" | "--help" | "help" => wants = Some(Command::Help),
            "-V" | "--version" => wants = wants.or(Some(Command::Version)),
            "status" | "inspect" => {
                if wants == Some(Command::Help) {
                    return Ok(Command::Help);
                }
                if before > 0 {
                    return Err(format!("options go after the command: {a} takes no serve options (see --help)"));
                }
                let rest: Vec<&str> = it.by_ref().map(String::as_str).collect();
                if rest.iter().any(|r| *r == "-h" || *r == "--help") {
                    return Ok(Command::Help);
                }
                return match (a.as_str(), rest.as_slice()) {
                    ("status", []) => Ok(Command::Status(false)),
                    ("status", ["--json"]) => Ok(Command::Status(true)),
                    ("status", [x, ..]) => Err(format!("unexpected argument {x:?} after status (status [--json])")),
                    ("inspect", _) => inspect_args(&rest),
                    (_, _) => unreachable!(),
                };
            }
            "-d" | "--daemon" => o.daemon = true,
            "--check" => o.check = true,
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
                o.max_memory_mib = v
                    .parse()
                    .ok()
                    .filter(|&m: &u64| m > 0)
                    .ok_or_else(|| format!("--max-memory: {v:?} is not a positive number of MiB"))?;
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
            "-v" | "--verbose" => o.verbosity = o.verbosity.max(0) + 1,
            "-q" | "--quiet" => o.verbosity = -1,
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    if let Some(c) = wants {
        return Ok(c);
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
        let insp = |limit, json| Ok(Command::Inspect { path: PathBuf::from("/dev/sdb"), limit, json });
        assert_eq!(p("inspect /dev/sdb"), insp(None, false));
        assert_eq!(p("inspect /dev/sdb --limit 5"), insp(Some(5), false));
        assert_eq!(p("inspect --limit=5 --json /dev/sdb"), insp(Some(5), true));
        assert_eq!(p("inspect --json /dev/sdb"), insp(None, true));
        assert!(p("inspect").is_err());
        assert!(p("inspect a b").is_err());
        assert!(p("inspect a --limit").is_err());
        assert!(p("inspect a --limit x").is_err());
        assert!(p("inspect a --jsn").is_err());
        assert!(p("--bogus").is_err());
        assert!(p("--pidfile").is_err());
        assert!(p("--max-memory lots").is_err());
    }

    #[test]
    fn what_operators_type() {
        // help in every spelling, also after a command.
        for h in ["help", "inspect --help", "status -h", "-h inspect"] {
            assert_eq!(p(h), Ok(Command::Help), "{h}");
        }
        assert_eq!(p("status --json"), Ok(Command::Status(true)));
        // --opt=value, bundled and repeated short flags.
        let Ok(Command::Serve(o)) = p("--pidfile=/run/x.pid -dv -vvv --max-memory=8") else { panic!() };
        assert_eq!(
            (o.pidfile, o.daemon, o.verbosity, o.max_memory_mib),
            (Some(PathBuf::from("/run/x.pid")), true, 4, 8)
        );
        let Ok(Command::Serve(o)) = p("-qq") else { panic!() };
        assert_eq!(o.verbosity, -1);
        // Nothing silently dropped or accepted.
        assert!(p("-d inspect /dev/x").is_err(), "-d would be dropped");
        assert!(p("--version --bogus").is_err());
        assert!(p("--max-memory 0").is_err(), "every CTR would fail");
        assert!(p("inspect --json").is_err(), "no PATH");
    }

    #[test]
    fn check_validates_without_serving() {
        let Ok(Command::Serve(o)) = p("--check --allow-clustered --run-dir /run/x") else { panic!() };
        assert!(o.check && o.validate().is_ok());
        let Ok(Command::Serve(o)) = p("--check --run-dir relative") else { panic!() };
        assert!(o.validate().unwrap_err().contains("--run-dir"));
        assert!(p("--check --allow-clusterd").is_err(), "a typo");
    }
}
