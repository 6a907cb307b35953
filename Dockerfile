# rollupd's container image: built on Debian 12, run on debian:bookworm-slim with only the
# runtime libraries, as a non-root user, on a read-only root file system.
#
#   docker build -t rollupd .        (or: podman build -t rollupd .)
#   docker run --rm --read-only --tmpfs /run/rollupd:uid=10001,gid=10001,mode=0750 \
#       -e ROLLUPD_REDIS_URL=redis://redis:6379/0 \
#       -e ROLLUPD_PG_CONNINFO='host=db dbname=genonaut user=rollupd' -e PGPASSWORD=... rollupd
#
# Configuration comes from ROLLUPD_* variables (rollupd(8), README "Running in a
# container"); a file can still be mounted and named with -c. rollupd is PID 1: SIGTERM
# (docker stop, ECS) stops reading, flushes and acknowledges, then exits 0, within
# seconds. The base images can be overridden, e.g. with a locally made base:
#   --build-arg BUILD_IMAGE=localhost/bookworm --build-arg RUN_IMAGE=localhost/bookworm
ARG BUILD_IMAGE=debian:bookworm
ARG RUN_IMAGE=debian:bookworm-slim

FROM ${BUILD_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc libc6-dev make cmake pkg-config \
      libhiredis-dev libpq-dev libconfig-dev libsystemd-dev libjansson-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY include include
COPY src src
COPY bench bench
COPY etc etc
COPY man man
COPY systemd systemd
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DRU_TESTS=OFF -DRU_WERROR=ON \
 && cmake --build /build -j"$(nproc)" --target rollupd rollupctl \
 && install -D -m 0755 /build/rollupd /out/usr/sbin/rollupd \
 && install -D -m 0755 /build/rollupctl /out/usr/bin/rollupctl \
 && strip /out/usr/sbin/rollupd /out/usr/bin/rollupctl

FROM ${RUN_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libhiredis0.14 libpq5 libconfig9 libjansson4 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 rollupd \
 && useradd --system --uid 10001 --gid rollupd --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin rollupd \
 && install -d -o rollupd -g rollupd -m 0750 /run/rollupd
COPY --from=build /out/ /
USER rollupd:rollupd
# JSON lines for CloudWatch and other collectors; the status socket in /run/rollupd
# (mount a tmpfs there with a read-only root, or set ROLLUPD_STATUS_SOCKET).
ENV ROLLUPD_LOG_FORMAT=json
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/bin/rollupctl", "-t", "4000", "health"]
ENTRYPOINT ["/usr/sbin/rollupd"]
