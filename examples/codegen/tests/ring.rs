//! The generated sample ring (`bilevel codegen --data ring`, docs/codegen.md):
//! filled with exactly a table's rows in order, a ring module draws the
//! const module's minibatches and gives its bits on every oracle (f64 with
//! std's functions, f32 with libm) and the same BO-REP and SLIP iterates;
//! a full ring overwrites its oldest rows; an empty or part-filled ring
//! draws min(batch, rows) samples from the rows present, and `push` refuses
//! rows the loader would refuse.

use std::path::Path;

use bilevel_core::oracle::{
    grad_hvp_jvp, grads_f, hvp_jvp, CrossJvp, Level, LowerGradX, LowerGradY, LowerHvp, LowerValue,
    Oracle, UpperGradX, UpperGradY, UpperValue,
};
use bilevel_core::random::normal;
use bilevel_core::solver::{BoRep, BoRepConfig, Slip, SlipConfig, Solver, SolverState};
use bilevel_core::DefaultRng;
use bilevel_dsl::{Compiled, Table};
use rand_core::SeedableRng;

mod gen {
    include!(concat!(env!("OUT_DIR"), "/hpo_f64.rs"));
    include!(concat!(env!("OUT_DIR"), "/ridge_f64.rs"));
    include!(concat!(env!("OUT_DIR"), "/hpo_ring_f64.rs"));
    include!(concat!(env!("OUT_DIR"), "/ridge_ring_f64.rs"));
    include!(concat!(env!("OUT_DIR"), "/seq_const_f64.rs"));
    include!(concat!(env!("OUT_DIR"), "/seq_ring_f64.rs"));
    include!(concat!(env!("OUT_DIR"), "/hyperclean_f64.rs"));
    include!(concat!(env!("OUT_DIR"), "/hyperclean_valring_f64.rs"));
}
use bilevel_codegen_check as lib;

/// The tables of an example spec, as the interpreter loaded them.
fn tables(name: &str) -> Vec<Table> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../specs")
        .join(name);
    let src = std::fs::read_to_string(&path).expect("spec");
    let c = Compiled::from_source(&src, path.parent().expect("folder")).expect("spec compiles");
    c.program()
        .loaded
        .tables
        .iter()
        .map(|t| t.clone().expect("a table source"))
        .collect()
}

/// Row `r` of `t`: features (as `T`), label, weight (1 without a column).
fn row<T: Copy + Default, const W: usize>(
    t: &Table,
    r: usize,
    cv: impl Fn(f64) -> T,
) -> ([T; W], T, T) {
    let mut x = [T::default(); W];
    for (k, v) in x.iter_mut().enumerate() {
        *v = cv(t.x[r * t.features + k]);
    }
    let l = t.labels.get(r).copied().unwrap_or(0.0);
    let w = t.weights.get(r).copied().unwrap_or(1.0);
    (x, cv(l), cv(w))
}

/// Pushes the first `n` rows of the tables into hpo's rings (train has
/// weights, val not).
macro_rules! fill_hpo {
    ($p:expr, $m:path, $t:ty, $tabs:expr, $n:expr) => {{
        use $m as m;
        let cv = |v: f64| v as $t;
        for r in 0..$n.min($tabs[0].rows) {
            let (x, l, w) = row::<$t, { m::TRAIN_FEATURES }>(&$tabs[0], r, cv);
            $p.rings.train.push(&x, l, w).expect("a table row");
        }
        for r in 0..$n.min($tabs[1].rows) {
            let (x, l, _) = row::<$t, { m::VAL_FEATURES }>(&$tabs[1], r, cv);
            $p.rings.val.push(&x, l).expect("a table row");
        }
    }};
}

