//! The lane-structured reductions of `kernels` (issue 16) against a scalar
//! reference of the same fixed order, bit for bit.
//!
//! The reference below is written independently of the kernel's code: it
//! walks the entries one at a time by index, adds entry `i` into partial sum
//! `i % 16`, and combines the sixteen partial sums with the halving tree
//! spelled out by hand (no chunks, no iterator adaptors, no shared helper).
//! Every length 0..=100 is checked exhaustively, then random lengths up to
//! 5,000, in f32 and f64, with entries whose magnitudes span many binades and
//! both signs, so that any change of order shows in the low bits (the test
//! also checks that the order is *not* the left-to-right chain, so that a
//! kernel which quietly fell back to one chain would fail it).

use bilevel_core::kernels::{
    dist, dot, matvec, matvec_add, matvec_add_t_add, matvec_t, matvec_t_add, norm, norm2sq, LANES,
};

/// The reference below is written for sixteen lanes.
const _: () = assert!(LANES == 16);
use bilevel_core::{DefaultRng, Real};
use proptest::prelude::*;
use rand_core::{Rng, SeedableRng};

/// The fixed order by hand: partial sum `i % 16` += term(i), in increasing
/// `i`, from +0.0; then p[k] += p[k+8] (k < 8), p[k] += p[k+4] (k < 4),
/// p[k] += p[k+2] (k < 2), p[0] += p[1].
fn reference<T: Real>(n: usize, term: impl Fn(usize) -> T) -> T {
    let mut p = [T::ZERO; 16];
    let mut i = 0;
    while i < n {
        p[i % 16] += term(i);
        i += 1;
    }
    for k in 0..8 {
        p[k] += p[k + 8];
    }
    for k in 0..4 {
        p[k] += p[k + 4];
    }
    for k in 0..2 {
        p[k] += p[k + 2];
    }
    p[0] + p[1]
}

/// The single left-to-right chain the kernels used before issue 16.
fn chain<T: Real>(n: usize, term: impl Fn(usize) -> T) -> T {
    let mut s = T::ZERO;
    for i in 0..n {
        s += term(i);
    }
    s
}

/// Entries m · 2^e with m uniform in (−1, 1) and e uniform in −20..=20, so
/// that sums lose low bits in an order-dependent way.
fn entries<T: Real>(n: usize, rng: &mut DefaultRng) -> Vec<T> {
    (0..n)
        .map(|_| {
            let m = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            let e = i32::try_from(rng.next_u32() % 41).unwrap_or(0) - 20;
            T::from_f64(m * 2f64.powi(e))
        })
        .collect()
}

fn bits<T: Real>(v: T) -> u64 {
    v.to_f64().to_bits()
}

/// Checks every reduction of `kernels` at length `n`; returns whether the
/// lane order differed from the single chain on `dot`.
fn check<T: Real>(n: usize, rng: &mut DefaultRng) -> bool {
    let x = entries::<T>(n, rng);
    let y = entries::<T>(n, rng);
    let want = reference(n, |i| x[i] * y[i]);
    assert_eq!(bits(dot(&x, &y)), bits(want), "dot, n = {n}, {}", T::NAME);
    let sq = reference(n, |i| x[i] * x[i]);
    assert_eq!(bits(norm2sq(&x)), bits(sq), "norm2sq, n = {n}, {}", T::NAME);
    assert_eq!(
        bits(norm(&x)),
        bits(sq.sqrt()),
        "norm, n = {n}, {}",
        T::NAME
    );
    let dd = reference(n, |i| (x[i] - y[i]) * (x[i] - y[i]));
    assert_eq!(
        bits(dist(&x, &y)),
        bits(dd.sqrt()),
        "dist, n = {n}, {}",
        T::NAME
    );
    bits(want) != bits(chain(n, |i| x[i] * y[i]))
}

