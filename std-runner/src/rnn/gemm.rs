//! Dense matrix products on row-major slices.
//!
//! Every product runs through one packed kernel: the right-hand side is
//! packed into column panels ([`Packed`]) and a register-tiled micro-kernel
//! streams the left-hand side's rows against them ([`gemm_packed`]); it is
//! AVX2/FMA code through `pulp`'s safe SIMD dispatch when the CPU has it, a
//! portable loop otherwise. The per-step recurrent products reuse the
//! recurrent matrix packed once per call, where a general GEMM would repack
//! the whole matrix at every time step; the one-shot products over all
//! steps ([`gemm`]) pack their right-hand side per call.
//!
//! Every matrix is a row-major slice with an explicit shape and a transpose
//! flag (packing reads a transposed right-hand side in place; a transposed
//! left-hand side is copied once, transposed). Results are deterministic:
//! a large product is cut into groups of rows or blocks of columns that run
//! in parallel, and each output entry is one sum over the inner dimension in
//! increasing order, whatever the cut or the number of threads. (Across
//! CPUs the bits can differ: the AVX2/FMA kernel fuses each multiply-add,
//! the portable one rounds the product first.)

use bilevel_core::Real;
use rayon::prelude::*;

/// Output columns per unit of parallel work inside one product.
const COL_BLOCK: usize = 128;
/// Products with fewer multiply-adds than this run on one thread.
const PAR_WORK: usize = 1 << 18;
/// Matrices with fewer entries than this are packed on one thread.
const PAR_PACK: usize = 1 << 18;

/// The scalar type of the RNN backend: a core [`Real`] with the activation
/// functions the model uses and a packed product kernel. Implemented for
/// `f32` and `f64` (sealed).
pub trait Scalar: Real + sealed::Kernel {
    /// The hyperbolic tangent used by the model's cells and head. For `f64`
    /// it is `libm`'s (the accuracy reference, used by the finite-difference
    /// tests); for `f32` a vectorisable rational approximation accurate to
    /// an absolute error below 1e-6 (Eigen's rational approximation).
    #[must_use]
    fn act_tanh(self) -> Self;
    /// The logistic function σ(x) = 1/(1 + e⁻ˣ) of the LSTM gates, written
    /// as (1 + tanh(x/2))/2 through [`Scalar::act_tanh`].
    #[must_use]
    fn act_sigmoid(self) -> Self;
}

impl Scalar for f64 {
    #[inline]
    fn act_tanh(self) -> Self {
        libm::tanh(self)
    }
    #[inline]
    fn act_sigmoid(self) -> Self {
        0.5 + 0.5 * libm::tanh(0.5 * self)
    }
}

impl Scalar for f32 {
    #[inline]
    fn act_tanh(self) -> Self {
        fast_tanh_f32(self)
    }
    #[inline]
    fn act_sigmoid(self) -> Self {
        0.5 + 0.5 * fast_tanh_f32(0.5 * self)
    }
}

/// tanh for `f32` as a 13/6-degree rational function on [−7.9053, 7.9053]
/// (beyond it tanh rounds to ±1 in `f32`), the coefficients of Eigen's
/// `generic_fast_tanh_float`. Branch-free apart from the clamp, so loops
/// over it vectorise; the error is below 1e-6 everywhere (tested).
#[inline]
pub fn fast_tanh_f32(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const A1: f32 = 4.893_524_6e-3;
    const A3: f32 = 6.372_619_3e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_672e-11;
    const A11: f32 = 2.000_188e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525e-3;
    const B2: f32 = 2.268_434_6e-3;
    const B4: f32 = 1.185_347_1e-4;
    const B6: f32 = 1.198_258_4e-6;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = x2 * A13 + A11;
    let p = x2 * p + A9;
    let p = x2 * p + A7;
    let p = x2 * p + A5;
    let p = x2 * p + A3;
    let p = x2 * p + A1;
    let p = x * p;
    let q = x2 * B6 + B4;
    let q = x2 * q + B2;
    let q = x2 * q + B0;
    p / q
}

