//! Deterministic randomness as pure functions of (seed, stream, keys).
//!
//! Every random draw in the generator is a hash of the seed, a stream constant
//! naming what is drawn, and the entity and time it is drawn for. Nothing carries
//! state from one row to the next, so any file of the lake can be generated on
//! any thread in any order and still come out byte-identical.

/// SplitMix64's finaliser: a fast, well-mixing 64-bit bijection.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seeded source of hash-based random values.
#[derive(Debug, Clone, Copy)]
pub struct Noise {
    seed: u64,
}

impl Noise {
    pub fn new(seed: u64) -> Self {
        Self { seed: mix(seed) }
    }

    /// 64 random bits for (stream, a, b).
    #[inline]
    pub fn bits(&self, stream: u64, a: u64, b: u64) -> u64 {
        mix(mix(mix(self.seed ^ stream.wrapping_mul(0xA24B_AED4_963E_E407)) ^ a) ^ b)
    }

    /// Uniform in [0, 1).
    #[inline]
    pub fn unit(&self, stream: u64, a: u64, b: u64) -> f64 {
        (self.bits(stream, a, b) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in `lo..=hi`.
    #[inline]
    pub fn range(&self, stream: u64, a: u64, b: u64, lo: i64, hi: i64) -> i64 {
        lo + (self.bits(stream, a, b) % ((hi - lo + 1) as u64)) as i64
    }

    /// Standard normal (Box–Muller on two 32-bit halves of one hash).
    #[inline]
    pub fn normal(&self, stream: u64, a: u64, b: u64) -> f64 {
        let h = self.bits(stream, a, b);
        let u1 = ((h >> 32) as f64 + 1.0) / 4_294_967_297.0;
        let u2 = (h & 0xFFFF_FFFF) as f64 / 4_294_967_296.0;
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Smooth value noise in [-1, 1] along `t`: random values at integer knots,
    /// cosine-interpolated between them.
    pub fn smooth(&self, stream: u64, key: u64, t: f64) -> f64 {
        let k = t.floor();
        let f = t - k;
        let k = k as i64 as u64;
        let v0 = self.unit(stream, key, k) * 2.0 - 1.0;
        let v1 = self.unit(stream, key, k.wrapping_add(1)) * 2.0 - 1.0;
        let w = (1.0 - (std::f64::consts::PI * f).cos()) / 2.0;
        v0 + (v1 - v0) * w
    }

    /// Picks an index with probability proportional to `weights`.
    pub fn pick(&self, stream: u64, a: u64, b: u64, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.unit(stream, a, b) * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_values_other_seed_other_values() {
        let a = Noise::new(7);
        let b = Noise::new(8);
        assert_eq!(a.bits(1, 2, 3), Noise::new(7).bits(1, 2, 3));
        assert_ne!(a.bits(1, 2, 3), b.bits(1, 2, 3));
    }

    #[test]
    fn unit_and_normal_have_the_right_moments() {
        let n = Noise::new(1);
        let k = 100_000;
        let mean_u: f64 = (0..k).map(|i| n.unit(1, i, 0)).sum::<f64>() / k as f64;
        let mean_n: f64 = (0..k).map(|i| n.normal(2, i, 0)).sum::<f64>() / k as f64;
        let var_n: f64 = (0..k).map(|i| n.normal(2, i, 0).powi(2)).sum::<f64>() / k as f64;
        assert!((mean_u - 0.5).abs() < 0.01, "{mean_u}");
        assert!(mean_n.abs() < 0.02, "{mean_n}");
        assert!((var_n - 1.0).abs() < 0.03, "{var_n}");
    }

    #[test]
    fn smooth_is_continuous_and_bounded() {
        let n = Noise::new(3);
        for i in 0..1000 {
            let t = i as f64 * 0.01;
            let v = n.smooth(1, 0, t);
            assert!((-1.0..=1.0).contains(&v));
            assert!((v - n.smooth(1, 0, t + 0.001)).abs() < 0.01);
        }
    }

    #[test]
    fn pick_follows_weights() {
        let n = Noise::new(4);
        let hits = (0..10_000)
            .filter(|i| n.pick(1, *i, 0, &[1.0, 3.0]) == 1)
            .count();
        assert!((7_000..8_000).contains(&hits), "{hits}");
    }
}
