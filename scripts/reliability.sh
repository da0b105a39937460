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
