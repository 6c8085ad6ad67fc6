//! The compiled oracle, built by the [pipeline](crate::pipeline) from a
//! [`Program`], which implements every oracle trait of `bilevel-core` with
//! heap buffers and `f64` arithmetic.

use std::path::Path;

use bilevel_core::oracle::{
    CrossJvp, Level, LowerGradX, LowerGradY, LowerHvp, LowerValue, Oracle, UpperGradX, UpperGradY,
    UpperValue,
};
use bilevel_core::random::{below, normal, uniform, DefaultRng};
use bilevel_core::solver::FiniteSum;
use rand_core::{Rng, SeedableRng};

use crate::ast::{Cmp, LevelKind};
use crate::backend::{ModelRegistry, Models};
use crate::data::{self, Batch, Loaded, SamplerState, SourceBatch, View};
use crate::diag::Diagnostic;
use crate::finite::FiniteSumLayout;
use crate::hir::{ExpectTarget, Init, Shape, Spec};
use crate::lower::{self, Bound};
use crate::tape::{Inputs, Mode, Op, Plan, Tape, VarKind, Workspace};

/// A checked, loaded and lowered spec.
#[derive(Debug, Clone)]
pub struct Program {
    /// The checked spec (dims bound to the data).
    pub spec: Spec,
    /// The loaded data.
    pub loaded: Loaded,
    /// Parameter values.
    pub params: Vec<Vec<f64>>,
    /// The certified strong-convexity modulus μ of g(x, ·) (or the assumed
    /// one), when there is one.
    pub mu: Option<f64>,
    /// λ_min of each parameter used in `quad`, by name.
    pub lambda_min: Vec<(String, f64)>,
    /// Warnings and notes of every phase.
    pub warnings: Vec<Diagnostic>,
    /// The tape of f.
    pub f: Tape,
    /// The tape of g.
    pub g: Tape,
    /// Length of x.
    pub dim_x: usize,
    /// Length of y.
    pub dim_y: usize,
    /// The model backends, by model index.
    pub models: Models,
}

fn seeded(seed: u64, salt: u64) -> DefaultRng {
    DefaultRng::seed_from_u64(bilevel_core::random::mix64(seed ^ salt))
}

/// Fills a buffer of `shape` from an initialiser.
pub(crate) fn init_values(
    init: &Init,
    shape: &Shape,
    spec: &Spec,
    params: &[Vec<f64>],
) -> Vec<f64> {
    let n = shape.len().unwrap_or(0);
    let (rows, cols) = shape.rows_cols();
    match init {
        Init::Zeros => vec![0.0; n],
        Init::Ones => vec![1.0; n],
        Init::Eye => (0..n)
            .map(|k| if k / cols == k % cols { 1.0 } else { 0.0 })
            .collect(),
        Init::Normal { std, seed } => {
            let mut rng = seeded(*seed, 1);
            (0..n).map(|_| std * normal(&mut rng)).collect()
        }
        Init::Uniform { low, high, seed } => {
            let mut rng = seeded(*seed, 2);
            (0..n)
                .map(|_| low + (high - low) * uniform(&mut rng))
                .collect()
        }
        Init::Glorot { seed } => {
            let fan = (rows + cols).max(1) as f64;
            let a = (6.0 / fan).sqrt();
            let mut rng = seeded(*seed, 3);
            (0..n)
                .map(|_| a * (2.0 * uniform(&mut rng) - 1.0))
                .collect()
        }
        Init::Spd { kappa, seed } => spd(rows, *kappa, *seed),
        Init::Expr(h) => {
            let bound = Bound {
                params,
                symmetric: &[],
            };
            let tape = lower::lower_expr(spec, &bound, h);
            let mut ws = Workspace::new(&tape);
            let batch = Batch {
                sources: Vec::new(),
            };
            let loaded = Loaded::default();
            let view = View {
                defs: &spec.data,
                loaded: &loaded,
                batch: &batch,
            };
            let inp = Inputs {
                x: &[],
                y: &[],
                v: &[],
                data: &view,
                models: &[],
            };
            tape.forward(&mut ws, &inp, Mode::VALUE, &mut Vec::new(), None);
            let v = ws.value(tape.output);
            if v.len() == n {
                v.to_vec()
            } else {
                vec![v.first().copied().unwrap_or(0.0); n]
            }
        }
    }
}

