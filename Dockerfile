# Multi-stage build: a release binary on a small, non-root runtime image.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin authwatch

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 authwatch
COPY --from=build /src/target/release/authwatch /usr/local/bin/authwatch
COPY configs /etc/authwatch
USER 10001
EXPOSE 4317 4318 8888 13133
ENTRYPOINT ["/usr/local/bin/authwatch"]
CMD ["run", "--config", "/etc/authwatch/jaeger.yaml"]
