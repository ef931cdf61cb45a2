#!/bin/sh
# Run `zentra run` on the bundled 200-intent sample with the fixed reference key and compare
# every table and packet with the reference snapshot taken before the optimisations.
# Usage: bench/compare_sample.sh [NAME]   (reference: bench/out/ref/base.json)
set -e
cd "$(dirname "$0")/.."
name=${1:-after}
home=bench/out/ref/home-$name
rm -rf "$home"
ZENTRA_SIGNING_KEY=$PWD/bench/out/ref/signing_key.pem .venv/bin/zentra run --landing data/sample/landing \
  --source-db data/sample/source.sqlite --policies data/sample/policies.yaml --secrets data/sample/secrets.json \
  --home "$home" > "bench/out/ref/$name.summary.txt" 2>/dev/null
.venv/bin/python bench/snapshot.py "$home" --out "bench/out/ref/$name.json" --compare bench/out/ref/base.json
