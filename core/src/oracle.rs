//! Stochastic oracles: small capability traits, each asked for only by the
//! solvers that use it.
//!
//! A problem implements [`Oracle`] (dimensions and how to draw a sample) and
//! then whichever of the capability traits it can provide:
//!
//! | trait | computes | shape |
//! |---|---|---|
//! | [`UpperGradX`] | ∇ₓF(x, y; ξ) | dx |
//! | [`UpperGradY`] | ∇ᵧF(x, y; ξ) | dy |
//! | [`LowerGradY`] | ∇ᵧG(x, y; ζ) | dy |
//! | [`LowerGradX`] | ∇ₓG(x, y; ζ) | dx |
//! | [`LowerHvp`]   | ∇²ᵧᵧG(x, y; ζ)·v | dy |
//! | [`CrossJvp`]   | ∇²ₓᵧG(x, y; ζ)·v | dx |
//!
//! The sample (a minibatch, a noise seed, a task) is an explicit associated
//! type drawn through [`Oracle::sample`] with an explicit RNG, so a solver can
//! evaluate two oracles on the same sample or on independent ones, exactly as
//! its paper says. Outputs go into caller-provided slices; nothing allocates.
//!
//! # Joint calls
//!
//! Where a solver needs two outputs at one point with one sample, it asks for
//! them together through [`grads_f`] (∇ₓF and ∇ᵧF), [`hvp_jvp`] (∇²ᵧᵧG·v and
//! ∇²ₓᵧG·v) or [`grad_hvp_jvp`] (∇ᵧG with both products). Each goes to a hook
//! of the capability traits ([`UpperGradX::try_grads_f`],
//! [`LowerHvp::try_hvp_jvp`], [`LowerHvp::try_grad_hvp_jvp`]) whose default
//! declines, and then falls back to the separate calls. An oracle whose
//! outputs share work (one forward and one reverse sweep of a tape) overrides
//! the hook; every other oracle needs no change. [`Counted`] counts a joint
//! call of k outputs as k calls, as the papers count oracle calls.

use rand_core::Rng;

use crate::Real;

/// Which level's data a sample is drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Level {
    /// Upper-level data ξ (the objective f).
    Upper,
    /// Lower-level data ζ (the inner problem g).
    Lower,
}

/// The base of every oracle: dimensions and sampling.
pub trait Oracle<T: Real> {
    /// One stochastic sample (a minibatch, a noise seed, a task).
    type Sample;

    /// Dimension of the upper variable x.
    fn dim_x(&self) -> usize;
    /// Dimension of the lower variable y.
    fn dim_y(&self) -> usize;
    /// Draws a fresh sample of the given level's data.
    fn sample<R: Rng + ?Sized>(&mut self, level: Level, rng: &mut R) -> Self::Sample;
    /// `true` once the caller asked the run to stop (Ctrl-C, SIGTERM). A
    /// solver's warm start, the only loop that may run for long before the
    /// first iteration, ends early when it sees it; iterations never do (the
    /// run loop stops between iterations). Default: never.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// ∇ₓF(x, y; ξ), the upper gradient in x.
pub trait UpperGradX<T: Real>: Oracle<T> {
    /// Writes ∇ₓF(x, y; s) into `out` (length dx).
    fn grad_x_f(&mut self, x: &[T], y: &[T], s: &Self::Sample, out: &mut [T]);

