#!/usr/bin/env bash
# Breaking-change check of the contracts under proto/: compares the working tree (committed or
# not) with the last commit of the base branch (default main; override with
# PROTO_BREAKING_BASE=<branch>) using `buf breaking` and the FILE rules from buf.yaml.
#
# Skips (prints why, exits 0) only when there is nothing to compare against:
#   - the repository has no commits yet;
#   - the repository is a shallow clone (the base commit may be missing: `git fetch --unshallow`);
#   - the base branch has no .proto files under proto/ yet.
# Any other problem (no base branch, buf failure) fails, and so does any breaking change.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE="${PROTO_BREAKING_BASE:-main}"
cd "$ROOT"

skip() {
  echo "proto breaking check skipped: $*" >&2
  exit 0
}

if ! git rev-parse --git-dir >/dev/null 2>&1; then
  echo "proto breaking check: $ROOT is not a git repository" >&2
  exit 2
fi
if ! git rev-parse --verify --quiet HEAD >/dev/null; then
  skip "the repository has no commits yet"
fi
if [[ "$(git rev-parse --is-shallow-repository)" == "true" ]]; then
  skip "shallow clone, the history of '$BASE' may be incomplete (run: git fetch --unshallow)"
fi
if ! git rev-parse --verify --quiet "refs/heads/$BASE^{commit}" >/dev/null; then
  echo "proto breaking check: no local branch '$BASE' to compare against" \
    "(create it, e.g. git fetch origin $BASE:$BASE, or set PROTO_BREAKING_BASE)" >&2
  exit 2
fi
if [[ -z "$(git ls-tree -r --name-only "refs/heads/$BASE" -- proto | grep '\.proto$' || true)" ]]; then
  skip "branch '$BASE' has no .proto files under proto/ yet"
fi

base_commit="$(git rev-parse --short "refs/heads/$BASE")"
echo "proto breaking check: working tree vs $BASE ($base_commit), rules from buf.yaml" >&2
status=0
"$ROOT/tools/buf.sh" breaking --against ".git#branch=$BASE,subdir=proto" || status=$?
if [[ $status -ne 0 ]]; then
  echo "proto breaking check FAILED (buf exit $status): the changes above break contracts on" \
    "$BASE. Add fields/messages instead, or publish a new versioned package (v2)." >&2
  exit "$status"
fi
echo "proto breaking check: no breaking changes" >&2
