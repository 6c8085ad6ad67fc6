//! Calls: the built-in functions with their argument shapes, and model
//! applications `phi(theta, s.text)`.

use crate::ast::{Call, Span};
use crate::diag::did_you_mean;
use crate::hir::{Builtin, Dim, Field, Hir, HirKind, Shape};

use super::convexity::Attr;
use super::{compat, dims_eq, errors, mentions_field, Checker, Def, INITIALISERS};

impl Checker<'_> {
    pub(super) fn call(&mut self, c: &Call) -> Option<Attr> {
        let name = c.func.to_string();
        let span = c.span;
        if let Some(&(Def::Model(m), _)) = self.names.get(&name) {
            return self.model_call(c, m);
        }
        let Some(&(_, b)) = Builtin::ALL.iter().find(|(n, _)| *n == name) else {
            let init = INITIALISERS.contains(&name.as_str());
            let similar = if init {
                None
            } else {
                did_you_mean(&name, Builtin::ALL.iter().map(|(n, _)| *n))
            };
            let d = errors::unknown_function(&name, c.func.span, init, similar);
            self.err(d);
            return None;
        };
        if let Some(a) = c.args.iter().find_map(|a| a.name.as_ref()) {
            let d = errors::builtin_named_arg(&name, a.span);
            self.err(d);
            return None;
        }
        if c.args.len() != b.arity() {
            let d = errors::builtin_arity(&name, b.arity(), c.args.len(), span);
            self.err(d);
            return None;
        }
        let mut args = Vec::new();
        for a in &c.args {
            args.push(self.expr(&a.value));
        }
        let args: Vec<Attr> = args.into_iter().collect::<Option<_>>()?;
        let shape = self.call_shape(c, b, &args)?;
        Some(Self::call_attr(c, b, &args, shape))
    }

    /// The shape of built-in `b` applied to `args`, or `None` after
    /// reporting why the arguments do not fit.
    fn call_shape(&mut self, c: &Call, b: Builtin, args: &[Attr]) -> Option<Shape> {
        let (name, span) = (b.name(), c.span);
        let x = &args[0];
        if b.elementwise() {
            self.domain_check(c, b, args)?;
            return Some(x.shape().clone());
        }
        let d = match b {
            Builtin::Dot | Builtin::SqLoss if !compat(x.shape(), args[1].shape()) => {
                errors::builtin_shapes_differ(name, x.shape(), args[1].shape(), span)
            }
            Builtin::Quad => {
                let (p, v) = (args[0].shape(), args[1].shape());
                let ok = matches!((p.0.as_slice(), v.0.as_slice()), ([m, n], [k]) if dims_eq(m, n) && dims_eq(n, k));
                if !ok {
                    errors::quad_shapes(p, v, span)
                } else if args[0].dep_x != 0 || args[0].dep_y != 0 {
                    errors::quad_matrix_not_constant(c.args[0].value.span)
                } else {
                    return Some(Shape::scalar());
                }
            }
            Builtin::LogisticLoss if x.shape().rank() != 0 || args[1].shape().rank() != 0 => {
                errors::logistic_loss_shapes(span)
            }
            Builtin::Correct if x.shape().rank() > 1 || args[1].shape().rank() != 0 => {
                errors::correct_shapes(x.shape(), args[1].shape(), span)
            }
            Builtin::Correct
                if x.shape().rank() == 1
                    && matches!(
                        (args[1].konst, x.shape().0[0].known()),
                        (Some(v), Some(k)) if v.fract() != 0.0 || v < 0.0 || v >= k as f64
                    ) =>
            {
                let k = x.shape().0[0].known().unwrap_or(0);
                errors::class_out_of_range(args[1].konst.unwrap_or(0.0), k, c.args[1].value.span)
            }
            Builtin::SoftmaxXent => {
                if x.shape().rank() != 1 || args[1].shape().rank() != 0 {
                    errors::softmax_xent_shapes(x.shape(), args[1].shape(), span)
                } else if args[1].int_bound.is_none()
                    && !args[1].konst.is_some_and(|v| v.fract() == 0.0 && v >= 0.0)
                {
                    errors::softmax_class_not_class(c.args[1].value.span)
                } else {
                    let k = x.shape().0[0].known();
                    match (
                        args[1].int_bound.as_ref().and_then(Dim::known),
                        k,
                        args[1].konst,
                    ) {
                        (Some(ib), Some(k), _) if ib != k => {
                            errors::class_count_differs(ib, k, span)
                        }
                        (_, Some(k), Some(v)) if v >= k as f64 => {
                            errors::class_out_of_range(v, k, c.args[1].value.span)
                        }
                        _ => return self.domain_check(c, b, args),
                    }
                }
            }
            _ => return Some(Shape::scalar()),
        };
        self.err(d);
        None
    }

    /// `Some(scalar)` unless the argument of `log` or `sqrt` is a constant
    /// (a number or an array literal) outside the function's domain, which
    /// is reported (E0205).
    fn domain_check(&mut self, c: &Call, b: Builtin, args: &[Attr]) -> Option<Shape> {
        let x = &args[0];
        let vals: &[f64] = match (&x.hir.kind, &x.konst) {
            (_, Some(v)) if x.dep_x == 0 && x.dep_y == 0 => std::slice::from_ref(v),
            (HirKind::Array(v), _) => v,
            _ => &[],
        };
        let bad = vals.iter().copied().find(|&v| match b {
            Builtin::Log => v.is_nan() || v <= 0.0,
            Builtin::Sqrt => v.is_nan() || v < 0.0,
            _ => v.is_nan(),
        });
        if let Some(v) = bad {
            self.err(errors::domain_error(b.name(), v, c.args[0].value.span));
            return None;
        }
        Some(Shape::scalar())
    }

    /// The span of a `correct(…)` call in `h` or in the lets it uses.
    pub(super) fn find_correct(&self, h: &Hir) -> Option<Span> {
        let mut stack = vec![h];
        let mut seen = vec![false; self.lets.len()];
        while let Some(h) = stack.pop() {
            match &h.kind {
                HirKind::Call(Builtin::Correct, _) => return Some(h.span),
                HirKind::Let(i) => {
                    if let (Some(false), Some(Some(l))) = (seen.get(*i), self.lets.get(*i)) {
                        seen[*i] = true;
                        if self.find_correct(&l.hir).is_some() {
                            return Some(h.span);
                        }
                    }
                }
                _ => h.push_children(&mut stack),
            }
        }
        None
    }

    /// `phi(theta, s.text)`: the model's outputs for one sample.
    pub(super) fn model_call(&mut self, c: &Call, m: usize) -> Option<Attr> {
        let name = self.models.get(m)?.name.clone();
        if c.args.len() != 2 || c.args.iter().any(|a| a.name.is_some()) {
            let d = errors::model_arguments(&name, c.span);
            self.err(d);
            return None;
        }
        let theta = self.expr(&c.args[0].value)?;
        self.allow_text = true;
        let input = self.expr(&c.args[1].value);
        self.allow_text = false;
        let input = input?;
        let HirKind::Field(depth, Field::Text) = input.hir.kind else {
            let d = errors::model_input_not_text(&name, c.args[1].value.span);
            self.err(d);
            return None;
        };
        let want = Shape(vec![self.bind_fact(&Dim::Sym(format!("{name}.params")))]);
        if !compat(theta.shape(), &want) {
            let d = errors::model_params_shape(&name, &want, theta.shape(), c.args[0].value.span);
            self.err(d);
            return None;
        }
        if mentions_field(&theta.hir) {
            let d = errors::model_params_use_sample(&name, c.args[0].value.span);
            self.err(d);
            return None;
        }
        let outputs = self.bind_fact(&Dim::Sym(format!("{name}.outputs")));
        let mut a = Attr::leaf(Hir {
            kind: HirKind::Model {
                model: m,
                theta: Box::new(theta.hir.clone()),
                depth,
            },
            shape: Shape(vec![outputs]),
            span: c.span,
        });
        a.dep_x = theta.dep_x;
        a.dep_y = theta.dep_y;
        Some(a)
    }
}
