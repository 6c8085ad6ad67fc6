//! The AVX2/FMA kernels (x86-64 with `pulp`'s V3 level): a tile is up to
//! [`MR`] rows × two vector registers of columns, the accumulators stay in
//! registers over a [`KC`] block of the inner dimension, one fused
//! multiply-add per term.

use super::{row_tiles, DIRECT_K, KC, MC, MR};
use pulp::x86::V3;
use pulp::{cast, NullaryFnOnce};

/// Calls the tile function `f::<R>(args)` with `R` = `rows` (1 to
/// [`MR`]): the tile sizes are const generics, fixed per call site.
macro_rules! by_rows {
    ($rows:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $rows {
            1 => $f::<1>($($arg),*),
            2 => $f::<2>($($arg),*),
            3 => $f::<3>($($arg),*),
            4 => $f::<4>($($arg),*),
            5 => $f::<5>($($arg),*),
            rows => {
                debug_assert_eq!(rows, MR);
                $f::<MR>($($arg),*)
            }
        }
    };
}

macro_rules! v3_kernel {
    ($modname:ident, $t:ty, $v:ty, $lanes:literal, $splat:ident, $fma:ident) => {
        pub(super) mod $modname {
            use super::*;

            /// Columns per panel: two vector registers.
            pub(in super::super) const NR: usize = 2 * $lanes;

            struct Job<'a> {
                simd: V3,
                a: &'a [$t],
                lda: usize,
                m: usize,
                k: usize,
                panels: &'a [$t],
                c: &'a mut [$t],
                n: usize,
                accumulate: bool,
            }

            /// `R` rows × `cols` (≤ NR) columns of c over the k rows of
            /// `panel`; `x(kk)` gives the tile's R entries of column kk
            /// of a (from an interleaved copy, or read in place).
            #[inline(always)]
            fn tile<const R: usize>(
                simd: V3,
                panel: &[[$t; NR]],
                c: &mut [$t],
                n: usize,
                cols: usize,
                accumulate: bool,
                x: impl Fn(usize) -> [$t; R],
            ) {
                let zero = simd.$splat(0.0);
                let mut acc = [[zero; 2]; R];
                if accumulate {
                    for (i, acc) in acc.iter_mut().enumerate() {
                        let mut buf = [0.0; NR];
                        if cols == NR {
                            buf = c[i * n..][..NR].try_into().expect("NR columns");
                        } else {
                            buf[..cols].copy_from_slice(&c[i * n..][..cols]);
                        }
                        *acc = cast(buf);
                    }
                }
                for (kk, b) in panel.iter().enumerate() {
                    let [b0, b1]: [$v; 2] = cast(*b);
                    let xs = x(kk);
                    for i in 0..R {
                        let x = simd.$splat(xs[i]);
                        acc[i][0] = simd.$fma(x, b0, acc[i][0]);
                        acc[i][1] = simd.$fma(x, b1, acc[i][1]);
                    }
                }
                for (i, acc) in acc.iter().enumerate() {
                    let buf: [$t; NR] = cast(*acc);
                    if cols == NR {
                        let dst: &mut [$t; NR] =
                            (&mut c[i * n..][..NR]).try_into().expect("NR columns");
                        *dst = buf;
                    } else {
                        c[i * n..][..cols].copy_from_slice(&buf[..cols]);
                    }
                }
            }

            /// [`tile`] over an interleaved copy of the tile's rows of
            /// a (`[kk][r]`: one sequential stream).
            #[inline(always)]
            fn tile_packed<const R: usize>(
                simd: V3,
                ap: &[$t],
                panel: &[[$t; NR]],
                c: &mut [$t],
                n: usize,
                cols: usize,
                accumulate: bool,
            ) {
                let (ap, _) = ap.as_chunks::<R>();
                tile::<R>(simd, panel, c, n, cols, accumulate, |kk| ap[kk]);
            }

            /// [`tile`] reading the rows of a in place (row stride
            /// `lda`): for short inner dimensions, where copying a
            /// costs more than its separate streams do. Same sums in
            /// the same order.
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn tile_direct<const R: usize>(
                simd: V3,
                a: &[$t],
                lda: usize,
                panel: &[[$t; NR]],
                c: &mut [$t],
                n: usize,
                cols: usize,
                accumulate: bool,
            ) {
                let rows: [&[$t]; R] = core::array::from_fn(|i| &a[i * lda..][..panel.len()]);
                tile::<R>(simd, panel, c, n, cols, accumulate, |kk| {
                    core::array::from_fn(|i| rows[i][kk])
                });
            }

            impl NullaryFnOnce for Job<'_> {
                type Output = ();

                #[inline(always)]
                fn call(self) {
                    let Job {
                        simd,
                        a,
                        lda,
                        m,
                        k,
                        panels,
                        c,
                        n,
                        accumulate,
                    } = self;
                    let (panels, _) = panels.as_chunks::<NR>();
                    let np = n.div_ceil(NR);
                    if k <= DIRECT_K {
                        for (p, panel) in panels.chunks_exact(k).enumerate().take(np) {
                            let j0 = p * NR;
                            let cols = NR.min(n - j0);
                            for (i0, rows) in row_tiles(m) {
                                let a = &a[i0 * lda..];
                                let c = &mut c[i0 * n + j0..];
                                by_rows!(
                                    rows,
                                    tile_direct(simd, a, lda, panel, c, n, cols, accumulate)
                                );
                            }
                        }
                        return;
                    }
                    // The group's k block of a, each row tile interleaved
                    // (`[kk][r]`): one sequential stream per tile.
                    let mut ap = vec![0.0; MC.min(m) * KC.min(k)];
                    for g0 in (0..m).step_by(MC) {
                        let gm = MC.min(m - g0);
                        for k0 in (0..k).step_by(KC) {
                            let kc = KC.min(k - k0);
                            for (i0, rows) in row_tiles(gm) {
                                let dst = &mut ap[i0 * kc..(i0 + rows) * kc];
                                for r in 0..rows {
                                    let src = &a[(g0 + i0 + r) * lda + k0..][..kc];
                                    for (kk, &x) in src.iter().enumerate() {
                                        dst[kk * rows + r] = x;
                                    }
                                }
                            }
                            let acc = accumulate || k0 > 0;
                            for (p, panel) in panels.chunks_exact(k).enumerate().take(np) {
                                let j0 = p * NR;
                                let cols = NR.min(n - j0);
                                let block = &panel[k0..k0 + kc];
                                for (i0, rows) in row_tiles(gm) {
                                    let a = &ap[i0 * kc..(i0 + rows) * kc];
                                    let c = &mut c[(g0 + i0) * n + j0..];
                                    by_rows!(rows, tile_packed(simd, a, block, c, n, cols, acc));
                                }
                            }
                        }
                    }
                }
            }

            /// Runs the product if the CPU has AVX2 and FMA; returns
            /// whether it did.
            #[allow(clippy::too_many_arguments)]
            pub(in super::super) fn run(
                a: &[$t],
                lda: usize,
                m: usize,
                k: usize,
                panels: &[$t],
                c: &mut [$t],
                n: usize,
                accumulate: bool,
            ) -> bool {
                let Some(simd) = V3::try_new() else {
                    return false;
                };
                simd.vectorize(Job {
                    simd,
                    a,
                    lda,
                    m,
                    k,
                    panels,
                    c,
                    n,
                    accumulate,
                });
                true
            }
        }
    };
}

v3_kernel!(f32k, f32, pulp::f32x8, 8, splat_f32x8, mul_add_f32x8);
v3_kernel!(f64k, f64, pulp::f64x4, 4, splat_f64x4, mul_add_f64x4);
