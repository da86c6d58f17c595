#!/usr/bin/env bash
# Run the pipeline image against AWS (dev by default, or prd), with the caller's AWS credentials.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: ./run_docker_cloud.sh [dev|prd] [pipeline options...]

Runs the pipeline image on the dev (default) or prd environment: data in S3, runs on the tracking server of
config/<environment>.yaml. Options after the environment go to the pipeline, e.g.
  ./run_docker_cloud.sh dev --step train_model
  ./run_docker_cloud.sh prd --step predict --model-uri models:/breast-cancer-prd@champion

credentials (never baked into the image, never on the command line):
  AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY[/AWS_SESSION_TOKEN]   passed by name from your environment, or
  AWS_PROFILE                                                   ~/.aws is mounted read-only, or
  PIPELINE_USE_INSTANCE_ROLE=1                                  rely on the host's instance or task role
passed through when set: AWS_REGION, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL, MLFLOW_TRACKING_TOKEN,
  PIPELINE_TRACKING_URI, PIPELINE_DATA_ROOT, PIPELINE_BUCKET, PIPELINE_EXPERIMENT

environment:
  IMAGE              image to run (default: mlflow-pipeline-template:latest)
  CONTAINER_ENGINE   docker (default) or podman
USAGE
}

case "${1:-}" in -h|--help) usage; exit 0 ;; esac

environment=dev
case "${1:-}" in
    dev|prd) environment="$1"; shift ;;
    local) echo "error: use ./run_docker.sh for the local environment" >&2; exit 2 ;;
esac

source "$(dirname "$0")/deploy/container_engine.sh"
image="${IMAGE:-mlflow-pipeline-template:latest}"

args=(run --rm -e HOME=/home/pipeline)
if [ -n "${AWS_ACCESS_KEY_ID:-}" ] && [ -n "${AWS_SECRET_ACCESS_KEY:-}" ]; then
    # -e NAME (no value): the engine copies the value from this environment; it never appears in `ps`.
    args+=(-e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY)
    [ -n "${AWS_SESSION_TOKEN:-}" ] && args+=(-e AWS_SESSION_TOKEN)
elif [ -n "${AWS_PROFILE:-}" ]; then
    if [ ! -d "$HOME/.aws" ]; then
        echo "error: AWS_PROFILE=$AWS_PROFILE is set but $HOME/.aws does not exist: run 'aws configure --profile $AWS_PROFILE'" >&2
        exit 1
    fi
    args+=(-v "$HOME/.aws:/home/pipeline/.aws:ro" -e AWS_PROFILE)
elif [ "${PIPELINE_USE_INSTANCE_ROLE:-}" != 1 ]; then
    echo "error: no AWS credentials: export AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" >&2
    echo "       (or PIPELINE_USE_INSTANCE_ROLE=1 to use the instance or task role); see --help" >&2
    exit 1
fi
for name in AWS_REGION AWS_DEFAULT_REGION AWS_ENDPOINT_URL MLFLOW_TRACKING_TOKEN \
            PIPELINE_TRACKING_URI PIPELINE_DATA_ROOT PIPELINE_BUCKET PIPELINE_EXPERIMENT; do
    if [ -n "${!name:-}" ]; then args+=(-e "$name"); fi
done

echo "running $image on environment $environment" >&2
exec "$engine" "${args[@]}" "$image" --environment "$environment" "$@"
