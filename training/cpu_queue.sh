#!/usr/bin/env bash
# A release queue on one machine: pretrain RECIPE for each METHOD in turn (one run at a time owns the
# CPU), resume a stopped run where it left off, and export each run as it completes (measured metrics,
# card, results, README table; then `readme`, so the cards of one recipe list each other). BUDGET is the
# wall time of the whole call: when it is spent, the run in progress saves its state (exit 3) and the
# same command, run again, resumes it. A run whose export is done (`exported` in its folder) is skipped.
#
# From the repository root, with the data in $OTZOO_DATA:
#   bash training/cpu_queue.sh training/configs/cifar10_cpu.yaml 2h40m byol otco matching_gap [-- key=value ...]
# Stop it early: kill the queue, then `pkill -TERM -f "training pretrain"` (state saved, exit 3).
# Runs: $OTZOO_RUNS/<recipe>_<method>_<arch> (default runs/), the decode cache in $OTZOO_RUNS/.cache.
# $OTZOO_ROOT: the repo root export and readme write into (default this checkout); $OTZOO_EXPORT_ARGS:
# more export options (e.g. --device cpu); $PYTHON: the interpreter (default python3).
# Exit status: 0 every method exported, 3 BUDGET spent (run the same command again), otherwise the status
# of the step that failed (pretrain: 1 a non-finite loss, 2 a bad config; export and readme: theirs).
set -uo pipefail
# shellcheck source=training/queue_args.sh
source "$(dirname "${BASH_SOURCE[0]}")/queue_args.sh"
py=${PYTHON:-python3}
runs=${OTZOO_RUNS:-runs}
root=${OTZOO_ROOT:-.}
seconds=$("$py" -c "import sys; from training.run.config import parse_duration; print(int(parse_duration(sys.argv[1])))" \
    "$budget") || { echo "BUDGET: a duration such as 2h40m, 150m or 5400 (seconds), not '$budget'" >&2; exit 2; }
end=$(( $(date +%s) + seconds ))

for m in "${methods[@]}"; do
    arch=$("$py" -m training pretrain --config "$recipe" method="$m" "$@" --print-config | sed -n 's/^arch: //p')
    [ -n "$arch" ] || { echo "[queue] $m: the recipe does not resolve (see above)"; exit 2; }
    dir=$runs/$(basename "$recipe" .yaml)_${m}_$arch
    if [ -f "$dir/exported" ]; then echo "[queue] $m: already exported ($dir)"; continue; fi
    if [ ! -f "$dir/run.json" ]; then
        left=$(( end - $(date +%s) ))
        [ $left -gt 0 ] || { echo "[queue] budget spent before $m"; exit 3; }
        if [ -f "$dir/checkpoint.pt" ]; then
            how=resume args=(--resume --output-dir "$dir")
        else
            how=start args=(--config "$recipe" --output-dir "$dir" method="$m" data.cache_dir="$runs/.cache" "$@")
        fi
        echo "[queue] $(date +%T) pretrain $m: $how (${left} s left)"
        "$py" -m training pretrain "${args[@]}" --time-budget "$left"
        rc=$?
        echo "[queue] $(date +%T) pretrain $m: exit $rc"
        [ $rc -eq 0 ] || exit $rc
    fi
    echo "[queue] $(date +%T) export $m"
    # shellcheck disable=SC2086  # OTZOO_EXPORT_ARGS is a list of options
    "$py" -m training export --run "$dir" --root "$root" ${OTZOO_EXPORT_ARGS:-} || exit $?
    "$py" -m training readme --root "$root" || exit $?
    date -u +%FT%TZ > "$dir/exported"
    echo "[queue] $(date +%T) exported $m"
done