    /// The joint hook of [`grads_f`]: an oracle that also implements
    /// [`UpperGradY`] may write ∇ₓF(x, y; s) into `gx` and ∇ᵧF(x, y; s) into
    /// `gy` in one evaluation and return `true`; the outputs must equal the
    /// separate calls' (bit for bit, or to rounding when the fused order
    /// differs). Returning `false` (the default) writes nothing and makes the
    /// caller use the separate calls.
    fn try_grads_f(
        &mut self,
        x: &[T],
        y: &[T],
        s: &Self::Sample,
        gx: &mut [T],
        gy: &mut [T],
    ) -> bool {
        let _ = (x, y, s, gx, gy);
        false
    }
}

/// ∇ᵧF(x, y; ξ), the upper gradient in y.
pub trait UpperGradY<T: Real>: Oracle<T> {
    /// Writes ∇ᵧF(x, y; s) into `out` (length dy).
    fn grad_y_f(&mut self, x: &[T], y: &[T], s: &Self::Sample, out: &mut [T]);
}

/// ∇ᵧG(x, y; ζ), the lower gradient in y.
pub trait LowerGradY<T: Real>: Oracle<T> {
    /// Writes ∇ᵧG(x, y; s) into `out` (length dy).
    fn grad_y_g(&mut self, x: &[T], y: &[T], s: &Self::Sample, out: &mut [T]);
}

/// ∇ₓG(x, y; ζ), the lower gradient in x (first-order penalty methods only).
pub trait LowerGradX<T: Real>: Oracle<T> {
    /// Writes ∇ₓG(x, y; s) into `out` (length dx).
    fn grad_x_g(&mut self, x: &[T], y: &[T], s: &Self::Sample, out: &mut [T]);
}

/// ∇²ᵧᵧG(x, y; ζ)·v, the lower Hessian-vector product.
pub trait LowerHvp<T: Real>: Oracle<T> {
    /// Writes ∇²ᵧᵧG(x, y; s)·v into `out` (`v` and `out` of length dy).
    fn hvp_yy(&mut self, x: &[T], y: &[T], v: &[T], s: &Self::Sample, out: &mut [T]);

    /// The joint hook of [`hvp_jvp`]: an oracle that also implements
    /// [`CrossJvp`] may write ∇²ᵧᵧG(x, y; s)·v into `hv` (dy) and
    /// ∇²ₓᵧG(x, y; s)·v into `jv` (dx) in one evaluation and return `true`
    /// (outputs as the separate calls'). The default declines (`false`,
    /// nothing written).
    fn try_hvp_jvp(
        &mut self,
        x: &[T],
        y: &[T],
        v: &[T],
        s: &Self::Sample,
        (hv, jv): (&mut [T], &mut [T]),
    ) -> bool {
        let _ = (x, y, v, s, hv, jv);
        false
    }

