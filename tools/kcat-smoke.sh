#!/usr/bin/env bash
# Produces a few records to a running agent with kcat and reads them back.
# Usage: tools/kcat-smoke.sh [HOST:PORT] [TOPIC]
set -euo pipefail
bootstrap=${1:-127.0.0.1:9092}
topic=${2:-smoke-$(date +%s)}
seq 1 10 | sed 's/^/record-/' | kcat -b "$bootstrap" -P -t "$topic" -X acks=all
kcat -b "$bootstrap" -C -t "$topic" -o beginning -e -f '%p/%o %s\n'
