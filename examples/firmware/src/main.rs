//! `bilevel-core` on a Cortex-M4F: the device tunes the per-feature
//! regularisation of its own ridge-regression model on validation data, with
//! fixed-size BO-REP and SLIP (`[f32; 10]` buffers, no heap).
//!
//! It prints progress and results (semihosting text, or defmt with feature
//! `defmt`) and exits through semihosting with status 0 only when both runs'
//! result bits equal the golden values that the host test
//! `examples/tests/firmware_ridge.rs` asserts for the same code, and both runs
//! lowered the validation loss; 1 otherwise, including on panic or HardFault.
#![no_std]
#![no_main]

mod log;
mod ridge;
#[cfg(not(feature = "defmt"))]
mod text;
mod vectors;

use core::panic::PanicInfo;

use bilevel_core::{Control, Observe, Progress};
use cortex_m as _; // the critical-section implementation semihosting needs
use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::debug;

/// Progress lines every this many iterations.
const PROGRESS_EVERY: u64 = 500;

/// Ends the program with status 0 (pass) or 1 (fail) through semihosting.
fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi(); // not reached under QEMU or probe-rs
    }
}

/// Prints the full validation loss of the current w every
/// [`PROGRESS_EVERY`] iterations. (A countdown rather than core's `Every`,
/// whose `iter % n` on a `u64` costs a 64-bit division per iteration.)
struct Printer {
    name: &'static str,
    next: u64,
}

impl Printer {
    fn new(name: &'static str) -> Self {
        Printer {
            name,
            next: PROGRESS_EVERY,
        }
    }
}

impl Observe<f32> for Printer {
    fn observe_iter(&mut self, p: &Progress<'_, f32>) -> Control {
        if p.iter >= self.next {
            self.next = p.iter + PROGRESS_EVERY;
            log::progress(self.name, p.iter, ridge::val_loss(p.y));
        }
        Control::Continue
    }
}

/// Reports one run; `true` when its bits are golden and it lowered Φ.
fn check(
    name: &'static str,
    outcome: Result<ridge::Outcome, bilevel_core::Error>,
    golden: &[u32; 2 * ridge::D],
    phi0: f32,
) -> bool {
    let Ok(o) = outcome else {
        log::failed(name);
        return false;
    };
    let phi = ridge::phi(&o.lambda);
    let bits_ok = o.bits() == *golden;
    log::result(name, &o, phi, phi0, bits_ok);
    bits_ok && phi.is_some_and(|p| p < phi0)
}

/// Bytes of stack ever used: cortex-m-rt (feature `paint-stack`) fills
/// `_stack_end.._stack_start` with 0xCCCCCCCC at reset; the lowest word that
/// no longer holds the paint marks the deepest use.
#[allow(unsafe_code)]
fn stack_high_water() -> (usize, usize) {
    extern "C" {
        static _stack_start: u32;
        static _stack_end: u32;
    }
    // Only the symbols' addresses are taken.
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let bottom = core::ptr::addr_of!(_stack_end) as usize;
    let mut p = bottom;
    while p < top {
        // SAFETY: `bottom..top` is word-aligned RAM (asserted by link.x).
        let w = unsafe { core::ptr::read_volatile(p as *const u32) };
        if w != cortex_m_rt::STACK_PAINT_VALUE {
            break;
        }
        p += 4;
    }
    (top - p, top - bottom)
}

#[entry]
fn main() -> ! {
    log::start();
    let Some(phi0) = ridge::phi(&ridge::LAMBDA0) else {
        log::failed("Phi(lambda0)");
        exit(false)
    };
    log::initial(phi0);
    log::uniform(ridge::best_uniform());

    let mut obs = Printer::new("bo-rep");
    let b = check(
        "bo-rep",
        ridge::run_borep(ridge::ITERS, &mut obs),
        &ridge::GOLDEN_BOREP,
        phi0,
    );
    let mut obs = Printer::new("slip");
    let s = check(
        "slip",
        ridge::run_slip(ridge::ITERS, &mut obs),
        &ridge::GOLDEN_SLIP,
        phi0,
    );

    let (used, size) = stack_high_water();
    log::stack(used, size);
    let ok = b && s;
    log::verdict(ok);
    exit(ok)
}

#[exception]
#[allow(unsafe_code)]
unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
    log::hard_fault(ef.pc());
    exit(false)
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    match info.location() {
        Some(l) => log::panic(l.file(), l.line()),
        None => log::panic("?", 0),
    }
    exit(false)
}
