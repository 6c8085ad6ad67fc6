//! The RNN's forward-sweep cache and the joint oracle calls through an RNN
//! spec: a product on the θ and batch of the previous call reuses its forward
//! sweep (counted by `forward_sweeps`), with exactly the bits of a model
//! without a cache; a joint call of a spec runs the model's forward sweep
//! once, and its outputs equal the separate calls'.

use std::path::Path;

use bilevel_core::oracle::{self, CrossJvp, Level, LowerGradY, LowerHvp, Oracle};
use bilevel_core::{Counted, DefaultRng};
use bilevel_dsl::Compiled;
use bilevel_dsl::{ModelBackend, TokenBatch};
use bilevel_runner::rnn::{Cell, Head, OwnedBatch, Pool, RnnConfig, RnnModel, RnnRegistry};
use proptest::prelude::*;
use rand_core::SeedableRng;

const VOCAB: usize = 7;

fn cfg_strategy() -> impl Strategy<Value = RnnConfig> {
    (
        prop_oneof![Just(Cell::Elman), Just(Cell::Lstm)],
        prop_oneof![Just(Head::Linear), Just(Head::Mlp { width: 3 })],
        prop_oneof![Just(Pool::Max), Just(Pool::Last)],
        any::<bool>(),
        1usize..=2,
        1usize..=3,
    )
        .prop_map(|(cell, head, pool, train, layers, chunk)| RnnConfig {
            vocab: VOCAB,
            embed: 3,
            hidden: 4,
            layers,
            cell,
            pool,
            head,
            classes: 3,
            train_embeddings: train,
            chunk,
        })
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn values(seed: u64, n: usize, scale: f64) -> Vec<f64> {
    let mut rng = DefaultRng::seed_from_u64(seed);
    (0..n)
        .map(|_| scale * bilevel_core::random::normal(&mut rng))
        .collect()
}

/// The products a spec's sweep asks for, on one (θ, batch).
fn products(
    m: &RnnModel<f64>,
    theta: &[f64],
    b: &TokenBatch<'_>,
    u: &[f64],
    v: &[f64],
) -> Vec<u64> {
    let (p, o) = (m.num_params(), b.len() * m.num_outputs());
    let (mut z, mut jv, mut g, mut c) = (vec![0.0; o], vec![0.0; o], vec![0.0; p], vec![0.0; p]);
    m.forward(theta, b, &mut z);
    m.jvp(theta, b, v, &mut jv);
    m.vjp(theta, b, u, &mut g);
    m.curvature(theta, b, u, v, &mut c);
    [z, jv, g, c].iter().flat_map(|x| bits(x)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Forward, Jv, Jᵀu and the curvature term on one (θ, batch) cost one
    /// forward sweep per chunk, a new θ or batch another, and every result
    /// has the bits of a model without a cache.
    #[test]
    fn cached_forward_sweeps_keep_the_bits(
        cfg in cfg_strategy(),
        seqs in prop::collection::vec(prop::collection::vec(0u32..VOCAB as u32, 1..=6), 1..=5),
        seed in any::<u64>(),
    ) {
        let m = RnnModel::<f64>::new(cfg.clone(), None, seed).unwrap();
        let owned = OwnedBatch::from_sequences(&seqs, usize::MAX);
        let b = owned.view();
        let chunks = b.len().div_ceil(cfg.chunk) as u64;
        let mut theta = vec![0.0; m.num_params()];
        m.init_params(seed, &mut theta);
        let v = values(seed ^ 1, theta.len(), 0.3);
        let u = values(seed ^ 2, b.len() * m.num_outputs(), 1.0);
        let theta2: Vec<f64> = theta.iter().map(|t| t * 0.9 + 0.01).collect();
        // Every call on a fresh clone: no cache hit is possible there.
        let fresh = |th: &[f64]| products(&m.clone(), th, &b, &u, &v);
        prop_assert_eq!(products(&m, &theta, &b, &u, &v), fresh(&theta));
        prop_assert_eq!(m.forward_sweeps(), chunks);
        prop_assert_eq!(products(&m, &theta2, &b, &u, &v), fresh(&theta2));
        prop_assert_eq!(m.forward_sweeps(), 2 * chunks);
        // Another batch (a different key: one sequence, one token longer
        // than the first) and back to θ: new sweeps.
        let longer: Vec<u32> = seqs[0].iter().copied().chain([1]).collect();
        let short = OwnedBatch::from_sequences(&[longer], usize::MAX);
        let mut z = vec![0.0; m.num_outputs()];
        m.forward(&theta, &short.view(), &mut z);
        prop_assert_eq!(m.forward_sweeps(), 2 * chunks + 1);
        prop_assert_eq!(products(&m, &theta, &b, &u, &v), fresh(&theta));
        prop_assert_eq!(m.forward_sweeps(), 3 * chunks + 1);
    }
}

fn sweeps(c: &Compiled) -> u64 {
    c.program().models.0[0]
        .forward_sweeps()
        .expect("the rnn counts its sweeps")
}

/// The HPO spec (the classifier is the lower variable): a joint call of ∇ᵧg,
/// ∇²ᵧᵧg·v and ∇²ₓᵧg·v runs the model's forward sweep once (as many as one
/// value of g), and its outputs equal the separate calls' to 1e-13 relative.
#[test]
fn a_joint_call_of_the_rnn_spec_runs_the_forward_sweep_once() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs/rnn");
    let src = std::fs::read_to_string(dir.join("hpo.bilevel")).unwrap();
    let mut c = Compiled::from_source_with(&src, &dir, &RnnRegistry).expect("compiles");
    let mut rng = DefaultRng::seed_from_u64(4);
    let s = c.sample(Level::Lower, &mut rng);
    let (x, y0) = (c.initial_x(), c.initial_y());
    let (dx, dy) = (x.len(), y0.len());
    let at = |k: f64| -> Vec<f64> { y0.iter().map(|w| w * (1.0 + 0.01 * k)).collect() };
    let v = values(9, dy, 0.01);
    // One value of g at a new point: the sweeps of one forward pass.
    let before = sweeps(&c);
    let _ = oracle::LowerValue::g_value(&mut c, &x, &at(1.0), &s);
    let one = sweeps(&c) - before;
    assert!(one >= 1);
    // The joint call at another new point.
    let y = at(2.0);
    let (mut g, mut h, mut j) = (vec![0.0; dy], vec![0.0; dy], vec![0.0; dx]);
    let before = sweeps(&c);
    let mut o = Counted::new(c);
    oracle::grad_hvp_jvp(&mut o, &x, &y, &v, &s, (&mut g, &mut h, &mut j));
    let n = *o.counts();
    assert_eq!((n.grad_y_g, n.hvp_yy, n.jvp_xy), (1, 1, 1));
    let mut c = o.into_inner();
    assert_eq!(sweeps(&c) - before, one, "joint call: one forward sweep");
    // The separate calls at the same point.
    let (g3, h3, j3) = (g, h, j);
    let (mut gs, mut hs, mut js) = (vec![0.0; dy], vec![0.0; dy], vec![0.0; dx]);
    let y3 = y;
    c.grad_y_g(&x, &y3, &s, &mut gs);
    c.hvp_yy(&x, &y3, &v, &s, &mut hs);
    c.jvp_xy(&x, &y3, &v, &s, &mut js);
    for (name, a, b) in [
        ("grad_y_g", &g3, &gs),
        ("hvp_yy", &h3, &hs),
        ("jvp_xy", &j3, &js),
    ] {
        let scale = b.iter().fold(0.0_f64, |m, w| m.max(w.abs()));
        assert!(scale > 0.0, "{name} is not identically zero");
        for (i, (p, q)) in a.iter().zip(b.iter()).enumerate() {
            assert!(
                (p - q).abs() <= 1e-13 * scale,
                "{name}[{i}]: joint {p:e} vs separate {q:e}"
            );
        }
    }
}
