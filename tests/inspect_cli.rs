//! `dmulogd inspect` as an operator runs it: the binary on files, with its
//! exit statuses (0 a log, 1 no log, 2 unreadable), `--limit` and `--json`.

mod common;

use common::TempDir;
use dmulogd::disk::{Header, BITMAP_OFFSET};
use std::path::Path;
use std::process::{Command, Output};

fn inspect(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dmulogd")).arg("inspect").args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// A log of 100 regions with regions 3, 4, 5 and 70 dirty (bit 0).
fn write_log(p: &Path) {
    let mut img = vec![0xffu8; BITMAP_OFFSET + 16];
    img[..BITMAP_OFFSET].fill(0);
    img[..16].copy_from_slice(&Header::new(100).to_disk());
    img[BITMAP_OFFSET] = !0b0011_1000;
    img[BITMAP_OFFSET + 8] = !0b0100_0000;
    std::fs::write(p, img).unwrap();
}

#[test]
fn a_log_is_described_in_text_and_json() {
    let d = TempDir::new("inspect-cli");
    let p = d.0.join("log");
    write_log(&p);
    let path = p.to_str().unwrap();
    let o = inspect(&[path]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let t = stdout(&o);
    for line in ["regions: 100\n", "clean: 96\n", "dirty: 4\n", "dirty regions: 3-5 70\n"] {
        assert!(t.contains(line), "no {line:?} in {t}");
    }
    let o = inspect(&["--json", path, "--limit", "1"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let j = stdout(&o);
    assert!(j.starts_with(&format!("{{\"path\":\"{path}\",\"log\":true,\"version\":2,\"regions\":100,")), "{j}");
    assert!(j.ends_with(",\"clean\":96,\"dirty\":4,\"dirty_ranges\":[[3,5]],\"truncated\":true}\n"), "{j}");
}

#[test]
fn no_log_exits_1_and_unreadable_exits_2() {
    let d = TempDir::new("inspect-cli");
    let p = d.0.join("zeros");
    std::fs::write(&p, vec![0u8; 4096]).unwrap();
    let o = inspect(&["--json", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stdout(&o).contains("\"log\":false,\"reason\":\"no dirty log"), "{}", stdout(&o));
    let o = inspect(&[d.0.join("missing").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(o.stdout.is_empty());
    assert!(String::from_utf8_lossy(&o.stderr).contains("No such file"), "{o:?}");
    let o = inspect(&["--jsn", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "usage error: {o:?}");
}
