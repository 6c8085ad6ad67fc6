//! BO-REP: bilevel optimization with lower-level initialization refinement and
//! periodic updates (Hao, Gong, Liu, ICLR 2024).
//!
//! # Update rule
//!
//! ```text
//! y_0 ← EpochSGD(x_0, y_init)                                      (Alg. 3)
//! for t = 0, 1, …:
//!     if t mod I = 0:                                               (Alg. 2)
//!         c ← y;  u_0 ← y
//!         u_{j+1} ← Π_{B(c,R)}(u_j − γ ∇ᵧG(x_t, u_j; π_j)),  j < N
//!         y ← (1/N) Σ_{j=1..N} u_j            (or u_N: `lower_output = last`)
//!     z_{t+1} ← z_t − ν (∇²ᵧᵧG(x_t, y; ζ_t) z_t − ∇ᵧF(x_t, y; ξ_t))
//!     m_{t+1} ← β m_t + (1−β) (∇ₓF(x_t, y; ξ̄_t) − ∇²ₓᵧG(x_t, y; ζ̄_t) z_t)
//!     x_{t+1} ← x_t − η m_{t+1} / ‖m_{t+1}‖
//! ```
//!
//! Epoch-SGD runs K0 epochs; epoch k takes T_k projected SGD steps with step θ_k
//! on the ball B(ŷ_k, B_k) around its start and returns the average of its
//! post-step iterates; then T doubles, θ halves and B shrinks by √2.
//!
//! Every sample (π, ζ, ξ, ξ̄, ζ̄) is fresh and independent; `shared_upper_sample`
//! uses ξ̄_t = ξ_t.
//!
//! # The official code's departures, as switches
//!
//! | switch | paper (default) | official code |
//! |---|---|---|
//! | `warm_start` | `epoch-sgd` | `plain` (`warm_len` SGD steps) |
//! | `radius` | R (∞ when unknown) | ∞ (no projection) |
//! | `lower_output` | `average` | `last` |
//! | `hypergrad_z` | `current` (z_t) | `updated` (z_{t+1}) |
//! | `z_init` | `zero` | `xavier` |
//! | `norm_eps` | 0 | 1e-10 |
//! | `accumulate_grads` | false | true (no `zero_grad` in the y loops) |
//!
//! # Requirements on the oracle
//!
//! [`UpperGradX`], [`UpperGradY`], [`LowerGradY`], [`LowerHvp`], [`CrossJvp`].
//! Per iteration: one each of ∇ₓF, ∇ᵧF, ∇²ᵧᵧG·v, ∇²ₓᵧG·v, plus N ∇ᵧG calls every
//! I iterations.
//!
//! # Defaults
//!
//! η = 1e-2, γ = 1e-3, β = 0.9, ν = 1e-2, I = 2, N = 3: the official README's
//! hyper-representation command (Fig. 1a of the paper). The paper gives no R
//! and no Epoch-SGD constants for its experiments; K0 = 3, T_1 = 4 (Hazan and
//! Kale's first epoch length), θ_1 = 1e-2 and B_1 = ∞ were chosen here.
//!
//! # References
//!
//! Jie Hao, Xiaochuan Gong, Mingrui Liu. *Bilevel Optimization under Unbounded
//! Smoothness: A New Algorithm and Convergence Analysis.* ICLR 2024,
//! arXiv:2401.09587. Epoch-SGD: Hazan and Kale, *Beyond the regret minimization
//! barrier*, JMLR 2014.

use rand_core::Rng;

use super::zbased::{
    divide, sgd_update, UpperHalf, UpperSettings, HYPERGRAD_Z_CHOICES, Z_INIT_CHOICES,
};
use super::{zeros_like, Buffer, HypergradZ, Solver, SolverState, ZInit};
use crate::kernels::{axpy, copy, fill, project_ball};
use crate::oracle::{CrossJvp, Level, LowerGradY, LowerHvp, UpperGradX, UpperGradY};
use crate::registry::{Checked, Configure, ParamSpec, ParamValue, SolverInfo};
use crate::{Error, OracleKind, Real};

