#!/bin/sh
# Same inputs, two code versions: run `zentra run` on the bundled sample with the code of
# COMMIT (default HEAD, i.e. without the working tree's changes) and with the working
# tree, both with one fixed signing key, and compare every table and packet.
# Usage: bench/compare_with_commit.sh [COMMIT]
set -e
cd "$(dirname "$0")/.."
commit=${1:-HEAD}
out=bench/out/compare
rm -rf "$out" && mkdir -p "$out/src"
git archive "$commit" | tar -x -C "$out/src"
key=$PWD/bench/out/ref/signing_key.pem
args="run --landing data/sample/landing --source-db data/sample/source.sqlite --policies data/sample/policies.yaml --secrets data/sample/secrets.json"
# the editable install's import hook would win over PYTHONPATH: drop it for the reference run
ZENTRA_SIGNING_KEY=$key .venv/bin/python -c "
import sys
sys.meta_path = [f for f in sys.meta_path if 'editable' not in repr(f)]
sys.path.insert(0, '$PWD/$out/src')
import zentra_pipelines
assert zentra_pipelines.__file__.startswith('$PWD/$out/src'), zentra_pipelines.__file__
from dagster_project.cli import main
sys.exit(main(sys.argv[1:]))" $args --home "$out/home-ref" > "$out/ref.txt" 2>/dev/null || echo "reference run exit $?"
ZENTRA_SIGNING_KEY=$key .venv/bin/python -m dagster_project.cli $args --home "$out/home-new" > "$out/new.txt" 2>/dev/null || echo "new run exit $?"
.venv/bin/python bench/snapshot.py "$out/home-ref" --out "$out/ref.json" > /dev/null
.venv/bin/python bench/snapshot.py "$out/home-new" --compare "$out/ref.json"
