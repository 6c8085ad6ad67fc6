//! parse → check → load → lower → one oracle call of each kind, on arbitrary
//! bytes. Must never panic, abort, overflow the stack or hang.
#![no_main]

use std::path::Path;

use bilevel_core::oracle::{
    CrossJvp, Level, LowerGradX, LowerGradY, LowerHvp, Oracle, UpperGradX, UpperGradY,
};
use bilevel_core::DefaultRng;
use bilevel_dsl::Compiled;
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;

fuzz_target!(|data: &[u8]| {
    if data.len() > 64 * 1024 {
        return;
    }
    let src = String::from_utf8_lossy(data);
    // Every diagnostic must point inside the input.
    if let Err(diags) = bilevel_dsl::check_source(&src) {
        for d in &diags {
            if let Some(l) = &d.primary {
                assert!(l.span.start <= l.span.end && l.span.end <= src.len(), "{d:?}");
            }
        }
        let _ = bilevel_dsl::render(&diags, "fuzz.bilevel", &src);
        let _ = bilevel_dsl::to_json(&diags, "fuzz.bilevel", &src);
    }
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/specs");
    let Ok(mut c) = Compiled::from_source(&src, &base) else {
        return;
    };
    let mut rng = DefaultRng::seed_from_u64(7);
    let (x, y) = (c.initial_x(), c.initial_y());
    let v = vec![1.0; c.dim_y()];
    let (mut gx, mut gy) = (vec![0.0; c.dim_x()], vec![0.0; c.dim_y()]);
    let lo = c.sample(Level::Lower, &mut rng);
    let up = c.sample(Level::Upper, &mut rng);
    c.grad_x_f(&x, &y, &up, &mut gx);
    c.grad_y_f(&x, &y, &up, &mut gy);
    c.grad_y_g(&x, &y, &lo, &mut gy);
    c.grad_x_g(&x, &y, &lo, &mut gx);
    c.hvp_yy(&x, &y, &v, &lo, &mut gy);
    c.jvp_xy(&x, &y, &v, &lo, &mut gx);
});