/// The same for firmware_ridge (labels, no weights), rows `from..to`.
macro_rules! fill_ridge {
    ($p:expr, $m:path, $t:ty, $tabs:expr, $range:expr) => {{
        use $m as m;
        let cv = |v: f64| v as $t;
        for r in $range.clone() {
            let r: usize = r;
            if r < $tabs[0].rows {
                let (x, l, _) = row::<$t, { m::TRAIN_FEATURES }>(&$tabs[0], r, cv);
                $p.rings.train.push(&x, l).expect("a table row");
            }
            if r < $tabs[1].rows {
                let (x, l, _) = row::<$t, { m::VAL_FEATURES }>(&$tabs[1], r, cv);
                $p.rings.val.push(&x, l).expect("a table row");
            }
        }
    }};
}

/// Every oracle output at (x, y, v), as f64 bits.
macro_rules! outputs {
    ($o:expr, $t:ty, $x:expr, $y:expr, $v:expr, $su:expr, $sl:expr) => {{
        let o = $o;
        let cv = |a: &[f64]| a.iter().map(|&v| v as $t).collect::<Vec<$t>>();
        let (x, y, v) = (cv($x), cv($y), cv($v));
        let (dx, dy) = (x.len(), y.len());
        let mut r: Vec<Vec<$t>> = Vec::new();
        let mut b = vec![0.0 as $t; dx];
        o.grad_x_f(&x, &y, $su, &mut b);
        r.push(b);
        let mut b = vec![0.0 as $t; dy];
        o.grad_y_f(&x, &y, $su, &mut b);
        r.push(b);
        let (mut gx, mut gy) = (vec![0.0 as $t; dx], vec![0.0 as $t; dy]);
        grads_f(o, &x, &y, $su, &mut gx, &mut gy);
        r.push(gx);
        r.push(gy);
        let mut b = vec![0.0 as $t; dy];
        o.grad_y_g(&x, &y, $sl, &mut b);
        r.push(b);
        let mut b = vec![0.0 as $t; dx];
        o.grad_x_g(&x, &y, $sl, &mut b);
        r.push(b);
        let mut b = vec![0.0 as $t; dy];
        o.hvp_yy(&x, &y, &v, $sl, &mut b);
        r.push(b);
        let mut b = vec![0.0 as $t; dx];
        o.jvp_xy(&x, &y, &v, $sl, &mut b);
        r.push(b);
        let (mut hv, mut jv) = (vec![0.0 as $t; dy], vec![0.0 as $t; dx]);
        hvp_jvp(o, &x, &y, &v, $sl, (&mut hv, &mut jv));
        r.push(hv);
        r.push(jv);
        let (mut gy, mut hv, mut jv) = (
            vec![0.0 as $t; dy],
            vec![0.0 as $t; dy],
            vec![0.0 as $t; dx],
        );
        grad_hvp_jvp(o, &x, &y, &v, $sl, (&mut gy, &mut hv, &mut jv));
        r.push(gy);
        r.push(hv);
        r.push(jv);
        r.push(vec![o.f_value(&x, &y, $su)]);
        r.push(vec![o.g_value(&x, &y, $sl)]);
        r.into_iter()
            .map(|v| {
                v.into_iter()
                    .map(|e| f64::from(e).to_bits())
                    .collect::<Vec<u64>>()
            })
            .collect::<Vec<Vec<u64>>>()
    }};
}

/// Random (x, y, v) around (x0, y0).
fn point(rng: &mut DefaultRng, x0: &[f64], y0: &[f64]) -> [Vec<f64>; 3] {
    let mut r = |b: &[f64]| b.iter().map(|&c| c + 0.5 * normal(rng)).collect::<Vec<_>>();
    [r(x0), r(y0), r(&vec![0.0; y0.len()])]
}

