//! End to end: the toy spec compiled and solved by BO-REP and SLIP meets its
//! `expect` block; its oracles agree with the hand-written toy of the core.

use std::path::{Path, PathBuf};

use bilevel_core::oracle::{CrossJvp, Level, LowerGradY, LowerHvp, Oracle, UpperGradX, UpperGradY};
use bilevel_core::registry::Configure;
use bilevel_core::solver::{BoRep, BoRepConfig, Slip, SlipConfig, SolverState};
use bilevel_core::{run, Budget, Counted, DefaultRng};
use bilevel_dsl::Compiled;
use rand_core::SeedableRng;

/// The folder of the example specs.
pub fn specs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs")
}

/// Compiles an example spec (panics with the rendered diagnostics).
pub fn compile(name: &str) -> Compiled {
    let path = specs_dir().join(name);
    let src = std::fs::read_to_string(&path).expect("spec exists");
    match Compiled::from_source(&src, &specs_dir()) {
        Ok(c) => c,
        Err(d) => panic!("{}", bilevel_dsl::render(&d, name, &src)),
    }
}

#[test]
fn toy_oracles_match_the_closed_form_without_noise() {
    let mut c = compile("toy_quadratic.bilevel");
    assert_eq!((c.dim_x(), c.dim_y()), (2, 2));
    let (x, y, v) = ([0.3, -0.7], [0.2, 0.4], [1.5, -0.5]);
    let lo = c.population(Level::Lower);
    let up = c.population(Level::Upper);
    let mut out = [0.0; 2];
    // ∇ᵧg = H y − B x (noise mean zero).
    c.grad_y_g(&x, &y, &lo, &mut out);
    let h = [[2.0, 0.5], [0.5, 1.0]];
    let bx = [x[0], x[0] + x[1]];
    for i in 0..2 {
        let want = h[i][0] * y[0] + h[i][1] * y[1] - bx[i];
        assert!((out[i] - want).abs() < 1e-12, "{out:?}");
    }
    c.hvp_yy(&x, &y, &v, &lo, &mut out);
    for i in 0..2 {
        let want = h[i][0] * v[0] + h[i][1] * v[1];
        assert!((out[i] - want).abs() < 1e-12, "{out:?}");
    }
    // ∇²ₓᵧg·v = −Bᵀv.
    c.jvp_xy(&x, &y, &v, &lo, &mut out);
    let want = [-(v[0] + v[1]), -v[1]];
    assert!(
        (out[0] - want[0]).abs() < 1e-12 && (out[1] - want[1]).abs() < 1e-12,
        "{out:?}"
    );
    // ∇ᵧf = y − c, ∇ₓf = ρ x.
    c.grad_y_f(&x, &y, &up, &mut out);
    assert!((out[0] - (y[0] - 1.0)).abs() < 1e-12 && (out[1] - (y[1] + 1.0)).abs() < 1e-12);
    c.grad_x_f(&x, &y, &up, &mut out);
    assert!((out[0] - 0.1 * x[0]).abs() < 1e-12 && (out[1] - 0.1 * x[1]).abs() < 1e-12);
    let mu = c.program().mu.expect("certified mu");
    assert!((mu - (1.5 - 0.5_f64.sqrt())).abs() < 1e-12, "{mu}");
}

#[test]
fn toy_spec_meets_its_expectations_with_bo_rep_and_slip() {
    let c = compile("toy_quadratic.bilevel");
    let prog = c.program().clone();
    let run_cfg = &prog.spec.run;
    let iters = run_cfg.iterations.expect("iterations");
    let seed = run_cfg.seed.expect("seed");
    // BO-REP with the spec's own algorithm block.
    let algo = prog.spec.algorithm.as_ref().expect("algorithm block");
    assert_eq!(algo.info.name, "bo-rep");
    let mut cfg = BoRepConfig::default();
    for (k, v) in &algo.settings {
        cfg.set(k, v.as_param()).expect("validated setting");
    }
    let mut oracle = Counted::new(c.clone());
    let mut solver =
        BoRep::new(cfg, oracle.inner().initial_x(), oracle.inner().initial_y()).expect("solver");
    let mut rng = DefaultRng::seed_from_u64(seed);
    run(
        &mut solver,
        &mut oracle,
        &mut rng,
        &Budget::iters(iters),
        &mut (),
    )
    .expect("run");
    let outcomes = oracle
        .inner_mut()
        .check_expectations(solver.x(), solver.y());
    assert_eq!(outcomes.len(), 4);
    for o in &outcomes {
        assert!(o.ok, "bo-rep: {o:?}");
    }
    // SLIP with test-stated settings (the toy settings of the examples).
    let cfg = SlipConfig {
        eta: 0.01,
        eta_decay: 1.0,
        eta_decay_steps: 100.0,
        beta: 0.9,
        gamma: 0.3,
        nu: 0.3,
        ..SlipConfig::default()
    };
    let mut oracle = Counted::new(c);
    let mut solver =
        Slip::new(cfg, oracle.inner().initial_x(), oracle.inner().initial_y()).expect("solver");
    let mut rng = DefaultRng::seed_from_u64(seed);
    run(
        &mut solver,
        &mut oracle,
        &mut rng,
        &Budget::iters(iters),
        &mut (),
    )
    .expect("run");
    for o in oracle
        .inner_mut()
        .check_expectations(solver.x(), solver.y())
    {
        assert!(o.ok, "slip: {o:?}");
    }
}

