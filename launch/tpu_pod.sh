#!/usr/bin/env bash
# Train on a Cloud TPU VM slice: every worker (host) runs the same `xlt train`.
#   launch/tpu_pod.sh [--dry_run] [run] --name NAME --zone ZONE --accelerator v4-64 ... GIN_FILE [--gin.KEY=VALUE ...]
#   launch/tpu_pod.sh [--dry_run] stop|delete --name NAME --zone ZONE [--project PROJECT]
# `launch/tpu_pod.sh --help` explains every option; docs/scaling.md walks through a run.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: launch/tpu_pod.sh [--dry_run] [run] --name NAME --zone ZONE --accelerator TYPE
           [--version VERSION] [--project PROJECT] [--spot] [--reuse] [--delete_after]
           [--python PYTHON] [--env KEY=VALUE ...] [--log_dir DIR] [--check]
           GIN_FILE [--gin_file=FILE ...] [--gin.KEY=VALUE ...]
       launch/tpu_pod.sh [--dry_run] stop   --name NAME --zone ZONE [--project PROJECT]
       launch/tpu_pod.sh [--dry_run] delete --name NAME --zone ZONE [--project PROJECT]

run (default)  0. with --check: xlt compile --topology TYPE with the same gin files and
                  overrides, here (needs xlt with libtpu here: pip install -e '.[tpu]'; no TPU);
                  stops before creating anything if the train step does not fit the slice.
                  Python: XLT_LOCAL_PYTHON, else REPO/.venv/bin/python, else python3
               1. create the slice: gcloud compute tpus tpu-vm create NAME --accelerator-type=TYPE
                  --version=VERSION (default tpu-ubuntu2204-base; --spot for a Spot slice);
                  skipped with --reuse (then --accelerator is not needed)
               2. git archive HEAD of this repository (commit first: uncommitted changes are
                  not copied) and scp it to every worker (~/xlt)
               3. on every worker: a virtualenv ~/xlt-venv made with PYTHON (default python3.11,
                  installed with apt-get when missing; xlt needs Python >= 3.11) and
                  pip install -e '.[tpu]'
               4. on every worker: XLT_DISTRIBUTED=1 python -m xlt train --gin_file=GIN_FILE ...
                  (--env KEY=VALUE adds environment variables), output streamed here and
                  appended to DIR/NAME-<UTC time>.log (--log_dir, default ~/xlt_logs)
               5. with --delete_after: delete the slice, also when a step failed or was interrupted
stop           SIGTERM to `xlt train` on every worker: it saves a checkpoint and exits 143
delete         delete the slice (gcloud asks for confirmation)

GIN_FILE and --gin_file paths are relative to the repository root. MODEL_DIR must be a gs://
path, e.g. --gin.MODEL_DIR="'gs://BUCKET/runs/NAME'": all workers write checkpoint shards
there, and re-running the same command resumes from its latest checkpoint.
--dry_run prints the commands, one per line, shell-quoted, instead of running them.
EOF
}

die_usage() {
  echo "tpu_pod.sh: $1" >&2
  usage | sed -n '1,6p' >&2
  echo "(launch/tpu_pod.sh --help explains the options)" >&2
  exit 2
}

warn() {
  echo "tpu_pod.sh: warning: $*" >&2
}

# Shell-quoted words, separated by single spaces.
quoted() {
  local out
  printf -v out '%q ' "$@"
  printf '%s' "${out% }"
}

invocation=("$0" "$@")
dry_run=0
action=run
name=""
zone=""
accelerator=""
version="tpu-ubuntu2204-base"
project=""
spot=0
reuse=0
delete_after=0
check=0
python_bin="python3.11"
log_dir="${XLT_LOG_DIR:-${HOME:-/tmp}/xlt_logs}"
envs=()

set_option() {
  case "$1" in
    --name) name="$2" ;;
    --zone) zone="$2" ;;
    --accelerator) accelerator="$2" ;;
    --version) version="$2" ;;
    --project) project="$2" ;;
    --python) python_bin="$2" ;;
    --log_dir) log_dir="$2" ;;
    --env)
      [[ "$2" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die_usage "--env needs KEY=VALUE, got '$2'"
      envs+=("$2") ;;
  esac
}

if [[ "${1:-}" == "--dry_run" ]]; then
  dry_run=1
  shift
fi
case "${1:-}" in
  run | stop | delete) action="$1"; shift ;;
