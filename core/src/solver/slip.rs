//! SLIP: a nearly optimal single-loop method for stochastic bilevel
//! optimization under unbounded smoothness (Gong, Hao, Liu, ICML 2024).
//!
//! # Update rule
//!
//! ```text
//! u_0 ← y_init;  u_{s+1} ← u_s − γ ∇ᵧG(x_0, u_s; π̃_s),  s < T0;  y_0 ← u_{T0}
//! for t = 0, 1, …:                    (every right-hand side at (x_t, y_t, z_t))
//!     y_{t+1} ← y_t − γ ∇ᵧG(x_t, y_t; π_t)
//!     z_{t+1} ← z_t − ν (∇²ᵧᵧG(x_t, y_t; ζ_t) z_t − ∇ᵧF(x_t, y_t; ξ_t))
//!     m_{t+1} ← β m_t + (1−β) (∇ₓF(x_t, y_t; ξ̄_t) − ∇²ₓᵧG(x_t, y_t; ζ̄_t) z_t)
//!     x_{t+1} ← x_t − η m_{t+1} / ‖m_{t+1}‖
//! ```
//! π_t, ζ_t, ξ_t, ξ̄_t, ζ̄_t are fresh and independent: five oracle calls per
//! iteration. No projection, no period.
//!
//! # The official code's departures, as switches
//!
//! | switch | paper (default) | official code |
//! |---|---|---|
//! | `warm_start` | `plain`: T0 SGD steps | `summed`: one step with the loss summed T0 times (step T0·γ) |
//! | `hypergrad_z` | `current` (z_t) | `updated` (z_{t+1}) |
//! | `upper_at_new_y` | false | true: ∇F and the cross term at y_{t+1} |
//! | `z_init` | `zero` | `xavier` |
//! | `norm_eps` | 0 | 1e-10 |
//!
//! # Requirements on the oracle
//!
//! [`UpperGradX`], [`UpperGradY`], [`LowerGradY`], [`LowerHvp`], [`CrossJvp`].
//!
//! # Defaults
//!
//! γ = 5e-2, η = 0.08, β = 0.9, ν = 1e-2, T0 = 3: the SLIP README's SNLI
//! hyper-representation command (η is the code's effective `xi`).
//!
//! # References
//!
//! Xiaochuan Gong, Jie Hao, Mingrui Liu. *A Nearly Optimal Single Loop Algorithm
//! for Stochastic Bilevel Optimization under Unbounded Smoothness.* ICML 2024,
//! arXiv:2412.20017.

use rand_core::Rng;

use super::zbased::{UpperHalf, UpperSettings, HYPERGRAD_Z_CHOICES, Z_INIT_CHOICES};
use super::{zeros_like, Buffer, HypergradZ, Solver, SolverState, ZInit};
use crate::kernels::{axpy, copy};
use crate::oracle::{CrossJvp, Level, LowerGradY, LowerHvp, UpperGradX, UpperGradY};
use crate::registry::{Checked, Configure, ParamSpec, ParamValue, SolverInfo};
use crate::{Error, OracleKind, Real};

/// SLIP's warm start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SlipWarmStart {
    /// T0 plain SGD steps (the paper).
    Plain,
    /// One step on the loss summed T0 times, i.e. step T0·γ (the official code).
    Summed,
}

const WARM_CHOICES: &[&str] = &["plain", "summed"];
const INF: f64 = f64::INFINITY;
const POS: (f64, bool) = (0.0, true);
const NONNEG: (f64, bool) = (0.0, false);
const FINITE: (f64, bool) = (INF, true);
const OR_INF: (f64, bool) = (INF, false);

