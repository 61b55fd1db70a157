# Multi-stage build: a release binary on a small, non-root runtime image.
#   docker build -t authwatch .
#   docker run --rm -p 4317:4317 -p 4318:4318 -p 13133:13133 authwatch
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin authwatch

FROM debian:bookworm-slim
# ca-certificates: exporters and probes verify HTTPS peers against the system roots as well.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin authwatch
COPY --from=build /src/target/release/authwatch /usr/local/bin/authwatch
COPY configs /etc/authwatch
USER 10001
EXPOSE 4317 4318 8888 8889 13133
# The health_check extension's readiness endpoint (every shipped config serves it on :13133).
# The slim image has no curl or wget; bash's /dev/tcp speaks just enough HTTP/1.0 for this.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/13133 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/authwatch"]
CMD ["run", "--config", "/etc/authwatch/jaeger.yaml"]
