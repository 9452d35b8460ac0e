//! One truth for the command line: `--help`, the README's Options block
//! and dmulogd(8) name the same options, and the README shows `--help`
//! word for word.

use std::collections::BTreeSet;
use std::process::Command;

fn help() -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_dmulogd")).arg("--help").output().unwrap();
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap()
}

/// Every `-x` / `--long-option` mentioned in `text`.
fn options(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for w in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        let long = w.len() > 2 && w.starts_with("--") && w.as_bytes()[2].is_ascii_lowercase();
        let short = w.len() == 2 && w.starts_with('-') && w.as_bytes()[1].is_ascii_alphabetic();
        if long || short {
            out.insert(w.to_owned());
        }
    }
    out
}

fn manual() -> String {
    let raw = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/initramfs/dmulogd.8")).unwrap();
    // troff escapes a dash as \-.
    raw.replace("\\-", "-")
}

fn man_options_section(man: &str) -> String {
    let start = man.find(".SH OPTIONS").expect("man page has OPTIONS");
    let end = man[start + 1..].find(".SH ").map_or(man.len(), |e| start + 1 + e);
    man[start..end].to_owned()
}

#[test]
fn readme_shows_help_word_for_word() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("## Options\n\n```\n").expect("README has an Options block") + "## Options\n\n```\n".len();
    let block = &readme[start..start + readme[start..].find("```").unwrap()];
    assert_eq!(block, help(), "README's Options block differs from dmulogd --help");
}

#[test]
fn help_and_man_page_name_the_same_options() {
    let h = help();
    let help_opts: BTreeSet<String> = options(&h[h.find("Options:").unwrap()..h.find("Signals:").unwrap()]);
    let man_opts = options(&man_options_section(&manual()));
    // -vv is an example inside the -v entry; both documents mention it.
    assert_eq!(help_opts, man_opts, "--help and dmulogd(8) OPTIONS disagree");
    // Every option --help names parses (the value ones with a value).
    for o in &help_opts {
        let args: Vec<&str> = match o.as_str() {
            "--pidfile" | "-p" => vec![o, "/run/x.pid", "--version"],
            "--max-memory" => vec![o, "64", "--version"],
            "--run-dir" => vec![o, "/run/x", "--version"],
            "--log-style" => vec![o, "kmsg", "--version"],
            _ => vec![o, "--version"],
        };
        let st = Command::new(env!("CARGO_BIN_EXE_dmulogd")).args(&args).output().unwrap();
        assert!(st.status.success(), "{args:?}: {}", String::from_utf8_lossy(&st.stderr));
    }
}
