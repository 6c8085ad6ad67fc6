//! Line plots (SVG and PNG) of metrics against iterations, epochs or oracle
//! calls, with one colour per series and an optional band for the spread over
//! seeds. Text is drawn with the vendored DejaVu Sans, so the output does not
//! depend on the fonts of the machine.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::axis;
use crate::output::write_atomic;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the vendored font once per process.
fn font() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the vendored plot font could not be loaded"))
    }
}

/// Colour-blind-friendly palette (Okabe–Ito), one colour per series.
const COLORS: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(240, 228, 66),
];

/// One curve, with an optional band (x, low, high) drawn behind it.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// (x, y) points in increasing x.
    pub points: Vec<(f64, f64)>,
    /// (x, low, high) of the spread, or empty.
    pub band: Vec<(f64, f64, f64)>,
    /// Why the curve stops early (`non-finite`, `diverged`), when it does:
    /// its last point is marked with a cross and this text. A curve that
    /// reaches a non-finite value is marked even without it.
    pub stopped: Option<String>,
}

impl Series {
    /// The legend text: the label, and why the curve stopped, if it did.
    pub fn legend(&self) -> String {
        match &self.stopped {
            Some(why) => format!("{} ({why})", self.label),
            None => self.label.clone(),
        }
    }
}

/// A figure: axes, labels and series.
#[derive(Debug, Clone)]
pub struct Figure<'a> {
    /// Title above the plot.
    pub title: &'a str,
    /// x-axis label.
    pub x_label: &'a str,
    /// y-axis label.
    pub y_label: &'a str,
    /// Logarithmic y axis (non-positive values are left out).
    pub log_y: bool,
    /// The curves.
    pub series: &'a [Series],
}

const SIZE: (u32, u32) = (900, 560);

fn bounds(fig: &Figure<'_>) -> Option<((f64, f64), (f64, f64))> {
    let keep = |y: f64| y.is_finite() && (!fig.log_y || y > 0.0);
    let mut xs = (f64::INFINITY, f64::NEG_INFINITY);
    let mut ys = (f64::INFINITY, f64::NEG_INFINITY);
    for s in fig.series {
        let pts = s.points.iter().map(|&(x, y)| (x, y));
        let band = s.band.iter().flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)]);
        for (x, y) in pts.chain(band) {
            if x.is_finite() && keep(y) {
                xs = (xs.0.min(x), xs.1.max(x));
                ys = (ys.0.min(y), ys.1.max(y));
            }
        }
    }
    if xs.0 > xs.1 {
        return None;
    }
    if xs.0 >= xs.1 {
        xs.1 = xs.0 + 1.0;
    }
    if ys.0 >= ys.1 {
        let pad = if ys.0 == 0.0 { 1.0 } else { ys.0.abs() * 0.1 };
        ys = (ys.0 - pad, ys.1 + pad);
        if fig.log_y && ys.0 <= 0.0 {
            ys.0 = ys.1 * 1e-3;
        }
    }
    Some((xs, ys))
}

/// A y axis in log10 units with the ticks of [`axis::log_ticks`] (plotters'
/// own log axis leaves ranges within a decade or two without labels).
struct LogTicks {
    lo: f64,
    hi: f64,
    major: Vec<f64>,
    minor: Vec<f64>,
}

