#!/usr/bin/env bash
# DynamoDB Local for the test suite and for `medkit serve --dynamodb-endpoint`.
#   dynamodb-local.sh install        fetch it from Maven Central into .tools/dynamodb-local
#   dynamodb-local.sh start [PORT]   install if needed, start in memory on 127.0.0.1:PORT (default 8000),
#                                    wait until it answers; prints the endpoint URL
#   dynamodb-local.sh stop           stop the instance started by `start`
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$root/.tools/dynamodb-local"
pidfile="$dir/pid"
version="${DYNAMODB_LOCAL_VERSION:-3.1.0}"

install() {
  if ls "$dir"/lib/DynamoDBLocal-*.jar >/dev/null 2>&1; then return; fi
  mkdir -p "$dir"
  cat > "$dir/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>medkit</groupId><artifactId>dynamodb-local-fetch</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>software.amazon.dynamodb</groupId><artifactId>DynamoDBLocal</artifactId><version>$version</version></dependency>
    <dependency><groupId>com.almworks.sqlite4java</groupId><artifactId>libsqlite4java-linux-amd64</artifactId><version>1.0.392</version><type>so</type></dependency>
  </dependencies>
</project>
POM
  echo "fetching DynamoDB Local $version from Maven Central..." >&2
  (cd "$dir" && mvn -B -q org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
      -DoutputDirectory=lib >&2)
}

start() {
  local port="${1:-8000}"
  install
  stop >/dev/null 2>&1 || true
  local jar; jar=$(ls "$dir"/lib/DynamoDBLocal-*.jar | head -n1)
  local main; main=$(unzip -p "$jar" META-INF/MANIFEST.MF | sed -n 's/^Main-Class: *//p' | tr -d '\r')
  setsid java -Xmx512m -Dsqlite4java.library.path="$dir/lib" -cp "$dir/lib/*" "$main" \
    -inMemory -sharedDb -disableTelemetry -port "$port" > "$dir/log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  for _ in $(seq 1 120); do
    if curl -s -o /dev/null -X POST "http://127.0.0.1:$port/"; then
      if kill -0 "$(cat "$pidfile")" 2>/dev/null; then echo "http://127.0.0.1:$port"; return 0; fi
      echo "DynamoDB Local exited; another process holds port $port?" >&2; cat "$dir/log" >&2; return 1
    fi
    sleep 0.5
  done
  echo "DynamoDB Local did not answer on port $port within 60 s" >&2; cat "$dir/log" >&2; return 1
}

stop() {
  [ -f "$pidfile" ] || return 0
  local pid; pid=$(cat "$pidfile")
  kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

cmd="${1:-start}"; shift || true
case "$cmd" in
  install) install ;;
  start) start "$@" ;;
  stop) stop ;;
  *) echo "usage: $0 install|start [PORT]|stop" >&2; exit 2 ;;
esac
