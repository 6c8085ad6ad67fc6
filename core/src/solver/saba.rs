//! SABA: SAGA variance reduction on the SOBA directions (Dagréou, Ablin,
//! Vaiter, Moreau, NeurIPS 2022), and the [`FiniteSum`] capability it needs.
//!
//! # Update rule
//!
//! For finite sums g = (1/n) Σ_i G_i and f = (1/m) Σ_j F_j, a memory table per
//! sample index holds the last value of each of the five SOBA components
//! (∇ᵧG_i, ∇²ᵧᵧG_i·z, ∇²ₓᵧG_i·z, ∇ᵧF_j, ∇ₓF_j). For a component with table
//! M[·] and running average A = (1/n) Σ M[·], a new value u at index i gives
//!
//! ```text
//! direction = u − M[i] + A;   A ← A + (u − M[i])/n;   M[i] ← u
//! ```
//! and then, with i and j drawn fresh each iteration by
//! [`FiniteSum::next_index`] (by default i ~ U{0..n−1}, j ~ U{0..m−1}; an
//! oracle may order them, as the runner's data `sampler` does), all
//! components at (x_t, y_t, z_t):
//!
//! ```text
//! y_{t+1} = y_t − ρ D_{∇ᵧG}
//! z_{t+1} = z_t − ρ (D_{HVP} − D_{∇ᵧF})
//! x_{t+1} = x_t − (ρ/r) (D_{∇ₓF} − D_{cross})
//! ```
//! with constant steps. Memory starts at zero (benchopt's
//! `mode_init_memory = "zero"`) or, with `full_init = true`, at the full
//! gradients at (x_0, y_0, z_0) (n + m passes, counted as oracle calls).
//!
//! # Requirements on the oracle
//!
//! [`UpperGradX`], [`UpperGradY`], [`LowerGradY`], [`LowerHvp`], [`CrossJvp`]
//! and [`FiniteSum`] (the sample of index i on each level). The SAGA tables
//! live in caller-supplied memory of at least
//! [`Saba::memory_needed`] = n(2dy + dx) + m(dy + dx) entries.
//!
//! # Defaults
//!
//! benchopt's `saba`: ρ = 0.1, outer ratio r = 1, batch of one index per level
//! and iteration. The SLIP repository's `saba.py` is not SABA (no memory; see
//! `algorithms.md` §5.10) and is not reproduced.
//!
//! # References
//!
//! Mathieu Dagréou, Pierre Ablin, Samuel Vaiter, Thomas Moreau. *A framework
//! for bilevel optimization that enables stochastic and global variance
//! reduction algorithms.* NeurIPS 2022.

use rand_core::Rng;

use super::common::{solver_config, FINITE, POS};
use super::{check_len, zeros_like, Buffer, Solver, SolverState};
use crate::kernels::{axpy, copy, fill};
use crate::oracle::{CrossJvp, Level, LowerGradY, LowerHvp, Oracle, UpperGradX, UpperGradY};
use crate::registry::Configure;
use crate::{random, Error, Real};

/// An oracle whose data are finite sums: each level has a fixed number of
/// samples, addressable by index (SAGA-type methods keep one memory entry
/// per index).
pub trait FiniteSum<T: Real>: Oracle<T> {
    /// The number of samples of the level (≥ 1).
    fn count(&self, level: Level) -> usize;
    /// The sample of index `i < count(level)`. Like [`Oracle::sample`] it
    /// draws a sample (by index, not at random): counters count it.
    fn sample_at(&mut self, level: Level, i: usize) -> Self::Sample;
    /// The index (`< count(level)`) of the next sample of the level a
    /// stochastic finite-sum solver (SABA, SRBA) takes. By default uniform
    /// with `rng` ([`random::below`]); an oracle whose data have their own
    /// order (shuffled passes, in order) overrides it and keeps that order
    /// in its own state. Choosing an index is not a sample (`sample_at`
    /// counts).
    fn next_index<R: Rng + ?Sized>(&mut self, level: Level, rng: &mut R) -> usize {
        random::below(rng, self.count(level) as u64) as usize
    }
}

