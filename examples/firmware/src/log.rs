//! The firmware's messages, as semihosting text (default) or defmt frames
//! (feature `defmt`, read by probe-rs over RTT on a real board).

use crate::ridge::{Outcome, BATCH, D, ITERS, N_TRAIN, N_VAL, SEED};

#[cfg(not(feature = "defmt"))]
use crate::text::Line;

#[cfg(feature = "defmt")]
use defmt_rtt as _; // the global defmt logger

/// The job and its settings.
pub fn start() {
    #[cfg(not(feature = "defmt"))]
    {
        Line::new()
            .s("bilevel-firmware: ridge regression on diabetes, ")
            .u(N_TRAIN as u32)
            .s(" train / ")
            .u(N_VAL as u32)
            .s(" val rows x ")
            .u(D as u32)
            .s(" features")
            .emit();
        Line::new()
            .s("per-feature log-regularisation lambda tuned on validation; minibatch ")
            .u(BATCH as u32)
            .s(", ")
            .u(ITERS as u32)
            .s(" iterations, seed ")
            .hex(SEED as u32)
            .emit();
    }
    #[cfg(feature = "defmt")]
    defmt::info!(
        "bilevel-firmware: ridge regression on diabetes, {=usize} train / {=usize} val rows x {=usize} features; minibatch {=usize}, {=u64} iterations, seed {=u64:#x}",
        N_TRAIN,
        N_VAL,
        D,
        BATCH,
        ITERS,
        SEED
    );
}

/// Φ at the initial λ.
pub fn initial(phi0: f32) {
    #[cfg(not(feature = "defmt"))]
    Line::new()
        .s("lambda0 = 0: validation loss of the exact ridge fit Phi = ")
        .f(phi0)
        .emit();
    #[cfg(feature = "defmt")]
    defmt::info!(
        "lambda0 = 0: validation loss of the exact ridge fit Phi = {=f32}",
        phi0
    );
}

/// The best single penalty shared by all features, for comparison.
pub fn uniform(best: Option<(f32, f32)>) {
    #[cfg(not(feature = "defmt"))]
    {
        let mut l = Line::new();
        l.s("best penalty shared by all features (grid): ");
        match best {
            Some((p, c)) => l.s("Phi = ").f(p).s(" at lambda = ").f(c),
            None => l.s("none"),
        };
        l.emit();
    }
    #[cfg(feature = "defmt")]
    defmt::info!(
        "best penalty shared by all features (grid): (Phi, lambda) = {=?}",
        best
    );
}

/// Progress of a run.
pub fn progress(solver: &str, iter: u64, val: f32) {
    #[cfg(not(feature = "defmt"))]
    Line::new()
        .s(solver)
        .s(" iter ")
        .u(iter as u32)
        .s(": validation loss of w = ")
        .f(val)
        .emit();
    #[cfg(feature = "defmt")]
    defmt::info!(
        "{=str} iter {=u64}: validation loss of w = {=f32}",
        solver,
        iter,
        val
    );
}

/// The result of a run: Φ at the adapted λ, λ per feature, golden check.
pub fn result(solver: &str, o: &Outcome, phi: Option<f32>, phi0: f32, golden: bool) {
    let calls = o.report.counts.oracle_calls();
    #[cfg(not(feature = "defmt"))]
    {
        let mut l = Line::new();
        l.s(solver)
            .s(": ")
            .u(o.report.iters as u32)
            .s(" iterations, ")
            .u(calls as u32)
            .s(" oracle calls; Phi(lambda) = ");
        match phi {
            Some(p) => l.f(p),
            None => l.s("(not positive definite)"),
        };
        l.s(" vs Phi(lambda0) = ").f(phi0).emit();
        for (name, &v) in crate::ridge::FEATURES.iter().zip(&o.lambda) {
            Line::new()
                .s("  lambda[")
                .s(name)
                .s("] = ")
                .f(v)
                .s("  (bits ")
                .hex(v.to_bits())
                .s(")")
                .emit();
        }
        Line::new()
            .s(solver)
            .s(": result bits ")
            .s(if golden { "match" } else { "DIFFER FROM" })
            .s(" the golden value")
            .emit();
    }
    #[cfg(feature = "defmt")]
    {
        defmt::info!(
            "{=str}: {=u64} iterations, {=u64} oracle calls; Phi(lambda) = {=?} vs Phi(lambda0) = {=f32}",
            solver,
            o.report.iters,
            calls,
            phi,
            phi0
        );
        for (name, &v) in crate::ridge::FEATURES.iter().zip(&o.lambda) {
            defmt::info!(
                "  lambda[{=str}] = {=f32} (bits {=u32:#010x})",
                name,
                v,
                v.to_bits()
            );
        }
        if golden {
            defmt::info!("{=str}: result bits match the golden value", solver);
        } else {
            defmt::error!("{=str}: result bits DIFFER FROM the golden value", solver);
        }
    }
}

/// A solver could not be built or run.
pub fn failed(solver: &str) {
    #[cfg(not(feature = "defmt"))]
    Line::new().s(solver).s(": error").emit();
    #[cfg(feature = "defmt")]
    defmt::error!("{=str}: error", solver);
}

/// The painted-stack high-water mark.
pub fn stack(used: usize, size: usize) {
    #[cfg(not(feature = "defmt"))]
    Line::new()
        .s("stack high-water mark: ")
        .u(used as u32)
        .s(" of ")
        .u(size as u32)
        .s(" bytes")
        .emit();
    #[cfg(feature = "defmt")]
    defmt::info!(
        "stack high-water mark: {=usize} of {=usize} bytes",
        used,
        size
    );
}

/// The verdict.
pub fn verdict(ok: bool) {
    #[cfg(not(feature = "defmt"))]
    Line::new().s(if ok { "PASS" } else { "FAIL" }).emit();
    #[cfg(feature = "defmt")]
    if ok {
        defmt::info!("PASS");
    } else {
        defmt::error!("FAIL");
    }
}

/// A panic (location only: formatting the message would pull in `core::fmt`).
pub fn panic(file: &str, line: u32) {
    #[cfg(not(feature = "defmt"))]
    Line::new().s("panic at ").s(file).s(":").u(line).emit();
    #[cfg(feature = "defmt")]
    defmt::error!("panic at {=str}:{=u32}", file, line);
}

/// A hard fault.
pub fn hard_fault(pc: u32) {
    #[cfg(not(feature = "defmt"))]
    Line::new().s("HardFault at pc=").hex(pc).emit();
    #[cfg(feature = "defmt")]
    defmt::error!("HardFault at pc={=u32:#010x}", pc);
}
