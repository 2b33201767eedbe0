//! Figures, each rendered to SVG and PNG with an embedded font (no system
//! fonts, no network). One type per figure kind, all behind [`Figure`].

use crate::error::{Error, Result};
use crate::fsutil::{atomic_write, commit, temp_sibling};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

/// The embedded font (DejaVu Sans; licence in `assets/LICENSE-DejaVu.txt`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
/// The font family name used by every figure.
pub const FAMILY: &str = "sans-serif";

/// Registers the embedded font with plotters (idempotent).
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_err() {
            panic!("embedded DejaVu Sans is not a valid font");
        }
    });
}

/// Colours for series (Okabe-Ito, colour-blind safe).
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

/// Text style of `size` pixels in the embedded font.
pub fn font(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&BLACK)
}

/// Turns any displayable drawing error into a message.
pub fn de<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// A figure that can draw itself on any plotters backend.
pub trait Figure {
    /// File stem under `figures/`.
    fn stem(&self) -> String;
    /// Size in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws the figure on `root` (already filled white).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

/// Renders `fig` as `dir/STEM.svg` and `dir/STEM.png` (each atomically) and
/// returns the SVG text.
pub fn render(fig: &impl Figure, dir: &Path) -> Result<String> {
    register_font();
    let stem = fig.stem();
    let plot_err = |message: String| Error::Plot {
        figure: stem.clone(),
        message,
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, fig.size()).into_drawing_area();
        draw_on(fig, &root).map_err(plot_err)?;
    }
    atomic_write(&dir.join(format!("{stem}.svg")), svg.as_bytes())?;
    let png = dir.join(format!("{stem}.png"));
    let tmp = temp_sibling(&png);
    {
        let root = BitMapBackend::new(&tmp, fig.size()).into_drawing_area();
        draw_on(fig, &root).map_err(plot_err)?;
    }
    commit(&tmp, &png)?;
    Ok(svg)
}

fn draw_on<DB: DrawingBackend>(
    fig: &impl Figure,
    root: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(de)?;
    fig.draw(root)?;
    root.present().map_err(de)
}

/// `[lo, hi]` of the finite values, padded by 5% (a unit interval around a
/// single value; `[0, 1]` when there is none).
pub fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo {
        0.05 * (hi - lo)
    } else {
        0.5 * lo.abs().max(1.0)
    };
    (lo - pad, hi + pad)
}

/// Least-squares line y = a + b x through the finite pairs; `None` with
/// fewer than two distinct x.
pub fn fit_line(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let p: Vec<&(f64, f64)> = points
        .iter()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let n = p.len() as f64;
    let mx = p.iter().map(|q| q.0).sum::<f64>() / n;
    let my = p.iter().map(|q| q.1).sum::<f64>() / n;
    let sxx: f64 = p.iter().map(|q| (q.0 - mx).powi(2)).sum();
    let sxy: f64 = p.iter().map(|q| (q.0 - mx) * (q.1 - my)).sum();
    (p.len() >= 2 && sxx > 0.0).then(|| {
        let b = sxy / sxx;
        (my - b * mx, b)
    })
}

/// A tick label: [`short`], with positions within 1e-12 of zero (rounding
/// noise such as -2.2e-16 of a tick at zero) shown as 0.
pub fn tick(x: f64) -> String {
    if x.abs() < 1e-12 {
        "0".into()
    } else {
        short(x)
    }
}

/// Compact number for ticks and legends: 3 significant digits, scientific
/// outside [1e-3, 1e4).
pub fn short(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return crate::tables::num(x);
    }
    let a = x.abs();
    if !(1e-3..1e4).contains(&a) {
        return format!("{x:.2e}");
    }
    let decimals = (2 - a.log10().floor() as i32).clamp(0, 4) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A p- or q-value for a legend.
pub fn pval(p: f64) -> String {
    if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

/// A file-name-safe version of `s`.
pub fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub use self::eigen::EigenFigure;
pub use self::heatmap::{HeatCell, HeatmapFigure};
pub use self::scatter::{scatter_stat, ScatterFigure, ScatterPanel};
pub use self::trend::{TrendFigure, TrendPoint, TrendSeries};

mod eigen;
mod heatmap;
mod scatter;
mod trend;
