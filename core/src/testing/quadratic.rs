//! The dense quadratic bilevel family.

use core::marker::PhantomData;

use rand_core::Rng;

use super::{add_noise_with, NoiseNormal};
use crate::kernels::{dot, fill, matvec_add, matvec_add_t_add, matvec_t_add};
use crate::oracle::{
    CrossJvp, Level, LowerGradX, LowerGradY, LowerHvp, LowerValue, Oracle, UpperGradX, UpperGradY,
    UpperValue,
};
use crate::solver::Buffer;
use crate::{Error, OracleKind, Real};

/// Entries needed to store a quadratic instance with dimensions `dx`, `dy`.
pub const fn quadratic_len(dx: usize, dy: usize) -> usize {
    2 * dy * dy + 2 * dx * dx + 2 * dx * dy + 2 * dy + 2 * dx
}

/// Storage length of the 2 × 2 instances.
pub const Q_LEN_2X2: usize = quadratic_len(2, 2);

/// The coefficients of a quadratic instance, row-major, in `f64`.
///
/// ```text
/// g(x,y) = ½ yᵀA y + ½ xᵀB x + xᵀC y + aᵀy + bᵀx
/// f(x,y) = ½ yᵀF y + ½ xᵀH x + xᵀK y + f_lᵀy + h_lᵀx + f_c
/// ```
/// with A (dy×dy, positive definite), B, H (dx×dx), C, K (dx×dy), F (dy×dy).
#[derive(Debug, Clone, Copy)]
pub struct QuadraticParts<'a> {
    /// A, dy × dy.
    pub a: &'a [f64],
    /// B, dx × dx.
    pub b: &'a [f64],
    /// C, dx × dy.
    pub c: &'a [f64],
    /// F, dy × dy.
    pub f: &'a [f64],
    /// H, dx × dx.
    pub h: &'a [f64],
    /// K, dx × dy.
    pub k: &'a [f64],
    /// a, dy.
    pub a_lin: &'a [f64],
    /// b, dx.
    pub b_lin: &'a [f64],
    /// f_l, dy.
    pub f_lin: &'a [f64],
    /// h_l, dx.
    pub h_lin: &'a [f64],
    /// Constant term of f.
    pub f_const: f64,
}

/// A quadratic bilevel problem with exact oracles plus additive Gaussian noise
/// of standard deviation `sigma` on every gradient and product, independent
/// across oracle kinds and reproducible per sample.
///
/// ```text
/// ∇ᵧg = A y + Cᵀx + a    ∇ₓg = B x + C y + b    ∇²ᵧᵧg·v = A v    ∇²ₓᵧg·v = C v
/// ∇ᵧf = F y + Kᵀx + f_l  ∇ₓf = H x + K y + h_l
/// ```
#[derive(Debug, Clone)]
pub struct Quadratic<T, S> {
    dx: usize,
    dy: usize,
    data: S,
    sigma: T,
    noisy: u8,
    normal: NoiseNormal,
    f_const: T,
    _t: PhantomData<T>,
}

/// Bit of an oracle kind in [`Quadratic::with_noisy_oracles`]'s mask.
const fn bit(kind: OracleKind) -> u8 {
    1 << (kind as u8)
}

// Offsets of each block inside the packed storage.
struct Layout {
    a: usize,
    b: usize,
    c: usize,
    f: usize,
    h: usize,
    k: usize,
    a_lin: usize,
    b_lin: usize,
    f_lin: usize,
    h_lin: usize,
    end: usize,
}

const fn layout(dx: usize, dy: usize) -> Layout {
    let a = 0;
    let b = a + dy * dy;
    let c = b + dx * dx;
    let f = c + dx * dy;
    let h = f + dy * dy;
    let k = h + dx * dx;
    let a_lin = k + dx * dy;
    let b_lin = a_lin + dy;
    let f_lin = b_lin + dx;
    let h_lin = f_lin + dy;
    Layout {
        a,
        b,
        c,
        f,
        h,
        k,
        a_lin,
        b_lin,
        f_lin,
        h_lin,
        end: h_lin + dx,
    }
}