/// Counting passes `FiniteSum` through; a sample taken by index counts as a
/// sample of its level (epochs are counted from samples), not as an oracle
/// call.
impl<T: Real, O: FiniteSum<T>> FiniteSum<T> for crate::Counted<O> {
    fn count(&self, level: Level) -> usize {
        self.inner().count(level)
    }
    fn sample_at(&mut self, level: Level, i: usize) -> Self::Sample {
        let c = self.counts_mut();
        match level {
            Level::Upper => c.samples_upper += 1,
            Level::Lower => c.samples_lower += 1,
        }
        self.inner_mut().sample_at(level, i)
    }
    fn next_index<R: Rng + ?Sized>(&mut self, level: Level, rng: &mut R) -> usize {
        self.inner_mut().next_index(level, rng)
    }
}

solver_config! {
    /// Hyperparameters of [`Saba`]; validated by [`Saba::new`] against [`INFO`].
    pub struct SabaConfig;
    info INFO {
        name: "saba",
        title: "SABA",
        summary: "SOBA with SAGA variance reduction on all five directions (finite sums, caller memory)",
        reference: "Dagréou, Ablin, Vaiter, Moreau. A framework for bilevel optimization that enables stochastic and global variance reduction algorithms. NeurIPS 2022",
        oracles: [GradXF, GradYF, GradYG, HvpYY, JvpXY],
    }
    step_size: f64 = 0.1, real(POS, FINITE, "> 0"), "ρ: step on y and z";
    outer_ratio: f64 = 1.0, real(POS, FINITE, "> 0"), "r: the x step is ρ/r";
    full_init: bool = false, boolean(), "initialise the memory with full gradients (else zeros)";
}

/// Offsets of the five tables inside the caller's memory.
#[derive(Debug, Clone, Copy)]
struct Tables {
    n: usize,
    m: usize,
    dx: usize,
    dy: usize,
}

impl Tables {
    const fn len(self) -> usize {
        self.n * (2 * self.dy + self.dx) + self.m * (self.dy + self.dx)
    }
    /// (offset, width) of component `c` at index `i`: 0 ∇ᵧG, 1 HVP, 2 cross,
    /// 3 ∇ᵧF, 4 ∇ₓF.
    const fn slot(self, c: usize, i: usize) -> (usize, usize) {
        let (n, m, dx, dy) = (self.n, self.m, self.dx, self.dy);
        match c {
            0 => (i * dy, dy),
            1 => (n * dy + i * dy, dy),
            2 => (2 * n * dy + i * dx, dx),
            3 => (n * (2 * dy + dx) + i * dy, dy),
            _ => (n * (2 * dy + dx) + m * dy + i * dx, dx),
        }
    }
}

