//! Figure 1: a metric against block depth, mean with 95% interval, one line
//! per model.

use super::{de, font, padded_range, tick, Figure, PALETTE};
use plotters::coord::Shift;
use plotters::prelude::*;

/// One block's summary: depth, mean, and the 95% interval (equal to the mean
/// when n = 1).
#[derive(Clone, Debug, PartialEq)]
pub struct DepthPoint {
    /// 0-based block index.
    pub depth: usize,
    /// Mean over samples.
    pub mean: f64,
    /// Lower end of the 95% t-interval.
    pub low: f64,
    /// Upper end of the 95% t-interval.
    pub high: f64,
}

/// One model's line.
#[derive(Clone, Debug, PartialEq)]
pub struct DepthSeries {
    /// Legend text.
    pub name: String,
    /// Points in depth order.
    pub points: Vec<DepthPoint>,
}

/// Metric vs depth for all models.
#[derive(Clone, Debug, PartialEq)]
pub struct DepthFigure {
    /// File stem.
    pub stem: String,
    /// Title.
    pub title: String,
    /// y-axis label.
    pub y_label: String,
    /// The lines.
    pub series: Vec<DepthSeries>,
}

impl Figure for DepthFigure {
    fn stem(&self) -> String {
        self.stem.clone()
    }

    fn size(&self) -> (u32, u32) {
        (900, 560)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let pts = || self.series.iter().flat_map(|s| s.points.iter());
        let max_depth = pts().map(|p| p.depth).max().unwrap_or(0) as f64;
        let (y0, y1) = padded_range(pts().flat_map(|p| [p.low, p.high, p.mean]));
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font(22))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(90)
            .build_cartesian_2d(-0.5..max_depth + 0.5, y0..y1)
            .map_err(de)?;
        chart
            .configure_mesh()
            .x_desc("block depth (0-based block index)")
            .y_desc(&self.y_label)
            .x_labels((max_depth as usize + 1).min(16))
            .x_label_formatter(&|x| {
                if x.fract() == 0.0 {
                    format!("{x:.0}")
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|y| tick(*y))
            .label_style(font(15))
            .axis_desc_style(font(17))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(de)?;
        for (i, s) in self.series.iter().enumerate() {
            // Dodge models sideways so that their intervals do not overlap.
            let dx = 0.1 * (i as f64 - (self.series.len() as f64 - 1.0) / 2.0);
            draw_series(&mut chart, s, PALETTE[i % PALETTE.len()], dx)?;
        }
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

fn draw_series<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    s: &DepthSeries,
    color: RGBColor,
    dx: f64,
) -> Result<(), String> {
    let finite: Vec<&DepthPoint> = s.points.iter().filter(|p| p.mean.is_finite()).collect();
    chart
        .draw_series(finite.iter().flat_map(|p| error_bar(p, color, dx)))
        .map_err(de)?;
    for run in runs(&finite) {
        let line = run.iter().map(|p| (p.depth as f64 + dx, p.mean));
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))
            .map_err(de)?;
    }
    chart
        .draw_series(
            finite
                .iter()
                .map(|p| Circle::new((p.depth as f64 + dx, p.mean), 4, color.filled())),
        )
        .map_err(de)?
        .label(format!("{} (mean ± 95% CI)", s.name))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    Ok(())
}

/// A vertical interval with end caps (as paths in data coordinates).
fn error_bar(p: &DepthPoint, color: RGBColor, dx: f64) -> [PathElement<(f64, f64)>; 3] {
    let (x, cap) = (p.depth as f64 + dx, 0.08);
    let style = color.stroke_width(2);
    [
        PathElement::new(vec![(x, p.low), (x, p.high)], style),
        PathElement::new(vec![(x - cap, p.low), (x + cap, p.low)], style),
        PathElement::new(vec![(x - cap, p.high), (x + cap, p.high)], style),
    ]
}

/// Maximal runs of consecutive depths (lines are not drawn across blocks
/// where the metric is undefined, e.g. non-square blocks).
fn runs<'a>(points: &[&'a DepthPoint]) -> Vec<Vec<&'a DepthPoint>> {
    let mut out: Vec<Vec<&DepthPoint>> = Vec::new();
    for &p in points {
        match out.last_mut() {
            Some(run) if run.last().is_some_and(|q| q.depth + 1 == p.depth) => run.push(p),
            _ => out.push(vec![p]),
        }
    }
    out
}
