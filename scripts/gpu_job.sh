#!/usr/bin/env bash
# The full-size run on a lent GPU machine with no network: generate data, train an adapter from
# scratch within a time budget, and evaluate it (and, with BARE=1, the bare model) on the
# generated test split. Expects the kit of scripts/offline_kit.py in $KIT, its GGUF pieces in
# $KIT or in folders listed in $PIECES; writes what should come back into $OUT.
#
#   EPISODES=2000 TRAIN_MINUTES=4 EVAL_EPISODES=200 bash scripts/gpu_job.sh
#
# Every stage is skipped when its output is already there, so a second call on the same warm
# machine goes on where the first stopped.
set -euo pipefail

KIT=${KIT:-.kit}
PIECES=${PIECES:-"$KIT .kit-recv"}
OUT=${OUT:-out}
RUNS=${RUNS:-runs/gpu}
EPISODES=${EPISODES:-2000}       # 80% train, 10% validation, 10% test
SEED=${SEED:-21}
TRAIN_MINUTES=${TRAIN_MINUTES:-4}
TRAIN_STEPS=${TRAIN_STEPS:-600}   # an upper bound; the time budget usually ends the run first
BATCH=${BATCH:-16}
TRAIN_ROWS=${TRAIN_ROWS:-4000}    # tokenizing takes ~30 ms a row on one core, outside the time budget
LR=${LR:-2e-4}
EVAL_EPISODES=${EVAL_EPISODES:-200}
CONCURRENCY=${CONCURRENCY:-200}
BARE=${BARE:-0}
DEVICE=${DEVICE:-cuda}
EVAL_ARGS=${EVAL_ARGS:-}          # e.g. "--max-new-tokens 16 --max-steps 1" for a quick dry run on a CPU
export MEMLORA_CACHE=${MEMLORA_CACHE:-$PWD/.kit-cache}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT" "$RUNS"
exec > >(tee -a "$OUT/job.log") 2>&1
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }

stamp "python packages"
if [ ! -d /tmp/site/trl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$KIT"/wheels/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD
python3 - <<'EOF' 2>&1 | tee "$OUT/versions.txt"
import torch, transformers, peft, trl, datasets, mcp
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
print("transformers", transformers.__version__, "peft", peft.__version__, "trl", trl.__version__, "datasets", datasets.__version__)
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> "$OUT/versions.txt" || true

stamp "model weights"
# shellcheck disable=SC2086  # PIECES is a list of folders
python3 scripts/offline_kit.py unpack --manifest "$KIT/manifest.json" --pieces $PIECES --cache "$MEMLORA_CACHE"
python3 -c "from memlora.models.loading import convert_bundled; print('converted:', convert_bundled('qwen2.5-coder-0.5b'))"

memlora() { python3 -m memlora.cli "$@"; }

stamp "data: $EPISODES episodes, seed $SEED"
[ -f "$RUNS/data/stats.json" ] || memlora datagen --episodes "$EPISODES" --seed "$SEED" --out "$RUNS/data" --quiet
cp "$RUNS/data/stats.json" "$OUT/data-stats.json"

stamp "training: at most $TRAIN_MINUTES minutes, batch $BATCH"
if [ ! -f "$RUNS/adapter/adapter_model.safetensors" ]; then
  resume=$([ -d "$RUNS/adapter/checkpoints" ] && echo --resume || true)
  # shellcheck disable=SC2086  # resume is empty or one flag
  memlora train sft $resume --data "$RUNS/data" --out "$RUNS/adapter" --device "$DEVICE" --batch-size "$BATCH" --grad-accum 1 \
    --max-steps "$TRAIN_STEPS" --max-minutes "$TRAIN_MINUTES" --eval-every 25 --save-every 25 --patience 0 \
    --max-train-rows "$TRAIN_ROWS" --max-eval-rows 64 --max-length 4096 --lr "$LR" --seed "$SEED" 2>&1 | tr '\r' '\n' | grep -v Warning | tail -40
fi
tar -czf "$OUT/adapter.tar.gz" -C "$RUNS" --exclude checkpoints adapter

# evaluate NAME ADAPTER: the first EVAL_EPISODES test episodes, reports into $OUT as eval-NAME.*
evaluate() {
  stamp "evaluation of $1: $EVAL_EPISODES test episodes, $CONCURRENCY at once"
  # shellcheck disable=SC2086  # EVAL_ARGS is a list of flags
  memlora eval "$RUNS/data/test.episodes.jsonl" --adapter "$2" --limit "$EVAL_EPISODES" \
    --concurrency "$CONCURRENCY" --device "$DEVICE" --quiet $EVAL_ARGS --out "$RUNS/eval-$1"
  cp "$RUNS/eval-$1/report.md" "$OUT/eval-$1.md"
  gzip -c "$RUNS/eval-$1/report.json" > "$OUT/eval-$1.json.gz"
}
evaluate adapter "$RUNS/adapter"
if [ "$BARE" = 1 ]; then evaluate bare none; fi
stamp "done"
