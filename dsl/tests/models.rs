//! Models in specs: the text source, `params(model)` variables and model
//! calls, checked with a small reference backend whose products are exact
//! in closed form. Every oracle of a spec that uses the model is compared
//! with central finite differences of the oracle one order below.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bilevel_core::oracle::{
    CrossJvp, Level, LowerGradX, LowerGradY, LowerHvp, LowerValue, Oracle, UpperGradX, UpperValue,
};
use bilevel_core::DefaultRng;
use bilevel_dsl::Compiled;
use bilevel_dsl::ModelDef;
use bilevel_dsl::{ModelBackend, ModelContext, ModelRegistry, TokenBatch};
use rand_core::SeedableRng;

/// h_c(seq) = (1/len) Σ_t tanh(E[tok_t, c]) with θ = E (vocab × outputs).
struct TanhBag {
    vocab: usize,
    outputs: usize,
}

impl TanhBag {
    fn each(batch: &TokenBatch<'_>, mut f: impl FnMut(usize, usize, f64)) {
        for i in 0..batch.len() {
            let seq = batch.sequence(i);
            let k = 1.0 / seq.len().max(1) as f64;
            for &t in seq {
                f(i, t as usize, k);
            }
        }
    }
}

impl ModelBackend<f64> for TanhBag {
    fn name(&self) -> &'static str {
        "tanh_bag"
    }
    fn num_params(&self) -> usize {
        self.vocab * self.outputs
    }
    fn num_outputs(&self) -> usize {
        self.outputs
    }
    fn vocab_size(&self) -> usize {
        self.vocab
    }
    fn init_params(&self, seed: u64, theta: &mut [f64]) {
        let mut rng = DefaultRng::seed_from_u64(seed);
        for v in theta {
            *v = 0.5 * bilevel_core::random::normal(&mut rng);
        }
    }
    fn forward(&self, theta: &[f64], batch: &TokenBatch<'_>, logits: &mut [f64]) {
        let c = self.outputs;
        logits.fill(0.0);
        Self::each(batch, |i, t, k| {
            for j in 0..c {
                logits[i * c + j] += k * theta[t * c + j].tanh();
            }
        });
    }
    fn vjp(&self, theta: &[f64], batch: &TokenBatch<'_>, u: &[f64], grad: &mut [f64]) {
        let c = self.outputs;
        grad.fill(0.0);
        Self::each(batch, |i, t, k| {
            for j in 0..c {
                let th = theta[t * c + j].tanh();
                grad[t * c + j] += k * u[i * c + j] * (1.0 - th * th);
            }
        });
    }
    fn jvp(&self, theta: &[f64], batch: &TokenBatch<'_>, v: &[f64], out: &mut [f64]) {
        let c = self.outputs;
        out.fill(0.0);
        Self::each(batch, |i, t, k| {
            for j in 0..c {
                let th = theta[t * c + j].tanh();
                out[i * c + j] += k * (1.0 - th * th) * v[t * c + j];
            }
        });
    }
    fn curvature(
        &self,
        theta: &[f64],
        batch: &TokenBatch<'_>,
        u: &[f64],
        v: &[f64],
        out: &mut [f64],
    ) {
        let c = self.outputs;
        out.fill(0.0);
        Self::each(batch, |i, t, k| {
            for j in 0..c {
                let th = theta[t * c + j].tanh();
                out[t * c + j] += k * u[i * c + j] * (-2.0 * th * (1.0 - th * th)) * v[t * c + j];
            }
        });
    }
}

/// Builds `tanh_bag` models with an `outputs` option.
pub struct TestRegistry;

impl ModelRegistry for TestRegistry {
    fn kinds(&self) -> Vec<String> {
        vec!["tanh_bag".into()]
    }
    fn build(
        &self,
        model: &ModelDef,
        ctx: &ModelContext<'_>,
    ) -> Result<Arc<dyn ModelBackend<f64>>, (String, String)> {
        if model.kind != "tanh_bag" {
            return Err((
                String::new(),
                format!("unknown model kind `{}`", model.kind),
            ));
        }
        let mut outputs = 2;
        for (k, v, _) in &model.options {
            match k.as_str() {
                "outputs" => {
                    outputs = v
                        .parse()
                        .map_err(|_| (k.clone(), format!("`{v}` is not a whole number")))?;
                }
                _ => return Err((k.clone(), format!("unknown option `{k}`"))),
            }
        }
        Ok(Arc::new(TanhBag {
            vocab: ctx.vocab.len() + 1,
            outputs,
        }))
    }
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/text")
}