impl<T: Real, S: Buffer<T>> Quadratic<T, S> {
    /// Packs `parts` into `storage` (of length at least
    /// [`quadratic_len`]`(dx, dy)`), converting to `T`.
    pub fn from_parts(
        dx: usize,
        dy: usize,
        parts: &QuadraticParts<'_>,
        sigma: f64,
        mut storage: S,
    ) -> Result<Self, Error> {
        let l = layout(dx, dy);
        let buf = storage.as_mut();
        if buf.len() < l.end {
            return Err(Error::InsufficientMemory {
                needed: l.end,
                found: buf.len(),
            });
        }
        let blocks: [(&'static str, &[f64], usize, usize); 10] = [
            ("A", parts.a, l.a, dy * dy),
            ("B", parts.b, l.b, dx * dx),
            ("C", parts.c, l.c, dx * dy),
            ("F", parts.f, l.f, dy * dy),
            ("H", parts.h, l.h, dx * dx),
            ("K", parts.k, l.k, dx * dy),
            ("a", parts.a_lin, l.a_lin, dy),
            ("b", parts.b_lin, l.b_lin, dx),
            ("f_l", parts.f_lin, l.f_lin, dy),
            ("h_l", parts.h_lin, l.h_lin, dx),
        ];
        for (what, src, off, len) in blocks {
            if src.len() != len {
                return Err(Error::DimensionMismatch {
                    what,
                    expected: len,
                    found: src.len(),
                });
            }
            for (d, &s) in buf[off..off + len].iter_mut().zip(src) {
                *d = T::from_f64(s);
            }
        }
        if sigma.is_nan() || sigma < 0.0 || sigma.is_infinite() {
            return Err(Error::InvalidParam {
                name: "sigma",
                expected: ">= 0 and finite",
            });
        }
        Ok(Quadratic {
            dx,
            dy,
            data: storage,
            sigma: T::from_f64(sigma),
            noisy: u8::MAX,
            normal: NoiseNormal::BoxMuller,
            f_const: T::from_f64(parts.f_const),
            _t: PhantomData,
        })
    }

    fn block(&self, start: usize, len: usize) -> &[T] {
        &self.data.as_ref()[start..start + len]
    }
    fn l(&self) -> Layout {
        layout(self.dx, self.dy)
    }

    /// The noise level σ.
    pub fn sigma(&self) -> T {
        self.sigma
    }

    /// The same instance with noise only on the listed oracle kinds (all
    /// kinds by default).
    #[must_use]
    pub fn with_noisy_oracles(mut self, kinds: &[OracleKind]) -> Self {
        self.noisy = kinds.iter().fold(0, |m, &k| m | bit(k));
        self
    }

    fn noise(&self, out: &mut [T], seed: u64, kind: OracleKind) {
        if self.noisy & bit(kind) != 0 {
            add_noise_with(out, self.sigma, seed, kind as u64 + 1, self.normal);
        }
    }

    /// The same instance with another standard normal generator for its
    /// oracle noise ([`NoiseNormal::BoxMuller`] by default): the same
    /// distribution and determinism (same sample, same bits, on every
    /// target), other bits. `docs/decisions.md` 120.
    #[must_use]
    pub fn with_noise_normal(mut self, normal: NoiseNormal) -> Self {
        self.normal = normal;
        self
    }

    /// The standard normal generator of the oracle noise.
    pub fn noise_normal(&self) -> NoiseNormal {
        self.normal
    }

    /// The same instance with another noise level.
    #[must_use]
    pub fn with_sigma(mut self, sigma: T) -> Self {
        self.sigma = sigma;
        self
    }

    /// Reads a coefficient block by name (`"A"`, `"B"`, `"C"`, `"F"`, `"H"`,
    /// `"K"`, `"a"`, `"b"`, `"f_l"`, `"h_l"`), row-major.
    pub fn coefficients(&self, name: &str) -> Option<&[T]> {
        let (dx, dy, l) = (self.dx, self.dy, self.l());
        Some(match name {
            "A" => self.block(l.a, dy * dy),
            "B" => self.block(l.b, dx * dx),
            "C" => self.block(l.c, dx * dy),
            "F" => self.block(l.f, dy * dy),
            "H" => self.block(l.h, dx * dx),
            "K" => self.block(l.k, dx * dy),
            "a" => self.block(l.a_lin, dy),
            "b" => self.block(l.b_lin, dx),
            "f_l" => self.block(l.f_lin, dy),
            "h_l" => self.block(l.h_lin, dx),
            _ => return None,
        })
    }

    /// The exact (noise-free) upper objective f(x, y).
    pub fn f_exact(&self, x: &[T], y: &[T]) -> T {
        let (dx, dy, l) = (self.dx, self.dy, self.l());
        let half = T::from_f64(0.5);
        half * quad_form(self.block(l.f, dy * dy), y)
            + half * quad_form(self.block(l.h, dx * dx), x)
            + bilinear(self.block(l.k, dx * dy), x, y)
            + dot(self.block(l.f_lin, dy), y)
            + dot(self.block(l.h_lin, dx), x)
            + self.f_const
    }

    /// The exact (noise-free) lower objective g(x, y).
    pub fn g_exact(&self, x: &[T], y: &[T]) -> T {
        let (dx, dy, l) = (self.dx, self.dy, self.l());
        let half = T::from_f64(0.5);
        half * quad_form(self.block(l.a, dy * dy), y)
            + half * quad_form(self.block(l.b, dx * dx), x)
            + bilinear(self.block(l.c, dx * dy), x, y)
            + dot(self.block(l.a_lin, dy), y)
            + dot(self.block(l.b_lin, dx), x)
    }
}

fn quad_form<T: Real>(m: &[T], v: &[T]) -> T {
    bilinear(m, v, v)
}

/// `uᵀ M v` for M row-major of shape `u.len() × v.len()`.
fn bilinear<T: Real>(m: &[T], u: &[T], v: &[T]) -> T {
    let mut s = T::ZERO;
    for (&ui, row) in u.iter().zip(m.chunks_exact(v.len())) {
        s += ui * dot(row, v);
    }
    s
}

impl<T: Real, S: Buffer<T>> Oracle<T> for Quadratic<T, S> {
    /// A noise seed.
    type Sample = u64;
    fn dim_x(&self) -> usize {
        self.dx
    }
    fn dim_y(&self) -> usize {
        self.dy
    }
    fn sample<R: Rng + ?Sized>(&mut self, _level: Level, rng: &mut R) -> u64 {
        rng.next_u64()
    }
}

impl<T: Real, S: Buffer<T>> LowerGradY<T> for Quadratic<T, S> {
    fn grad_y_g(&mut self, x: &[T], y: &[T], s: &u64, out: &mut [T]) {
        let (dx, dy, l) = (self.dx, self.dy, self.l());
        out.copy_from_slice(self.block(l.a_lin, dy));
        matvec_add(self.block(l.a, dy * dy), y, out);
        matvec_t_add(self.block(l.c, dx * dy), x, out);
        self.noise(out, *s, OracleKind::GradYG);
    }
}

impl<T: Real, S: Buffer<T>> LowerGradX<T> for Quadratic<T, S> {
    fn grad_x_g(&mut self, x: &[T], y: &[T], s: &u64, out: &mut [T]) {
        let (dx, dy, l) = (self.dx, self.dy, self.l());
        out.copy_from_slice(self.block(l.b_lin, dx));
        matvec_add(self.block(l.b, dx * dx), x, out);
        matvec_add(self.block(l.c, dx * dy), y, out);
        self.noise(out, *s, OracleKind::GradXG);
    }
}

impl<T: Real, S: Buffer<T>> LowerHvp<T> for Quadratic<T, S> {
    fn hvp_yy(&mut self, _x: &[T], _y: &[T], v: &[T], s: &u64, out: &mut [T]) {
        let (dy, l) = (self.dy, self.l());
        fill(out, T::ZERO);
        matvec_add(self.block(l.a, dy * dy), v, out);
        self.noise(out, *s, OracleKind::HvpYY);
    }

