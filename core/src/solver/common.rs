//! Pieces shared by the baseline solvers: the config macro (struct, defaults,
//! registry entry and validated setters from one table), step-size schedules,
//! inner SGD loops and the Neumann-series and conjugate-gradient estimators
//! of the Hessian-inverse-vector product [∇²ᵧᵧG]⁻¹b.

use rand_core::Rng;

use crate::kernels::{axpy, copy, dot, scale};
use crate::oracle::{Level, LowerGradY, LowerHvp};
use crate::random;
use crate::registry::{Checked, ParamValue};
use crate::Real;

/// A config field type: how a validated registry value is stored and read.
pub(crate) trait Field: Copy {
    fn from_checked(c: Checked) -> Option<Self>;
    fn value(self) -> ParamValue<'static>;
}

impl Field for f64 {
    fn from_checked(c: Checked) -> Option<Self> {
        match c {
            Checked::Real(v) => Some(v),
            _ => None,
        }
    }
    fn value(self) -> ParamValue<'static> {
        ParamValue::Real(self)
    }
}

impl Field for u64 {
    fn from_checked(c: Checked) -> Option<Self> {
        match c {
            Checked::Int(v) => Some(v),
            _ => None,
        }
    }
    fn value(self) -> ParamValue<'static> {
        // Values above i64::MAX become negative and fail validation.
        ParamValue::Int(i64::try_from(self).unwrap_or(i64::MIN))
    }
}

impl Field for bool {
    fn from_checked(c: Checked) -> Option<Self> {
        match c {
            Checked::Bool(v) => Some(v),
            _ => None,
        }
    }
    fn value(self) -> ParamValue<'static> {
        ParamValue::Bool(self)
    }
}

/// Range shorthands for the config tables.
pub(crate) const INF: f64 = f64::INFINITY;
pub(crate) const POS: (f64, bool) = (0.0, true);
pub(crate) const NONNEG: (f64, bool) = (0.0, false);
pub(crate) const FINITE: (f64, bool) = (INF, true);
pub(crate) const UNIT: (f64, bool) = (1.0, false);
pub(crate) const DECAY_MAX: (f64, bool) = (2.0, false);

