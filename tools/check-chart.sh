#!/usr/bin/env bash
# check-chart.sh - offline checks of the Kubernetes deliverables (what `make chart` runs).
#
#   1. charts/lorag/files/ holds exact copies of deploy/serve.yaml and the observability files
#   2. tools/k8s/validate-chart.sh on charts/lorag: helm lint --strict and helm template for the
#      defaults and every ci/*.yaml, CRD schemas (RayService, RayJob, ServiceMonitor,
#      PrometheusRule), built-in kinds, checkov, yamllint
#   3. the GRPCRoute of the Gateway API against deploy/crd-schemas/ (not in the toolkit's set)
#   4. hadolint deploy/Dockerfile
#   5. promtool check rules deploy/prometheus/lorag-rules.yaml (promtool from the Debian package,
#      downloaded with `apt-get download` into the tool cache; skipped where apt is missing)
#   6. the Grafana dashboard parses as JSON and yamllint on the deploy/ YAML files
# Env: K8S_TOOLS_DIR (default ~/.cache/k8s-tools), as for tools/k8s/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TOOLS_DIR="${K8S_TOOLS_DIR:-$HOME/.cache/k8s-tools}"
B="$TOOLS_DIR/bin"
CHART=charts/lorag
FAILED=()
step() { echo; echo "==> $*"; }
fail() { echo "FAIL: $*"; FAILED+=("$*"); }

tools/k8s/install-tools.sh --quiet

step "chart copies of deploy/ files (make chart-sync updates them)"
for pair in serve.yaml:deploy/serve.yaml \
            lorag-dashboard.json:deploy/grafana/lorag-dashboard.json \
            lorag-rules.yaml:deploy/prometheus/lorag-rules.yaml; do
  copy="$CHART/files/${pair%%:*}"; src="${pair#*:}"
  if cmp -s "$src" "$copy"; then echo "same: $copy = $src"; else fail "$copy differs from $src: run make chart-sync"; fi
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/check-chart.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

step "tools/k8s/validate-chart.sh $CHART"
if ! K8S_ALLOW_KINDS="gateway.networking.k8s.io/v1/GRPCRoute" KEEP_RENDERED="$WORK/rendered" \
    tools/k8s/validate-chart.sh "$CHART"; then
  fail "validate-chart.sh"
fi

step "Gateway API kinds against deploy/crd-schemas/"
mkdir -p "$WORK/schemas"
cp tools/k8s/schemas/*.json deploy/crd-schemas/*.json "$WORK/schemas/"
shopt -s nullglob
routes=()
for f in "$WORK"/rendered/*.yaml; do grep -q '^kind: GRPCRoute' "$f" && routes+=("$f"); done
shopt -u nullglob
if [[ ${#routes[@]} -eq 0 ]]; then
  fail "no values set renders a GRPCRoute (ci/monitoring-values.yaml should)"
elif ! "$B/python" tools/k8s/crd-validate.py --schemas "$WORK/schemas" --builtin-out "$WORK/builtin.yaml" "${routes[@]}"; then
  fail "crd-validate (GRPCRoute)"
fi

step "hadolint deploy/Dockerfile"
if "$B/hadolint" --no-color deploy/Dockerfile; then echo "deploy/Dockerfile: clean"; else fail "hadolint"; fi

step "promtool check rules deploy/prometheus/lorag-rules.yaml"
PROMTOOL="$TOOLS_DIR/promtool/usr/bin/promtool"
if [[ ! -x $PROMTOOL ]] && command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
  (mkdir -p "$WORK/deb" && cd "$WORK/deb" && apt-get download prometheus >/dev/null 2>&1 &&
    dpkg-deb -x prometheus_*.deb "$TOOLS_DIR/promtool") || echo "could not download the prometheus package"
fi
if [[ -x $PROMTOOL ]]; then
  "$PROMTOOL" check rules deploy/prometheus/lorag-rules.yaml || fail "promtool check rules"
else
  echo "SKIP: promtool unavailable (no apt-get); the rules file is still checked as YAML and as a PrometheusRule"
fi

step "deploy/ files: dashboard JSON, yamllint"
"$B/python" -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["panels"], "no panels"; print(sys.argv[1], "parses:", len(d["panels"]), "panels")' \
  deploy/grafana/lorag-dashboard.json || fail "dashboard JSON"
"$B/yamllint" -c "$CHART/.yamllint" -f parsable deploy/serve.yaml deploy/prometheus/lorag-rules.yaml || fail "yamllint deploy/"

echo
if [[ ${#FAILED[@]} -gt 0 ]]; then
  echo "check-chart: FAILED: ${#FAILED[@]} step(s):"
  printf '  - %s\n' "${FAILED[@]}"
  exit 1
fi
echo "check-chart: OK"
