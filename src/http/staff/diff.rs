//! A side-by-side line diff of two versions of a template's wording (diffing by `similar`).

use serde::Serialize;
use similar::{Algorithm, DiffTag, capture_diff_slices};

/// One row of a side-by-side diff: the old line on the left, the new on the right.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// `same`, `changed`, `removed` or `added`.
    pub kind: &'static str,
    pub old_no: Option<usize>,
    pub old: Option<String>,
    pub new_no: Option<usize>,
    pub new: Option<String>,
}

/// The rows of a side-by-side diff; lines replaced by others are paired up on one row.
pub fn side_by_side(old: &str, new: &str) -> Vec<Row> {
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let mut rows = Vec::new();
    for op in capture_diff_slices(Algorithm::Myers, &old_lines, &new_lines) {
        let (tag, olds, news) = op.as_tag_tuple();
        let kind = match tag {
            DiffTag::Equal => "same",
            DiffTag::Delete => "removed",
            DiffTag::Insert => "added",
            DiffTag::Replace => "changed",
        };
        for i in 0..olds.len().max(news.len()) {
            let left = olds.clone().nth(i);
            let right = news.clone().nth(i);
            // In a replacement of unequal length the extra lines are plain removals or additions.
            let kind = match (kind, left, right) {
                ("changed", Some(_), None) => "removed",
                ("changed", None, Some(_)) => "added",
                (kind, _, _) => kind,
            };
            rows.push(Row {
                kind,
                old_no: left.map(|l| l + 1),
                old: left.map(|l| old_lines[l].to_string()),
                new_no: right.map(|r| r + 1),
                new: right.map(|r| new_lines[r].to_string()),
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(rows: &[Row]) -> Vec<&str> {
        rows.iter().map(|r| r.kind).collect()
    }

    #[test]
    fn equal_texts_are_all_same() {
        let rows = side_by_side("a\nb", "a\nb");
        assert_eq!(kinds(&rows), ["same", "same"]);
        assert_eq!((rows[1].old_no, rows[1].new_no), (Some(2), Some(2)));
    }

    #[test]
    fn changes_additions_and_removals_line_up() {
        let rows = side_by_side("Hello\nWe will call\nBye", "Hello\nWe will phone\nSoon\nBye");
        assert_eq!(kinds(&rows), ["same", "changed", "added", "same"]);
        assert_eq!(rows[1].old.as_deref(), Some("We will call"));
        assert_eq!(rows[1].new.as_deref(), Some("We will phone"));
        assert_eq!((rows[2].old.as_deref(), rows[2].new.as_deref()), (None, Some("Soon")));
        assert_eq!((rows[3].old_no, rows[3].new_no), (Some(3), Some(4)));

        let rows = side_by_side("a\nb\nc", "a\nc");
        assert_eq!(kinds(&rows), ["same", "removed", "same"]);
        assert_eq!(rows[1].new, None);
    }

    #[test]
    fn an_empty_side_is_all_added() {
        assert_eq!(kinds(&side_by_side("", "x\ny")), ["added", "added"]);
    }
}
