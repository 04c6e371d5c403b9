#!/usr/bin/env bash
# A short, capped `effnb train` on a CUDA GPU: prints images/s, seconds per epoch and accuracy.
#
#   tools/gpu_check.sh [DATA_DIR]        (or DATA_DIR=... ; also PROFILE, EPOCHS, PHI, NPROC, CAP_S)
#
# PROFILE (default cpu: every image, cache side 200) sets the data and recipe; EPOCHS the budget in equivalent
# epochs (default 1); NPROC > 1 trains under torchrun with one rank per GPU (nccl). The training is killed after
# CAP_S seconds (default 480). Fails at once, saying why, when there is no GPU, no CUDA torch or no data.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${PROFILE:-cpu}
EPOCHS=${EPOCHS:-1}
PHI=${PHI:-0}
NPROC=${NPROC:-1}
CAP_S=${CAP_S:-480}
DATA_DIR=${1:-${DATA_DIR:-${EFFNB_DATA_DIR:-}}}
for candidate in shared/data/PetImages ../shared/data/PetImages; do
    if [ -z "$DATA_DIR" ] && [ -d "$candidate" ]; then DATA_DIR=$candidate; fi
done

fail() { echo "gpu_check: $*" >&2; exit 2; }

command -v nvidia-smi >/dev/null || fail "nvidia-smi not found: this machine has no NVIDIA GPU (or no driver)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || fail "nvidia-smi sees no GPU"
[ -n "$DATA_DIR" ] && [ -d "$DATA_DIR" ] || fail "no images: pass DATA_DIR (class-per-folder PetImages)"

# the project's venv when it has a CUDA torch, else one that sees the system's torch, else `make install`
PY=.venv/bin/python
if ! { [ -x "$PY" ] && "$PY" -c 'import torch, effnb; assert torch.cuda.is_available()' 2>/dev/null; }; then
    if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
        python3 -m venv --system-site-packages .venv-gpu
        PY=.venv-gpu/bin/python
        "$PY" -m pip install -q --no-deps -e . || fail "cannot install effnb into .venv-gpu"
        "$PY" -m pip install -q -e . || echo "gpu_check: some dependencies could not be installed" >&2
    else
        make install || fail "cannot create .venv (make install)"
    fi
fi
"$PY" -c 'import torch; assert torch.cuda.is_available(), "torch.cuda.is_available() is False"
print("torch", torch.__version__, "CUDA", torch.version.cuda, "on", torch.cuda.get_device_name(0))' \
    || fail "this torch cannot use the GPU (torch.cuda.is_available() is False)"

ARTIFACTS=$(mktemp -d /tmp/gpu_check.XXXXXX)
OUT=$ARTIFACTS/train.json
TRAIN=(-m effnb.cli.commands train)
if [ "$NPROC" -gt 1 ]; then TRAIN=(-m torch.distributed.run --standalone --nproc-per-node "$NPROC" -m effnb.cli.commands train); fi
echo "gpu_check: effnb train --profile $PROFILE --epochs $EPOCHS --phi $PHI on $NPROC GPU(s), capped at ${CAP_S} s"
start=$(date +%s)
set +e
timeout "$CAP_S" "$PY" "${TRAIN[@]}" --profile "$PROFILE" --epochs "$EPOCHS" --phi "$PHI" --device cuda \
    --data-dir "$DATA_DIR" --artifacts-dir "$ARTIFACTS" >"$OUT"
rc=$?
set -e
echo "gpu_check: exit code $rc after $(( $(date +%s) - start )) s (124: hit the ${CAP_S} s cap)"
[ "$rc" -eq 0 ] || exit "$rc"
"$PY" - "$OUT" <<'EOF'
import json, pathlib, sys
out = json.loads(pathlib.Path(sys.argv[1]).read_text())
result = json.loads((pathlib.Path(out["checkpoint"]).parent / "result.json").read_text())
for row in result["history"]:
    print(f"epoch {row['epoch']}: {row['img_per_s']:.0f} img/s, {row['seconds']:.1f} s, train acc {row['train_acc']:.3f}"
          + (f", val acc {row['val_acc']:.3f}" if "val_acc" in row else ""))
print(f"eval accuracy {out['eval']['accuracy']:.4f} on {result['n_eval']} images" if out.get("eval") else "no eval")
EOF
# the GPU-resident pipeline (cache on the device, crops there) against today's host-side batches copied over
"$PY" - "$PROFILE" "$DATA_DIR" "$ARTIFACTS" <<'EOF'
import sys
from effnb.cli.bench import device_pipeline_rates
from effnb.study.context import prepare_study
from effnb.train.feed import Feed
study = prepare_study(*sys.argv[1:4])
feed = Feed(study.cache, study.splits["train"][:64 * 40], 128, batch_size=64)
rates = device_pipeline_rates(feed, "cuda", 40)
host = rates["host, copied to the device"]
for name, rate in rates.items():
    print(f"data pipeline @128px, batch 64, {name}: {rate:.0f} img/s ({rate / host:.2f}x host)")
EOF
