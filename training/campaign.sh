#!/usr/bin/env bash
# One stretch of the campaign: the long run of the flagship (gca_uot) and its baseline (simclr) on
# training/configs/cifar10_long.yaml, continued across sessions, then its progress line appended to
# results/campaign/<method>.jsonl and the page results/campaign/README.md rewritten from those lines (commit
# both: they outlive the machine, the run folder may not).
#
# From the repository root, at the start of a session (in the background: it owns the CPU):
#   bash training/campaign.sh 2h30m [-- key=value ...]
# Stop it early: `pkill -TERM -f "training pretrain"` (the run saves its state, the progress line is written).
#
# Which method: milestone by milestone (every 50 epochs), so that at every point in time both stand at the
# same budget: the one with fewer milestones reached trains, up to its next milestone (`progress --next`).
# How: its run folder under $OTZOO_RUNS (default runs/) with a checkpoint -> --resume (exact); none, or one behind
# its canonical release when that is a milestone of this recipe -> --resume-from that release (the machine was
# lost, or a GPU window went further; a folder behind it is moved aside, kept); else a fresh start (the progress
# line records any steps lost).
# $OTZOO_DATA: the data (default ../shared/data/cifar10); $PYTHON: the interpreter (default python3);
# $OTZOO_CAMPAIGN: the progress folder (default results/campaign); $OTZOO_RECIPE: the recipe.
# At a milestone, pretrain writes <run>/milestone-<epoch>/ (weights, heads, run.json) and this script prints
# the export command that releases it under the canonical name (--supersede).
# Exit status: pretrain's (0 complete, 3 stopped with its state saved: budget or milestone), or 4 when
# every method has completed the recipe.
set -uo pipefail

# the whole script is read before it runs (a function, called and exited on the last line), so editing this
# file during a stretch is safe
main() {
    [ $# -ge 1 ] || { echo "usage: bash training/campaign.sh BUDGET [-- key=value ...]" >&2; return 2; }
    budget=$1
    shift
    [ "${1:-}" = "--" ] && shift
    py=${PYTHON:-python3}
    runs=${OTZOO_RUNS:-runs}
    recipe=${OTZOO_RECIPE:-training/configs/cifar10_long.yaml}
    data=${OTZOO_DATA:-../shared/data/cifar10}
    progress=${OTZOO_CAMPAIGN:-results/campaign}

    next=$("$py" -m training progress --next gca_uot simclr --runs "$runs" --recipe "$recipe") || return $?
    read -r method stop name how <<< "$next"
    dir=$runs/$name
    if [ "${how%%:*}" = resume-from ] && [ -e "$dir" ]; then  # a local run behind the release (a GPU window's)
        aside=$dir.behind-$(date -u +%Y%m%dT%H%M%SZ)
        mv "$dir" "$aside" && echo "[campaign] $dir is behind ${how#resume-from:}: moved to $aside (kept)"
    fi
    case $how in
        resume) args=(--resume --output-dir "$dir") ;;
        resume-from:*) args=(--config "$recipe" method="$method" --resume-from "${how#resume-from:}" --output-dir "$dir"
                             --data-dir "$data" data.cache_dir="$runs/.cache") ;;
        *) args=(--config "$recipe" method="$method" --output-dir "$dir" --data-dir "$data" data.cache_dir="$runs/.cache") ;;
    esac
    echo "[campaign] $(date -u +%FT%TZ) $method until epoch $stop: $how (budget $budget)"
    "$py" -m training pretrain "${args[@]}" "$@" --time-budget "$budget" --stop-after-epoch "$stop"
    rc=$?
    echo "[campaign] $(date -u +%FT%TZ) $method: pretrain exit $rc"
    "$py" -m training progress --run "$dir" --out "$progress/$method.jsonl" || true
    "$py" -m training progress --report "$progress" || true
    milestone=$dir/milestone-$(printf %03d "$stop")
    [ $rc -eq 0 ] && milestone=$dir  # the schedule's end: the run folder itself is the last milestone
    if [ -f "$milestone/run.json" ] && [ ! -f "$milestone/exported" ]; then
        echo "[campaign] milestone $method epoch $stop: release it (replaces the shipped weight on purpose), then commit:"
        echo "  python -m training export --run $milestone --supersede && date -u +%FT%TZ > $milestone/exported"
    fi
    return $rc
}

main "$@"; exit $?  # one line: bash reads no further line of this file once main returns