/// A random symmetric positive definite `n × n` matrix Q Λ Qᵀ with
/// eigenvalues log-spaced in [1/κ, 1] and Q a product of three random
/// Householder reflections (O(n²) to build).
pub fn spd(n: usize, kappa: f64, seed: u64) -> Vec<f64> {
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        let t = if n <= 1 {
            0.0
        } else {
            i as f64 / (n - 1) as f64
        };
        m[i * n + i] = kappa.powf(t - 1.0);
    }
    let mut rng = seeded(seed, 4);
    for _ in 0..3 {
        let mut u: Vec<f64> = (0..n).map(|_| normal(&mut rng)).collect();
        let norm = u.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm == 0.0 {
            continue;
        }
        for v in &mut u {
            *v /= norm;
        }
        // M ← (I − 2uuᵀ) M (I − 2uuᵀ) = M − 2uwᵀ − 2wuᵀ + 4(uᵀw)uuᵀ, w = Mu.
        let w: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| m[i * n + j] * u[j]).sum())
            .collect();
        let uw: f64 = u.iter().zip(&w).map(|(a, b)| a * b).sum();
        for i in 0..n {
            for j in 0..n {
                m[i * n + j] += -2.0 * u[i] * w[j] - 2.0 * w[i] * u[j] + 4.0 * uw * u[i] * u[j];
            }
        }
    }
    // Symmetrise exactly.
    for i in 0..n {
        for j in 0..i {
            let s = 0.5 * (m[i * n + j] + m[j * n + i]);
            m[i * n + j] = s;
            m[j * n + i] = s;
        }
    }
    m
}

/// The compiled oracle: f and g as tapes with workspaces, the data, and the
/// samplers. Implements every oracle trait of `bilevel-core` for `f64`.
#[derive(Debug, Clone)]
pub struct Compiled {
    program: Program,
    ws_f: Workspace,
    ws_g: Workspace,
    upper_sources: Vec<usize>,
    lower_sources: Vec<usize>,
    samplers: Vec<SamplerState>,
    ctx: Vec<usize>,
    zeros_y: Vec<f64>,
    /// Sweep plans per (upper?, mode, value wanted), built on first use.
    plans: Vec<(bool, Mode, bool, Plan)>,
    /// The run's named metrics: name, tape, workspace, whole-data batch.
    metrics: Vec<(String, Tape, Workspace, Batch)>,
    /// Task sampling for meta-learning: per data source, its rows by group,
    /// and the groups present in every source the objectives use.
    tasks: Option<Tasks>,
    /// Decline the joint hooks (every output its own sweep), for measuring
    /// what they save.
    separate_calls: bool,
    /// The finite-sum view, once [`Compiled::use_finite_sum`] accepted it.
    finite: Option<FiniteSumLayout>,
}

/// Rows by group, for drawing tasks.
#[derive(Debug, Clone)]
struct Tasks {
    /// Per data source (empty when unused): rows of each group.
    rows: Vec<Vec<Vec<usize>>>,
    /// Groups with rows in every used source.
    groups: Vec<usize>,
}

/// Every row of the tables in `used` (the noise-free mean of synthetic
/// ones); other sources unused.
fn whole_data(program: &Program, used: &[usize]) -> Batch {
    Batch {
        sources: (0..program.spec.data.len())
            .map(|i| {
                if !used.contains(&i) {
                    SourceBatch::Unused
                } else if let Some(Some(t)) = program.loaded.tables.get(i) {
                    SourceBatch::Rows((0..t.rows).collect())
                } else {
                    SourceBatch::Mean
                }
            })
            .collect(),
    }
}

fn sources_of(t: &Tape, out: &mut Vec<usize>) {
    for n in &t.nodes {
        if let Op::Reduce { data, body, .. } = &n.op {
            if !out.contains(data) {
                out.push(*data);
            }
            sources_of(body, out);
        }
    }
}

