# The TLS sidecar for Redis (see stunnel-redis.conf):
#   docker build -f examples/stunnel.Dockerfile -t rollupd-redis-tls examples
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends stunnel4 \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY stunnel-redis.conf /etc/stunnel/redis.conf
USER nobody
ENTRYPOINT ["/usr/bin/stunnel4", "/etc/stunnel/redis.conf"]
