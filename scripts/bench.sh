#!/usr/bin/env bash
# Runs the benchmarks; each writes its JSON under benchmarks/results/ (benchmarks/README.md).
#   bash scripts/bench.sh                    # all of them, in this order
#   bash scripts/bench.sh chase serving      # only the named ones: chase|inference|highres|orchestration|serving|triton|ui|fieldcases|login|correction|continuous|quality|gpu
# Extra flags for the CHASE_DB1 few-shot run go in CHASE_FLAGS, e.g. CHASE_FLAGS="--minutes 5 --marks 1,3,5".
set -euo pipefail
cd "$(dirname "$0")/.."

# gpu needs a CUDA GPU and is not part of "all".
ALL=(chase inference highres orchestration serving triton ui fieldcases login correction continuous quality)
names=("$@")
[ ${#names[@]} -eq 0 ] && names=("${ALL[@]}")
for name in "${names[@]}"; do
  case "$name" in
    chase | inference | highres | orchestration | serving | triton | ui | fieldcases | login | correction | continuous | quality | gpu) ;;
    *) echo "bench.sh: unknown benchmark '$name' (one of: ${ALL[*]} gpu)" >&2; exit 2 ;;
  esac
done

for name in "${names[@]}"; do
  echo "==> benchmark: $name"
  case "$name" in
    # shellcheck disable=SC2086 # CHASE_FLAGS is a list of flags
    chase) .venv/bin/python benchmarks/chase_fewshot.py ${CHASE_FLAGS:-} ;;
    inference) .venv/bin/python benchmarks/inference.py ;;
    highres) npx tsx benchmarks/serving_highres.ts ;;
    gpu) .venv/bin/python benchmarks/gpu_check.py ;;
    orchestration) npx tsx benchmarks/orchestration.ts ;;
    serving) npx tsx benchmarks/serving.ts ;;
    triton) .venv/bin/python benchmarks/serving_tritonclient.py ;;
    ui) npx tsx benchmarks/ui_stroke.ts ;;
    fieldcases) npx tsx benchmarks/fieldcases.ts ;;
    login) npx tsx benchmarks/login_timing.ts ;;
    correction)
      # The round-0 model's predictions of the 22 test images (six seeds, the campaign's 5 minutes).
      run="runs/bench-round0"
      [ -f "$run/predictions/Image_14R_prob.png" ] || .venv/bin/medloop-ml demo-chase --minutes 5 --out "$run"
      npx tsx benchmarks/correction_effort.ts --predictions "$run/predictions" ;;
    # shellcheck disable=SC2086 # CONTINUOUS_FLAGS is a list of flags
    continuous) npx tsx benchmarks/continuous_learning.ts ${CONTINUOUS_FLAGS:-} ;;
    quality)
      # A simulated CHASE_DB1 campaign with two doctors per seed (the two observers' masks),
      # two honeypots per round and a simulated reviewer; its report is the figure record.
      npx medloop simulate chase --annotators 2 --honeypots 2 --review --rounds 3 --k 2 --train-minutes 2 --out runs/bench-quality
      cp runs/bench-quality/campaign-report.json benchmarks/results/quality_control_chase.json ;;
  esac
done
