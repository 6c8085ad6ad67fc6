//! Many runs of one problem — every solver × seed — in parallel across
//! cores. Each job owns its oracle, solver and RNG (seeded from the job's
//! seed), so its result does not depend on the thread count or on the order
//! in which jobs finish; results come back in job order.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use rayon::prelude::*;

/// One run of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Solver registry name.
    pub solver: String,
    /// Seed of the run's RNG.
    pub seed: u64,
    /// The run folder.
    pub out: PathBuf,
}

/// The jobs of `solvers × seeds` (seeds `base_seed..base_seed + seeds`),
/// with run folders `<out>/<solver>-s<seed>`.
pub fn jobs(solvers: &[String], base_seed: u64, seeds: u64, out: &std::path::Path) -> Vec<Job> {
    let mut v = Vec::new();
    for s in solvers {
        for k in 0..seeds {
            let seed = base_seed + k;
            v.push(Job {
                solver: s.clone(),
                seed,
                out: out.join(format!("{s}-s{seed}")),
            });
        }
    }
    v
}

/// Runs `f` on every job on a pool of `threads` threads (0: one per core).
/// Results are in job order; a failed job does not stop the others.
pub fn run_jobs<T, F>(jobs: &[Job], threads: usize, f: F) -> Result<Vec<Result<T>>>
where
    T: Send,
    F: Fn(&Job) -> Result<T> + Sync,
{
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("cannot start the worker threads")?;
    Ok(pool.install(|| jobs.par_iter().map(&f).collect()))
}

/// The process-wide stop flag, set by Ctrl-C, SIGTERM or SIGHUP: runs stop
/// at the next iteration and still write their trace and summary. A second
/// signal ends the process at once ([`crate::signals`]).
pub fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    crate::signals::install()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use anyhow::anyhow;
    use bilevel_core::solver::{BoRep, BoRepConfig, Slip, SlipConfig};
    use bilevel_core::testing::toy;
    use bilevel_core::{Budget, Counted, DefaultRng};
    use rand_core::SeedableRng;

    use super::*;
    use crate::session::{observe_run, Evaluate, ProgressMode, RunSummary, SessionOptions};

    struct Dist;
    impl Evaluate for Dist {
        fn metric_names(&self) -> Vec<String> {
            vec!["dist".into()]
        }
        fn evaluate(&mut self, x: &[f64], _y: &[f64]) -> Vec<f64> {
            vec![bilevel_core::kernels::dist(
                x,
                &[2120.0 / 2729.0, -3900.0 / 2729.0],
            )]
        }
    }

    fn one(job: &Job) -> Result<RunSummary> {
        let opts = SessionOptions {
            out: job.out.clone(),
            eval_every: 50,
            budget: Budget::iters(300),
            progress: ProgressMode::Quiet,
            stop: Arc::new(AtomicBool::new(false)),
            plots: false,
            watch: None,
        };
        let mut o = Counted::new(toy::<f64>(0.035));
        let mut rng = DefaultRng::seed_from_u64(job.seed);
        match job.solver.as_str() {
            "bo-rep" => {
                let cfg = BoRepConfig {
                    eta: 0.01,
                    gamma: 0.3,
                    nu: 0.3,
                    ..BoRepConfig::default()
                };
                let mut s = BoRep::new(cfg, [0.0; 2], [0.0; 2])?;
                observe_run(&mut s, &mut o, Dist, &mut rng, job.seed, &opts)
            }
            "slip" => {
                let cfg = SlipConfig {
                    eta: 0.01,
                    gamma: 0.3,
                    nu: 0.3,
                    ..SlipConfig::default()
                };
                let mut s = Slip::new(cfg, [0.0; 2], [0.0; 2])?;
                observe_run(&mut s, &mut o, Dist, &mut rng, job.seed, &opts)
            }
            other => Err(anyhow!("unknown solver {other}")),
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let dir = tempfile::tempdir().unwrap();
        let solvers = vec!["bo-rep".to_string(), "slip".to_string(), "nope".to_string()];
        let js = jobs(&solvers, 10, 3, &dir.path().join("a"));
        assert_eq!(js.len(), 9);
        assert_eq!(js[4].out, dir.path().join("a").join("slip-s11"));
        let a = run_jobs(&js, 1, one).unwrap();
        let js2 = jobs(&solvers, 10, 3, &dir.path().join("b"));
        let b = run_jobs(&js2, 2, one).unwrap();
        for (ra, rb) in a.iter().zip(&b) {
            match (ra, rb) {
                (Ok(x), Ok(y)) => {
                    assert_eq!(
                        x.x.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        y.x.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                    );
                    assert_eq!(
                        (x.seed, &x.solver, x.oracle_calls),
                        (y.seed, &y.solver, y.oracle_calls)
                    );
                }
                (Err(_), Err(_)) => {}
                _ => panic!("one thread count failed where the other did not"),
            }
        }
        assert!(a[6].is_err() && a[0].is_ok());
    }
}
