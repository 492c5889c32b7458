# ClickHouse from Debian's own package (18.16 on bookworm, the version the shared test server
# runs), configured by deploy/local/clickhouse/config.xml. Listens on 127.0.0.1 only: run it with
# --network host. Ports: CLICKHOUSE_TCP_PORT (default 9000) and CLICKHOUSE_HTTP_PORT (8123).
# Built by deploy/images/build.sh with the repository's deploy/ folder as context.
FROM tollgate-local/debian:bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clickhouse-server \
 && rm -rf /var/lib/apt/lists/*
COPY local/clickhouse/ /etc/tollgate-clickhouse/
COPY images/clickhouse-entrypoint.sh /usr/local/bin/entrypoint
ENTRYPOINT ["/usr/local/bin/entrypoint"]
