#!/usr/bin/env bash
# vLLM serving memlora's Qwen adapters on one base model (docs/serving.md, "vLLM"): export each
# adapter as a plain PEFT LoRA, start `vllm serve --enable-lora` with one --lora-modules entry per
# adapter, ask each for a tool call through the OpenAI API, and score the first one with
# `memlora eval --endpoint` on the example episodes. Without a CUDA GPU or without vLLM it says
# so and exits 0.
#
#   bash scripts/vllm_check.sh            # PORT=8001 OUT=runs/vllm-check by default
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-8001}
OUT=${OUT:-runs/vllm-check}
MODEL=qwen2.5-coder-0.5b
EPISODES=${EPISODES:-../shared/spec/example.jsonl}

if ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "vllm_check: skipped: no CUDA GPU on this machine (vLLM serves LoRA adapters on a GPU)"
  exit 0
fi
if ! python -c "import vllm" 2>/dev/null; then
  echo "vllm_check: skipped: vllm is not installed here (pip install vllm on the GPU machine)"
  exit 0
fi

mkdir -p "$OUT/adapters"
BASE=$(python -c "from memlora.models.loading import resolve_model; print(resolve_model('$MODEL'))")
modules=()
names=()
for adapter in adapters/"$MODEL"-*/; do
  name=$(basename "$adapter")
  short=${name#"$MODEL"-}
  python -m memlora.cli export-adapter "$adapter" --format peft --model "$MODEL" --out "$OUT/adapters/$name"
  modules+=("$short=$OUT/adapters/$name")
  names+=("$short")
done

python -m vllm.entrypoints.openai.api_server --model "$BASE" --served-model-name "$MODEL" \
  --enable-lora --max-lora-rank 16 --max-loras "${#modules[@]}" --lora-modules "${modules[@]}" \
  --enable-auto-tool-choice --tool-call-parser hermes --host 127.0.0.1 --port "$PORT" > "$OUT/vllm.log" 2>&1 &
VLLM=$!
trap 'kill $VLLM 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  if python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/health', timeout=2)" 2>/dev/null; then
    break
  fi
  if ! kill -0 $VLLM 2>/dev/null; then echo "vllm_check: vLLM exited; see $OUT/vllm.log"; exit 1; fi
  sleep 2
done

python - "$PORT" "${names[@]}" <<'PY'
import json, sys
from openai import OpenAI
from memlora.agent.prompt import session_opening
from memlora.agent.protocol import model_tools
port, names = sys.argv[1], sys.argv[2:]
client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none")
print("vLLM models:", [m.id for m in client.models.list()])
messages = [{"role": m["role"], "content": m["content"]} for m in session_opening({"entities": [], "relations": []})
            if m["role"] == "system"] + [{"role": "user", "content": "Hi, I'm Dana Reyes and I teach chemistry."}]
for name in names:
    reply = client.chat.completions.create(model=name, messages=messages, tools=model_tools(), temperature=0,
                                           max_tokens=256)
    calls = [(c.function.name, json.loads(c.function.arguments)) for c in reply.choices[0].message.tool_calls or []]
    print(f"{name}: finish {reply.choices[0].finish_reason}, calls {calls}")
PY

if [ -f "$EPISODES" ]; then
  python -m memlora.cli eval "$EPISODES" --endpoint "http://127.0.0.1:$PORT/v1" --endpoint-model "${names[0]}" \
    --quiet --out "$OUT/eval-${names[0]}"
fi
