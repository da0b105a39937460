//! How a batch talks to the database in few statements: lists and rows bound as one JSON
//! parameter (`Dialect::in_json`, `json_rows`), several reads answered by one statement
//! (`Dialect::json_of`), and several writes sent as one (`Writes`).

use sqlx::AnyConnection;

use super::{Dialect, Result, dynamic};

/// Lists and rows bound as one JSON parameter: one statement text however many values a batch
/// has. Postgres prepares each statement text once per connection and keeps the last 100 (sqlx's
/// cache); an `IN ($1, …, $n)` or a `VALUES` of every length is a new text each time, which
/// costs a prepare (a round trip and a parse and plan) and pushes out a statement still in use.
impl Dialect {
    /// The dialect of a connection.
    pub fn of(conn: &sqlx::AnyConnection) -> Dialect {
        if conn.backend_name().eq_ignore_ascii_case("sqlite") { Dialect::Sqlite } else { Dialect::Postgres }
    }

    /// `column IN` the JSON array of values bound as `$p` (see `json`), of Postgres type `ty`
    /// (`text` or `bigint`).
    pub(super) fn in_json(self, column: &str, p: usize, ty: &str) -> String {
        match self {
            Dialect::Postgres => {
                format!("{column} = ANY(ARRAY(SELECT jsonb_array_elements_text(${p}::jsonb)::{ty}))")
            }
            Dialect::Sqlite => format!("{column} IN (SELECT value FROM json_each(${p}))"),
        }
    }

    /// The rows of the JSON array of arrays bound as `$p` (see `json`), in order, as a subquery
    /// whose columns are `cols` (name, and Postgres type: `text` or `bigint`).
    ///
    /// On Postgres the rows go through an array: the planner takes `jsonb_array_elements` for 100
    /// rows, and joined to a table of a few thousand rows (`UPDATE messages … FROM` these rows)
    /// it then scans the whole table instead of looking each row up by its key (2.2 ms against
    /// 0.4 ms for 4 rows among 6,000, `EXPLAIN ANALYZE`); it takes `unnest` of an array for 10.
    pub(super) fn json_rows(self, p: usize, cols: &[(&str, &str)]) -> String {
        let cols: Vec<String> = match self {
            Dialect::Postgres => cols.iter().enumerate().map(|(i, (n, t))| format!("(r->>{i})::{t} AS {n}")).collect(),
            Dialect::Sqlite => {
                cols.iter().enumerate().map(|(i, (n, _))| format!("json_extract(value, '$[{i}]') AS {n}")).collect()
            }
        };
        let cols = cols.join(", ");
        match self {
            Dialect::Postgres => {
                let elements = format!(
                    "ARRAY(SELECT e FROM jsonb_array_elements(${p}::jsonb) WITH ORDINALITY AS a(e, n) ORDER BY n)"
                );
                format!("(SELECT {cols} FROM unnest({elements}) WITH ORDINALITY AS j(r, n) ORDER BY n)")
            }
            Dialect::Sqlite => format!("(SELECT {cols} FROM json_each(${p}) ORDER BY key)"),
        }
    }

    /// `sql` with its `$rows` made the subquery of `json_rows(p, cols)`: how a set write names
    /// the rows it binds.
    pub(super) fn with_rows(self, sql: &str, p: usize, cols: &[(&str, &str)]) -> String {
        sql.replace("$rows", &self.json_rows(p, cols))
    }

    /// The rows of `query` as one JSON text (an array of arrays, the columns `cols` in order),
    /// as a scalar subquery: several reads then make one statement, `SELECT json_of(a), json_of(b)`,
    /// whose columns decode with `from_json`.
    pub(super) fn json_of(self, query: &str, cols: &[&str]) -> String {
        let cols = cols.iter().map(|c| format!("q.{c}")).collect::<Vec<_>>().join(", ");
        match self {
            Dialect::Postgres => {
                format!("(SELECT COALESCE(json_agg(json_build_array({cols})), '[]')::text FROM ({query}) AS q)")
            }
            Dialect::Sqlite => format!("(SELECT json_group_array(json_array({cols})) FROM ({query}) AS q)"),
        }
    }
}

/// A list (or rows, as arrays) to bind as the JSON parameter of `in_json` or `json_rows`.
pub(super) fn json<T: serde::Serialize>(values: &[T]) -> String {
    serde_json::to_string(values).expect("plain values serialise")
}

/// Rows read with `Dialect::json_of`.
pub(super) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<Vec<T>> {
    serde_json::from_str(text).map_err(|e| super::StoreError::Corrupt(format!("rows as JSON: {e}")))
}

/// Writes that each bind one JSON parameter (`$rows`), run in the order given, in the caller's
/// transaction. On Postgres they go as one statement (each but the last a data-modifying `WITH`),
/// one round trip instead of one each: they all run under one snapshot, so none may read rows
/// another writes or write a row another writes (each writes its own table). SQLite, in process,
/// has no round trip to save: they run one by one.
pub struct Writes {
    dialect: Dialect,
    statements: Vec<(String, String)>,
}

impl Writes {
    pub fn new(dialect: Dialect) -> Writes {
        Writes { dialect, statements: Vec::new() }
    }

    /// Add a statement: `sql` reads its rows from `$rows` (see `Dialect::with_rows`), the JSON
    /// rows `rows` of the columns `cols`.
    pub(super) fn push(&mut self, sql: &str, cols: &[(&str, &str)], rows: String) {
        let p = match self.dialect {
            Dialect::Postgres => self.statements.len() + 1,
            Dialect::Sqlite => 1,
        };
        self.statements.push((self.dialect.with_rows(sql, p, cols), rows));
    }

    pub async fn run(self, conn: &mut AnyConnection) -> Result<()> {
        match self.dialect {
            Dialect::Sqlite => {
                for (sql, param) in self.statements {
                    sqlx::query(dynamic(sql)).bind(param).execute(&mut *conn).await?;
                }
            }
            Dialect::Postgres => {
                let Some((last, _)) = self.statements.last() else { return Ok(()) };
                let n = self.statements.len();
                let with: Vec<String> = self.statements[..n - 1]
                    .iter()
                    .enumerate()
                    .map(|(i, (sql, _))| format!("w{i} AS ({sql})"))
                    .collect();
                let sql = if with.is_empty() { last.clone() } else { format!("WITH {} {last}", with.join(", ")) };
                let mut query = sqlx::query(dynamic(sql));
                for (_, param) in self.statements {
                    query = query.bind(param);
                }
                query.execute(&mut *conn).await?;
            }
        }
        Ok(())
    }
}