mod sealed {
    /// The packed-product micro-kernels of one scalar type (see
    /// [`super::gemm_packed`]); sealed, so `Scalar` is implemented for
    /// `f32` and `f64` only.
    pub trait Kernel: Sized {
        /// Columns per packed panel.
        const NR: usize;
        /// `c[i][j] ← (c[i][j] if accumulate, else 0) + Σₖ a[i][k]·B[k][j]`
        /// for `m` rows of `a` (row stride `lda`, `k` columns used) and the
        /// `n` output columns held by `panels` (consecutive `k × NR`
        /// row-major panels, zero beyond column `n`); `c` is row-major with
        /// `n` columns. Each entry is one sum over k in increasing order,
        /// whatever `m` or the blocking.
        #[allow(clippy::too_many_arguments)]
        fn panel_product(
            a: &[Self],
            lda: usize,
            m: usize,
            k: usize,
            panels: &[Self],
            c: &mut [Self],
            n: usize,
            accumulate: bool,
        );
    }
}

/// Largest number of rows one register tile of the packed kernel covers.
const MR: usize = 6;
/// Inner-dimension block of the packed kernel: a panel's `KC × NR` block
/// stays in L1 while the row tiles of a group use it.
const KC: usize = 256;
/// Products with an inner dimension up to this read the left operand in
/// place; longer ones copy each row tile's k block into one interleaved
/// stream (which also avoids 4 KiB set aliasing between rows whose stride
/// is a multiple of 4 KiB).
const DIRECT_K: usize = 128;
/// Rows per group of the packed kernel (and per parallel task of a tall
/// product): the group's `MC × KC` block of the left operand stays in L2.
const MC: usize = 96;

/// The row tiles of an `m`-row product: as few tiles of at most [`MR`] rows
/// as possible, sizes differing by at most one (32 rows: 6, 6, 5, 5, 5, 5).
fn row_tiles(m: usize) -> impl Iterator<Item = (usize, usize)> {
    let tiles = m.div_ceil(MR);
    let base = m.checked_div(tiles).unwrap_or(0);
    let extra = m.checked_rem(tiles).unwrap_or(0);
    (0..tiles).scan(0, move |start, i| {
        let rows = base + usize::from(i < extra);
        let s = *start;
        *start += rows;
        Some((s, rows))
    })
}

/// The portable kernel: per entry the same sum over k in increasing order
/// as the SIMD one, with a separate multiply and add (vectorised by the
/// compiler where it can).
#[allow(clippy::too_many_arguments)]
fn portable_panel_product<T: Real, const NR: usize>(
    a: &[T],
    lda: usize,
    m: usize,
    k: usize,
    panels: &[T],
    c: &mut [T],
    n: usize,
    accumulate: bool,
) {
    let (panels, _) = panels.as_chunks::<NR>();
    for (p, panel) in panels.chunks_exact(k).enumerate().take(n.div_ceil(NR)) {
        let j0 = p * NR;
        let cols = NR.min(n - j0);
        for i in 0..m {
            let mut acc = [T::ZERO; NR];
            if accumulate {
                acc[..cols].copy_from_slice(&c[i * n + j0..][..cols]);
            }
            for (&x, b) in a[i * lda..][..k].iter().zip(panel) {
                for (s, &bv) in acc.iter_mut().zip(b) {
                    *s += x * bv;
                }
            }
            c[i * n + j0..][..cols].copy_from_slice(&acc[..cols]);
        }
    }
}

/// The AVX2/FMA kernels (x86-64 with `pulp`'s V3 level): a tile is up to
/// [`MR`] rows × two vector registers of columns, the accumulators stay in
/// registers over a [`KC`] block of the inner dimension, one fused
/// multiply-add per term.
#[cfg(target_arch = "x86_64")]
mod v3 {
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
                                        by_rows!(
                                            rows,
                                            tile_packed(simd, a, block, c, n, cols, acc)
                                        );
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
}