    /// ∇ᵧg, A·v and C·v with one read of C (C·v for the cross product and
    /// Cᵀ·x for ∇ᵧg): the bits of the separate calls, one matrix pass fewer.
    fn try_grad_hvp_jvp(
        &mut self,
        x: &[T],
        y: &[T],
        v: &[T],
        s: &u64,
        (gy, hv, jv): (&mut [T], &mut [T], &mut [T]),
    ) -> bool {
        let (dx, dy, l) = (self.dx, self.dy, self.l());
        let a = self.block(l.a, dy * dy);
        gy.copy_from_slice(self.block(l.a_lin, dy));
        matvec_add(a, y, gy);
        fill(hv, T::ZERO);
        matvec_add(a, v, hv);
        fill(jv, T::ZERO);
        matvec_add_t_add(self.block(l.c, dx * dy), v, jv, x, gy);
        self.noise(gy, *s, OracleKind::GradYG);
        self.noise(hv, *s, OracleKind::HvpYY);
        self.noise(jv, *s, OracleKind::JvpXY);
        true
    }
}

impl<T: Real, S: Buffer<T>> CrossJvp<T> for Quadratic<T, S> {
    fn jvp_xy(&mut self, _x: &[T], _y: &[T], v: &[T], s: &u64, out: &mut [T]) {
        let (dx, dy, l) = (self.dx, self.dy, self.l());
        fill(out, T::ZERO);
        matvec_add(self.block(l.c, dx * dy), v, out);
        self.noise(out, *s, OracleKind::JvpXY);
    }
}

impl<T: Real, S: Buffer<T>> UpperGradY<T> for Quadratic<T, S> {
    fn grad_y_f(&mut self, x: &[T], y: &[T], s: &u64, out: &mut [T]) {
        let (dx, dy, l) = (self.dx, self.dy, self.l());
        out.copy_from_slice(self.block(l.f_lin, dy));
        matvec_add(self.block(l.f, dy * dy), y, out);
        matvec_t_add(self.block(l.k, dx * dy), x, out);
        self.noise(out, *s, OracleKind::GradYF);
    }
}

impl<T: Real, S: Buffer<T>> UpperGradX<T> for Quadratic<T, S> {
    fn grad_x_f(&mut self, x: &[T], y: &[T], s: &u64, out: &mut [T]) {
        let (dx, dy, l) = (self.dx, self.dy, self.l());
        out.copy_from_slice(self.block(l.h_lin, dx));
        matvec_add(self.block(l.h, dx * dx), x, out);
        matvec_add(self.block(l.k, dx * dy), y, out);
        self.noise(out, *s, OracleKind::GradXF);
    }

