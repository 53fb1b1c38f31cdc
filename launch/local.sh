#!/usr/bin/env bash
# Train on this machine (all local devices), then evaluate the final checkpoint.
#   launch/local.sh [--dry_run] GIN_FILE [--gin.KEY=VALUE ...]
# MODEL_DIR must be set by the gin file or an override, e.g. --gin.MODEL_DIR="'/tmp/run'".
set -euo pipefail

dry_run=0
if [[ "${1:-}" == "--dry_run" ]]; then
  dry_run=1
  shift
fi
if [[ $# -lt 1 ]]; then
  echo "usage: launch/local.sh [--dry_run] GIN_FILE [--gin.KEY=VALUE ...]" >&2
  exit 2
fi
gin_file="$1"
shift

repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
cmd=("$python" -m xlt train "--gin_file=$gin_file" "$@")

if [[ "$dry_run" == 1 ]]; then
  printf '%q ' "${cmd[@]}"
  printf '\n'
  exit 0
fi
cd "$repo"
exec "${cmd[@]}"
