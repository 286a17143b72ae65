//! The report's charts, drawn with plotters' SVG backend. Text comes out as
//! SVG `<text>` elements (no font files are read: plotters is built without
//! its `ttf` feature and only estimates text extents), so the charts render
//! the same on a machine without fonts or fontconfig.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::data::{UseGrid, UseState};
use crate::summary::thousands;

/// A chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart: {0}")]
pub struct ChartError(String);

fn err<E: std::fmt::Display>(e: E) -> ChartError {
    ChartError(e.to_string())
}

const WIDTH: u32 = 780;
const LINE_HEIGHT: u32 = 300;
const FONT: &str = "sans-serif";

/// Colours of up to four series in one chart, then repeating.
pub const SERIES: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

/// Colour of a target line.
pub const TARGET: RGBColor = RGBColor(120, 120, 120);

/// One named data series.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub color: RGBColor,
}

/// A line chart with a caption, axis titles and a legend.
#[derive(Debug, Clone)]
pub struct LineChart<'a> {
    pub caption: &'a str,
    pub x_title: &'a str,
    pub y_title: &'a str,
    pub lines: Vec<Line>,
}

/// Draws into a fresh SVG document and returns its text.
fn svg(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<(), ChartError>,
) -> Result<String, ChartError> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(buf)
}