const DATA: &str = r#"
data train = tsv("reviews.tsv") {
  header = true, label = "label", label_encoding = class(2), text = "text",
  vocab = "vocab.txt", max_len = 4, group = "group", batch = 5, seed = 1,
  split = [0.0, 0.75], split_seed = 3
}
data val = tsv("reviews.tsv") {
  header = true, label = "label", label_encoding = class(2), text = "text",
  vocab = "vocab.txt", max_len = 4, group = "group", batch = 4, seed = 2,
  split = [0.75, 1.0], split_seed = 3
}
"#;

/// Upper: the model's parameters; lower: one logistic head per group.
fn hyper_representation() -> String {
    format!(
        r#"bilevel "hr" version 1
{DATA}
model phi: tanh_bag {{ outputs = 3 }}
dims {{ T = train.groups, h = phi.outputs }}
upper {{
  var theta: params(phi) init glorot(seed = 5)
  minimize mean over s in val {{ logistic_loss(dot(heads[s.group], phi(theta, s.text)), 2 * s.y - 1) }}
}}
lower {{
  var heads: matrix[T, h] init uniform(low = -0.5, high = 0.5, seed = 2)
  minimize mean over s in train {{ logistic_loss(dot(heads[s.group], phi(theta, s.text)), 2 * s.y - 1) }}
           + 0.5 * 0.1 * norm2sq(heads)
}}
"#
    )
}

/// Upper: a log-regularisation weight; lower: the model's parameters.
fn hyperparameter() -> String {
    format!(
        r#"bilevel "hpo" version 1
{DATA}
model phi: tanh_bag {{ outputs = 2 }}
upper {{
  var lam: scalar init 0.3
  minimize mean over s in val {{ softmax_xent(phi(w, s.text), s.label) }}
}}
lower {{
  var w: params(phi) init glorot(seed = 4)
  minimize mean over s in train {{ sigmoid(lam) * softmax_xent(phi(w, s.text), s.label) }}
           + 0.5 * exp(lam) * norm2sq(w)
}}
assume strongly_convex(w, mu = 0.1)
"#
    )
}

fn compile(src: &str) -> Compiled {
    match Compiled::from_source_with(src, &dir(), &TestRegistry) {
        Ok(c) => c,
        Err(d) => panic!("{}", bilevel_dsl::render(&d, "model.bilevel", src)),
    }
}

fn perturbed(v: &[f64], i: usize, e: f64) -> Vec<f64> {
    let mut w = v.to_vec();
    w[i] += e;
    w
}

fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    let scale = want.iter().fold(1e-3_f64, |m, v| m.max(v.abs()));
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-6 * scale,
            "{what}[{i}]: {a} vs finite difference {b}"
        );
    }
}

