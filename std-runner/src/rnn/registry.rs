//! The runner's model registry: `model NAME: rnn { … }` in a spec becomes an
//! [`RnnModel`], in `f64` or (the default, for speed) in `f32` behind an
//! `f64` interface.
//!
//! Options are those of [`RnnConfig::from_options`] plus `vectors` (a GloVe
//! text file, relative to the spec, whose vectors initialise the embedding
//! rows of the words it has), `seed` (for the rows it lacks and for random
//! embeddings) and `precision` (`f32` | `f64`). `vocab` defaults to the
//! vocabulary of the text the model reads, `embed` to the vectors' width.

use std::path::Path;
use std::sync::Arc;

use bilevel_dsl::ModelDef;
use bilevel_dsl::{ModelBackend, ModelContext, ModelRegistry, TokenBatch};

use super::data::WordVectors;
use super::{RnnConfig, RnnError, RnnModel, Vocab};

/// Builds `rnn` models for specs.
#[derive(Debug, Clone, Copy, Default)]
pub struct RnnRegistry;

/// An `f32` model behind the `f64` interface of the dsl: inputs are rounded
/// to `f32`, outputs widened. About twice as fast as the `f64` model.
pub struct F32Model(pub RnnModel<f32>);

fn narrow(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn widen(src: &[f32], dst: &mut [f64]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = f64::from(*s);
    }
}

impl ModelBackend<f64> for F32Model {
    fn name(&self) -> &'static str {
        "rnn"
    }
    fn num_params(&self) -> usize {
        self.0.num_params()
    }
    fn num_outputs(&self) -> usize {
        self.0.num_outputs()
    }
    fn vocab_size(&self) -> usize {
        self.0.vocab_size()
    }
    fn init_params(&self, seed: u64, theta: &mut [f64]) {
        let mut t = vec![0.0f32; theta.len()];
        self.0.init_params(seed, &mut t);
        widen(&t, theta);
    }
    fn forward(&self, theta: &[f64], batch: &TokenBatch<'_>, logits: &mut [f64]) {
        let mut out = vec![0.0f32; logits.len()];
        self.0.forward(&narrow(theta), batch, &mut out);
        widen(&out, logits);
    }
    fn vjp(&self, theta: &[f64], batch: &TokenBatch<'_>, cotangent: &[f64], grad: &mut [f64]) {
        let mut out = vec![0.0f32; grad.len()];
        self.0
            .vjp(&narrow(theta), batch, &narrow(cotangent), &mut out);
        widen(&out, grad);
    }
    fn jvp(&self, theta: &[f64], batch: &TokenBatch<'_>, tangent: &[f64], out: &mut [f64]) {
        let mut o = vec![0.0f32; out.len()];
        self.0.jvp(&narrow(theta), batch, &narrow(tangent), &mut o);
        widen(&o, out);
    }
    fn curvature(
        &self,
        theta: &[f64],
        batch: &TokenBatch<'_>,
        cotangent: &[f64],
        tangent: &[f64],
        out: &mut [f64],
    ) {
        let mut o = vec![0.0f32; out.len()];
        self.0.curvature(
            &narrow(theta),
            batch,
            &narrow(cotangent),
            &narrow(tangent),
            &mut o,
        );
        widen(&o, out);
    }
    fn reverse_second(
        &self,
        theta: &[f64],
        batch: &TokenBatch<'_>,
        cotangent: &[f64],
        cotangent_dot: Option<&[f64]>,
        tangent: &[f64],
        grad: Option<&mut [f64]>,
        out: &mut [f64],
    ) {
        let mut g = grad.as_ref().map(|g| vec![0.0f32; g.len()]);
        let mut o = vec![0.0f32; out.len()];
        let du = cotangent_dot.map(narrow);
        self.0.reverse_second(
            &narrow(theta),
            batch,
            &narrow(cotangent),
            du.as_deref(),
            &narrow(tangent),
            g.as_deref_mut(),
            &mut o,
        );
        // Widened, then added in f64 (as the tape adds the separate products).
        for (dst, src) in [(grad, g), (Some(out), Some(o))] {
            if let (Some(dst), Some(src)) = (dst, src) {
                for (d, &s) in dst.iter_mut().zip(&src) {
                    *d += f64::from(s);
                }
            }
        }
    }
    fn forward_sweeps(&self) -> Option<u64> {
        Some(self.0.forward_sweeps())
    }
}

