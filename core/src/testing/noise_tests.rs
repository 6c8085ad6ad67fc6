//! The oracle noise's normal generators: the distribution of the polar
//! method's draws (moments, a Kolmogorov–Smirnov distance and a chi-square
//! over bins reaching 3.5 σ into both tails, from fixed seeds so the checks
//! cannot flake) and the determinism of both generators' noise.

use rand_core::SeedableRng;

use super::{add_noise_with, polar_pair, NoiseNormal};
use crate::random::{mix64, normal, DefaultRng};

/// Φ, the standard normal distribution function.
fn phi(z: f64) -> f64 {
    0.5 * (1.0 + libm::erf(z / core::f64::consts::SQRT_2))
}

/// `n` polar draws (both outputs of each pair, in order) from seed `seed`.
fn polar_draws(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = DefaultRng::seed_from_u64(seed);
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let (a, b) = polar_pair(&mut rng);
        v.push(a);
        v.push(b);
    }
    v.truncate(n);
    v
}

const N: usize = 400_000;

#[test]
fn polar_draws_have_the_normal_moments() {
    for seed in [1_u64, 2, 3] {
        let z = polar_draws(N, seed);
        let n = N as f64;
        let mean = z.iter().sum::<f64>() / n;
        let m = |k: i32| z.iter().map(|x| (x - mean).powi(k)).sum::<f64>() / n;
        let (var, skew, kurt) = (m(2), m(3) / m(2).powf(1.5), m(4) / (m(2) * m(2)));
        // Five standard errors: 1/√n, √(2/n), √(6/n), √(24/n).
        assert!(mean.abs() < 5.0 / n.sqrt(), "seed {seed}: mean {mean}");
        assert!(
            (var - 1.0).abs() < 5.0 * (2.0 / n).sqrt(),
            "seed {seed}: variance {var}"
        );
        assert!(
            skew.abs() < 5.0 * (6.0 / n).sqrt(),
            "seed {seed}: skewness {skew}"
        );
        assert!(
            (kurt - 3.0).abs() < 5.0 * (24.0 / n).sqrt(),
            "seed {seed}: kurtosis {kurt}"
        );
    }
}

#[test]
fn polar_draws_pass_kolmogorov_smirnov() {
    for seed in [4_u64, 5] {
        let mut z = polar_draws(N, seed);
        z.sort_by(f64::total_cmp);
        let n = N as f64;
        let d = z
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let f = phi(x);
                (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
            })
            .fold(0.0, f64::max);
        // The 0.1 % critical value of the one-sample KS distance.
        assert!(d < 1.95 / n.sqrt(), "seed {seed}: KS distance {d}");
    }
}

#[test]
fn polar_tails_pass_a_chi_square() {
    // 16 bins with edges 0, ±0.5, …, ±3.5 σ (the outer bins are the tails
    // beyond 3.5 σ, expected 93 draws each at N = 400,000).
    let edges: Vec<f64> = (-7..=7).map(|k| f64::from(k) * 0.5).collect();
    for seed in [6_u64, 7] {
        let z = polar_draws(N, seed);
        let mut counts = vec![0_u64; edges.len() + 1];
        for &x in &z {
            counts[edges.partition_point(|&e| e <= x)] += 1;
        }
        let n = N as f64;
        let mut chi2 = 0.0;
        for (b, &c) in counts.iter().enumerate() {
            let lo = if b == 0 { 0.0 } else { phi(edges[b - 1]) };
            let hi = if b == edges.len() { 1.0 } else { phi(edges[b]) };
            let e = n * (hi - lo);
            chi2 += (c as f64 - e).powi(2) / e;
        }
        // 15 degrees of freedom: the 0.1 % critical value is 37.70.
        assert!(
            chi2 < 37.70,
            "seed {seed}: chi-square {chi2}, counts {counts:?}"
        );
        // And the tails are not empty (a generator clipped at ±3.5 σ would
        // pass the bins above only by accident).
        assert!(counts[0] > 40 && counts[edges.len()] > 40, "{counts:?}");
    }
}

