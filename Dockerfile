# One image for every service; the compose file picks the service with its command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY proto ./proto
COPY services ./services
RUN pip install --no-cache-dir .
ENV SWITCHBOARD_LOG_JSON=1
ENTRYPOINT ["switchboard"]
