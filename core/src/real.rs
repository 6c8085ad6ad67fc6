//! The scalar type of every algorithm, and the only place that calls `libm`.
//!
//! `no_std` has no `f64::sqrt`, so all floating-point functions go through this
//! shim. `libm` is a pure-software implementation (correctly rounded for `sqrt`),
//! which is what makes the core give the same bits on x86_64 and on a Cortex-M4F.

use core::fmt::{Debug, Display};
use core::iter::Sum;
use core::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

/// A floating-point scalar: implemented for `f32` (microcontrollers) and `f64`
/// (desktop, golden and accuracy tests).
pub trait Real:
    Copy
    + Default
    + Debug
    + Display
    + PartialOrd
    + Send
    + Sync
    + Sum
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + 'static
{
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
    /// Machine epsilon.
    const EPSILON: Self;
    /// Largest finite value.
    const MAX: Self;
    /// Short type name, for reports.
    const NAME: &'static str;

    /// Converts from `f64`, rounding to nearest.
    fn from_f64(v: f64) -> Self;
    /// Converts to `f64` exactly.
    fn to_f64(self) -> f64;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// Natural exponential.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// `self` raised to the power `p`.
    fn powf(self, p: Self) -> Self;
    /// Cosine.
    fn cos(self) -> Self;
    /// Sine.
    fn sin(self) -> Self;
    /// ln(1 + self), accurate near 0.
    fn ln_1p(self) -> Self;
    /// `true` when neither infinite nor NaN.
    fn is_finite(self) -> bool;

    /// Converts a count (exact below 2^24 in `f32` and 2^53 in `f64`; no
    /// `f64` arithmetic on `f32` targets).
    fn from_usize(n: usize) -> Self;
    /// Converts a 32-bit integer (rounding to nearest in `f32`).
    fn from_u32(n: u32) -> Self;
    /// Larger of two values (NaN-propagating in `self`).
    fn max(self, other: Self) -> Self {
        if self < other {
            other
        } else {
            self
        }
    }
    /// Smaller of two values (NaN-propagating in `self`).
    fn min(self, other: Self) -> Self {
        if self > other {
            other
        } else {
            self
        }
    }

    /// Internal (the AVX2 build of [`crate::kernels`]' matrix–vector
    /// products): the row sums of `R` rows with `v` in explicit AVX2
    /// registers, each the bits of [`crate::kernels::dot`].
    #[cfg(target_arch = "x86_64")]
    #[doc(hidden)]
    fn v3_dot_rows<const R: usize>(
        simd: pulp::x86::V3,
        rows: [&[Self]; R],
        v: &[Self],
    ) -> [Self; R];
}

macro_rules! impl_real {
    (
        $t:ty, $name:literal, $sqrt:ident, $fabs:ident, $exp:ident, $log:ident, $tanh:ident,
        $pow:ident, $cos:ident, $sin:ident, $log1p:ident, $dot_rows:ident
    ) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const EPSILON: Self = <$t>::EPSILON;
            const MAX: Self = <$t>::MAX;
            const NAME: &'static str = $name;

            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn from_usize(n: usize) -> Self {
                n as $t
            }
            #[inline]
            fn from_u32(n: u32) -> Self {
                n as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                f64::from(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                libm::$sqrt(self)
            }
            #[inline]
            fn abs(self) -> Self {
                libm::$fabs(self)
            }
            #[inline]
            fn exp(self) -> Self {
                libm::$exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                libm::$log(self)
            }
            #[inline]
            fn tanh(self) -> Self {
                libm::$tanh(self)
            }
            #[inline]
            fn powf(self, p: Self) -> Self {
                libm::$pow(self, p)
            }
            #[inline]
            fn cos(self) -> Self {
                libm::$cos(self)
            }
            #[inline]
            fn sin(self) -> Self {
                libm::$sin(self)
            }
            #[inline]
            fn ln_1p(self) -> Self {
                libm::$log1p(self)
            }
            #[inline]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[cfg(target_arch = "x86_64")]
            #[allow(clippy::inline_always)] // inlined into the AVX2 function
            #[inline(always)]
            fn v3_dot_rows<const R: usize>(
                simd: pulp::x86::V3,
                rows: [&[Self]; R],
                v: &[Self],
            ) -> [Self; R] {
                crate::kernels::wide::$dot_rows(simd, rows, v)
            }
        }
    };
}

impl_real!(
    f32,
    "f32",
    sqrtf,
    fabsf,
    expf,
    logf,
    tanhf,
    powf,
    cosf,
    sinf,
    log1pf,
    dot_rows_f32
);
impl_real!(
    f64,
    "f64",
    sqrt,
    fabs,
    exp,
    log,
    tanh,
    pow,
    cos,
    sin,
    log1p,
    dot_rows_f64
);