/// 100 points: the const module `$c` and the ring module `$r` (rings filled
/// by `$fill`) draw the same minibatches (same fields, compared through
/// `Debug`) and give the same bits on all 15 outputs.
macro_rules! same_as_const {
    ($c:path, $r:path, $t:ty, |$p:ident| $fill:expr) => {{
        use $c as mc;
        use $r as mr;
        let mut a = Box::new(mc::Problem::new());
        let mut $p = Box::new(mr::Problem::new());
        $fill;
        assert!($p.ready());
        let x0: Vec<f64> = mc::X0.iter().map(|&v| f64::from(v)).collect();
        let y0: Vec<f64> = mc::Y0.iter().map(|&v| f64::from(v)).collect();
        let mut rng = DefaultRng::seed_from_u64(2026);
        let mut n = 0;
        for k in 0..100u64 {
            let (mut r1, mut r2) = (DefaultRng::seed_from_u64(k), DefaultRng::seed_from_u64(k));
            let (su, sl) = (
                a.sample(Level::Upper, &mut r1),
                a.sample(Level::Lower, &mut r1),
            );
            let (ru, rl) = (
                $p.sample(Level::Upper, &mut r2),
                $p.sample(Level::Lower, &mut r2),
            );
            assert_eq!(format!("{su:?}"), format!("{ru:?}"), "upper minibatch {k}");
            assert_eq!(format!("{sl:?}"), format!("{rl:?}"), "lower minibatch {k}");
            let [x, y, v] = point(&mut rng, &x0, &y0);
            let want = outputs!(&mut *a, $t, &x, &y, &v, &su, &sl);
            let got = outputs!(&mut *$p, $t, &x, &y, &v, &ru, &rl);
            assert_eq!(want, got, "outputs at point {k}");
            n += want.len();
        }
        n
    }};
}

#[test]
fn hpo_ring_filled_with_the_tables_gives_the_const_bits() {
    let tabs = tables("hpo_logreg.bilevel");
    let all = usize::MAX;
    let n = same_as_const!(gen::hpo_f64, gen::hpo_ring_f64, f64, |p| fill_hpo!(
        p,
        gen::hpo_ring_f64,
        f64,
        tabs,
        all
    ));
    assert_eq!(n, 1500);
    same_as_const!(lib::hpo_f32, lib::hpo_ring_f32, f32, |p| fill_hpo!(
        p,
        lib::hpo_ring_f32,
        f32,
        tabs,
        all
    ));
    same_as_const!(lib::hpo_f64, lib::hpo_ring_f64, f64, |p| fill_hpo!(
        p,
        lib::hpo_ring_f64,
        f64,
        tabs,
        all
    ));
}

#[test]
fn ridge_ring_filled_with_the_tables_gives_the_const_bits() {
    let tabs = tables("firmware_ridge.bilevel");
    let rows = 0..tabs[0].rows.max(tabs[1].rows);
    same_as_const!(gen::ridge_f64, gen::ridge_ring_f64, f64, |p| fill_ridge!(
        p,
        gen::ridge_ring_f64,
        f64,
        tabs,
        rows
    ));
    same_as_const!(lib::ridge_f32, lib::ridge_ring_f32, f32, |p| fill_ridge!(
        p,
        lib::ridge_ring_f32,
        f32,
        tabs,
        rows
    ));
}

/// The sequential sampler (`examples/codegen/specs/seq_logreg.bilevel`),
/// which walks the slots modulo the rows, wrapping inside a minibatch.
#[test]
fn sequential_ring_filled_with_the_tables_gives_the_const_bits() {
    let tabs = tables("../codegen/specs/seq_logreg.bilevel");
    let all = usize::MAX;
    same_as_const!(gen::seq_const_f64, gen::seq_ring_f64, f64, |p| fill_hpo!(
        p,
        gen::seq_ring_f64,
        f64,
        tabs,
        all
    ));
}

/// A module with a const table (hyperclean's train, shuffled) and a ring
/// (val, `replace`): the draws keep the interpreter's source order, so the
/// filled ring gives the const module's bits; `push` checks `class(3)`
/// labels as the loader does.
#[test]
fn a_mixed_const_and_ring_module_gives_the_const_bits_and_checks_class_labels() {
    use gen::hyperclean_valring_f64 as m;
    let tabs = tables("hyperclean.bilevel");
    same_as_const!(gen::hyperclean_f64, gen::hyperclean_valring_f64, f64, |p| {
        for r in 0..tabs[1].rows {
            let (x, l, _) = row::<f64, { m::VAL_FEATURES }>(&tabs[1], r, |v| v);
            p.rings.val.push(&x, l).expect("a table row");
        }
    });
    let mut p = Box::new(m::Problem::new());
    let x = [0.25; m::VAL_FEATURES];
    for bad in [3.0, 1.5, -1.0, f64::NAN] {
        assert!(p.rings.val.push(&x, bad).is_err(), "label {bad}");
    }
    assert!(p.rings.val.is_empty());
    for good in [0.0, 1.0, 2.0] {
        assert_eq!(p.rings.val.push(&x, good), Ok(false), "label {good}");
    }
    assert_eq!(p.rings.val.len(), 3);
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|v| v.to_bits()).collect()
}