/// Declares a solver config: the struct with public documented fields, its
/// `Default` (the registry defaults), the `static INFO` registry entry and
/// the validated [`Configure`](crate::registry::Configure) impl, from one
/// table of `field: type = default, kind(range args…), "doc";` rows.
macro_rules! solver_config {
    (
        $(#[$meta:meta])*
        pub struct $cfg:ident;
        info $info:ident {
            name: $name:literal,
            title: $title:literal,
            summary: $summary:literal,
            reference: $reference:literal,
            oracles: [$($oracle:ident),* $(,)?] $(,)?
        }
        $( $field:ident : $ty:ty = $default:expr, $kind:ident ( $($arg:expr),* ), $doc:literal; )*
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub struct $cfg {
            $( #[doc = $doc] pub $field: $ty, )*
        }

        impl Default for $cfg {
            fn default() -> Self {
                $cfg { $( $field: $default, )* }
            }
        }

        /// The registry entry: name, hyperparameter schema and oracles.
        pub static $info: $crate::registry::SolverInfo = $crate::registry::SolverInfo {
            name: $name,
            title: $title,
            summary: $summary,
            reference: $reference,
            params: &[
                $( $crate::registry::ParamSpec::$kind(stringify!($field), $default, $($arg,)* $doc), )*
            ],
            oracles: &[ $( $crate::OracleKind::$oracle ),* ],
        };

        impl $crate::registry::Configure for $cfg {
            const INFO: &'static $crate::registry::SolverInfo = &$info;

            fn set(
                &mut self,
                name: &str,
                value: $crate::registry::ParamValue<'_>,
            ) -> Result<(), $crate::Error> {
                let spec = $info.param(name).ok_or($crate::Error::UnknownParam)?;
                let checked = spec.check(value)?;
                $(
                    if spec.name == stringify!($field) {
                        self.$field = $crate::solver::common::Field::from_checked(checked)
                            .ok_or(spec.wrong_type())?;
                        return Ok(());
                    }
                )*
                Err($crate::Error::UnknownParam)
            }

            fn get(&self, name: &str) -> Option<$crate::registry::ParamValue<'static>> {
                $(
                    if name == stringify!($field) {
                        return Some($crate::solver::common::Field::value(self.$field));
                    }
                )*
                None
            }
        }
    };
}
pub(crate) use solver_config;

/// The decaying step size `base·(t + 1)^(−power)` (benchopt's
/// `learning_rate_scheduler`); constant for `power = 0`.
pub(crate) fn decayed<T: Real>(base: f64, power: f64, t: u64) -> T {
    if power > 0.0 {
        T::from_f64(base * Real::powf(t as f64 + 1.0, -power))
    } else {
        T::from_f64(base)
    }
}

/// `steps` SGD steps `y ← y − lr·∇ᵧG(x, y; ζ)` with a fresh sample per step.
pub(crate) fn lower_sgd<T, O, R>(
    oracle: &mut O,
    rng: &mut R,
    x: &[T],
    y: &mut [T],
    grad: &mut [T],
    steps: u64,
    lr: T,
) where
    T: Real,
    O: LowerGradY<T>,
    R: Rng + ?Sized,
{
    for _ in 0..steps {
        let s = oracle.sample(Level::Lower, rng);
        oracle.grad_y_g(x, y, &s, grad);
        axpy(-lr, grad, y);
    }
}

/// StocBio's truncated Neumann series
/// `out = η Σ_{q=0}^{Q} Π (I − η ∇²ᵧᵧG(x, y; B_j)) b` with a fresh sample B_j
/// per product (or one shared sample when `shared` is given), which equals
/// A⁻¹(I − (I − ηA)^{Q+1}) b for a fixed Hessian A. `p` and `hv` are scratch.
#[allow(clippy::too_many_arguments)]
pub(crate) fn neumann_sum<T, O, R>(
    oracle: &mut O,
    rng: &mut R,
    x: &[T],
    y: &[T],
    b: &[T],
    eta: T,
    q: u64,
    shared: Option<&O::Sample>,
    (p, hv, out): (&mut [T], &mut [T], &mut [T]),
) where
    T: Real,
    O: LowerHvp<T>,
    R: Rng + ?Sized,
{
    copy(b, p);
    copy(b, out);
    for _ in 0..q {
        if let Some(s) = shared {
            oracle.hvp_yy(x, y, p, s, hv);
        } else {
            let s = oracle.sample(Level::Lower, rng);
            oracle.hvp_yy(x, y, p, &s, hv);
        }
        axpy(-eta, hv, p);
        axpy(T::ONE, p, out);
    }
    scale(eta, out);
}

/// Ghadimi and Wang's randomised Hessian-inverse approximation: draw
/// k ~ U{0, …, Q−1}, `out = Q·c·Π_{i=1..k} (I − c ∇²ᵧᵧG(x, y; ζ_i)) b` with fresh
/// ζ_i, an unbiased estimate of `Σ_{q<Q} c (I − cA)^q b`. With
/// `factor_q = false` the factor Q is dropped (the AccBO/TTSA official code).
/// Returns the number of products taken.
#[allow(clippy::too_many_arguments)]
pub(crate) fn neumann_random<T, O, R>(
    oracle: &mut O,
    rng: &mut R,
    x: &[T],
    y: &[T],
    b: &[T],
    c: T,
    q: u64,
    factor_q: bool,
    (hv, out): (&mut [T], &mut [T]),
) -> u64
where
    T: Real,
    O: LowerHvp<T>,
    R: Rng + ?Sized,
{
    let k = random::below(rng, q);
    copy(b, out);
    for _ in 0..k {
        let s = oracle.sample(Level::Lower, rng);
        oracle.hvp_yy(x, y, out, &s, hv);
        axpy(-c, hv, out);
    }
    let f = if factor_q {
        T::from_f64(q as f64)
    } else {
        T::ONE
    };
    scale(f * c, out);
    k
}

/// Conjugate gradient on `∇²ᵧᵧG(x, y; s)·v = b` from the `v` given (warm
/// start), at most `iters` HVPs with one sample `s` for the whole solve (a
/// fixed minibatch Hessian), stopping when ‖r‖ ≤ `tol`. `r`, `p`, `ap` are
/// scratch. Returns the number of HVPs taken.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conjugate_gradient<T, O>(
    oracle: &mut O,
    x: &[T],
    y: &[T],
    b: &[T],
    s: &O::Sample,
    iters: u64,
    tol: T,
    (v, r, p, ap): (&mut [T], &mut [T], &mut [T], &mut [T]),
) -> u64
where
    T: Real,
    O: LowerHvp<T>,
{
    let mut calls = 0;
    // r = b − A v.
    if v.iter().any(|&vi| vi != T::ZERO) {
        oracle.hvp_yy(x, y, v, s, ap);
        calls += 1;
        for ((ri, &bi), &ai) in r.iter_mut().zip(b).zip(ap.iter()) {
            *ri = bi - ai;
        }
    } else {
        copy(b, r);
    }
    copy(r, p);
    let mut rr = dot(r, r);
    let tol2 = tol * tol;
    for _ in 0..iters {
        if rr <= tol2 {
            break;
        }
        oracle.hvp_yy(x, y, p, s, ap);
        calls += 1;
        let pap = dot(p, ap);
        if pap.partial_cmp(&T::ZERO) != Some(core::cmp::Ordering::Greater) {
            // Not positive definite along p (noise): stop with what we have.
            break;
        }
        let a = rr / pap;
        axpy(a, p, v);
        axpy(-a, ap, r);
        let rr_new = dot(r, r);
        let beta = rr_new / rr;
        for (pi, &ri) in p.iter_mut().zip(r.iter()) {
            *pi = ri + beta * *pi;
        }
        rr = rr_new;
    }
    calls
}

/// The HIA hypergradient of BSA, TTSA and ALSET at (x, y): one upper sample ξ
/// for ∇ᵧF and ∇ₓF, [`neumann_random`] for v, a fresh ζ for the cross term;
/// `gx ← ∇ₓF(x, y; ξ) − ∇²ₓᵧG(x, y; ζ) v`. `b`, `hv`, `v` (dy) and `cross`
/// (dx) are scratch.
#[allow(clippy::too_many_arguments)]
pub(crate) fn hia_hypergradient<T, O, R>(
    oracle: &mut O,
    rng: &mut R,
    x: &[T],
    y: &[T],
    c: T,
    q: u64,
    factor_q: bool,
    (b, hv, v): (&mut [T], &mut [T], &mut [T]),
    (gx, cross): (&mut [T], &mut [T]),
) where
    T: Real,
    O: crate::oracle::UpperGradX<T>
        + crate::oracle::UpperGradY<T>
        + LowerHvp<T>
        + crate::oracle::CrossJvp<T>,
    R: Rng + ?Sized,
{
    let xi = oracle.sample(Level::Upper, rng);
    crate::oracle::grads_f(oracle, x, y, &xi, gx, b);
    neumann_random(oracle, rng, x, y, b, c, q, factor_q, (hv, v));
    let zeta = oracle.sample(Level::Lower, rng);
    oracle.jvp_xy(x, y, v, &zeta, cross);
    axpy(-T::ONE, cross, gx);
}