    /// Both upper gradients with one read of K (`kernels::matvec_add_t_add`
    /// gives K·y for ∇ₓf and Kᵀ·x for ∇ᵧf): the bits of the separate calls,
    /// one matrix pass fewer.
    fn try_grads_f(&mut self, x: &[T], y: &[T], s: &u64, gx: &mut [T], gy: &mut [T]) -> bool {
        let (dx, dy, l) = (self.dx, self.dy, self.l());
        gx.copy_from_slice(self.block(l.h_lin, dx));
        matvec_add(self.block(l.h, dx * dx), x, gx);
        gy.copy_from_slice(self.block(l.f_lin, dy));
        matvec_add(self.block(l.f, dy * dy), y, gy);
        matvec_add_t_add(self.block(l.k, dx * dy), y, gx, x, gy);
        self.noise(gx, *s, OracleKind::GradXF);
        self.noise(gy, *s, OracleKind::GradYF);
        true
    }
}

impl<T: Real, S: Buffer<T>> UpperValue<T> for Quadratic<T, S> {
    fn f_value(&mut self, x: &[T], y: &[T], _s: &u64) -> T {
        self.f_exact(x, y)
    }
}

impl<T: Real, S: Buffer<T>> LowerValue<T> for Quadratic<T, S> {
    fn g_value(&mut self, x: &[T], y: &[T], _s: &u64) -> T {
        self.g_exact(x, y)
    }
}

fn fixed<T: Real>(parts: &QuadraticParts<'_>, sigma: f64) -> Quadratic<T, [T; Q_LEN_2X2]> {
    match Quadratic::from_parts(2, 2, parts, sigma, [T::ZERO; Q_LEN_2X2]) {
        Ok(q) => q,
        // The instances below are constants whose shapes are checked by tests.
        Err(_) => unreachable!("2 × 2 instance tables have the right shapes"),
    }
}

/// Q1 (1-D): g = ½y² − xy, f = ½(y − 1)² + ½x². x* = ½, y* = ½, z* = −½, Φ* = ¼.
pub fn q1<T: Real>(sigma: f64) -> Quadratic<T, [T; quadratic_len(1, 1)]> {
    let parts = QuadraticParts {
        a: &[1.0],
        b: &[0.0],
        c: &[-1.0],
        f: &[1.0],
        h: &[1.0],
        k: &[0.0],
        a_lin: &[0.0],
        b_lin: &[0.0],
        f_lin: &[-1.0],
        h_lin: &[0.0],
        f_const: 0.5,
    };
    match Quadratic::from_parts(1, 1, &parts, sigma, [T::ZERO; quadratic_len(1, 1)]) {
        Ok(q) => q,
        Err(_) => unreachable!("1 × 1 instance table has the right shapes"),
    }
}

/// Q2 (2-D, diagonal): g = ½yᵀdiag(2,1)y − xᵀy, f = ½‖y − (1,1)‖² + ½‖x‖².
/// x* = (2/5, 1/2), y* = (1/5, 1/2), z* = (−2/5, −1/2), Φ* = 13/20.
pub fn q2<T: Real>(sigma: f64) -> Quadratic<T, [T; Q_LEN_2X2]> {
    fixed(
        &QuadraticParts {
            a: &[2.0, 0.0, 0.0, 1.0],
            b: &[0.0; 4],
            c: &[-1.0, 0.0, 0.0, -1.0],
            f: &[1.0, 0.0, 0.0, 1.0],
            h: &[1.0, 0.0, 0.0, 1.0],
            k: &[0.0; 4],
            a_lin: &[0.0, 0.0],
            b_lin: &[0.0, 0.0],
            f_lin: &[-1.0, -1.0],
            h_lin: &[0.0, 0.0],
            f_const: 1.0,
        },
        sigma,
    )
}

/// Q3 (2-D, coupled), the default golden instance of `algorithms.md` §7.2:
/// x* = (−111/179, −203/179), y* = (26/179, −37/179), z* = (−98/179, −25/179),
/// Φ* = −78/179; ∇Φ(3/10, −7/10) = (579/490, 267/98).
pub fn q3<T: Real>(sigma: f64) -> Quadratic<T, [T; Q_LEN_2X2]> {
    fixed(
        &QuadraticParts {
            a: &[2.0, 0.5, 0.5, 1.0],
            b: &[1.0, 0.0, 0.0, 1.0],
            c: &[1.0, 0.0, 0.5, -1.0],
            f: &[1.0, 0.0, 0.0, 2.0],
            h: &[1.0, 0.0, 0.0, 1.0],
            k: &[0.5, 0.0, 0.0, 0.0],
            a_lin: &[1.0, -1.0],
            b_lin: &[0.0, 0.0],
            f_lin: &[-1.0, 0.0],
            h_lin: &[0.0, 1.0],
            f_const: 0.0,
        },
        sigma,
    )
}

/// The toy problem of the `.bilevel` language's first example
/// (`examples/specs/toy_quadratic.bilevel`):
///
/// ```text
/// g(x,y) = ½ yᵀHy − yᵀBx          H = [[2, ½], [½, 1]],  B = [[1, 0], [1, 1]]
/// f(x,y) = ½‖y − c‖² + ½ρ‖x‖²      c = (1, −1), ρ = 0.1
/// ```
/// x* = (2120, −3900)/2729, y* = H⁻¹Bx*, μ = λ_min(H) = 1.5 − √0.5.
/// As in the spec, noise enters only through the linear terms: `sigma` is
/// the standard deviation of the noise on ∇ᵧG (ξ) and on ∇ᵧF (ζ); the spec's
/// per-sample std 0.1 with batch 8 is `sigma = 0.1/√8`.
pub fn toy<T: Real>(sigma: f64) -> Quadratic<T, [T; Q_LEN_2X2]> {
    let q = fixed(
        &QuadraticParts {
            a: &[2.0, 0.5, 0.5, 1.0],
            b: &[0.0; 4],
            // xᵀC y = −yᵀBx, so C = −Bᵀ.
            c: &[-1.0, -1.0, 0.0, -1.0],
            f: &[1.0, 0.0, 0.0, 1.0],
            h: &[0.1, 0.0, 0.0, 0.1],
            k: &[0.0; 4],
            a_lin: &[0.0, 0.0],
            b_lin: &[0.0, 0.0],
            f_lin: &[-1.0, 1.0],
            h_lin: &[0.0, 0.0],
            f_const: 1.0,
        },
        sigma,
    );
    q.with_noisy_oracles(&[OracleKind::GradYG, OracleKind::GradYF])
}

#[cfg(feature = "alloc")]
mod dense {
    extern crate alloc;
    use alloc::vec;
    use alloc::vec::Vec;