    /// The joint hook of [`grad_hvp_jvp`]: as [`LowerHvp::try_hvp_jvp`],
    /// and ∇ᵧG(x, y; s) into `gy` (an oracle that also implements
    /// [`LowerGradY`]). The default declines.
    fn try_grad_hvp_jvp(
        &mut self,
        x: &[T],
        y: &[T],
        v: &[T],
        s: &Self::Sample,
        (gy, hv, jv): (&mut [T], &mut [T], &mut [T]),
    ) -> bool {
        let _ = (x, y, v, s, gy, hv, jv);
        false
    }
}

/// ∇²ₓᵧG(x, y; ζ)·v, the cross (Jacobian-vector) product: the dx × dy matrix of
/// ∂²G/∂xᵢ∂yⱼ applied to v, i.e. ∇ₓ⟨∇ᵧG(x, y), v⟩ with v held constant.
pub trait CrossJvp<T: Real>: Oracle<T> {
    /// Writes ∇²ₓᵧG(x, y; s)·v into `out` (`v` of length dy, `out` of length dx).
    fn jvp_xy(&mut self, x: &[T], y: &[T], v: &[T], s: &Self::Sample, out: &mut [T]);
}

/// ∇ₓF(x, y; s) into `gx` and ∇ᵧF(x, y; s) into `gy`: one joint evaluation
/// when the oracle offers it ([`UpperGradX::try_grads_f`]), else
/// [`UpperGradX::grad_x_f`] then [`UpperGradY::grad_y_f`].
#[inline]
pub fn grads_f<T, O>(oracle: &mut O, x: &[T], y: &[T], s: &O::Sample, gx: &mut [T], gy: &mut [T])
where
    T: Real,
    O: UpperGradX<T> + UpperGradY<T> + ?Sized,
{
    if !oracle.try_grads_f(x, y, s, gx, gy) {
        oracle.grad_x_f(x, y, s, gx);
        oracle.grad_y_f(x, y, s, gy);
    }
}

/// ∇²ᵧᵧG(x, y; s)·v into `hv` and ∇²ₓᵧG(x, y; s)·v into `jv`: one joint
/// evaluation when the oracle offers it ([`LowerHvp::try_hvp_jvp`]), else
/// [`LowerHvp::hvp_yy`] then [`CrossJvp::jvp_xy`].
#[inline]
pub fn hvp_jvp<T, O>(
    oracle: &mut O,
    x: &[T],
    y: &[T],
    v: &[T],
    s: &O::Sample,
    (hv, jv): (&mut [T], &mut [T]),
) where
    T: Real,
    O: LowerHvp<T> + CrossJvp<T> + ?Sized,
{
    if !oracle.try_hvp_jvp(x, y, v, s, (hv, jv)) {
        oracle.hvp_yy(x, y, v, s, hv);
        oracle.jvp_xy(x, y, v, s, jv);
    }
}

/// ∇ᵧG(x, y; s) into `gy`, ∇²ᵧᵧG(x, y; s)·v into `hv` and ∇²ₓᵧG(x, y; s)·v
/// into `jv`: one joint evaluation when the oracle offers it
/// ([`LowerHvp::try_grad_hvp_jvp`]), else [`LowerGradY::grad_y_g`] then
/// [`hvp_jvp`].
#[inline]
pub fn grad_hvp_jvp<T, O>(
    oracle: &mut O,
    x: &[T],
    y: &[T],
    v: &[T],
    s: &O::Sample,
    (gy, hv, jv): (&mut [T], &mut [T], &mut [T]),
) where
    T: Real,
    O: LowerGradY<T> + LowerHvp<T> + CrossJvp<T> + ?Sized,
{
    if !oracle.try_grad_hvp_jvp(x, y, v, s, (gy, hv, jv)) {
        oracle.grad_y_g(x, y, s, gy);
        hvp_jvp(oracle, x, y, v, s, (hv, jv));
    }
}

/// F(x, y; ξ), the upper objective's value on a sample (for monitoring).
pub trait UpperValue<T: Real>: Oracle<T> {
    /// The upper objective on sample `s`.
    fn f_value(&mut self, x: &[T], y: &[T], s: &Self::Sample) -> T;
}

/// G(x, y; ζ), the lower objective's value on a sample (for monitoring).
pub trait LowerValue<T: Real>: Oracle<T> {
    /// The lower objective on sample `s`.
    fn g_value(&mut self, x: &[T], y: &[T], s: &Self::Sample) -> T;
}

/// The kinds of oracle call, as the registry and the counters name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum OracleKind {
    /// [`UpperGradX`].
    GradXF,
    /// [`UpperGradY`].
    GradYF,
    /// [`LowerGradY`].
    GradYG,
    /// [`LowerGradX`].
    GradXG,
    /// [`LowerHvp`].
    HvpYY,
    /// [`CrossJvp`].
    JvpXY,
}

impl OracleKind {
    /// Every kind, in counter order.
    pub const ALL: [OracleKind; 6] = [
        OracleKind::GradXF,
        OracleKind::GradYF,
        OracleKind::GradYG,
        OracleKind::GradXG,
        OracleKind::HvpYY,
        OracleKind::JvpXY,
    ];

    /// Stable name used in traces, specs and the registry.
    pub const fn name(self) -> &'static str {
        match self {
            OracleKind::GradXF => "grad_x_f",
            OracleKind::GradYF => "grad_y_f",
            OracleKind::GradYG => "grad_y_g",
            OracleKind::GradXG => "grad_x_g",
            OracleKind::HvpYY => "hvp_yy",
            OracleKind::JvpXY => "jvp_xy",
        }
    }

    /// Mathematical notation, for help texts.
    pub const fn notation(self) -> &'static str {
        match self {
            OracleKind::GradXF => "∇ₓf",
            OracleKind::GradYF => "∇ᵧf",
            OracleKind::GradYG => "∇ᵧg",
            OracleKind::GradXG => "∇ₓg",
            OracleKind::HvpYY => "∇²ᵧᵧg·v",
            OracleKind::JvpXY => "∇²ₓᵧg·v",
        }
    }
}

