//! docs/retention.md lists every column of the schema with the rule that clears its personal data
//! (or says it holds none). This walks that list against a freshly migrated database, so that a
//! column added later cannot be forgotten, and a row for a column that is gone cannot linger.

use std::collections::BTreeSet;

use safereach::config::Config;
use safereach::store::{HashKeySource, Store};

use crate::common::{current_backend, use_backend};

/// `table.column` of every row of the document's column table.
fn documented() -> BTreeSet<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/retention.md");
    let text = std::fs::read_to_string(path).expect("docs/retention.md");
    let table = text.split("## Every column").nth(1).expect("a section “Every column”");
    let mut columns = BTreeSet::new();
    for line in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 3, "column, what it holds, its rule: {line}");
        assert!(!cells[1].is_empty() && !cells[2].is_empty(), "say what it holds and its rule: {line}");
        let column = cells[0].trim_matches('`').to_string();
        assert!(column.split('.').count() == 2, "`table.column`: {line}");
        assert!(columns.insert(column), "listed twice: {line}");
    }
    columns
}

/// `table.column` of every column of the app's own tables (not the migrator's bookkeeping).
pub async fn schema(store: &Store) -> BTreeSet<String> {
    let sql = match store.dialect() {
        safereach::store::Dialect::Sqlite => {
            "SELECT m.name || '.' || p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> 'safereach_migrations'"
        }
        safereach::store::Dialect::Postgres => {
            "SELECT table_name || '.' || column_name FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name <> 'safereach_migrations'"
        }
    };
    sqlx::query_scalar::<_, String>(sql).fetch_all(store.pool()).await.unwrap().into_iter().collect()
}

on_backends! {
    sqlite, postgres;
    async fn every_column_is_in_the_retention_document() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::defaults();
        use_backend(&mut config, current_backend(), dir.path()).await;
        let store = Store::open(&config.database_url, true, &HashKeySource::from_config(&config)).await.unwrap();
        let (documented, schema) = (documented(), schema(&store).await);
        assert!(schema.len() > 100, "the walk found the schema: {schema:?}");
        let forgotten: Vec<_> = schema.difference(&documented).collect();
        assert!(forgotten.is_empty(), "columns with no row in docs/retention.md: {forgotten:?}");
        let gone: Vec<_> = documented.difference(&schema).collect();
        assert!(gone.is_empty(), "rows in docs/retention.md for columns that do not exist: {gone:?}");
    }
}
