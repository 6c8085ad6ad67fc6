//! The stationarity metrics of benchopt's bilevel benchmark, for any spec:
//! `grad_phi_sq` = ‖∇Φ(x)‖² (benchopt's `value`) and `inner_distance` =
//! ‖y − y*(x)‖², both on the whole data (every row of the tables, the
//! noise-free mean of synthetic sources).
//!
//! Rule (docs/language.md "Stationarity metrics", docs/decisions.md 92):
//! 1. y*(x): Newton–CG on the whole-data g from the run's current y, until
//!    ‖∇ᵧg(x, ŷ)‖ ≤ tol (inexact Newton, forcing term min(0.5, ‖∇ᵧg‖);
//!    Armijo backtracking, a step also taken when g no longer changes beyond
//!    rounding and the gradient shrinks). A g quadratic in y is solved in
//!    one step up to the CG tolerance: the closed form y* = y − H⁻¹∇ᵧg.
//! 2. The adjoint: conjugate gradients on ∇²ᵧᵧg(x, ŷ) v = ∇ᵧf(x, ŷ) until
//!    ‖H v − ∇ᵧf‖ ≤ tol · max(1, ‖∇ᵧf‖).
//! 3. ∇Φ = ∇ₓf(x, ŷ) − ∇²ₓᵧg(x, ŷ) v.
//!
//! The caps ([`MAX_NEWTON`], [`max_cg`]) bound the work; a solve that does
//! not reach its tolerance within them is reported as not converged
//! (`converged == false`, with the residuals it reached), never silently.
//! The calls here are the evaluation's own: they are not the solver's
//! oracle calls and not in its budget.

use crate::compiled::Compiled;
use crate::data::Batch;

/// The metric name of ‖∇Φ(x)‖².
pub const GRAD_PHI_SQ: &str = "grad_phi_sq";
/// The metric name of ‖y − y*(x)‖².
pub const INNER_DISTANCE: &str = "inner_distance";
/// The built-in metric names `run { metrics = [...] }` accepts besides `let`s.
pub const BUILTIN_METRICS: &[&str] = &[GRAD_PHI_SQ, INNER_DISTANCE];
/// The default tolerance of both solves (`run { stationarity_tol }`).
pub const DEFAULT_TOL: f64 = 1e-9;
/// Newton steps of the lower solve at most.
pub const MAX_NEWTON: usize = 50;
/// Armijo constant of the line search.
const ARMIJO: f64 = 1e-4;
/// Halvings of the step at most.
const MAX_HALVINGS: usize = 40;

/// CG iterations of one solve at most: 10 per coordinate of y, in 100..=5000.
pub fn max_cg(dim_y: usize) -> usize {
    (10 * dim_y).clamp(100, 5000)
}

/// One evaluation of the stationarity metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Stationarity {
    /// ‖∇Φ(x)‖² (NaN when not asked for).
    pub grad_phi_sq: f64,
    /// ‖y − ŷ*(x)‖².
    pub inner_distance: f64,
    /// ‖∇ᵧg(x, ŷ*)‖ the lower solve reached.
    pub lower_grad: f64,
    /// ‖H v − ∇ᵧf‖ the adjoint solve reached (NaN when not asked for).
    pub adjoint_residual: f64,
    /// Both solves reached their tolerance within the caps.
    pub converged: bool,
    /// Whole-data sweeps of f and g (value, gradient or Hessian-vector
    /// products) this evaluation made.
    pub calls: u64,
    /// The tolerance used.
    pub tol: f64,
    /// ŷ*(x).
    pub y_star: Vec<f64>,
    /// ∇Φ(x) (empty when not asked for).
    pub grad_phi: Vec<f64>,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(p, q)| p * q).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// The data a solve runs on: the spec's oracle, x and the whole-data
/// batches, and the count of sweeps.
struct Solve<'a> {
    c: &'a mut Compiled,
    x: &'a [f64],
    lower: &'a Batch,
    calls: u64,
}