impl Compiled {
    /// Builds the oracle from a program.
    pub fn new(program: Program) -> Self {
        let mut upper_sources = Vec::new();
        sources_of(&program.f, &mut upper_sources);
        let mut lower_sources = Vec::new();
        sources_of(&program.g, &mut lower_sources);
        upper_sources.sort_unstable();
        lower_sources.sort_unstable();
        let samplers = program
            .loaded
            .tables
            .iter()
            .map(|t| SamplerState::new(t.as_ref().map_or(0, |t| t.rows)))
            .collect();
        let bound = Bound {
            params: &program.params,
            symmetric: &[],
        };
        let metrics = program
            .spec
            .run
            .metrics
            .iter()
            .filter_map(|name| {
                let (_, h) = program.spec.lets.iter().find(|(n, _)| n == name)?;
                let tape = lower::lower_expr(&program.spec, &bound, h);
                let mut used = Vec::new();
                sources_of(&tape, &mut used);
                let batch = whole_data(&program, &used);
                let ws = Workspace::new(&tape);
                Some((name.clone(), tape, ws, batch))
            })
            .collect();
        Compiled {
            metrics,
            tasks: None,
            separate_calls: false,
            finite: None,
            ws_f: Workspace::new(&program.f),
            ws_g: Workspace::new(&program.g),
            zeros_y: vec![0.0; program.dim_y],
            program,
            upper_sources,
            lower_sources,
            samplers,
            ctx: Vec::new(),
            plans: Vec::new(),
        }
    }

    /// Runs every phase and builds the oracle.
    pub fn from_source(src: &str, base: &Path) -> Result<Self, Vec<Diagnostic>> {
        crate::pipeline::build(src, base).map(Compiled::new)
    }

    /// [`Compiled::from_source`] with a registry of model backends.
    pub fn from_source_with(
        src: &str,
        base: &Path,
        registry: &dyn ModelRegistry,
    ) -> Result<Self, Vec<Diagnostic>> {
        crate::pipeline::build_with(src, base, Some(registry)).map(Compiled::new)
    }

    /// The program.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The initial x from the `init` clauses of the upper variables.
    pub fn initial_x(&self) -> Vec<f64> {
        self.initial(LevelKind::Upper)
    }

    /// The initial y from the `init` clauses of the lower variables.
    pub fn initial_y(&self) -> Vec<f64> {
        self.initial(LevelKind::Lower)
    }

    fn initial(&self, level: LevelKind) -> Vec<f64> {
        let s = &self.program.spec;
        let vars = match level {
            LevelKind::Upper => &s.upper,
            LevelKind::Lower => &s.lower,
        };
        vars.iter()
            .flat_map(
                |v| match (v.model.and_then(|m| self.program.models.0.get(m)), &v.init) {
                    (Some(b), Init::Glorot { seed }) => {
                        let mut theta = vec![0.0; b.num_params()];
                        b.init_params(*seed, &mut theta);
                        theta
                    }
                    _ => init_values(&v.init, &v.shape, s, &self.program.params),
                },
            )
            .collect()
    }

    /// A batch holding the population: every row of the tables and the
    /// noise-free mean of synthetic sources, for the given level.
    pub fn population(&self, level: Level) -> Batch {
        let used = match level {
            Level::Upper => &self.upper_sources,
            Level::Lower => &self.lower_sources,
        };
        whole_data(&self.program, used)
    }

    /// Switches task sampling on, for the meta-learning solvers: an
    /// upper-level sample is then one task, a group drawn uniformly, with a
    /// minibatch from that group's rows of every data source f and g use
    /// (without replacement within the group). Lower-level samples are
    /// drawn the same way.
    ///
    /// # Errors
    /// A data source used by f or g has no `group` column, or no group has
    /// rows in every such source.
    pub fn use_tasks(&mut self) -> Result<(), String> {
        let spec = &self.program.spec;
        let mut used: Vec<usize> = self.upper_sources.clone();
        used.extend(&self.lower_sources);
        used.sort_unstable();
        used.dedup();
        let mut rows = vec![Vec::new(); spec.data.len()];
        let mut groups: Option<Vec<usize>> = None;
        for &i in &used {
            let d = &spec.data[i];
            let (Some(_), Some(Some(t))) = (&d.group, self.program.loaded.tables.get(i)) else {
                return Err(format!(
                    "meta-learning draws tasks: data source `{}` needs a `group` column",
                    d.name
                ));
            };
            let mut by_group = vec![Vec::new(); t.group_names.len()];
            for (r, &g) in t.groups.iter().enumerate() {
                by_group[g as usize].push(r);
            }
            let present: Vec<usize> = (0..by_group.len())
                .filter(|&g| !by_group[g].is_empty())
                .collect();
            groups = Some(match groups {
                None => present,
                Some(prev) => prev.into_iter().filter(|g| present.contains(g)).collect(),
            });
            rows[i] = by_group;
        }
        let groups = groups.unwrap_or_default();
        if groups.is_empty() {
            return Err("meta-learning draws tasks: no group has rows in every data source".into());
        }
        self.tasks = Some(Tasks { rows, groups });
        Ok(())
    }

