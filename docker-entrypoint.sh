#!/bin/sh
# The image's entry point.
#   docker run IMAGE serve [serve options]   SageMaker's contract: the scoring server on every interface, port
#       8080 (SAGEMAKER_BIND_TO_PORT), GET /ping and POST /invocations. It serves the model SageMaker unpacked
#       into /opt/ml/model when there is one (PIPELINE_MODEL_DIR moves it), else the model PIPELINE_MODEL_URI
#       names, else the champion on PIPELINE_ENVIRONMENT's tracking server (default: local).
#       MODEL_SERVER_WORKERS and MODEL_SERVER_TIMEOUT set the workers and the request timeout.
#   docker run IMAGE [pipeline options]      the pipeline: docker run IMAGE --step train_model --environment dev
set -eu
cd "$(dirname "$0")"
case "${1:-}" in
    serve)
        shift
        exec python src/main.py serve --environment "${PIPELINE_ENVIRONMENT:-local}" \
            --host "${PIPELINE_SERVE_HOST:-0.0.0.0}" --model-dir "${PIPELINE_MODEL_DIR:-/opt/ml/model}" "$@"
        ;;
    train)
        echo "this image does not run SageMaker training jobs ('train'): run the pipeline instead," \
             "e.g. docker run IMAGE --step train_model --environment dev" >&2
        exit 2
        ;;
esac
exec python src/main.py "$@"
