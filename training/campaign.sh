#!/usr/bin/env bash
# One stretch of the campaign: the long run of the flagship (gca_uot) and its baseline (simclr) on
# training/configs/cifar10_long.yaml, continued across sessions, then its progress line appended to
# results/campaign/<method>.jsonl and the page results/campaign/README.md rewritten from those lines (commit
# both: they outlive the machine, the run folder may not).
#
# From the repository root, at the start of a session (in the background: it owns the CPU):
#   bash training/campaign.sh 2h30m [-- key=value ...]
# Stop it early: `pkill -TERM -f "training pretrain"` (the run saves its state, the progress line is written; a
# milestone's export already under way finishes first).
#
# Which method: milestone by milestone (every 25 epochs: training/run/progress.py's MILESTONE_EVERY says why),
# so that at every point in time both stand at the same budget: the one with fewer milestones reached trains, up
# to its next milestone (`progress --next`).
# How: its run folder under $OTZOO_RUNS (default runs/) with a checkpoint -> --resume (exact); none, or one behind
# its canonical release when that is a milestone of this recipe -> --resume-from that release (the machine was
# lost, or a GPU window went further; a folder behind it is moved aside, kept); else a fresh start (the progress
# line records any steps lost).
# At a milestone, pretrain writes <run>/milestone-<epoch>/ (weights, heads, run.json). With at least
# $RELEASE_MIN_S of the budget left, this script releases it at once under the canonical name (`export
# --supersede`: the weight, its card, results rows and README row change; commit them, as a milestone, with the
# progress line), since a milestone left in the run folder is lost with the machine, then trains the method now
# behind for the rest of the budget; with less left it prints that export command.
# $OTZOO_DATA: the data (default ../shared/data/cifar10); $PYTHON: the interpreter (default python3);
# $OTZOO_CAMPAIGN: the progress folder (default results/campaign); $OTZOO_RECIPE: the recipe.
# Exit status: the last pretrain's (0 complete, 3 stopped with its state saved: budget or milestone), 4 when
# every method has completed the recipe, 5 when a milestone's export failed (its folder is kept, the command to
# release it by hand printed, and the method behind trained for the rest of the budget all the same).
set -uo pipefail

RELEASE_MIN_S=1800  # a milestone's export (584 s for resnet18_cifar on a 2-core AMD EPYC: benchmarks/RESULTS.md)
                    # and some training after it
START_MIN_S=600     # a stretch starts (decode, compile) only with this much of the budget left

# the whole script is read before it runs (functions, called and exited on the last line), so editing this
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
    budget_s=$(seconds "$budget") || return 2
    end=$(( $(date +%s) + budget_s ))
    failed=
    while :; do
        stretch "$(left)" "$@"
        rc=$?
        [ -n "$milestone" ] || break
        if [ "$(left)" -lt $RELEASE_MIN_S ]; then
            echo "[campaign] milestone $method epoch $stop: release it (replaces the shipped weight on purpose), then commit:"
            by_hand "$milestone"
            break
        fi
        release "$milestone" || failed=5  # its folder stays for a release by hand; the CPU goes on training
        [ "$(left)" -ge $START_MIN_S ] || break
    done
    return "${failed:-$rc}"
}

seconds() {  # BUDGET (150m, 2h30m, 5400, as pretrain's --time-budget) -> whole seconds
    "$py" -c 'import sys; from training.run.config import parse_duration; print(int(parse_duration(sys.argv[1])))' \
        "$1" || { echo "[campaign] cannot read the budget $1: give e.g. 2h30m, 150m or 5400" >&2; return 2; }
}

left() {  # seconds of the budget left (0 when spent)
    local s=$(( end - $(date +%s) ))
    echo $(( s > 0 ? s : 0 ))
}

# trains the method behind for SECONDS; sets $method, $stop and $milestone (its folder when this stretch reached
# a milestone not yet exported, else empty); returns pretrain's exit status
stretch() {
    local seconds=$1 next name how dir aside args rc
    shift
    milestone=
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
    echo "[campaign] $(date -u +%FT%TZ) $method until epoch $stop: $how (budget ${seconds}s)"
    "$py" -m training pretrain "${args[@]}" "$@" --time-budget "$seconds" --stop-after-epoch "$stop"
    rc=$?
    echo "[campaign] $(date -u +%FT%TZ) $method: pretrain exit $rc"
    "$py" -m training progress --run "$dir" --out "$progress/$method.jsonl" || true
    "$py" -m training progress --report "$progress" || true
    local reached=$dir/milestone-$(printf %03d "$stop")
    [ $rc -eq 0 ] && reached=$dir  # the schedule's end: the run folder itself is the last milestone
    if [ -f "$reached/run.json" ] && [ ! -f "$reached/exported" ]; then milestone=$reached; fi
    return $rc
}

release() {  # MILESTONE folder -> the canonical release, measured by export; marks the folder exported
    echo "[campaign] $(date -u +%FT%TZ) milestone $method epoch $stop: releasing it (replaces the shipped weight)"
    "$py" -m training export --run "$1" --supersede --data-dir "$data" || {
        echo "[campaign] the export of $1 failed: fix what it says, then release it by hand:" >&2
        by_hand "$1" >&2
        return 5
    }
    date -u +%FT%TZ > "$1/exported"
    echo "[campaign] $(date -u +%FT%TZ) released $method at epoch $stop: commit weights/, otzoo/pretrained/," \
         "model_cards/, results/ and README.md with the progress line"
}

by_hand() {  # MILESTONE -> the command that releases it
    echo "  python -m training export --run $1 --supersede --data-dir $data && date -u +%FT%TZ > $1/exported"
}

main "$@"; exit $?  # one line: bash reads no further line of this file once main returns
