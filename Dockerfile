# Parley's node image. Build: docker build -t parley . (docker compose up builds it too).
# Stage 1 compiles on the Swift toolchain image (Debian bookworm, as the runtime below);
# stage 2 is a slim Debian with the C libraries the node links (hiredis, libpq, jemalloc) and curl
# for the health check. The Swift runtime is linked in statically.
FROM swift:6.1-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libhiredis-dev libpq-dev libjemalloc-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The manifest first: the dependencies resolve in a layer of their own.
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift package resolve
RUN swift build -c release --product parley --static-swift-stdlib \
    && install -D "$(swift build -c release --show-bin-path)/parley" /out/parley

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libhiredis0.14 libpq5 libjemalloc2 libstdc++6 zlib1g curl ca-certificates tzdata \
       libvips-tools ffmpeg \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home parley \
    && install -d -o parley /var/lib/parley/blobs
COPY --from=build /out/parley /usr/local/bin/parley
USER parley
# In a container the node listens on every interface of its own network namespace.
ENV PARLEY_HTTP_HOST=0.0.0.0
EXPOSE 4000
# SIGTERM drains the node (DESIGN: draining): give it its shutdown deadline (30 s) to do so.
STOPSIGNAL SIGTERM
ENTRYPOINT ["parley"]
CMD ["serve"]
