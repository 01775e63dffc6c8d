//! A price chart drawn on the server as SVG: a line over the recent history, the
//! range's high and low, and the first and last times. No chart library, no script.

use maud::{Markup, html};

const W: f64 = 900.0;
const H: f64 = 260.0;
const PAD_L: f64 = 70.0;
const PAD_R: f64 = 12.0;
const PAD_Y: f64 = 18.0;

/// A line chart of `(ts_ms, price)` points, oldest first.
pub fn line(points: &[(i64, f64)], label: &str) -> Markup {
    if points.len() < 2 {
        return html! { p.muted { "Not enough history for a chart yet (" (points.len()) " point)." } };
    }
    let (t0, t1) = (points[0].0, points[points.len() - 1].0);
    let (lo, hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    let span_t = (t1 - t0).max(1) as f64;
    let span_p = if hi > lo { hi - lo } else { 1.0 };
    let x = |t: i64| PAD_L + (t - t0) as f64 / span_t * (W - PAD_L - PAD_R);
    let y = |p: f64| PAD_Y + (hi - p) / span_p * (H - 2.0 * PAD_Y);
    let mut path = String::with_capacity(points.len() * 16);
    for (i, (t, p)) in points.iter().enumerate() {
        path.push_str(&format!(
            "{}{:.1},{:.1}",
            if i == 0 { "M" } else { " L" },
            x(*t),
            y(*p)
        ));
    }
    let time = |ms: i64| crate::util::rfc3339_ms(ms);
    html! {
        svg.chart viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(label) xmlns="http://www.w3.org/2000/svg" {
            title { (label) }
            line x1=(PAD_L) y1=(PAD_Y) x2=(W - PAD_R) y2=(PAD_Y) stroke="#dde1e6" {}
            line x1=(PAD_L) y1=(H - PAD_Y) x2=(W - PAD_R) y2=(H - PAD_Y) stroke="#dde1e6" {}
            text x=(PAD_L - 6.0) y=(PAD_Y + 4.0) text-anchor="end" font-size="11" fill="#66707a" { (fmt(hi)) }
            text x=(PAD_L - 6.0) y=(H - PAD_Y + 4.0) text-anchor="end" font-size="11" fill="#66707a" { (fmt(lo)) }
            text x=(PAD_L) y=(H - 3.0) font-size="10" fill="#66707a" { (time(t0)) }
            text x=(W - PAD_R) y=(H - 3.0) text-anchor="end" font-size="10" fill="#66707a" { (time(t1)) }
            path d=(path) fill="none" stroke="#2457c5" stroke-width="1.6" {}
        }
    }
}

fn fmt(p: f64) -> String {
    if p.abs() >= 100.0 {
        format!("{p:.2}")
    } else {
        format!("{p:.6}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_spans_the_plot_and_labels_the_range() {
        let svg = line(&[(0, 10.0), (500, 30.0), (1000, 20.0)], "BTC").into_string();
        assert!(svg.contains("M70.0,242.0 L"), "{svg}");
        assert!(svg.contains("L888.0,130.0"), "{svg}");
        assert!(svg.contains(">30.000000<"), "{svg}");
        assert!(line(&[(0, 1.0)], "x").into_string().contains("Not enough"));
    }
}
