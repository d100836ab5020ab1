#!/usr/bin/env bash
# make deploy-check: validate the deployment files without a Docker engine or a cluster.
#
#   1. Dockerfile          BuildKit's Dockerfile checks (`docker build --check` rules), then
#                          project rules (tools/deploy/policy.py)
#   2. docker-compose.yml  `docker compose config` when the compose plugin is installed, else
#                          the Compose Specification's reference loader (compose-go, the library
#                          docker compose uses: schema, interpolation, consistency); then
#                          project rules; the OpenTelemetry collector config's references
#   3. Helm chart          helm lint --strict and helm template, default values and
#                          values-production.yaml; project rules on the rendered manifests
#   4. kubeconform -strict on both renderings, against the oldest and newest Kubernetes the
#                          chart supports, with schemas from PyPI (no GitHub needed)
#
# Tools missing from PATH are built once with Go from the Go module proxy (pinned versions)
# into ${V2V_CACHE_DIR:-~/.cache/v2v}/bin; the Kubernetes schemas are cached next to them.
# Needs: go (any version; newer toolchains are fetched from the proxy when a module needs them),
# uv (the workspace's Python, for PyYAML). Exit status 0 when every check passes.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

HELM_VERSION=v3.22.0
HELM_K8S_MINOR=37  # helm's k8s.io/client-go v0.37 (what the release Makefile stamps in)
KUBECONFORM_VERSION=v0.8.0
# the chart's kubeVersion floor and the newest schemas in tools/deploy/k8s-schemas.txt
K8S_VERSIONS=(1.29.0 1.37.0)
CHART=deploy/helm/v2v
COMPOSE_FILE=docker-compose.yml

