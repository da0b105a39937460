//! The report as CSV: one figure per row, `section,key,value`. `section` is a top-level field
//! (`outreach`, `messages`, …), `key` the path below it joined with `.`
//! (`by_channel.sms.by_status.delivered`); a heading is keyed by its `key`, and a list of codes
//! is one value joined with `;`. Absent figures (a rate with nothing to divide) are empty.
//! Sections and keys come in alphabetical order (headings in their own order), and every known
//! code has its row even at 0, so two months' files line up row by row.

use serde_json::Value;

use super::Report;

pub fn to_csv(report: &Report) -> String {
    let mut out = String::from("section,key,value\n");
    let mut value = serde_json::to_value(report).unwrap_or(Value::Null);
    // The list of urgent items outside staffed hours changes length month by month: it is in the
    // JSON and on the staff page; here only its figures, so that months line up row by row.
    if let Some(staffed) = value.get_mut("staffed_hours").and_then(Value::as_object_mut) {
        staffed.remove("items");
    }
    if let Value::Object(sections) = value {
        for (section, v) in sections {
            let mut rows = Vec::new();
            flatten("", &v, &mut rows);
            for (key, value) in rows {
                out.push_str(&format!("{},{},{}\n", field(&section), field(&key), field(&value)));
            }
        }
    }
    out
}

fn flatten(prefix: &str, value: &Value, rows: &mut Vec<(String, String)>) {
    let join = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&join(k), v, rows);
            }
        }
        Value::Array(items) if items.iter().all(Value::is_string) => {
            let joined: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            rows.push((prefix.to_string(), joined.join(";")));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let name = item.get("key").and_then(Value::as_str).map_or_else(|| i.to_string(), str::to_string);
                let mut item = item.clone();
                if let Value::Object(map) = &mut item {
                    map.remove("key");
                }
                flatten(&join(&name), &item, rows);
            }
        }
        Value::Null => rows.push((prefix.to_string(), String::new())),
        Value::String(s) => rows.push((prefix.to_string(), s.clone())),
        other => rows.push((prefix.to_string(), other.to_string())),
    }
}

/// RFC 4180 quoting, only where needed (a local authority may be "Bristol, City of"). A cell a
/// spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`) is made plain text with a
/// leading `'`: a guard, since free text (authorities, declined reasons) sits behind a key's path
/// and the figures never start so.
fn field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_figures_flatten_to_dotted_keys_and_quote_when_needed() {
        let mut rows = Vec::new();
        flatten(
            "",
            &json!({"by": {"Bristol, City of": 2, "x": null}, "list": [{"key": "k", "count": 1, "counts": ["a", "b"]}]}),
            &mut rows,
        );
        assert_eq!(
            rows,
            vec![
                ("by.Bristol, City of".to_string(), "2".to_string()),
                ("by.x".into(), "".into()),
                ("list.k.count".into(), "1".into()),
                ("list.k.counts".into(), "a;b".into()),
            ]
        );
        assert_eq!(field("by.Bristol, City of"), "\"by.Bristol, City of\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn free_text_is_never_a_spreadsheet_formula() {
        assert_eq!(field("reasons.=HYPERLINK(\"http://x\")"), "\"reasons.=HYPERLINK(\"\"http://x\"\")\"");
        assert_eq!(field("=1+1"), "'=1+1");
        assert_eq!(field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(field("-2"), "'-2");
        assert_eq!(field("14.3"), "14.3");
    }
}
