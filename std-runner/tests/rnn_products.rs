//! Property tests of the RNN backend's exact products (f64) against central
//! finite differences: gradients (VJP), Jacobian-vector products, and full
//! Hessian-vector products of the softmax cross-entropy composed on top,
//! for Elman and LSTM cells, linear, MLP and no heads, max and last
//! pooling, fixed and trained word vectors, variable lengths including 1.
//! Also: packing never changes a sequence's result, and 1 and 2 threads
//! give identical bits.

use approx::relative_eq;
use bilevel_dsl::{ModelBackend, TokenBatch};
use bilevel_runner::rnn::{mean_softmax_xent, Cell, Head, OwnedBatch, Pool, RnnConfig, RnnModel};
use proptest::prelude::*;

const VOCAB: usize = 7;
const EPS: f64 = 1e-6;

#[derive(Debug, Clone)]
struct Case {
    cfg: RnnConfig,
    seqs: Vec<Vec<u32>>,
    seed: u64,
    scale: f64,
}

fn cfg_strategy() -> impl Strategy<Value = RnnConfig> {
    (
        prop_oneof![Just(Cell::Elman), Just(Cell::Lstm)],
        prop_oneof![
            Just(Head::Linear),
            Just(Head::Mlp { width: 3 }),
            Just(Head::Features)
        ],
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

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        cfg_strategy(),
        prop::collection::vec(prop::collection::vec(0u32..VOCAB as u32, 1..=6), 1..=5),
        any::<u64>(),
        1.0f64..3.0,
    )
        .prop_map(|(cfg, seqs, seed, scale)| Case {
            cfg,
            seqs,
            seed,
            scale,
        })
}

/// Deterministic pseudo-random vector in [-1, 1).
fn rand_vec(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed ^ 0x2545_f491_4f6c_dd1d;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

struct Setup {
    model: RnnModel<f64>,
    batch: OwnedBatch,
    theta: Vec<f64>,
    labels: Vec<u32>,
    classes: usize,
}

fn setup(c: &Case) -> Setup {
    let model = RnnModel::<f64>::new(c.cfg.clone(), None, c.seed).unwrap();
    let mut theta = vec![0.0; model.num_params()];
    model.init_params(c.seed, &mut theta);
    // Larger weights make the nonlinearities matter.
    for x in &mut theta {
        *x *= c.scale;
    }
    let batch = OwnedBatch::from_sequences(&c.seqs, usize::MAX);
    let classes = model.num_outputs();
    let labels = (0..c.seqs.len() as u32)
        .map(|i| i % classes as u32)
        .collect();
    Setup {
        model,
        batch,
        theta,
        labels,
        classes,
    }
}

fn forward(s: &Setup, theta: &[f64]) -> Vec<f64> {
    let mut z = vec![0.0; s.batch.len() * s.classes];
    s.model.forward(theta, &s.batch.view(), &mut z);
    z
}

fn loss_grad(s: &Setup, theta: &[f64]) -> (f64, Vec<f64>) {
    let z = forward(s, theta);
    let u = xent_cotangent(&z, &s.labels, s.classes);
    let mut g = vec![0.0; theta.len()];
    s.model.vjp(theta, &s.batch.view(), &u, &mut g);
    (mean_softmax_xent(&z, &s.labels, s.classes), g)
}

fn softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|x| (x - m).exp()).collect();
    let t: f64 = e.iter().sum();
    e.iter().map(|x| x / t).collect()
}

fn xent_cotangent(z: &[f64], labels: &[u32], c: usize) -> Vec<f64> {
    let n = labels.len() as f64;
    let mut u = Vec::new();
    for (row, &y) in z.chunks_exact(c).zip(labels) {
        for (k, p) in softmax(row).into_iter().enumerate() {
            u.push((p - f64::from(u8::from(k == y as usize))) / n);
        }
    }
    u
}

