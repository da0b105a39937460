#!/usr/bin/env bash
# The reliability suite (docs/reliability.md) at the chosen size, and its table of figures.
#   scripts/reliability.sh          the default sizes (the same tests scripts/test.sh runs)
#   scripts/reliability.sh --full   the full sizes, for RELIABILITY.md (tens of minutes)
#   scripts/reliability.sh --table FILE   only print the table of a figures file
# Each test writes one JSON line of figures per run to SAFEREACH_RELIABILITY_OUT; this prints
# them as a Markdown table (fault, backend, size, lost, doubled, 5xx, combinations) and, with
# --full, writes it into RELIABILITY.md between its table markers.
set -euo pipefail
cd "$(dirname "$0")/.."

table() {
  python3 - "$1" <<'PY'
import json, sys
print("| fault | backend | size | runs | lost | doubled | 5xx | combinations checked |")
print("|---|---|---|---|---|---|---|---|")
rows = {}
for line in open(sys.argv[1]):
    f = json.loads(line)
    key = (f["fault"], f["backend"])
    r = rows.setdefault(key, {"size": 0, "unit": f["unit"], "runs": 0, "lost": 0, "doubled": 0, "5xx": 0, "comb": None})
    r["size"] = max(r["size"], f["size"]); r["runs"] += 1
    r["lost"] += f["lost"]; r["doubled"] += f["doubled"]; r["5xx"] += f["server_errors"]
    if f.get("combinations") is not None: r["comb"] = f["combinations"]
for (fault, backend), r in rows.items():
    comb = "" if r["comb"] is None else f'{r["comb"]:,}'
    print(f'| {fault} | {backend} | {r["size"]:,} {r["unit"]} | {r["runs"]} | {r["lost"]} | {r["doubled"]} | {r["5xx"]} | {comb} |')
# The soak's figures (never asserted): latency p99 of the first and the last window, RSS growth
# from after the first window to the end. The goals: p99 within 20 %, RSS growth under 10 %.
soaks = [f for f in map(json.loads, open(sys.argv[1])) if "p99_first_ms" in f["detail"]]
if soaks:
    print()
    print("| soak | backend | rate | length | p99 first / last window | p99 change | RSS growth api / worker | within 20 % / 10 % |")
    print("|---|---|---|---|---|---|---|---|")
for f in soaks:
    d = f["detail"]
    rss = d["rss_growth_pct"]
    flat = "yes" if abs(d["p99_change_pct"]) <= 20 else ("no (lower)" if d["p99_change_pct"] < 0 else "no")
    within = flat + " / " + ("yes" if max(rss.values()) < 10 else "no")
    print(f'| {f["fault"]} | {f["backend"]} | {d["rate_per_s"]}/s (max {min(d["burst_intake_per_s"], d["burst_sends_per_s"]):g}/s) | '
          f'{d["soak_s"]:g} s, windows {d["window_s"]:g} s | {d["p99_first_ms"]:g} / {d["p99_last_ms"]:g} ms | '
          f'{d["p99_change_pct"]:+g} % | {rss["api"]:+g} % / {rss["worker"]:+g} % | {within} |')
PY
}

if [[ ${1:-} == --table ]]; then table "$2"; exit 0; fi
full=false
if [[ ${1:-} == --full ]]; then full=true; export SAFEREACH_RELIABILITY_SIZE=full; fi
mkdir -p target/reliability
out="$PWD/target/reliability/figures-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
export SAFEREACH_RELIABILITY_OUT="$out"
status=0
# Full-size runs take longer than nextest's usual limit (.config/nextest.toml, profile reliability).
scripts/test.sh --profile reliability -E 'test(/reliability::|retention::personal_data_goes/)' || status=$?
[[ -s $out ]] || { echo "no figures were written" >&2; exit 1; }
table "$out" | tee "$out.md"
if $full; then
  python3 - "$out.md" "$(date -u '+%Y-%m-%d %H:%M UTC')" <<'PY'
import sys, re
table = open(sys.argv[1]).read()
text = open("RELIABILITY.md").read()
block = f"<!-- table -->\nRun {sys.argv[2]}, `scripts/reliability.sh --full`:\n\n{table}<!-- /table -->"
open("RELIABILITY.md", "w").write(re.sub(r"<!-- table -->.*<!-- /table -->", lambda _: block, text, flags=re.S))
PY
  echo "RELIABILITY.md's table updated"
fi
exit "$status"
