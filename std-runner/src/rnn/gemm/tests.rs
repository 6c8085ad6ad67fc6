//! Tests of the packed products and the f32 tanh.

use super::*;

#[test]
fn fast_tanh_is_accurate_and_odd() {
    let mut worst = 0.0_f64;
    for k in -200_000..=200_000 {
        let x = k as f32 * 1e-4;
        let e = (f64::from(fast_tanh_f32(x)) - f64::from(x).tanh()).abs();
        worst = worst.max(e);
        assert_eq!(fast_tanh_f32(-x).to_bits(), (-fast_tanh_f32(x)).to_bits());
    }
    assert!(worst < 1e-6, "max error {worst:e}");
    assert!((fast_tanh_f32(1e4) - 1.0).abs() < 1e-6);
    assert!((f64::from(0.3_f32.act_sigmoid()) - 1.0 / (1.0 + (-0.3_f64).exp())).abs() < 1e-6);
}

/// Deterministic values in [-1, 1).
fn values<T: Scalar>(n: usize, seed: u64) -> Vec<T> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            T::from_f64((s >> 11) as f64 / (1u64 << 52) as f64 - 1.0)
        })
        .collect()
}

/// Packed products against the naive triple loop (in f64), for shapes
/// around the panel width and the row tile, both storage orders of the
/// right-hand side, overwrite and accumulate; and the same bits with one
/// and two threads on a product large enough to be cut into blocks.
fn packed_products_match<T: Scalar + Into<f64>>(tol: f64) {
    for &(m, k, n) in &[
        (1, 1, 1),
        (3, 4, 5),
        (7, 9, 16),
        (13, 3, 17),
        (32, 20, 33),
        // Inner dimensions past DIRECT_K (interleaved left operand),
        // past KC (k blocks) and more rows than MC (row groups).
        (5, 129, 16),
        (13, 300, 40),
        (100, 600, 19),
        (6, 0, 4),
        (0, 5, 3),
        (12, 64, 8),
    ] {
        for trans in [false, true] {
            for accumulate in [false, true] {
                let a: Vec<T> = values(m * k, 1);
                let bs: Vec<T> = values(k * n, 2);
                let b = if trans {
                    Mat::new(&bs, n, k).t()
                } else {
                    Mat::new(&bs, k, n)
                };
                let c0: Vec<T> = values(m * n, 3);
                let mut c = c0.clone();
                gemm_packed(&a, k, m, &Packed::new(b), &mut c, accumulate);
                for i in 0..m {
                    for j in 0..n {
                        let mut want = if accumulate {
                            c0[i * n + j].into()
                        } else {
                            0.0
                        };
                        for kk in 0..k {
                            let bv = if trans {
                                bs[j * k + kk]
                            } else {
                                bs[kk * n + j]
                            };
                            want += a[i * k + kk].into() * bv.into();
                        }
                        let got: f64 = c[i * n + j].into();
                        assert!(
                            (got - want).abs() <= tol,
                            "{m}×{k}×{n} trans {trans} acc {accumulate}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
    let (m, k, n) = (29, 70, 300);
    let a: Vec<T> = values(m * k, 4);
    let bs: Vec<T> = values(k * n, 5);
    let packed = Packed::new(Mat::new(&bs, n, k).t());
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        let mut c: Vec<T> = values(m * n, 6);
        pool.install(|| gemm_packed(&a, k, m, &packed, &mut c, true));
        c
    };
    let (one, two) = (run(1), run(2));
    assert!(one
        .iter()
        .zip(&two)
        .all(|(x, y)| x.to_f64().to_bits() == y.to_f64().to_bits()));
}

#[test]
fn packed_products_match_the_naive_loop() {
    packed_products_match::<f64>(1e-12);
    packed_products_match::<f32>(1e-4);
}

#[test]
fn row_tiles_cover_the_rows_evenly() {
    for m in 0..50 {
        let tiles: Vec<_> = row_tiles(m).collect();
        assert_eq!(tiles.iter().map(|t| t.1).sum::<usize>(), m);
        assert!(tiles.iter().all(|t| (1..=MR).contains(&t.1)));
        assert!(tiles.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
        assert_eq!(tiles.len(), m.div_ceil(MR));
    }
}

#[test]
fn products_match_the_naive_loop() {
    // a: 2×3, b: 3×2 (given as its transpose, 2×3).
    let a = [1.0_f64, 2.0, 3.0, 4.0, 5.0, 6.0];
    let bt = [1.0_f64, 0.0, -1.0, 2.0, 1.0, 0.5];
    let mut c = [10.0_f64; 4];
    let scratch = Scratch::default();
    gemm(
        Mat::new(&a, 2, 3),
        Mat::new(&bt, 2, 3).t(),
        &mut c,
        false,
        &scratch,
    );
    let want = [-2.0, 5.5, -2.0, 16.0];
    for (x, w) in c.iter().zip(want) {
        assert!((x - w).abs() < 1e-12, "{c:?}");
    }
    gemm(
        Mat::new(&a, 2, 3),
        Mat::new(&bt, 2, 3).t(),
        &mut c,
        true,
        &scratch,
    );
    for (x, w) in c.iter().zip(want) {
        assert!((x - 2.0 * w).abs() < 1e-12, "{c:?}");
    }
    // aᵀ·a is 3×3.
    let mut ata = [0.0_f64; 9];
    gemm(
        Mat::new(&a, 2, 3).t(),
        Mat::new(&a, 2, 3),
        &mut ata,
        false,
        &scratch,
    );
    assert!((ata[0] - 17.0).abs() < 1e-12 && (ata[8] - 45.0).abs() < 1e-12);
}

#[test]
fn scratch_buffers_come_back_zeroed_and_best_fitting() {
    let scratch = Scratch::<f64>::default();
    let min = Scratch::<f64>::MIN_LEN;
    scratch.put(vec![f64::NAN; 4 * min]);
    scratch.put(vec![f64::NAN; 2 * min]);
    scratch.put(vec![f64::NAN; min - 1]); // too small to keep
                                          // The smallest kept buffer that fits, zeroed.
    let v = scratch.zeros(min + 1);
    assert_eq!(v.len(), min + 1);
    assert!(v.capacity() >= 2 * min && v.capacity() < 4 * min);
    assert!(v.iter().all(|&x| x.to_bits() == 0));
    let e = scratch.empty(3 * min);
    assert!(e.is_empty() && e.capacity() >= 4 * min);
    // Left-over values, only the growth zeroed.
    scratch.put(vec![1.5; 2 * min]);
    let o = scratch.overwritten(min + 2);
    assert!(o.len() == min + 2 && o.iter().all(|&x| x.to_bits() == 1.5_f64.to_bits()));
    // Nothing left that fits: a fresh buffer.
    let f = scratch.zeros(min);
    assert!(f.iter().all(|&x| x.to_bits() == 0));
    // A product through a pool of dirty buffers gives the clean result.
    scratch.put_all([vec![f64::NAN; 8 * min], vec![f64::INFINITY; 8 * min]]);
    let (m, k, n) = (40, 130, 70);
    let a: Vec<f64> = values(m * k, 7);
    let b: Vec<f64> = values(n * k, 8);
    let mut clean = vec![0.0; m * n];
    gemm(
        Mat::new(&a, m, k),
        Mat::new(&b, n, k).t(),
        &mut clean,
        false,
        &Scratch::default(),
    );
    let mut dirty = vec![0.0; m * n];
    gemm(
        Mat::new(&a, m, k),
        Mat::new(&b, n, k).t(),
        &mut dirty,
        false,
        &scratch,
    );
    assert!(clean
        .iter()
        .zip(&dirty)
        .all(|(x, y)| x.to_bits() == y.to_bits()));
}