/// Call and sample counters, plain `u64` fields: the x-axis of every
/// oracle-complexity plot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Counts {
    /// ∇ₓF calls.
    pub grad_x_f: u64,
    /// ∇ᵧF calls.
    pub grad_y_f: u64,
    /// ∇ᵧG calls.
    pub grad_y_g: u64,
    /// ∇ₓG calls.
    pub grad_x_g: u64,
    /// ∇²ᵧᵧG·v calls.
    pub hvp_yy: u64,
    /// ∇²ₓᵧG·v calls.
    pub jvp_xy: u64,
    /// F value calls.
    pub f_value: u64,
    /// G value calls.
    pub g_value: u64,
    /// Upper-level samples drawn.
    pub samples_upper: u64,
    /// Lower-level samples drawn.
    pub samples_lower: u64,
}

impl Counts {
    /// Gradient and second-order product calls, the papers' "oracle calls"
    /// (value calls for monitoring are not included).
    pub const fn oracle_calls(&self) -> u64 {
        self.grad_x_f + self.grad_y_f + self.grad_y_g + self.grad_x_g + self.hvp_yy + self.jvp_xy
    }

    /// Calls of one kind.
    pub const fn get(&self, kind: OracleKind) -> u64 {
        match kind {
            OracleKind::GradXF => self.grad_x_f,
            OracleKind::GradYF => self.grad_y_f,
            OracleKind::GradYG => self.grad_y_g,
            OracleKind::GradXG => self.grad_x_g,
            OracleKind::HvpYY => self.hvp_yy,
            OracleKind::JvpXY => self.jvp_xy,
        }
    }
}

/// Wraps an oracle and counts every call and sample made through it.
///
/// `Counted<O>` implements each capability trait that `O` implements.
#[derive(Debug, Clone, Default)]
pub struct Counted<O> {
    inner: O,
    counts: Counts,
}

impl<O> Counted<O> {
    /// Wraps `inner` with zeroed counters.
    pub const fn new(inner: O) -> Self {
        Counted {
            inner,
            counts: Counts {
                grad_x_f: 0,
                grad_y_f: 0,
                grad_y_g: 0,
                grad_x_g: 0,
                hvp_yy: 0,
                jvp_xy: 0,
                f_value: 0,
                g_value: 0,
                samples_upper: 0,
                samples_lower: 0,
            },
        }
    }
    /// The counters so far.
    pub const fn counts(&self) -> &Counts {
        &self.counts
    }
    /// The counters, mutably (to restore them from a checkpoint).
    pub fn counts_mut(&mut self) -> &mut Counts {
        &mut self.counts
    }
    /// Sets every counter to zero.
    pub fn reset(&mut self) {
        self.counts = Counts::default();
    }
    /// The wrapped oracle.
    pub const fn inner(&self) -> &O {
        &self.inner
    }
    /// The wrapped oracle, mutably (calls made through it are not counted).
    pub fn inner_mut(&mut self) -> &mut O {
        &mut self.inner
    }
    /// Unwraps the oracle.
    pub fn into_inner(self) -> O {
        self.inner
    }
}

impl<T: Real, O: Oracle<T>> Oracle<T> for Counted<O> {
    type Sample = O::Sample;
    fn dim_x(&self) -> usize {
        self.inner.dim_x()
    }
    fn dim_y(&self) -> usize {
        self.inner.dim_y()
    }
    fn sample<R: Rng + ?Sized>(&mut self, level: Level, rng: &mut R) -> Self::Sample {
        match level {
            Level::Upper => self.counts.samples_upper += 1,
            Level::Lower => self.counts.samples_lower += 1,
        }
        self.inner.sample(level, rng)
    }
    fn stop_requested(&self) -> bool {
        self.inner.stop_requested()
    }
}

