//! Figure 2: eigenvalues of one sample and block in the complex plane, with
//! the forward-Euler stability disk |1 + z| <= 1 for the residual branch.

use super::{de, font, tick, Figure, PALETTE};
use plotters::coord::Shift;
use plotters::prelude::*;

/// The spectrum of one (sample, block, kind, variant).
#[derive(Clone, Debug, PartialEq)]
pub struct EigenFigure {
    /// File stem.
    pub stem: String,
    /// Title.
    pub title: String,
    /// Eigenvalues as [re, im].
    pub eigenvalues: Vec<[f64; 2]>,
    /// Whether to draw the forward-Euler disk (residual branch J_F).
    pub euler_disk: bool,
}

impl EigenFigure {
    /// Equal-aspect square window around the finite eigenvalues (and the
    /// disk, when drawn).
    fn window(&self) -> ((f64, f64), (f64, f64)) {
        let mut pts: Vec<[f64; 2]> = self
            .eigenvalues
            .iter()
            .copied()
            .filter(|z| z[0].is_finite() && z[1].is_finite())
            .collect();
        if self.euler_disk {
            pts.extend([[-2.0, -1.0], [0.0, 1.0]]);
        }
        let ext = |i: usize| {
            pts.iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), z| {
                    (a.min(z[i]), b.max(z[i]))
                })
        };
        let ((x0, x1), (y0, y1)) = (ext(0), ext(1));
        if !x0.is_finite() {
            return ((-1.0, 1.0), (-1.0, 1.0));
        }
        let half = 0.55 * (x1 - x0).max(y1 - y0).max(1e-12);
        let (cx, cy) = (0.5 * (x0 + x1), 0.5 * (y0 + y1));
        ((cx - half, cx + half), (cy - half, cy + half))
    }
}

impl Figure for EigenFigure {
    fn stem(&self) -> String {
        self.stem.clone()
    }

    fn size(&self) -> (u32, u32) {
        (760, 760)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let ((x0, x1), (y0, y1)) = self.window();
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font(20))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(de)?;
        chart
            .configure_mesh()
            .x_desc("Re λ")
            .y_desc("Im λ")
            .x_label_formatter(&|x| tick(*x))
            .y_label_formatter(&|y| tick(*y))
            .label_style(font(15))
            .axis_desc_style(font(17))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(de)?;
        if self.euler_disk {
            draw_disk(&mut chart)?;
        }
        let color = PALETTE[0];
        let finite = self
            .eigenvalues
            .iter()
            .filter(|z| z[0].is_finite() && z[1].is_finite());
        chart
            .draw_series(finite.map(|z| Circle::new((z[0], z[1]), 3, color.mix(0.7).filled())))
            .map_err(de)?
            .label(format!(
                "eigenvalues (n = {}, {} exactly 0)",
                self.eigenvalues.len(),
                self.eigenvalues
                    .iter()
                    .filter(|z| z[0] == 0.0 && z[1] == 0.0)
                    .count()
            ))
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
        chart
            .configure_series_labels()
            .label_font(font(15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(de)
    }
}

type Chart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn draw_disk<DB: DrawingBackend>(chart: &mut Chart<'_, DB>) -> Result<(), String> {
    let circle: Vec<(f64, f64)> = (0..=200)
        .map(|k| {
            let t = k as f64 / 200.0 * std::f64::consts::TAU;
            (-1.0 + t.cos(), t.sin())
        })
        .collect();
    let fill = PALETTE[2];
    chart
        .draw_series(std::iter::once(Polygon::new(
            circle.clone(),
            fill.mix(0.15).filled(),
        )))
        .map_err(de)?;
    chart
        .draw_series(LineSeries::new(circle, fill.stroke_width(2)))
        .map_err(de)?
        .label("forward-Euler stable: |1 + λ| ≤ 1")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], fill.stroke_width(2)));
    Ok(())
}