/// ∇²L·dz for the mean cross-entropy.
fn xent_hessian(z: &[f64], dz: &[f64], n: usize, c: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for (row, drow) in z.chunks_exact(c).zip(dz.chunks_exact(c)) {
        let p = softmax(row);
        let pd: f64 = p.iter().zip(drow).map(|(a, b)| a * b).sum();
        out.extend(p.iter().zip(drow).map(|(a, b)| a * (b - pd) / n as f64));
    }
    out
}

fn shift(theta: &[f64], v: &[f64], h: f64) -> Vec<f64> {
    theta.iter().zip(v).map(|(a, b)| a + h * b).collect()
}

fn close(a: &[f64], b: &[f64], tol: f64) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.len(), b.len());
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        prop_assert!(
            relative_eq!(*x, *y, epsilon = tol, max_relative = 1e-5),
            "entry {}: {} vs {} (diff {:e})",
            k,
            x,
            y,
            x - y
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn gradient_matches_finite_differences(c in case_strategy()) {
        let s = setup(&c);
        let (_, g) = loss_grad(&s, &s.theta);
        let mut fd = vec![0.0; g.len()];
        for k in 0..g.len() {
            let mut e = vec![0.0; g.len()];
            e[k] = 1.0;
            let lp = mean_softmax_xent(&forward(&s, &shift(&s.theta, &e, EPS)), &s.labels, s.classes);
            let lm = mean_softmax_xent(&forward(&s, &shift(&s.theta, &e, -EPS)), &s.labels, s.classes);
            fd[k] = (lp - lm) / (2.0 * EPS);
        }
        close(&g, &fd, 1e-7)?;
    }

    #[test]
    fn jvp_matches_finite_differences(c in case_strategy()) {
        let s = setup(&c);
        let v = rand_vec(s.theta.len(), c.seed);
        let mut jv = vec![0.0; s.batch.len() * s.classes];
        s.model.jvp(&s.theta, &s.batch.view(), &v, &mut jv);
        let zp = forward(&s, &shift(&s.theta, &v, EPS));
        let zm = forward(&s, &shift(&s.theta, &v, -EPS));
        let fd: Vec<f64> = zp.iter().zip(&zm).map(|(a, b)| (a - b) / (2.0 * EPS)).collect();
        close(&jv, &fd, 1e-7)?;
    }

    #[test]
    fn hessian_vector_product_matches_finite_differences(c in case_strategy()) {
        let s = setup(&c);
        let n = s.theta.len();
        let v = rand_vec(n, c.seed.wrapping_add(1));
        let view = s.batch.view();
        // Composed from the trait's products.
        let z = forward(&s, &s.theta);
        let mut dz = vec![0.0; z.len()];
        s.model.jvp(&s.theta, &view, &v, &mut dz);
        let u = xent_cotangent(&z, &s.labels, s.classes);
        let du = xent_hessian(&z, &dz, s.labels.len(), s.classes);
        let mut hv = vec![0.0; n];
        s.model.vjp(&s.theta, &view, &du, &mut hv);
        let mut curv = vec![0.0; n];
        s.model.curvature(&s.theta, &view, &u, &v, &mut curv);
        for (a, b) in hv.iter_mut().zip(&curv) {
            *a += b;
        }
        // Central differences of the exact gradient.
        let (_, gp) = loss_grad(&s, &shift(&s.theta, &v, EPS));
        let (_, gm) = loss_grad(&s, &shift(&s.theta, &v, -EPS));
        let fd: Vec<f64> = gp.iter().zip(&gm).map(|(a, b)| (a - b) / (2.0 * EPS)).collect();
        close(&hv, &fd, 1e-6)?;
        // The fused single-pass product agrees with the composed one.
        let mut grad = vec![0.0; n];
        let mut fused = vec![0.0; n];
        let loss = s.model.softmax_xent_hvp(&s.theta, &view, &s.labels, &v, Some(&mut grad), &mut fused);
        close(&fused, &hv, 1e-10)?;
        // Without the gradient the reverse sweep skips the weight gradients;
        // the product keeps its bits.
        let mut alone = vec![0.0; n];
        s.model.softmax_xent_hvp(&s.theta, &view, &s.labels, &v, None, &mut alone);
        prop_assert!(alone.iter().zip(&fused).all(|(a, b)| a.to_bits() == b.to_bits()));
        let (l0, g0) = loss_grad(&s, &s.theta);
        prop_assert!((loss - l0).abs() < 1e-12);
        close(&grad, &g0, 1e-12)?;
        let mut grad2 = vec![0.0; n];
        let loss2 = s.model.softmax_xent_grad(&s.theta, &view, &s.labels, &mut grad2);
        prop_assert!((loss2 - l0).abs() < 1e-12);
        close(&grad2, &g0, 1e-12)?;
        // Symmetry: wᵀ(H v) = vᵀ(H w).
        let w = rand_vec(n, c.seed.wrapping_add(2));
        let mut hw = vec![0.0; n];
        s.model.softmax_xent_hvp(&s.theta, &view, &s.labels, &w, None, &mut hw);
        let a: f64 = w.iter().zip(&hv).map(|(x, y)| x * y).sum();
        let b: f64 = v.iter().zip(&hw).map(|(x, y)| x * y).sum();
        prop_assert!(relative_eq!(a, b, epsilon = 1e-9, max_relative = 1e-8), "{} vs {}", a, b);
    }

    #[test]
    fn curvature_matches_finite_differences_of_the_vjp(c in case_strategy()) {
        // Σᵢ uᵢ ∇²hᵢ v for a fixed cotangent u: the derivative of Jᵀu along v.
        let s = setup(&c);
        let n = s.theta.len();
        let v = rand_vec(n, c.seed.wrapping_add(3));
        let u = rand_vec(s.batch.len() * s.classes, c.seed.wrapping_add(4));
        let view = s.batch.view();
        let mut curv = vec![0.0; n];
        s.model.curvature(&s.theta, &view, &u, &v, &mut curv);
        let mut gp = vec![0.0; n];
        let mut gm = vec![0.0; n];
        s.model.vjp(&shift(&s.theta, &v, EPS), &view, &u, &mut gp);
        s.model.vjp(&shift(&s.theta, &v, -EPS), &view, &u, &mut gm);
        let fd: Vec<f64> = gp.iter().zip(&gm).map(|(a, b)| (a - b) / (2.0 * EPS)).collect();
        close(&curv, &fd, 1e-6)?;
    }

    #[test]
    fn packing_never_changes_a_result(c in case_strategy()) {
        // Each sequence's logits, JVP and VJP inside the batch equal those of
        // the sequence alone; the batch's VJP is the sum of the singles'.
        let s = setup(&c);
        let n = s.theta.len();
        let v = rand_vec(n, c.seed.wrapping_add(5));
        let k = s.classes;
        let u = rand_vec(s.batch.len() * k, c.seed.wrapping_add(6));
        let z = forward(&s, &s.theta);
        let mut jv = vec![0.0; z.len()];
        s.model.jvp(&s.theta, &s.batch.view(), &v, &mut jv);
        let mut g = vec![0.0; n];
        s.model.vjp(&s.theta, &s.batch.view(), &u, &mut g);
        let mut gsum = vec![0.0; n];
        for (i, seq) in c.seqs.iter().enumerate() {
            let one = OwnedBatch::from_sequences(&[seq], usize::MAX);
            let mut zi = vec![0.0; k];
            s.model.forward(&s.theta, &one.view(), &mut zi);
            close(&zi, &z[i * k..(i + 1) * k], 1e-13)?;
            let mut ji = vec![0.0; k];
            s.model.jvp(&s.theta, &one.view(), &v, &mut ji);
            close(&ji, &jv[i * k..(i + 1) * k], 1e-13)?;
            let mut gi = vec![0.0; n];
            s.model.vjp(&s.theta, &one.view(), &u[i * k..(i + 1) * k], &mut gi);
            for (a, b) in gsum.iter_mut().zip(&gi) {
                *a += b;
            }
        }
        close(&g, &gsum, 1e-12)?;
    }
}