/// What UpdateLower (Alg. 2) returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LowerOutput {
    /// The average of the N post-step iterates (the paper).
    Average,
    /// The last iterate (the official code).
    Last,
}

/// The lower-level warm start at x_0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WarmStart {
    /// Epoch-SGD initialization refinement (Alg. 3, the paper).
    EpochSgd,
    /// `warm_len` plain SGD steps with step `warm_lr` (the official code).
    Plain,
    /// No warm start.
    None,
}

const LOWER_OUTPUT_CHOICES: &[&str] = &["average", "last"];
const WARM_START_CHOICES: &[&str] = &["epoch-sgd", "plain", "none"];
const INF: f64 = f64::INFINITY;

/// Hyperparameters of [`BoRep`]. Fields are public; [`BoRep::new`] validates
/// them against [`INFO`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BoRepConfig {
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
    /// γ: SGD step of the periodic lower-level updates.
    pub gamma: f64,
    /// I: y is updated every `period` iterations.
    pub period: u64,
    /// N: SGD steps per lower-level update.
    pub inner_steps: u64,
    /// R: radius of the projection ball around the previous y (∞: none).
    pub radius: f64,
    /// Average or last iterate of the lower-level update.
    pub lower_output: LowerOutput,
    /// Warm start at x_0.
    pub warm_start: WarmStart,
    /// K0: Epoch-SGD epochs.
    pub warm_epochs: u64,
    /// T_1 (Epoch-SGD first epoch length) or the number of plain warm-start steps.
    pub warm_len: u64,
    /// θ_1 (Epoch-SGD first step) or the plain warm-start step.
    pub warm_lr: f64,
    /// B_1: Epoch-SGD first ball radius (∞: none).
    pub warm_radius: f64,
    /// z_t or z_{t+1} in the hypergradient.
    pub hypergrad_z: HypergradZ,
    /// z_0.
    pub z_init: ZInit,
    /// ρ: radius of an optional projection of z onto B(0, ρ) (∞: none).
    pub z_radius: f64,
    /// ε in x ← x − η m/(ε + ‖m‖).
    pub norm_eps: f64,
    /// Official-code gradient accumulation in the lower-level loops.
    pub accumulate_grads: bool,
    /// Use one upper sample for ∇ᵧF and ∇ₓF (ξ̄_t = ξ_t).
    pub shared_upper_sample: bool,
    /// Normalised step x ← x − η m/‖m‖ (the method); `false` takes the plain
    /// step x ← x − η m, an ablation that shows why normalisation matters.
    pub normalize: bool,
}

impl Default for BoRepConfig {
    fn default() -> Self {
        BoRepConfig {
            eta: 1e-2,
            eta_decay: 0.0,
            eta_decay_steps: 1.0,
            beta: 0.9,
            nu: 1e-2,
            gamma: 1e-3,
            period: 2,
            inner_steps: 3,
            radius: INF,
            lower_output: LowerOutput::Average,
            warm_start: WarmStart::EpochSgd,
            warm_epochs: 3,
            warm_len: 4,
            warm_lr: 1e-2,
            warm_radius: INF,
            hypergrad_z: HypergradZ::Current,
            z_init: ZInit::Zero,
            z_radius: INF,
            norm_eps: 0.0,
            accumulate_grads: false,
            shared_upper_sample: false,
            normalize: true,
        }
    }
}

impl BoRepConfig {
    /// The official code's form: plain warm start, no projection, last iterate,
    /// z_{t+1}, Xavier z_0, ε = 1e-10, gradient accumulation.
    #[must_use]
    pub fn code_form() -> Self {
        BoRepConfig {
            warm_start: WarmStart::Plain,
            warm_len: 3,
            warm_lr: 1e-3,
            lower_output: LowerOutput::Last,
            hypergrad_z: HypergradZ::Updated,
            z_init: ZInit::XavierUniform,
            norm_eps: 1e-10,
            accumulate_grads: true,
            ..BoRepConfig::default()
        }
    }
}