    /// The finite-sum view of both levels ([`FiniteSumLayout`]: one table
    /// per level, sample i the window of `batch` rows from row i), or why a
    /// level is not a finite sum over a table (the message names it).
    pub fn finite_sum_layout(&self) -> Result<FiniteSumLayout, String> {
        crate::finite::layout(&self.program)
    }

    /// Switches the finite-sum view on, for SAGA-type solvers: from then on
    /// [`FiniteSum::count`] is the number of rows of the table each level
    /// averages over (1 for a level without data) and
    /// [`FiniteSum::sample_at`] gives the window of `batch` rows starting at
    /// a row. Until then `count` is 0, so such a solver's `init` fails
    /// instead of running on a view that was never checked.
    ///
    /// # Errors
    /// A level is not a finite sum over one table (see
    /// [`Compiled::finite_sum_layout`]).
    pub fn use_finite_sum(&mut self) -> Result<FiniteSumLayout, String> {
        let l = self.finite_sum_layout()?;
        self.finite = Some(l.clone());
        Ok(l)
    }

    /// The data samplers' states (row order and position), one per data
    /// source: with the run's generator, all that later draws depend on.
    pub fn samplers(&self) -> &[SamplerState] {
        &self.samplers
    }

    /// The samplers' states, to restore them (one per data source).
    pub fn samplers_mut(&mut self) -> &mut [SamplerState] {
        &mut self.samplers
    }

    /// `true` when samples are tasks ([`Compiled::use_tasks`]).
    pub fn uses_tasks(&self) -> bool {
        self.tasks.is_some()
    }

    /// Names of the run's metrics (`run { metrics = [...] }`), in order.
    pub fn metric_names(&self) -> Vec<String> {
        self.metrics.iter().map(|m| m.0.clone()).collect()
    }

    /// The run's metrics at (x, y), each on the whole data it averages over.
    pub fn metrics(&mut self, x: &[f64], y: &[f64]) -> Vec<f64> {
        let program = &self.program;
        self.metrics
            .iter_mut()
            .map(|(_, tape, ws, batch)| {
                let view = View {
                    defs: &program.spec.data,
                    loaded: &program.loaded,
                    batch,
                };
                let inp = Inputs {
                    x,
                    y,
                    v: &[],
                    data: &view,
                    models: &program.models.0,
                };
                tape.forward(ws, &inp, Mode::VALUE, &mut Vec::new(), None);
                ws.value(tape.output).first().copied().unwrap_or(f64::NAN)
            })
            .collect()
    }

    /// Epochs per lower-level minibatch: the batch over the rows of the
    /// first table the lower objective averages over (0 without one). The
    /// papers' epochs are passes over the lower level's training data.
    pub fn epochs_per_lower_sample(&self) -> f64 {
        self.lower_sources
            .iter()
            .find_map(|&i| {
                let t = self.program.loaded.tables.get(i)?.as_ref()?;
                let b = (self.program.spec.data[i].batch as usize).min(t.rows);
                (t.rows > 0).then(|| b as f64 / t.rows as f64)
            })
            .unwrap_or(0.0)
    }

    fn plan_index(&mut self, upper: bool, mode: Mode, value: bool) -> usize {
        if let Some(k) = self
            .plans
            .iter()
            .position(|(u, m, v, _)| *u == upper && *m == mode && *v == value)
        {
            return k;
        }
        let tape = if upper {
            &self.program.f
        } else {
            &self.program.g
        };
        let plan = tape.plan(mode, value);
        self.plans.push((upper, mode, value, plan));
        self.plans.len() - 1
    }