    use nalgebra::{DMatrix, DVector};
    use rand_core::SeedableRng;

    use super::{layout, Quadratic, QuadraticParts};
    use crate::random::{normal, DefaultRng};
    use crate::solver::Buffer;
    use crate::{Error, Real};

    /// Closed-form quantities of a quadratic instance (in `f64`).
    #[derive(Debug, Clone)]
    pub struct ClosedForm {
        dx: usize,
        a_inv: DMatrix<f64>,
        c: DMatrix<f64>,
        f: DMatrix<f64>,
        h: DMatrix<f64>,
        k: DMatrix<f64>,
        a_lin: DVector<f64>,
        f_lin: DVector<f64>,
        h_lin: DVector<f64>,
        f_const: f64,
        /// The upper solution x*.
        pub x_star: Vec<f64>,
        /// The Hessian of Φ (row-major, dx × dx).
        pub hess_phi: Vec<f64>,
        /// λ_min(A): the strong-convexity modulus μ of g.
        pub mu: f64,
        /// λ_min and λ_max of the Hessian of Φ.
        pub hess_phi_eigs: (f64, f64),
    }

    fn mat(dim_r: usize, dim_c: usize, s: &[f64]) -> DMatrix<f64> {
        DMatrix::from_row_slice(dim_r, dim_c, s)
    }