/// The transposed product by hand: `out[j]` starts at `base[j]` and adds
/// `w[i] · m[i][j]` for `i = 0, 1, …` in turn (one chain per column, rows in
/// order), which is what one `axpy` per row computes.
fn reference_t<T: Real>(m: &[T], w: &[T], base: &[T]) -> Vec<T> {
    let cols = base.len();
    let mut out = base.to_vec();
    for j in 0..cols {
        let mut i = 0;
        while i < w.len() {
            out[j] += w[i] * m[i * cols + j];
            i += 1;
        }
    }
    out
}

/// Every product of `kernels` on one `rows × cols` matrix, bit for bit
/// against the references: `matvec`, `matvec_add`, `matvec_t`,
/// `matvec_t_add` and the one-pass `matvec_add_t_add`.
fn check_products<T: Real>(rows: usize, cols: usize, rng: &mut DefaultRng) {
    let m = entries::<T>(rows * cols, rng);
    let v = entries::<T>(cols, rng);
    let w = entries::<T>(rows, rng);
    let base = entries::<T>(rows, rng);
    let base_t = entries::<T>(cols, rng);
    let want: Vec<T> = (0..rows)
        .map(|r| reference(cols, |j| m[r * cols + j] * v[j]))
        .collect();
    let want_t0 = reference_t(&m, &w, &vec![T::ZERO; cols]);
    let want_t = reference_t(&m, &w, &base_t);
    let same = |got: &[T], want: &[T], what: &str| {
        for (k, (g, e)) in got.iter().zip(want).enumerate() {
            assert_eq!(
                bits(*g),
                bits(*e),
                "{what} entry {k}, {rows}×{cols}, {}",
                T::NAME
            );
        }
    };
    let mut out = vec![T::ZERO; rows];
    matvec(&m, &v, &mut out);
    same(&out, &want, "matvec");
    let mut out = base.clone();
    matvec_add(&m, &v, &mut out);
    let want_add: Vec<T> = base.iter().zip(&want).map(|(&b, &p)| b + p).collect();
    same(&out, &want_add, "matvec_add");
    let mut out_t = base_t.clone();
    matvec_t(&m, &w, &mut out_t);
    same(&out_t, &want_t0, "matvec_t");
    let mut out_t = base_t.clone();
    matvec_t_add(&m, &w, &mut out_t);
    same(&out_t, &want_t, "matvec_t_add");
    let (mut out, mut out_t) = (base.clone(), base_t.clone());
    matvec_add_t_add(&m, &v, &mut out, &w, &mut out_t);
    same(&out, &want_add, "matvec_add_t_add (M·v)");
    same(&out_t, &want_t, "matvec_add_t_add (Mᵀ·w)");
}

/// Runs `f` with the AVX2 build of the products (where the CPU has it) and
/// again with the portable loops only: both must match the references.
fn both_builds(f: impl Fn()) {
    #[cfg(target_arch = "x86_64")]
    {
        bilevel_core::kernels::set_wide(false);
        f();
        bilevel_core::kernels::set_wide(true);
    }
    f();
}

/// Rows of `matvec` and `matvec_add` are the reference order of each row.
fn check_matvec<T: Real>(rows: usize, cols: usize, rng: &mut DefaultRng) {
    let m = entries::<T>(rows * cols, rng);
    let v = entries::<T>(cols, rng);
    let base = entries::<T>(rows, rng);
    let mut out = vec![T::ZERO; rows];
    matvec(&m, &v, &mut out);
    let mut acc = base.clone();
    matvec_add(&m, &v, &mut acc);
    for r in 0..rows {
        let want = reference(cols, |j| m[r * cols + j] * v[j]);
        assert_eq!(bits(out[r]), bits(want), "matvec row {r}, {rows}×{cols}");
        assert_eq!(
            bits(acc[r]),
            bits(base[r] + want),
            "matvec_add row {r}, {rows}×{cols}"
        );
    }
}