/// `(option key, message)`: the key lets the diagnostic point at the option.
type BuildError = (String, String);

fn config_error(e: &RnnError, options: &[(String, String)]) -> BuildError {
    let msg = match e {
        RnnError::Config(m) => m.clone(),
        other => other.to_string(),
    };
    // Point at the option the message names, if any.
    let key = options
        .iter()
        .find(|(k, _)| msg.starts_with(&format!("{k} =")) || msg.contains(&format!("`{k}`")))
        .map_or(String::new(), |(k, _)| k.clone());
    (key, msg)
}

impl RnnRegistry {
    fn build_rnn(
        model: &ModelDef,
        ctx: &ModelContext<'_>,
    ) -> Result<Arc<dyn ModelBackend<f64>>, BuildError> {
        let mut options: Vec<(String, String)> = Vec::new();
        let mut vectors: Option<String> = None;
        let mut seed = 0u64;
        let mut f32_precision = true;
        for (k, v, _) in &model.options {
            match k.as_str() {
                "vectors" => vectors = Some(v.clone()),
                "seed" => {
                    seed = v
                        .parse()
                        .map_err(|_| (k.clone(), format!("seed = {v}: expected a whole number")))?;
                }
                "precision" => match v.as_str() {
                    "f32" => f32_precision = true,
                    "f64" => f32_precision = false,
                    _ => return Err((k.clone(), format!("precision = {v}: expected f32 or f64"))),
                },
                _ => options.push((k.clone(), v.clone())),
            }
        }
        let has = |options: &[(String, String)], key: &str| options.iter().any(|(k, _)| k == key);
        if !has(&options, "vocab") && !ctx.vocab.is_empty() {
            options.push(("vocab".into(), (ctx.vocab.len() + 1).to_string()));
        }
        let table = match &vectors {
            Some(path) => {
                let wv = WordVectors::load(&ctx.base.join(Path::new(path)))
                    .map_err(|e| ("vectors".to_string(), e.to_string()))?;
                if !has(&options, "embed") {
                    options.push(("embed".into(), wv.dim.to_string()));
                }
                let vocab = Vocab::new(ctx.vocab.iter().cloned());
                Some((wv.table_for(&vocab, seed).0, wv.dim, vocab.len()))
            }
            None => None,
        };
        let pairs: Vec<(&str, &str)> = options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let cfg = RnnConfig::from_options(&pairs).map_err(|e| config_error(&e, &options))?;
        let table = match table {
            Some((t, dim, rows)) => {
                if dim != cfg.embed {
                    return Err((
                        "embed".into(),
                        format!(
                            "embed = {} but the word vectors have {dim} numbers",
                            cfg.embed
                        ),
                    ));
                }
                if rows != cfg.vocab {
                    return Err((
                        "vocab".into(),
                        format!(
                            "vocab = {} but the text's vocabulary has {rows} tokens",
                            cfg.vocab
                        ),
                    ));
                }
                Some(t)
            }
            None => None,
        };
        if f32_precision {
            let m = RnnModel::<f32>::new(cfg, table.as_deref(), seed)
                .map_err(|e| config_error(&e, &options))?;
            Ok(Arc::new(F32Model(m)))
        } else {
            let m = RnnModel::<f64>::new(cfg, table.as_deref(), seed)
                .map_err(|e| config_error(&e, &options))?;
            Ok(Arc::new(m))
        }
    }
}

impl ModelRegistry for RnnRegistry {
    fn kinds(&self) -> Vec<String> {
        vec!["rnn".into()]
    }

    fn build(
        &self,
        model: &ModelDef,
        ctx: &ModelContext<'_>,
    ) -> Result<Arc<dyn ModelBackend<f64>>, BuildError> {
        match model.kind.as_str() {
            "rnn" => Self::build_rnn(model, ctx),
            other => Err((String::new(), format!("unknown model kind `{other}`"))),
        }
    }
}
