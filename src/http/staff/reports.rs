//! The report page: the monthly (or quarterly) performance report as tables and two charts drawn
//! on the server as inline SVG, with a CSV download of the same figures.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::view;
use super::{PageResult, Staff, StaffError};
use crate::reports::{self, Counts, Period, Report};
use crate::service::AppState;

#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    month: Option<String>,
    quarter: Option<String>,
}

/// The period asked for: a quarter, a month, or this month (local time).
fn period(state: &AppState, q: &ReportQuery) -> Result<Period, StaffError> {
    let bad = |what: &str| StaffError::BadRequest(format!("{what}, for example 2026-11 or 2026-Q4"));
    match (q.quarter.as_deref().filter(|s| !s.is_empty()), q.month.as_deref().filter(|s| !s.is_empty())) {
        (Some(quarter), _) => Period::parse_quarter(quarter).ok_or_else(|| bad("give the quarter as YYYY-QN")),
        (None, Some(month)) => Period::parse_month(month).ok_or_else(|| bad("give the month as YYYY-MM")),
        (None, None) => {
            let today = state.clock.now().with_timezone(&state.policy.timezone).format("%Y-%m").to_string();
            Period::parse_month(&today).ok_or_else(|| bad("no current month"))
        }
    }
}

pub async fn page(State(state): State<Arc<AppState>>, staff: Staff, Query(q): Query<ReportQuery>) -> PageResult {
    let period = period(&state, &q)?;
    let report =
        reports::report_with_staffed_hours(&state.store, &state.policy, &state.config.staffed_hours, period).await?;
    let label = period.label();
    let decisions: Vec<(String, u64)> = ["send", "defer", "hold", "block"]
        .iter()
        .map(|k| (outcome_label(k).to_string(), report.decisions.by_outcome.get(*k).copied().unwrap_or(0)))
        .collect();
    let not_contacted: Vec<(String, u64)> = report.headings.iter().map(|h| (h.title.clone(), h.count)).collect();
    let data = json!({
        "title": format!("Report {label}"),
        "nav": { "reports": true },
        "label": label,
        "month": matches!(period, Period::Month { .. }).then(|| label.clone()),
        "quarter": matches!(period, Period::Quarter { .. }).then(|| label.clone()),
        "csv_url": format!("/staff/reports.csv?{}={label}", if matches!(period, Period::Quarter { .. }) { "quarter" } else { "month" }),
        "summary": summary(&report),
        "decisions_chart": bar_chart("First decisions by outcome", &decisions),
        "not_contacted_chart": bar_chart("Why victims were not contacted", &not_contacted),
        "headings": report.headings.iter().map(|h| json!({ "title": h.title, "codes": h.counts.join(", "), "count": h.count, "percent": one_decimal(h.percent) })).collect::<Vec<_>>(),
        "commissioner": commissioner(&report),
        "outcomes": rows(&report.decisions.by_outcome),
        "reasons": rows(&report.decisions.by_reason),
        "redecisions": rows(&report.redecisions.by_outcome),
        "kinds": rows(&report.outreach.by_kind),
        "sources": rows(&report.outreach.by_referral_source),
        "groups": rows(&report.outreach.by_category_group),
        "categories": rows(&report.outreach.by_category),
        "authorities": rows(&report.outreach.by_local_authority),
        "channels": report.messages.by_channel.iter().map(|(channel, c)| json!({
            "channel": channel,
            "total": c.total,
            "delivered": c.delivered,
            "rate": percent(c.delivery_rate),
            "statuses": c.by_status.iter().filter(|(_, n)| **n > 0).map(|(s, n)| format!("{s} {n}")).collect::<Vec<_>>().join(", "),
        })).collect::<Vec<_>>(),
        "replies": rows(&report.replies.by_classification),
        "replies_unmatched": report.replies.unmatched,
        "suppressions": report.suppressions,
        "calls": rows(&report.calls.by_outcome),
        "staffed_hours": report.staffed_hours.as_ref().map(staffed_hours),
    });
    view::page("reports", &staff, data)
}

/// Urgent replies outside staffed hours and their waits (issue 18), each with its case.
fn staffed_hours(r: &reports::StaffedHoursReport) -> Value {
    let items: Vec<Value> = r
        .items
        .iter()
        .map(|i| {
            let arrived = i.arrived_at.parse::<chrono::DateTime<chrono::Utc>>().map(|t| t.timestamp_millis());
            json!({
                "arrived": arrived.map(view::when).unwrap_or_default(),
                "classification": i.classification,
                "case_ref": i.case_ref,
                "case_url": i.case_ref.as_deref().map(view::case_url),
                "waited": i.waited_seconds.map(duration),
            })
        })
        .collect();
    json!({
        "hours": r.hours,
        "urgent_items": r.urgent_items,
        "outside": r.outside_staffed_hours,
        "acknowledged": r.acknowledged,
        "median": r.median_wait_seconds.map(duration),
        "max": r.max_wait_seconds.map(duration),
        "items": items,
    })
}