impl Solve<'_> {
    /// g and ∇ᵧg at y.
    fn grad(&mut self, y: &[f64], out: &mut [f64]) -> f64 {
        self.calls += 1;
        let zeros = vec![0.0; y.len()];
        self.c.lower_sweep(
            self.x,
            y,
            &zeros,
            self.lower,
            out,
            &mut [],
            &mut [],
            &mut [],
        )
    }

    /// ∇²ᵧᵧg·v at y.
    fn hvp(&mut self, y: &[f64], v: &[f64], out: &mut [f64]) {
        self.calls += 1;
        self.c
            .lower_sweep(self.x, y, v, self.lower, &mut [], out, &mut [], &mut []);
    }

    /// Conjugate gradients on ∇²ᵧᵧg(y) p = b from p = 0 until ‖Hp − b‖ ≤
    /// `tol` or `cap` iterations (or a direction of non-positive
    /// curvature); returns p and the residual norm reached.
    fn cg(&mut self, y: &[f64], b: &[f64], tol: f64, cap: usize) -> (Vec<f64>, f64) {
        let n = b.len();
        let mut p = vec![0.0; n];
        let mut r = b.to_vec();
        let mut d = r.clone();
        let mut hd = vec![0.0; n];
        let mut rr = dot(&r, &r);
        for _ in 0..cap {
            if rr.sqrt() <= tol {
                break;
            }
            self.hvp(y, &d, &mut hd);
            let dhd = dot(&d, &hd);
            if dhd.is_nan() || dhd <= 0.0 {
                break;
            }
            let alpha = rr / dhd;
            for i in 0..n {
                p[i] += alpha * d[i];
                r[i] -= alpha * hd[i];
            }
            let rr_new = dot(&r, &r);
            let beta = rr_new / rr;
            rr = rr_new;
            for i in 0..n {
                d[i] = r[i] + beta * d[i];
            }
        }
        (p, rr.sqrt())
    }

    /// Newton–CG from `y` until ‖∇ᵧg‖ ≤ tol; returns ŷ* and the gradient
    /// norm reached.
    fn lower_solve(&mut self, y: &[f64], tol: f64) -> (Vec<f64>, f64) {
        let n = y.len();
        let cap = max_cg(n);
        let mut y = y.to_vec();
        let mut gy = vec![0.0; n];
        let mut g = self.grad(&y, &mut gy);
        let mut gnorm = norm(&gy);
        for _ in 0..MAX_NEWTON {
            if gnorm.is_nan() || gnorm <= tol {
                break;
            }
            let minus: Vec<f64> = gy.iter().map(|v| -v).collect();
            let forcing = gnorm.min(0.5) * gnorm;
            let (mut p, _) = self.cg(&y, &minus, forcing.max(0.1 * tol), cap);
            let mut slope = dot(&gy, &p);
            if slope.is_nan() || slope >= 0.0 {
                // No descent direction from CG: steepest descent.
                p = minus;
                slope = -gnorm * gnorm;
            }
            let mut t = 1.0;
            let mut trial = vec![0.0; n];
            let mut g_trial = vec![0.0; n];
            let mut moved = false;
            for _ in 0..MAX_HALVINGS {
                for i in 0..n {
                    trial[i] = y[i] + t * p[i];
                }
                let v = self.grad(&trial, &mut g_trial);
                let tn = norm(&g_trial);
                let armijo = v <= g + ARMIJO * t * slope;
                let flat = (v - g).abs() <= 1e-12 * g.abs().max(1.0) && tn < gnorm;
                if v.is_finite() && (armijo || flat) {
                    (y, gy, g, gnorm) = (trial.clone(), g_trial.clone(), v, tn);
                    moved = true;
                    break;
                }
                t *= 0.5;
            }
            if !moved {
                break;
            }
        }
        (y, gnorm)
    }
}

impl Compiled {
    /// Which built-in stationarity metrics the spec's `run { metrics }`
    /// asks for: (`grad_phi_sq`, `inner_distance`).
    pub fn stationarity_requested(&self) -> (bool, bool) {
        let m = &self.program().spec.run.metrics;
        let has = |n: &str| m.iter().any(|s| s == n);
        (has(GRAD_PHI_SQ), has(INNER_DISTANCE))
    }

    /// The tolerance of the stationarity solves: `run { stationarity_tol }`
    /// or [`DEFAULT_TOL`].
    pub fn stationarity_tol(&self) -> f64 {
        self.program()
            .spec
            .run
            .stationarity_tol
            .unwrap_or(DEFAULT_TOL)
    }

    /// The stationarity metrics at (x, y) on the whole-data batches `upper`
    /// (f's) and `lower` (g's), to tolerance `tol`; ∇Φ only when
    /// `want_grad_phi`. See the module documentation for the rule.
    pub fn stationarity(
        &mut self,
        x: &[f64],
        y: &[f64],
        (upper, lower): (&Batch, &Batch),
        tol: f64,
        want_grad_phi: bool,
    ) -> Stationarity {
        let mut s = Solve {
            c: self,
            x,
            lower,
            calls: 0,
        };
        let (y_star, lower_grad) = s.lower_solve(y, tol);
        let mut converged = lower_grad <= tol;
        let inner_distance = y.iter().zip(&y_star).map(|(a, b)| (a - b) * (a - b)).sum();
        let (mut grad_phi_sq, mut adjoint_residual, mut grad_phi) =
            (f64::NAN, f64::NAN, Vec::new());
        if want_grad_phi {
            let mut fx = vec![0.0; x.len()];
            let mut fy = vec![0.0; y.len()];
            s.calls += 1;
            s.c.upper_grads(x, &y_star, upper, &mut fx, &mut fy);
            let target = tol * norm(&fy).max(1.0);
            let (v, res) = s.cg(&y_star, &fy, target, max_cg(y.len()));
            converged &= res <= target;
            let mut jv = vec![0.0; x.len()];
            s.calls += 1;
            s.c.lower_sweep(x, &y_star, &v, lower, &mut [], &mut [], &mut [], &mut jv);
            grad_phi = fx.iter().zip(&jv).map(|(a, b)| a - b).collect();
            grad_phi_sq = dot(&grad_phi, &grad_phi);
            adjoint_residual = res;
        }
        Stationarity {
            grad_phi_sq,
            inner_distance,
            lower_grad,
            adjoint_residual,
            converged,
            calls: s.calls,
            tol,
            y_star,
            grad_phi,
        }
    }
}