#[test]
fn the_two_outputs_of_a_pair_are_uncorrelated() {
    let z = polar_draws(N, 8);
    let n = (N / 2) as f64;
    let within = z.chunks_exact(2).map(|p| p[0] * p[1]).sum::<f64>() / n;
    let across = z
        .windows(2)
        .skip(1)
        .step_by(2)
        .map(|p| p[0] * p[1])
        .sum::<f64>()
        / n;
    assert!(within.abs() < 5.0 / n.sqrt(), "within a pair: {within}");
    assert!(across.abs() < 5.0 / n.sqrt(), "across pairs: {across}");
}

/// The sample seed and the oracle's salt of the determinism test.
const SEED: u64 = 11;
const SALT: u64 = 3;

#[test]
fn both_generators_are_deterministic_and_differ() {
    for len in [0_usize, 1, 2, 7, 1000] {
        let noise = |gen, seed| {
            let mut out = vec![0.0_f64; len];
            add_noise_with(&mut out, 0.1, seed, SALT, gen);
            out.iter().map(|x| x.to_bits()).collect::<Vec<u64>>()
        };
        for gen in [NoiseNormal::BoxMuller, NoiseNormal::Polar] {
            assert_eq!(noise(gen, SEED), noise(gen, SEED), "{gen:?}, length {len}");
            if len > 0 {
                assert_ne!(
                    noise(gen, SEED),
                    noise(gen, SEED + 1),
                    "{gen:?}, length {len}"
                );
            }
        }
        if len > 0 {
            assert_ne!(
                noise(NoiseNormal::BoxMuller, SEED),
                noise(NoiseNormal::Polar, SEED)
            );
        }
        // Box–Muller is the committed generator: one `random::normal` per
        // entry of the salted stream, bit for bit.
        let mut rng =
            DefaultRng::seed_from_u64(mix64(SEED ^ SALT.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        let want: Vec<u64> = (0..len)
            .map(|_| (0.0 + 0.1 * normal(&mut rng)).to_bits())
            .collect();
        assert_eq!(noise(NoiseNormal::BoxMuller, SEED), want, "length {len}");
        // Polar: the pairs in order, an odd last entry the first of a pair.
        let mut rng =
            DefaultRng::seed_from_u64(mix64(SEED ^ SALT.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        let mut want = Vec::new();
        while want.len() < len {
            let (a, b) = polar_pair(&mut rng);
            want.push((0.0 + 0.1 * a).to_bits());
            want.push((0.0 + 0.1 * b).to_bits());
        }
        want.truncate(len);
        assert_eq!(noise(NoiseNormal::Polar, SEED), want, "length {len}");
    }
}

#[test]
fn a_quadratic_with_polar_noise_is_reproducible() {
    use super::{q3, Quadratic, Q_LEN_2X2};
    use crate::oracle::LowerGradY;
    let grad = |q: &mut Quadratic<f64, [f64; Q_LEN_2X2]>, s: u64| {
        let mut o = [0.0; 2];
        q.grad_y_g(&[0.3, -0.7], &[0.1, 0.2], &s, &mut o);
        o.map(f64::to_bits)
    };
    let mut bm = q3::<f64>(0.1);
    let mut po = q3::<f64>(0.1).with_noise_normal(NoiseNormal::Polar);
    assert_eq!(bm.noise_normal(), NoiseNormal::BoxMuller);
    assert_eq!(po.noise_normal(), NoiseNormal::Polar);
    assert_eq!(grad(&mut po, 5), grad(&mut po, 5));
    assert_ne!(grad(&mut po, 5), grad(&mut po, 6));
    assert_ne!(grad(&mut po, 5), grad(&mut bm, 5));
    // No noise at σ = 0, whichever the generator.
    let mut quiet = q3::<f64>(0.0).with_noise_normal(NoiseNormal::Polar);
    assert_eq!(grad(&mut quiet, 5), grad(&mut q3::<f64>(0.0), 5));
}
