//! Platform-independent random draws on top of any [`rand_core::Rng`].
//!
//! Every function consumes a fixed number of words from the generator and uses
//! only `libm`, so a seed gives the same draws on every platform.

use rand_core::Rng;

/// The generator the runner, the examples and the firmware use by default.
pub type DefaultRng = rand_xoshiro::Xoshiro256PlusPlus;

/// Uniform `f64` in `[0, 1)` with 53 random bits.
#[inline]
pub fn uniform<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Uniform value in `[0, 1)` in the scalar type, from 24 random bits, with
/// no `f64` arithmetic (cheap on `f32`-only FPUs).
#[inline]
pub fn uniform_real<T: crate::Real, R: Rng + ?Sized>(rng: &mut R) -> T {
    T::from_u32(rng.next_u32() >> 8) * T::from_f64(1.0 / 16_777_216.0)
}

/// Uniform integer in `0..n` (Lemire's multiply-shift with rejection, unbiased).
/// Returns 0 when `n == 0`.
#[inline]
pub fn below<R: Rng + ?Sized>(rng: &mut R, n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = u128::from(rng.next_u64()) * u128::from(n);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

/// Standard normal draw (Box–Muller, one of the pair; consumes two words).
#[inline]
pub fn normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    // 1 − u lies in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - uniform(rng);
    let u2 = uniform(rng);
    libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(core::f64::consts::TAU * u2)
}

/// Bernoulli draw with success probability `p`.
#[inline]
pub fn bernoulli<R: Rng + ?Sized>(rng: &mut R, p: f64) -> bool {
    uniform(rng) < p
}

/// SplitMix64 finaliser: a bijective mix used to derive independent streams
/// (for example one noise stream per oracle kind from one sample seed).
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn draws_have_the_right_moments() {
        let mut rng = DefaultRng::seed_from_u64(7);
        let n = 200_000;
        let (mut s, mut s2) = (0.0, 0.0);
        for _ in 0..n {
            let z = normal(&mut rng);
            s += z;
            s2 += z * z;
        }
        let mean = s / f64::from(n);
        let var = s2 / f64::from(n) - mean * mean;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
        let mut counts = [0u32; 5];
        for _ in 0..50_000 {
            counts[below(&mut rng, 5) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_500..10_500).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn same_seed_same_stream() {
        let mut a = DefaultRng::seed_from_u64(1);
        let mut b = DefaultRng::seed_from_u64(1);
        for _ in 0..100 {
            assert_eq!(normal(&mut a).to_bits(), normal(&mut b).to_bits());
        }
    }
}
