//! Line plots (SVG and PNG) of metrics against iterations, epochs or oracle
//! calls, with one colour per series and an optional band for the spread over
//! seeds. Text is drawn with the vendored DejaVu Sans, so the output does not
//! depend on the fonts of the machine.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

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

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, fig: &Figure<'_>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing failed: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    let Some(((x0, x1), (y0, y1))) = bounds(fig) else {
        return Err(anyhow!(
            "nothing to plot: no finite points in \"{}\"",
            fig.title
        ));
    };
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(fig.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(72);
    macro_rules! body {
        ($chart:ident, $ty:expr) => {{
            $chart
                .configure_mesh()
                .x_desc(fig.x_label)
                .y_desc(fig.y_label)
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(err)?;
            for (i, s) in fig.series.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                let ok = |y: f64| y.is_finite() && ($ty || y > 0.0);
                if !s.band.is_empty() {
                    let upper = s.band.iter().filter(|b| ok(b.2)).map(|&(x, _, hi)| (x, hi));
                    let lower = s
                        .band
                        .iter()
                        .rev()
                        .filter(|b| ok(b.1))
                        .map(|&(x, lo, _)| (x, lo));
                    let poly: Vec<(f64, f64)> = upper.chain(lower).collect();
                    $chart
                        .draw_series(std::iter::once(Polygon::new(
                            poly,
                            color.mix(0.18).filled(),
                        )))
                        .map_err(err)?;
                }
                let line = s
                    .points
                    .iter()
                    .copied()
                    .filter(|p| p.0.is_finite() && ok(p.1));
                $chart
                    .draw_series(LineSeries::new(line, color.stroke_width(2)))
                    .map_err(err)?
                    .label(s.label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
                    });
            }
            $chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .label_font(("sans-serif", 14))
                .draw()
                .map_err(err)?;
        }};
    }
    if fig.log_y {
        let mut chart = builder
            .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
            .map_err(err)?;
        body!(chart, false);
    } else {
        let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?;
        body!(chart, true);
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
            },
            Series {
                label: "slip".into(),
                points: (1..50)
                    .map(|i| (f64::from(i), 2.0 / f64::from(i)))
                    .collect(),
                band: Vec::new(),
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

    #[test]
    fn an_empty_figure_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let series = vec![Series {
            label: "nan".into(),
            points: vec![(0.0, f64::NAN)],
            band: Vec::new(),
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
}