const POS: (f64, bool) = (0.0, true);
const NONNEG: (f64, bool) = (0.0, false);
const FINITE: (f64, bool) = (INF, true);
const OR_INF: (f64, bool) = (INF, false);

/// BO-REP's registry entry.
pub static INFO: SolverInfo = SolverInfo {
    name: "bo-rep",
    title: "BO-REP",
    summary: "normalized momentum on x, Epoch-SGD warm start, periodic projected SGD on y, SGD on z",
    reference: "Hao, Gong, Liu. Bilevel Optimization under Unbounded Smoothness: A New Algorithm and Convergence Analysis. ICLR 2024",
    params: &[
        ParamSpec::real("eta", 1e-2, POS, FINITE, "> 0", "normalized step size on x"),
        ParamSpec::real("eta_decay", 0.0, NONNEG, (2.0, false), "in [0, 2]", "p in the schedule η_t = η (1 + t/τ)^(−p); 0 keeps η constant"),
        ParamSpec::real("eta_decay_steps", 1.0, POS, FINITE, "> 0", "τ in the schedule η_t = η (1 + t/τ)^(−p)"),
        ParamSpec::real("beta", 0.9, NONNEG, (1.0, true), "in [0, 1)", "momentum (moving average) parameter"),
        ParamSpec::real("nu", 1e-2, POS, FINITE, "> 0", "SGD step on z"),
        ParamSpec::real("gamma", 1e-3, POS, FINITE, "> 0", "SGD step of the periodic lower-level updates"),
        ParamSpec::int("period", 2, 1, i64::MAX, ">= 1", "I: update y every `period` iterations"),
        ParamSpec::int("inner_steps", 3, 1, i64::MAX, ">= 1", "N: SGD steps per lower-level update"),
        ParamSpec::real("radius", INF, POS, OR_INF, "> 0 (inf: no projection)", "R: projection ball radius around the previous y"),
        ParamSpec::choice("lower_output", LOWER_OUTPUT_CHOICES, "average", "average or last", "iterate returned by the lower-level update"),
        ParamSpec::choice("warm_start", WARM_START_CHOICES, "epoch-sgd", "epoch-sgd, plain or none", "lower-level warm start at x_0"),
        ParamSpec::int("warm_epochs", 3, 0, 40, "in [0, 40]", "K0: Epoch-SGD epochs"),
        ParamSpec::int("warm_len", 4, 0, i64::MAX, ">= 0", "Epoch-SGD first epoch length T_1, or plain warm-start steps"),
        ParamSpec::real("warm_lr", 1e-2, POS, FINITE, "> 0", "Epoch-SGD first step θ_1, or plain warm-start step"),
        ParamSpec::real("warm_radius", INF, POS, OR_INF, "> 0 (inf: no projection)", "B_1: Epoch-SGD first ball radius"),
        ParamSpec::choice("hypergrad_z", HYPERGRAD_Z_CHOICES, "current", "current or updated", "z_t (paper) or z_{t+1} (code) in the hypergradient"),
        ParamSpec::choice("z_init", Z_INIT_CHOICES, "zero", "zero or xavier", "initial z"),
        ParamSpec::real("z_radius", INF, POS, OR_INF, "> 0 (inf: no projection)", "optional projection of z onto B(0, ρ)"),
        ParamSpec::real("norm_eps", 0.0, NONNEG, FINITE, ">= 0", "ε in the normalized step η m/(ε + ‖m‖)"),
        ParamSpec::boolean("accumulate_grads", false, "official-code gradient accumulation in the lower-level loops"),
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

impl Configure for BoRepConfig {
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
            ("period", Checked::Int(v)) => self.period = v,
            ("inner_steps", Checked::Int(v)) => self.inner_steps = v,
            ("radius", Checked::Real(v)) => self.radius = v,
            ("lower_output", Checked::Choice(i)) => {
                self.lower_output = if i == 0 {
                    LowerOutput::Average
                } else {
                    LowerOutput::Last
                };
            }
            ("warm_start", Checked::Choice(i)) => {
                self.warm_start = match i {
                    0 => WarmStart::EpochSgd,
                    1 => WarmStart::Plain,
                    _ => WarmStart::None,
                };
            }
            ("warm_epochs", Checked::Int(v)) => self.warm_epochs = v,
            ("warm_len", Checked::Int(v)) => self.warm_len = v,
            ("warm_lr", Checked::Real(v)) => self.warm_lr = v,
            ("warm_radius", Checked::Real(v)) => self.warm_radius = v,
            ("hypergrad_z", Checked::Choice(i)) => self.hypergrad_z = HypergradZ::from_index(i),
            ("z_init", Checked::Choice(i)) => self.z_init = ZInit::from_index(i),
            ("z_radius", Checked::Real(v)) => self.z_radius = v,
            ("norm_eps", Checked::Real(v)) => self.norm_eps = v,
            ("accumulate_grads", Checked::Bool(v)) => self.accumulate_grads = v,
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
            "period" => ParamValue::count(self.period),
            "inner_steps" => ParamValue::count(self.inner_steps),
            "radius" => Real(self.radius),
            "lower_output" => Str(LOWER_OUTPUT_CHOICES[self.lower_output as usize]),
            "warm_start" => Str(WARM_START_CHOICES[self.warm_start as usize]),
            "warm_epochs" => ParamValue::count(self.warm_epochs),
            "warm_len" => ParamValue::count(self.warm_len),
            "warm_lr" => Real(self.warm_lr),
            "warm_radius" => Real(self.warm_radius),
            "hypergrad_z" => Str(self.hypergrad_z.name()),
            "z_init" => Str(self.z_init.name()),
            "z_radius" => Real(self.z_radius),
            "norm_eps" => Real(self.norm_eps),
            "accumulate_grads" => Bool(self.accumulate_grads),
            "shared_upper_sample" => Bool(self.shared_upper_sample),
            "normalize" => Bool(self.normalize),
            _ => return None,
        })
    }
}