esac
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry_run) dry_run=1; shift ;;
    --spot) spot=1; shift ;;
    --reuse) reuse=1; shift ;;
    --delete_after) delete_after=1; shift ;;
    --check) check=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --name | --zone | --accelerator | --version | --project | --python | --log_dir | --env)
      [[ $# -ge 2 && -n "$2" ]] || die_usage "$1 needs a value"
      set_option "$1" "$2"
      shift 2 ;;
    --name=* | --zone=* | --accelerator=* | --version=* | --project=* | --python=* | --log_dir=* | --env=*)
      [[ -n "${1#*=}" ]] || die_usage "${1%%=*} needs a value"
      set_option "${1%%=*}" "${1#*=}"
      shift ;;
    --*) die_usage "unknown option $1 (options come before GIN_FILE, gin overrides after it)" ;;
    *) break ;;
  esac
done

[[ -n "$name" ]] || die_usage "--name is required"
[[ -n "$zone" ]] || die_usage "--zone is required"

repo="$(cd "$(dirname "$0")/.." && pwd)"
tpu=(gcloud compute tpus tpu-vm)
where=("--zone=$zone")
if [[ -n "$project" ]]; then
  where+=("--project=$project")
fi
log_file=/dev/null

# Prints a command (--dry_run) or runs it, echoing it first; output also goes to the log.
step() {
  if [[ "$dry_run" == 1 ]]; then
    printf '%s\n' "$(quoted "$@")"
    return 0
  fi
  printf '+ %s\n' "$(quoted "$@")" | tee -a "$log_file" >&2
  "$@" 2>&1 | tee -a "$log_file"
}

