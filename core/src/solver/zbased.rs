//! The upper half shared by the z-based methods (BO-REP, SLIP): the SGD step on
//! the linear-system variable z, the moving-average momentum on the
//! hypergradient estimate, and the normalised step on x.
//!
//! ```text
//! z_{t+1} = z_t − ν (∇²ᵧᵧG(x_t, y; ζ_t) z_t − ∇ᵧF(x_t, y; ξ_t))
//! m_{t+1} = β m_t + (1−β) (∇ₓF(x_t, y; ξ̄_t) − ∇²ₓᵧG(x_t, y; ζ̄_t) z_t)
//! x_{t+1} = x_t − η m_{t+1} / ‖m_{t+1}‖
//! ```
//! ζ_t, ξ_t, ξ̄_t, ζ̄_t are fresh, mutually independent samples (ξ̄_t = ξ_t is a
//! switch). The z used in the hypergradient is z_t in the papers and z_{t+1} in
//! the official code ([`HypergradZ`]).

use rand_core::Rng;

use super::{check_len, zeros_like, Buffer};
use crate::kernels::{axpy, fill, norm, project_ball, scale};
use crate::oracle::{CrossJvp, Level, LowerHvp, UpperGradX, UpperGradY};
use crate::{random, Error, Real};

/// Which z enters the hypergradient estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum HypergradZ {
    /// z_t, before this iteration's z step (the papers).
    Current,
    /// z_{t+1}, after it (the official code).
    Updated,
}

/// How z is initialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ZInit {
    /// z_0 = 0 (the papers).
    Zero,
    /// z_0 ~ U(−√(6/(dy+1)), √(6/(dy+1))), PyTorch's Xavier-uniform on a dy × 1
    /// tensor (the official code).
    XavierUniform,
}

pub(crate) const HYPERGRAD_Z_CHOICES: &[&str] = &["current", "updated"];
pub(crate) const Z_INIT_CHOICES: &[&str] = &["zero", "xavier"];

impl HypergradZ {
    pub(crate) const fn name(self) -> &'static str {
        HYPERGRAD_Z_CHOICES[self as usize]
    }
    pub(crate) const fn from_index(i: usize) -> Self {
        if i == 0 {
            HypergradZ::Current
        } else {
            HypergradZ::Updated
        }
    }
}

impl ZInit {
    pub(crate) const fn name(self) -> &'static str {
        Z_INIT_CHOICES[self as usize]
    }
    pub(crate) const fn from_index(i: usize) -> Self {
        if i == 0 {
            ZInit::Zero
        } else {
            ZInit::XavierUniform
        }
    }
}

/// Settings of the upper half, already converted to the scalar type.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UpperSettings<T> {
    pub eta: T,
    pub eta_decay: T,
    pub eta_decay_steps: T,
    pub beta: T,
    pub nu: T,
    pub norm_eps: T,
    pub z_radius: T,
    pub hypergrad_z: HypergradZ,
    pub z_init: ZInit,
    pub shared_upper_sample: bool,
    pub normalize: bool,
}

/// x, m, z and their scratch vectors.
#[derive(Debug, Clone)]
pub(crate) struct UpperHalf<T, BX, BY> {
    pub s: UpperSettings<T>,
    pub x: BX,
    pub m: BX,
    gx: BX,
    cross: BX,
    pub z: BY,
    hz: BY,
    gyf: BY,
    znew: BY,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> UpperHalf<T, BX, BY> {
    pub fn new(s: UpperSettings<T>, x0: BX, y0: &BY) -> Self {
        UpperHalf {
            s,
            m: zeros_like(&x0),
            gx: zeros_like(&x0),
            cross: zeros_like(&x0),
            x: x0,
            z: zeros_like(y0),
            hz: zeros_like(y0),
            gyf: zeros_like(y0),
            znew: zeros_like(y0),
        }
    }

    pub fn check_dims(&self, dx: usize, dy: usize, y_len: usize) -> Result<(), Error> {
        check_len("x", self.x.as_ref().len(), dx)?;
        check_len("y", y_len, dy)
    }

    /// Resets m and z (z per [`ZInit`]) at init.
    pub fn reset<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        fill(self.m.as_mut(), T::ZERO);
        let z = self.z.as_mut();
        match self.s.z_init {
            ZInit::Zero => fill(z, T::ZERO),
            ZInit::XavierUniform => {
                let bound = (T::from_f64(6.0) / (T::from_usize(z.len()) + T::ONE)).sqrt();
                let two = T::from_f64(2.0);
                for zi in z {
                    *zi = bound * (two * random::uniform_real::<T, R>(rng) - T::ONE);
                }
            }
        }
    }