impl Ranged for LogTicks {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let t = (v - self.lo) / (self.hi - self.lo);
        limit.0 + (t * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.minor.clone()
        } else {
            self.major.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// Plot-area size in pixels, roughly (the figure less caption, label areas
/// and margins), for placing the legend.
const AREA: (f64, f64) = (790.0, 450.0);

/// The curves of a series split at non-finite (or, on a log axis,
/// non-positive) values, and the point where a curve stopped at such a
/// value (the last drawable point before it), if it did.
/// Pieces of a curve, and where it stopped early.
type Segments = (Vec<Vec<(f64, f64)>>, Option<(f64, f64)>);

fn segments(s: &Series, ok: impl Fn(f64) -> bool) -> Segments {
    let mut segs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    let mut stop = None;
    for &(x, y) in &s.points {
        if !x.is_finite() {
            continue;
        }
        if ok(y) {
            if let Some(last) = segs.last_mut() {
                last.push((x, y));
            }
        } else {
            if stop.is_none() && !y.is_finite() {
                stop = segs.iter().rev().find_map(|g| g.last().copied());
            }
            if segs.last().is_some_and(|g| !g.is_empty()) {
                segs.push(Vec::new());
            }
        }
    }
    segs.retain(|g| !g.is_empty());
    // A run that ended in a breakdown without a non-finite value in the
    // trace is marked at its last point.
    if stop.is_none() && s.stopped.is_some() {
        stop = segs.last().and_then(|g| g.last().copied());
    }
    (segs, stop)
}

/// Where the legend goes, and how much to raise the top of the y range
/// (as a fraction of the axis) when every corner holds data.
fn legend_place(fig: &Figure<'_>, xs: (f64, f64), ys: (f64, f64)) -> (SeriesLabelPosition, f64) {
    let chars = fig
        .series
        .iter()
        .map(|s| s.legend().chars().count())
        .max()
        .unwrap_or(0);
    let w = (chars as f64 * 8.0 + 48.0) / AREA.0;
    let h = (fig.series.len() as f64 * 20.0 + 16.0) / AREA.1;
    let ty = |y: f64| if fig.log_y { y.log10() } else { y };
    let (y0, y1) = (ty(ys.0), ty(ys.1));
    let mut pts = Vec::new();
    for s in fig.series {
        let norm: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite() && (!fig.log_y || p.1 > 0.0))
            .map(|&(x, y)| ((x - xs.0) / (xs.1 - xs.0), (ty(y) - y0) / (y1 - y0)))
            .collect();
        pts.extend(axis::densify(&norm, 16));
    }
    let (corner, n) = axis::emptiest_corner(&pts, w + 0.02, h + 0.03);
    let pos = |c| match c {
        axis::Corner::UpperRight => SeriesLabelPosition::UpperRight,
        axis::Corner::UpperLeft => SeriesLabelPosition::UpperLeft,
        axis::Corner::LowerRight => SeriesLabelPosition::LowerRight,
        axis::Corner::LowerLeft => SeriesLabelPosition::LowerLeft,
    };
    if n == 0 {
        (pos(corner), 0.0)
    } else {
        // Make room above every curve: the top h of the plot stays empty.
        (
            SeriesLabelPosition::UpperRight,
            (h + 0.05) / (1.0 - h - 0.05),
        )
    }
}

/// The curves of one series, its band and, when it stopped at a
/// non-finite value or broke down, a cross with a note at its last point.
fn draw_series<DB, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, Y>>,
    s: &Series,
    color: RGBColor,
    log_y: bool,
) -> Result<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    Y: Ranged<ValueType = f64>,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing failed: {e:?}");
    let ok = |y: f64| y.is_finite() && (!log_y || y > 0.0);
    let ty = |y: f64| if log_y { y.log10() } else { y };
    if !s.band.is_empty() {
        // A point whose upper edge cannot be drawn is left out of both
        // edges. A lower edge at or below zero on a log axis (mean − std
        // ≤ 0: the spread reaches zero) runs along the bottom of the plot:
        // dropping it from the lower edge alone closed the polygon with a
        // diagonal across the plot.
        let floor = chart.y_range().start;
        let kept: Vec<(f64, f64, f64)> = s
            .band
            .iter()
            .filter(|b| b.0.is_finite() && ok(b.2) && !b.1.is_nan())
            .map(|&(x, lo, hi)| (x, if ok(lo) { ty(lo) } else { floor }, ty(hi)))
            .collect();
        let upper = kept.iter().map(|&(x, _, hi)| (x, hi));
        let lower = kept.iter().rev().map(|&(x, lo, _)| (x, lo));
        let poly: Vec<(f64, f64)> = upper.chain(lower).collect();
        chart
            .draw_series(std::iter::once(Polygon::new(
                poly,
                color.mix(0.18).filled(),
            )))
            .map_err(err)?;
    }
    let (segs, stop) = segments(s, ok);
    let why = s
        .stopped
        .clone()
        .or_else(|| stop.map(|_| "non-finite".to_string()));
    let legend = match &why {
        Some(w) if s.stopped.is_none() => format!("{} ({w})", s.label),
        _ => s.legend(),
    };
    for (k, seg) in segs.iter().enumerate() {
        let line = seg.iter().map(|&(x, y)| (x, ty(y)));
        let drawn = chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))
            .map_err(err)?;
        if k == 0 {
            drawn.label(legend.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
            });
        }
    }
    if let (Some((x, y)), Some(text)) = (stop, why) {
        let at = (x, ty(y));
        chart
            .draw_series(std::iter::once(Cross::new(at, 7, color.stroke_width(3))))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(
                EmptyElement::at(at)
                    + Text::new(
                        format!("stopped: {text}"),
                        (10, -6),
                        ("sans-serif", 13).into_font().color(&color),
                    ),
            ))
            .map_err(err)?;
    }
    Ok(())
}