#[test]
fn one_and_two_threads_give_identical_bits() {
    let cfgs = [
        RnnConfig {
            hidden: 16,
            embed: 5,
            chunk: 3,
            ..RnnConfig::new(50, 2)
        },
        RnnConfig {
            hidden: 12,
            embed: 5,
            chunk: 4,
            cell: Cell::Lstm,
            head: Head::Mlp { width: 6 },
            train_embeddings: true,
            ..RnnConfig::new(50, 3)
        },
        // Wide enough for products cut into parallel column blocks.
        RnnConfig {
            hidden: 300,
            embed: 5,
            chunk: 8,
            ..RnnConfig::new(50, 2)
        },
    ];
    let seqs: Vec<Vec<u32>> = (0..23u32)
        .map(|i| {
            (0..=((i * 7) % 13))
                .map(|t| (i * 31 + t * 17) % 50)
                .collect()
        })
        .collect();
    let batch = OwnedBatch::from_sequences(&seqs, usize::MAX);
    for cfg in cfgs {
        let model = RnnModel::<f32>::new(cfg, None, 4).unwrap();
        let n = model.num_params();
        let mut theta = vec![0.0f32; n];
        model.init_params(9, &mut theta);
        let v: Vec<f32> = rand_vec(n, 11).iter().map(|&x| x as f32).collect();
        let k = model.num_outputs();
        let u: Vec<f32> = rand_vec(seqs.len() * k, 12)
            .iter()
            .map(|&x| x as f32)
            .collect();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let view = batch.view();
                let mut z = vec![0.0f32; seqs.len() * k];
                model.forward(&theta, &view, &mut z);
                let mut jv = vec![0.0f32; z.len()];
                model.jvp(&theta, &view, &v, &mut jv);
                let mut g = vec![0.0f32; n];
                model.vjp(&theta, &view, &u, &mut g);
                let mut cv = vec![0.0f32; n];
                model.curvature(&theta, &view, &u, &v, &mut cv);
                [z, jv, g, cv].map(|x| x.iter().map(|y| y.to_bits()).collect::<Vec<u32>>())
            })
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(2), "repeatable");
        assert!(one[3].iter().any(|&b| b != 0), "non-trivial curvature");
    }
}

