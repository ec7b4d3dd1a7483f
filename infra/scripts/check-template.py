#!/usr/bin/env python3
"""Checks template.yaml against the code (run with a Python that has PyYAML,
e.g. the .tools venv; infra/scripts/test.sh does):

- every `/v1/e/...` route a function's router serves has an HttpApi event on
  that function, and every HttpApi event path is served by it;
- every function's BuildProperties.Binary is a [[bin]] of its CodeUri crate;
- every function runs provided.al2023 on arm64 with the cargo-lambda build,
  and one behind the HTTP API times out before its 30 s;
- every table is PAY_PER_REQUEST with TTL on `expires_at`;
- the WebSocket API has $connect, $disconnect and $default routes;
- every stream mapping reports partial failures, bounds record age and
  retries, and has an SQS on-failure destination its function may send to.
Prints what it checked; exits 1 on the first list of problems."""
import pathlib
import re
import json
import sys

import yaml

root = pathlib.Path(__file__).resolve().parents[2]


class Loader(yaml.SafeLoader):
    pass


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


Loader.add_multi_constructor("!", _tag)

template = yaml.load((root / "template.yaml").read_text(), Loader=Loader)
resources = template["Resources"]
globals_fn = template.get("Globals", {}).get("Function", {})
problems = []


def served_routes(crate: pathlib.Path):
    routes = set()
    for src in (crate / "src").rglob("*.rs"):
        routes |= set(re.findall(r'"(/v1/e/[a-z_/]+)"', src.read_text()))
    return routes


def bins(crate: pathlib.Path):
    cargo = (crate / "Cargo.toml").read_text()
    return set(re.findall(r'\[\[bin\]\]\s*name\s*=\s*"([^"]+)"', cargo))


functions = {k: v for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}
routes_by_crate = {}
for name, fn in functions.items():
    props = fn["Properties"]
    crate = root / props["CodeUri"]
    binary = fn.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
    if fn.get("Metadata", {}).get("BuildMethod") != "rust-cargolambda":
        problems.append(f"{name}: BuildMethod is not rust-cargolambda")
    if binary not in bins(crate):
        problems.append(f"{name}: Binary {binary!r} is not a [[bin]] of {props['CodeUri']}")
    for key, want in (("Runtime", "provided.al2023"), ("Architectures", ["arm64"])):
        if props.get(key, globals_fn.get(key)) != want:
            problems.append(f"{name}: {key} is not {want}")
    events = props.get("Events", {})
    paths = {e["Properties"]["Path"] for e in events.values() if e["Type"] == "HttpApi"}
    # Behind the HTTP API (30 s integration timeout) a function must end
    # first, or a write goes on after the client was told 503.
    timeout = props.get("Timeout", globals_fn.get("Timeout", 3))
    if paths and timeout >= 30:
        problems.append(f"{name}: Timeout {timeout} s is not under the HTTP API's 30 s")
    if paths:
        routes_by_crate.setdefault(props["CodeUri"], set()).update(paths)

for code_uri, paths in routes_by_crate.items():
    served = served_routes(root / code_uri)
    for missing in sorted(served - paths):
        problems.append(f"{code_uri} serves {missing} but template.yaml routes no event to it")
    for extra in sorted(paths - served):
        problems.append(f"template.yaml routes {extra} to {code_uri}, which does not serve it")

for name, res in resources.items():
    if res["Type"] != "AWS::DynamoDB::Table":
        continue
    props = res["Properties"]
    if props.get("BillingMode") != "PAY_PER_REQUEST":
        problems.append(f"{name}: not PAY_PER_REQUEST")
    ttl = props.get("TimeToLiveSpecification", {})
    if ttl.get("AttributeName") != "expires_at" or ttl.get("Enabled") is not True:
        problems.append(f"{name}: no TTL on expires_at")