#[test]
fn every_length_up_to_100_matches_the_reference() {
    let mut rng = DefaultRng::seed_from_u64(16);
    let (mut differ64, mut differ32) = (0, 0);
    for n in 0..=100 {
        for _ in 0..20 {
            differ64 += usize::from(check::<f64>(n, &mut rng));
            differ32 += usize::from(check::<f32>(n, &mut rng));
        }
    }
    // The order really is not the single chain: with entries over 41
    // binades, most sums of more than a few terms differ in some bit.
    assert!(
        differ64 > 500,
        "f64: lane order equal to the chain too often"
    );
    assert!(
        differ32 > 500,
        "f32: lane order equal to the chain too often"
    );
    for (rows, cols) in [(0, 5), (3, 0), (1, 1), (7, 15), (5, 16), (4, 17), (9, 100)] {
        check_matvec::<f64>(rows, cols, &mut rng);
        check_matvec::<f32>(rows, cols, &mut rng);
    }
}

/// Shapes around the AVX2 build's threshold (256 entries) and its blocks of
/// four rows, every remainder of rows mod 4 and of columns mod 16, in both
/// builds.
#[test]
fn every_product_matches_the_reference_in_both_builds() {
    let rng = DefaultRng::seed_from_u64(74);
    let shapes = [
        (0, 300),
        (300, 0),
        (1, 255),
        (1, 256),
        (16, 16),
        (4, 64),
        (5, 64),
        (6, 61),
        (7, 47),
        (8, 33),
        (13, 100),
        (64, 1),
        (33, 257),
    ];
    both_builds(|| {
        for (rows, cols) in shapes {
            let mut r = rng.clone();
            check_products::<f64>(rows, cols, &mut r);
            check_products::<f32>(rows, cols, &mut r);
        }
    });
}

/// The AVX2 build is chosen exactly when the CPU has AVX2 (and FMA, which
/// pulp's V3 level also requires; the kernels never emit a fused
/// multiply–add), so that on this machine kind the tests above exercise it.
#[cfg(target_arch = "x86_64")]
#[test]
fn the_avx2_build_is_detected() {
    let cpu = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
    bilevel_core::kernels::set_wide(true);
    assert_eq!(bilevel_core::kernels::wide_active(), cpu);
}

#[test]
fn special_values_follow_the_reference() {
    // Signed zeros, infinities and NaN: the lanes start from +0.0 like the
    // reference, so −0.0 products give +0.0, and an infinity of either sign
    // in one lane meets the other lanes only in the tree.
    let cases: [&[f64]; 5] = [
        &[-0.0; 40],
        &[f64::INFINITY, 1.0, f64::NEG_INFINITY],
        &[1e308, 1e308, 1e308, -1e308],
        &[f64::NAN, 0.0, 1.0],
        &[f64::MIN_POSITIVE, 5e-324, -5e-324],
    ];
    for x in cases {
        let ones = vec![1.0; x.len()];
        let want = reference(x.len(), |i| x[i] * ones[i]);
        let got = dot(x, &ones);
        assert!(
            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
            "dot({x:?}) = {got:e}, reference {want:e}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_long_sums_match_the_reference(n in 101_usize..5000, seed: u64) {
        let mut rng = DefaultRng::seed_from_u64(seed);
        check::<f64>(n, &mut rng);
        check::<f32>(n, &mut rng);
    }

    #[test]
    fn random_matrices_match_the_reference(rows in 0_usize..40, cols in 0_usize..300, seed: u64) {
        let mut rng = DefaultRng::seed_from_u64(seed);
        check_matvec::<f64>(rows, cols, &mut rng);
        check_matvec::<f32>(rows, cols, &mut rng);
    }

    #[test]
    fn random_products_match_the_reference_in_both_builds(
        rows in 0_usize..70,
        cols in 0_usize..300,
        seed: u64,
    ) {
        both_builds(|| {
            let mut rng = DefaultRng::seed_from_u64(seed);
            check_products::<f64>(rows, cols, &mut rng);
            check_products::<f32>(rows, cols, &mut rng);
        });
    }
}