/// The same figures as `GET /v1/reports/monthly?format=csv`, for a spreadsheet.
pub async fn csv(State(state): State<Arc<AppState>>, _staff: Staff, Query(q): Query<ReportQuery>) -> PageResult {
    let period = period(&state, &q)?;
    let report =
        reports::report_with_staffed_hours(&state.store, &state.policy, &state.config.staffed_hours, period).await?;
    let disposition = format!("attachment; filename=\"safereach-report-{}.csv\"", period.label());
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8")),
        (header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).expect("a plain file name")),
    ];
    Ok((headers, reports::to_csv(&report)).into_response())
}

fn summary(report: &Report) -> Value {
    json!({
        "jobs": report.outreach.total,
        "cases": report.contact.cases_referred,
        "messages": report.messages.total,
        "delivery_rate": percent(report.messages.delivery_rate),
        "within_24h": percent(report.contact.priority_pretext_within_24h_share),
        "priority_cases": report.contact.priority_cases,
        "median": report.contact.median_seconds_to_first_contact.map(duration),
        "contacted": report.contact.cases_contacted,
        "phone_unsuccessful": report.contact.phone_unsuccessful_no_other_contact,
        "declined": report.contact.declined,
    })
}

/// The report as the commissioner reads it: the first line (contacted within 24 hours), why
/// victims declined, and the satisfaction survey.
fn commissioner(report: &Report) -> Value {
    let survey = &report.survey;
    json!({
        "within_24h": report.contacted_within_24h.count,
        "within_24h_percent": one_decimal(report.contacted_within_24h.percent),
        "cases": report.contact.cases_referred,
        "declined": report.declined.count,
        "declined_percent": one_decimal(report.declined.percent),
        "declined_reasons": rows(&report.declined.reasons),
        "survey": {
            "sent": survey.sent,
            "answered": survey.answered,
            "answered_percent": one_decimal(survey.answered_percent),
            "satisfied": survey.satisfied,
            "satisfied_percent": one_decimal(survey.satisfied_percent),
        },
    })
}

/// A percent as the 2015 report prints it: "14.3%".
fn one_decimal(percent: f64) -> String {
    format!("{percent:.1}%")
}

fn rows(counts: &Counts) -> Vec<Value> {
    counts.iter().map(|(key, count)| json!({ "key": key, "count": count })).collect()
}

fn outcome_label(outcome: &str) -> &str {
    match outcome {
        "send" => "Sent (or queued)",
        "defer" => "Deferred",
        "hold" => "Held for staff",
        "block" => "Blocked",
        other => other,
    }
}

fn percent(share: Option<f64>) -> Option<String> {
    share.map(|s| format!("{:.1}%", s * 100.0))
}

/// "1 day 2 h", "3 h 20 min", "45 min".
fn duration(seconds: i64) -> String {
    let minutes = seconds / 60;
    let (days, hours, mins) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    match (days, hours) {
        (0, 0) => format!("{mins} min"),
        (0, _) => format!("{hours} h {mins} min"),
        _ => format!("{days} day{} {hours} h", if days == 1 { "" } else { "s" }),
    }
}

/// A horizontal bar chart as inline SVG. The table beside it gives the same figures in text, so
/// the chart is decoration for a screen reader (it still has a title).
fn bar_chart(title: &str, bars: &[(String, u64)]) -> String {
    const WIDTH: u64 = 720;
    const LABEL: u64 = 330;
    const ROW: u64 = 30;
    let max = bars.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let height = ROW * bars.len() as u64 + 10;
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{t}\" xmlns=\"http://www.w3.org/2000/svg\"><title>{t}</title>",
        t = escape(title)
    );
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = ROW * i as u64 + 5;
        let bar = (WIDTH - LABEL - 60) * value / max;
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" class=\"label\">{}</text>\
             <rect x=\"{LABEL}\" y=\"{}\" width=\"{bar}\" height=\"{}\" class=\"bar\"/>\
             <text x=\"{}\" y=\"{}\" class=\"value\">{value}</text>",
            LABEL - 8,
            y + 19,
            escape(&shorten(label, 48)),
            y + 4,
            ROW - 10,
            LABEL + bar + 6,
            y + 19,
        ));
    }
    svg.push_str("</svg>");
    svg
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { format!("{}…", s.chars().take(max - 1).collect::<String>()) }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_labels_are_escaped() {
        let svg = bar_chart("A <chart>", &[("one & two".into(), 10), ("half".into(), 5), ("none".into(), 0)]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("<title>A &lt;chart&gt;</title>"));
        assert!(svg.contains("one &amp; two"));
        let widths: Vec<u64> =
            svg.split("width=\"").skip(1).map(|s| s.split('"').next().unwrap().parse().unwrap()).collect();
        assert_eq!(widths, [330, 165, 0]);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(45 * 60), "45 min");
        assert_eq!(duration(3 * 3600 + 20 * 60), "3 h 20 min");
        assert_eq!(duration(86_400 + 2 * 3600), "1 day 2 h");
        assert_eq!(duration(3 * 86_400), "3 days 0 h");
    }
}
