//! The one scratch directory type of the tests and the benchmarks, removed
//! on drop. tests/common, examples/benchkit and the fuzz/ crate's dispatch
//! target include this file with `#[path]` (an example cannot `mod common`
//! from tests/): it depends on nothing but std.

use std::path::{Path, PathBuf};

/// A scratch directory removed on drop: `dmulogd-TAG-PID-N` in its base.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// In the system's temp directory.
    pub fn new(tag: &str) -> TempDir {
        TempDir::new_in(&std::env::temp_dir(), tag)
    }

    /// On tmpfs (/dev/shm) when there is one (fast msync), else as `new`.
    pub fn prefer_tmpfs(tag: &str) -> TempDir {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            TempDir::new_in(shm, tag)
        } else {
            TempDir::new(tag)
        }
    }

    /// In `base` (e.g. under target/, when the test needs a disk file
    /// system rather than whatever /tmp is).
    pub fn new_in(base: &Path, tag: &str) -> TempDir {
        TempDir::try_new_in(base, tag).unwrap()
    }

    /// As `new_in`, but an error when the directory cannot be made.
    pub fn try_new_in(base: &Path, tag: &str) -> std::io::Result<TempDir> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = base.join(format!("dmulogd-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A zero-filled log file of `bytes`.
    pub fn log_file(&self, name: &str, bytes: u64) -> PathBuf {
        let p = self.0.join(name);
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(bytes).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
