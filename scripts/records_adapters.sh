#!/usr/bin/env bash
# The records adapters from scratch on a CPU box: training data, the writing adapter, the recall
# adapter, and the evaluation table against the base model with strict prompts (docs/records.md).
#
#   scripts/records_adapters.sh            # every step; a step whose output exists is skipped
#   OUT=runs/records-adapters HOURS=1 THREADS=1 NICE=10 TEST_SCENES=6 scripts/records_adapters.sh
#
# Each training is sized by `memlora records datagen` to take about HOURS at 25 tokens/s (one
# core of a 2-core AVX2 box in fp32; the datagen step prints its estimate) and is stopped after
# 1.5 x HOURS in any case (--max-minutes: it validates, saves and writes the adapter). Interrupt
# a training and rerun the script: it resumes from the newest checkpoint. The adapters land in
# $OUT/<model>-records-writing and $OUT/<model>-records-recall (names the routing recognises);
# ship them by copying those folders into adapters/ after reading the report.
set -euo pipefail

OUT=${OUT:-runs/records-adapters}
MODEL=${MODEL:-qwen2.5-coder-0.5b}
SEED=${SEED:-0}
HOURS=${HOURS:-1}
THREADS=${THREADS:-1}
NICE=${NICE:-10}
TEST_SCENES=${TEST_SCENES:-6}
TEST_MISSIONS=${TEST_MISSIONS:-2}
MINUTES=$(python -c "print(max(1, round(float('$HOURS') * 90)))")
DATA=$OUT/data
NAME=$(basename "$MODEL")  # a bundled name, or a local model folder's name
WRITING=$OUT/$NAME-records-writing
RECALL=$OUT/$NAME-records-recall

run() { echo "+ $*" >&2; nice -n "$NICE" "$@"; }

if [ ! -f "$DATA/stats.json" ]; then
  run memlora records datagen --out "$DATA" --seed "$SEED" --hours "$HOURS" --test-scenes "$TEST_SCENES" \
    --test-missions "$TEST_MISSIONS"
else
  echo "data: $DATA exists" >&2
fi

train() {  # train TASK OUTPUT EVAL_EVERY
  local task=$1 out=$2 every=$3 resume=()
  if [ -f "$out/adapter_config.json" ]; then echo "$task: $out exists" >&2; return; fi
  if compgen -G "$out/checkpoints/checkpoint-*" > /dev/null; then resume=(--resume); fi
  run memlora train sft --data "$DATA/$task" --out "$out" --model "$MODEL" --threads "$THREADS" \
    --max-length 1024 --grad-accum 8 --lr 2e-4 --epochs 1 --max-eval-rows 16 --eval-every "$every" \
    --save-every "$every" --max-minutes "$MINUTES" --seed "$SEED" ${resume[@]+"${resume[@]}"}
}
train writing "$WRITING" 25
train recall "$RECALL" 8

OMP_NUM_THREADS=$THREADS run memlora records eval --data "$DATA" --out "$OUT/eval" --model "$MODEL" --writing-adapter "$WRITING" \
  --recall-adapter "$RECALL"
echo "report: $OUT/eval/report.md (tables for docs/benchmarks.md), $OUT/eval/report.json" >&2
