# The pipeline as an image: `docker run IMAGE --step train_model --environment dev`; and a SageMaker-compatible
# model server: `docker run -p 8080:8080 IMAGE serve` (the model from /opt/ml/model, else the champion).
# Build with ./build_docker.sh (tags the image with the git commit).
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLCONFIGDIR=/tmp/matplotlib

WORKDIR /app

# Dependencies first, in a layer of their own: it is rebuilt only when the lock file changes.
# The user runs the pipeline: no login shell, and the code stays owned by root (read-only to it); data/ is its
# own (the local environment's data root, where `serve` keeps its inference log unless told otherwise).
# The pipeline library comes as the wheel ./build_docker.sh builds into wheels/ (from where uv.lock takes it).
COPY requirements-runtime.lock ./
COPY wheels/ wheels/
RUN pip install --no-deps -r requirements-runtime.lock wheels/*.whl \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin pipeline \
    && install -d -o pipeline /app/data

# The code last: it changes most often.
COPY MLproject conda.yaml docker-entrypoint.sh ./
COPY config/ config/
COPY src/ src/

# Runs are tagged with the commit the image was built from (there is no .git inside).
ARG GIT_COMMIT=unknown
ENV PIPELINE_GIT_COMMIT=${GIT_COMMIT}
LABEL org.opencontainers.image.revision=${GIT_COMMIT} \
      org.opencontainers.image.title="mlflow-pipeline-template"

USER 10001
# SageMaker sends requests to port 8080 (`serve`).
EXPOSE 8080
# `serve` starts the model server, anything else is the pipeline's command line (see docker-entrypoint.sh).
ENTRYPOINT ["./docker-entrypoint.sh"]
CMD ["--help"]
