//! Helpers shared by the end-to-end tests.
#![forbid(unsafe_code)]

/// Relative error ‖x − x*‖ / ‖x*‖.
pub fn rel_error(x: &[f64], x_star: &[f64]) -> f64 {
    bilevel_core::kernels::dist(x, x_star) / bilevel_core::kernels::norm(x_star)
}