/// Mesh, labels, every series and the legend on a built chart.
fn draw_body<'a, DB, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    fig: &Figure<'_>,
    legend_pos: SeriesLabelPosition,
    y_fmt: &dyn Fn(&f64) -> String,
    x_fmt: &dyn Fn(&f64) -> String,
) -> Result<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    DB: 'a,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing failed: {e:?}");
    chart
        .configure_mesh()
        .x_desc(fig.x_label)
        .y_desc(fig.y_label)
        .x_label_formatter(x_fmt)
        .y_label_formatter(y_fmt)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    for (i, s) in fig.series.iter().enumerate() {
        draw_series(chart, s, COLORS[i % COLORS.len()], fig.log_y)?;
    }
    chart
        .configure_series_labels()
        .position(legend_pos)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    Ok(())
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, fig: &Figure<'_>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing failed: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    let Some(((x0, x1), (ya, yb))) = bounds(fig) else {
        return Err(anyhow!(
            "nothing to plot: no finite points in \"{}\"",
            fig.title
        ));
    };
    let (legend_pos, raise) = legend_place(fig, (x0, x1), (ya, yb));
    // The y axis in plot units: log10 of the values on a log axis (with
    // ticks chosen here, so that the curves' range is labelled), the values
    // themselves otherwise; 3 % of headroom at either end.
    let ty = |y: f64| if fig.log_y { y.log10() } else { y };
    let (u0, u1) = (ty(ya), ty(yb));
    let pad = (u1 - u0) * 0.03;
    let (u0, u1) = (u0 - pad, u1 + pad + (u1 - u0) * raise);
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(fig.title, ("sans-serif", 22))
        .margin(12)
        .margin_right(36)
        .x_label_area_size(48)
        .y_label_area_size(84);
    // A linear axis' 0 may come out as rounding noise (0.1 + 0.2 - 0.3):
    // values within 1e-9 of the axis span from 0 read `0`.
    let snap = |v: f64, span: f64| if v.abs() < 1e-9 * span { 0.0 } else { v };
    let y_fmt = |v: &f64| {
        if fig.log_y {
            axis::tick_label(10_f64.powf(*v))
        } else {
            axis::tick_label(snap(*v, u1 - u0))
        }
    };
    let x_fmt = |v: &f64| axis::tick_label(snap(*v, x1 - x0));
    if fig.log_y {
        let (major, minor) = axis::log_ticks(10_f64.powf(u0), 10_f64.powf(u1));
        let y_range = LogTicks {
            lo: u0,
            hi: u1,
            major,
            minor,
        };
        let mut chart = builder.build_cartesian_2d(x0..x1, y_range).map_err(err)?;
        draw_body(&mut chart, fig, legend_pos, &y_fmt, &x_fmt)?;
    } else {
        let mut chart = builder.build_cartesian_2d(x0..x1, u0..u1).map_err(err)?;
        draw_body(&mut chart, fig, legend_pos, &y_fmt, &x_fmt)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Renders `fig` to `<stem>.svg` and `<stem>.png`, each written atomically.
pub fn render(fig: &Figure<'_>, stem: &Path) -> Result<()> {
    font()?;
    let svg_path = stem.with_extension("svg");
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        draw(&root, fig)?;
    }
    write_atomic(&svg_path, svg.as_bytes())?;

    let png_path = stem.with_extension("png");
    let (w, h) = SIZE;
    let mut rgb = vec![0_u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        draw(&root, fig).with_context(|| format!("cannot render {}", png_path.display()))?;
    }
    let png =
        encode_png(&rgb, w, h).with_context(|| format!("cannot encode {}", png_path.display()))?;
    write_atomic(&png_path, &png)?;
    Ok(())
}

