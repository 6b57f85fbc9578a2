#!/usr/bin/env bash
# The newest versions the ranges in requirements.txt allow, in a throwaway virtual environment, against the suite:
# finds the next breaking release by a command, before a user does.
#
#   bash scripts/check_latest.sh                # build, test, print what differs from constraints.txt
#   bash scripts/check_latest.sh --write-lock   # the same, and if the suite passes, write constraints.txt (the lock)
#
# Refresh the lock when a dependency range in requirements.txt / pyproject.toml changes, or to move to newer
# releases on purpose (then commit constraints.txt with the run's summary). The browser test runs where
# /usr/bin/chromium exists (apt-get install chromium). Takes the suite's time plus about 2 minutes of installs.
set -euo pipefail
cd "$(dirname "$0")/.."
write=0
[[ "${1:-}" == "--write-lock" ]] && write=1
export HF_HUB_OFFLINE=1

venv=$(mktemp -d /tmp/tada-latest-venv.XXXXXX)
log=$(mktemp /tmp/tada-latest-pytest.XXXXXX.log)
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
# shellcheck disable=SC1091
source "$venv/bin/activate"
python -m pip install --quiet --upgrade pip
pip install --quiet torch==2.13.0                          # the CPU build first, as the README says
pip install --quiet -r requirements.txt pytest playwright nbclient nbformat ipykernel  # no constraints: the newest allowed (torch stays: a newer
                                                           # torch from the registry is a CUDA build of several GB)
python -m pip check

# torch without its build label (+cpu, +cu128): the lock then matches the CPU and the CUDA build of that release
freeze=$(pip freeze --exclude-editable | sed 's/^torch==\([^+]*\)+.*/torch==\1/' | sort -f)
echo "## newest allowed versions that differ from constraints.txt"
changes=$(diff <(grep -v '^#' constraints.txt | sed '/^$/d' | sort -f) <(echo "$freeze") | grep '^[<>]' || true)
if [[ -n "$changes" ]]; then
    echo "$changes" | sed 's/^</  lock:  /; s/^>/  newest:/'
else
    echo "  none: the lock is the newest"
fi

echo "## the suite on the newest versions (log: $log)"
status=0
python -m pytest -q -rs -p no:cacheprovider >"$log" 2>&1 || status=$?
tail -n 25 "$log"
if [[ $status -ne 0 ]]; then
    echo "FAILED on the newest versions: cap the breaking package in requirements.txt and pyproject.toml"
    exit "$status"
fi
if [[ $write -eq 1 ]]; then
    {
        echo "# The lock: exact versions the test suite passed with (bash scripts/check_latest.sh --write-lock,"
        echo "# $(date -u +%Y-%m-%d), Python $(python -c 'import platform; print(platform.python_version())'), $(uname -m))."
        echo "# Used as pip constraints by README.md's install and by CI: pip install -c constraints.txt -r requirements.txt"
        echo "$freeze"
    } > constraints.txt
    echo "wrote constraints.txt ($(echo "$freeze" | wc -l) packages)"
fi
