#!/usr/bin/env bash
# Records a flamegraph of weft under scenario (b) of the load harness (full-speed acks=all
# producers into a 16-partition topic, segments in SeaweedFS over S3), with Linux `perf`
# and inferno. Writes perf/runs/<date>-flamegraph/flamegraph.svg and the folded stacks.
#
#   perf/flamegraph.sh               # 20 s of samples
#   SECONDS_TO_RECORD=30 FREQ=999 perf/flamegraph.sh
#
# Settings (environment): SECONDS_TO_RECORD (20), FREQ (sampling Hz, 499), CALL_GRAPH
# (dwarf, the default, since release builds have no frame pointers; or fp, or lbr),
# EVENT (default: cycles when the CPU exposes hardware counters, else cpu-clock),
# PRODUCERS, PARTITIONS, MSG_SIZE, WEFT_CORES, WEFT_PRESET, RUN_NAME, WEFT_BIN, as for
# perf/run.sh. Needs root or kernel.perf_event_paranoid <= 1 (checked below).
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${SECONDS_TO_RECORD:-20}"
freq="${FREQ:-499}"
call_graph="${CALL_GRAPH:-dwarf}"

# ---- can perf record here?
if ! command -v perf >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf; }
  fi
  command -v perf >/dev/null 2>&1 || {
    echo "flamegraph: the 'perf' command is missing (Debian: apt-get install linux-perf)." >&2
    exit 2
  }
fi
paranoid="$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo '?')"
if [[ $(id -u) != 0 && $paranoid != '?' && $paranoid -gt 1 ]]; then
  echo "flamegraph: kernel.perf_event_paranoid is $paranoid; profiling another process needs" >&2
  echo "  root or 'sysctl kernel.perf_event_paranoid=1'." >&2
  exit 2
fi
if [[ -z ${EVENT:-} ]]; then
  # Virtual machines often expose no hardware counters; the cpu-clock software event
  # samples on a timer instead and works everywhere perf works.
  if perf stat -e cycles -x, true 2>&1 | grep '<not supported>\|<not counted>' >/dev/null; then
    EVENT=cpu-clock
  else
    EVENT=cycles
  fi
fi
probe="$(mktemp -d)"
if ! perf record -e "$EVENT" -F "$freq" -g -o "$probe/probe.data" -- \
  sh -c 'i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done' >"$probe/probe.log" 2>&1 ||
  ! { perf report -i "$probe/probe.data" --stdio >"$probe/report.txt" 2>&1 &&
    grep -q '%' "$probe/report.txt"; }; then
  echo "flamegraph: 'perf record -e $EVENT' cannot sample in this environment" \
    "(perf_event_paranoid=$paranoid):" >&2
  cat "$probe/probe.log" >&2
  rm -rf "$probe"
  exit 2
fi
rm -rf "$probe"
echo "perf works here: event $EVENT, call graph $call_graph, $freq Hz, paranoid=$paranoid"

# ---- inferno
inferno_bin=""
for d in perf/.tools/bin "$HOME/.cargo/bin"; do
  [[ -x $d/inferno-flamegraph ]] && inferno_bin="$d" && break
done
if [[ -z $inferno_bin ]] && command -v inferno-flamegraph >/dev/null; then
  inferno_bin="$(dirname "$(command -v inferno-flamegraph)")"
fi
if [[ -z $inferno_bin ]]; then
  echo "installing inferno into perf/.tools (cargo install, a few minutes)"
  cargo install inferno --locked --root perf/.tools
  inferno_bin=perf/.tools/bin
fi

# ---- tools and weft
# shellcheck source=perf/env.sh
source perf/env.sh

run_dir="perf/runs/$(date +%F)-${RUN_NAME:-flamegraph}"
if [[ -e $run_dir ]]; then
  i=2
  while [[ -e $run_dir-$i ]]; do i=$((i + 1)); done
  run_dir="$run_dir-$i"
fi
mkdir -p "$run_dir"
perf_cmd="perf record -e $EVENT -F $freq --call-graph $call_graph -p {PID} -o $run_dir/perf.data -- sleep {SECONDS}"
echo "run directory: $run_dir"
"$PERF_PY" perf/harness.py --run-dir "$run_dir" --flamegraph-seconds "$secs" \
  --perf-cmd "$perf_cmd" 2>&1 | tee "$run_dir/harness.log"
rm -f "$run_dir/results.json"

[[ -s $run_dir/perf.data ]] || { echo "flamegraph: perf recorded nothing" >&2; exit 1; }
perf script -i "$run_dir/perf.data" 2>"$run_dir/logs/perf-script.log" |
  "$inferno_bin/inferno-collapse-perf" >"$run_dir/weft.folded"
"$inferno_bin/inferno-flamegraph" \
  --title "weft under scenario (b): $(date +%F), $EVENT @ $freq Hz, $call_graph stacks" \
  <"$run_dir/weft.folded" >"$run_dir/flamegraph.svg"
gzip -f "$run_dir/weft.folded"
# The top of the profile as text, for reading without a browser.
perf report -i "$run_dir/perf.data" --no-children --sort symbol -g none --stdio 2>/dev/null |
  grep -v '^#' | grep -v '^$' | head -60 >"$run_dir/top-symbols.txt" || true
{
  echo "# Flamegraph of weft under scenario (b)"
  echo
  echo "- made by: \`perf/flamegraph.sh\` (SECONDS_TO_RECORD=$secs FREQ=$freq CALL_GRAPH=$call_graph EVENT=$EVENT)"
  echo "- weft source at commit $(git log -1 --format=%H -- src Cargo.toml Cargo.lock) (repository HEAD $(git rev-parse HEAD))"
  echo "- machine: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) CPUs; \`$(uname -a)\`"
  echo "- perf: $(perf --version); perf_event_paranoid=$paranoid"
  echo "- record command: \`$perf_cmd\` (PID = the weft agent)"
  echo "- load while recording (rdkafka_performance, see load.json):" \
    "$("$PERF_PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.1f MB/s, %d records delivered" % (d["mb_per_s"], d["delivered"]))' "$run_dir/load.json")"
  echo
  echo "Files: \`flamegraph.svg\` (open in a browser: click to zoom, Ctrl-F to search)," \
    "\`weft.folded.gz\` (folded stacks, for \`inferno-diff-folded\` against another run)," \
    "\`top-symbols.txt\` (self time by symbol). \`perf.data\` stays local (not committed)."
} >"$run_dir/README.md"
echo "flamegraph: $run_dir/flamegraph.svg"
