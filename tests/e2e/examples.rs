//! README's main job (`cargo run --release -p bilevel-examples --example toy`)
//! does what the README says: both solvers land within 1% of x*.

use bilevel_core::Termination;
use bilevel_examples::{solve_toy, TOY_ITERS, TOY_X_STAR};

#[test]
fn toy_example_solves_the_toy_with_both_solvers() {
    for seed in [42, 1, 2] {
        for o in solve_toy(seed, TOY_ITERS).unwrap() {
            assert_eq!(o.report.termination, Termination::MaxIters);
            let e = bilevel_tests::rel_error(&o.x, &TOY_X_STAR);
            assert!(e <= 1e-2, "{} seed {seed}: {e:.3e}", o.solver);
            assert!((e - o.rel_error).abs() < 1e-15);
        }
    }
}