/// Hyperparameters of [`Slip`]. Fields are public; [`Slip::new`] validates
/// them against [`INFO`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SlipConfig {
    /// η: normalised step size on x.
    pub eta: f64,
    /// p in the step-size schedule η_t = η·(1 + t/τ)^(−p) (0: constant).
    pub eta_decay: f64,
    /// τ in the step-size schedule.
    pub eta_decay_steps: f64,
    /// β: momentum (moving-average) parameter, in [0, 1).
    pub beta: f64,
    /// ν: SGD step on z.
    pub nu: f64,
    /// γ: SGD step on y (warm start and loop).
    pub gamma: f64,
    /// T0: warm-start steps.
    pub warm_steps: u64,
    /// Paper or code-form warm start.
    pub warm_start: SlipWarmStart,
    /// z_t or z_{t+1} in the hypergradient.
    pub hypergrad_z: HypergradZ,
    /// Evaluate ∇F and the cross term at y_{t+1} (the official code).
    pub upper_at_new_y: bool,
    /// z_0.
    pub z_init: ZInit,
    /// ρ: radius of an optional projection of z onto B(0, ρ) (∞: none).
    pub z_radius: f64,
    /// ε in x ← x − η m/(ε + ‖m‖).
    pub norm_eps: f64,
    /// Use one upper sample for ∇ᵧF and ∇ₓF (ξ̄_t = ξ_t).
    pub shared_upper_sample: bool,
    /// Normalised step x ← x − η m/‖m‖ (the method); `false` takes the plain
    /// step x ← x − η m, an ablation that shows why normalisation matters.
    pub normalize: bool,
}

impl Default for SlipConfig {
    fn default() -> Self {
        SlipConfig {
            eta: 0.08,
            eta_decay: 0.0,
            eta_decay_steps: 1.0,
            beta: 0.9,
            nu: 1e-2,
            gamma: 5e-2,
            warm_steps: 3,
            warm_start: SlipWarmStart::Plain,
            hypergrad_z: HypergradZ::Current,
            upper_at_new_y: false,
            z_init: ZInit::Zero,
            z_radius: INF,
            norm_eps: 0.0,
            shared_upper_sample: false,
            normalize: true,
        }
    }
}

impl SlipConfig {
    /// The official code's form: summed warm start, z_{t+1}, upper oracles at
    /// y_{t+1}, Xavier z_0, ε = 1e-10.
    #[must_use]
    pub fn code_form() -> Self {
        SlipConfig {
            warm_start: SlipWarmStart::Summed,
            hypergrad_z: HypergradZ::Updated,
            upper_at_new_y: true,
            z_init: ZInit::XavierUniform,
            norm_eps: 1e-10,
            ..SlipConfig::default()
        }
    }
}

/// SLIP's registry entry.
pub static INFO: SolverInfo = SolverInfo {
    name: "slip",
    title: "SLIP",
    summary: "SGD warm start, then one loop: SGD on y and z, normalized momentum on x",
    reference: "Gong, Hao, Liu. A Nearly Optimal Single Loop Algorithm for Stochastic Bilevel Optimization under Unbounded Smoothness. ICML 2024",
    params: &[
        ParamSpec::real("eta", 0.08, POS, FINITE, "> 0", "normalized step size on x"),
        ParamSpec::real("eta_decay", 0.0, NONNEG, (2.0, false), "in [0, 2]", "p in the schedule η_t = η (1 + t/τ)^(−p); 0 keeps η constant"),
        ParamSpec::real("eta_decay_steps", 1.0, POS, FINITE, "> 0", "τ in the schedule η_t = η (1 + t/τ)^(−p)"),
        ParamSpec::real("beta", 0.9, NONNEG, (1.0, true), "in [0, 1)", "momentum (moving average) parameter"),
        ParamSpec::real("nu", 1e-2, POS, FINITE, "> 0", "SGD step on z"),
        ParamSpec::real("gamma", 5e-2, POS, FINITE, "> 0", "SGD step on y"),
        ParamSpec::int("warm_steps", 3, 0, i64::MAX, ">= 0", "T0: warm-start SGD steps at x_0"),
        ParamSpec::choice("warm_start", WARM_CHOICES, "plain", "plain or summed", "T0 steps (paper) or one step of T0·γ (code)"),
        ParamSpec::choice("hypergrad_z", HYPERGRAD_Z_CHOICES, "current", "current or updated", "z_t (paper) or z_{t+1} (code) in the hypergradient"),
        ParamSpec::boolean("upper_at_new_y", false, "evaluate ∇F and the cross term at y_{t+1} (code)"),
        ParamSpec::choice("z_init", Z_INIT_CHOICES, "zero", "zero or xavier", "initial z"),
        ParamSpec::real("z_radius", INF, POS, OR_INF, "> 0 (inf: no projection)", "optional projection of z onto B(0, ρ)"),
        ParamSpec::real("norm_eps", 0.0, NONNEG, FINITE, ">= 0", "ε in the normalized step η m/(ε + ‖m‖)"),
        ParamSpec::boolean("shared_upper_sample", false, "one upper sample for ∇ᵧF and ∇ₓF"),
        ParamSpec::boolean("normalize", true, "normalized step on x (false: plain step η m, an ablation)"),
    ],
    oracles: &[
        OracleKind::GradXF,
        OracleKind::GradYF,
        OracleKind::GradYG,
        OracleKind::HvpYY,
        OracleKind::JvpXY,
    ],
};

