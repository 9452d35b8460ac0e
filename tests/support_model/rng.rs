//! Seeds and sizes of a run: the shared PRNG (tests/shared/rng.rs), the
//! seeds a test runs (`DMULOGD_SEED` replays one) and its steps per seed
//! (`DMULOGD_STEPS`).

#[path = "../shared/rng.rs"]
mod shared;

pub use shared::Rng;

/// A well-mixed seed from a small number (test index, time).
pub fn mix(x: u64) -> u64 {
    Rng::new(x ^ 0x6a09_e667_f3bc_c909).next_u64()
}

/// Reads `NAME` as decimal or 0x-hex.
pub fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim().replace('_', "");
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// The seeds a test runs: `DMULOGD_SEED` alone when set (replay), else
/// `count` fixed seeds derived from `base` (deterministic CI).
pub fn seeds(base: u64, count: u64) -> Vec<u64> {
    match env_u64("DMULOGD_SEED") {
        Some(s) => vec![s],
        None => (0..count).map(|i| mix(base.wrapping_mul(1000).wrapping_add(i))).collect(),
    }
}

/// Steps per seed: `DMULOGD_STEPS` when set, else `default`.
pub fn steps(default: u64) -> u64 {
    env_u64("DMULOGD_STEPS").unwrap_or(default)
}
