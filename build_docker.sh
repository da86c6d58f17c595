#!/usr/bin/env bash
# Build the pipeline image, tagged with the git commit (and :latest).
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: ./build_docker.sh [extra build options...]

Builds the pipeline image from ./Dockerfile and tags it IMAGE:<git commit> and IMAGE:latest.

environment:
  IMAGE_NAME         image name (default: mlflow-pipeline-template)
  CONTAINER_ENGINE   docker (default) or podman
extra options go to `docker build`, e.g. ./build_docker.sh --no-cache
USAGE
}

case "${1:-}" in -h|--help) usage; exit 0 ;; esac

cd "$(dirname "$0")"
source deploy/container_engine.sh

image="${IMAGE_NAME:-mlflow-pipeline-template}"
commit="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
tag="$commit"
if [ "$commit" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    tag="$commit-dirty"   # uncommitted changes: never reuse the clean commit's tag
fi

# The pipeline library as a wheel for the image: from this repository's packages/mlsteps, or from the git source
# (and commit) the project pins; requirements.lock names it as uv.lock does.
spec="$(grep -E '^(-e )?(\./packages/mlsteps|mlsteps @ )' requirements.lock | head -n 1 | sed 's/^-e //')"
if [ -z "$spec" ]; then
    echo "build_docker.sh: requirements.lock names no mlsteps: run \`make lock\`" >&2
    exit 1
fi
rm -rf wheels
"${PYTHON:-python3}" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir wheels "$spec"

"$engine" build --build-arg "GIT_COMMIT=$tag" -t "$image:$tag" -t "$image:latest" "$@" .
echo "built $image:$tag (also tagged $image:latest)"
