//! Seeds and sizes of a run: the seeded PRNG, the seeds a test runs
//! (`DMULOGD_SEED` replays one) and its steps per seed (`DMULOGD_STEPS`).

/// SplitMix64: tiny, fast, and good enough to drive test generators.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi.wrapping_sub(lo) == u64::MAX {
            return self.next_u64();
        }
        lo + self.below(hi - lo + 1)
    }
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
    pub fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize].clone()
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

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