#[test]
fn invalid_batches_are_reported() {
    let model = RnnModel::<f64>::new(
        RnnConfig {
            hidden: 4,
            embed: 2,
            ..RnnConfig::new(5, 2)
        },
        None,
        0,
    )
    .unwrap();
    let bad_token = TokenBatch {
        tokens: &[1, 9],
        offsets: &[0, 2],
    };
    assert!(model
        .check_batch(&bad_token)
        .unwrap_err()
        .to_string()
        .contains("token 9 at position 1"));
    let bad_offsets = TokenBatch {
        tokens: &[1, 2],
        offsets: &[0, 2, 1],
    };
    assert!(model.check_batch(&bad_offsets).is_err());
    let ok = TokenBatch {
        tokens: &[1, 2],
        offsets: &[0, 2, 2],
    };
    assert!(model.check_batch(&ok).is_ok());
    // An empty sequence has the encoding 0 and no gradient.
    let mut theta = vec![0.0; model.num_params()];
    model.init_params(1, &mut theta);
    let mut z = vec![0.0; 4];
    model.forward(&theta, &ok, &mut z);
    assert!(z.iter().all(|x| x.is_finite()));
    assert!(RnnModel::<f64>::new(RnnConfig::new(5, 2), Some(&[0.0; 3]), 0).is_err());
}