    /// One z step, momentum update and normalised x step. The HVP is taken at
    /// `y_lower` and the upper gradients and the cross term at `y_upper` (the
    /// same slice in the papers' form).
    pub fn step<O, R>(&mut self, oracle: &mut O, rng: &mut R, t: u64, y_lower: &[T], y_upper: &[T])
    where
        O: UpperGradX<T> + UpperGradY<T> + LowerHvp<T> + CrossJvp<T>,
        R: Rng + ?Sized,
    {
        let s = self.s;
        let x = self.x.as_ref();
        // z step: ζ_t for the HVP, ξ_t for ∇ᵧF.
        let zeta = oracle.sample(Level::Lower, rng);
        oracle.hvp_yy(x, y_lower, self.z.as_ref(), &zeta, self.hz.as_mut());
        let xi = oracle.sample(Level::Upper, rng);
        if s.shared_upper_sample {
            // ∇ₓF at the same point and sample: one joint call; `gx` is not
            // touched until the hypergradient.
            crate::oracle::grads_f(oracle, x, y_upper, &xi, self.gx.as_mut(), self.gyf.as_mut());
        } else {
            oracle.grad_y_f(x, y_upper, &xi, self.gyf.as_mut());
        }
        {
            let (z, hz, gyf, znew) = (
                self.z.as_ref(),
                self.hz.as_ref(),
                self.gyf.as_ref(),
                self.znew.as_mut(),
            );
            for (((zn, &zi), &h), &g) in znew.iter_mut().zip(z).zip(hz).zip(gyf) {
                *zn = zi - s.nu * (h - g);
            }
        }
        if s.z_radius.is_finite() {
            // Projection onto B(0, ρ): `hz` is free here and serves as the centre.
            fill(self.hz.as_mut(), T::ZERO);
            project_ball(self.znew.as_mut(), self.hz.as_ref(), s.z_radius);
        }
        // Hypergradient: ξ̄_t for ∇ₓF, ζ̄_t for the cross term.
        let xi_bar = if s.shared_upper_sample {
            None
        } else {
            Some(oracle.sample(Level::Upper, rng))
        };
        let zeta_bar = oracle.sample(Level::Lower, rng);
        let z_used = match s.hypergrad_z {
            HypergradZ::Current => self.z.as_ref(),
            HypergradZ::Updated => self.znew.as_ref(),
        };
        if let Some(xi_bar) = &xi_bar {
            hypergradient(
                oracle,
                x,
                y_upper,
                z_used,
                (xi_bar, &zeta_bar),
                self.gx.as_mut(),
                self.cross.as_mut(),
            );
        } else {
            // ∇ₓF(x, y; ξ) is in `gx` already (the joint call above).
            oracle.jvp_xy(x, y_upper, z_used, &zeta_bar, self.cross.as_mut());
            axpy(-T::ONE, self.cross.as_ref(), self.gx.as_mut());
        }
        // m ← β m + (1−β)(∇ₓF − ∇²ₓᵧG z).
        let one_minus_beta = T::ONE - s.beta;
        for (mi, &g) in self.m.as_mut().iter_mut().zip(self.gx.as_ref()) {
            *mi = s.beta * *mi + one_minus_beta * g;
        }
        let eta = step_size(s.eta, s.eta_decay, s.eta_decay_steps, t);
        if s.normalize {
            normalized_step(self.x.as_mut(), self.m.as_ref(), eta, s.norm_eps);
        } else {
            axpy(-eta, self.m.as_ref(), self.x.as_mut());
        }
        core::mem::swap(&mut self.z, &mut self.znew);
    }
}

/// The stochastic hypergradient estimate of every z-based method,
/// ∇̂φ(x, y, z; ξ̄, ζ̄) = ∇ₓF(x, y; ξ̄) − ∇²ₓᵧG(x, y; ζ̄)·z, written to `out`;
/// `cross` (length dx) is scratch. At y = y*(x), z = z*(x) and exact oracles it
/// equals ∇Φ(x).
pub fn hypergradient<T, O>(
    oracle: &mut O,
    x: &[T],
    y: &[T],
    z: &[T],
    samples: (&O::Sample, &O::Sample),
    out: &mut [T],
    cross: &mut [T],
) where
    T: Real,
    O: UpperGradX<T> + CrossJvp<T>,
{
    oracle.grad_x_f(x, y, samples.0, out);
    oracle.jvp_xy(x, y, z, samples.1, cross);
    axpy(-T::ONE, cross, out);
}

/// The step-size schedule η_t = η·(1 + t/τ)^(−p): constant for p = 0 (the
/// papers' experiments), 1/t-like for p = 1.
pub(crate) fn step_size<T: Real>(eta: T, power: T, tau: T, t: u64) -> T {
    if power > T::ZERO {
        let t = T::from_usize(usize::try_from(t).unwrap_or(usize::MAX));
        eta * (T::ONE + t / tau).powf(-power)
    } else {
        eta
    }
}

/// `x ← x − η·m/(ε + ‖m‖)`; with ε = 0 a zero `m` gives no step.
pub(crate) fn normalized_step<T: Real>(x: &mut [T], m: &[T], eta: T, eps: T) {
    let n = norm(m) + eps;
    if n > T::ZERO {
        axpy(-(eta / n), m, x);
    }
}

/// SGD on the lower variable, plain or with the official code's gradient
/// accumulation (step i uses the sum of the gradients 0..i).
pub(crate) fn sgd_update<T: Real>(u: &mut [T], g: &[T], acc: &mut [T], lr: T, accumulate: bool) {
    if accumulate {
        axpy(T::ONE, g, acc);
        axpy(-lr, acc, u);
    } else {
        axpy(-lr, g, u);
    }
}

/// `v ← v / n`.
pub(crate) fn divide<T: Real>(v: &mut [T], n: usize) {
    scale(T::ONE / T::from_usize(n), v);
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> crate::state::VisitState<T> for UpperHalf<T, BX, BY> {
    /// x, the momentum m, z and the scratch of the z and x steps (the
    /// settings come from the config and are not state).
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, m, gx, cross, z, hz, gyf, znew; f64; u64; bool);
    }
}
