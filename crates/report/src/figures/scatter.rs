//! Figure 3: per-label scatter of a metric against accuracy or loss, one
//! panel per block, with the least-squares line and Pearson r, p in the
//! legend.

use super::{de, fit_line, font, padded_range, pval, short, tick, Figure, PALETTE};
use plotters::coord::Shift;
use plotters::prelude::*;

/// One block's points (x = per-label metric mean, y = accuracy or loss).
#[derive(Clone, Debug, PartialEq)]
pub struct ScatterPanel {
    /// Panel title (the block).
    pub title: String,
    /// (metric mean, target) per label; non-finite x are not drawn.
    pub points: Vec<(f64, f64)>,
    /// Legend text of the fit, e.g. "r = 0.71, p = 0.021, n = 10", or the
    /// reason there is no correlation.
    pub stat: String,
}

/// A grid of [`ScatterPanel`]s.
#[derive(Clone, Debug, PartialEq)]
pub struct ScatterFigure {
    /// File stem.
    pub stem: String,
    /// Title.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// The panels.
    pub panels: Vec<ScatterPanel>,
}

const PANEL: (u32, u32) = (440, 340);

impl ScatterFigure {
    fn grid(&self) -> (usize, usize) {
        let n = self.panels.len().max(1);
        let cols = n.min(4);
        (n.div_ceil(cols), cols)
    }
}

impl Figure for ScatterFigure {
    fn stem(&self) -> String {
        self.stem.clone()
    }

    /// Wide enough for the panels and for the title (22 px type, about 12
    /// px a character): one panel alone would cut a long title off.
    fn size(&self) -> (u32, u32) {
        let (rows, cols) = self.grid();
        let title = 12 * self.title.chars().count() as u32 + 40;
        (
            (PANEL.0 * cols as u32).max(title),
            PANEL.1 * rows as u32 + 50,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let root = root.titled(&self.title, font(22)).map_err(de)?;
        let (rows, cols) = self.grid();
        for (panel, area) in self.panels.iter().zip(root.split_evenly((rows, cols))) {
            draw_panel(self, panel, &area)?;
        }
        Ok(())
    }
}

fn draw_panel<DB: DrawingBackend>(
    fig: &ScatterFigure,
    p: &ScatterPanel,
    area: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    let shown: Vec<(f64, f64)> = p
        .points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let (x0, x1) = padded_range(shown.iter().map(|q| q.0));
    let (y0, y1) = padded_range(shown.iter().map(|q| q.1));
    let y1 = y1 + 0.35 * (y1 - y0); // room for the legend above the points
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, font(17))
        .margin(10)
        .x_label_area_size(42)
        .y_label_area_size(62)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(de)?;
    chart
        .configure_mesh()
        .x_desc(&fig.x_label)
        .y_desc(&fig.y_label)
        .x_labels(5)
        .y_labels(5)
        .x_label_formatter(&|x| tick(*x))
        .y_label_formatter(&|y| tick(*y))
        .label_style(font(12))
        .axis_desc_style(font(13))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(de)?;
    let (dot, line) = (PALETTE[0], PALETTE[1]);
    chart
        .draw_series(shown.iter().map(|&q| Circle::new(q, 4, dot.filled())))
        .map_err(de)?;
    let fit = fit_line(&shown).map(|(a, b)| vec![(x0, a + b * x0), (x1, a + b * x1)]);
    chart
        .draw_series(LineSeries::new(
            fit.unwrap_or_default(),
            line.stroke_width(2),
        ))
        .map_err(de)?
        .label(&p.stat)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], line.stroke_width(2)));
    chart
        .configure_series_labels()
        .label_font(font(12))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(de)
}

/// The legend text of a Pearson result (`None`: the test was not run).
pub fn scatter_stat(
    r: Option<&Result<stiffness_stats::Correlation, stiffness_stats::NotComputable>>,
) -> String {
    match r {
        Some(Ok(c)) => format!(
            "least squares; Pearson r = {}, p = {}, n = {}",
            short(c.r),
            pval(c.p),
            c.n
        ),
        Some(Err(e)) => format!("no r: {}", e.reason),
        None => "no test".into(),
    }
}
