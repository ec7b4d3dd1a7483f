#!/usr/bin/env bash
# DynamoDB Local for the test suite and for `medkit serve --dynamodb-endpoint`.
#   dynamodb-local.sh install        fetch it from Maven Central into .tools/dynamodb-local
#   dynamodb-local.sh start [PORT]   install if needed, start in memory on 127.0.0.1:PORT (default 8000),
#                                    wait until it answers; prints the endpoint URL
#   dynamodb-local.sh stop           stop the instance started by `start`
#   dynamodb-local.sh start-at DIR PORT   a persistent instance with its data in DIR (survives
#                                    a restart; tests that stop the store mid-load)
#   dynamodb-local.sh stop-at DIR    stop that instance
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

# Starts DynamoDB Local on PORT with extra flags (-inMemory, or -dbPath DIR),
# its pid in PIDFILE and output in LOG; waits until it answers.
launch() {
  local port="$1" pidf="$2" log="$3"; shift 3
  install
  local jar; jar=$(ls "$dir"/lib/DynamoDBLocal-*.jar | head -n1)
  local main; main=$(unzip -p "$jar" META-INF/MANIFEST.MF | sed -n 's/^Main-Class: *//p' | tr -d '\r')
  setsid java -Xmx512m -Dsqlite4java.library.path="$dir/lib" -cp "$dir/lib/*" "$main" \
    "$@" -sharedDb -disableTelemetry -port "$port" > "$log" 2>&1 < /dev/null &
  echo $! > "$pidf"
  for _ in $(seq 1 120); do
    if curl -s -o /dev/null -X POST "http://127.0.0.1:$port/"; then
      if kill -0 "$(cat "$pidf")" 2>/dev/null; then echo "http://127.0.0.1:$port"; return 0; fi
      echo "DynamoDB Local exited; another process holds port $port?" >&2; cat "$log" >&2; return 1
    fi
    sleep 0.5
  done
  echo "DynamoDB Local did not answer on port $port within 60 s" >&2; cat "$log" >&2; return 1
}

start() {
  local port="${1:-8000}"
  stop >/dev/null 2>&1 || true
  mkdir -p "$dir"
  launch "$port" "$pidfile" "$dir/log" -inMemory
}

kill_pidfile() {
  local pidf="$1"
  [ -f "$pidf" ] || return 0
  local pid; pid=$(cat "$pidf")
  kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
  # Wait until it is gone, so a restart can take the port again.
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$pidf"
}

stop() { kill_pidfile "$pidfile"; }

# A persistent instance of its own (tests that stop and restart the store):
# data and pidfile in DATA_DIR, so it survives a restart and leaves the
# suite's in-memory instance alone.
start_at() {
  local data="$1" port="$2"
  mkdir -p "$data"
  kill_pidfile "$data/pid"
  launch "$port" "$data/pid" "$data/log" -dbPath "$data"
}

cmd="${1:-start}"; shift || true
case "$cmd" in
  install) install ;;
  start) start "$@" ;;
  stop) stop ;;
  start-at) start_at "$@" ;;
  stop-at) kill_pidfile "$1/pid" ;;
  *) echo "usage: $0 install|start [PORT]|stop|start-at DATA_DIR PORT|stop-at DATA_DIR" >&2; exit 2 ;;
esac
