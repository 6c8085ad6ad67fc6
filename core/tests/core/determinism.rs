//! Same seed, same bits: across runs, and between fixed-size arrays and heap
//! vectors.

use bilevel_core::solver::{BoRep, BoRepConfig, Slip, SlipConfig, SolverState};
use bilevel_core::testing::{q3, toy, Quadratic, QuadraticParts, Q_LEN_2X2};
use bilevel_core::{run, Budget, Counted, DefaultRng, OracleKind, Real};
use rand_core::SeedableRng;

/// The toy instance again, but stored in a `Vec`.
fn toy_on_heap<T: Real>(sigma: f64) -> Quadratic<T, Vec<T>> {
    let fixed = toy::<f64>(0.0);
    let get = |n: &str| fixed.coefficients(n).unwrap().to_vec();
    let (a, b, c, f, h, k) = (get("A"), get("B"), get("C"), get("F"), get("H"), get("K"));
    let (al, bl, fl, hl) = (get("a"), get("b"), get("f_l"), get("h_l"));
    let parts = QuadraticParts {
        a: &a,
        b: &b,
        c: &c,
        f: &f,
        h: &h,
        k: &k,
        a_lin: &al,
        b_lin: &bl,
        f_lin: &fl,
        h_lin: &hl,
        f_const: 1.0,
    };
    Quadratic::from_parts(2, 2, &parts, sigma, vec![T::ZERO; Q_LEN_2X2])
        .unwrap()
        .with_noisy_oracles(&[OracleKind::GradYG, OracleKind::GradYF])
}

fn bits<T: Real>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.to_f64().to_bits()).collect()
}

fn borep_cfg() -> BoRepConfig {
    BoRepConfig {
        eta: 0.01,
        gamma: 0.3,
        nu: 0.3,
        warm_lr: 0.3,
        radius: 2.0,
        ..BoRepConfig::default()
    }
}

fn slip_cfg() -> SlipConfig {
    SlipConfig {
        eta: 0.01,
        gamma: 0.3,
        nu: 0.3,
        ..SlipConfig::default()
    }
}

fn check<T: Real>() {
    let budget = Budget::iters(500);
    let sigma = 0.1;

    let mut o1 = Counted::new(toy::<T>(sigma));
    let mut s1 = BoRep::new(borep_cfg(), [T::ZERO; 2], [T::ZERO; 2]).unwrap();
    run(
        &mut s1,
        &mut o1,
        &mut DefaultRng::seed_from_u64(9),
        &budget,
        &mut (),
    )
    .unwrap();
    let mut o2 = Counted::new(toy_on_heap::<T>(sigma));
    let mut s2 = BoRep::new(borep_cfg(), vec![T::ZERO; 2], vec![T::ZERO; 2]).unwrap();
    run(
        &mut s2,
        &mut o2,
        &mut DefaultRng::seed_from_u64(9),
        &budget,
        &mut (),
    )
    .unwrap();
    assert_eq!(bits(s1.x()), bits(s2.x()), "BO-REP x, {}", T::NAME);
    assert_eq!(bits(s1.y()), bits(s2.y()), "BO-REP y, {}", T::NAME);
    assert_eq!(bits(s1.z()), bits(s2.z()), "BO-REP z, {}", T::NAME);
    assert_eq!(o1.counts(), o2.counts());

    let mut o1 = Counted::new(toy::<T>(sigma));
    let mut s1 = Slip::new(slip_cfg(), [T::ZERO; 2], [T::ZERO; 2]).unwrap();
    run(
        &mut s1,
        &mut o1,
        &mut DefaultRng::seed_from_u64(9),
        &budget,
        &mut (),
    )
    .unwrap();
    let mut o2 = Counted::new(toy_on_heap::<T>(sigma));
    let mut s2 = Slip::new(slip_cfg(), vec![T::ZERO; 2], vec![T::ZERO; 2]).unwrap();
    run(
        &mut s2,
        &mut o2,
        &mut DefaultRng::seed_from_u64(9),
        &budget,
        &mut (),
    )
    .unwrap();
    assert_eq!(bits(s1.x()), bits(s2.x()), "SLIP x, {}", T::NAME);
    assert_eq!(
        bits(s1.momentum()),
        bits(s2.momentum()),
        "SLIP m, {}",
        T::NAME
    );

    // A different seed gives a different trajectory (the noise is live).
    let mut o3 = Counted::new(toy::<T>(sigma));
    let mut s3 = Slip::new(slip_cfg(), [T::ZERO; 2], [T::ZERO; 2]).unwrap();
    run(
        &mut s3,
        &mut o3,
        &mut DefaultRng::seed_from_u64(10),
        &budget,
        &mut (),
    )
    .unwrap();
    assert_ne!(bits(s1.x()), bits(s3.x()));
}

#[test]
fn arrays_and_vectors_give_the_same_bits_in_f64() {
    check::<f64>();
}

#[test]
fn arrays_and_vectors_give_the_same_bits_in_f32() {
    check::<f32>();
}

/// Re-running with the same seed repeats the run exactly, code-form switches
/// (Xavier z₀, gradient accumulation) included.
#[test]
fn reruns_repeat_bit_for_bit() {
    let once = || {
        let mut o = Counted::new(q3::<f64>(0.2));
        let mut s = BoRep::new(BoRepConfig::code_form(), [0.0; 2], [0.0; 2]).unwrap();
        run(
            &mut s,
            &mut o,
            &mut DefaultRng::seed_from_u64(5),
            &Budget::iters(300),
            &mut (),
        )
        .unwrap();
        (bits(s.x()), bits(s.y()), bits(s.z()))
    };
    assert_eq!(once(), once());
    let once_slip = || {
        let mut o = Counted::new(q3::<f64>(0.2));
        let mut s = Slip::new(SlipConfig::code_form(), [0.0; 2], [0.0; 2]).unwrap();
        run(
            &mut s,
            &mut o,
            &mut DefaultRng::seed_from_u64(5),
            &Budget::iters(300),
            &mut (),
        )
        .unwrap();
        (bits(s.x()), bits(s.y()), bits(s.z()))
    };
    assert_eq!(once_slip(), once_slip());
}
