//! The device-specific half of the vector table, sized for the board.
//!
//! Without its `device` feature cortex-m-rt emits a generic table of 240
//! interrupt vectors (960 bytes of flash); with it, the application supplies
//! its own. The emulated mps2-an386 has 32 external interrupts (QEMU's
//! `num-irq`), and this firmware enables none of them, so each entry points
//! to cortex-m-rt's `DefaultHandler`. On a real MCU, size [`IRQS`] to its
//! interrupt count (or link its svd2rust device crate instead, which brings
//! the table and `device.x`).

/// External interrupts of the board (mps2-an386 in QEMU).
pub const IRQS: usize = 32;

extern "C" {
    fn DefaultHandler();
}

/// Read by the core at exception entry, never by this program.
#[allow(unsafe_code)]
#[link_section = ".vector_table.interrupts"]
#[no_mangle]
pub static __INTERRUPTS: [unsafe extern "C" fn(); IRQS] = [DefaultHandler; IRQS];