ws_routes = {r["Properties"]["RouteKey"] for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Route"}
for key in ("$connect", "$disconnect", "$default"):
    if key not in ws_routes:
        problems.append(f"the WebSocket API has no {key} route")

# The fan-out mapping (issue #19): retries, a maximum record age, and an
# on-failure destination the worker may send to; reported partial failures.
for name, fn in functions.items():
    for ev_name, ev in fn["Properties"].get("Events", {}).items():
        if ev["Type"] != "DynamoDB":
            continue
        p = ev["Properties"]
        where = f"{name}.{ev_name}"
        if "ReportBatchItemFailures" not in p.get("FunctionResponseTypes", []):
            problems.append(f"{where}: no ReportBatchItemFailures")
        if not 60 <= p.get("MaximumRecordAgeInSeconds", -1) <= 300:
            problems.append(f"{where}: MaximumRecordAgeInSeconds must bound real-time events (60..300)")
        if not 0 < p.get("MaximumRetryAttempts", -1) <= 5:
            problems.append(f"{where}: MaximumRetryAttempts must be 1..5")
        dest = p.get("DestinationConfig", {}).get("OnFailure", {})
        target = dest.get("Destination")
        queue = str(target.get("GetAtt", "")).split(".")[0] if isinstance(target, dict) else None
        if dest.get("Type") != "SQS" or resources.get(queue, {}).get("Type") != "AWS::SQS::Queue":
            problems.append(f"{where}: no SQS on-failure destination")
        statements = [st for pol in fn["Properties"].get("Policies", []) if isinstance(pol, dict)
                      for st in pol.get("Statement", [])]
        may_send = any("sqs:SendMessage" in st.get("Action", []) and
                       json.dumps(st.get("Resource")).find(str(queue)) >= 0 for st in statements)
        if not may_send:
            problems.append(f"{where}: the function may not send to its on-failure queue {queue}")

# Timers (GameLink polls): a function given the timers queue may send to it
# (and to nothing else); the queue's consumer reports partial failures,
# outlives none of its messages' visibility, and the queue has a dead-letter
# queue. Which functions set timers is read from the code: a crate that calls
# `timers::set`/`timers::poll_times` must have the queue.
def statements_of(fn):
    return [st for pol in fn["Properties"].get("Policies", []) if isinstance(pol, dict)
            for st in pol.get("Statement", [])]

def sets_timers(crate: pathlib.Path):
    return any(re.search(r"timers::(set|poll_times)\(", f.read_text())
               for f in (crate / "src").rglob("*.rs"))

timer_queues = {n for n, r in resources.items() if r["Type"] == "AWS::SQS::Queue"
                and "RedrivePolicy" in r.get("Properties", {})}
for name, fn in functions.items():
    props = fn["Properties"]
    env = props.get("Environment", {}).get("Variables", {})
    queue_ref = env.get("MEDKIT_TIMERS_QUEUE_URL")
    queue = queue_ref.get("Ref") if isinstance(queue_ref, dict) else None
    consumes = [e for e in props.get("Events", {}).values() if e["Type"] == "SQS"]
    if sets_timers(root / props["CodeUri"]) and not consumes and queue is None:
        problems.append(f"{name}: its code sets timers but it has no MEDKIT_TIMERS_QUEUE_URL")
    if queue is None:
        continue
    if queue not in timer_queues:
        problems.append(f"{name}: MEDKIT_TIMERS_QUEUE_URL is not a queue with a dead-letter queue")
    sends = [st for st in statements_of(fn) if "sqs:SendMessage" in st.get("Action", [])
             and json.dumps(st.get("Resource")).find(queue) >= 0]
    if not sends:
        problems.append(f"{name}: may not send to its timers queue {queue}")
    for ev in consumes:
        p = ev["Properties"]
        if "ReportBatchItemFailures" not in p.get("FunctionResponseTypes", []):
            problems.append(f"{name}: its SQS source has no ReportBatchItemFailures")
        if str(p.get("Queue", {}).get("GetAtt", "")).split(".")[0] != queue:
            problems.append(f"{name}: consumes another queue than its timers queue")
        visibility = resources[queue]["Properties"].get("VisibilityTimeout", 30)
        timeout = props.get("Timeout", globals_fn.get("Timeout", 3))
        if visibility < timeout:
            problems.append(f"{name}: Timeout {timeout} s outlives {queue}'s visibility {visibility} s")
consumers = [n for n, fn in functions.items()
             if any(e["Type"] == "SQS" for e in fn["Properties"].get("Events", {}).values())]
if timer_queues and not consumers:
    problems.append("no function consumes the timers queue")

if problems:
    print("template.yaml does not match the code:", *problems, sep="\n  ")
    sys.exit(1)
n_routes = sum(len(p) for p in routes_by_crate.values())
print(f"template.yaml matches the code: {len(functions)} functions, {n_routes} HTTP routes, "
      f"{len(ws_routes)} WebSocket routes, tables on demand with TTL")
