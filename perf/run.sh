#!/usr/bin/env bash
# S3-backed load harness: weft and tansu 0.6.0 side by side on one SeaweedFS, driven by
# librdkafka's rdkafka_performance. Writes perf/runs/<date>-<name>/report.md.
#
#   perf/run.sh            # full run: 3 repetitions of every scenario, about 15 minutes
#   QUICK=1 perf/run.sh    # smoke run: 1 short repetition, about 3 minutes
#
# Settings (environment): REPS, LATENCY_SECONDS, THROUGHPUT_SECONDS, RATE, MSG_SIZE,
# PARTITIONS, PRODUCERS, FANOUT_MB, GROUPS, WARMUP_SECONDS, SCENARIOS (e.g. "a,b"),
# WEFT_CORES, WEFT_PRESET (low-latency|cost), WEFT_COST (0|1: extra weft agent with the cost
# preset at (b)), RUN_NAME (the <name> part of the run directory), WEFT_BIN (skip the
# build and use this binary), RDKAFKA=bundled|system (librdkafka from the confluent-kafka
# wheel, the default, or Debian's 2.0.2), CARGO_TARGET_DIR. perf/README.md explains them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# shellcheck source=perf/env.sh
source perf/env.sh

run_name="${RUN_NAME:-$([[ ${QUICK:-0} != 0 ]] && echo quick || echo s3-side-by-side)}"
run_dir="perf/runs/$(date +%F)-$run_name"
if [[ -e $run_dir ]]; then
  i=2
  while [[ -e $run_dir-$i ]]; do i=$((i + 1)); done
  run_dir="$run_dir-$i"
fi
mkdir -p "$run_dir"
echo "run directory: $run_dir"

"$PERF_PY" perf/harness.py --run-dir "$run_dir" 2>&1 | tee "$run_dir/harness.log"
"$PERF_PY" perf/report.py "$run_dir"
echo "report: $root/$run_dir/report.md"
