#!/usr/bin/env bash
# Runs the benchmarks; each writes its JSON under benchmarks/results/ (benchmarks/README.md).
#   bash scripts/bench.sh                    # all of them, in this order
#   bash scripts/bench.sh chase serving      # only the named ones: chase|orchestration|serving|triton|ui|fieldcases|login
# Extra flags for the CHASE_DB1 few-shot run go in CHASE_FLAGS, e.g. CHASE_FLAGS="--minutes 5 --marks 1,3,5".
set -euo pipefail
cd "$(dirname "$0")/.."

ALL=(chase orchestration serving triton ui fieldcases login)
names=("$@")
[ ${#names[@]} -eq 0 ] && names=("${ALL[@]}")
for name in "${names[@]}"; do
  case "$name" in
    chase | orchestration | serving | triton | ui | fieldcases | login) ;;
    *) echo "bench.sh: unknown benchmark '$name' (one of: ${ALL[*]})" >&2; exit 2 ;;
  esac
done

for name in "${names[@]}"; do
  echo "==> benchmark: $name"
  case "$name" in
    # shellcheck disable=SC2086 # CHASE_FLAGS is a list of flags
    chase) .venv/bin/python benchmarks/chase_fewshot.py ${CHASE_FLAGS:-} ;;
    orchestration) npx tsx benchmarks/orchestration.ts ;;
    serving) npx tsx benchmarks/serving.ts ;;
    triton) .venv/bin/python benchmarks/serving_tritonclient.py ;;
    ui) npx tsx benchmarks/ui_stroke.ts ;;
    fieldcases) npx tsx benchmarks/fieldcases.ts ;;
    login) npx tsx benchmarks/login_timing.ts ;;
  esac
done
