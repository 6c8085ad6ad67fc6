//! Cost probe: runs one solver of the firmware's job for a compile-time number
//! of iterations and reports SysTick ticks around the run.
//!
//! `FW_SOLVER` (`borep` or `slip`, default `borep`) and `FW_ITERS` (default
//! 200) are read at compile time. Under `qemu-system-arm -icount shift=0` one
//! guest instruction takes 1 ns of virtual time and the mps2 SysTick runs at
//! 25 MHz, so a tick is 40 guest instructions. `tools/insn-per-iter.sh` builds
//! this twice with different `FW_ITERS` and differences the totals (its own
//! instruction-counting QEMU plugin and the ticks), which cancels start-up,
//! warm start and printing.
#![no_std]
#![no_main]

#[path = "../src/ridge/mod.rs"]
#[allow(dead_code)]
mod ridge;
#[path = "../src/text.rs"]
#[allow(dead_code)]
mod text;
#[path = "../src/vectors.rs"]
mod vectors;

use core::panic::PanicInfo;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::entry;
use cortex_m_semihosting::debug;
use text::Line;

/// Parses a decimal `u64` at compile time (`default` if unset or malformed).
const fn parse(s: Option<&str>, default: u64) -> u64 {
    let Some(s) = s else { return default };
    let b = s.as_bytes();
    if b.is_empty() {
        return default;
    }
    let mut v: u64 = 0;
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            return default;
        }
        v = v * 10 + (b[i] - b'0') as u64;
        i += 1;
    }
    v
}

/// `true` when `FW_SOLVER` is `slip`.
const fn is_slip(s: Option<&str>) -> bool {
    match s {
        Some(s) => {
            let b = s.as_bytes();
            b.len() == 4 && b[0] == b's' && b[1] == b'l' && b[2] == b'i' && b[3] == b'p'
        }
        None => false,
    }
}

const ITERS: u64 = parse(option_env!("FW_ITERS"), 200);
const SLIP: bool = is_slip(option_env!("FW_SOLVER"));

fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

#[entry]
fn main() -> ! {
    let Some(mut cp) = cortex_m::Peripherals::take() else {
        exit(false)
    };
    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(0x00FF_FFFF);
    cp.SYST.clear_current();
    cp.SYST.enable_counter();

    let s0 = SYST::get_current();
    let r = if SLIP {
        ridge::run_slip(ITERS, &mut ())
    } else {
        ridge::run_borep(ITERS, &mut ())
    };
    let s1 = SYST::get_current();
    // SysTick counts down; one wrap (2^24 ticks) is far above these runs.
    let ticks = s0.wrapping_sub(s1) & 0x00FF_FFFF;
    let wrapped = cp.SYST.has_wrapped();
    Line::new()
        .s(if SLIP { "slip" } else { "bo-rep" })
        .s(" iters=")
        .u(ITERS as u32)
        .s(" systick_ticks=")
        .u(ticks)
        .s(if wrapped { " WRAPPED" } else { "" })
        .emit();
    exit(r.is_ok() && !wrapped)
}

#[panic_handler]
fn panic(_: &PanicInfo<'_>) -> ! {
    Line::new().s("panic").emit();
    exit(false)
}