macro_rules! kernel_impl {
    ($t:ty, $modname:ident, $nr:literal) => {
        impl sealed::Kernel for $t {
            const NR: usize = $nr;
            fn panel_product(
                a: &[Self],
                lda: usize,
                m: usize,
                k: usize,
                panels: &[Self],
                c: &mut [Self],
                n: usize,
                accumulate: bool,
            ) {
                #[cfg(target_arch = "x86_64")]
                {
                    const { assert!(v3::$modname::NR == $nr) };
                    if v3::$modname::run(a, lda, m, k, panels, c, n, accumulate) {
                        return;
                    }
                }
                portable_panel_product::<$t, $nr>(a, lda, m, k, panels, c, n, accumulate);
            }
        }
    };
}

kernel_impl!(f32, f32k, 16);
kernel_impl!(f64, f64k, 8);

/// A pool of reusable buffers for one model's intermediates.
///
/// A gradient allocates a few dozen buffers of rows × hidden values (a
/// megabyte and more each) and frees them all at the end; glibc returns
/// that memory to the system at every call (its trim threshold follows the
/// largest freed block), so each call paid page faults and zeroing of fresh
/// pages: a quarter of a gradient's time at hidden 256. Buffers taken from
/// the pool are zeroed like fresh ones ([`Scratch::zeros`]), or hold stale
/// values only for callers that overwrite every element
/// ([`Scratch::overwritten`]), so results do not depend on the pool.
/// The pool keeps at most [`Scratch::KEPT`] buffers of at least
/// [`Scratch::MIN_LEN`] values, until the model is dropped.
pub(crate) struct Scratch<T> {
    free: std::sync::Mutex<Vec<Vec<T>>>,
}

impl<T> Default for Scratch<T> {
    fn default() -> Self {
        Scratch {
            free: std::sync::Mutex::new(Vec::new()),
        }
    }
}

/// A clone starts with an empty pool.
impl<T> Clone for Scratch<T> {
    fn clone(&self) -> Self {
        Scratch::default()
    }
}

impl<T> std::fmt::Debug for Scratch<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch").finish_non_exhaustive()
    }
}

impl<T: Scalar> Scratch<T> {
    /// Smaller buffers are left to the allocator.
    pub(crate) const MIN_LEN: usize = 1 << 12;
    /// Most buffers kept.
    pub(crate) const KEPT: usize = 96;

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<T>>> {
        self.free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The kept buffer with the smallest capacity of at least `n`.
    fn take(&self, n: usize) -> Option<Vec<T>> {
        if n < Self::MIN_LEN {
            return None;
        }
        let mut free = self.lock();
        let best = free
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= n)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i)?;
        Some(free.swap_remove(best))
    }

    /// An empty buffer with room for `n` values.
    pub(crate) fn empty(&self, n: usize) -> Vec<T> {
        match self.take(n) {
            Some(mut v) => {
                v.clear();
                v
            }
            None => Vec::with_capacity(n),
        }
    }

    /// `n` zeros.
    pub(crate) fn zeros(&self, n: usize) -> Vec<T> {
        let mut v = self.empty(n);
        v.resize(n, T::ZERO);
        v
    }

    /// `n` values left over from an earlier use (zeros where the buffer
    /// grows), for callers that write every element before reading it:
    /// saves zeroing memory that is about to be overwritten.
    pub(crate) fn overwritten(&self, n: usize) -> Vec<T> {
        match self.take(n) {
            Some(mut v) => {
                v.truncate(n);
                v.resize(n, T::ZERO);
                v
            }
            None => vec![T::ZERO; n],
        }
    }

    /// Returns a buffer to the pool.
    pub(crate) fn put(&self, v: Vec<T>) {
        if v.capacity() >= Self::MIN_LEN {
            let mut free = self.lock();
            if free.len() < Self::KEPT {
                free.push(v);
            }
        }
    }

    /// Returns every buffer of `bufs` to the pool.
    pub(crate) fn put_all(&self, bufs: impl IntoIterator<Item = Vec<T>>) {
        for v in bufs {
            self.put(v);
        }
    }
}

/// A `k × n` matrix packed for [`gemm_packed`]: consecutive `k × NR`
/// row-major panels of `NR` columns each (the last one zero-padded).
pub(crate) struct Packed<T> {
    data: Vec<T>,
    k: usize,
    n: usize,
}