    impl ClosedForm {
        /// y*(x) = −A⁻¹(Cᵀx + a).
        pub fn y_star(&self, x: &[f64]) -> Vec<f64> {
            let x = DVector::from_column_slice(x);
            let y = -(&self.a_inv * (self.c.transpose() * x + &self.a_lin));
            y.as_slice().to_vec()
        }

        /// z*(x) = A⁻¹ ∇ᵧf(x, y*(x)).
        pub fn z_star(&self, x: &[f64]) -> Vec<f64> {
            let y = DVector::from_vec(self.y_star(x));
            let x = DVector::from_column_slice(x);
            let gy = &self.f * y + self.k.transpose() * x + &self.f_lin;
            (&self.a_inv * gy).as_slice().to_vec()
        }

        /// ∇Φ(x) = ∇ₓf(x, y*) − C z*(x).
        pub fn grad_phi(&self, x: &[f64]) -> Vec<f64> {
            let y = DVector::from_vec(self.y_star(x));
            let z = DVector::from_vec(self.z_star(x));
            let xv = DVector::from_column_slice(x);
            let g = &self.h * xv + &self.k * y + &self.h_lin - &self.c * z;
            g.as_slice().to_vec()
        }

        /// Φ(x) = f(x, y*(x)).
        pub fn phi(&self, x: &[f64]) -> f64 {
            let y = DVector::from_vec(self.y_star(x));
            let xv = DVector::from_column_slice(x);
            0.5 * y.dot(&(&self.f * &y))
                + 0.5 * xv.dot(&(&self.h * &xv))
                + xv.dot(&(&self.k * &y))
                + self.f_lin.dot(&y)
                + self.h_lin.dot(&xv)
                + self.f_const
        }

        /// ‖x − x*‖ / ‖x*‖.
        pub fn rel_error(&self, x: &[f64]) -> f64 {
            let num: f64 = x
                .iter()
                .zip(&self.x_star)
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            let den: f64 = self.x_star.iter().map(|b| b * b).sum();
            libm::sqrt(num / den)
        }

        /// The upper dimension.
        pub fn dim_x(&self) -> usize {
            self.dx
        }
    }

