//! The benchmark keeps working: `safereach bench --smoke` (the debug binary, tiny sizes) on
//! SQLite and on Postgres + Redis, through the Kannel of scripts/test.sh, writes every figure of a
//! full run, each positive. Speed is never asserted here; only that each phase ran and that every
//! message reached the fake SMSC exactly once with its delivery reports recorded.

use serde_json::Value;
use sqlx::Connection;
use tokio::process::Command;

use crate::common::service;

const BIN: &str = env!("CARGO_BIN_EXE_safereach");

#[tokio::test]
async fn bench_smoke_run_writes_every_figure() {
    let (Some(sendsms), Some(postgres), Some(redis)) = (
        service("SAFEREACH_TEST_KANNEL_SENDSMS_URL"),
        service("SAFEREACH_TEST_POSTGRES_URL"),
        service("SAFEREACH_TEST_REDIS_URL"),
    ) else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set beside the Kannel URL"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.json");
    let run = Command::new(BIN)
        .args(["bench", "--smoke", "--out"])
        .arg(&out)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TMPDIR", dir.path())
        .env("SAFEREACH_KANNEL_SENDSMS_URL", sendsms)
        .env("SAFEREACH_KANNEL_USER", var("SAFEREACH_TEST_KANNEL_USER"))
        .env("SAFEREACH_KANNEL_PASSWORD", var("SAFEREACH_TEST_KANNEL_PASSWORD"))
        .env("SAFEREACH_BENCH_KANNEL_MT_LOG", var("SAFEREACH_TEST_KANNEL_MT_LOG"))
        .env("SAFEREACH_BENCH_POSTGRES_URL", &postgres)
        .env("SAFEREACH_REDIS_URL", redis)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "bench failed: {stderr}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("end to end via Kannel (api + 2 workers)"), "the table: {stdout}");

    let results: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    for field in ["date", "git_commit", "command", "build"] {
        assert!(results[field].as_str().is_some_and(|v| !v.is_empty()), "{field} in {results}");
    }
    assert!(results["machine"]["cpus"].as_u64().is_some_and(|n| n > 0));
    let figures = results["figures"].as_array().unwrap();
    // A measure by name; `*` stands for a number of the run (as in "… 400 jobs stored").
    let named = |measure: &str, pattern: &str| match pattern.split_once('*') {
        Some((start, end)) => measure.starts_with(start) && measure.ends_with(end),
        None => measure == pattern,
    };
    let figure = |backend: &str, pattern: &str| -> &Value {
        figures
            .iter()
            .find(|f| f["backend"] == backend && f["measure"].as_str().is_some_and(|m| named(m, pattern)))
            .unwrap_or_else(|| panic!("no {pattern} for {backend} in {results}"))
    };
    let every_backend = [
        "raw insert c=1",
        "raw insert c=16",
        "raw insert c=64",
        "intake c=1",
        "intake c=16",
        "intake c=64",
        "Kannel sendsms c=16",
        "end to end via Kannel (api + 1 worker)",
        "end to end via Kannel (api + 2 workers)",
        "delivery-report ingest c=16",
        "intake c=16, * jobs stored",
        "start-up (api, empty database)",
        "start-up (api, * jobs stored)",
        "peak RSS api",
        "peak RSS worker",
    ];
    for backend in ["sqlite", "postgres_redis"] {
        let mut expected = every_backend.to_vec();
        if backend == "sqlite" {
            expected.extend(["end to end via Kannel (serve)", "start-up (serve, empty database)", "peak RSS serve"]);
        }
        for measure in &expected {
            let f = figure(backend, measure);
            assert!(f["value"].as_f64().is_some_and(|v| v > 0.0), "{f}");
            if let Some(baseline) = f.get("baseline") {
                assert!(baseline["value"].as_f64().is_some_and(|v| v > 0.0), "{f}");
                assert!(f["ratio"].as_f64().is_some_and(|v| v > 0.0), "{f}");
            }
            if measure.starts_with("intake") || measure.starts_with("end to end") || measure.starts_with("delivery") {
                assert!(f["baseline"].is_object(), "{f}");
                assert!(
                    f["p50_ms"].as_f64().is_some_and(|v| v > 0.0) && f["p99_ms"].as_f64() >= f["p50_ms"].as_f64(),
                    "{f}"
                );
            }
        }
        let layouts: &[&str] = if backend == "sqlite" {
            &["serve", "api + 1 worker", "api + 2 workers"]
        } else {
            &["api + 1 worker", "api + 2 workers"]
        };
        for layout in layouts {
            let e2e = &figure(backend, &format!("end to end via Kannel ({layout})"))["detail"];
            assert_eq!((&e2e["dup"], &e2e["lost"]), (&Value::from(0), &Value::from(0)), "{e2e}");
            assert_eq!(e2e["reports_recorded"], e2e["jobs"], "{e2e}");
        }
        let dlr = &figure(backend, "delivery-report ingest c=16")["detail"];
        assert_eq!(dlr["recorded"], dlr["reports"], "{dlr}");
        let stored = &figure(backend, "intake c=16, * jobs stored")["detail"];
        assert!(stored["stored"].as_u64().is_some_and(|n| n >= 400), "{stored}");
    }
    // The bench drops the Postgres databases it made.
    let mut conn = sqlx::PgConnection::connect(&postgres).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname LIKE 'safereach\\_bench\\_%'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0);
}
