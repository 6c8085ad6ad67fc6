//! The RNN's fused second-order reverse product
//! ([`ModelBackend::reverse_second`]) against the trait's composed default
//! (`grad += vjp(u)`, `out += vjp(u̇) + curvature(u, v)`, each its own
//! sweep), output by output, over random configurations, batches, seeds and
//! vectors; and the kept tangent sweep against a fresh one, bit for bit.
//!
//! Tolerance: the fused sweep sums Jᵀu̇ and the curvature term inside one
//! tangent reverse sweep instead of adding two separately rounded vectors, so
//! in f64 an entry may differ by rounding only: |fused − composed| ≤ 1e-12 ×
//! the largest magnitude of the composed product (f32 model: 1e-4). The
//! gradient part (Jᵀu) is the same reverse sweep and must match bit for bit.

use bilevel_core::DefaultRng;
use bilevel_dsl::{ModelBackend, TokenBatch};
use bilevel_runner::rnn::registry::F32Model;
use bilevel_runner::rnn::{Cell, Head, OwnedBatch, Pool, RnnConfig, RnnModel};
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
        2usize..=5,
    )
        .prop_map(
            |(cell, head, pool, train, layers, chunk, hidden)| RnnConfig {
                vocab: VOCAB,
                embed: 3,
                hidden,
                layers,
                cell,
                pool,
                head,
                classes: 3,
                train_embeddings: train,
                chunk,
            },
        )
}