/// The BO-REP solver over buffers `BX` (dimension dx) and `BY` (dimension dy).
#[derive(Debug, Clone)]
pub struct BoRep<T, BX, BY> {
    cfg: BoRepConfig,
    upper: UpperHalf<T, BX, BY>,
    y: BY,
    y_init: BY,
    center: BY,
    u: BY,
    avg: BY,
    grad: BY,
    acc: BY,
    iter: u64,
    /// Iterations until the next lower-level update (t mod I = 0 exactly when
    /// this is 0; a countdown avoids a 64-bit division per step).
    until_lower: u64,
    initialized: bool,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> BoRep<T, BX, BY> {
    /// Validates `cfg` and builds the solver from starting points x_0 and
    /// y_init. The buffers are cloned here, never in the step loop.
    pub fn new(cfg: BoRepConfig, x0: BX, y0: BY) -> Result<Self, Error> {
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
        Ok(BoRep {
            cfg,
            upper: UpperHalf::new(settings, x0, &y0),
            center: zeros_like(&y0),
            u: zeros_like(&y0),
            avg: zeros_like(&y0),
            grad: zeros_like(&y0),
            acc: zeros_like(&y0),
            y_init: y0.clone(),
            y: y0,
            iter: 0,
            until_lower: 0,
            initialized: false,
        })
    }

    /// The configuration.
    pub const fn config(&self) -> &BoRepConfig {
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

    /// `steps` projected SGD steps on G(x, ·) from `self.y` with step `lr` on
    /// the ball B(y, radius); writes the average (or last) iterate to `self.y`.
    /// In the warm start (`WARM`), a stop request
    /// ([`Oracle::stop_requested`](crate::oracle::Oracle::stop_requested))
    /// ends the steps early (the average is over the steps taken).
    fn lower_sgd<O, R, const WARM: bool>(
        &mut self,
        oracle: &mut O,
        rng: &mut R,
        steps: u64,
        lr: T,
        radius: T,
        average: bool,
    ) where
        O: LowerGradY<T>,
        R: Rng + ?Sized,
    {
        if steps == 0 {
            return;
        }
        let x = self.upper.x.as_ref();
        copy(self.y.as_ref(), self.center.as_mut());
        copy(self.y.as_ref(), self.u.as_mut());
        fill(self.avg.as_mut(), T::ZERO);
        fill(self.acc.as_mut(), T::ZERO);
        let mut done = steps;
        for k in 0..steps {
            if WARM && oracle.stop_requested() {
                done = k;
                break;
            }
            let pi = oracle.sample(Level::Lower, rng);
            oracle.grad_y_g(x, self.u.as_ref(), &pi, self.grad.as_mut());
            sgd_update(
                self.u.as_mut(),
                self.grad.as_ref(),
                self.acc.as_mut(),
                lr,
                self.cfg.accumulate_grads,
            );
            project_ball(self.u.as_mut(), self.center.as_ref(), radius);
            if average {
                axpy(T::ONE, self.u.as_ref(), self.avg.as_mut());
            }
        }
        if average {
            if done > 0 {
                divide(self.avg.as_mut(), done as usize);
                copy(self.avg.as_ref(), self.y.as_mut());
            }
        } else {
            copy(self.u.as_ref(), self.y.as_mut());
        }
    }

    fn warm_start<O, R>(&mut self, oracle: &mut O, rng: &mut R)
    where
        O: LowerGradY<T>,
        R: Rng + ?Sized,
    {
        match self.cfg.warm_start {
            WarmStart::None => {}
            WarmStart::Plain => {
                let lr = T::from_f64(self.cfg.warm_lr);
                self.lower_sgd::<O, R, true>(
                    oracle,
                    rng,
                    self.cfg.warm_len,
                    lr,
                    T::from_f64(INF),
                    false,
                );
            }
            WarmStart::EpochSgd => {
                // Arithmetic in T: no f64 code on f32-only targets.
                let mut len = self.cfg.warm_len;
                let mut lr = T::from_f64(self.cfg.warm_lr);
                let mut radius = T::from_f64(self.cfg.warm_radius);
                let half = T::from_f64(0.5);
                let sqrt2 = T::from_f64(core::f64::consts::SQRT_2);
                for _ in 0..self.cfg.warm_epochs {
                    self.lower_sgd::<O, R, true>(oracle, rng, len, lr, radius, true);
                    len = len.saturating_mul(2);
                    lr *= half;
                    radius /= sqrt2;
                }
            }
        }
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SolverState<T> for BoRep<T, BX, BY> {
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

impl<T, BX, BY, O> Solver<T, O> for BoRep<T, BX, BY>
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
        self.until_lower = 0;
        self.warm_start(oracle, rng);
        self.initialized = true;
        Ok(())
    }

    fn step<R: Rng + ?Sized>(&mut self, oracle: &mut O, rng: &mut R) -> Result<(), Error> {
        if !self.initialized {
            return Err(Error::NotInitialized);
        }
        if self.until_lower == 0 {
            self.until_lower = self.cfg.period;
            let gamma = T::from_f64(self.cfg.gamma);
            let radius = T::from_f64(self.cfg.radius);
            let average = self.cfg.lower_output == LowerOutput::Average;
            self.lower_sgd::<O, R, false>(
                oracle,
                rng,
                self.cfg.inner_steps,
                gamma,
                radius,
                average,
            );
        }
        self.until_lower -= 1;
        let y = self.y.as_ref();
        self.upper.step(oracle, rng, self.iter, y, y);
        self.iter += 1;
        Ok(())
    }
}
