#!/usr/bin/env bash
# One device window: pretrain METHODs side by side (one process each, sharing the device) with
# RECIPE, then pack what `python -m training export` needs into $OUT/runs.tar.part-* so that it
# fits what the device tool brings back (8 files, 64 MiB): each finished run's config, run.json,
# metrics, curves, plan (PNG + its mass, drawn here from the checkpoint, which stays behind), log and its backbone
# cast to float16 (the dtype of the released files, so the export is the same as from the fp32 file;
# two resnet18 backbones fit, three do not).
#
# On the device machine, from the repository root, with the data in $OTZOO_DATA:
#   bash training/gpu_window.sh training/configs/cifar10_gpu.yaml 8m gca_uot simclr [-- key=value ...]
# Back here (FILES: the folder the tool copied $OUT to):
#   mkdir -p runs && cat FILES/runs.tar.part-* | tar x -C runs
#   python -m training export --run runs/<recipe>_<method> --data-dir DATA
# A time-to-accuracy curve: `-- engine.knn_every=2 engine.knn_train=50000 engine.knn_test=10000` (kNN
# top-1 on all of train / test every 2 epochs, in metrics.jsonl); the monitor only watches training,
# so the weights still count as the recipe's (training.release.cards.same_recipe). Export draws it
# (knn_vs_time.png, in the card); `python -m training curve --run R --out results/...` puts it in results/.
# Epochs that fit a window no one has measured: `python -m training fit-epochs` first, in the same
# call, and pass `-- epochs=$E` (that module's header shows the command).
# BUDGET is each run's --time-budget, a safety stop: a run it stops has no backbone and nothing
# of it comes back but its log (a checkpoint is too large to carry between windows).
# The window starts with a one-step check on $OTZOO_WINDOW_DEVICE (default cuda) and stops there if it fails.
# $PYTHON: the interpreter (default python3). $OTZOO_WINDOW_MAX_MIB: what the packed runs may take (default
# 60 of the 64 MiB); a finished run beyond it is named and left out (exit 1).
set -uo pipefail
# shellcheck source=training/queue_args.sh
source "$(dirname "${BASH_SOURCE[0]}")/queue_args.sh"
out=${OUT:?set OUT to the folder whose files come back}
runs=${OTZOO_WINDOW_RUNS:-/tmp/otzoo-window}
py=${PYTHON:-python3}
name=$(basename "$recipe" .yaml)
mkdir -p "$runs"

# The cheapest check first: one step of the real recipe (data, compile, the first method's loss) on the device
# the window is for; a failure ends the window here, the reason in $OUT/device_check.log, before any long run.
device=${OTZOO_WINDOW_DEVICE:-cuda}
rm -rf "$runs/device_check"
"$py" -m training pretrain --config "$recipe" method="${methods[0]}" --output-dir "$runs/device_check" "$@" \
    engine.device="$device" engine.knn_every=0 --time-budget 1 > "$out/device_check.log" 2>&1
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then
    echo "[window] device check failed (exit $rc): no run started; $out/device_check.log says why:"
    tail -5 "$out/device_check.log"
    exit 1
fi
rm -rf "$runs/device_check"
echo "[window] device check passed: one step of ${methods[0]} on $device"

for m in "${methods[@]}"; do
    "$py" -m training pretrain --config "$recipe" method="$m" --output-dir "$runs/${name}_$m" \
        --time-budget "$budget" "$@" > "$runs/${name}_$m.log" 2>&1 &
done
wait
status=0
for m in "${methods[@]}"; do
    cp "$runs/${name}_$m.log" "$runs/${name}_$m/pretrain.log" 2>/dev/null
    if [ -f "$runs/${name}_$m/backbone.safetensors" ]; then echo "[window] $m: complete"
        "$py" -m training plan --run "$runs/${name}_$m" >> "$runs/${name}_$m.log" 2>&1  # needs the checkpoint
    else echo "[window] $m: no backbone (see ${name}_$m.log):"; tail -5 "$runs/${name}_$m.log"; status=1; fi
done

"$py" - "$runs" <<'EOF'
import sys
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from training.release.export import RELEASE_DTYPE

for path in Path(sys.argv[1]).glob("*/backbone.safetensors"):
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    released = {k: v.to(RELEASE_DTYPE) if v.is_floating_point() else v for k, v in tensors.items()}
    save_file(released, str(path), metadata=meta)
EOF
# pack finished runs while they fit what comes back; a run that does not fit is named, not silently cut
max=$(( ${OTZOO_WINDOW_MAX_MIB:-60} * 1024 * 1024 )) used=0 files=()
for d in "$runs"/*/; do
    n=$(basename "$d")
    [ -f "$runs/$n/backbone.safetensors" ] || continue
    mine=()
    for f in backbone.safetensors run.json config.yaml metrics.jsonl curves.png plan.png plan.json pretrain.log; do
        [ -f "$runs/$n/$f" ] && mine+=("$n/$f")
    done
    size=$(cd "$runs" && du -cb "${mine[@]}" | tail -1 | cut -f1)
    if [ $((used + size)) -gt $max ]; then
        echo "[window] $n: left out of the return ($((size >> 20)) MiB; $((used >> 20)) of $((max >> 20)) MiB used)"
        status=1
        continue
    fi
    used=$((used + size)) files+=("${mine[@]}")
done
[ ${#files[@]} -gt 0 ] && (cd "$runs" && tar cf - "${files[@]}") | split -b 15M - "$out/runs.tar.part-"
cp "$runs"/*.log "$out/" 2>/dev/null
ls -l "$out"
exit $status