fn values(seed: u64, n: usize, scale: f64) -> Vec<f64> {
    let mut rng = DefaultRng::seed_from_u64(seed);
    (0..n)
        .map(|_| scale * bilevel_core::random::normal(&mut rng))
        .collect()
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The composed default, spelled out: the separate products added in the
/// default's order.
#[allow(clippy::too_many_arguments)]
fn composed(
    m: &dyn ModelBackend<f64>,
    theta: &[f64],
    b: &TokenBatch<'_>,
    u: &[f64],
    udot: Option<&[f64]>,
    v: &[f64],
    grad: &mut [f64],
    out: &mut [f64],
) {
    let mut tmp = vec![0.0; theta.len()];
    m.vjp(theta, b, u, &mut tmp);
    for (g, t) in grad.iter_mut().zip(&tmp) {
        *g += t;
    }
    if let Some(ud) = udot {
        m.vjp(theta, b, ud, &mut tmp);
        for (o, t) in out.iter_mut().zip(&tmp) {
            *o += t;
        }
    }
    m.curvature(theta, b, u, v, &mut tmp);
    for (o, t) in out.iter_mut().zip(&tmp) {
        *o += t;
    }
}

fn close(name: &str, a: &[f64], b: &[f64], base: &[f64], rel: f64) -> Result<(), TestCaseError> {
    // The scale of the product alone (the buffers start at `base`).
    let scale = b
        .iter()
        .zip(base)
        .fold(0.0_f64, |m, (x, y)| m.max((x - y).abs()));
    for (i, (p, q)) in a.iter().zip(b).enumerate() {
        prop_assert!(
            (p - q).abs() <= rel * scale.max(f64::MIN_POSITIVE),
            "{}[{}]: fused {:e} vs composed {:e} (scale {:e})",
            name,
            i,
            p,
            q,
            scale
        );
    }
    Ok(())
}

struct Case {
    theta: Vec<f64>,
    u: Vec<f64>,
    udot: Vec<f64>,
    v: Vec<f64>,
    grad0: Vec<f64>,
    out0: Vec<f64>,
}

fn case(m: &dyn ModelBackend<f64>, b: &TokenBatch<'_>, seed: u64) -> Case {
    let p = m.num_params();
    let o = b.len() * m.num_outputs();
    let mut theta = vec![0.0; p];
    m.init_params(seed, &mut theta);
    Case {
        theta,
        u: values(seed ^ 2, o, 1.0),
        udot: values(seed ^ 3, o, 1.0),
        v: values(seed ^ 1, p, 0.3),
        grad0: values(seed ^ 4, p, 1.0),
        out0: values(seed ^ 5, p, 1.0),
    }
}

/// Fused against composed on fresh clones (no cache shared between them).
fn check(
    fused_m: &dyn ModelBackend<f64>,
    ref_m: &dyn ModelBackend<f64>,
    b: &TokenBatch<'_>,
    c: &Case,
    with_dot: bool,
    with_grad: bool,
    rel: f64,
) -> Result<(), TestCaseError> {
    let udot = with_dot.then_some(&c.udot[..]);
    let (mut g, mut o) = (c.grad0.clone(), c.out0.clone());
    let grad = with_grad.then_some(&mut g[..]);
    fused_m.reverse_second(&c.theta, b, &c.u, udot, &c.v, grad, &mut o);
    let (mut gr, mut or) = (c.grad0.clone(), c.out0.clone());
    composed(ref_m, &c.theta, b, &c.u, udot, &c.v, &mut gr, &mut or);
    if with_grad {
        prop_assert_eq!(bits(&g), bits(&gr), "Jᵀu bit for bit");
    } else {
        prop_assert_eq!(bits(&g), bits(&c.grad0), "no gradient asked, none added");
    }
    close("second-order", &o, &or, &c.out0, rel)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// f64 model: the fused product equals the composed default within
    /// rounding, and Jᵀu bit for bit, with and without u̇ and the gradient.
    #[test]
    fn fused_second_order_product_matches_the_composed_default(
        cfg in cfg_strategy(),
        seqs in prop::collection::vec(prop::collection::vec(0u32..VOCAB as u32, 0..=6), 1..=6),
        seed in any::<u64>(),
        with_dot in any::<bool>(),
        with_grad in any::<bool>(),
    ) {
        let m = RnnModel::<f64>::new(cfg, None, seed).unwrap();
        let owned = OwnedBatch::from_sequences(&seqs, usize::MAX);
        let b = owned.view();
        let c = case(&m, &b, seed);
        check(&m.clone(), &m.clone(), &b, &c, with_dot, with_grad, 1e-12)?;
    }

    /// The f32 model behind the f64 interface (the registry's default):
    /// the same within f32 rounding.
    #[test]
    fn fused_product_of_the_f32_model_matches_the_composed_default(
        cfg in cfg_strategy(),
        seqs in prop::collection::vec(prop::collection::vec(0u32..VOCAB as u32, 1..=6), 1..=6),
        seed in any::<u64>(),
        with_dot in any::<bool>(),
    ) {
        let m = F32Model(RnnModel::<f32>::new(cfg.clone(), None, seed).unwrap());
        let r = F32Model(RnnModel::<f32>::new(cfg, None, seed).unwrap());
        let owned = OwnedBatch::from_sequences(&seqs, usize::MAX);
        let b = owned.view();
        let c = case(&m, &b, seed);
        check(&m, &r, &b, &c, with_dot, true, 1e-4)?;
    }

    /// In the tape's order (logits and Jv, then the fused reverse product
    /// along the same v) the model runs one forward sweep per chunk and
    /// reuses its tangent sweep, with the bits of a model that computes
    /// everything afresh; a different v gets a new tangent sweep (the bits
    /// of a fresh model again).
    #[test]
    fn the_kept_tangent_sweep_keeps_the_bits(
        cfg in cfg_strategy(),
        seqs in prop::collection::vec(prop::collection::vec(0u32..VOCAB as u32, 1..=6), 1..=5),
        seed in any::<u64>(),
    ) {
        let m = RnnModel::<f64>::new(cfg.clone(), None, seed).unwrap();
        let owned = OwnedBatch::from_sequences(&seqs, usize::MAX);
        let b = owned.view();
        let chunks = b.len().div_ceil(cfg.chunk) as u64;
        let c = case(&m, &b, seed);
        let o = b.len() * m.num_outputs();
        let fused = |m: &RnnModel<f64>, v: &[f64]| {
            let (mut g, mut h) = (vec![0.0; c.theta.len()], vec![0.0; c.theta.len()]);
            m.reverse_second(&c.theta, &b, &c.u, Some(&c.udot), v, Some(&mut g), &mut h);
            [bits(&g), bits(&h)].concat()
        };
        let (mut z, mut jv) = (vec![0.0; o], vec![0.0; o]);
        m.forward(&c.theta, &b, &mut z);
        m.jvp(&c.theta, &b, &c.v, &mut jv);
        let after_jvp = fused(&m, &c.v);
        prop_assert_eq!(m.forward_sweeps(), chunks);
        prop_assert_eq!(&after_jvp, &fused(&m.clone(), &c.v));
        let mut jv_fresh = vec![0.0; o];
        m.clone().jvp(&c.theta, &b, &c.v, &mut jv_fresh);
        prop_assert_eq!(bits(&jv), bits(&jv_fresh));
        // Another direction on the same θ: the forward sweep is kept, the
        // tangent sweep is not.
        let v2: Vec<f64> = c.v.iter().map(|x| x * 0.5 - 0.01).collect();
        prop_assert_eq!(fused(&m, &v2), fused(&m.clone(), &v2));
        prop_assert_eq!(m.forward_sweeps(), chunks);
    }
}
