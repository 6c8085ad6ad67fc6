//! Joint oracle calls: every solver gives the same bits and the same call
//! counts whether its oracle declines the joint hooks (the default) or
//! serves them, and the solvers that evaluate two outputs at one point with
//! one sample do reach the hooks through [`Counted`].

use bilevel_core::oracle::{
    CrossJvp, Level, LowerGradX, LowerGradY, LowerHvp, Oracle, UpperGradX, UpperGradY,
};
use bilevel_core::registry::{ParamValue, SOLVERS};
use bilevel_core::solver::{AnySolver, SolverState, FINITE_SUM};
use bilevel_core::testing::{q3, tuned};
use bilevel_core::{run, Budget, Counted, DefaultRng};
use rand_core::{Rng, SeedableRng};

/// How often each joint hook served a call.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Served {
    grads_f: u64,
    hvp_jvp: u64,
    grad_hvp_jvp: u64,
}

/// Wraps an oracle and serves every joint hook by the inner separate calls,
/// in the reverse order of the fallback (so an order dependence would show).
#[derive(Debug, Clone)]
struct Joint<O> {
    inner: O,
    served: Served,
}

impl<O: Oracle<f64>> Oracle<f64> for Joint<O> {
    type Sample = O::Sample;
    fn dim_x(&self) -> usize {
        self.inner.dim_x()
    }
    fn dim_y(&self) -> usize {
        self.inner.dim_y()
    }
    fn sample<R: Rng + ?Sized>(&mut self, level: Level, rng: &mut R) -> Self::Sample {
        self.inner.sample(level, rng)
    }
}

impl<O: UpperGradX<f64> + UpperGradY<f64>> UpperGradX<f64> for Joint<O> {
    fn grad_x_f(&mut self, x: &[f64], y: &[f64], s: &O::Sample, out: &mut [f64]) {
        self.inner.grad_x_f(x, y, s, out);
    }
    fn try_grads_f(
        &mut self,
        x: &[f64],
        y: &[f64],
        s: &O::Sample,
        gx: &mut [f64],
        gy: &mut [f64],
    ) -> bool {
        self.served.grads_f += 1;
        self.inner.grad_y_f(x, y, s, gy);
        self.inner.grad_x_f(x, y, s, gx);
        true
    }
}
impl<O: UpperGradY<f64>> UpperGradY<f64> for Joint<O> {
    fn grad_y_f(&mut self, x: &[f64], y: &[f64], s: &O::Sample, out: &mut [f64]) {
        self.inner.grad_y_f(x, y, s, out);
    }
}
impl<O: LowerGradY<f64>> LowerGradY<f64> for Joint<O> {
    fn grad_y_g(&mut self, x: &[f64], y: &[f64], s: &O::Sample, out: &mut [f64]) {
        self.inner.grad_y_g(x, y, s, out);
    }
}
impl<O: LowerGradX<f64>> LowerGradX<f64> for Joint<O> {
    fn grad_x_g(&mut self, x: &[f64], y: &[f64], s: &O::Sample, out: &mut [f64]) {
        self.inner.grad_x_g(x, y, s, out);
    }
}
impl<O: LowerGradY<f64> + LowerHvp<f64> + CrossJvp<f64>> LowerHvp<f64> for Joint<O> {
    fn hvp_yy(&mut self, x: &[f64], y: &[f64], v: &[f64], s: &O::Sample, out: &mut [f64]) {
        self.inner.hvp_yy(x, y, v, s, out);
    }
    fn try_hvp_jvp(
        &mut self,
        x: &[f64],
        y: &[f64],
        v: &[f64],
        s: &O::Sample,
        (hv, jv): (&mut [f64], &mut [f64]),
    ) -> bool {
        self.served.hvp_jvp += 1;
        self.inner.jvp_xy(x, y, v, s, jv);
        self.inner.hvp_yy(x, y, v, s, hv);
        true
    }
    fn try_grad_hvp_jvp(
        &mut self,
        x: &[f64],
        y: &[f64],
        v: &[f64],
        s: &O::Sample,
        (gy, hv, jv): (&mut [f64], &mut [f64], &mut [f64]),
    ) -> bool {
        self.served.grad_hvp_jvp += 1;
        self.inner.jvp_xy(x, y, v, s, jv);
        self.inner.hvp_yy(x, y, v, s, hv);
        self.inner.grad_y_g(x, y, s, gy);
        true
    }
}
impl<O: CrossJvp<f64>> CrossJvp<f64> for Joint<O> {
    fn jvp_xy(&mut self, x: &[f64], y: &[f64], v: &[f64], s: &O::Sample, out: &mut [f64]) {
        self.inner.jvp_xy(x, y, v, s, out);
    }
}