# shellcheck disable=SC2016  # $pid and $(hostname) expand on the workers
if [[ "$action" == stop ]]; then
  [[ $# -eq 0 ]] || die_usage "stop takes no GIN_FILE or overrides"
  # The run step writes ~/xlt-train.pid; the process is checked to still be xlt first.
  remote='pid="$(cat xlt-train.pid 2>/dev/null || true)"; '
  remote+='if [ -n "$pid" ] && grep -qa xlt "/proc/$pid/cmdline" 2>/dev/null; then '
  remote+='kill -TERM "$pid" && echo "$(hostname): SIGTERM sent to xlt train ($pid)"; '
  remote+='else echo "$(hostname): no xlt train running"; fi'
  step "${tpu[@]}" ssh "$name" --worker=all "${where[@]}" "--command=$remote"
  exit 0
fi
if [[ "$action" == delete ]]; then
  [[ $# -eq 0 ]] || die_usage "delete takes no GIN_FILE or overrides"
  step "${tpu[@]}" delete "$name" "${where[@]}"
  exit 0
fi

# --- run ---
[[ $# -ge 1 ]] || die_usage "GIN_FILE is required"
[[ "$reuse" == 1 || -n "$accelerator" ]] || die_usage "--accelerator is required (or --reuse an existing slice)"
[[ "$check" == 0 || -n "$accelerator" ]] || die_usage "--check needs --accelerator (the slice to compile for)"
gin_file="${1#"$repo"/}"
shift
overrides=("$@")

in_git=0
if git -C "$repo" rev-parse --verify -q HEAD >/dev/null 2>&1; then
  in_git=1
fi
# Every gin file must be in HEAD: that is what the workers get.
check_gin_file() {
  [[ -f "$repo/$1" ]] || die_usage "gin file '$1' not found (paths are relative to the repository root $repo)"
  if [[ "$in_git" == 1 ]] && ! git -C "$repo" cat-file -e "HEAD:$1" 2>/dev/null; then
    die_usage "gin file '$1' is not committed; the workers get HEAD of $repo"
  fi
}
check_gin_file "$gin_file"
model_dir=""
model_dir_from=""
for arg in ${overrides[@]+"${overrides[@]}"}; do
  case "$arg" in
    --gin_file=*) check_gin_file "${arg#--gin_file=}" ;;
    --gin.MODEL_DIR=*) model_dir="${arg#--gin.MODEL_DIR=}"; model_dir_from="--gin.MODEL_DIR" ;;
  esac
done
if [[ -z "$model_dir_from" ]]; then
  line="$(grep -E '^[[:space:]]*MODEL_DIR[[:space:]]*=' "$repo/$gin_file" | tail -n 1 || true)"
  if [[ -n "$line" ]]; then
    model_dir="${line#*=}"
    model_dir_from="$gin_file"
  fi
fi
model_dir="$(printf '%s' "$model_dir" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' \
  -e "s/^['\"]//" -e "s/['\"]\$//")"
if [[ -z "$model_dir_from" ]]; then
  warn "no --gin.MODEL_DIR override; the gin files must set MODEL_DIR to a gs:// path" \
       "(--gin.MODEL_DIR=\"'gs://BUCKET/runs/$name'\")"
elif [[ "$model_dir" != gs://* ]]; then
  warn "MODEL_DIR '$model_dir' (from $model_dir_from) is not a gs:// path: every worker of the" \
       "slice would write its own local disk, the checkpoint would be split across workers and" \
       "lost with the slice, and a re-run could not resume. Use --gin.MODEL_DIR=\"'gs://BUCKET/runs/$name'\"."
fi

if [[ "$in_git" == 1 ]]; then
  if [[ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]]; then
    warn "uncommitted changes in $repo are not copied: the workers get HEAD" \
         "($(git -C "$repo" rev-parse --short HEAD))"
  fi
elif [[ "$dry_run" == 1 ]]; then
  warn "$repo is not a git checkout: git archive would fail"
else
  die_usage "$repo is not a git checkout (the workers get its HEAD through git archive)"
fi

run_id="$(date -u +%Y%m%d-%H%M%S)"
tarball="${TMPDIR:-/tmp}/xlt-$name-$run_id.tar.gz"
venv="xlt-venv"
q_python="$(quoted "$python_bin")"

create=("${tpu[@]}" create "$name" "${where[@]}" "--accelerator-type=$accelerator" "--version=$version")
if [[ "$spot" == 1 ]]; then
  create+=(--spot)
fi
# On every worker, from the home directory: fresh code in ~/xlt, a virtualenv kept across runs.
setup="set -e; rm -rf xlt && mkdir xlt && tar -xzf xlt.tar.gz -C xlt && rm -f xlt.tar.gz; "
setup+="if [ ! -x $venv/bin/python ]; then $q_python -m venv $venv || { "
setup+="sudo apt-get -o DPkg::Lock::Timeout=600 update -qq && "
setup+="sudo DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "
setup+="$q_python $(quoted "$python_bin-venv") && $q_python -m venv --clear $venv; }; fi; "
setup+="$venv/bin/pip install -q --upgrade pip; cd xlt && ../$venv/bin/pip install -q -e '.[tpu]'"
train=(exec env XLT_DISTRIBUTED=1 PYTHONUNBUFFERED=1 ${envs[@]+"${envs[@]}"}
       "../$venv/bin/python" -m xlt train "--gin_file=$gin_file" ${overrides[@]+"${overrides[@]}"})
train_remote="cd xlt && echo \$\$ > ../xlt-train.pid && $(quoted "${train[@]}")"
delete=("${tpu[@]}" delete "$name" "${where[@]}" --quiet)

slice_ready=0
finish() {
  local status=$?
  rm -f "$tarball"
  if [[ "$delete_after" == 1 && "$slice_ready" == 1 ]]; then
    step "${delete[@]}" || warn "could not delete the slice; delete it with: $(quoted "${delete[@]}")"
  fi
  echo "tpu_pod.sh: log $log_file; exit status $status" | tee -a "$log_file" >&2
  exit "$status"
}

if [[ "$dry_run" == 0 ]]; then
  mkdir -p "$log_dir"
  log_file="$log_dir/$name-$run_id.log"
  echo "tpu_pod.sh: $(quoted "${invocation[@]}") at $(git -C "$repo" rev-parse HEAD); log: $log_file" |
    tee -a "$log_file" >&2
  trap finish EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
else
  echo "tpu_pod.sh: dry run; a real run would log to $log_dir/$name-$run_id.log" >&2
fi

if [[ "$check" == 1 ]]; then
  local_python="${XLT_LOCAL_PYTHON:-}"
  if [[ -z "$local_python" ]]; then
    local_python="python3"
    if [[ -x "$repo/.venv/bin/python" ]]; then
      local_python="$repo/.venv/bin/python"
    fi
  fi
  # Gin paths resolve from here or from the repository root; a failure ends the script here.
  step env JAX_PLATFORMS=cpu "$local_python" -m xlt compile "--gin_file=$gin_file" \
    ${overrides[@]+"${overrides[@]}"} "--topology=$accelerator"
fi
step git -C "$repo" archive --format=tar.gz "--output=$tarball" HEAD
if [[ "$reuse" == 0 ]]; then
  step "${create[@]}"
fi
slice_ready=1
step "${tpu[@]}" scp "$tarball" "$name:xlt.tar.gz" --worker=all "${where[@]}"
step "${tpu[@]}" ssh "$name" --worker=all "${where[@]}" "--command=$setup"
step "${tpu[@]}" ssh "$name" --worker=all "${where[@]}" "--command=$train_remote"
if [[ "$dry_run" == 1 && "$delete_after" == 1 ]]; then
  step "${delete[@]}"
fi
