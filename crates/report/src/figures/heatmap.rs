//! Figure 4: heat map of across-label Pearson r (block x metric), cells with
//! q < alpha marked with an asterisk, tests that could not be computed grey.

use super::{de, font, Figure};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One cell of the heat map.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HeatCell {
    /// Pearson r and whether q < alpha.
    Value(f64, bool),
    /// The test was run but is not computable (reason in the tables).
    NotComputable,
    /// The metric does not apply to this block (e.g. eigenvalues of a
    /// non-square block).
    NotApplicable,
}

/// Correlations of every metric (columns) in every block (rows).
#[derive(Clone, Debug, PartialEq)]
pub struct HeatmapFigure {
    /// File stem.
    pub stem: String,
    /// Title.
    pub title: String,
    /// Row labels (blocks, in depth order, drawn top to bottom).
    pub rows: Vec<String>,
    /// Column labels (metrics).
    pub cols: Vec<String>,
    /// `cells[row][col]`.
    pub cells: Vec<Vec<HeatCell>>,
    /// Significance level used for the asterisks.
    pub alpha: f64,
}

/// Diverging blue-white-red colour for r in [-1, 1].
pub fn diverging(r: f64) -> RGBColor {
    let t = r.clamp(-1.0, 1.0);
    let mix = |a: f64, b: f64, w: f64| (a + (b - a) * w).round() as u8;
    let (end, w) = if t < 0.0 {
        ((33.0, 102.0, 172.0), -t)
    } else {
        ((178.0, 24.0, 43.0), t)
    };
    RGBColor(
        mix(247.0, end.0, w),
        mix(247.0, end.1, w),
        mix(247.0, end.2, w),
    )
}

const LEFT: u32 = 130;
const TOP: u32 = 110;
const BOTTOM: u32 = 62;
const CELL: (u32, u32) = (124, 30);

/// A metric name split at an underscore into at most two balanced lines.
pub fn two_lines(name: &str) -> (String, String) {
    let cuts: Vec<usize> = name.match_indices('_').map(|(i, _)| i).collect();
    match cuts.iter().min_by_key(|&&i| (2 * i).abs_diff(name.len())) {
        Some(&i) if name.len() > 12 => (name[..=i].to_string(), name[i + 1..].to_string()),
        _ => (String::new(), name.to_string()),
    }
}

impl Figure for HeatmapFigure {
    fn stem(&self) -> String {
        self.stem.clone()
    }

    fn size(&self) -> (u32, u32) {
        let w = LEFT + 20 + CELL.0 * self.cols.len() as u32;
        (w.max(1000), TOP + BOTTOM + CELL.1 * self.rows.len() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (nr, nc) = (self.rows.len(), self.cols.len());
        let centre = font(20).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw_text(&self.title, &centre, (self.size().0 as i32 / 2, 10))
            .map_err(de)?;
        let right = self.size().0 - LEFT - CELL.0 * nc as u32;
        let grid = root.margin(TOP, BOTTOM, LEFT, right);
        let mut chart = ChartBuilder::on(&grid)
            .build_cartesian_2d(0.0..nc as f64, 0.0..nr as f64)
            .map_err(de)?;
        for (i, row) in self.cells.iter().enumerate() {
            for (j, cell) in row.iter().enumerate() {
                draw_cell(&mut chart, j, nr - 1 - i, *cell)?;
            }
        }
        let at = |x: f64, y: f64| chart.backend_coord(&(x, y));
        let left = font(14).pos(Pos::new(HPos::Right, VPos::Center));
        for (i, name) in self.rows.iter().enumerate() {
            let (x, y) = at(0.0, nr as f64 - i as f64 - 0.5);
            root.draw_text(name, &left, (x - 8, y)).map_err(de)?;
        }
        let head = font(13).pos(Pos::new(HPos::Center, VPos::Bottom));
        for (j, name) in self.cols.iter().enumerate() {
            let (x, y) = at(j as f64 + 0.5, nr as f64);
            let (a, b) = two_lines(name);
            root.draw_text(&a, &head, (x, y - 22)).map_err(de)?;
            root.draw_text(&b, &head, (x, y - 6)).map_err(de)?;
        }
        let legend = [
            "block (rows, input to output) x metric (columns); colour: Pearson r across labels, blue −1 … white 0 … red +1".to_string(),
            format!("* = BH q < {}; n/c = not computable; – = not applicable", self.alpha),
        ];
        let (_, y) = at(0.0, 0.0);
        for (k, line) in legend.iter().enumerate() {
            root.draw_text(line, &font(13), (12, y + 12 + 18 * k as i32))
                .map_err(de)?;
        }
        Ok(())
    }
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn draw_cell<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    x: usize,
    y: usize,
    cell: HeatCell,
) -> Result<(), String> {
    let (color, text) = match cell {
        HeatCell::Value(r, sig) => (
            diverging(r),
            format!("{r:.2}{}", if sig { "*" } else { "" }),
        ),
        HeatCell::NotComputable => (RGBColor(200, 200, 200), "n/c".to_string()),
        HeatCell::NotApplicable => (RGBColor(235, 235, 235), "–".to_string()),
    };
    let (x, y) = (x as f64, y as f64);
    chart
        .draw_series([Rectangle::new([(x, y), (x + 1.0, y + 1.0)], color.filled())])
        .map_err(de)?;
    chart
        .draw_series([Rectangle::new(
            [(x, y), (x + 1.0, y + 1.0)],
            WHITE.stroke_width(1),
        )])
        .map_err(de)?;
    let ink = if matches!(cell, HeatCell::Value(r, _) if r.abs() > 0.6) {
        WHITE
    } else {
        BLACK
    };
    let style = font(13)
        .color(&ink)
        .pos(Pos::new(HPos::Center, VPos::Center));
    chart
        .draw_series([Text::new(text, (x + 0.5, y + 0.5), style)])
        .map_err(de)?;
    Ok(())
}
