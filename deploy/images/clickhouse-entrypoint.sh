#!/bin/bash
# Render the repo's ClickHouse config template for this container (state under /var/lib/clickhouse,
# ports from the environment) and run the server in the foreground.
set -euo pipefail
state=/var/lib/clickhouse
mkdir -p "$state"/{etc,data,tmp,user_files,format_schemas,logs}
tmpl="$(</etc/tollgate-clickhouse/config.xml)"
tmpl="${tmpl//@STATE_DIR@/$state}"
tmpl="${tmpl//<http_port>8123</http_port>/<http_port>${CLICKHOUSE_HTTP_PORT:-8123}</http_port>}"
printf '%s\n' "${tmpl//<tcp_port>9000</tcp_port>/<tcp_port>${CLICKHOUSE_TCP_PORT:-9000}</tcp_port>}" >"$state/etc/config.xml"
cp /etc/tollgate-clickhouse/users.xml "$state/etc/users.xml"
cd "$state"
exec clickhouse-server --config-file="$state/etc/config.xml"