CACHE_DIR=${V2V_CACHE_DIR:-$HOME/.cache/v2v}
BIN_DIR=$CACHE_DIR/bin
START=$SECONDS
WORK=$(mktemp -d "${TMPDIR:-/tmp}/v2v-deploy-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

step() { printf '\n==> [%3ss] %s\n' "$((SECONDS - START))" "$*"; }
info() { printf '    %s\n' "$*"; }
fail() {
  printf '\ndeploy-check: FAILED: %s\n' "$*" >&2
  exit 1
}
run() { # run a command, print it; on failure name the step
  info "\$ $*"
  "$@" || fail "$STEP failed (command above)"
}
hash_of() { cat "$@" | sha256sum | cut -c1-12; }

export CGO_ENABLED=0
# a module may need a newer Go than the installed one: fetch it from the proxy unless told not to
export GOTOOLCHAIN=${GOTOOLCHAIN:-auto}
# helm never touches the user's helm config, repositories or a cluster here
export HELM_CONFIG_HOME=$WORK/helm/config HELM_CACHE_HOME=$WORK/helm/cache
export HELM_DATA_HOME=$WORK/helm/data KUBECONFIG=$WORK/no-kubeconfig

command -v go >/dev/null ||
  fail "go is not installed: the checks build their tools from the Go module proxy
  (Debian: apt-get install golang-go, or https://go.dev/dl/)"
command -v uv >/dev/null || fail "uv is not installed (python3 -m pip install uv==0.13.9)"
PY=(uv run --frozen python)
mkdir -p "$BIN_DIR"

# go_install NAME PACKAGE VERSION [LDFLAGS]: $BIN_DIR/NAME-VERSION, built once.
go_install() {
  local name=$1 package=$2 version=$3 ldflags="-s -w ${4:-}"
  local target=$BIN_DIR/$name-$version
  if [[ ! -x $target ]]; then
    info "building $name $version with go install (once; cached in $BIN_DIR)" >&2
    local gobin=$WORK/gobin-$name
    GOBIN=$gobin go install -trimpath -ldflags="$ldflags" "$package@$version" ||
      fail "go install $package@$version failed (is the Go module proxy reachable?)"
    mv "$gobin/$(basename "$package")" "$target"
  fi
  printf '%s' "$target"
}

# go_build NAME: the module in tools/deploy/NAME (pinned by its go.mod/go.sum), built once per
# source hash.
go_build() {
  local name=$1 dir=$ROOT/tools/deploy/$1
  local target
  target=$BIN_DIR/$name-$(hash_of "$dir/go.mod" "$dir/go.sum" "$dir"/*.go)
  if [[ ! -x $target ]]; then
    info "building $name from tools/deploy/$name (once; cached in $BIN_DIR)" >&2
    (cd "$dir" && go build -mod=readonly -trimpath -ldflags="-s -w" -o "$target.tmp" .) ||
      fail "go build tools/deploy/$name failed (is the Go module proxy reachable?)"
    mv "$target.tmp" "$target"
  fi
  printf '%s' "$target"
}

# ---------------------------------------------------------------------------------------------
STEP="Dockerfile lint"
step "$STEP"
DOCKERFILE_LINT=$(go_build dockerfile-lint)
run "$DOCKERFILE_LINT" -build-arg SERVICE=intake Dockerfile
run "${PY[@]}" tools/deploy/policy.py dockerfile Dockerfile

# ---------------------------------------------------------------------------------------------
STEP="docker-compose.yml"
step "$STEP"
if docker compose version >/dev/null 2>&1; then
  info "using $(docker compose version)"
  run docker compose -f "$COMPOSE_FILE" config -q
  docker compose -f "$COMPOSE_FILE" config --format json >"$WORK/compose.json" ||
    fail "$STEP: docker compose config --format json failed"
else
  info "no docker compose plugin: the Compose Specification loader (compose-go) instead"
  COMPOSE_CONFIG=$(go_build compose-config)
  info "\$ compose-config $COMPOSE_FILE"
  "$COMPOSE_CONFIG" "$COMPOSE_FILE" >"$WORK/compose.json" || fail "$STEP is not valid (above)"
fi
run "${PY[@]}" tools/deploy/policy.py compose "$WORK/compose.json"
run "${PY[@]}" tools/deploy/policy.py otel deploy/compose/otel-collector.yaml
if command -v shellcheck >/dev/null; then
  run shellcheck deploy/compose/postgres-init.sh tools/deploy_check.sh
else
  info "shellcheck not installed: shell scripts not linted"
fi

# ---------------------------------------------------------------------------------------------
STEP="Helm chart"
step "$STEP"
if command -v helm >/dev/null; then
  HELM=$(command -v helm)
else
  HELM=$(go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION
     -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1
     -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR
     -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1
     -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR")
fi
info "helm $("$HELM" version --template '{{ .Version }}')"
PRODUCTION=(-f "$CHART/values-production.yaml")
run "$HELM" lint --strict "$CHART"
run "$HELM" lint --strict "$CHART" "${PRODUCTION[@]}"
render() { # render NAME [helm args...]
  local name=$1
  shift
  info "\$ helm template v2v $CHART --namespace v2v $* > $name.yaml"
  "$HELM" template v2v "$CHART" --namespace v2v --kube-version "${K8S_VERSIONS[-1]}" "$@" \
    >"$WORK/$name.yaml" || fail "$STEP: helm template ($name values) failed"
}
render default
render production "${PRODUCTION[@]}"
if "$HELM" template v2v "$CHART" --kube-version "${K8S_VERSIONS[-1]}" --set intake.bogus=1 >/dev/null 2>&1; then
  fail "$STEP: values.schema.json accepted an unknown key (intake.bogus)"
fi
info "values.schema.json refuses unknown keys"
run "${PY[@]}" tools/deploy/policy.py helm "$WORK/default.yaml" --replicas 1 --replication-factor 1
run "${PY[@]}" tools/deploy/policy.py helm "$WORK/production.yaml" --replicas 3 \
  --replication-factor 3

# ---------------------------------------------------------------------------------------------
STEP="kubeconform"
step "$STEP"
if command -v kubeconform >/dev/null; then
  KUBECONFORM=$(command -v kubeconform)
else
  KUBECONFORM=$(go_install kubeconform github.com/yannh/kubeconform/cmd/kubeconform \
    "$KUBECONFORM_VERSION" "-X main.version=$KUBECONFORM_VERSION")
fi
info "kubeconform $("$KUBECONFORM" -v)"
SCHEMAS=$CACHE_DIR/k8s-schemas/$(hash_of tools/deploy/k8s-schemas.txt tools/deploy/k8s_schemas.py)
for version in "${K8S_VERSIONS[@]}"; do
  if [[ ! -f $SCHEMAS/v$version-standalone-strict/deployment-apps-v1.json ]]; then
    if [[ ! -d $WORK/kubernetes-validate ]]; then
      info "fetching the Kubernetes schemas from PyPI (tools/deploy/k8s-schemas.txt; once)"
      uv pip install --quiet --no-deps --require-hashes --target "$WORK/kubernetes-validate" \
        -r tools/deploy/k8s-schemas.txt ||
        fail "$STEP: could not fetch kubernetes-validate from PyPI"
    fi
    "${PY[@]}" tools/deploy/k8s_schemas.py "$WORK/kubernetes-validate" "$version" "$SCHEMAS" ||
      fail "$STEP: could not prepare the Kubernetes $version schemas"
  fi
  # no -ignore-missing-schemas: a kind without a schema is an error
  run "$KUBECONFORM" -strict -summary -kubernetes-version "$version" \
    -schema-location "$SCHEMAS/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    "$WORK/default.yaml" "$WORK/production.yaml"
done
for stale in "$CACHE_DIR"/k8s-schemas/*; do # schemas from an older k8s-schemas.txt
  [[ $stale == "$SCHEMAS" ]] || rm -rf "$stale"
done

step "deploy-check passed in $((SECONDS - START))s"