    /// One sweep; returns the objective's value when `value` is set (NaN
    /// otherwise: gradient-only sweeps skip what the gradients do not need).
    #[allow(clippy::too_many_arguments)]
    fn sweep(
        &mut self,
        upper: bool,
        x: &[f64],
        y: &[f64],
        v: Option<&[f64]>,
        s: &Batch,
        mode: Mode,
        value: bool,
    ) -> f64 {
        let k = self.plan_index(upper, mode, value);
        let plan = &self.plans[k].3;
        let (tape, ws) = if upper {
            (&self.program.f, &mut self.ws_f)
        } else {
            (&self.program.g, &mut self.ws_g)
        };
        let view = View {
            defs: &self.program.spec.data,
            loaded: &self.program.loaded,
            batch: s,
        };
        let inp = Inputs {
            x,
            y,
            v: v.unwrap_or(&self.zeros_y),
            data: &view,
            models: &self.program.models.0,
        };
        self.ctx.clear();
        tape.forward(ws, &inp, mode, &mut self.ctx, Some(plan));
        if mode.wrt_x || mode.wrt_y {
            tape.reverse(ws, &inp, mode, &mut self.ctx, 1.0, Some(plan));
        }
        if value {
            ws.value(tape.output).first().copied().unwrap_or(f64::NAN)
        } else {
            f64::NAN
        }
    }