/// Which hooks a solver must reach in 20 iterations (its paper's joint
/// evaluations), `None` when it has no joint evaluation at all.
fn expected(name: &str, shared: bool) -> (bool, bool, bool) {
    match name {
        "soba" => (true, false, true),
        "ma-soba" | "itd" | "anil" => (true, true, false),
        // ∇ₓf and ∇ᵧf at one point with one sample (issue 19's solvers too).
        "stocbio" | "aid-cg" | "aid-neumann" | "amigo" | "accbo" | "bsa" | "ttsa" | "alset"
        | "adambo" | "mrbo" | "sustain" | "vrbo" | "bome" => (true, false, false),
        "bo-rep" | "slip" => (shared, false, false),
        _ => (false, false, false),
    }
}

fn bits(s: &AnySolver<f64, Vec<f64>, Vec<f64>>) -> Vec<u64> {
    s.x().iter().chain(s.y()).map(|f| f.to_bits()).collect()
}

/// Every solver of [`AnySolver`], with and without a shared upper sample
/// where it has the option, on random seeds: joint hooks served or declined,
/// the same bits and the same counts; the hooks a solver's paper evaluates
/// jointly are reached.
#[test]
fn joint_hooks_keep_bits_and_counts_for_every_solver() {
    for info in SOLVERS {
        if FINITE_SUM.contains(&info.name) {
            continue;
        }
        let has_shared = info.params.iter().any(|p| p.name == "shared_upper_sample");
        for shared in [false, true] {
            if shared && !has_shared {
                continue;
            }
            let mut over: Vec<(&str, ParamValue<'_>)> = tuned::toy_overrides(info.name).to_vec();
            if shared {
                over.push(("shared_upper_sample", ParamValue::Bool(true)));
            }
            for seed in [3_u64, 17, 92] {
                let build = || {
                    AnySolver::<f64, Vec<f64>, Vec<f64>>::build(
                        info.name,
                        &over,
                        vec![0.1, -0.2],
                        vec![0.0; 2],
                    )
                    .unwrap()
                };
                let (mut a, mut b) = (build(), build());
                let mut plain = Counted::new(q3::<f64>(0.1));
                let mut joint = Counted::new(Joint {
                    inner: q3::<f64>(0.1),
                    served: Served::default(),
                });
                let budget = Budget::iters(20);
                let mut ra = DefaultRng::seed_from_u64(seed);
                let mut rb = DefaultRng::seed_from_u64(seed);
                run(&mut a, &mut plain, &mut ra, &budget, &mut ()).unwrap();
                run(&mut b, &mut joint, &mut rb, &budget, &mut ()).unwrap();
                let what = format!("{} shared={shared} seed={seed}", info.name);
                assert_eq!(bits(&a), bits(&b), "{what}: bits");
                assert_eq!(plain.counts(), joint.counts(), "{what}: counts");
                let served = joint.inner().served;
                let (gf, hj, ghj) = expected(info.name, shared);
                assert_eq!(served.grads_f > 0, gf, "{what}: {served:?}");
                assert_eq!(served.hvp_jvp > 0, hj, "{what}: {served:?}");
                assert_eq!(served.grad_hvp_jvp > 0, ghj, "{what}: {served:?}");
            }
        }
    }
}