impl<T: Scalar> Packed<T> {
    /// Rows of the packed matrix (the inner dimension of a product).
    pub(crate) fn k(&self) -> usize {
        self.k
    }

    /// Columns of the packed matrix.
    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// Packs `b` (`k × n` as used, transposed or not). Panels are packed in
    /// parallel.
    #[cfg(test)]
    pub(crate) fn new(b: Mat<'_, T>) -> Self {
        Self::new_in(b, &Scratch::default())
    }

    /// [`Packed::new`] with the storage taken from `scratch` (give it back
    /// with [`Packed::into_vec`]).
    pub(crate) fn new_in(b: Mat<'_, T>, scratch: &Scratch<T>) -> Self {
        let (k, n) = if b.trans {
            (b.cols, b.rows)
        } else {
            (b.rows, b.cols)
        };
        let nr = T::NR;
        // Every entry is written below: the panels' columns, and the zero
        // padding of a last, partial panel.
        let mut data = scratch.overwritten(n.div_ceil(nr) * nr * k);
        let pack = |(p, panel): (usize, &mut [T])| {
            let j0 = p * nr;
            let cols = nr.min(n - j0);
            if cols < nr {
                panel.fill(T::ZERO);
            }
            if b.trans {
                // b[kk][j] = data[j][kk]: column j of b is a row of the storage.
                for jj in 0..cols {
                    let src = &b.data[(j0 + jj) * b.cols..][..k];
                    for (kk, &x) in src.iter().enumerate() {
                        panel[kk * nr + jj] = x;
                    }
                }
            } else {
                for (kk, dst) in panel.chunks_exact_mut(nr).enumerate() {
                    let src = &b.data[kk * b.cols + j0..];
                    if cols == nr {
                        dst.copy_from_slice(&src[..nr]);
                    } else {
                        dst[..cols].copy_from_slice(&src[..cols]);
                    }
                }
            }
        };
        if k > 0 {
            // Packing is a copy: worth threads only for large matrices.
            if k * n >= PAR_PACK {
                data.par_chunks_mut(k * nr).enumerate().for_each(pack);
            } else {
                data.chunks_mut(k * nr).enumerate().for_each(pack);
            }
        }
        Packed { data, k, n }
    }

    /// The packed storage, for [`Scratch::put`].
    pub(crate) fn into_vec(self) -> Vec<T> {
        self.data
    }
}

/// `c ← beta·c + a·b` with `a` an `m × k` matrix stored row-major with row
/// stride `lda` (row i is `a[i·lda..][..k]`), `b` packed `k × n` and `c`
/// row-major `m × n`; `beta` is 0 (overwrite) or 1 (accumulate). Above
/// [`PAR_WORK`] multiply-adds and with more than one rayon thread, the
/// product is cut into groups of [`MC`] rows (tall products) or blocks of
/// about [`COL_BLOCK`] columns that run in parallel; the result is the same
/// bits either way, as each entry is one sum over k in increasing order.
pub(crate) fn gemm_packed<T: Scalar>(
    a: &[T],
    lda: usize,
    m: usize,
    b: &Packed<T>,
    c: &mut [T],
    accumulate: bool,
) {
    let (k, n) = (b.k, b.n);
    assert!(k <= lda || m <= 1, "row stride below the row length");
    assert!(m == 0 || a.len() >= (m - 1) * lda + k, "left operand shape");
    let c = &mut c[..m * n];
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(T::ZERO);
        }
        return;
    }
    let nr = T::NR;
    let block = COL_BLOCK.div_ceil(nr) * nr;
    let serial = m * n * k < PAR_WORK || rayon::current_num_threads() < 2;
    if serial || (n <= block && m < 2 * MC) {
        T::panel_product(a, lda, m, k, &b.data, c, n, accumulate);
        return;
    }
    if m >= 2 * MC {
        c.par_chunks_mut(MC * n).enumerate().for_each(|(g, c)| {
            let rows = c.len() / n;
            T::panel_product(&a[g * MC * lda..], lda, rows, k, &b.data, c, n, accumulate);
        });
        return;
    }
    let c_in: &[T] = c;
    let blocks: Vec<Vec<T>> = (0..n.div_ceil(block))
        .into_par_iter()
        .map(|q| {
            let j0 = q * block;
            let w = block.min(n - j0);
            let mut out = vec![T::ZERO; m * w];
            if accumulate {
                for (o, src) in out.chunks_exact_mut(w).zip(c_in.chunks_exact(n)) {
                    o.copy_from_slice(&src[j0..j0 + w]);
                }
            }
            let panels = &b.data[j0 * k..(j0 + w).div_ceil(nr) * nr * k];
            T::panel_product(a, lda, m, k, panels, &mut out, w, accumulate);
            out
        })
        .collect();
    for (q, out) in blocks.iter().enumerate() {
        let j0 = q * block;
        let w = block.min(n - j0);
        for (dst, src) in c.chunks_exact_mut(n).zip(out.chunks_exact(w)) {
            dst[j0..j0 + w].copy_from_slice(src);
        }
    }
}