/// BO-REP and SLIP, 100 iterations each: the same iterates, bit for bit,
/// on the const module and on the ring module filled with the tables.
#[test]
fn solver_runs_on_a_filled_ring_give_the_const_trace() {
    let tabs = tables("hpo_logreg.bilevel");
    let x0 = gen::hpo_f64::X0.to_vec();
    let y0 = gen::hpo_f64::Y0.to_vec();
    for borep in [true, false] {
        let mut a = Box::new(gen::hpo_f64::Problem::new());
        let mut b = Box::new(gen::hpo_ring_f64::Problem::new());
        fill_hpo!(b, gen::hpo_ring_f64, f64, tabs, usize::MAX);
        let (mut ra, mut rb) = (DefaultRng::seed_from_u64(7), DefaultRng::seed_from_u64(7));
        if borep {
            let cfg = BoRepConfig {
                eta: 0.01,
                gamma: 0.1,
                nu: 0.1,
                ..BoRepConfig::default()
            };
            let mut sa = BoRep::new(cfg, x0.clone(), y0.clone()).expect("solver");
            let mut sb = BoRep::new(cfg, x0.clone(), y0.clone()).expect("solver");
            sa.init(&mut *a, &mut ra).expect("init");
            sb.init(&mut *b, &mut rb).expect("init");
            for t in 0..100 {
                sa.step(&mut *a, &mut ra).expect("step");
                sb.step(&mut *b, &mut rb).expect("step");
                assert_eq!(bits(sa.x()), bits(sb.x()), "bo-rep x at {t}");
                assert_eq!(bits(sa.y()), bits(sb.y()), "bo-rep y at {t}");
            }
        } else {
            let cfg = SlipConfig {
                eta: 0.01,
                gamma: 0.1,
                nu: 0.1,
                ..SlipConfig::default()
            };
            let mut sa = Slip::new(cfg, x0.clone(), y0.clone()).expect("solver");
            let mut sb = Slip::new(cfg, x0.clone(), y0.clone()).expect("solver");
            sa.init(&mut *a, &mut ra).expect("init");
            sb.init(&mut *b, &mut rb).expect("init");
            for t in 0..100 {
                sa.step(&mut *a, &mut ra).expect("step");
                sb.step(&mut *b, &mut rb).expect("step");
                assert_eq!(bits(sa.x()), bits(sb.x()), "slip x at {t}");
                assert_eq!(bits(sa.y()), bits(sb.y()), "slip y at {t}");
            }
        }
    }
}

