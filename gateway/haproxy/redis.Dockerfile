# Redis for compose, from Debian's package (no image can be pulled here). Pub/sub only: no
# persistence. Protected mode is off because clients come from the private network
# compose makes for it, which has no route out and no published port.
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server redis-tools \
    && rm -rf /var/lib/apt/lists/*
EXPOSE 6379
USER redis
WORKDIR /var/lib/redis
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 CMD ["redis-cli", "ping"]
CMD ["redis-server", "--bind", "0.0.0.0", "--port", "6379", "--protected-mode", "no", "--save", "", "--appendonly", "no", "--maxclients", "10000"]