impl Configure for SlipConfig {
    const INFO: &'static SolverInfo = &INFO;

    fn set(&mut self, name: &str, value: ParamValue<'_>) -> Result<(), Error> {
        let spec = INFO.param(name).ok_or(Error::UnknownParam)?;
        match (spec.name, spec.check(value)?) {
            ("eta", Checked::Real(v)) => self.eta = v,
            ("eta_decay", Checked::Real(v)) => self.eta_decay = v,
            ("eta_decay_steps", Checked::Real(v)) => self.eta_decay_steps = v,
            ("beta", Checked::Real(v)) => self.beta = v,
            ("nu", Checked::Real(v)) => self.nu = v,
            ("gamma", Checked::Real(v)) => self.gamma = v,
            ("warm_steps", Checked::Int(v)) => self.warm_steps = v,
            ("warm_start", Checked::Choice(i)) => {
                self.warm_start = if i == 0 {
                    SlipWarmStart::Plain
                } else {
                    SlipWarmStart::Summed
                };
            }
            ("hypergrad_z", Checked::Choice(i)) => self.hypergrad_z = HypergradZ::from_index(i),
            ("upper_at_new_y", Checked::Bool(v)) => self.upper_at_new_y = v,
            ("z_init", Checked::Choice(i)) => self.z_init = ZInit::from_index(i),
            ("z_radius", Checked::Real(v)) => self.z_radius = v,
            ("norm_eps", Checked::Real(v)) => self.norm_eps = v,
            ("shared_upper_sample", Checked::Bool(v)) => self.shared_upper_sample = v,
            ("normalize", Checked::Bool(v)) => self.normalize = v,
            _ => return Err(spec.wrong_type()),
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Option<ParamValue<'static>> {
        use ParamValue::{Bool, Real, Str};
        Some(match name {
            "eta" => Real(self.eta),
            "eta_decay" => Real(self.eta_decay),
            "eta_decay_steps" => Real(self.eta_decay_steps),
            "beta" => Real(self.beta),
            "nu" => Real(self.nu),
            "gamma" => Real(self.gamma),
            "warm_steps" => ParamValue::count(self.warm_steps),
            "warm_start" => Str(WARM_CHOICES[self.warm_start as usize]),
            "hypergrad_z" => Str(self.hypergrad_z.name()),
            "upper_at_new_y" => Bool(self.upper_at_new_y),
            "z_init" => Str(self.z_init.name()),
            "z_radius" => Real(self.z_radius),
            "norm_eps" => Real(self.norm_eps),
            "shared_upper_sample" => Bool(self.shared_upper_sample),
            "normalize" => Bool(self.normalize),
            _ => return None,
        })
    }
}

/// The SLIP solver over buffers `BX` (dimension dx) and `BY` (dimension dy).
#[derive(Debug, Clone)]
pub struct Slip<T, BX, BY> {
    cfg: SlipConfig,
    upper: UpperHalf<T, BX, BY>,
    y: BY,
    y_init: BY,
    y_next: BY,
    grad: BY,
    iter: u64,
    initialized: bool,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> Slip<T, BX, BY> {
    /// Validates `cfg` and builds the solver from starting points x_0 and
    /// y_init. The buffers are cloned here, never in the step loop.
    pub fn new(cfg: SlipConfig, x0: BX, y0: BY) -> Result<Self, Error> {
        cfg.validate()?;
        let settings = UpperSettings {
            eta: T::from_f64(cfg.eta),
            eta_decay: T::from_f64(cfg.eta_decay),
            eta_decay_steps: T::from_f64(cfg.eta_decay_steps),
            beta: T::from_f64(cfg.beta),
            nu: T::from_f64(cfg.nu),
            norm_eps: T::from_f64(cfg.norm_eps),
            z_radius: T::from_f64(cfg.z_radius),
            hypergrad_z: cfg.hypergrad_z,
            z_init: cfg.z_init,
            shared_upper_sample: cfg.shared_upper_sample,
            normalize: cfg.normalize,
        };
        Ok(Slip {
            cfg,
            upper: UpperHalf::new(settings, x0, &y0),
            y_next: zeros_like(&y0),
            grad: zeros_like(&y0),
            y_init: y0.clone(),
            y: y0,
            iter: 0,
            initialized: false,
        })
    }

    /// The configuration.
    pub const fn config(&self) -> &SlipConfig {
        &self.cfg
    }

    /// The linear-system variable z.
    pub fn z(&self) -> &[T] {
        self.upper.z.as_ref()
    }

    /// The momentum buffer m.
    pub fn momentum(&self) -> &[T] {
        self.upper.m.as_ref()
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SolverState<T> for Slip<T, BX, BY> {
    fn x(&self) -> &[T] {
        self.upper.x.as_ref()
    }

    fn y(&self) -> &[T] {
        self.y.as_ref()
    }

    fn iter(&self) -> u64 {
        self.iter
    }
}

impl<T, BX, BY, O> Solver<T, O> for Slip<T, BX, BY>
where
    T: Real,
    BX: Buffer<T>,
    BY: Buffer<T>,
    O: UpperGradX<T> + UpperGradY<T> + LowerGradY<T> + LowerHvp<T> + CrossJvp<T>,
{
    fn name(&self) -> &'static str {
        INFO.name
    }

    fn init<R: Rng + ?Sized>(&mut self, oracle: &mut O, rng: &mut R) -> Result<(), Error> {
        self.upper
            .check_dims(oracle.dim_x(), oracle.dim_y(), self.y.as_ref().len())?;
        copy(self.y_init.as_ref(), self.y.as_mut());
        self.upper.reset(rng);
        self.iter = 0;
        let gamma = T::from_f64(self.cfg.gamma);
        let (steps, lr) = match self.cfg.warm_start {
            SlipWarmStart::Plain => (self.cfg.warm_steps, gamma),
            SlipWarmStart::Summed => (
                u64::from(self.cfg.warm_steps > 0),
                gamma * T::from_usize(usize::try_from(self.cfg.warm_steps).unwrap_or(usize::MAX)),
            ),
        };
        let x = self.upper.x.as_ref();
        for _ in 0..steps {
            // A stop request ends the warm start early (Oracle::stop_requested).
            if oracle.stop_requested() {
                break;
            }
            let pi = oracle.sample(Level::Lower, rng);
            oracle.grad_y_g(x, self.y.as_ref(), &pi, self.grad.as_mut());
            axpy(-lr, self.grad.as_ref(), self.y.as_mut());
        }
        self.initialized = true;
        Ok(())
    }

    fn step<R: Rng + ?Sized>(&mut self, oracle: &mut O, rng: &mut R) -> Result<(), Error> {
        if !self.initialized {
            return Err(Error::NotInitialized);
        }
        let gamma = T::from_f64(self.cfg.gamma);
        // y_{t+1} from (x_t, y_t), kept apart until the upper half has used y_t.
        let pi = oracle.sample(Level::Lower, rng);
        oracle.grad_y_g(
            self.upper.x.as_ref(),
            self.y.as_ref(),
            &pi,
            self.grad.as_mut(),
        );
        copy(self.y.as_ref(), self.y_next.as_mut());
        axpy(-gamma, self.grad.as_ref(), self.y_next.as_mut());
        let y_upper = if self.cfg.upper_at_new_y {
            self.y_next.as_ref()
        } else {
            self.y.as_ref()
        };
        self.upper
            .step(oracle, rng, self.iter, self.y.as_ref(), y_upper);
        core::mem::swap(&mut self.y, &mut self.y_next);
        self.iter += 1;
        Ok(())
    }
}