    fn read(&self, upper: bool, kind: VarKind, second: bool, out: &mut [f64]) {
        let (tape, ws) = if upper {
            (&self.program.f, &self.ws_f)
        } else {
            (&self.program.g, &self.ws_g)
        };
        // The usual case, one live variable node of `kind` covering `out`:
        // one pass of `0 + v` (the bits of zeroing, then adding).
        let live = |i: usize| {
            if second {
                ws.adjoint_tangent_live(i)
            } else {
                ws.adjoint_live(i)
            }
        };
        let mut vars = tape
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| matches!(n.op, Op::Var(k, _) if k == kind) && live(*i));
        if let (Some((i, n)), None) = (vars.next(), vars.next()) {
            let src = if second {
                ws.adjoint_tangent(i)
            } else {
                ws.adjoint(i)
            };
            if matches!(n.op, Op::Var(_, 0)) && src.len() == out.len() {
                for (o, v) in out.iter_mut().zip(src) {
                    *o = 0.0 + v;
                }
                return;
            }
        }
        out.fill(0.0);
        for (i, n) in tape.nodes.iter().enumerate() {
            if let Op::Var(k, off) = n.op {
                if k != kind {
                    continue;
                }
                let live = if second {
                    ws.adjoint_tangent_live(i)
                } else {
                    ws.adjoint_live(i)
                };
                if !live {
                    continue;
                }
                let src = if second {
                    ws.adjoint_tangent(i)
                } else {
                    ws.adjoint(i)
                };
                for (o, v) in out[off..off + src.len()].iter_mut().zip(src) {
                    *o += v;
                }
            }
        }
    }

    fn grad(
        &mut self,
        upper: bool,
        wrt: VarKind,
        x: &[f64],
        y: &[f64],
        s: &Batch,
        out: &mut [f64],
    ) {
        let mode = Mode {
            tangent: false,
            wrt_x: wrt == VarKind::X,
            wrt_y: wrt == VarKind::Y,
            second: false,
            first: true,
        };
        self.sweep(upper, x, y, None, s, mode, false);
        self.read(upper, wrt, false, out);
    }

    /// One forward-over-reverse sweep of g seeded with ẏ = v; writes
    /// ∇ᵧg, ∇²ᵧᵧg·v, ∇ₓg and ∇²ₓᵧg·v (any of them may be skipped with an
    /// empty slice) and returns g.
    #[allow(clippy::too_many_arguments)]
    pub fn lower_sweep(
        &mut self,
        x: &[f64],
        y: &[f64],
        v: &[f64],
        s: &Batch,
        grad_y: &mut [f64],
        hvp_yy: &mut [f64],
        grad_x: &mut [f64],
        jvp_xy: &mut [f64],
    ) -> f64 {
        let mode = Mode {
            tangent: true,
            wrt_x: !grad_x.is_empty() || !jvp_xy.is_empty(),
            wrt_y: !grad_y.is_empty() || !hvp_yy.is_empty(),
            second: !hvp_yy.is_empty() || !jvp_xy.is_empty(),
            first: !grad_y.is_empty() || !grad_x.is_empty(),
        };
        let g = self.sweep(false, x, y, Some(v), s, mode, true);
        if !grad_y.is_empty() {
            self.read(false, VarKind::Y, false, grad_y);
        }
        if !hvp_yy.is_empty() {
            self.read(false, VarKind::Y, true, hvp_yy);
        }
        if !grad_x.is_empty() {
            self.read(false, VarKind::X, false, grad_x);
        }
        if !jvp_xy.is_empty() {
            self.read(false, VarKind::X, true, jvp_xy);
        }
        g
    }

    /// With `true`, the oracle declines the joint hooks, so every output is
    /// its own sweep as before the joint calls (the outputs are the same to
    /// rounding; only the work differs). Default `false`.
    pub fn set_separate_calls(&mut self, separate: bool) {
        self.separate_calls = separate;
    }

    /// One forward and one reverse sweep of f for both gradients: ∇ₓf into
    /// `gx`, ∇ᵧf into `gy` (the joint hook of [`bilevel_core::oracle::grads_f`]).
    pub fn upper_grads(&mut self, x: &[f64], y: &[f64], s: &Batch, gx: &mut [f64], gy: &mut [f64]) {
        let mode = Mode {
            tangent: false,
            wrt_x: true,
            wrt_y: true,
            second: false,
            first: true,
        };
        self.sweep(true, x, y, None, s, mode, false);
        self.read(true, VarKind::X, false, gx);
        self.read(true, VarKind::Y, false, gy);
    }

    /// One forward-over-reverse sweep of g seeded with ẏ = v for
    /// ∇²ᵧᵧg·v (`hv`), ∇²ₓᵧg·v (`jv`) and, when `gy` is given, ∇ᵧg: the
    /// joint hooks of [`bilevel_core::oracle::hvp_jvp`] and
    /// [`bilevel_core::oracle::grad_hvp_jvp`]. Unlike [`Compiled::lower_sweep`]
    /// it skips the value.
    #[allow(clippy::too_many_arguments)]
    pub fn lower_products(
        &mut self,
        x: &[f64],
        y: &[f64],
        v: &[f64],
        s: &Batch,
        gy: Option<&mut [f64]>,
        hv: &mut [f64],
        jv: &mut [f64],
    ) {
        let mode = Mode {
            tangent: true,
            wrt_x: true,
            wrt_y: true,
            second: true,
            first: gy.is_some(),
        };
        self.sweep(false, x, y, Some(v), s, mode, false);
        if let Some(gy) = gy {
            self.read(false, VarKind::Y, false, gy);
        }
        self.read(false, VarKind::Y, true, hv);
        self.read(false, VarKind::X, true, jv);
    }

    /// The upper objective on the population (noise-free for synthetic
    /// sources): the `F` of `expect` blocks.
    pub fn f_population(&mut self, x: &[f64], y: &[f64]) -> f64 {
        let b = self.population(Level::Upper);
        self.sweep(true, x, y, None, &b, Mode::VALUE, true)
    }

    /// Checks the spec's `expect` block at (x, y).
    pub fn check_expectations(&mut self, x: &[f64], y: &[f64]) -> Vec<ExpectOutcome> {
        let spec = self.program.spec.clone();
        let (xo, yo, _, _) = lower::layout(&spec);
        let mut out = Vec::new();
        let mut stationarity = None;
        for e in &spec.expects {
            let mut converged = true;
            let actual: Vec<f64> = match e.target {
                ExpectTarget::Var(LevelKind::Upper, i) => {
                    let n = spec.upper[i].shape.len().unwrap_or(0);
                    x[xo[i]..xo[i] + n].to_vec()
                }
                ExpectTarget::Var(LevelKind::Lower, i) => {
                    let n = spec.lower[i].shape.len().unwrap_or(0);
                    y[yo[i]..yo[i] + n].to_vec()
                }
                ExpectTarget::F => vec![self.f_population(x, y)],
                ExpectTarget::Mu => vec![self.program.mu.unwrap_or(0.0)],
                ExpectTarget::GradPhiSq | ExpectTarget::InnerDistance => {
                    let s: &crate::stationarity::Stationarity =
                        stationarity.get_or_insert_with(|| {
                            let up = self.population(Level::Upper);
                            let lo = self.population(Level::Lower);
                            let tol = self.stationarity_tol();
                            self.stationarity(x, y, (&up, &lo), tol, true)
                        });
                    converged = s.converged;
                    vec![if e.target == ExpectTarget::GradPhiSq {
                        s.grad_phi_sq
                    } else {
                        s.inner_distance
                    }]
                }
            };
            let ok = converged
                && actual.len() == e.values.len()
                && actual.iter().zip(&e.values).all(|(a, w)| match e.cmp {
                    Cmp::Approx => (a - w).abs() <= e.tol,
                    Cmp::Ge => *a >= *w - e.tol,
                    Cmp::Le => *a <= *w + e.tol,
                });
            out.push(ExpectOutcome {
                text: e.text.clone(),
                expected: e.values.clone(),
                actual,
                ok,
            });
        }
        out
    }
}

