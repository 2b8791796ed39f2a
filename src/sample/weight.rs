//! Poisson sampling by bytes: the countdown drawn between samples, and what one sample weighs.
//!
//! Each thread walks its stream of allocated bytes with sample points placed by a Poisson
//! process of mean spacing `R` bytes (jemalloc, tcmalloc and Go do the same). An allocation of
//! `s` bytes is sampled when at least one point falls inside it, which happens with probability
//! `p(s) = 1 - exp(-s/R)`. Weighting each sampled object by `1/p(s)` (count) and `s/p(s)`
//! (bytes) makes the estimates unbiased, per object, whatever the mix of sizes.
//!
//! The countdown is the distance to the next point. The exponential distribution is memoryless,
//! so after a sample a fresh draw from the end of the sampled allocation is exact.

/// xorshift64* generator: tiny state, good enough statistics for choosing sample points.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator from any seed (a zero seed is remapped; xorshift state must be non-zero).
    pub(crate) fn new(seed: u64) -> Self {
        Rng(splitmix64(seed) | 1)
    }

    /// Next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in (0, 1]: never 0, so its logarithm is finite.
    pub(crate) fn next_unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Bytes until the next sample point: exponential with mean `mean`, at least 1.
    pub(crate) fn next_countdown(&mut self, mean: u64) -> u64 {
        let d = -self.next_unit().ln() * mean as f64;
        d.clamp(1.0, (u64::MAX / 2) as f64) as u64
    }
}

/// A good 64-bit mixer (Steele et al.), used to spread seeds.
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What one sampled allocation of `size` bytes stands for: (allocations, bytes).
/// `mean == 1` is exact mode: every allocation is recorded and weighs exactly itself.
pub(crate) fn weight(size: u64, mean: u64) -> (f64, f64) {
    if mean <= 1 {
        return (1.0, size as f64);
    }
    let p = -(-(size as f64) / mean as f64).exp_m1();
    if p <= 0.0 {
        return (1.0, size as f64);
    }
    (1.0 / p, size as f64 / p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdown_has_the_right_mean() {
        let mut rng = Rng::new(7);
        // Fewer draws under miri (each costs microseconds there), with a tolerance to match.
        let (n, tolerance) = if cfg!(miri) {
            (10_000, 0.05)
        } else {
            (200_000, 0.012)
        };
        let mean = 4096u64;
        let sum: f64 = (0..n).map(|_| rng.next_countdown(mean) as f64).sum();
        let got = sum / n as f64;
        // Exponential: sd = mean, so the sample mean has sd mean/sqrt(n) ~ 0.22% (1% for
        // 10,000 draws); allow 5 sd.
        assert!(
            (got / mean as f64 - 1.0).abs() < tolerance,
            "mean countdown {got}"
        );
    }

    #[test]
    fn weights() {
        assert_eq!(weight(100, 1), (1.0, 100.0));
        // Large objects are almost surely sampled and weigh about themselves.
        let (c, b) = weight(64 << 20, 512 << 10);
        assert!((c - 1.0).abs() < 1e-9 && (b - (64 << 20) as f64).abs() < 1.0);
        // Small objects stand for about R/s allocations.
        let (c, b) = weight(16, 512 << 10);
        assert!((c - 32768.5).abs() < 1.0, "{c}");
        assert!((b - 524296.0).abs() < 16.0, "{b}");
    }
}
