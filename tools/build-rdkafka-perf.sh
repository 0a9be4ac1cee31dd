#!/usr/bin/env bash
# Builds librdkafka's `rdkafka_performance` load generator from the example source that
# Debian's `librdkafka-dev` ships, into OUT_DIR (default perf/.build). The example is written
# to be built inside librdkafka's source tree and includes two internal headers (rd.h,
# rdtime.h); a small shim here provides the few helpers it takes from them.
#
#   tools/build-rdkafka-perf.sh [OUT_DIR]
#
# Installs librdkafka-dev and gcc with apt-get when they are missing (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-perf/.build}"
src=/usr/share/doc/librdkafka-dev/examples/rdkafka_performance.c

if [[ ! -f $src ]] || ! command -v gcc >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq librdkafka-dev gcc
fi

mkdir -p "$out/shim/src" "$out/shim/examples"
# Shim for the internal headers. The example includes "../src/rd.h" relative to itself, so
# the source is copied to shim/examples/ and the shim sits in shim/src/.
cat >"$out/shim/src/rd.h" <<'H'
#ifndef WEFT_RDKAFKA_PERF_SHIM_H
#define WEFT_RDKAFKA_PERF_SHIM_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef int64_t rd_ts_t;

/* Monotonic clock in microseconds. */
static inline rd_ts_t rd_clock(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (rd_ts_t)ts.tv_sec * 1000000 + (rd_ts_t)ts.tv_nsec / 1000;
}

#define RD_MIN(a, b) ((a) < (b) ? (a) : (b))
#define RD_MAX(a, b) ((a) > (b) ? (a) : (b))
#define rd_snprintf(...) snprintf(__VA_ARGS__)
#endif
H
printf '/* rd_clock() lives in rd.h in this shim. */\n#include "rd.h"\n' >"$out/shim/src/rdtime.h"
cp "$src" "$out/shim/examples/rdkafka_performance.c"

gcc -O2 -w -o "$out/rdkafka_performance" "$out/shim/examples/rdkafka_performance.c" \
  -I"$out/shim/src" -I/usr/include/librdkafka -lrdkafka -lm -lpthread
echo "built $out/rdkafka_performance"