/// Encodes an 8-bit RGB buffer of `w` × `h` pixels as a PNG file's bytes.
fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_svg_and_png_with_bands_and_log_axis() {
        let dir = tempfile::tempdir().unwrap();
        let series = vec![
            Series {
                label: "bo-rep".into(),
                points: (1..50)
                    .map(|i| (f64::from(i), 1.0 / f64::from(i)))
                    .collect(),
                band: (1..50)
                    .map(|i| (f64::from(i), 0.8 / f64::from(i), 1.2 / f64::from(i)))
                    .collect(),
                stopped: None,
            },
            Series {
                label: "slip".into(),
                points: (1..50)
                    .map(|i| (f64::from(i), 2.0 / f64::from(i)))
                    .collect(),
                band: Vec::new(),
                stopped: None,
            },
        ];
        let fig = Figure {
            title: "upper loss",
            x_label: "oracle calls",
            y_label: "loss",
            log_y: true,
            series: &series,
        };
        let stem = dir.path().join("upper_loss_vs_calls");

        render(&fig, &stem).unwrap();
        let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
        assert!(svg.contains("<svg") && svg.contains("bo-rep") && svg.contains("slip"));
        let png = std::fs::read(stem.with_extension("png")).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // The PNG decodes to the figure's size, and both series' colours
        // are drawn in it.
        let mut reader = png::Decoder::new(std::io::Cursor::new(png))
            .read_info()
            .unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!((info.width, info.height), SIZE);
        assert_eq!(info.color_type, png::ColorType::Rgb);
        for c in &COLORS[..2] {
            let rgb = [c.0, c.1, c.2];
            assert!(
                pixels.chunks_exact(3).any(|p| p == rgb),
                "colour {rgb:?} missing"
            );
        }
        // Only the two plot files: no temporary file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    /// A band whose lower edge reaches zero on a log axis: every band
    /// point gives two vertices (none is dropped from one edge only, which
    /// closed the polygon with a diagonal across the plot), and the lower
    /// vertices at or below zero lie on the bottom of the plot.
    #[test]
    fn a_log_band_reaching_zero_runs_along_the_bottom() {
        let dir = tempfile::tempdir().unwrap();
        let n = 40;
        let band: Vec<(f64, f64, f64)> = (0..n)
            .map(|i| {
                let x = f64::from(i);
                if i < 3 {
                    (x, 0.5e-2, 2e-2)
                } else {
                    (x, -1e-15, 3e-15)
                }
            })
            .collect();
        let series = vec![Series {
            label: "f2sa".into(),
            points: band
                .iter()
                .map(|&(x, lo, hi)| (x, f64::midpoint(lo, hi)))
                .collect(),
            band,
            stopped: None,
        }];
        let fig = Figure {
            title: "ridge",
            x_label: "oracle calls",
            y_label: "ridge",
            log_y: true,
            series: &series,
        };
        let stem = dir.path().join("ridge");
        render(&fig, &stem).unwrap();
        let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
        let poly = svg
            .split("<polygon")
            .nth(1)
            .and_then(|p| p.split("points=\"").nth(1))
            .and_then(|p| p.split('"').next())
            .expect("a band polygon");
        let v: Vec<(f64, f64)> = poly
            .split_whitespace()
            .map(|xy| {
                let (x, y) = xy.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert_eq!(v.len(), 2 * n as usize, "{poly}");
        let bottom = v.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        // The lower edge runs from the last point back to the first: the
        // band points 3.. (lo <= 0) are its first n - 3 vertices.
        for p in &v[n as usize..2 * n as usize - 3] {
            assert!((p.1 - bottom).abs() < 0.5, "{poly}");
        }
        // Their upper vertices stay well above the bottom.
        assert!(v[3..n as usize].iter().all(|p| p.1 < bottom), "{poly}");
    }

    #[test]
    fn an_empty_figure_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let series = vec![Series {
            label: "nan".into(),
            points: vec![(0.0, f64::NAN)],
            band: Vec::new(),
            stopped: None,
        }];
        let fig = Figure {
            title: "t",
            x_label: "x",
            y_label: "y",
            log_y: false,
            series: &series,
        };
        assert!(render(&fig, &dir.path().join("p")).is_err());
    }

    /// The text of every `<text>` element of an SVG, in order.
    fn svg_texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = t.split_once('>')?.1;
                Some(body.split_once("</text>")?.0.trim().to_string())
            })
            .collect()
    }

    fn curve(label: &str, f: impl Fn(f64) -> f64) -> Series {
        Series {
            label: label.into(),
            points: (0..=40)
                .map(|i| (f64::from(i) * 250.0, f(f64::from(i))))
                .collect(),
            ..Series::default()
        }
    }

    #[test]
    fn log_axes_label_the_curves_range_with_short_labels() {
        // Curves between 0.2 and 3 (just over a decade): plotters' own log
        // axis labelled only 1 here.
        let dir = tempfile::tempdir().unwrap();
        let series = vec![
            curve("a", |i| 0.2 + 2.8 / (1.0 + i)),
            curve("b", |i| 0.25 + 2.0 * (-i / 10.0).exp()),
        ];
        let fig = Figure {
            title: "t",
            x_label: "oracle calls",
            y_label: "loss",
            log_y: true,
            series: &series,
        };
        let stem = dir.path().join("p");
        render(&fig, &stem).unwrap();
        let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
        let texts = svg_texts(&svg);
        let numbers: Vec<f64> = texts.iter().filter_map(|t| t.parse().ok()).collect();
        let y_labels: Vec<f64> = numbers.iter().copied().filter(|v| *v < 10.0).collect();
        assert!(
            y_labels.iter().filter(|v| (0.2..=3.0).contains(*v)).count() >= 3,
            "{texts:?}"
        );
        for t in &texts {
            assert!(!t.ends_with(".0"), "label {t} in {texts:?}");
            assert!(t.chars().count() <= 12 || t.contains(' '), "{t}");
        }
        // The integer x axis reads 10000, not 10000.0.
        assert!(texts.iter().any(|t| t == "10000"), "{texts:?}");
    }

    #[test]
    fn a_run_that_went_non_finite_is_marked_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let mut broke = curve("soba", |i| 1.0 / (1.0 + i));
        for p in broke.points.iter_mut().skip(25) {
            p.1 = f64::NAN;
        }
        let series = vec![curve("slip", |i| 2.0 / (1.0 + i)), broke];
        for log_y in [true, false] {
            let fig = Figure {
                title: "t",
                x_label: "iterations",
                y_label: "loss",
                log_y,
                series: &series,
            };
            let stem = dir.path().join("nan");
            render(&fig, &stem).unwrap();
            let texts = svg_texts(&std::fs::read_to_string(stem.with_extension("svg")).unwrap());
            assert!(
                texts.iter().any(|t| t == "stopped: non-finite"),
                "{texts:?}"
            );
            assert!(texts.iter().any(|t| t == "soba (non-finite)"), "{texts:?}");
            assert!(!texts.iter().any(|t| t.starts_with("slip (")), "{texts:?}");
        }
        // The mark sits at the last finite point.
        let (segs, stop) = segments(&series[1], f64::is_finite);
        assert_eq!(segs.len(), 1);
        assert_eq!(stop, Some(series[1].points[24]));
        // A curve with a gap is drawn as two pieces, not bridged.
        let mut gap = curve("g", |i| i);
        gap.points[10].1 = f64::INFINITY;
        let (segs, stop) = segments(&gap, f64::is_finite);
        assert_eq!((segs.len(), stop), (2, Some(gap.points[9])));
    }

    #[test]
    fn the_legend_goes_where_no_curve_is() {
        let falling = vec![
            curve("a", |i| 1.0 / (1.0 + i)),
            curve("b", |i| 2.0 / (1.0 + i)),
        ];
        let fig = |series| Figure {
            title: "t",
            x_label: "x",
            y_label: "y",
            log_y: false,
            series,
        };
        let f = fig(&falling);
        let (xs, ys) = bounds(&f).unwrap();
        let (pos, raise) = legend_place(&f, xs, ys);
        assert!(matches!(pos, SeriesLabelPosition::UpperRight), "{pos:?}");
        assert!(raise.abs() < f64::EPSILON);
        // Curves through every corner: the y range is raised to leave room
        // above them.
        let busy = vec![
            curve("up", |i| i),
            curve("down", |i| 40.0 - i),
            curve("flat hi", |_| 40.0),
            curve("flat lo", |_| 0.0),
        ];
        let f = fig(&busy);
        let (xs, ys) = bounds(&f).unwrap();
        let (_, raise) = legend_place(&f, xs, ys);
        assert!(raise > 0.05, "{raise}");
    }
}