/// The outcome of one expectation.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectOutcome {
    /// The target as written.
    pub text: String,
    /// Expected values.
    pub expected: Vec<f64>,
    /// Actual values.
    pub actual: Vec<f64>,
    /// Whether it holds.
    pub ok: bool,
}

impl Oracle<f64> for Compiled {
    /// A minibatch for every data source of the level.
    type Sample = Batch;

    fn dim_x(&self) -> usize {
        self.program.dim_x
    }
    fn dim_y(&self) -> usize {
        self.program.dim_y
    }
    fn sample<R: Rng + ?Sized>(&mut self, level: Level, rng: &mut R) -> Batch {
        if let Some(t) = &self.tasks {
            let defs = &self.program.spec.data;
            let g = t.groups[below(rng, t.groups.len() as u64) as usize];
            let mut sources = vec![SourceBatch::Unused; defs.len()];
            for (i, by_group) in t.rows.iter().enumerate() {
                let Some(pool) = by_group.get(g) else {
                    continue;
                };
                let b = (defs[i].batch as usize).min(pool.len());
                // Partial Fisher–Yates over the group's rows.
                let mut p = pool.clone();
                for k in 0..b {
                    let j = k + below(rng, (p.len() - k) as u64) as usize;
                    p.swap(k, j);
                }
                p.truncate(b);
                sources[i] = SourceBatch::Rows(p);
            }
            return Batch { sources };
        }
        let used = match level {
            Level::Upper => &self.upper_sources,
            Level::Lower => &self.lower_sources,
        };
        let defs = &self.program.spec.data;
        let mut sources = vec![SourceBatch::Unused; defs.len()];
        for &i in used {
            let table = self.program.loaded.tables.get(i).and_then(Option::as_ref);
            sources[i] = data::draw(&defs[i], table, &mut self.samplers[i], rng);
        }
        Batch { sources }
    }
}

impl FiniteSum<f64> for Compiled {
    /// 0 until [`Compiled::use_finite_sum`] accepted the spec.
    fn count(&self, level: Level) -> usize {
        self.finite.as_ref().map_or(0, |f| f.level(level).count())
    }
    fn sample_at(&mut self, level: Level, i: usize) -> Batch {
        let n = self.program.spec.data.len();
        match &self.finite {
            Some(f) => f.level(level).sample(n, i),
            None => Batch {
                sources: vec![SourceBatch::Unused; n],
            },
        }
    }
    /// The level's table's `sampler` orders the sample indices (the window
    /// starts): `replace` uniform (the core's default rule), `sequential`
    /// 0, 1, …, `shuffle` a fresh permutation of 0..n per pass, drawn with
    /// `rng`; the order and position are the source's sampler state (in the
    /// checkpoint). A level without data has its one sample, drawn as the
    /// core's default does.
    fn next_index<R: Rng + ?Sized>(&mut self, level: Level, rng: &mut R) -> usize {
        let l = self.finite.as_ref().map(|f| f.level(level));
        match l.and_then(|l| l.source.map(|d| (d, l.rows))) {
            Some((d, rows)) => {
                let sampler = self.program.spec.data[d].sampler;
                data::next_row(sampler, &mut self.samplers[d], rows, rng)
            }
            None => below(rng, self.count(level) as u64) as usize,
        }
    }
}

