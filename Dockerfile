# Multi-stage build: a release binary on a small, non-root runtime image.
#   docker build -t authwatch .
#   docker run --rm -p 4317:4317 -p 4318:4318 -p 13133:13133 -p 13134:13134 authwatch
#
# Dependencies are compiled in a layer of their own, keyed only on the manifests and Cargo.lock:
# the `recipe` stage copies every Cargo.toml (found by glob, so a new crate under crates/ needs no
# edit here) and writes an empty source for each target; the build stage compiles that, then
# copies the real sources. A code change rebuilds authwatch's own crates, not every dependency.

FROM rust:1.95-slim-bookworm AS recipe
WORKDIR /src
COPY . .
RUN mkdir /recipe \
 && cp --parents Cargo.toml Cargo.lock crates/*/Cargo.toml /recipe/ \
 && for f in crates/*/src/lib.rs crates/*/src/main.rs crates/*/benches/*.rs; do \
      [ -e "$f" ] || continue; \
      mkdir -p "/recipe/$(dirname "$f")"; \
      case "$f" in \
        */src/lib.rs) : > "/recipe/$f" ;; \
        *) echo 'fn main() {}' > "/recipe/$f" ;; \
      esac; \
    done

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Cached until a manifest or the lock file changes: this compiles every dependency.
COPY --from=recipe /recipe ./
RUN cargo build --release --locked --bin authwatch
# The real sources replace the empty ones; touch them so that cargo sees them as newer than the
# stub build (COPY keeps the files' own modification times).
COPY . .
RUN find crates -name '*.rs' -exec touch {} + \
 && cargo build --release --locked --bin authwatch

FROM debian:bookworm-slim
# ca-certificates: exporters and probes verify HTTPS peers against the system roots as well.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin authwatch
COPY --from=build /src/target/release/authwatch /usr/local/bin/authwatch
COPY configs /etc/authwatch
USER 10001
# OTLP gRPC and HTTP, self-telemetry, the prometheus exporter, health_check, the status page.
EXPOSE 4317 4318 8888 8889 13133 13134
# The health_check extension's readiness endpoint (every shipped config serves it on :13133).
# The slim image has no curl or wget; bash's /dev/tcp speaks just enough HTTP/1.0 for this.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/13133 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/authwatch"]
CMD ["run", "--config", "/etc/authwatch/jaeger.yaml"]
