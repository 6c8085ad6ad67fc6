//! Axis arithmetic of the plots, kept apart from drawing so it can be
//! tested: tick positions of a logarithmic axis that always label the range
//! where the curves lie, short tick labels (`1000`, not `1000.0`; `2e-5`, not
//! `0.000020000`), and where a legend box covers the fewest curve points.

/// Shortest readable text of a tick value: integers without a decimal
/// point, at most four significant digits, scientific notation (`2.5e-5`,
/// `1.2e6`) outside [1e-3, 1e6).
pub fn tick_label(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a == 0.0 {
        return "0".to_string();
    }
    if (1e-3..1e6).contains(&a) {
        let mag = a.log10().floor() as i32;
        let decimals = (3 - mag).clamp(0, 6) as usize;
        trim(&format!("{v:.decimals$}"))
    } else {
        let s = format!("{v:.2e}");
        match s.split_once('e') {
            Some((m, e)) => format!("{}e{e}", trim(m)),
            None => s,
        }
    }
}

/// Drops trailing zeros of a decimal fraction, then a trailing point.
fn trim(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// Tick positions, in log10 units, of a log axis over `[lo, hi]`
/// (`0 < lo < hi`): labelled ticks at 1, 2, 5 (or every integer mantissa, or
/// only powers of ten, or every k-th power) times powers of ten, chosen so
/// that at least three and at most about ten fall inside the range; and
/// unlabelled minor ticks at every integer mantissa when that is not too
/// dense.
pub fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let (a, b) = (lo.log10(), hi.log10());
    let inside = |m: &[f64], step: i32| -> Vec<f64> {
        let mut out = Vec::new();
        let mut k = a.floor() as i32 - 1;
        k -= k.rem_euclid(step);
        while f64::from(k) <= b + 1.0 {
            for &mm in m {
                let t = f64::from(k) + mm.log10();
                if t >= a - 1e-9 && t <= b + 1e-9 {
                    out.push(t);
                }
            }
            k += step;
        }
        out
    };
    let fine: Vec<f64> = (1..10).map(f64::from).collect();
    let mut major = Vec::new();
    for m in [
        &[1.0][..],
        &[1.0, 2.0, 5.0],
        &[1.0, 2.0, 3.0, 5.0, 7.0],
        &fine,
    ] {
        major = inside(m, 1);
        if major.len() >= 3 {
            break;
        }
    }
    // Many decades: every k-th power of ten.
    if major.len() > 10 {
        let step = ((b - a) / 8.0).ceil().max(1.0) as i32;
        major = inside(&[1.0], step);
    }
    let minor = if b - a <= 8.0 {
        inside(&fine, 1)
            .into_iter()
            .filter(|t| !major.iter().any(|m| (m - t).abs() < 1e-9))
            .collect()
    } else {
        Vec::new()
    };
    (major, minor)
}

/// Corners of the plot area, in the order preferred on a tie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corner {
    /// Top right.
    UpperRight,
    /// Top left.
    UpperLeft,
    /// Bottom right.
    LowerRight,
    /// Bottom left.
    LowerLeft,
}

/// The corner whose box of `w` × `h` (fractions of the plot area's width
/// and height) holds the fewest of `points` (normalised to [0, 1]², y up),
/// with how many it holds. Segments between consecutive points of a curve
/// count too: pass them densely sampled.
pub fn emptiest_corner(points: &[(f64, f64)], w: f64, h: f64) -> (Corner, usize) {
    let corners = [
        (Corner::UpperRight, 1.0 - w, 1.0 - h),
        (Corner::UpperLeft, 0.0, 1.0 - h),
        (Corner::LowerRight, 1.0 - w, 0.0),
        (Corner::LowerLeft, 0.0, 0.0),
    ];
    let mut best = (Corner::UpperRight, usize::MAX);
    for (c, x0, y0) in corners {
        let n = points
            .iter()
            .filter(|&&(x, y)| x >= x0 && x <= x0 + w && y >= y0 && y <= y0 + h)
            .count();
        if n < best.1 {
            best = (c, n);
        }
    }
    best
}

