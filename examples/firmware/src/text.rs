//! Semihosting text output without `core::fmt`.
//!
//! `core::fmt`'s float formatting alone costs about 15 KiB of flash, half the
//! budget; these few formatters build one line in a stack buffer and write it
//! with a single semihosting call.

use cortex_m_semihosting::hio;

/// One output line, written by [`Line::emit`].
pub struct Line {
    buf: [u8; LEN],
    len: usize,
}

/// Bytes per line, newline included.
const LEN: usize = 120;
/// Index of the slot kept for the newline.
const LAST: usize = LEN - 1;

impl Line {
    /// An empty line.
    pub const fn new() -> Self {
        Line {
            buf: [0; LEN],
            len: 0,
        }
    }

    /// Appends a byte, keeping the last slot free for the newline. (No
    /// indexing anywhere in this file: a bounds check would link
    /// `core::fmt`'s integer formatting for its panic message.)
    fn byte(&mut self, b: u8) {
        if self.len < LAST {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
    }

    /// Appends a string (truncated at the buffer's end).
    pub fn s(&mut self, s: &str) -> &mut Self {
        for &b in s.as_bytes() {
            self.byte(b);
        }
        self
    }

    /// Appends an unsigned integer in decimal.
    pub fn u(&mut self, v: u32) -> &mut Self {
        let mut scale = 1_000_000_000;
        while scale > 1 && v / scale == 0 {
            scale /= 10;
        }
        while scale > 0 {
            self.byte(b'0' + (v / scale % 10) as u8);
            scale /= 10;
        }
        self
    }

    /// Appends `0x` and eight hexadecimal digits.
    pub fn hex(&mut self, v: u32) -> &mut Self {
        self.s("0x");
        for k in (0..8).rev() {
            let d = ((v >> (4 * k)) & 0xf) as u8;
            self.byte(if d < 10 { b'0' + d } else { b'a' + d - 10 });
        }
        self
    }

    /// Appends an `f32` in fixed notation with six decimals (display only;
    /// exact values are printed as bits with [`Line::hex`]).
    pub fn f(&mut self, v: f32) -> &mut Self {
        if v.is_nan() {
            return self.s("NaN");
        }
        if v.is_sign_negative() {
            self.byte(b'-');
        }
        let a = v.abs();
        if a >= 4.0e9 {
            return self.s("inf");
        }
        // Round to 1e-6 in integer arithmetic on the exact value's parts.
        let int = a as u32;
        let frac = ((a - int as f32) * 1.0e6 + 0.5) as u32;
        let (int, frac) = if frac >= 1_000_000 {
            (int + 1, frac - 1_000_000)
        } else {
            (int, frac)
        };
        self.u(int);
        self.byte(b'.');
        let mut scale = 100_000;
        while scale > 0 {
            self.byte(b'0' + (frac / scale % 10) as u8);
            scale /= 10;
        }
        self
    }

    /// Writes the line and a newline to the host's stdout and clears it.
    /// Output errors are ignored: the exit code carries the verdict.
    pub fn emit(&mut self) {
        let n = self.len.min(LAST);
        if let Some(nl) = self.buf.get_mut(n) {
            *nl = b'\n';
        }
        let line = self.buf.get(..=n).unwrap_or(&[]);
        if let Ok(mut out) = hio::hstdout() {
            let _ = out.write_all(line);
        }
        self.len = 0;
    }
}