    impl<T: Real, S: Buffer<T>> Quadratic<T, S> {
        /// Computes x*, the Hessian of Φ and the helper matrices. Errors when A
        /// is not positive definite or the Hessian of Φ is singular.
        pub fn closed_form(&self) -> Result<ClosedForm, Error> {
            let (dx, dy) = (self.dx, self.dy);
            let l = layout(dx, dy);
            let d: Vec<f64> = self.data.as_ref()[..l.end]
                .iter()
                .map(|v| v.to_f64())
                .collect();
            let a = mat(dy, dy, &d[l.a..l.b]);
            let c = mat(dx, dy, &d[l.c..l.f]);
            let f = mat(dy, dy, &d[l.f..l.h]);
            let h = mat(dx, dx, &d[l.h..l.k]);
            let k = mat(dx, dy, &d[l.k..l.a_lin]);
            let a_lin = DVector::from_column_slice(&d[l.a_lin..l.b_lin]);
            let f_lin = DVector::from_column_slice(&d[l.f_lin..l.h_lin]);
            let h_lin = DVector::from_column_slice(&d[l.h_lin..l.end]);
            let not_pd = Error::InvalidParam {
                name: "A",
                expected: "a symmetric positive definite matrix",
            };
            let mu = a.clone().symmetric_eigen().eigenvalues.min();
            if mu.is_nan() || mu <= 0.0 {
                return Err(not_pd);
            }
            let a_inv = a.cholesky().ok_or(not_pd)?.inverse();
            let j = -(&a_inv * c.transpose()); // dy × dx
            let y0 = -(&a_inv * &a_lin);
            let kj = &k * &j;
            let hess = j.transpose() * &f * &j + &h + &kj + kj.transpose();
            let c_phi = j.transpose() * &f * &y0 + &k * &y0 + j.transpose() * &f_lin + &h_lin;
            let eig = hess.clone().symmetric_eigen().eigenvalues;
            let x_star = hess
                .clone()
                .lu()
                .solve(&(-c_phi))
                .ok_or(Error::InvalidParam {
                    name: "H",
                    expected: "a problem whose hypergradient Hessian is invertible",
                })?;
            Ok(ClosedForm {
                dx,
                hess_phi: hess.transpose().as_slice().to_vec(),
                hess_phi_eigs: (eig.min(), eig.max()),
                x_star: x_star.as_slice().to_vec(),
                a_inv,
                c,
                f,
                h,
                k,
                a_lin,
                f_lin,
                h_lin,
                f_const: self.f_const.to_f64(),
                mu,
            })
        }
    }

    impl<T: Real> Quadratic<T, Vec<T>> {
        /// A random instance with dx = dy = `d`: A = Q diag(λ) Qᵀ with λ
        /// log-spaced in [1/κ, 1] (so μ = 1/κ, L = 1, condition number κ),
        /// C and K Gaussian with spectral norms about 0.2 and 0.1, F = I,
        /// B = I, and H = I shifted so that ∇²Φ ⪰ I. Linear terms are standard
        /// normal. `sigma` is the oracle noise. The same `seed` gives the same
        /// instance on every platform.
        pub fn random(d: usize, kappa: f64, sigma: f64, seed: u64) -> Result<Self, Error> {
            if d == 0 {
                return Err(Error::InvalidParam {
                    name: "d",
                    expected: ">= 1",
                });
            }
            if kappa.is_nan() || kappa < 1.0 || kappa.is_infinite() {
                return Err(Error::InvalidParam {
                    name: "kappa",
                    expected: ">= 1 and finite",
                });
            }
            let mut rng = DefaultRng::seed_from_u64(seed);
            let mut gauss =
                |r: usize, c: usize, s: f64| DMatrix::from_fn(r, c, |_, _| s * normal(&mut rng));
            let q = gauss(d, d, 1.0).qr().q();
            let scale = 1.0 / libm::sqrt(d as f64);
            let c = gauss(d, d, 0.1 * scale);
            let k = gauss(d, d, 0.05 * scale);
            let lin = gauss(4, d, 1.0);
            let lam = DVector::from_fn(d, |i, _| {
                let t = if d == 1 {
                    0.0
                } else {
                    i as f64 / (d - 1) as f64
                };
                libm::pow(kappa, t - 1.0)
            });
            let a = &q * DMatrix::from_diagonal(&lam) * q.transpose();
            let a = (&a + a.transpose()) * 0.5;
            let eye = DMatrix::<f64>::identity(d, d);
            // Shift H so that ∇²Φ = JᵀFJ + H + KJ + (KJ)ᵀ ⪰ I.
            let a_inv = a
                .clone()
                .cholesky()
                .map(|ch| ch.inverse())
                .ok_or(Error::InvalidParam {
                    name: "A",
                    expected: "a symmetric positive definite matrix",
                })?;
            let j = -(&a_inv * c.transpose());
            let kj = &k * &j;
            let rest = j.transpose() * &j + &kj + kj.transpose();
            let lo = rest.symmetric_eigen().eigenvalues.min();
            let h = &eye * (1.0 + (-lo).max(0.0));
            let row = |m: &DMatrix<f64>| m.transpose().as_slice().to_vec();
            let parts_owned = [row(&a), row(&eye), row(&c), row(&eye), row(&h), row(&k)];
            let lin_rows: Vec<Vec<f64>> = (0..4)
                .map(|i| lin.row(i).iter().copied().collect())
                .collect();
            let parts = QuadraticParts {
                a: &parts_owned[0],
                b: &parts_owned[1],
                c: &parts_owned[2],
                f: &parts_owned[3],
                h: &parts_owned[4],
                k: &parts_owned[5],
                a_lin: &lin_rows[0],
                b_lin: &lin_rows[1],
                f_lin: &lin_rows[2],
                h_lin: &lin_rows[3],
                f_const: 0.0,
            };
            Quadratic::from_parts(
                d,
                d,
                &parts,
                sigma,
                vec![T::ZERO; super::quadratic_len(d, d)],
            )
        }
    }
}

#[cfg(feature = "alloc")]
pub use dense::ClosedForm;

#[cfg(all(test, feature = "alloc"))]
mod tests {
    extern crate alloc;
    use alloc::vec::Vec;