macro_rules! counted_grad {
    ($tr:ident, $method:ident, $field:ident) => {
        impl<T: Real, O: $tr<T>> $tr<T> for Counted<O> {
            #[inline]
            fn $method(&mut self, x: &[T], y: &[T], s: &Self::Sample, out: &mut [T]) {
                self.counts.$field += 1;
                self.inner.$method(x, y, s, out);
            }
        }
    };
}
macro_rules! counted_product {
    ($tr:ident, $method:ident, $field:ident) => {
        impl<T: Real, O: $tr<T>> $tr<T> for Counted<O> {
            #[inline]
            fn $method(&mut self, x: &[T], y: &[T], v: &[T], s: &Self::Sample, out: &mut [T]) {
                self.counts.$field += 1;
                self.inner.$method(x, y, v, s, out);
            }
        }
    };
}
counted_grad!(UpperGradY, grad_y_f, grad_y_f);
counted_grad!(LowerGradY, grad_y_g, grad_y_g);
counted_grad!(LowerGradX, grad_x_g, grad_x_g);
counted_product!(CrossJvp, jvp_xy, jvp_xy);

/// The joint hooks count each output they write: a joint call of two outputs
/// counts two calls, exactly as the separate calls would.
impl<T: Real, O: UpperGradX<T>> UpperGradX<T> for Counted<O> {
    #[inline]
    fn grad_x_f(&mut self, x: &[T], y: &[T], s: &Self::Sample, out: &mut [T]) {
        self.counts.grad_x_f += 1;
        self.inner.grad_x_f(x, y, s, out);
    }
    #[inline]
    fn try_grads_f(
        &mut self,
        x: &[T],
        y: &[T],
        s: &Self::Sample,
        gx: &mut [T],
        gy: &mut [T],
    ) -> bool {
        let done = self.inner.try_grads_f(x, y, s, gx, gy);
        if done {
            self.counts.grad_x_f += 1;
            self.counts.grad_y_f += 1;
        }
        done
    }
}

impl<T: Real, O: LowerHvp<T>> LowerHvp<T> for Counted<O> {
    #[inline]
    fn hvp_yy(&mut self, x: &[T], y: &[T], v: &[T], s: &Self::Sample, out: &mut [T]) {
        self.counts.hvp_yy += 1;
        self.inner.hvp_yy(x, y, v, s, out);
    }
    #[inline]
    fn try_hvp_jvp(
        &mut self,
        x: &[T],
        y: &[T],
        v: &[T],
        s: &Self::Sample,
        out: (&mut [T], &mut [T]),
    ) -> bool {
        let done = self.inner.try_hvp_jvp(x, y, v, s, out);
        if done {
            self.counts.hvp_yy += 1;
            self.counts.jvp_xy += 1;
        }
        done
    }
    #[inline]
    fn try_grad_hvp_jvp(
        &mut self,
        x: &[T],
        y: &[T],
        v: &[T],
        s: &Self::Sample,
        out: (&mut [T], &mut [T], &mut [T]),
    ) -> bool {
        let done = self.inner.try_grad_hvp_jvp(x, y, v, s, out);
        if done {
            self.counts.grad_y_g += 1;
            self.counts.hvp_yy += 1;
            self.counts.jvp_xy += 1;
        }
        done
    }
}

impl<T: Real, O: UpperValue<T>> UpperValue<T> for Counted<O> {
    fn f_value(&mut self, x: &[T], y: &[T], s: &Self::Sample) -> T {
        self.counts.f_value += 1;
        self.inner.f_value(x, y, s)
    }
}
impl<T: Real, O: LowerValue<T>> LowerValue<T> for Counted<O> {
    fn g_value(&mut self, x: &[T], y: &[T], s: &Self::Sample) -> T {
        self.counts.g_value += 1;
        self.inner.g_value(x, y, s)
    }
}

/// Oracles whose call counts are observable: the run loop's budget reads them.
///
/// Implemented by [`Counted`]; a bare oracle reports zero calls.
pub trait CallCounter {
    /// The counters so far.
    fn call_counts(&self) -> Counts;
}

impl<O> CallCounter for Counted<O> {
    fn call_counts(&self) -> Counts {
        self.counts
    }
}
