//! The layering of `src/` (docs/architecture.md), checked by reading the source so that it
//! cannot rot: arrows point down (a module names only modules below it, so there are no cycles
//! between them), timeline events are written only by the application layer (`src/service`),
//! the HTTP handlers, the worker and the command line never write through the store themselves,
//! and no production file grows over 500 lines (inline test modules aside).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module of the crate and its layer: a module may name (`crate::x`) only
/// modules of a lower layer. A new module must be given one here.
const LAYERS: &[(&str, u32)] = &[
    ("domain", 0),
    ("time", 0),
    ("logging", 0),
    ("config", 1),
    ("clock", 1),
    ("secrets", 2),
    ("store", 3),
    ("templates", 4),
    ("channels", 4),
    ("queue", 4),
    ("reports", 4),
    ("telemetry", 5),
    ("events_out", 5),
    ("service", 6),
    ("worker", 7),
    ("http", 7),
    ("app", 8),
    ("cli", 9),
    ("lib", 10),
    ("main", 10),
];

/// Where the callers of the application layer live: they read through the store, never write.
const CALLERS: &[&str] = &["http", "cli", "worker"];
/// Files of those modules that may write through the store: the benchmark fills its own
/// throw-away database with copies of finished jobs (no use case, nobody's data).
const MAY_WRITE: &[&str] = &["cli/bench/seed.rs"];

const MAX_LINES: usize = 500;

struct Source {
    /// The path under `src/`, with `/` separators.
    path: String,
    /// Its top-level module (`store` for `src/store/outreach.rs`, `app` for `src/app.rs`).
    module: String,
    /// The production part: inline `#[cfg(test)]` modules cut off, comments dropped.
    code: String,
    /// Lines of the production part (comments included).
    lines: usize,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let test_modules = test_module_files(&files);
    let mut sources = Vec::new();
    for file in files {
        if test_modules.contains(&file) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let path = file.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        let module = path.split('/').next().unwrap().trim_end_matches(".rs").to_string();
        let production: Vec<&str> = text.lines().take_while(|l| !l.starts_with("#[cfg(test)]")).collect();
        let code =
            production.iter().filter(|l| !l.trim_start().starts_with("//")).copied().collect::<Vec<_>>().join("\n");
        sources.push(Source { path, module, code, lines: production.len() });
    }
    assert!(sources.len() > 50, "found only {} files under {}", sources.len(), root.display());
    sources
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// Files that are whole test modules (`#[cfg(test)] mod tests;` in the file beside them).
fn test_module_files(files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.windows(2) {
            let name = pair[1].trim().strip_prefix("mod ").and_then(|m| m.strip_suffix(';'));
            if let (true, Some(name)) = (pair[0].trim() == "#[cfg(test)]", name) {
                // `a.rs` declares `a/name.rs`; `mod.rs` declares `name.rs` beside it.
                let stem = file.file_stem().unwrap();
                let dir = if stem == "mod" { file.parent().unwrap().to_path_buf() } else { file.with_extension("") };
                found.insert(dir.join(format!("{name}.rs")));
            }
        }
    }
    found
}

/// The top-level modules a piece of code names as `crate::x`.
fn named_modules(code: &str) -> BTreeSet<String> {
    code.match_indices("crate::")
        .map(|(at, _)| code[at + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect())
        .collect()
}

fn layer(module: &str) -> u32 {
    LAYERS
        .iter()
        .find(|(name, _)| *name == module)
        .unwrap_or_else(|| panic!("src/{module}: a new top-level module; give it a layer in tests/layering.rs"))
        .1
}

#[test]
fn modules_name_only_modules_below_them() {
    let mut upward = Vec::new();
    for source in sources() {
        let own = layer(&source.module);
        for named in named_modules(&source.code) {
            if named != source.module && layer(&named) >= own {
                upward.push(format!("src/{} names crate::{named}", source.path));
            }
        }
    }
    assert!(upward.is_empty(), "imports that do not point down:\n{}", upward.join("\n"));
}

#[test]
fn only_the_application_layer_writes_timeline_events() {
    let outside: Vec<String> = sources()
        .into_iter()
        .filter(|s| s.code.contains("Event::new(") && s.module != "service")
        .map(|s| format!("src/{}", s.path))
        .collect();
    assert!(outside.is_empty(), "Event::new outside src/service: {outside:?}");
}

/// The store's methods that write (their body has an INSERT, UPDATE or DELETE, or opens a
/// transaction).
fn store_writers(sources: &[Source]) -> BTreeSet<String> {
    let mut writers = BTreeSet::new();
    for source in sources.iter().filter(|s| s.module == "store") {
        let mut current: Option<String> = None;
        for line in source.code.lines() {
            let trimmed = line.trim_start();
            let is_method = line.starts_with("    ") && !line.starts_with("     ");
            let qualifiers = ["pub", "pub(crate)", "pub(super)", "async"];
            if let Some((_, rest)) = trimmed
                .split_once("fn ")
                .filter(|(before, _)| is_method && before.split_whitespace().all(|w| qualifiers.contains(&w)))
            {
                current = Some(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
                continue;
            }
            let writes = ["INSERT INTO", "UPDATE ", "DELETE FROM", ".begin()"].iter().any(|w| line.contains(w));
            if let (Some(name), true) = (&current, writes) {
                writers.insert(name.clone());
            }
        }
    }
    writers
}

#[test]
fn handlers_the_worker_and_the_command_line_never_write_through_the_store() {
    let sources = sources();
    let writers = store_writers(&sources);
    for expected in ["begin", "insert_outreach", "set_decision", "enqueue", "suppress_key", "insert_api_key"] {
        assert!(writers.contains(expected), "{expected} is a store write: {writers:?}");
    }
    assert!(!writers.contains("outreach") && !writers.contains("case_events"), "reads are not writes: {writers:?}");
    let mut calls = Vec::new();
    for source in
        sources.iter().filter(|s| CALLERS.contains(&s.module.as_str()) && !MAY_WRITE.contains(&s.path.as_str()))
    {
        let code: String = source.code.chars().filter(|c| !c.is_whitespace()).collect();
        for writer in &writers {
            if code.contains(&format!("store.{writer}(")) {
                calls.push(format!("src/{} calls store.{writer}", source.path));
            }
        }
    }
    assert!(calls.is_empty(), "writes that belong in src/service:\n{}", calls.join("\n"));
}

#[test]
fn no_production_file_is_over_500_lines() {
    let long: Vec<String> = sources()
        .into_iter()
        .filter(|s| s.lines > MAX_LINES)
        .map(|s| format!("src/{}: {} lines", s.path, s.lines))
        .collect();
    assert!(long.is_empty(), "split these by responsibility:\n{}", long.join("\n"));
}
