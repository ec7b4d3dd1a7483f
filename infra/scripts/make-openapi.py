#!/usr/bin/env python3
"""Writes infra/dev/openapi.json: the OpenAPI 3.1 description of medkit's REST surface.

`medkit serve` serves the file at /openapi.json. The test command checks it both ways:
the dev server's tests (`openapi.rs`) check that every route the functions serve is in it
with exactly its methods, and schemathesis (`infra/scripts/schemathesis.sh`) checks that
the server's answers match it. Regenerate after changing a route:
    python3 infra/scripts/make-openapi.py          # write
    python3 infra/scripts/make-openapi.py --check  # fail if the file is stale
"""
import json, os, sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "infra", "dev", "openapi.json")

ANY = ["viewer", "broadcaster", "moderator", "admin", "backend"]
PRIVILEGED = ["admin", "backend"]
CHANNEL_WRITERS = ["broadcaster", "admin", "backend"]

def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}

def obj(props=None, required=(), extra=True, **kw):
    s = {"type": "object"}
    if props:
        s["properties"] = props
    if required:
        s["required"] = list(required)
    if not extra:
        s["additionalProperties"] = False
    s.update(kw)
    return s

def arr(items, **kw):
    return {"type": "array", "items": items, **kw}

STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}
EMPTY = obj(extra=False, description="An empty object.")
ID_PARAM = {"name": "id", "in": "query", "required": False, "schema": STR,
            "description": "The object's id (`default` when absent); ids starting `global` are extension-wide."}

# Shapes shared by several operations.
SCHEMAS = {
    "Error": obj({"reason": STR}, ["reason"], description=(
        "Every refusal: a human-readable reason, never internal error text.")),
    "Document": obj(description="A store's JSON object (`{}` when empty)."),
    "DocumentWrite": {
        "description": "POST replaces the object; PATCH takes an RFC 6902 JSON Patch (an array) "
                       "or an RFC 7386 merge patch (an object). The result must stay an object.",
        "oneOf": [obj(), arr(ref("PatchOperation"))],
    },
    "PatchOperation": obj({
        "op": {"enum": ["add", "remove", "replace", "move", "copy", "test"]},
        "path": STR, "from": STR, "value": {},
    }, ["op", "path"]),
    "VoteStats": obj({
        "count": NUM, "sum": NUM, "mean": NUM, "stddev": NUM,
        "specific": arr(NUM, minItems=32, maxItems=32),
    }, ["count", "sum", "mean", "stddev", "specific"]),
    "VoteData": {"allOf": [ref("VoteStats"), obj({"vote": NUM})],
                 "description": "`vote` is the caller's own ballot, when it has one."},
    "TriviaOption": obj({
        "id": STR, "name": STR, "short_name": STR, "description": STR,
        "image": STR, "order": INT,
    }, ["id"]),
    "TriviaQuestion": obj({
        "id": STR, "name": STR, "short_name": STR, "description": STR, "image": STR,
        "order": INT, "options": arr(ref("TriviaOption")), "state": STR,
        "results": obj(),
    }, ["id"]),
    "CodeSets": obj({"names": arr(STR), "remaining": arr(INT), "distributed": arr(INT)},
                    ["names", "remaining", "distributed"]),
    "Marks": obj({
        "prizes": arr({"type": "integer", "minimum": 0, "maximum": 9}),
        "prize_limits": arr({"type": "integer", "minimum": 0}),
    }, ["prizes", "prize_limits"]),
    "Broadcast": obj({
        "target": STR, "event": STR, "user_id": STR, "channel_id": STR, "data": {},
    }, ["event"], description=(
        "`target` is `broadcast` or `whisper-<user id>`; the envelope must fit 4 KB "
        "(compressed when larger); 100 sends per 5 minutes per channel.")),
    "Purchase": obj({
        "id": STR, "muxy_id": STR, "sku": STR, "displayName": STR, "userId": STR,
        "username": STR, "cost": INT, "currency": STR, "timestamp": INT,
        "additional": obj(description="Whatever the game attached (an object)."), "state": {"enum": ["received", "delivered", "validated", "refunded"]},
        "sandbox": BOOL, "channel_id": STR, "details": STR,
    }, ["id", "sku", "userId", "cost", "currency", "timestamp", "state", "sandbox", "channel_id"]),
}

ERROR = {"description": "Refused; nothing changed.",
         "content": {"application/json": {"schema": ref("Error")}}}

