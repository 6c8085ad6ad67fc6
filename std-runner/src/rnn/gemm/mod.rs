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

#[cfg(target_arch = "x86_64")]
mod v3;

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
mod tests;
