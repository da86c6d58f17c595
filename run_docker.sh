#!/usr/bin/env bash
# Run the pipeline image on the `local` environment, with this repo's data/ and mlflow.db.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: ./run_docker.sh [pipeline options...]

Runs the pipeline image on the `local` environment. The repo folder is mounted at the same path inside the
container, so data/, mlflow.db and mlruns/ are the host's: `mlflow ui` run on the host shows the runs.
Options go to the pipeline, e.g. ./run_docker.sh --step train_model --estimator random_forest

environment:
  IMAGE              image to run (default: mlflow-pipeline-template:latest; build it with ./build_docker.sh)
  CONTAINER_ENGINE   docker (default) or podman
USAGE
}

case "${1:-}" in -h|--help) usage; exit 0 ;; esac

root="$(cd "$(dirname "$0")" && pwd)"
source "$(dirname "$0")/deploy/container_engine.sh"
image="${IMAGE:-mlflow-pipeline-template:latest}"

echo "running $image on environment local (data and runs in $root)" >&2
exec "$engine" run --rm \
    --user "$(id -u):$(id -g)" \
    -e HOME=/tmp \
    -v "$root:$root" \
    -e "PIPELINE_DATA_ROOT=$root/data" \
    -e "PIPELINE_TRACKING_URI=sqlite:///$root/mlflow.db" \
    "$image" --environment local "$@"
