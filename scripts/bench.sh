#!/usr/bin/env bash
# Placeholder: the benchmark is not written yet (another change adds it).
echo "scripts/bench.sh: the benchmark is not written yet" >&2
exit 1