/// The transpose of the row-major `rows × cols` matrix `a`, row-major,
/// in cache-sized tiles.
pub(crate) fn transpose<T: Scalar>(
    a: &[T],
    rows: usize,
    cols: usize,
    scratch: &Scratch<T>,
) -> Vec<T> {
    const TILE: usize = 32;
    // The tiles cover every entry.
    let mut out = scratch.overwritten(rows * cols);
    for i0 in (0..rows).step_by(TILE) {
        for j0 in (0..cols).step_by(TILE) {
            for i in i0..rows.min(i0 + TILE) {
                for j in j0..cols.min(j0 + TILE) {
                    out[j * rows + i] = a[i * cols + j];
                }
            }
        }
    }
    out
}

/// A row-major matrix operand: `rows × cols` values of `data`, optionally
/// used transposed.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    trans: bool,
}

impl<'a, T: Scalar> Mat<'a, T> {
    /// The matrix stored row-major in `data` (`rows × cols`).
    pub(crate) fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        debug_assert_eq!(data.len(), rows * cols);
        Mat {
            data,
            rows,
            cols,
            trans: false,
        }
    }

    /// The same storage, used transposed.
    pub(crate) fn t(self) -> Self {
        Mat {
            trans: !self.trans,
            ..self
        }
    }
}

/// `c ← beta·c + a·b` where `c` is row-major `m × n`; `beta` is 0 (overwrite)
/// or 1 (accumulate). Packs `b` (and transposes a transposed `a`) for
/// [`gemm_packed`], so the same kernel and summation order serve every
/// product.
pub(crate) fn gemm<T: Scalar>(
    a: Mat<'_, T>,
    b: Mat<'_, T>,
    c: &mut [T],
    accumulate: bool,
    scratch: &Scratch<T>,
) {
    let packed = Packed::new_in(b, scratch);
    let (m, k) = if a.trans {
        (a.cols, a.rows)
    } else {
        (a.rows, a.cols)
    };
    assert_eq!(k, packed.k, "inner dimensions of a product");
    if a.trans {
        let at = transpose(a.data, a.rows, a.cols, scratch);
        gemm_packed(&at, k, m, &packed, c, accumulate);
        scratch.put(at);
    } else {
        gemm_packed(a.data, k, m, &packed, c, accumulate);
    }
    scratch.put(packed.into_vec());
}

/// Adds the column sums of the row-major `rows × cols` matrix `a` to `out`
/// (rows summed in order).
pub(crate) fn add_col_sums<T: Scalar>(a: &[T], cols: usize, out: &mut [T]) {
    for row in a.chunks_exact(cols) {
        for (o, &x) in out.iter_mut().zip(row) {
            *o += x;
        }
    }
}

/// Adds `bias` to every row of the row-major matrix `a`.
pub(crate) fn add_row_bias<T: Scalar>(a: &mut [T], bias: &[T]) {
    for row in a.chunks_exact_mut(bias.len()) {
        for (x, &b) in row.iter_mut().zip(bias) {
            *x += b;
        }
    }
}

#[cfg(test)]
mod tests {
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
}
