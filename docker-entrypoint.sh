#!/bin/sh
# The image's entry point.
#   docker run IMAGE serve [serve options]   SageMaker's contract: the scoring server on every interface, port
#       8080 (SAGEMAKER_BIND_TO_PORT), GET /ping and POST /invocations. It serves the model SageMaker unpacked
#       into /opt/ml/model when there is one (PIPELINE_MODEL_DIR moves it), else the model PIPELINE_MODEL_URI
#       names, else the champion on PIPELINE_ENVIRONMENT's tracking server (default: local).
#       MODEL_SERVER_WORKERS and MODEL_SERVER_TIMEOUT set the workers and the request timeout.
#   docker run IMAGE train [options]         SageMaker's training contract (`sagemaker-train`): hyperparameters from
#       /opt/ml/input/config/hyperparameters.json, the raw data from /opt/ml/input/data/training/, the training
#       steps on PIPELINE_ENVIRONMENT (default: local, runs kept in /opt/ml/output/data/mlflow.db), the model
#       into /opt/ml/model, the reason of a failure in /opt/ml/output/failure (PIPELINE_SAGEMAKER_ROOT moves /opt/ml).
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
        shift
        exec python src/main.py sagemaker-train --environment "${PIPELINE_ENVIRONMENT:-local}" "$@"
        ;;
esac
exec python src/main.py "$@"
