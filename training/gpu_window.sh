#!/usr/bin/env bash
# One device window: pretrain METHODs side by side (one process each, sharing the device) with
# RECIPE, then pack what `python -m training export` needs into runs.tar.part-* with SHA256SUMS, in parts the
# device tool brings back (8 files of at most 16 MiB, 64 MiB a call): each finished run's (or, of a run stopped by
# `-- --stop-after-epoch N`, its milestone-N folder's) config, run.json, metrics, curves, plan (PNG + its mass,
# drawn here from the checkpoint, which stays behind), log, and its backbone and heads (what --resume-from
# continues) cast to float16 (the dtype of the released files, so the export is the same as from the fp32 file;
# two resnet18 runs come back with the window's call, a ViT-B/16 pair needs five more short calls, printed at the
# end). The CIFAR-10 campaign's window: `python -m training window-plan campaign` prepares it.
#
# On the device machine, from the repository root, with the data in $OTZOO_DATA:
#   bash training/gpu_window.sh training/configs/cifar10_gpu.yaml 8m gca_uot simclr [-- key=value ...]
# A METHOD may carry pretrain arguments of its own after a colon, comma-separated (the campaign's window: each
# method from its own release to its own epoch), e.g.
#   gca_uot:--resume-from=gca_uot_resnet18_cifar10,--stop-after-epoch=75
# Back here (FILES: the folder the tool copied $OUT to; with several return calls, all their files in one folder):
#   (cd FILES && sha256sum -c SHA256SUMS) && mkdir -p runs && cat FILES/runs.tar.part-* | tar x -C runs
#   python -m training export --run runs/<recipe>_<method> --data-dir DATA
# A time-to-accuracy curve: `-- engine.knn_every=2 engine.knn_train=50000 engine.knn_test=10000` (kNN
# top-1 on all of train / test every 2 epochs, in metrics.jsonl); the monitor only watches training,
# so the weights still count as the recipe's (training.release.cards.same_recipe). Export draws it
# (knn_vs_time.png, in the card); `python -m training curve --run R --out results/...` puts it in results/.
# Epochs that fit a window no one has measured: `python -m training fit-epochs` first, in the same
# call, and pass `-- epochs=$E` (that module's header shows the command).
# BUDGET is each run's --time-budget, a safety stop: a run it stops has no backbone and nothing
# of it comes back but its log (a checkpoint is too large to carry between windows).
# The window starts with a one-step check on $OTZOO_WINDOW_DEVICE (default cuda) and stops there if it fails;
# OTZOO_WINDOW_CHECK=0 leaves it out when the call has just run the recipe there (fit-epochs' probe, window-plan).
# $PYTHON: the interpreter (default python3). $OTZOO_WINDOW_MAX_MIB: what one call brings back (default 60 of the
# 64 MiB); runs beyond it (a ViT-B/16 backbone is ~172 MB in fp16) come back in the follow-up calls it prints.
set -uo pipefail
# shellcheck source=training/queue_args.sh
source "$(dirname "${BASH_SOURCE[0]}")/queue_args.sh"
out=${OUT:?set OUT to the folder whose files come back}
runs=${OTZOO_WINDOW_RUNS:-/tmp/otzoo-window}
py=${PYTHON:-python3}
name=$(basename "$recipe" .yaml)
own=()  # each method's own pretrain arguments, comma-separated
for i in "${!methods[@]}"; do
    token=${methods[i]}
    methods[i]=${token%%:*}
    own[i]=
    [[ $token == *:* ]] && own[i]=${token#*:}
done
mkdir -p "$runs"

# The cheapest check first: one step of the real recipe (data, compile, the first method's loss) on the device
# the window is for; a failure ends the window here, the reason in $OUT/device_check.log, before any long run.
device=${OTZOO_WINDOW_DEVICE:-cuda}
device_check() {
    rm -rf "$runs/device_check"
    "$py" -m training pretrain --config "$recipe" method="${methods[0]}" --output-dir "$runs/device_check" "$@" \
        engine.device="$device" engine.knn_every=0 --time-budget 1 > "$out/device_check.log" 2>&1
    local rc=$?
    rm -rf "$runs/device_check"
    if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then
        echo "[window] device check failed (exit $rc): no run started; $out/device_check.log says why:"
        tail -5 "$out/device_check.log"
        return 1
    fi
    echo "[window] device check passed: one step of ${methods[0]} on $device"
}
if [ "${OTZOO_WINDOW_CHECK:-1}" = 0 ]; then
    echo "[window] device check left out (OTZOO_WINDOW_CHECK=0: this call has run the recipe there already)"
else
    device_check "$@" || exit 1
fi

for i in "${!methods[@]}"; do
    m=${methods[i]}
    IFS=, read -ra mine <<< "${own[i]}"
    "$py" -m training pretrain --config "$recipe" method="$m" --output-dir "$runs/${name}_$m" \
        --time-budget "$budget" "${mine[@]}" "$@" > "$runs/${name}_$m.log" 2>&1 &
done
wait
# what comes back of a run: the run itself when complete, else its newest milestone (--stop-after-epoch)
returned() {
    local run=$1
    if [ -f "$run/backbone.safetensors" ]; then echo "$run"; return; fi
    local milestones=("$run"/milestone-*/backbone.safetensors)
    [ -f "${milestones[-1]}" ] && dirname "${milestones[-1]}"
}
status=0
for m in "${methods[@]}"; do
    back=$(returned "$runs/${name}_$m")
    if [ -n "$back" ]; then
        cp "$runs/${name}_$m.log" "$back/pretrain.log"
        [ "$back" = "$runs/${name}_$m" ] && echo "[window] $m: complete" || echo "[window] $m: ${back#"$runs"/}"
        "$py" -m training plan --run "$back" >> "$runs/${name}_$m.log" 2>&1  # needs the (model-only) checkpoint
    else echo "[window] $m: no backbone (see ${name}_$m.log):"; tail -5 "$runs/${name}_$m.log"; status=1; fi
done

"$py" - "$runs" <<'EOF'
import sys
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from training.release.export import RELEASE_DTYPE

for path in [*Path(sys.argv[1]).rglob("backbone.safetensors"), *Path(sys.argv[1]).rglob("heads.safetensors")]:
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    released = {k: v.to(RELEASE_DTYPE) if v.is_floating_point() else v for k, v in tensors.items()}
    save_file(released, str(path), metadata=meta)
EOF
# pack every finished run into one tar, split into parts that the device tool brings back (files of at most 16 MiB,
# $OTZOO_WINDOW_MAX_MIB per call): the first call's share goes to $OUT now with SHA256SUMS (of every part, so
# the whole is checked); the rest wait in $runs/return/ for the follow-up calls this prints (run them at once: the machine is kept only
# while warm). Back here, in one folder with every part: `sha256sum -c SHA256SUMS`, then `cat runs.tar.part-* | tar x`.
max_mib=${OTZOO_WINDOW_MAX_MIB:-60}
part_mib=$(( max_mib < 15 ? max_mib : 15 )) per_call=$(( max_mib / (max_mib < 15 ? max_mib : 15) ))
files=()
for d in "$runs"/*/; do
    back=$(returned "${d%/}") || continue
    n=${back#"$runs"/}
    for f in backbone.safetensors heads.safetensors run.json config.yaml metrics.jsonl curves.png plan.png plan.json \
             pretrain.log; do
        [ -f "$runs/$n/$f" ] && files+=("$n/$f")
    done
done
ret=$runs/return
rm -rf "$ret" && mkdir -p "$ret"
if [ ${#files[@]} -gt 0 ]; then
    (cd "$runs" && tar cf "$ret/runs.tar" "${files[@]}")
    split -b "${part_mib}M" -d -a 3 "$ret/runs.tar" "$ret/runs.tar.part-"
    (cd "$ret" && sha256sum runs.tar.part-* > SHA256SUMS && rm runs.tar)
    parts=("$ret"/runs.tar.part-*)
    cp "$ret/SHA256SUMS" "${parts[@]:0:per_call}" "$out/"
    if [ ${#parts[@]} -gt "$per_call" ]; then
        echo "[window] ${#parts[@]} parts of ${part_mib} MiB; $per_call came back with this call. Bring the rest back now," \
             "one command per call:"
        for ((i = per_call; i < ${#parts[@]}; i += per_call)); do
            echo "  cp ${parts[*]:i:per_call} \"\$OUT\"/"
        done
    fi
fi
cp "$runs"/*.log "$out/" 2>/dev/null
ls -l "$out"
exit $status