/// The SABA solver over buffers `BX` (dx), `BY` (dy) and the SAGA memory `BM`.
#[derive(Debug, Clone)]
pub struct Saba<T, BX, BY, BM> {
    cfg: SabaConfig,
    x: BX,
    y: BY,
    z: BY,
    y_init: BY,
    /// Running averages: ∇ᵧG, HVP, ∇ᵧF (dy) and cross, ∇ₓF (dx).
    avg_y: [BY; 3],
    avg_x: [BX; 2],
    /// New values u and the directions, per component.
    new_y: [BY; 3],
    new_x: [BX; 2],
    memory: BM,
    tables: Tables,
    iter: u64,
    initialized: bool,
    _t: core::marker::PhantomData<T>,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>, BM: Buffer<T>> Saba<T, BX, BY, BM> {
    /// Entries of memory needed for `n` lower and `m` upper samples.
    pub const fn memory_needed(n: usize, m: usize, dx: usize, dy: usize) -> usize {
        Tables { n, m, dx, dy }.len()
    }

    /// Validates `cfg` and builds the solver for `n` lower and `m` upper
    /// samples from x_0, y_0 and the memory (checked against
    /// [`Saba::memory_needed`]).
    pub fn new(
        cfg: SabaConfig,
        x0: BX,
        y0: BY,
        memory: BM,
        n: usize,
        m: usize,
    ) -> Result<Self, Error> {
        cfg.validate()?;
        if n == 0 || m == 0 {
            return Err(Error::InvalidParam {
                name: "n",
                expected: "at least one sample on each level",
            });
        }
        let tables = Tables {
            n,
            m,
            dx: x0.as_ref().len(),
            dy: y0.as_ref().len(),
        };
        if memory.as_ref().len() < tables.len() {
            return Err(Error::InsufficientMemory {
                needed: tables.len(),
                found: memory.as_ref().len(),
            });
        }
        Ok(Saba {
            cfg,
            avg_y: [zeros_like(&y0), zeros_like(&y0), zeros_like(&y0)],
            avg_x: [zeros_like(&x0), zeros_like(&x0)],
            new_y: [zeros_like(&y0), zeros_like(&y0), zeros_like(&y0)],
            new_x: [zeros_like(&x0), zeros_like(&x0)],
            x: x0,
            z: zeros_like(&y0),
            y_init: y0.clone(),
            y: y0,
            memory,
            tables,
            iter: 0,
            initialized: false,
            _t: core::marker::PhantomData,
        })
    }

    /// The configuration.
    pub const fn config(&self) -> &SabaConfig {
        &self.cfg
    }

    /// The linear-system variable z.
    pub fn z(&self) -> &[T] {
        self.z.as_ref()
    }

    /// The last x direction D_{∇ₓF} − D_{cross}.
    pub fn direction(&self) -> &[T] {
        self.new_x[1].as_ref()
    }

    /// SAGA update of component `c` at index `i` with the new value in `u`:
    /// `u ← u − M[i] + A`, `A ← A + (u_new − M[i])/count`, `M[i] ← u_new`.
    fn saga(memory: &mut [T], avg: &mut [T], u: &mut [T], (off, w): (usize, usize), count: usize) {
        let inv = T::ONE / T::from_usize(count);
        let mem = &mut memory[off..off + w];
        for ((mi, ai), ui) in mem.iter_mut().zip(avg.iter_mut()).zip(u.iter_mut()) {
            let diff = *ui - *mi;
            *mi = *ui;
            *ui = diff + *ai;
            *ai += inv * diff;
        }
    }

    /// Evaluates the five components at indices (i, j) into `new_y`/`new_x`.
    fn evaluate<O>(&mut self, oracle: &mut O, i: usize, j: usize)
    where
        O: UpperGradX<T> + UpperGradY<T> + LowerGradY<T> + LowerHvp<T> + CrossJvp<T> + FiniteSum<T>,
    {
        let (si, sj) = (
            oracle.sample_at(Level::Lower, i),
            oracle.sample_at(Level::Upper, j),
        );
        let (x, y, z) = (self.x.as_ref(), self.y.as_ref(), self.z.as_ref());
        let [gy, hz, gyf] = &mut self.new_y;
        let [cross, gxf] = &mut self.new_x;
        let lower = (gy.as_mut(), hz.as_mut(), cross.as_mut());
        crate::oracle::grad_hvp_jvp(oracle, x, y, z, &si, lower);
        crate::oracle::grads_f(oracle, x, y, &sj, gxf.as_mut(), gyf.as_mut());
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>, BM: Buffer<T>> SolverState<T> for Saba<T, BX, BY, BM> {
    fn x(&self) -> &[T] {
        self.x.as_ref()
    }
    fn y(&self) -> &[T] {
        self.y.as_ref()
    }
    fn iter(&self) -> u64 {
        self.iter
    }
}

impl<T, BX, BY, BM, O> Solver<T, O> for Saba<T, BX, BY, BM>
where
    T: Real,
    BX: Buffer<T>,
    BY: Buffer<T>,
    BM: Buffer<T>,
    O: UpperGradX<T> + UpperGradY<T> + LowerGradY<T> + LowerHvp<T> + CrossJvp<T> + FiniteSum<T>,
{
    fn name(&self) -> &'static str {
        INFO.name
    }

    fn init<R: Rng + ?Sized>(&mut self, oracle: &mut O, _rng: &mut R) -> Result<(), Error> {
        check_len("x", self.x.as_ref().len(), oracle.dim_x())?;
        check_len("y", self.y.as_ref().len(), oracle.dim_y())?;
        check_len("lower samples", self.tables.n, oracle.count(Level::Lower))?;
        check_len("upper samples", self.tables.m, oracle.count(Level::Upper))?;
        copy(self.y_init.as_ref(), self.y.as_mut());
        fill(self.z.as_mut(), T::ZERO);
        fill(self.memory.as_mut(), T::ZERO);
        for a in &mut self.avg_y {
            fill(a.as_mut(), T::ZERO);
        }
        for a in &mut self.avg_x {
            fill(a.as_mut(), T::ZERO);
        }
        if self.cfg.full_init {
            let t = self.tables;
            for k in 0..t.n.max(t.m) {
                self.evaluate(oracle, k.min(t.n - 1), k.min(t.m - 1));
                let mem = self.memory.as_mut();
                if k < t.n {
                    for c in 0..2 {
                        let (off, w) = t.slot(c, k);
                        copy(self.new_y[c].as_ref(), &mut mem[off..off + w]);
                        axpy(
                            T::ONE / T::from_usize(t.n),
                            self.new_y[c].as_ref(),
                            self.avg_y[c].as_mut(),
                        );
                    }
                    let (off, w) = t.slot(2, k);
                    copy(self.new_x[0].as_ref(), &mut mem[off..off + w]);
                    axpy(
                        T::ONE / T::from_usize(t.n),
                        self.new_x[0].as_ref(),
                        self.avg_x[0].as_mut(),
                    );
                }
                if k < t.m {
                    let (off, w) = t.slot(3, k);
                    copy(self.new_y[2].as_ref(), &mut mem[off..off + w]);
                    axpy(
                        T::ONE / T::from_usize(t.m),
                        self.new_y[2].as_ref(),
                        self.avg_y[2].as_mut(),
                    );
                    let (off, w) = t.slot(4, k);
                    copy(self.new_x[1].as_ref(), &mut mem[off..off + w]);
                    axpy(
                        T::ONE / T::from_usize(t.m),
                        self.new_x[1].as_ref(),
                        self.avg_x[1].as_mut(),
                    );
                }
            }
        }
        self.iter = 0;
        self.initialized = true;
        Ok(())
    }

    fn step<R: Rng + ?Sized>(&mut self, oracle: &mut O, rng: &mut R) -> Result<(), Error> {
        if !self.initialized {
            return Err(Error::NotInitialized);
        }
        let t = self.tables;
        let i = oracle.next_index(Level::Lower, rng);
        let j = oracle.next_index(Level::Upper, rng);
        self.evaluate(oracle, i, j);
        let mem = self.memory.as_mut();
        for c in 0..2 {
            Self::saga(
                mem,
                self.avg_y[c].as_mut(),
                self.new_y[c].as_mut(),
                t.slot(c, i),
                t.n,
            );
        }
        Self::saga(
            mem,
            self.avg_x[0].as_mut(),
            self.new_x[0].as_mut(),
            t.slot(2, i),
            t.n,
        );
        Self::saga(
            mem,
            self.avg_y[2].as_mut(),
            self.new_y[2].as_mut(),
            t.slot(3, j),
            t.m,
        );
        Self::saga(
            mem,
            self.avg_x[1].as_mut(),
            self.new_x[1].as_mut(),
            t.slot(4, j),
            t.m,
        );
        let rho = T::from_f64(self.cfg.step_size);
        let gamma = T::from_f64(self.cfg.step_size / self.cfg.outer_ratio);
        axpy(-rho, self.new_y[0].as_ref(), self.y.as_mut());
        for ((zi, &h), &g) in self
            .z
            .as_mut()
            .iter_mut()
            .zip(self.new_y[1].as_ref())
            .zip(self.new_y[2].as_ref())
        {
            *zi -= rho * (h - g);
        }
        // x direction D_{∇ₓF} − D_{cross}, kept in new_x[1] for `direction`.
        let [cross, gxf] = &mut self.new_x;
        axpy(-T::ONE, cross.as_ref(), gxf.as_mut());
        axpy(-gamma, gxf.as_ref(), self.x.as_mut());
        self.iter += 1;
        Ok(())
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>, BM: Buffer<T>> crate::state::VisitState<T>
    for Saba<T, BX, BY, BM>
{
    /// The iterates, the five SAGA averages and their scratch, the memory
    /// tables (their sizes come from the build and are not state).
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, y, z, y_init; f64; u64; bool);
        let [a0, a1, a2] = &mut self.avg_y;
        v.reals("avg_y0", a0.as_mut());
        v.reals("avg_y1", a1.as_mut());
        v.reals("avg_y2", a2.as_mut());
        let [b0, b1] = &mut self.avg_x;
        v.reals("avg_x0", b0.as_mut());
        v.reals("avg_x1", b1.as_mut());
        let [c0, c1, c2] = &mut self.new_y;
        v.reals("new_y0", c0.as_mut());
        v.reals("new_y1", c1.as_mut());
        v.reals("new_y2", c2.as_mut());
        let [d0, d1] = &mut self.new_x;
        v.reals("new_x0", d0.as_mut());
        v.reals("new_x1", d1.as_mut());
        crate::state::visit!(self, v; reals memory; f64; u64 iter; bool initialized);
    }
}