/// Every oracle against central differences at a random point and a
/// fixed minibatch.
fn check_oracles(c: &mut Compiled) {
    let e = 1e-5;
    let mut rng = DefaultRng::seed_from_u64(9);
    let x = c.initial_x();
    let y = c.initial_y();
    let (dx, dy) = (c.dim_x(), c.dim_y());
    let su = c.sample(Level::Upper, &mut rng);
    let sl = c.sample(Level::Lower, &mut rng);
    let v: Vec<f64> = (0..dy).map(|k| ((k * 7 % 5) as f64 - 2.0) / 3.0).collect();

    // ∇y g and ∇x g against differences of g.
    let mut gy = vec![0.0; dy];
    c.grad_y_g(&x, &y, &sl, &mut gy);
    let fd: Vec<f64> = (0..dy)
        .map(|i| {
            (c.g_value(&x, &perturbed(&y, i, e), &sl) - c.g_value(&x, &perturbed(&y, i, -e), &sl))
                / (2.0 * e)
        })
        .collect();
    assert_close("grad_y_g", &gy, &fd);
    let mut gx = vec![0.0; dx];
    c.grad_x_g(&x, &y, &sl, &mut gx);
    let fd: Vec<f64> = (0..dx)
        .map(|i| {
            (c.g_value(&perturbed(&x, i, e), &y, &sl) - c.g_value(&perturbed(&x, i, -e), &y, &sl))
                / (2.0 * e)
        })
        .collect();
    assert_close("grad_x_g", &gx, &fd);

    // ∇x f against differences of f.
    let mut fx = vec![0.0; dx];
    c.grad_x_f(&x, &y, &su, &mut fx);
    let fd: Vec<f64> = (0..dx)
        .map(|i| {
            (c.f_value(&perturbed(&x, i, e), &y, &su) - c.f_value(&perturbed(&x, i, -e), &y, &su))
                / (2.0 * e)
        })
        .collect();
    assert_close("grad_x_f", &fx, &fd);

    // ∇²yy g·v and ∇²xy g·v against differences of ∇y g.
    let mut hv = vec![0.0; dy];
    c.hvp_yy(&x, &y, &v, &sl, &mut hv);
    let yp: Vec<f64> = y.iter().zip(&v).map(|(a, b)| a + e * b).collect();
    let ym: Vec<f64> = y.iter().zip(&v).map(|(a, b)| a - e * b).collect();
    let (mut gp, mut gm) = (vec![0.0; dy], vec![0.0; dy]);
    c.grad_y_g(&x, &yp, &sl, &mut gp);
    c.grad_y_g(&x, &ym, &sl, &mut gm);
    let fd: Vec<f64> = gp
        .iter()
        .zip(&gm)
        .map(|(p, m)| (p - m) / (2.0 * e))
        .collect();
    assert_close("hvp_yy", &hv, &fd);
    let mut jv = vec![0.0; dx];
    c.jvp_xy(&x, &y, &v, &sl, &mut jv);
    let fd: Vec<f64> = (0..dx)
        .map(|i| {
            c.grad_y_g(&perturbed(&x, i, e), &y, &sl, &mut gp);
            c.grad_y_g(&perturbed(&x, i, -e), &y, &sl, &mut gm);
            gp.iter()
                .zip(&gm)
                .zip(&v)
                .map(|((p, m), w)| (p - m) * w)
                .sum::<f64>()
                / (2.0 * e)
        })
        .collect();
    assert_close("jvp_xy", &jv, &fd);
}

#[test]
fn model_of_the_upper_variable_has_exact_oracles() {
    let mut c = compile(&hyper_representation());
    let p = c.program();
    // 16 rows: 12 train, 4 validation; 3 groups; 10 words + <unk>.
    assert_eq!(p.loaded.tables[0].as_ref().map(|t| t.rows), Some(12));
    assert_eq!(p.loaded.tables[1].as_ref().map(|t| t.rows), Some(4));
    assert_eq!(p.dim_x, 11 * 3);
    assert_eq!(p.dim_y, 3 * 3);
    // The certificate rounds μ down by its stated relative margin.
    let mu = p.mu.expect("certified mu");
    assert!(mu <= 0.1 && mu > 0.1 * (1.0 - 1e-12), "{mu}");
    check_oracles(&mut c);
}

#[test]
fn model_of_the_lower_variable_has_exact_second_order_oracles() {
    let mut c = compile(&hyperparameter());
    assert_eq!(c.program().dim_y, 11 * 2);
    check_oracles(&mut c);
}

#[test]
fn text_source_tokenizes_splits_and_numbers_groups() {
    let c = compile(&hyperparameter());
    let p = c.program();
    let (Some(train), Some(val)) = (&p.loaded.tables[0], &p.loaded.tables[1]) else {
        panic!("tables load");
    };
    assert_eq!(train.group_names, ["dress", "pants", "tops"]);
    assert_eq!(train.rows + val.rows, 16);
    for t in [train, val] {
        assert_eq!(t.offsets.len(), t.rows + 1);
        for r in 0..t.rows {
            // At most max_len tokens, all known words (ids 1..=10).
            assert!(t.text(r).len() <= 4);
            assert!(t.text(r).iter().all(|&id| (1..=10).contains(&id)));
        }
    }
    // "unknownword only" has no known word: an empty sequence.
    let empty = (0..train.rows).any(|r| train.text(r).is_empty())
        || (0..val.rows).any(|r| val.text(r).is_empty());
    assert!(empty);
}

