#!/usr/bin/env bash
# Makes sure make has a uv: the one on the PATH (or $UV) is used as it is; when there is none,
# the pinned uv (UV_VERSION in the Makefile) is installed from PyPI with python3's own tools
# into .v2v/uv: a virtualenv of its own (python3 -m venv + pip), or `pip install --user` where
# the venv module is missing; either way linked as .v2v/uv/bin/uv, which the Makefile puts
# first on its PATH. Nothing is installed system-wide.
#
# Usage: tools/ensure_uv.sh          (prints nothing when uv is there; progress to stderr)
# Environment: UV (the uv command, default uv), UV_VERSION (default: the Makefile's pin),
# V2V_UV_HOME (default <repo>/.v2v/uv).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UV_VERSION="${UV_VERSION:-$(sed -n 's/^UV_VERSION *:*= *//p' "$REPO/Makefile" | head -1)}"
UV_HOME="${V2V_UV_HOME:-$REPO/.v2v/uv}"
UV_CMD="${UV:-uv}"

log() { printf 'ensure_uv: %s\n' "$*" >&2; }
die() { log "$*"; exit 2; }

[[ -n "$UV_VERSION" ]] || die "no UV_VERSION (expected 'UV_VERSION := x.y.z' in the Makefile)"

if command -v "$UV_CMD" >/dev/null 2>&1; then
  found="$("$UV_CMD" --version 2>/dev/null | awk '{print $2}')"
  if [[ "$found" != "$UV_VERSION" ]]; then
    log "using $(command -v "$UV_CMD") $found (the pinned version is $UV_VERSION)"
  fi
  exit 0
fi
if [[ -x "$UV_HOME/bin/uv" ]] && [[ "$("$UV_HOME/bin/uv" --version | awk '{print $2}')" == "$UV_VERSION" ]]; then
  exit 0  # installed before; the caller's PATH does not name it
fi

python=""
for candidate in python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
done
[[ -n "$python" ]] || die "uv is not installed and there is no python3 to install it with
  (Debian: apt-get install python3.11 python3.11-venv)"

log "uv is not installed: installing uv==$UV_VERSION from PyPI into ${UV_HOME#"$REPO"/}"
rm -rf "$UV_HOME"
mkdir -p "$UV_HOME/bin"
pip_quiet=(--quiet --disable-pip-version-check --no-input)
if "$python" -m venv "$UV_HOME/venv" >/dev/null 2>&1 &&
    "$UV_HOME/venv/bin/python" -m pip install "${pip_quiet[@]}" "uv==$UV_VERSION" >&2; then
  ln -s ../venv/bin/uv "$UV_HOME/bin/uv"
else
  rm -rf "$UV_HOME/venv"
  log "no usable venv module ($python -m venv): trying pip install --user"
  if ! "$python" -m pip install "${pip_quiet[@]}" --user "uv==$UV_VERSION" >&2; then
    # a distribution's python marked externally managed (PEP 668) refuses --user installs
    "$python" -m pip install "${pip_quiet[@]}" --user --break-system-packages "uv==$UV_VERSION" >&2 ||
      die "could not install uv==$UV_VERSION with $python (install python3-venv, or run:
  $python -m pip install uv==$UV_VERSION)"
  fi
  ln -s "$("$python" -m site --user-base)/bin/uv" "$UV_HOME/bin/uv"
fi
"$UV_HOME/bin/uv" --version >/dev/null || die "the installed uv does not run ($UV_HOME/bin/uv)"
log "installed $("$UV_HOME/bin/uv" --version) as ${UV_HOME#"$REPO"/}/bin/uv (make puts it on its PATH)"
