//! The log files of a world: what a previous life left in them, the model
//! compared with the bytes on disk, and what the page cache holds of them.

use super::*;
use std::path::Path;

/// Initial content of a log file: what a previous life may have left.
pub fn random_file_image(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    match rng.below(7) {
        0 => {}                  // all zero: no log
        1 => b = rng.bytes(len), // garbage: bad magic
        k => {
            // A log header with a bitmap of random density, some garbage
            // in the unused header bytes and past the bitmap.
            for x in b.iter_mut() {
                *x = match rng.below(4) {
                    0 => 0,
                    1 => 0xff,
                    _ => rng.next_u64() as u8,
                };
            }
            let cap = ((len.saturating_sub(BITMAP_OFFSET)) / 8 * 64) as u64;
            let version = match k {
                2 => 1,
                3 => 9,
                _ => 2,
            };
            let nr = match rng.below(4) {
                0 => rng.below(cap + 1),
                1 => u64::MAX - rng.below(3),
                _ => rng.below(cap / 2 + 1),
            };
            b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
            b[4..8].copy_from_slice(&(version as u32).to_le_bytes());
            b[8..16].copy_from_slice(&nr.to_le_bytes());
        }
    }
    b
}

/// Page-cache state of the page holding byte `off` of `file`, from the
/// cachestat(2) syscall (Linux 6.5+): Some(true) when it is dirty or under
/// writeback, None when the kernel cannot say.
pub fn page_dirty(file: &std::fs::File, off: u64) -> Option<bool> {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    let range = Range { off: off & !4095, len: 4096 };
    let mut st = Stat::default();
    // SAFETY: cachestat(fd, &range, &stat, 0) reads `range` and writes
    // `stat`, both live locals of the layout the kernel expects.
    let r = unsafe { libc::syscall(451, file.as_raw_fd(), &range as *const Range, &mut st as *mut Stat, 0u32) };
    if r == 0 {
        return Some(st.nr_dirty + st.nr_writeback > 0);
    }
    page_dirty_by_eviction(file, off & !4095)
}

/// Without cachestat (Linux < 6.5): asks the kernel to drop the page from
/// the cache. A clean page goes; a dirty one is only queued for writeback
/// and stays resident (mincore), so "still resident" means "was dirty".
/// Reads the page first so a page that was not cached shows as clean.
fn page_dirty_by_eviction(file: &std::fs::File, off: u64) -> Option<bool> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 1];
    file.read_at(&mut b, off).ok()?;
    let len = libc::off_t::try_from(off).ok()?;
    // SAFETY: fadvise on an open descriptor; no memory is passed.
    if unsafe { libc::posix_fadvise(file.as_raw_fd(), len, 4096, libc::POSIX_FADV_DONTNEED) } != 0 {
        return None;
    }
    // SAFETY: a private read-only mapping of one page of an open file.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), len) };
    if p == libc::MAP_FAILED {
        return None;
    }
    let mut vec = [0u8; 1];
    // SAFETY: `p` is a live one-page mapping; `vec` has room for one page.
    let r = unsafe { libc::mincore(p, 4096, vec.as_mut_ptr()) };
    // SAFETY: unmapping what was mapped above.
    unsafe { libc::munmap(p, 4096) };
    (r == 0).then_some(vec[0] & 1 != 0)
}

/// True when `path` is on tmpfs (where pages never get written back).
pub fn on_tmpfs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: statfs writes into a zeroed local of the right type.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above; c is NUL-terminated and outlives the call.
    let r = unsafe { libc::statfs(c.as_ptr(), &mut s) };
    r == 0 && s.f_type as u64 == 0x0102_1994
}

// ---------------------------------------------------------------- worlds

/// Files for a world: a few sizes, a random previous life each, an alias
/// spelling, and device arguments that do not open as log devices.
pub fn make_files(rng: &mut Rng, dir: &Path, model: &mut Model, big: bool) {
    let mut sizes = vec![BITMAP_OFFSET + 8, BITMAP_OFFSET + 40, BITMAP_OFFSET + 4096, BITMAP_OFFSET + 3 * 4096 + 512];
    if big {
        // Over 64 pages of bitmap: the touched-page list overflows.
        sizes.push(BITMAP_OFFSET + 70 * 4096 + 8);
    }
    for (k, len) in sizes.into_iter().enumerate() {
        let path = dir.join(format!("log{k}"));
        let bytes = random_file_image(rng, len);
        std::fs::write(&path, &bytes).unwrap();
        let alias = format!("{}/./log{k}", dir.display());
        model.files.push(MFile { path, aliases: vec![alias], bytes });
    }
    model.special.push((dir.display().to_string(), EISDIR));
    model.special.push(("/dev/null".into(), EINVAL));
    let first = model.files[0].path.display().to_string();
    model.special.push((format!("{first}/x"), -libc::ENOTDIR));
    model.special.push(("dmulogd-no-such-dir/log".into(), ENOENT));
}

/// Compares every model file with the bytes on disk. A live log with clean
/// bits waiting may have been written by the binary's clear timer: its
/// file may then hold the log's in-memory bits instead.
pub fn check_files(model: &Model) -> Result<(), String> {
    for (k, f) in model.files.iter().enumerate() {
        let disk = std::fs::read(&f.path).map_err(|e| format!("{}: {e}", f.path.display()))?;
        let timer_wrote =
            model.logs.iter().filter(|l| l.file == Some(k) && l.resumed && l.loaded && l.clears_pending).any(|l| {
                let mut alt = MFile { path: f.path.clone(), aliases: Vec::new(), bytes: f.bytes.clone() };
                let mut l = l.clone();
                Model::stage(&mut l);
                let mut pages = std::mem::take(&mut l.mark_pages);
                pages.extend(std::mem::take(&mut l.staged_pages));
                Model::write_pages(&mut l, &mut alt, &pages, false);
                alt.bytes == disk
            });
        if disk != f.bytes && !timer_wrote {
            let first = disk.iter().zip(&f.bytes).position(|(a, b)| a != b).unwrap_or(disk.len().min(f.bytes.len()));
            let what = if first < 16 {
                "header".to_string()
            } else if first >= BITMAP_OFFSET {
                format!(
                    "bitmap byte {} (regions {}..{})",
                    first - BITMAP_OFFSET,
                    (first - BITMAP_OFFSET) * 8,
                    (first - BITMAP_OFFSET) * 8 + 8
                )
            } else {
                "unused header bytes".to_string()
            };
            return Err(format!(
                "{}: on-disk bytes differ from the model at offset {first} ({what}): disk {:#04x}, model {:#04x} (len {} vs {})",
                f.path.display(),
                disk.get(first).copied().unwrap_or(0),
                f.bytes.get(first).copied().unwrap_or(0),
                disk.len(),
                f.bytes.len()
            ));
        }
    }
    Ok(())
}
