//! Multi-row `VALUES` and `IN (…)` lists with a placeholder per value: the worker's set
//! statements (`deliveries.rs`) and the sorted advisory locks (`replies.rs`). Each batch size is
//! a statement text of its own; acceptance and reports bind one JSON parameter instead
//! (`Dialect::in_json`, `json_rows`), which the worker's statements should move to.

use super::placeholders;

/// The most rows one multi-row statement carries (far inside both databases' limits on bound
/// values); a larger batch is written in several.
pub(super) const ROWS_PER_STATEMENT: usize = 500;

/// `($first, …), (…), …`: `rows` tuples of `cols` placeholders, numbered on from `first`, for a
/// multi-row `VALUES` (one statement for a whole batch).
pub(super) fn value_rows(first: usize, rows: usize, cols: usize) -> String {
    (0..rows).map(|r| format!("({})", placeholders(first + r * cols, cols))).collect::<Vec<_>>().join(", ")
}

/// Binding the values of an `IN (…)` list in turn, whatever the kind of query.
pub(super) trait Bind<'q>: Sized {
    fn bind_str(self, value: &'q str) -> Self;
}

impl<'q> Bind<'q> for sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    fn bind_str(self, value: &'q str) -> Self {
        self.bind(value)
    }
}

impl<'q, O> Bind<'q> for sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments> {
    fn bind_str(self, value: &'q str) -> Self {
        self.bind(value)
    }
}

impl<'q, O> Bind<'q> for sqlx::query::QueryScalar<'q, sqlx::Any, O, sqlx::any::AnyArguments> {
    fn bind_str(self, value: &'q str) -> Self {
        self.bind(value)
    }
}

/// Bind each of `values` in turn.
pub(super) fn bind_all<'q, Q: Bind<'q>>(mut query: Q, values: &'q [String]) -> Q {
    for v in values {
        query = query.bind_str(v);
    }
    query
}
