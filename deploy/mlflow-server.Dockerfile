# The team tracking server: MLflow on PostgreSQL, artifacts proxied to S3 (or MinIO).
FROM python:3.11.14-slim-bookworm
# Versions from the project's uv.lock (tests/test_dependencies.py checks), so server and clients speak the same MLflow.
RUN pip install --no-cache-dir mlflow==3.17.1 psycopg2-binary==2.9.13 boto3==1.43.117 \
    && useradd --create-home --uid 10001 mlflow
USER 10001
EXPOSE 5000
ENTRYPOINT ["mlflow", "server"]
