//! Cumulative cost per policy over the trace's time, as a hand-written SVG
//! line chart (no plotting dependency).

use std::fmt::Write as _;

use super::Report;

const COLORS: [&str; 6] = [
    "#d62728", "#7f7f7f", "#ff7f0e", "#1f77b4", "#2ca02c", "#9467bd",
];

/// The chart of `report` (which must have been simulated with buckets).
pub fn svg(report: &Report) -> String {
    let (w, h, left, right, top, bottom) = (800.0, 420.0, 70.0, 190.0, 20.0, 40.0);
    let series: Vec<(&str, Vec<f64>)> = report
        .policies
        .iter()
        .map(|(p, l)| {
            let mut sum = 0.0;
            let cumulative = l.buckets.iter().map(|b| {
                sum += b;
                sum
            });
            (p.name(), cumulative.collect())
        })
        .collect();
    let max = series
        .iter()
        .flat_map(|(_, s)| s.last().copied())
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let n = series.first().map_or(1, |(_, s)| s.len()).max(1);
    let x = |i: usize| left + (w - left - right) * (i + 1) as f64 / n as f64;
    let y = |v: f64| top + (h - top - bottom) * (1.0 - v / max);
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(out, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let (x0, y0, x1) = (left, h - bottom, w - right);
    let _ = write!(
        out,
        r#"<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="black"/><line x1="{x0}" y1="{top}" x2="{x0}" y2="{y0}" stroke="black"/>"#
    );
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">${v:.2}</text>"#,
            left - 6.0,
            y(v) + 4.0
        );
    }
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">days (0 to {:.0}); cumulative cost, USD</text>"#,
        (x0 + x1) / 2.0,
        h - 10.0,
        report.span_days
    );
    for (k, (name, s)) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let points: Vec<String> = std::iter::once(format!("{left:.1},{:.1}", y(0.0)))
            .chain(
                s.iter()
                    .enumerate()
                    .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v))),
            )
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        let ly = top + 18.0 * k as f64 + 10.0;
        let _ = write!(
            out,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{name} ${:.2}</text>"#,
            x1 + 10.0,
            x1 + 30.0,
            x1 + 36.0,
            ly + 4.0,
            s.last().copied().unwrap_or_default()
        );
    }
    out.push_str("</svg>\n");
    out
}