def ok(schema, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": schema}}}

def op(summary, roles, response, *, params=(), body=None, body_required=True, auth=True,
       status="200", extra_responses=None, example=None):
    o = {"summary": summary}
    if roles:
        o["description"] = "Roles: " + ", ".join(f"`{r}`" for r in roles) + "."
    if params:
        o["parameters"] = list(params)
    if body is not None:
        o["requestBody"] = {
            "required": body_required,
            "description": "JSON, whatever the Content-Type says (the official client labels it form-encoded).",
            "content": {"application/json": {"schema": body}},
        }
        if example is not None:
            o["requestBody"]["content"]["application/json"]["examples"] = {
                "sample": {"value": example}}
    o["responses"] = {status: response, "4XX": ERROR, "503": {
        "description": "The store is unavailable; retry.",
        "content": {"application/json": {"schema": ref("Error")}}}}
    o["responses"].update(extra_responses or {})
    o["security"] = [{"MedkitToken": []}] if auth else []
    return o

def doc_ops(name, read, write, patch=True):
    ops = {
        "get": op(f"Read the {name}", read, ok(ref("Document"))),
        "post": op(f"Replace the {name}", write, ok(ref("Document"), "The new object."),
                   body=obj(), example={"round": 3, "scores": {"blue": 2}}),
    }
    if patch:
        ops["patch"] = op(f"Patch the {name}", write, ok(ref("Document"), "The new object."),
                          body=ref("DocumentWrite"),
                          example=[{"op": "add", "path": "/round", "value": 4}])
    return ops

def q(name, description, schema=STR, required=False):
    return {"name": name, "in": "query", "required": required, "schema": schema,
            "description": description}

ROLE_PARAM = q("role", "The role to mint (the body's `role` wins).",
               {"enum": ["viewer", "broadcaster", "moderator", "admin", "backend"]})

PATHS = {
    # auth
    "/v1/e/authtoken": {"post": op(
        "Mint a sandbox token (sandbox only; 404 in production)", None,
        ok(obj({"token": STR}, ["token"])), auth=False, params=[ROLE_PARAM],
        body=obj({"app_id": STR, "extension_id": STR, "channel_id": STR,
                  "role": {"enum": ["viewer", "broadcaster", "moderator", "admin", "backend"]},
                  "user_id": STR}),
        example={"app_id": "medkit-demo", "channel_id": "1001", "role": "viewer",
                 "user_id": "2002"})},
    "/v1/e/user_info": {"get": op("The caller's facts", ANY, ok(obj({
        "ip_address": STR, "registered": BOOL, "visualization_id": STR, "server_time": INT,
    }, ["ip_address", "registered", "visualization_id", "server_time"])))},
    "/v1/e/user_ids": {"get": op(
        "The users who shared their identity with the extension, 1,000 a page", PRIVILEGED,
        ok(obj({"next": STR, "results": arr(obj({"twitch_id": STR}, ["twitch_id"]))},
               ["next", "results"])),
        params=[q("cursor", "The page after this cursor (`0` or absent: the first).")])},
    "/v1/e/pin": {
        "post": op("Start a PIN login (no token needed)", None,
                   ok(obj({"token": STR, "pin": STR}, ["token", "pin"])), auth=False,
                   body=obj({"identifier": STR}, ["identifier"]),
                   example={"identifier": "medkit-demo"}),
        "delete": op("Revoke every PIN-issued token of the channel", ["broadcaster"], ok(EMPTY)),
    },
    "/v1/e/validate_pin": {"post": op("Bind a PIN's token to the caller's channel",
                                      ["broadcaster"], ok(EMPTY),
                                      body=obj({"pin": STR}, ["pin"]),
                                      example={"pin": "X7K2PQ"})},
    "/v1/e/pin_token_exists": {"get": op("Whether the channel holds a PIN-issued token",
                                         ["broadcaster"], ok(obj({"exists": BOOL}, ["exists"])))},
    "/v1/e/gamelink/token": {"post": op("A GameLink PIN for the caller's channel",
                                        ["broadcaster"], ok(obj({"token": STR}, ["token"])))},
    # stores
    "/v1/e/all_state": {"get": op("Every state the caller can read", ANY, ok(obj({
        "extension": ref("Document"), "channel": ref("Document"), "viewer": ref("Document"),
        "extension_viewer": ref("Document"),
    }, ["extension", "channel", "viewer", "extension_viewer"])))},
    "/v1/e/extension_state": doc_ops("extension state", ANY, PRIVILEGED),
    "/v1/e/channel_state": doc_ops("channel state", ANY, CHANNEL_WRITERS),
    "/v1/e/viewer_state": doc_ops("caller's viewer state", ANY, ANY),
    "/v1/e/extension_viewer_state": {
        "get": op("The caller's extension-viewer state, or (admin, backend) several users'",
                  ANY, ok(ref("Document"), "The state, or a map of user id to state."),
                  params=[q("user_ids", "Comma-separated user ids (admin, backend; at most 1,000).")]),
        "post": op("Replace the caller's extension-viewer state", ANY,
                   ok(ref("Document"), "The new object."), body=obj()),
        "patch": op("Patch the caller's state, or (admin, backend) a map of user id to patch "
                    "(at most 100, all or nothing)", ANY,
                    ok(ref("Document"), "The new object, or a map of user id to new object."),
                    body=ref("DocumentWrite")),
    },
    "/v1/e/extension_hidden_state": doc_ops("extension hidden state", PRIVILEGED, PRIVILEGED),
    "/v1/e/config": {"get": op("The channel and extension config", ANY, ok(obj({
        "channel": ref("Document"), "extension": ref("Document")}, ["channel", "extension"])))},
    "/v1/e/config/extension": doc_ops("extension config", ANY, PRIVILEGED),
    "/v1/e/config/channel": {
        **doc_ops("channel config", ANY, CHANNEL_WRITERS, patch=False),
        "patch": op("Patch the channel config, or (admin, backend) a map of channel id to patch "
                    "(at most 100, all or nothing)", CHANNEL_WRITERS,
                    ok(ref("Document"), "The new object, or a map of channel id to new object."),
                    body=ref("DocumentWrite")),
    },
    "/v1/e/json_store": {
        "get": op("Read a JSON store key", ANY, ok({}, "The value (`{}` when unset)."),
                  params=[ID_PARAM]),
        "post": op("Write a JSON store key (at most 2 KB)", CHANNEL_WRITERS,
                   ok({}, "The value written."), params=[ID_PARAM], body={},
                   example={"level": 3, "boss": "hydra"}),
    },
    # aggregation
    "/v1/e/accumulate": {
        "get": op("Accumulated entries, newest first", ["broadcaster", "admin", "backend"],
                  ok(obj({"latest": INT, "data": arr(obj({
                      "observed": INT, "channel_id": STR, "opaque_user_id": STR,
                      "user_id": STR, "data": {}}, ["observed", "data"]))}, ["latest", "data"])),
                  params=[ID_PARAM, q("start", "Entries observed after this time (ms); "
                                      "`undefined` or absent: all.")]),
        "post": op("Add an entry (at most 256 bytes)", ANY, ok(EMPTY), params=[ID_PARAM], body={},
                   example={"x": 640, "y": 360}),
    },
    "/v1/e/rank": {
        "get": op("The top 100 keys", ANY, ok(obj({"data": arr(obj({"key": STR, "score": INT},
                                                                   ["key", "score"]))}, ["data"])),
                  params=[ID_PARAM]),
        "post": op("Hold a key (one per user)", ANY,
                   ok(obj({"accepted": BOOL, "original": STR}, ["accepted"])),
                   params=[ID_PARAM], body=obj({"key": STR}, ["key"]), example={"key": "blue"}),
        "delete": op("Clear the ranking", CHANNEL_WRITERS, ok(EMPTY), params=[ID_PARAM]),
    },
    "/v1/e/vote": {
        "get": op("A poll's figures", ANY, ok(ref("VoteData")), params=[ID_PARAM]),
        "post": op("Cast (or replace) the caller's ballot", ANY, ok(ref("VoteData")),
                   params=[ID_PARAM],
                   body=obj({"value": {"type": "integer", "minimum": -1000, "maximum": 1000},
                             "count": {"type": "integer", "minimum": 1, "maximum": 30}},
                            ["value"]), example={"value": 2}),
        "delete": op("Delete the poll", CHANNEL_WRITERS, ok(EMPTY), params=[ID_PARAM]),
    },
    "/v1/e/vote_logs": {"get": op("A poll's ballots", PRIVILEGED, ok(obj({"result": arr(obj({
        "identifier": STR, "opaque": STR, "value": NUM, "timestamp": INT}))}, ["result"])),
        params=[ID_PARAM])},
    "/v1/e/curated_poll_edit": {
        "post": op("Create or update a trivia question", ["broadcaster", "admin"],
                   ok(ref("TriviaQuestion")), body=ref("TriviaQuestion"),
                   example={"id": "q1", "name": "Which boss first?", "short_name": "boss",
                            "description": "", "options": [
                                {"id": "a", "name": "Hydra", "short_name": "hydra",
                                 "description": ""},
                                {"id": "b", "name": "Golem", "short_name": "golem",
                                 "description": ""}]}),
        "delete": op("Delete a trivia question", ["broadcaster", "admin"], ok(EMPTY),
                     body=obj({"id": STR}, ["id"]), example={"id": "q9"}),
    },
    "/v1/e/curated_poll_edit_option": {
        "post": op("Create or update an option", ["broadcaster", "admin"],
                   ok(ref("TriviaQuestion")),
                   body=obj({"id": STR, "option": ref("TriviaOption")}, ["id", "option"]),
                   example={"id": "q1", "option": {"id": "c", "name": "Wyrm",
                                                   "short_name": "wyrm", "description": ""}}),
        "delete": op("Delete an option", ["broadcaster", "admin"], ok(ref("TriviaQuestion")),
                     body=obj({"question": STR, "option": STR}, ["question", "option"]),
                     example={"question": "q1", "option": "c"}),
    },
    "/v1/e/curated_poll_state": {"post": op(
        "Move a question through its states (unlocked → results locks it implicitly)",
        ["broadcaster", "admin"], ok(obj({"state": STR}, ["state"])),
        params=[q("id", "The question id.", required=True)],
        body=obj({"transition": {"enum": ["state-inactive", "state-unlocked", "state-locked",
                                          "state-results"]}, "winner": STR}, ["transition"]),
        example={"transition": "state-unlocked"})},
    "/v1/e/curated_poll": {
        "get": op("Every trivia question, or one", ANY,
                  ok({"oneOf": [obj({"questions": arr(ref("TriviaQuestion"))}, ["questions"]),
                                ref("TriviaQuestion")]}),
                  params=[q("id", "One question's id.")]),
        "post": op("Vote on an unlocked question", ANY, ok(EMPTY),
                   body=obj({"question_id": STR, "vote": STR}, ["question_id", "vote"]),
                   example={"question_id": "q1", "vote": "a"}),
    },
    "/v1/e/team_membership": {
        "get": op("The viewer's team", ["viewer"], ok(obj({"id": STR}, ["id"]))),
        "post": op("The viewer's team", ["viewer"], ok(obj({"id": STR}, ["id"]))),
    },
    "/v1/e/curated_poll_leaderboard": {"get": op(
        "Teams by combined score", ["broadcaster", "admin", "backend"],
        ok(obj({"leaderboard": arr(obj({"team_id": STR, "combined_score": NUM,
                                        "questions": obj()}))}, ["leaderboard"])))},
    # codes
    "/v1/e/codes": {
        "put": op("Upload code sets (`append=true` adds to a slot); the same codes only rename",
                  PRIVILEGED, ok(ref("CodeSets")),
                  params=[q("append", "`true`: add the codes to existing slots.")],
                  body=obj({"codes": arr(arr(STR)), "names": arr(STR), "indices": arr(INT)},
                           ["codes", "names"]),
                  example={"codes": [["A1", "A2", "A3"]], "names": ["Hat"]}),
        "get": op("Every slot's name, remaining and distributed", PRIVILEGED, ok(ref("CodeSets"))),
        "delete": op("Delete every code set", PRIVILEGED,
                     ok(obj({"distributed": arr(INT)}, ["distributed"]))),
    },
    "/v1/e/codes/mark_from_poll": {"post": op(
        "Make a poll's correct voters eligible", PRIVILEGED, ok(obj({"marked": INT}, ["marked"])),
        body={"allOf": [ref("Marks"), obj({"poll_id": STR, "correct": INT,
                                           "cutoff_timestamp": INT}, ["correct"])]},
        example={"poll_id": "default", "correct": 2, "cutoff_timestamp": 4102444800,
                 "prizes": [0], "prize_limits": [1]})},
    "/v1/e/codes/mark_from_list": {"post": op(
        "Make the listed users eligible", PRIVILEGED, ok(obj({"marked": INT}, ["marked"])),
        body={"allOf": [ref("Marks"), obj({"users": arr(STR)}, ["users"])]},
        example={"users": ["2002"], "prizes": [0], "prize_limits": [1]})},
    "/v1/e/codes/eligible": {"get": op(
        "Codes the viewer may still claim, per slot", ANY,
        ok(obj({"eligible": arr(INT)}, ["eligible"])))},
    "/v1/e/codes/eligibility": {"get": op(
        "Alias of codes/eligible", ANY, ok(obj({"eligible": arr(INT)}, ["eligible"])))},
    "/v1/e/codes/redeem": {"post": op(
        "Claim the next code of a slot", ANY,
        ok(obj({"code": STR, "all_prizes": arr(STR)}, ["code", "all_prizes"])),
        body=obj({"all_prizes": INT, "prize": INT}), example={"all_prizes": 0})},
    "/v1/e/codes/redeemed": {"get": op(
        "The viewer's codes, per slot", ANY, ok(obj({"redeemed": arr(arr(STR))}, ["redeemed"])))},
    # broadcast
    **{p: {m: op(summary, roles, ok(EMPTY), body=ref("Broadcast"), example=example)
           for m in ("get", "post")}
       for p, summary, roles, example in [
           ("/v1/e/broadcast", "Send to the channel's listeners (or whisper)", CHANNEL_WRITERS,
            {"target": "broadcast", "event": "hello", "channel_id": "1001", "data": {"n": 1}}),
           ("/v1/e/pusher_broadcast", "What the client's `sdk.send` posts", CHANNEL_WRITERS,
            {"target": "broadcast", "event": "hello", "user_id": "1001", "data": {"n": 1}}),
           ("/v1/e/extension_broadcast", "Send to every channel", PRIVILEGED,
            {"target": "broadcast", "event": "season", "data": {"n": 4}}),
           ("/v1/e/whisper_self", "Send to the caller's own other connections", ANY,
            {"event": "sync", "data": {}}),
       ]},
    "/v1/e/datastream": {"post": op(
        "Queue events for the channel's GameLink games", ANY, ok(EMPTY),
        body=obj({"event": {}, "events": arr({}, minItems=1)}, description=(
            "`{\"event\": <any JSON>}` or `{\"events\": [<any JSON>, ...]}`.")),
        example={"events": [{"kind": "jump", "height": 3}]})},
    # purchases
    "/v1/e/bits/transactions": {
        "post": op("Record a Bits purchase (exactly once; 200 answers a repeat as the first)",
                   ANY, ok(ref("Purchase"), "Recorded now."), status="201",
                   extra_responses={"200": ok(ref("Purchase"), "Recorded before.")},
                   body=obj({"transactionId": STR, "product": obj(), "userId": STR,
                             "displayName": STR, "initiator": STR,
                             "transactionReceipt": STR}, ["transactionReceipt"]),
                   example={"transactionId": "tx-1", "userId": "2002", "displayName": "viewer",
                            "initiator": "CURRENT_USER", "transactionReceipt": "sandbox",
                            "product": {"sku": "hat", "displayName": "Hat",
                                        "cost": {"amount": 100, "type": "bits"}}}),
        "get": op("A channel's purchases, newest first", ["broadcaster", "admin", "backend"],
                  ok(obj({"channel_id": STR, "transactions": arr(ref("Purchase"))},
                         ["channel_id", "transactions"])),
                  params=[q("channel_id", "Another channel (admin, backend).")]),
    },
}

def spec():
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "medkit",
            "version": "1.0.0",
            "description": (
                "A MEDKit-compatible backend for Twitch extensions. Every operation answers "
                "JSON; a refusal is a 4xx with `{\"reason\"}`, a store outage a 503. "
                "Tokens: `Authorization: <client_id> <jwt>` (HS256, `exp` required)."),
        },
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"MedkitToken": {
                "type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`<client_id> <jwt>`: one space, no `Bearer`."}},
        },
    }

def main():
    text = json.dumps(spec(), indent=1, ensure_ascii=False) + "\n"
    if "--check" in sys.argv:
        with open(OUT) as f:
            if f.read() != text:
                sys.exit("infra/dev/openapi.json is stale: run python3 infra/scripts/make-openapi.py")
        print(f"openapi.json is current: {sum(len(v) for v in PATHS.values())} operations")
        return
    with open(OUT, "w") as f:
        f.write(text)
    print(f"wrote {OUT}: {len(PATHS)} paths, {sum(len(v) for v in PATHS.values())} operations")

if __name__ == "__main__":
    main()