#[test]
fn specs_with_models_need_a_registry_and_valid_options() {
    let src = hyperparameter();
    let err = Compiled::from_source(&src, &dir()).expect_err("no registry");
    assert_eq!(err[0].code.as_str(), "E0404");
    let bad = src.replace("outputs = 2", "outputs = two");
    let err = Compiled::from_source_with(&bad, &dir(), &TestRegistry).expect_err("bad option");
    let text = bilevel_dsl::render(&err, "m.bilevel", &bad);
    assert!(text.contains("`two` is not a whole number"), "{text}");
    let bad = src.replace(
        "phi(w, s.text), s.label) }\n}",
        "phi(w, s.label), s.label) }\n}",
    );
    let err = Compiled::from_source_with(&bad, &dir(), &TestRegistry).expect_err("not text");
    assert_eq!(err[0].code.as_str(), "E0202");
}

/// Every oracle once on a compiled spec; none may panic.
fn all_oracles(c: &mut Compiled) {
    let mut rng = DefaultRng::seed_from_u64(3);
    let (x, y) = (c.initial_x(), c.initial_y());
    let (dx, dy) = (c.dim_x(), c.dim_y());
    let su = c.sample(Level::Upper, &mut rng);
    let sl = c.sample(Level::Lower, &mut rng);
    let v = vec![0.5; dy];
    let (mut ox, mut oy) = (vec![0.0; dx], vec![0.0; dy]);
    c.grad_x_f(&x, &y, &su, &mut ox);
    c.grad_y_g(&x, &y, &sl, &mut oy);
    c.grad_x_g(&x, &y, &sl, &mut ox);
    c.hvp_yy(&x, &y, &v, &sl, &mut oy);
    c.jvp_xy(&x, &y, &v, &sl, &mut ox);
    let _ = c.f_value(&x, &y, &su);
    let _ = c.g_value(&x, &y, &sl);
    let _ = c.metrics(&x, &y);
    if c.use_tasks().is_ok() {
        let t = c.sample(Level::Upper, &mut rng);
        c.grad_y_g(&x, &y, &t, &mut oy);
    }
}

fn mutated_model_spec() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let words = [
        "phi",
        "s.text",
        "s.group",
        "s.label",
        "params(phi)",
        "theta",
        "w",
        "heads",
        "(",
        ")",
        ",",
        "{",
        "}",
        "[",
        "]",
        "mean over s in train",
        "correct",
        "split = [0.5, 0.2]",
        "max_len = 0",
        "group = \"nope\"",
        "text = \"label\"",
        "vocab = \"missing.txt\"",
        "outputs = 0",
        "label_noise = 0.9",
        "0",
        "1e9",
        "-",
    ];
    let sources = vec![hyper_representation(), hyperparameter()];
    (
        prop::sample::select(sources),
        any::<prop::sample::Index>(),
        0usize..30,
        prop::collection::vec(prop::sample::select(words.to_vec()), 0..4),
    )
        .prop_map(|(src, at, len, ws)| {
            let cut = at.index(src.len().max(1));
            let end = (cut + len).min(src.len());
            format!("{}{}{}", &src[..cut], ws.join(" "), &src[end..])
        })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 128, .. proptest::prelude::ProptestConfig::default() })]

    /// Mutated model specs either fail with diagnostics or compile and
    /// answer every oracle without a panic.
    #[test]
    fn mutated_model_specs_never_panic(src in mutated_model_spec()) {
        if let Ok(mut c) = Compiled::from_source_with(&src, &dir(), &TestRegistry) {
            all_oracles(&mut c);
        }
    }
}

/// The lowered IR of both model specs: one batched model node per reduction
/// in the outer tape, a row read per sample in the body.
#[test]
fn lowered_ir_of_the_model_specs() {
    for (name, src) in [("hr", hyper_representation()), ("hpo", hyperparameter())] {
        let p = bilevel_dsl::build_with(&src, &dir(), Some(&TestRegistry))
            .unwrap_or_else(|d| panic!("{}", bilevel_dsl::render(&d, name, &src)));
        insta::assert_snapshot!(
            format!("model_ir_{name}"),
            format!("# f\n{}\n# g\n{}", p.f.dump(), p.g.dump())
        );
    }
}
