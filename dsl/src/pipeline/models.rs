//! Stage 4: the model backends of `model` declarations, built with the
//! registry, and the facts `name.params` and `name.outputs` they fix.

use std::path::Path;
use std::sync::Arc;

use super::{errors, Stage};
use crate::backend::{ModelContext, ModelRegistry, Models};
use crate::data::Loaded;
use crate::hir::{Hir, HirKind, Spec};

/// The data sources each model is applied to, by model index.
fn model_sources(spec: &Spec) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); spec.models.len()];
    let mut stack: Vec<(&Hir, Vec<usize>)> = vec![(&spec.f, Vec::new()), (&spec.g, Vec::new())];
    for (_, h) in &spec.lets {
        stack.push((h, Vec::new()));
    }
    while let Some((h, scope)) = stack.pop() {
        match &h.kind {
            HirKind::Model {
                model,
                theta,
                depth,
            } => {
                if let (Some(list), Some(&d)) = (
                    out.get_mut(*model),
                    scope
                        .len()
                        .checked_sub(depth + 1)
                        .and_then(|k| scope.get(k)),
                ) {
                    if !list.contains(&d) {
                        list.push(d);
                    }
                }
                stack.push((theta, scope));
            }
            HirKind::Reduce(_, d, body) => {
                let mut inner = scope.clone();
                inner.push(*d);
                stack.push((body, inner));
            }
            HirKind::Neg(x) | HirKind::Transpose(x) => stack.push((x, scope)),
            HirKind::Binary(_, a, b) => {
                stack.push((a, scope.clone()));
                stack.push((b, scope));
            }
            HirKind::Call(_, args) => {
                for a in args {
                    stack.push((a, scope.clone()));
                }
            }
            HirKind::Index(a, idx) => {
                for i in idx {
                    stack.push((i, scope.clone()));
                }
                stack.push((a, scope));
            }
            _ => {}
        }
    }
    out
}

/// The one vocabulary of the text a model reads from `sources` (empty when
/// it reads none), or two of its sources whose vocabularies differ.
fn vocabulary<'a>(loaded: &'a Loaded, sources: &[usize]) -> Result<&'a [String], (usize, usize)> {
    let mut vocab: Option<(&Arc<[String]>, usize)> = None;
    let mut clash = None;
    for &d in sources {
        if let Some(Some(t)) = loaded.tables.get(d) {
            match vocab {
                None => vocab = Some((&t.vocab, d)),
                Some((v, first)) if **v != *t.vocab => clash = Some((first, d)),
                Some(_) => {}
            }
        }
    }
    if let Some(pair) = clash {
        return Err(pair);
    }
    Ok(vocab.map_or(&[], |(v, _)| v))
}

/// Builds the backend of every model with `registry`, and records the facts
/// `name.params` and `name.outputs` in `loaded`.
pub(super) fn build(
    spec: &Spec,
    loaded: &mut Loaded,
    base: &Path,
    registry: Option<&dyn ModelRegistry>,
) -> Stage<Models> {
    let mut models = Vec::new();
    let mut errors = Vec::new();
    let sources = model_sources(spec);
    for (m, def) in spec.models.iter().enumerate() {
        let Some(reg) = registry else {
            errors.push(errors::no_backend(def));
            continue;
        };
        let used = sources.get(m).map_or(&[][..], Vec::as_slice);
        let words = match vocabulary(loaded, used) {
            Ok(w) => w,
            Err((a, b)) => {
                let (a, b) = (&spec.data[a].name, &spec.data[b].name);
                errors.push(errors::vocabularies_differ(def, a, b));
                continue;
            }
        };
        let ctx = ModelContext { base, vocab: words };
        match reg.build(def, &ctx) {
            Ok(b) => {
                if !words.is_empty() && b.vocab_size() < words.len() + 1 {
                    errors.push(errors::vocabulary_too_small(
                        def,
                        b.vocab_size(),
                        words.len() + 1,
                    ));
                    continue;
                }
                let (params, outputs) = (b.num_params() as u64, b.num_outputs() as u64);
                loaded.facts.insert(format!("{}.params", def.name), params);
                loaded
                    .facts
                    .insert(format!("{}.outputs", def.name), outputs);
                models.push(b);
            }
            Err((key, msg)) => errors.push(errors::model_build_failed(def, &key, &msg, reg)),
        }
    }
    if errors.is_empty() {
        Ok(Models(models))
    } else {
        Err(errors)
    }
}
