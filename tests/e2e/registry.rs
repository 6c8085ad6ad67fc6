//! The command line lists exactly the core's registry.

use bilevel_core::registry::{find, SOLVERS};

#[test]
fn runner_lists_every_registered_solver_and_lookup_finds_it() {
    let text = bilevel_runner::algorithms();
    for s in SOLVERS {
        assert!(text.contains(s.name));
        assert_eq!(find(s.name).map(|f| f.name), Some(s.name));
    }
    let _ = bilevel_tests::rel_error(&[1.0], &[1.0]);
}