impl UpperGradX<f64> for Compiled {
    fn grad_x_f(&mut self, x: &[f64], y: &[f64], s: &Batch, out: &mut [f64]) {
        self.grad(true, VarKind::X, x, y, s, out);
    }
    /// Served by [`Compiled::upper_grads`] (one sweep of f) unless
    /// [`Compiled::set_separate_calls`] turned the joint hooks off.
    fn try_grads_f(
        &mut self,
        x: &[f64],
        y: &[f64],
        s: &Batch,
        gx: &mut [f64],
        gy: &mut [f64],
    ) -> bool {
        if self.separate_calls {
            return false;
        }
        self.upper_grads(x, y, s, gx, gy);
        true
    }
}
impl UpperGradY<f64> for Compiled {
    fn grad_y_f(&mut self, x: &[f64], y: &[f64], s: &Batch, out: &mut [f64]) {
        self.grad(true, VarKind::Y, x, y, s, out);
    }
}
impl LowerGradY<f64> for Compiled {
    fn grad_y_g(&mut self, x: &[f64], y: &[f64], s: &Batch, out: &mut [f64]) {
        self.grad(false, VarKind::Y, x, y, s, out);
    }
}
impl LowerGradX<f64> for Compiled {
    fn grad_x_g(&mut self, x: &[f64], y: &[f64], s: &Batch, out: &mut [f64]) {
        self.grad(false, VarKind::X, x, y, s, out);
    }
}
impl LowerHvp<f64> for Compiled {
    fn hvp_yy(&mut self, x: &[f64], y: &[f64], v: &[f64], s: &Batch, out: &mut [f64]) {
        let mode = Mode {
            tangent: true,
            wrt_x: false,
            wrt_y: true,
            second: true,
            first: false,
        };
        self.sweep(false, x, y, Some(v), s, mode, false);
        self.read(false, VarKind::Y, true, out);
    }
    /// Served by [`Compiled::lower_products`] (one sweep of g).
    fn try_hvp_jvp(
        &mut self,
        x: &[f64],
        y: &[f64],
        v: &[f64],
        s: &Batch,
        (hv, jv): (&mut [f64], &mut [f64]),
    ) -> bool {
        if self.separate_calls {
            return false;
        }
        self.lower_products(x, y, v, s, None, hv, jv);
        true
    }
    /// Served by [`Compiled::lower_products`] (one sweep of g).
    fn try_grad_hvp_jvp(
        &mut self,
        x: &[f64],
        y: &[f64],
        v: &[f64],
        s: &Batch,
        (gy, hv, jv): (&mut [f64], &mut [f64], &mut [f64]),
    ) -> bool {
        if self.separate_calls {
            return false;
        }
        self.lower_products(x, y, v, s, Some(gy), hv, jv);
        true
    }
}

impl CrossJvp<f64> for Compiled {
    fn jvp_xy(&mut self, x: &[f64], y: &[f64], v: &[f64], s: &Batch, out: &mut [f64]) {
        let mode = Mode {
            tangent: true,
            wrt_x: true,
            wrt_y: false,
            second: true,
            first: false,
        };
        self.sweep(false, x, y, Some(v), s, mode, false);
        self.read(false, VarKind::X, true, out);
    }
}
impl UpperValue<f64> for Compiled {
    fn f_value(&mut self, x: &[f64], y: &[f64], s: &Batch) -> f64 {
        self.sweep(true, x, y, None, s, Mode::VALUE, true)
    }
}
impl LowerValue<f64> for Compiled {
    fn g_value(&mut self, x: &[f64], y: &[f64], s: &Batch) -> f64 {
        self.sweep(false, x, y, None, s, Mode::VALUE, true)
    }
}
