# The hub as a container image, for docker-compose.yml (no Docker engine is needed to develop).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN apt-get update && apt-get install -y --no-install-recommends python3-venv && rm -rf /var/lib/apt/lists/* \
 && rustup target add wasm32-wasip2
RUN cargo build --release --locked -p hub-server && scripts/build-plugins /src/dist/plugins

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/hub /usr/local/bin/hub
COPY --from=build /src/dist/plugins /usr/share/hub/plugins
USER 65534
EXPOSE 8080
ENTRYPOINT ["hub"]
CMD ["serve", "--listen", "0.0.0.0:8080", "--data-dir", "/tmp/hub", "--plugins-dir", "/usr/share/hub/plugins"]