    use rand_core::{Rng, SeedableRng};

    use super::Quadratic;
    use crate::oracle::{CrossJvp, LowerGradY, LowerHvp, UpperGradX, UpperGradY};
    use crate::random::{normal, DefaultRng};

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// The joint hooks give the separate calls' bits, at sizes on both sides
    /// of the kernels' AVX2 threshold (256 entries).
    #[test]
    fn joint_hooks_give_the_separate_bits() {
        let mut rng = DefaultRng::seed_from_u64(75);
        for (d, trials) in [(1, 5), (3, 5), (15, 5), (17, 5), (40, 3), (70, 2)] {
            let mut q = Quadratic::<f64, Vec<f64>>::random(d, 10.0, 0.1, d as u64).unwrap();
            for _ in 0..trials {
                let mut vec = |n: usize| -> Vec<f64> { (0..n).map(|_| normal(&mut rng)).collect() };
                let (x, y, v) = (vec(d), vec(d), vec(d));
                let s = rng.next_u64();
                let (mut gx, mut gy) = (vec![0.0; d], vec![0.0; d]);
                q.grad_x_f(&x, &y, &s, &mut gx);
                q.grad_y_f(&x, &y, &s, &mut gy);
                let (mut jx, mut jy) = (vec![1.0; d], vec![1.0; d]);
                assert!(q.try_grads_f(&x, &y, &s, &mut jx, &mut jy));
                assert_eq!(bits(&gx), bits(&jx), "grads_f ∇ₓf, d = {d}");
                assert_eq!(bits(&gy), bits(&jy), "grads_f ∇ᵧf, d = {d}");
                let (mut g, mut h, mut j) = (vec![0.0; d], vec![0.0; d], vec![0.0; d]);
                q.grad_y_g(&x, &y, &s, &mut g);
                q.hvp_yy(&x, &y, &v, &s, &mut h);
                q.jvp_xy(&x, &y, &v, &s, &mut j);
                let (mut jg, mut jh, mut jj) = (vec![1.0; d], vec![1.0; d], vec![1.0; d]);
                assert!(q.try_grad_hvp_jvp(&x, &y, &v, &s, (&mut jg, &mut jh, &mut jj)));
                assert_eq!(bits(&g), bits(&jg), "grad_hvp_jvp ∇ᵧg, d = {d}");
                assert_eq!(bits(&h), bits(&jh), "grad_hvp_jvp A·v, d = {d}");
                assert_eq!(bits(&j), bits(&jj), "grad_hvp_jvp C·v, d = {d}");
            }
        }
    }
}
