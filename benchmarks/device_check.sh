#!/usr/bin/env bash
# Issue 27, goal 4, as one prepared command for a lent GPU machine (the `device` tool): the step-time table
# (`step_time.py --device cuda`), the per-method table on both shapes (`method_cost.py --device cuda`), and
# the digits suite's smoke budget trained on CUDA by every method (device-agnostic code, checked where it
# runs). Each part has its own time limit, so that what finished comes back even if a later part runs over.
#
#   here, once per session (4 MB of wheels the GPU image lacks; /.whl/ is ignored by git):
#       bash benchmarks/device_check.sh --wheels
#   there, through the device tool, carrying .whl (about 9 minutes of its 10-minute limit):
#       run(command="bash benchmarks/device_check.sh", carry=[".whl"], timeout_s=600)
#   on a machine of one's own, with snnbench's environment active: bash benchmarks/device_check.sh
#
# Outputs (tables as the scripts print them) go to $OUT if set (the device tool's folder), else to a new
# folder under /tmp. The image's own torch is used (its version is printed with every table); the native CPU
# loops are not built there (SNNBENCH_NATIVE=0): on CUDA every method runs torch's operators.
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=(pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
        typing_extensions==4.16.0 snntorch==1.0.0 spikingjelly==2.0.0 loguru==0.7.3)

if [[ "${1:-}" == "--wheels" ]]; then  # the GPU image's Python is 3.12 on x86-64 (device/KINDS.md)
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  exec python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "${WHEELS[@]}"
fi

out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"
echo "outputs: $out"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 SNNBENCH_NATIVE=0
python="${PYTHON:-python3}" device="${DEVICE:-cuda}"  # DEVICE=cpu tries the script here

part() {  # part NAME SECONDS COMMAND...: run with a limit, output to the terminal and $out/NAME.txt
  local name=$1 limit=$2
  shift 2
  echo "== $name (at most ${limit} s): $*"
  local start=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$out/$name.txt"
  echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s" | tee -a "$out/$name.txt"
}

{ nvidia-smi -L; "$python" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda,
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"; } 2>&1 | tee "$out/device.txt"
part step_time 170 "$python" benchmarks/step_time.py --device "$device"
part method_cost_mlp 110 "$python" benchmarks/method_cost.py --device "$device" --shape mlp
part method_cost_vgg11 170 "$python" benchmarks/method_cost.py --device "$device" --shape vgg11
smoke=$(mktemp -d)  # its records stay there: the device tool brings back 8 files at most
part smoke 80 "$python" -m snnbench run --suite digits-lowT --budget smoke --device "$device" --seeds 0 \
  --timesteps 4 --executor local --no-resume --quiet --out "$smoke"
"$python" - "$smoke" <<'EOF' 2>&1 | tee -a "$out/smoke.txt"
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("*/runs/*.json")):
    record = json.loads(path.read_text())
    error = (record.get("error") or "").strip().splitlines()
    top1 = (record.get("metrics") or {}).get("top1")
    print(record["entry"], "T", record["T"], record["status"], top1, record["environment"]["device"],
          record["environment"]["gpu"], error[-1] if error else "")
EOF