/// A ring of 40 (train) / 33 (val) rows fed 100 table rows keeps the last
/// ones: slot s holds the newest row r with r ≡ s (mod capacity). Checked
/// through the oracles: the ring module's minibatch (slots) and the const
/// module's minibatch of the rows those slots hold give the same bits.
#[test]
fn a_full_ring_overwrites_its_oldest_rows() {
    use lib::ridge_ring40_f64 as m;
    let tabs = tables("firmware_ridge.bilevel");
    let mut p = Box::new(m::Problem::new());
    let mut c = Box::new(gen::ridge_f64::Problem::new());
    let cv = |v: f64| v;
    for r in 0..100usize {
        let (x, l, _) = row::<f64, { m::TRAIN_FEATURES }>(&tabs[0], r, cv);
        let over = p.rings.train.push(&x, l).expect("row");
        assert_eq!(over, r >= m::TRAIN_CAPACITY, "train push {r}");
        let (x, l, _) = row::<f64, { m::VAL_FEATURES }>(&tabs[1], r, cv);
        let over = p.rings.val.push(&x, l).expect("row");
        assert_eq!(over, r >= m::VAL_CAPACITY, "val push {r}");
        assert_eq!(p.rings.train.len(), (r + 1).min(40));
        assert_eq!(p.rings.val.len(), (r + 1).min(33));
    }
    assert!(p.rings.train.is_full() && p.rings.val.is_full() && p.ready());
    assert_eq!((p.rings.train.capacity(), p.rings.val.capacity()), (40, 33));
    let newest = |slot: usize, cap: usize| (0..100usize).rev().find(|r| r % cap == slot).unwrap();
    let x0 = m::X0.to_vec();
    let y0 = m::Y0.to_vec();
    let mut rng = DefaultRng::seed_from_u64(3);
    let mut seen = [false; 40];
    for k in 0..50u64 {
        let mut r = DefaultRng::seed_from_u64(k);
        let (ru, rl) = (
            p.sample(Level::Upper, &mut r),
            p.sample(Level::Lower, &mut r),
        );
        assert_eq!((ru.len1, rl.len0), (32, 32));
        let rows_u: Vec<u64> = ru
            .rows1
            .iter()
            .map(|&s| newest(s as usize, 33) as u64)
            .collect();
        let rows_l: Vec<u64> = rl
            .rows0
            .iter()
            .map(|&s| newest(s as usize, 40) as u64)
            .collect();
        for &s in &rl.rows0 {
            seen[s as usize] = true;
        }
        let mut su = gen::ridge_f64::Sample::new();
        let mut sl = gen::ridge_f64::Sample::new();
        assert!(su.set(1, &rows_u) && sl.set(0, &rows_l));
        let [x, y, v] = point(&mut rng, &x0, &y0);
        let want = outputs!(&mut *c, f64, &x, &y, &v, &su, &sl);
        let got = outputs!(&mut *p, f64, &x, &y, &v, &ru, &rl);
        assert_eq!(want, got, "point {k}");
    }
    assert!(seen.iter().all(|&s| s), "every slot is drawn");
    // A slot index at or beyond the capacity is refused by `Sample::set`.
    let mut s = m::Sample::new();
    assert!(!s.set(0, &[40]) && s.set(0, &[39]));
    // clear: empty, then refilled like a new ring.
    p.rings.train.clear();
    assert!(p.rings.train.is_empty() && !p.ready());
}

/// An empty ring gives empty minibatches (the data terms vanish: a mean
/// over no samples is 0, no panic); a part-filled one min(batch, rows)
/// samples, all among the rows present; `ready` once every ring holds a
/// minibatch. For the shuffle sampler (hpo), each epoch over n rows is a
/// permutation of them, and a change of n starts a new one.
#[test]
fn empty_and_part_filled_rings_draw_from_the_rows_present() {
    use gen::hpo_ring_f64 as m;
    let tabs = tables("hpo_logreg.bilevel");
    let mut p = Box::new(m::Problem::new());
    let mut rng = DefaultRng::seed_from_u64(1);
    let (su, sl) = (
        p.sample(Level::Upper, &mut rng),
        p.sample(Level::Lower, &mut rng),
    );
    assert_eq!((su.len1, sl.len0), (0, 0));
    let x = m::X0.to_vec();
    let y: Vec<f64> = (0..m::DIM_Y).map(|k| 0.1 * k as f64).collect();
    assert_eq!(p.f_value(&x, &y, &su).to_bits(), 0.0f64.to_bits());
    let reg = 0.5 * x[0].exp() * y.iter().map(|v| v * v).sum::<f64>();
    assert!((p.g_value(&x, &y, &sl) - reg).abs() <= 1e-12 * reg);
    let mut g = vec![0.0; m::DIM_Y];
    p.grad_y_f(&x, &y, &su, &mut g);
    assert!(g.iter().all(|&v| v == 0.0));
    for n in [1usize, 5, 31, 32, 33, 64, 100] {
        p.rings.train.clear();
        p.rings.val.clear();
        fill_hpo!(p, m, f64, tabs, n);
        assert_eq!(p.ready(), n >= 64, "{n} rows");
        assert_eq!(p.rings.train.ready(), n >= 32, "{n} rows");
        // Epochs of the shuffle sampler over n training rows.
        let mut drawn = Vec::new();
        for _ in 0..(3 * n).div_ceil(n.min(32)) {
            let s = p.sample(Level::Lower, &mut rng);
            assert_eq!(s.len0, n.min(32), "{n} rows");
            drawn.extend(s.rows0[..s.len0].iter().map(|&r| r as usize));
        }
        for epoch in drawn.chunks_exact(n).take(3) {
            let mut e = epoch.to_vec();
            e.sort_unstable();
            assert_eq!(e, (0..n).collect::<Vec<_>>(), "{n} rows: an epoch");
        }
        let s = p.sample(Level::Upper, &mut rng);
        assert_eq!(s.len1, n.min(64));
        assert!(s.rows1[..s.len1].iter().all(|&r| (r as usize) < n));
    }
}

