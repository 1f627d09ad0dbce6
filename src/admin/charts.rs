//! The dashboard's charts: inline SVG drawn on the server from the per-hour aggregates
//! ([`crate::db::charts`]), so the admin pages keep a Content-Security-Policy without script.
//! Geometry is computed here; `templates/_charts.html` only prints it, escaped. Every chart
//! has a text summary (also its SVG `<desc>`) and a `<title>` tooltip per bar.

use crate::db::charts::{Bucket, ChartData};

use super::view;

/// The viewBox width of every chart; the SVG scales to its container.
const W: f64 = 640.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 60.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 26.0;

const BLUE: &str = "#2563eb";
const GREEN: &str = "#16a34a";
const RED: &str = "#dc2626";
const AMBER: &str = "#d97706";

/// One chart, ready to print.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Heading, e.g. "Payments per hour (last 48 h, UTC)".
    pub title: String,
    /// What the chart shows, in words: for screen readers and a quick read.
    pub summary: String,
    /// viewBox width and height.
    pub width: u32,
    /// viewBox height.
    pub height: u32,
    /// Bars and other boxes.
    pub rects: Vec<Rect>,
    /// Axis labels.
    pub labels: Vec<Label>,
    /// Lines (a second series, the grid).
    pub lines: Vec<Line>,
    /// The legend: colour and name of each series.
    pub legend: Vec<(&'static str, &'static str)>,
}

/// An SVG `<rect>` with a tooltip.
#[derive(Debug, Clone)]
pub struct Rect {
    /// Left edge.
    pub x: String,
    /// Top edge.
    pub y: String,
    /// Width.
    pub w: String,
    /// Height.
    pub h: String,
    /// Fill colour.
    pub fill: &'static str,
    /// Tooltip text.
    pub tip: String,
}

/// An SVG `<text>`.
#[derive(Debug, Clone)]
pub struct Label {
    /// Anchor point x.
    pub x: String,
    /// Baseline y.
    pub y: String,
    /// `start`, `middle` or `end`.
    pub anchor: &'static str,
    /// The text.
    pub text: String,
}

/// An SVG `<polyline>`.
#[derive(Debug, Clone)]
pub struct Line {
    /// `x,y x,y ...`.
    pub points: String,
    /// Stroke colour.
    pub stroke: &'static str,
    /// Stroke width.
    pub width: &'static str,
}

fn n(v: f64) -> String {
    format!("{v:.1}")
}

/// One stacked series of a column chart.
struct Series<'a> {
    name: &'static str,
    fill: &'static str,
    values: &'a [i64],
}

/// A line over the columns, on its own scale (labelled on the right).
struct Overlay<'a> {
    name: &'static str,
    stroke: &'static str,
    values: &'a [i64],
    fmt: fn(i64) -> String,
}

