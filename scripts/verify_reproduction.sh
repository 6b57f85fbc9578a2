#!/usr/bin/env bash
# Do the committed verdicts hold on seeds they were not computed on? The committed verification
# (results/verification) ran its first seeds, then added more with `--add-seeds`; this splits them
# and checks that the later seeds alone reproduce the first seeds' verdicts (`tada verify --against`),
# from the journal alone (no generation). Writes results/verification/reproduction.md.
#
#     bash scripts/verify_reproduction.sh [FIRST_N]     (default 4: the seeds of the first run)
set -euo pipefail
export HF_HUB_OFFLINE=1
cd "$(dirname "$0")/.."
first=${1:-4}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
read -r -a seeds < <(python -c "import json; print(' '.join(map(str, json.load(open('results/verification/seeds.json')))))")
cp -r results/verification "$tmp/first" && cp -r results/verification "$tmp/later"
tada -q verify --seeds "${seeds[@]:0:$first}" --out "$tmp/first" > /dev/null
status=0
tada -q verify --seeds "${seeds[@]:$first}" --out "$tmp/later" --against "$tmp/first" > /dev/null || status=$?
python - "$tmp" "$first" <<'PY'
import re, sys
tmp, first = sys.argv[1], sys.argv[2]
text = open(f"{tmp}/later/reproduction.md").read()
text = re.sub(r"^# Reproduction of .* on seeds", f"# Reproduction of the first {first} seeds' verdicts on the later seeds",
              text, flags=re.M)
text = re.sub(r"Made by `[^`]*`", "Made by `bash scripts/verify_reproduction.sh`", text)
open("results/verification/reproduction.md", "w").write(text.replace(tmp, "TMP"))
PY
echo "wrote results/verification/reproduction.md"
exit $status
