//! The finite-sum view of a compiled spec ([`FiniteSum`] on `Compiled`):
//! for random tables (row counts, minibatch sizes larger and smaller than
//! the table, random values), the average over every sample index of each
//! oracle output on sample i equals the output on the whole table (the
//! population batch, computed independently of the view), for f, g and all
//! their derivatives; without `use_finite_sum` the view has no samples.
//! The sample indices SABA and SRBA draw (`next_index`) follow the source's
//! `sampler`: passes over fresh permutations, 0, 1, 2, … without the
//! generator, or uniform draws equal to the core's default rule.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use bilevel_core::oracle::{
    CrossJvp, Level, LowerGradX, LowerGradY, LowerHvp, LowerValue, UpperGradX, UpperGradY,
    UpperValue,
};
use bilevel_core::random::below;
use bilevel_core::solver::FiniteSum;
use bilevel_core::DefaultRng;
use bilevel_dsl::Compiled;
use proptest::prelude::*;
use rand_core::{Rng, SeedableRng};

static CASE: AtomicUsize = AtomicUsize::new(0);

fn table_dir(rows: &[[f64; 3]]) -> PathBuf {
    let k = CASE.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("bilevel-finite-{}-{k}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut csv = String::from("a,b,y\n");
    for r in rows {
        let _ = writeln!(csv, "{:?},{:?},{}", r[0], r[1], u8::from(r[2] > 0.0));
    }
    std::fs::write(dir.join("d.csv"), csv).unwrap();
    dir
}

fn spec(batch: usize) -> String {
    spec_with(batch, "shuffle")
}

fn spec_with(batch: usize, sampler: &str) -> String {
    format!(
        "bilevel \"fs\" version 1\n\
         data d = csv(\"d.csv\") {{ header = true, label = \"y\", label_encoding = pm1, features = [\"a\", \"b\"], batch = {batch}, sampler = {sampler}, seed = 3 }}\n\
         dims {{ n = d.rows }}\n\
         upper {{ var x: vector[n] init zeros\n\
           minimize 2.0 * mean over s in d {{ 0.5 * (dot(y, s.x) - s.y)^2 }} + 0.25 * norm2sq(x) }}\n\
         lower {{ var y: vector[2] init zeros\n\
           minimize mean over s in d {{ sigmoid(x[s.index]) * logistic_loss(dot(y, s.x), s.y) }} + 0.5 * 0.1 * norm2sq(y) - mean over t in d {{ 0.01 * dot(y, t.x) }} }}\n"
    )
}

fn close(a: &[f64], b: &[f64], what: &str) -> Result<(), TestCaseError> {
    for (u, v) in a.iter().zip(b) {
        prop_assert!(
            (u - v).abs() <= 1e-11 * (1.0 + v.abs()),
            "{what}: {a:?} vs {b:?}"
        );
    }
    Ok(())
}

/// Every oracle output at (x, y, v) on batch `s`, concatenated.
fn outputs(c: &mut Compiled, x: &[f64], y: &[f64], v: &[f64], s: &bilevel_dsl::Batch) -> Vec<f64> {
    let (dx, dy) = (x.len(), y.len());
    let mut out = Vec::new();
    let mut gx = vec![0.0; dx];
    let mut gy = vec![0.0; dy];
    c.grad_x_f(x, y, s, &mut gx);
    out.extend(&gx);
    c.grad_y_f(x, y, s, &mut gy);
    out.extend(&gy);
    c.grad_y_g(x, y, s, &mut gy);
    out.extend(&gy);
    c.grad_x_g(x, y, s, &mut gx);
    out.extend(&gx);
    c.hvp_yy(x, y, v, s, &mut gy);
    out.extend(&gy);
    c.jvp_xy(x, y, v, s, &mut gx);
    out.extend(&gx);
    out.push(c.f_value(x, y, s));
    out.push(c.g_value(x, y, s));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn the_average_over_samples_is_the_whole_table(
        rows in prop::collection::vec(prop::array::uniform3(-2.0f64..2.0), 1..24),
        batch in 1usize..30,
        point in prop::collection::vec(-1.5f64..1.5, 4),
    ) {
        let dir = table_dir(&rows);
        let mut c = Compiled::from_source(&spec(batch), &dir).unwrap();
        prop_assert_eq!(c.count(Level::Lower), 0, "no view before use_finite_sum");
        let layout = c.use_finite_sum().unwrap();
        let n = rows.len();
        prop_assert_eq!(c.count(Level::Lower), n);
        prop_assert_eq!(c.count(Level::Upper), n);
        prop_assert_eq!(layout.lower.window, batch.min(n));
        let x: Vec<f64> = (0..n).map(|i| point[0] * (i as f64 * 0.37).sin()).collect();
        let y = vec![point[1], point[2]];
        let v = vec![point[3], -0.5];
        // Independent reference: the population batch (every row once).
        let whole = c.population(Level::Upper);
        let want = outputs(&mut c, &x, &y, &v, &whole);
        let mut sum = vec![0.0; want.len()];
        for i in 0..n {
            let s = c.sample_at(Level::Lower, i);
            prop_assert_eq!(&s, &c.sample_at(Level::Upper, i));
            for (a, b) in sum.iter_mut().zip(outputs(&mut c, &x, &y, &v, &s)) {
                *a += b / n as f64;
            }
        }
        close(&sum, &want, "mean over samples vs whole table")?;
        let _ = std::fs::remove_dir_all(dir);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn sample_indices_follow_the_sources_sampler(
        n in 1usize..40,
        batch in 1usize..9,
        which in 0usize..3,
        seed in any::<u64>(),
    ) {
        let sampler = ["shuffle", "sequential", "replace"][which];
        let rows: Vec<[f64; 3]> = (0..n).map(|i| [i as f64 * 0.1, 1.0, 1.0]).collect();
        let dir = table_dir(&rows);
        let mut c = Compiled::from_source(&spec_with(batch, sampler), &dir).unwrap();
        c.use_finite_sum().unwrap();
        let mut rng = DefaultRng::seed_from_u64(seed);
        let mut twin = rng.clone();
        let got: Vec<usize> = (0..3 * n).map(|_| c.next_index(Level::Lower, &mut rng)).collect();
        prop_assert!(got.iter().all(|&i| i < n), "{got:?}");
        match sampler {
            "shuffle" => {
                // Each pass of n draws is a permutation of 0..n.
                for pass in got.chunks(n) {
                    let mut p = pass.to_vec();
                    p.sort_unstable();
                    prop_assert_eq!(p, (0..n).collect::<Vec<_>>());
                }
            }
            "sequential" => {
                prop_assert_eq!(&got, &(0..3 * n).map(|k| k % n).collect::<Vec<_>>());
                // The generator is not used.
                prop_assert_eq!(rng.next_u64(), twin.next_u64());
            }
            _ => {
                // The core's default rule, bit for bit.
                let want: Vec<usize> = (0..3 * n).map(|_| below(&mut twin, n as u64) as usize).collect();
                prop_assert_eq!(got, want);
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Shuffled passes are not all the same order (a fresh permutation each
/// pass): over 20 passes of 12 indices at least two orders differ, and the
/// first pass is not the identity for some seed among 5.
#[test]
fn shuffled_passes_are_fresh_permutations() {
    let rows: Vec<[f64; 3]> = (0..12).map(|i| [f64::from(i), 1.0, 1.0]).collect();
    let dir = table_dir(&rows);
    let mut c = Compiled::from_source(&spec_with(3, "shuffle"), &dir).unwrap();
    c.use_finite_sum().unwrap();
    let mut rng = DefaultRng::seed_from_u64(7);
    let passes: Vec<Vec<usize>> = (0..20)
        .map(|_| {
            (0..12)
                .map(|_| c.next_index(Level::Lower, &mut rng))
                .collect()
        })
        .collect();
    assert!(passes.iter().any(|p| *p != passes[0]), "{passes:?}");
    assert!(passes.iter().any(|p| *p != (0..12).collect::<Vec<_>>()));
    let _ = std::fs::remove_dir_all(dir);
}
