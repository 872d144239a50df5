# The hub's processes (worker, projector, API, CLI) in one image.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir .
COPY config ./config
COPY schemas ./schemas
ENV MDHUB_MODEL=/app/config/model.yaml \
    MDHUB_SCHEMAS_DIR=/app/schemas \
    MDHUB_WORKER__DATA_DIR=/data/worker
VOLUME /data
ENTRYPOINT ["mdhub"]
CMD ["--help"]