/// (min, max) of `values`, widened so that the range is never empty.
fn span(values: impl Iterator<Item = f64>, floor: Option<f64>) -> (f64, f64) {
    let (mut lo, mut hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if let Some(f) = floor {
        lo = lo.min(f);
        hi = hi.max(f);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        hi = lo + 1.0;
    }
    (lo, hi)
}

/// Week numbers: whole values only (a tick between two weeks gets no label).
fn whole(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-6 {
        format!("{}", x.round() as i64)
    } else {
        String::new()
    }
}

/// A line chart as an SVG document.
pub fn line_chart(spec: &LineChart) -> Result<String, ChartError> {
    let all = || spec.lines.iter().flat_map(|l| l.points.iter());
    let (x0, x1) = span(all().map(|p| p.0), None);
    let (y0, y1) = span(all().map(|p| p.1), Some(0.0));
    let y1 = y1 + (y1 - y0) * 0.08;
    svg((WIDTH, LINE_HEIGHT), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(spec.caption, (FONT, 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(spec.x_title)
            .y_desc(spec.y_title)
            .x_labels(((x1 - x0) as usize + 1).clamp(2, 14))
            .x_label_formatter(&whole)
            .y_label_formatter(&|y| thousands(*y, if y1 - y0 < 10.0 { 1 } else { 0 }))
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(err)?;
        for l in &spec.lines {
            let color = l.color;
            chart
                .draw_series(
                    LineSeries::new(l.points.iter().copied(), color.stroke_width(2)).point_size(2),
                )
                .map_err(err)?
                .label(l.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(err)
    })
}

/// The row axis of a heat map: `n` bands of height 1 from 0 up, with a
/// label at each band's centre (plotters' own integer axes put their labels
/// on the band edges).
struct Bands(usize);

impl Ranged for Bands {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = f64::from(limit.1 - limit.0);
        limit.0 + (span * value / self.0 as f64).round() as i32
    }

    fn key_points<H: plotters::coord::ranged1d::KeyPointHint>(&self, _hint: H) -> Vec<f64> {
        (0..self.0).map(|y| y as f64 + 0.5).collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        0.0..self.0 as f64
    }
}

/// Colour of a heat-map cell.
pub fn use_color(s: UseState) -> RGBColor {
    let mix = |a: (f64, f64, f64), b: (f64, f64, f64), f: f64| {
        let c = |x: f64, y: f64| (x + (y - x) * f.clamp(0.0, 1.0)).round() as u8;
        RGBColor(c(a.0, b.0), c(a.1, b.1), c(a.2, b.2))
    };
    match s {
        UseState::Closed => RGBColor(255, 255, 255),
        UseState::Idle => RGBColor(222, 222, 222),
        UseState::Regular(f) => mix((198.0, 219.0, 239.0), (8.0, 81.0, 156.0), f),
        UseState::Extra(f) => mix((253.0, 174.0, 107.0), (165.0, 15.0, 21.0), f),
    }
}

/// A capacity-use heat map (a row per capacity, a column per week) as an
/// SVG document; the first row is drawn at the top.
pub fn heat_map(
    caption: &str,
    y_title: &str,
    grid: &UseGrid,
    weeks: usize,
) -> Result<String, ChartError> {
    let n = grid.rows.len().max(1);
    let widest = grid
        .rows
        .iter()
        .map(|r| r.chars().count())
        .max()
        .unwrap_or(4);
    let label_width = (widest as u32 * 7 + 30).clamp(60, 260);
    let height = (n as u32 * 16 + 110).min(4000);
    // Row r is the band [n-1-r, n-r): the first capacity is drawn at the top,
    // and each label sits on its band's centre.
    svg((WIDTH, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(caption, (FONT, 16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(label_width)
            .build_cartesian_2d(0..weeks.max(1) as i32, Bands(n))
            .map_err(err)?;
        let name = |y: &f64| {
            let band = y.floor() as usize;
            (band < n)
                .then(|| grid.rows.get(n - 1 - band))
                .flatten()
                .cloned()
                .unwrap_or_default()
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("week")
            .y_desc(y_title)
            .x_labels(weeks.clamp(2, 14))
            .y_label_formatter(&name)
            .label_style((FONT, 11))
            .axis_desc_style((FONT, 13))
            .draw()
            .map_err(err)?;
        let cells = grid.cells.iter().enumerate().flat_map(|(r, row)| {
            let y = (n - 1 - r) as f64;
            row.iter().enumerate().map(move |(t, u)| {
                Rectangle::new(
                    [(t as i32, y), (t as i32 + 1, y + 1.0)],
                    use_color(u.state()).filled(),
                )
            })
        });
        chart.draw_series(cells).map_err(err)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::data::Use;

    /// The backend writes each text on its own line inside `<text>`.
    fn has_text(svg: &str, t: &str) -> bool {
        svg.contains(&format!(">\n{t}\n</text>"))
    }

    #[test]
    fn a_line_chart_has_its_titles_and_series() {
        let svg = line_chart(&LineChart {
            caption: "Flow <SPK>",
            x_title: "week",
            y_title: "candidates",
            lines: vec![Line {
                name: "registrations".into(),
                points: vec![(0.0, 8.0), (1.0, 12.0), (2.0, 10.0)],
                color: SERIES[0],
            }],
        })
        .unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(
            has_text(&svg, "week") && has_text(&svg, "candidates"),
            "{svg}"
        );
        assert!(has_text(&svg, "registrations"), "{svg}");
        // Text from the plan is escaped by the backend.
        assert!(has_text(&svg, "Flow &lt;SPK&gt;"), "{svg}");
        assert!(svg.contains("<polyline"), "{svg}");
    }

    #[test]
    fn a_heat_map_has_a_cell_per_row_and_week() {
        let u = |used| Use {
            regular: 100.0,
            extra: 50.0,
            used,
        };
        let grid = UseGrid {
            rows: vec!["AMS booth".into(), "UTR booth".into()],
            cells: vec![vec![u(0.0), u(50.0), u(120.0)], vec![u(100.0); 3]],
        };
        let svg = heat_map("Seats", "location", &grid, 3).unwrap();
        let fill = |s: UseState| {
            let RGBColor(r, g, b) = use_color(s);
            format!("fill=\"#{r:02X}{g:02X}{b:02X}\"")
        };
        assert!(svg.contains(&fill(UseState::Idle)), "{svg}");
        assert!(svg.contains(&fill(UseState::Regular(0.5))), "{svg}");
        assert!(svg.contains(&fill(UseState::Extra(0.4))), "{svg}");
        assert!(
            has_text(&svg, "AMS booth") && has_text(&svg, "UTR booth"),
            "{svg}"
        );
    }
}