/// `points` with `per` evenly spaced points inserted in every segment, so
/// that a box crossed by a line but holding none of its vertices counts.
pub fn densify(points: &[(f64, f64)], per: usize) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(points.len() * (per + 1));
    for w in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        for i in 0..=per {
            let t = i as f64 / (per + 1) as f64;
            out.push((x0 + t * (x1 - x0), y0 + t * (y1 - y0)));
        }
    }
    out.extend(points.last());
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn labels_are_short_and_integers_have_no_point() {
        for (v, s) in [
            (1000.0, "1000"),
            (68000.0, "68000"),
            (0.0, "0"),
            (1e-14, "1e-14"),
            (0.1 + 0.2, "0.3"),
            (0.2512, "0.2512"),
            (-0.559_391_2, "-0.5594"),
            (2e-5, "2e-5"),
            (1.5e6, "1.5e6"),
            (1e-3, "0.001"),
            (5.0, "5"),
        ] {
            assert_eq!(tick_label(v), s, "{v}");
        }
    }

    proptest! {
        /// Any tick label is at most 9 characters, never ends in `.0`, and
        /// reads back within 0.05 % of the value.
        #[test]
        fn labels_read_back(m in 1.0_f64..10.0, e in -99_i32..99, neg: bool) {
            let v = if neg { -m } else { m } * 10_f64.powi(e);
            let s = tick_label(v);
            prop_assert!(s.len() <= 9, "{} -> {}", v, s);
            prop_assert!(!s.ends_with(".0") && !s.ends_with('.'), "{} -> {}", v, s);
            let back: f64 = s.parse().unwrap();
            prop_assert!(((back - v) / v).abs() < 5e-3, "{} -> {}", v, s);
        }

        /// A log axis over any positive range of at least a decade (the
        /// plots use a log axis only then) has between 3 and 11 labelled
        /// ticks, all inside the range, increasing, at "nice" values.
        #[test]
        fn log_ticks_label_the_range(lo_e in -15.0_f64..15.0, span in 1.0_f64..30.0) {
            let lo = 10_f64.powf(lo_e);
            let hi = lo * 10_f64.powf(span);
            let (major, minor) = log_ticks(lo, hi);
            prop_assert!(major.len() >= 3, "{} {}: {:?}", lo, hi, major);
            prop_assert!(major.len() <= 11, "{} {}: {:?}", lo, hi, major);
            prop_assert!(major.windows(2).all(|w| w[0] < w[1]));
            for t in major.iter().chain(&minor) {
                prop_assert!(*t >= lo.log10() - 1e-9 && *t <= hi.log10() + 1e-9);
            }
            for t in &major {
                let mant = 10_f64.powf(t - t.floor());
                prop_assert!((mant - mant.round()).abs() < 1e-6, "{}", mant);
            }
        }

        /// The corner chosen holds no more points than any other corner.
        #[test]
        fn the_emptiest_corner_is_emptiest(
            pts in proptest::collection::vec((0.0_f64..1.0, 0.0_f64..1.0), 0..60),
            w in 0.05_f64..0.5, h in 0.05_f64..0.5,
        ) {
            let (_, n) = emptiest_corner(&pts, w, h);
            for (x0, y0) in [(1.0 - w, 1.0 - h), (0.0, 1.0 - h), (1.0 - w, 0.0), (0.0, 0.0)] {
                let m = pts.iter()
                    .filter(|&&(x, y)| x >= x0 && x <= x0 + w && y >= y0 && y <= y0 + h)
                    .count();
                prop_assert!(n <= m);
            }
        }
    }

    #[test]
    fn a_falling_curve_leaves_the_upper_right_free() {
        let pts: Vec<(f64, f64)> = (0..=20)
            .map(|i| f64::from(i) / 20.0)
            .map(|x| (x, (1.0 - x).powi(4)))
            .collect();
        assert_eq!(
            emptiest_corner(&densify(&pts, 10), 0.3, 0.2).0,
            Corner::UpperRight
        );
        // A line crossing a corner with no vertex inside it still counts.
        let diag = [(0.0, 0.0), (1.0, 1.0)];
        assert_eq!(emptiest_corner(&diag, 0.2, 0.2).1, 0);
        assert!(emptiest_corner(&densify(&diag, 20), 0.2, 0.2).0 != Corner::UpperRight);
    }
}
