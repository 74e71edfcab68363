//! The latency plot: per-bar boundary-to-result time against each bar's deadline over the
//! session, misses and drops marked. PNG through plotters' bitmap backend; text is drawn with the
//! DejaVu Sans font shipped in `assets/fonts/` (no system fonts needed).

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use super::stats::Report;

/// DejaVu Sans (license in `assets/fonts/DejaVuSans.LICENSE`).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// Family name the shipped font is registered under.
pub(crate) const FAMILY: &str = "sans-serif";

/// A plot that could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Nothing to draw.
    #[error("the log has no generations or windows to plot")]
    Empty,
    /// Drawing or encoding failed (an unwritable path, usually).
    #[error("cannot draw {path}: {detail}; check that its folder exists and is writable")]
    Draw {
        /// The PNG.
        path: String,
        /// The backend's message.
        detail: String,
    },
}

/// Registers the shipped font once per process.
pub(crate) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are compiled in and parse: a failure here would be a broken build asset.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// Turns a plotters error into a [`PlotError`] for `path`.
pub(crate) fn draw_err(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> PlotError + '_ {
    move |e| PlotError::Draw {
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}

/// Draws `report`'s per-bar series to a PNG at `path` (1200 x 600).
pub fn latency_png(report: &Report, path: &Path) -> Result<(), PlotError> {
    register_font();
    let bars = &report.bars;
    if bars.is_empty() {
        return Err(PlotError::Empty);
    }
    let err = draw_err(path);
    let x0 = bars.first().map_or(0, |b| b.window_bar) as f64 - 0.5;
    let x1 = bars.last().map_or(1, |b| b.window_bar) as f64 + 0.5;
    let y_max = bars
        .iter()
        .flat_map(|b| [b.total_ms, b.budget_ms])
        .flatten()
        .fold(1.0f64, f64::max)
        * 1.15;

    let root = BitMapBackend::new(path, (1200, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let title = match &report.settings {
        Some(s) => format!(
            "Generation time per bar vs deadline - {} BPM {}, prompt_bars {}, max_new_tokens {}",
            s.bpm, s.time_signature, s.prompt_bars, s.max_new_tokens
        ),
        None => "Generation time per bar vs deadline".to_string(),
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 22))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, 0.0..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("window bar")
        .y_desc("ms (boundary to result)")
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 17))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| err(&e))?;

    let deadline: Vec<(f64, f64)> = bars
        .iter()
        .filter_map(|b| b.budget_ms.map(|d| (b.window_bar as f64, d)))
        .collect();
    chart
        .draw_series(LineSeries::new(deadline, RED.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("deadline (one bar)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.stroke_width(2)));

    let gen: Vec<(f64, f64)> = bars
        .iter()
        .filter_map(|b| b.total_ms.map(|t| (b.window_bar as f64, t)))
        .collect();
    chart
        .draw_series(LineSeries::new(gen.clone(), BLUE.stroke_width(1)))
        .map_err(|e| err(&e))?;
    chart
        .draw_series(gen.iter().map(|&p| Circle::new(p, 3, BLUE.filled())))
        .map_err(|e| err(&e))?
        .label("queue wait + generation")
        .legend(|(x, y)| Circle::new((x + 10, y), 3, BLUE.filled()));

    // A miss without a generation (failed or still running) sits on the axis.
    let misses: Vec<(f64, f64)> = bars
        .iter()
        .filter(|b| b.missed)
        .map(|b| (b.window_bar as f64, b.total_ms.unwrap_or(0.0).min(y_max)))
        .collect();
    chart
        .draw_series(
            misses
                .iter()
                .map(|&p| Cross::new(p, 7, RED.stroke_width(3))),
        )
        .map_err(|e| err(&e))?
        .label(format!("missed ({})", report.missed))
        .legend(|(x, y)| Cross::new((x + 10, y), 6, RED.stroke_width(3)));
    let drops: Vec<(f64, f64)> = bars
        .iter()
        .filter(|b| b.dropped)
        .map(|b| (b.window_bar as f64, 0.0))
        .collect();
    chart
        .draw_series(
            drops
                .iter()
                .map(|&p| TriangleMarker::new(p, 7, MAGENTA.filled())),
        )
        .map_err(|e| err(&e))?
        .label(format!("dropped ({})", report.dropped))
        .legend(|(x, y)| TriangleMarker::new((x + 10, y), 6, MAGENTA.filled()));

    chart
        .configure_series_labels()
        .label_font((FAMILY, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