/// A column chart over `keys` (stacked series), with an optional line on its own scale.
fn columns(
    title: String,
    summary: String,
    keys: &[String],
    series: &[Series<'_>],
    overlay: Option<Overlay<'_>>,
    x_label: impl Fn(usize, &str) -> Option<String>,
    tip: impl Fn(usize) -> String,
) -> Chart {
    let h_total = 200.0;
    let (pw, ph) = (W - LEFT - RIGHT, h_total - TOP - BOTTOM);
    let slot = pw / keys.len().max(1) as f64;
    let totals: Vec<i64> = (0..keys.len())
        .map(|i| series.iter().map(|s| s.values[i]).sum())
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let y_of = |v: i64, max: i64| TOP + ph - ph * v as f64 / max as f64;
    let mut rects = Vec::new();
    for i in 0..keys.len() {
        let mut base = 0;
        for s in series {
            let v = s.values[i];
            if v > 0 {
                let (top, bottom) = (y_of(base + v, max), y_of(base, max));
                rects.push(Rect {
                    x: n(LEFT + slot * i as f64 + slot * 0.1),
                    y: n(top),
                    w: n((slot * 0.8).max(1.0)),
                    h: n((bottom - top).max(0.5)),
                    fill: s.fill,
                    tip: tip(i),
                });
            }
            base += v;
        }
    }
    let mut labels = vec![
        Label {
            x: n(LEFT - 6.0),
            y: n(TOP + 4.0),
            anchor: "end",
            text: max.to_string(),
        },
        Label {
            x: n(LEFT - 6.0),
            y: n(TOP + ph + 4.0),
            anchor: "end",
            text: "0".into(),
        },
    ];
    for (i, k) in keys.iter().enumerate() {
        if let Some(text) = x_label(i, k) {
            labels.push(Label {
                x: n(LEFT + slot * (i as f64 + 0.5)),
                y: n(h_total - 8.0),
                anchor: "middle",
                text,
            });
        }
    }
    let mut lines = vec![
        Line {
            points: format!(
                "{},{} {},{}",
                n(LEFT),
                n(TOP + ph),
                n(LEFT + pw),
                n(TOP + ph)
            ),
            stroke: "#9ca3af",
            width: "1",
        },
        Line {
            points: format!("{},{} {},{}", n(LEFT), n(TOP), n(LEFT + pw), n(TOP)),
            stroke: "#e5e7eb",
            width: "1",
        },
    ];
    let mut legend: Vec<(&'static str, &'static str)> =
        series.iter().map(|s| (s.fill, s.name)).collect();
    if let Some(Overlay {
        name,
        stroke,
        values,
        fmt,
    }) = overlay
    {
        let omax = values.iter().copied().max().unwrap_or(0).max(1);
        let points = values
            .iter()
            .enumerate()
            .map(|(i, &v)| format!("{},{}", n(LEFT + slot * (i as f64 + 0.5)), n(y_of(v, omax))))
            .collect::<Vec<_>>()
            .join(" ");
        lines.push(Line {
            points,
            stroke,
            width: "2",
        });
        labels.push(Label {
            x: n(LEFT + pw + 6.0),
            y: n(TOP + 4.0),
            anchor: "start",
            text: compact(fmt(omax)),
        });
        legend.push((stroke, name));
    }
    Chart {
        title,
        summary,
        width: W as u32,
        height: h_total as u32,
        rects,
        labels,
        lines,
        legend,
    }
}

/// Every 6th hour labelled with its hour (`06h`), midnight with its day (`10.03`).
fn hour_label(i: usize, key: &str, last: usize) -> Option<String> {
    let hh = key.get(11..13)?;
    if hh == "00" {
        Some(format!("{}.{}", key.get(8..10)?, key.get(5..7)?))
    } else if hh.parse::<u32>().ok()? % 6 == 0 && i + 2 < last {
        Some(format!("{hh}h"))
    } else {
        None
    }
}

/// An axis label short enough for the margin: `131197.01` → `131k`, `10968.90` → `11.0k`.
fn compact(money: String) -> String {
    let whole: i64 = money
        .split('.')
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or(0);
    match whole {
        0..1_000 => money,
        1_000..10_000 => format!("{}.{}k", whole / 1000, (whole % 1000) / 100),
        10_000..1_000_000 => format!("{}k", (whole + 500) / 1000),
        _ => format!("{}M", (whole + 500_000) / 1_000_000),
    }
}

fn busiest(buckets: &[Bucket]) -> Option<&Bucket> {
    buckets
        .iter()
        .filter(|b| b.payments > 0)
        .max_by_key(|b| b.payments)
}

/// The five charts of the dashboard, from `data` and the backlog now.
/// Times are in the display time zone `zone` (its name labels them).
pub fn dashboard_charts(
    data: &ChartData,
    pending_now: i64,
    pending_capped: bool,
    zone: &str,
) -> Vec<Chart> {
    let mut out = Vec::new();
    let money = |minor: i64| view::money(i128::from(minor));

    // Payments per hour, with their sum.
    let h = &data.hours;
    let keys: Vec<String> = h.iter().map(|b| b.key.clone()).collect();
    let counts: Vec<i64> = h.iter().map(|b| b.payments).collect();
    let sums: Vec<i64> = h.iter().map(|b| b.sum_minor).collect();
    let total: i64 = counts.iter().sum();
    let summary = match busiest(h) {
        None => "No payments in the last 48 hours.".to_owned(),
        Some(b) => format!(
            "{total} payments in the last 48 hours, {} in total; the busiest hour was {}:00 {zone} with {} payments ({}).",
            money(sums.iter().fold(0, |a: i64, &b| a.saturating_add(b))),
            b.key,
            b.payments,
            money(b.sum_minor)
        ),
    };
    let last = keys.len().saturating_sub(1);
    out.push(columns(
        format!("Payments per hour (last 48 h, {zone})"),
        summary,
        &keys,
        &[Series {
            name: "payments",
            fill: BLUE,
            values: &counts,
        }],
        Some(Overlay {
            name: "sum",
            stroke: AMBER,
            values: &sums,
            fmt: |minor| view::money(i128::from(minor)),
        }),
        |i, k| hour_label(i, k, last),
        |i| {
            format!(
                "{}:00 {zone}: {} payments, {}",
                h[i].key,
                h[i].payments,
                money(h[i].sum_minor)
            )
        },
    ));

    // Payments per day, with their sum.
    let d = &data.days;
    let keys: Vec<String> = d.iter().map(|b| b.key.clone()).collect();
    let counts: Vec<i64> = d.iter().map(|b| b.payments).collect();
    let sums: Vec<i64> = d.iter().map(|b| b.sum_minor).collect();
    let total: i64 = counts.iter().sum();
    let summary = match busiest(d) {
        None => "No payments in the last 60 days.".to_owned(),
        Some(b) => format!(
            "{total} payments in the last 60 days, {} in total, {} a day on average; the busiest day was {} with {} payments ({}).",
            money(sums.iter().fold(0, |a: i64, &b| a.saturating_add(b))),
            total / crate::db::charts::DAYS,
            b.key,
            b.payments,
            money(b.sum_minor)
        ),
    };
    let last = keys.len().saturating_sub(1);
    out.push(columns(
        format!("Payments per day (last 60 days, {zone})"),
        summary,
        &keys,
        &[Series {
            name: "payments",
            fill: BLUE,
            values: &counts,
        }],
        Some(Overlay {
            name: "sum",
            stroke: AMBER,
            values: &sums,
            fmt: |minor| view::money(i128::from(minor)),
        }),
        |i, k| {
            (i % 10 == 0 || i == last).then(|| {
                format!(
                    "{}.{}",
                    k.get(8..10).unwrap_or(""),
                    k.get(5..7).unwrap_or("")
                )
            })
        },
        |i| {
            format!(
                "{}: {} payments, {}",
                d[i].key,
                d[i].payments,
                money(d[i].sum_minor)
            )
        },
    ));

    // QIWI answers by result code: one horizontal bar per code.
    out.push(results_chart(&data.results));

    // Webhook attempts: delivered vs failed, per hour.
    let keys: Vec<String> = h.iter().map(|b| b.key.clone()).collect();
    let ok: Vec<i64> = h.iter().map(|b| b.delivered).collect();
    let bad: Vec<i64> = h.iter().map(|b| b.failed).collect();
    let (sum_ok, sum_bad): (i64, i64) = (ok.iter().sum(), bad.iter().sum());
    let summary = if sum_ok + sum_bad == 0 {
        "No webhook attempts in the last 48 hours.".to_owned()
    } else {
        format!(
            "{} webhook attempts in the last 48 hours: {sum_ok} delivered, {sum_bad} failed ({}% failed).",
            sum_ok + sum_bad,
            sum_bad * 100 / (sum_ok + sum_bad)
        )
    };
    out.push(columns(
        format!("Webhook attempts per hour (last 48 h, {zone})"),
        summary,
        &keys,
        &[
            Series {
                name: "delivered",
                fill: GREEN,
                values: &ok,
            },
            Series {
                name: "failed",
                fill: RED,
                values: &bad,
            },
        ],
        None,
        |i, k| hour_label(i, k, last_of(&keys)),
        |i| {
            format!(
                "{}:00 {zone}: {} delivered, {} failed",
                h[i].key, h[i].delivered, h[i].failed
            )
        },
    ));

    // The backlog at the end of each hour.
    let backlog = crate::db::charts::backlog(h, pending_now);
    let peak = backlog.iter().copied().max().unwrap_or(0);
    let summary = if pending_capped {
        format!(
            "Undelivered payments now: more than {pending_now}, so each hour's figure is counted back from {pending_now} and is a lower bound; at least {peak} at the end of an hour in the last 48 hours; 48 hours ago: at least {}.",
            backlog.first().copied().unwrap_or(0)
        )
    } else {
        format!(
            "Undelivered payments now: {pending_now}; at most {peak} at the end of an hour in the last 48 hours; 48 hours ago: {}.",
            backlog.first().copied().unwrap_or(0)
        )
    };
    out.push(columns(
        format!("Webhook backlog at the end of each hour ({zone})"),
        summary,
        &keys,
        &[Series {
            name: "undelivered",
            fill: AMBER,
            values: &backlog,
        }],
        None,
        |i, k| hour_label(i, k, last_of(&keys)),
        |i| format!("{}:59 {zone}: {} undelivered", h[i].key, backlog[i]),
    ));
    out
}

fn last_of(keys: &[String]) -> usize {
    keys.len().saturating_sub(1)
}

/// Horizontal bars: answers per result code in the last 48 hours.
fn results_chart(results: &[(i64, i64)]) -> Chart {
    let row = 26.0;
    let label_w = 290.0;
    let height = TOP + row * results.len().max(1) as f64 + 8.0;
    let max = results.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let total: i64 = results.iter().map(|r| r.1).sum();
    let bar_w = W - label_w - 70.0;
    let mut rects = Vec::new();
    let mut labels = Vec::new();
    for (i, &(code, count)) in results.iter().enumerate() {
        let y = TOP + row * i as f64;
        let fill = match code {
            0 => GREEN,
            1 | 90 => AMBER,
            _ => RED,
        };
        let meaning = view::result_meaning(code);
        rects.push(Rect {
            x: n(label_w),
            y: n(y),
            w: n((bar_w * count as f64 / max as f64).max(1.0)),
            h: n(row - 8.0),
            fill,
            tip: format!("result {code} ({meaning}): {count} answers"),
        });
        labels.push(Label {
            x: n(label_w - 8.0),
            y: n(y + row - 13.0),
            anchor: "end",
            text: format!("{code} {meaning}"),
        });
        labels.push(Label {
            x: n(label_w + bar_w * count as f64 / max as f64 + 6.0),
            y: n(y + row - 13.0),
            anchor: "start",
            text: count.to_string(),
        });
    }
    let summary = if total == 0 {
        "No protocol answers in the last 48 hours.".to_owned()
    } else {
        let parts: Vec<String> = results
            .iter()
            .map(|&(code, count)| {
                format!(
                    "{count} × {code} ({}, {}%)",
                    view::result_meaning(code),
                    count * 100 / total
                )
            })
            .collect();
        format!(
            "{total} answers to QIWI in the last 48 hours: {}.",
            parts.join(", ")
        )
    };
    Chart {
        title: "QIWI answers by result code (last 48 h)".into(),
        summary,
        width: W as u32,
        height: height as u32,
        rects,
        labels,
        lines: Vec::new(),
        legend: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> ChartData {
        let hours = (0..48)
            .map(|i| Bucket {
                key: format!("2024-03-{:02} {:02}", 8 + (i + 13) / 24, (i + 13) % 24),
                payments: i64::from(i == 47) * 3,
                sum_minor: i64::from(i == 47) * 4500,
                acked: 0,
                delivered: i64::from(i == 47) * 2,
                failed: i64::from(i == 47),
            })
            .collect();
        let days = (0..60)
            .map(|i| Bucket {
                key: format!("2024-02-{:02}", i % 28 + 1),
                payments: i64::from(i == 59) * 3,
                sum_minor: i64::from(i == 59) * 4500,
                ..Bucket::default()
            })
            .collect();
        ChartData {
            hours,
            days,
            results: vec![(0, 9), (300, 1)],
        }
    }

    #[test]
    fn each_chart_says_in_words_what_it_draws() {
        let charts = dashboard_charts(&data(), 3, false, "UTC");
        assert_eq!(charts.len(), 5);
        assert!(
            charts[0]
                .summary
                .contains("3 payments in the last 48 hours, 45.00 in total"),
            "{}",
            charts[0].summary
        );
        assert!(
            charts[0].summary.contains("2024-03-10 12:00 UTC"),
            "{}",
            charts[0].summary
        );
        assert_eq!(charts[0].rects.len(), 1, "one bar: one hour had payments");
        assert!(charts[0].rects[0].tip.contains("3 payments, 45.00"));
        assert_eq!(
            charts[0].lines.len(),
            3,
            "axis, top grid line, the sums' line"
        );
        assert!(
            charts[2].summary.contains("10 answers"),
            "{}",
            charts[2].summary
        );
        assert!(
            charts[2].summary.contains("1 × 300"),
            "{}",
            charts[2].summary
        );
        assert_eq!(charts[2].rects.len(), 2);
        assert!(
            charts[3].summary.contains(
                "3 webhook attempts in the last 48 hours: 2 delivered, 1 failed (33% failed)"
            ),
            "{}",
            charts[3].summary
        );
        assert_eq!(charts[3].rects.len(), 2, "delivered and failed stacked");
        assert!(
            charts[4].summary.contains("now: 3"),
            "{}",
            charts[4].summary
        );
    }

    #[test]
    fn bars_stay_inside_the_view_box() {
        for c in dashboard_charts(&data(), 3, false, "UTC") {
            for r in &c.rects {
                let (y, h): (f64, f64) = (r.y.parse().unwrap(), r.h.parse().unwrap());
                let (x, w): (f64, f64) = (r.x.parse().unwrap(), r.w.parse().unwrap());
                assert!(y >= 0.0 && y + h <= f64::from(c.height) + 0.1, "{c:?}");
                assert!(x >= 0.0 && x + w <= f64::from(c.width) + 0.1, "{c:?}");
            }
        }
    }

    #[test]
    fn axis_money_labels_fit_the_margin() {
        assert_eq!(compact("131197.01".into()), "131k");
        assert_eq!(compact("8820.27".into()), "8.8k");
        assert_eq!(compact("45.00".into()), "45.00");
        assert_eq!(compact("2498952.95".into()), "2M");
    }

    #[test]
    fn empty_periods_are_said_so() {
        let empty = ChartData {
            hours: (0..48)
                .map(|i| Bucket {
                    key: format!("2024-03-10 {:02}", i % 24),
                    ..Bucket::default()
                })
                .collect(),
            days: Vec::new(),
            results: Vec::new(),
        };
        let charts = dashboard_charts(&empty, 0, false, "UTC");
        assert_eq!(charts[0].summary, "No payments in the last 48 hours.");
        assert_eq!(
            charts[2].summary,
            "No protocol answers in the last 48 hours."
        );
        assert!(charts.iter().all(|c| c.rects.is_empty()));
    }
}
