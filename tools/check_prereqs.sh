#!/usr/bin/env bash
# Names exactly what is missing on this machine for `make setup` / `make test`, and how to get it.
# Usage: tools/check_prereqs.sh [--need-jvm]   (exit 2 when something required is missing)
set -uo pipefail

missing=()
hint() { missing+=("$1"); }

if ! command -v python3.11 >/dev/null 2>&1 && ! python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  hint "Python 3.11 (Debian: apt-get install python3.11 python3.11-venv; or pyenv install 3.11)"
fi
if ! command -v uv >/dev/null 2>&1 && [[ ! -x "$(dirname "$0")/../.v2v/uv/bin/uv" ]]; then
  # make installs the pinned uv itself (tools/ensure_uv.sh) with python3's venv module or pip
  if ! python3 -c 'import ensurepip' 2>/dev/null && ! python3 -m pip --version >/dev/null 2>&1; then
    hint "uv (python3 -m pip install uv==0.13.9), or python3's venv module so that make installs it (apt-get install python3.11-venv)"
  fi
fi
docker_ok=0
if command -v docker >/dev/null 2>&1 && timeout 5 docker info >/dev/null 2>&1; then docker_ok=1; fi
if [[ -z "${V2V_KAFKA_BOOTSTRAP:-}" && $docker_ok -eq 0 ]]; then
  java_major=0
  if command -v java >/dev/null 2>&1; then
    java_major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
  fi
  if [[ -z "$java_major" || "$java_major" -lt 17 ]]; then
    hint "Java 17+ for the local Kafka broker (apt-get install openjdk-17-jre-headless), or a Docker engine, or set V2V_KAFKA_BOOTSTRAP"
  fi
  if ! command -v mvn >/dev/null 2>&1; then
    hint "Maven to fetch Kafka's jars from Maven Central (apt-get install maven), or a Docker engine, or set V2V_KAFKA_BOOTSTRAP"
  fi
fi
if ! command -v npm >/dev/null 2>&1; then
  hint "Node.js + npm for the buf CLI used by 'make lint' (apt-get install nodejs npm)"
fi

if ((${#missing[@]})); then
  echo "missing prerequisites:" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
  exit 2
fi
echo "prerequisites: ok"
