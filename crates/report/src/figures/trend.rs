//! A metric along an ordered axis, mean with 95% interval: against block
//! depth (one line per model) or across training (one line per block, the
//! checkpoints in training order).

use super::{de, font, padded_range, tick, Figure, PALETTE};
use plotters::coord::Shift;
use plotters::prelude::*;

/// One point's summary: position on the axis, mean, and the 95% interval
/// (equal to the mean when n = 1).
#[derive(Clone, Debug, PartialEq)]
pub struct TrendPoint {
    /// 0-based position on the axis (block index, or checkpoint position).
    pub x: usize,
    /// Mean over samples.
    pub mean: f64,
    /// Lower end of the 95% t-interval.
    pub low: f64,
    /// Upper end of the 95% t-interval.
    pub high: f64,
}

/// One line.
#[derive(Clone, Debug, PartialEq)]
pub struct TrendSeries {
    /// Legend text.
    pub name: String,
    /// Points in axis order.
    pub points: Vec<TrendPoint>,
}

/// A metric along an ordered axis, several lines.
#[derive(Clone, Debug, PartialEq)]
pub struct TrendFigure {
    /// File stem.
    pub stem: String,
    /// Title.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// Tick text of positions 0, 1, ...; empty: the position itself.
    pub x_names: Vec<String>,
    /// y-axis label.
    pub y_label: String,
    /// The lines.
    pub series: Vec<TrendSeries>,
}

impl Figure for TrendFigure {
    fn stem(&self) -> String {
        self.stem.clone()
    }

    fn size(&self) -> (u32, u32) {
        (900, 560)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let pts = || self.series.iter().flat_map(|s| s.points.iter());
        let max_x = pts().map(|p| p.x).max().unwrap_or(0) as f64;
        let (y0, y1) = padded_range(pts().flat_map(|p| [p.low, p.high, p.mean]));
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font(22))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(90)
            .build_cartesian_2d(-0.5..max_x + 0.5, y0..y1)
            .map_err(de)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_labels((max_x as usize + 1).min(21))
            .x_label_formatter(&|x| self.tick(*x))
            .y_label_formatter(&|y| tick(*y))
            .label_style(font(15))
            .axis_desc_style(font(17))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(de)?;
        let lines = self.series.len() as f64;
        // Dodge lines sideways so that their intervals do not overlap.
        let step = (0.6 / lines).min(0.1);
        for (i, s) in self.series.iter().enumerate() {
            let dx = step * (i as f64 - (lines - 1.0) / 2.0);
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

impl TrendFigure {
    /// The tick text at `x`: blank between positions, else the position's
    /// name (or the position itself).
    fn tick(&self, x: f64) -> String {
        if x.fract() != 0.0 || x < 0.0 {
            return String::new();
        }
        match self.x_names.get(x as usize) {
            Some(name) => name.clone(),
            None if self.x_names.is_empty() => format!("{x:.0}"),
            None => String::new(),
        }
    }
}

type Chart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn draw_series<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    s: &TrendSeries,
    color: RGBColor,
    dx: f64,
) -> Result<(), String> {
    let finite: Vec<&TrendPoint> = s.points.iter().filter(|p| p.mean.is_finite()).collect();
    chart
        .draw_series(finite.iter().flat_map(|p| error_bar(p, color, dx)))
        .map_err(de)?;
    for run in runs(&finite) {
        let line = run.iter().map(|p| (p.x as f64 + dx, p.mean));
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))
            .map_err(de)?;
    }
    chart
        .draw_series(
            finite
                .iter()
                .map(|p| Circle::new((p.x as f64 + dx, p.mean), 4, color.filled())),
        )
        .map_err(de)?
        .label(format!("{} (mean ± 95% CI)", s.name))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    Ok(())
}

/// A vertical interval with end caps (as paths in data coordinates).
fn error_bar(p: &TrendPoint, color: RGBColor, dx: f64) -> [PathElement<(f64, f64)>; 3] {
    let (x, cap) = (p.x as f64 + dx, 0.08);
    let style = color.stroke_width(2);
    [
        PathElement::new(vec![(x, p.low), (x, p.high)], style),
        PathElement::new(vec![(x - cap, p.low), (x + cap, p.low)], style),
        PathElement::new(vec![(x - cap, p.high), (x + cap, p.high)], style),
    ]
}

/// Maximal runs of consecutive positions (lines are not drawn across points
/// where the metric is undefined, e.g. non-square blocks).
fn runs<'a>(points: &[&'a TrendPoint]) -> Vec<Vec<&'a TrendPoint>> {
    let mut out: Vec<Vec<&TrendPoint>> = Vec::new();
    for &p in points {
        match out.last_mut() {
            Some(run) if run.last().is_some_and(|q| q.x + 1 == p.x) => run.push(p),
            _ => out.push(vec![p]),
        }
    }
    out
}