#[test]
fn samples_are_deterministic_and_noisy() {
    let mut a = compile("toy_quadratic.bilevel");
    let mut b = a.clone();
    let mut ra = DefaultRng::seed_from_u64(3);
    let mut rb = DefaultRng::seed_from_u64(3);
    let (sa, sb) = (
        a.sample(Level::Lower, &mut ra),
        b.sample(Level::Lower, &mut rb),
    );
    let (mut ga, mut gb) = ([0.0; 2], [0.0; 2]);
    a.grad_y_g(&[0.1, 0.2], &[0.3, 0.4], &sa, &mut ga);
    b.grad_y_g(&[0.1, 0.2], &[0.3, 0.4], &sb, &mut gb);
    assert_eq!(ga.map(f64::to_bits), gb.map(f64::to_bits));
    let mut exact = [0.0; 2];
    let pop = a.population(Level::Lower);
    a.grad_y_g(&[0.1, 0.2], &[0.3, 0.4], &pop, &mut exact);
    assert!(
        (ga[0] - exact[0]).abs() + (ga[1] - exact[1]).abs() > 1e-9,
        "the sample carries noise"
    );
    assert!((ga[0] - exact[0]).abs() < 0.5);
    let mut z = [0.0; 2];
    a.jvp_xy(&[0.1, 0.2], &[0.3, 0.4], &[1.0, 0.0], &sa, &mut z);
    assert!(z.iter().all(|v| v.is_finite()));
}

#[test]
fn csv_specs_run_with_their_own_algorithm_and_reduce_the_upper_loss() {
    for name in ["hpo_logreg.bilevel", "hyperclean.bilevel"] {
        let mut c = compile(name);
        let prog = c.program().clone();
        let algo = prog.spec.algorithm.as_ref().expect("algorithm block");
        let (x0, y0) = (c.initial_x(), c.initial_y());
        // The population loss at the start, with the lower level solved
        // roughly by the warm start of the run below.
        let f0 = c.f_population(&x0, &y0);
        let mut oracle = Counted::new(c);
        let mut rng = DefaultRng::seed_from_u64(prog.spec.run.seed.expect("seed"));
        let budget = Budget::iters(300);
        let (x, y) = if algo.info.name == "slip" {
            let mut cfg = SlipConfig::default();
            for (k, v) in &algo.settings {
                cfg.set(k, v.as_param()).expect("validated");
            }
            let mut s = Slip::new(cfg, x0, y0).expect("solver");
            run(&mut s, &mut oracle, &mut rng, &budget, &mut ()).expect("run");
            (s.x().to_vec(), s.y().to_vec())
        } else {
            let mut cfg = BoRepConfig::default();
            for (k, v) in &algo.settings {
                cfg.set(k, v.as_param()).expect("validated");
            }
            let mut s = BoRep::new(cfg, x0, y0).expect("solver");
            run(&mut s, &mut oracle, &mut rng, &budget, &mut ()).expect("run");
            (s.x().to_vec(), s.y().to_vec())
        };
        assert!(x.iter().chain(&y).all(|v| v.is_finite()), "{name}");
        let f1 = oracle.inner_mut().f_population(&x, &y);
        assert!(f1 < f0, "{name}: upper loss {f0} -> {f1}");
        assert!(oracle.counts().oracle_calls() > 1000, "{name}");
    }
}

#[test]
fn summaries_render_as_json_and_diagnostics_as_json_and_colour() {
    let src = std::fs::read_to_string(specs_dir().join("toy_quadratic.bilevel")).expect("spec");
    let s = bilevel_dsl::summarize(&src, &specs_dir()).expect("valid");
    let j = s.json();
    assert_eq!(j["problem"], "toy_quadratic");
    assert_eq!(j["dim_x"], 2);
    assert_eq!(j["algorithm"]["name"], "bo-rep");
    let mu = j["analysis"]["mu"].as_f64().expect("mu");
    assert!((mu - (1.5 - 0.5_f64.sqrt())).abs() < 1e-9);
    assert_eq!(j["oracles"].as_array().map(Vec::len), Some(5));
    let bad = "bilevel \"b\"\nlet a = exp(lamda)\n";
    assert!(
        bilevel_dsl::parse(bad).is_ok(),
        "parses; the checker refuses it"
    );
    let Err(diags) = bilevel_dsl::check_source(bad) else {
        panic!("expected diagnostics");
    };
    let json = bilevel_dsl::to_json(&diags, "b.bilevel", bad);
    let first = &json[0];
    assert_eq!(first["code"], "E0103");
    let e0101 = json
        .as_array()
        .and_then(|a| a.iter().find(|d| d["code"] == "E0101"))
        .expect("E0101");
    assert_eq!(e0101["labels"][0]["line"], 2);
    assert_eq!(e0101["labels"][0]["column"], 13);
    assert_eq!(e0101["severity"], "error");
    let plain = bilevel_dsl::render(&diags, "b.bilevel", bad);
    let colour = bilevel_dsl::render_with(&diags, "b.bilevel", bad, true);
    assert!(!plain.contains('\u{1b}') && colour.contains('\u{1b}'));
    assert!(plain.contains("b.bilevel:2:13"));
}