/// `push` refuses what the loader refuses (non-finite cells, labels outside
/// the encoding) and changes nothing; pm1 stores a 0 label as −1.
#[test]
fn push_refuses_rows_the_loader_would_refuse() {
    use gen::hpo_ring_f64 as m;
    let mut p = m::Problem::new();
    let x = [0.5; m::TRAIN_FEATURES];
    let mut bad = x;
    bad[3] = f64::NAN;
    assert_eq!(
        p.rings.train.push(&bad, 1.0, 1.0),
        Err(m::RowError::NonFinite)
    );
    assert_eq!(
        p.rings.train.push(&x, 1.0, f64::INFINITY),
        Err(m::RowError::NonFinite)
    );
    assert_eq!(p.rings.train.push(&x, 0.5, 1.0), Err(m::RowError::Label));
    assert_eq!(p.rings.train.push(&x, 2.0, 1.0), Err(m::RowError::Label));
    assert!(p.rings.train.is_empty());
    // A 0 label is stored as −1: both rings give the same loss.
    let mut q = m::Problem::new();
    for l in [0.0, -1.0] {
        let r = if l == 0.0 { &mut p } else { &mut q };
        for _ in 0..32 {
            assert_eq!(r.rings.train.push(&x, l, 1.0), Ok(false));
        }
    }
    let mut rng = DefaultRng::seed_from_u64(5);
    let s = p.sample(Level::Lower, &mut rng);
    let y = vec![0.3; m::DIM_Y];
    let (a, b) = (p.g_value(&m::X0, &y, &s), q.g_value(&m::X0, &y, &s));
    assert_eq!(a.to_bits(), b.to_bits());
}

/// The firmware-style use in the library (`ring_demo`, also built for
/// thumbv7em-none-eabihf): rows from a "sensor" (the tables, streamed),
/// BO-REP steps on the ring; λ moves and stays finite, refused readings are
/// skipped.
#[test]
fn the_demo_adapts_on_streamed_rows() {
    use lib::ridge_ring40_f32 as m;
    let tabs = tables("firmware_ridge.bilevel");
    let mut k = 0usize;
    let mut sensor = || {
        k += 1;
        let val = k.is_multiple_of(3);
        let t = &tabs[usize::from(val)];
        let r = (k / 3) % t.rows;
        let (mut x, y, _) = row::<f32, { m::TRAIN_FEATURES }>(t, r, |v| v as f32);
        if k.is_multiple_of(17) {
            x[0] = f32::NAN; // a failed reading: refused by the ring
        }
        lib::ring_demo::Reading { x, y, val }
    };
    let mut p = m::Problem::new();
    let (lambda, pushed) = lib::ring_demo::adapt(&mut p, &mut sensor, 200).expect("runs");
    assert!(lambda.iter().all(|v| v.is_finite()));
    assert!(lambda.iter().any(|&v| v != 0.0));
    assert!(p.rings.train.is_full() && p.rings.val.is_full());
    assert!(pushed > 200);
}
