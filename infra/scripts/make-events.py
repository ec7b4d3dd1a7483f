#!/usr/bin/env python3
"""Writes the sample Lambda events in events/ (API Gateway HTTP API v2 payloads).

Their tokens belong to the sample extension below and expire in 2100, so the
events work with `cargo lambda invoke` as long as the function runs with
MEDKIT_EXTENSIONS=sample-client:<SECRET> (see README). Regenerate with
    cargo build -p medkit-dev && python3 infra/scripts/make-events.py [FAMILY...]
"""
import base64, hashlib, hmac
import json, os, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLIENT = "sample-client"
SECRET = "c2FtcGxlLWV2ZW50cy1zZWNyZXQtbm90LWZvci1wcm9kdWN0aW9u"  # "sample-events-secret-not-for-production"
EXPIRES = 4102444800  # 2100-01-01
MEDKIT = os.path.join(ROOT, "target", "debug", "medkit")

def token(role, channel="1001", user=None):
    args = [MEDKIT, "token", "--client-id", CLIENT, "--secret", SECRET, "--role", role,
            "--channel", channel, "--ttl", str(EXPIRES - int(time.time()))]
    if user:
        args += ["--user", user]
    return subprocess.check_output(args, text=True).strip()

def event(method, path, query="", auth=None, body=None):
    headers = {
        "host": "abc123.execute-api.us-east-1.amazonaws.com",
        "content-type": "application/x-www-form-urlencoded; charset=UTF-8",
        "x-forwarded-for": "203.0.113.9",
    }
    if auth:
        headers["authorization"] = f"{CLIENT} {auth}"
    ev = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.9", "userAgent": "medkit-sample"},
            "requestId": "sample-request-id",
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": "25/Nov/2026:08:00:00 +0000",
            "timeEpoch": 1795593600000,
        },
        "isBase64Encoded": False,
    }
    if query:
        ev["queryStringParameters"] = dict(p.split("=", 1) for p in query.split("&"))
    if body is not None:
        ev["body"] = json.dumps(body)
    return ev

def ws_event(route, connection_id, query=None, body=None):
    """An API Gateway WebSocket API event ($connect, $disconnect, $default)."""
    event_type = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE")
    ev = {
        "isBase64Encoded": False,
        "requestContext": {
            "routeKey": route,
            "eventType": event_type,
            "extendedRequestId": "sample-extended-id",
            "requestTime": "25/Nov/2026:08:00:00 +0000",
            "messageDirection": "IN",
            "stage": "prod",
            "connectedAt": 1795593600000,
            "requestTimeEpoch": 1795593600000,
            "identity": {"sourceIp": "203.0.113.9", "userAgent": "medkit-sample"},
            "requestId": "sample-request-id",
            "domainName": "ws123.execute-api.us-east-1.amazonaws.com",
            "connectionId": connection_id,
            "apiId": "ws123",
        },
    }
    if route == "$connect":
        ev["headers"] = {"Host": "ws123.execute-api.us-east-1.amazonaws.com"}
    if query:
        ev["queryStringParameters"] = query
        ev["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    if body is not None:
        ev["body"] = body
        ev["requestContext"]["messageId"] = "sample-message-id"
    if route == "$disconnect":
        ev["requestContext"]["disconnectStatusCode"] = 1001
        ev["requestContext"]["disconnectReason"] = "Going away"
    return ev

GAME = "sample-game-1="
SERVER = "sample-server-1="

def gamelink(action, request_id, target, data):
    """A GameLink frame as the library sends it: keys sorted, no empty target."""
    params = {"request_id": request_id}
    if target:
        params["target"] = target
    return json.dumps({"action": action, "data": data, "params": params},
                      sort_keys=True, separators=(",", ":"))

def stream_job(client, part, frame, to=None, key_part=None):
    """A DynamoDB stream record of a fan-out job item (what the worker receives):
    `pk` `<client>|job|<part>` (a channel's or shard's jobs share it, so they are
    processed in order), `sk` its send order, `pt` the part (`r` for a follow-up,
    with the connection ids in `to`), `n` the attempt. No `at` (send time): a
    sample event is never dropped as stale."""
    key_part = key_part or ("r:sample" if to else part)
    keys = {"pk": {"S": f"{client}|job|{key_part}"}, "sk": {"S": "00000000000000000001|sample"}}
    image = dict(keys, pt={"S": part}, cl={"S": client}, fr={"S": frame},
                 n={"N": "1" if to else "0"}, expires_at={"N": str(EXPIRES)})
    if to:
        image["to"] = {"SS": to}
    return {"Records": [{
        "eventID": "sample-event-id",
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1795593600,
            "Keys": keys,
            "NewImage": image,
            "SequenceNumber": "111100000000000000000001",
            "SizeBytes": 200,
            "StreamViewType": "NEW_IMAGE",
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/medkit-connections/stream/2026-11-25T00:00:00.000",
    }]}

def receipt(transaction_id, user, sku, cost):
    """A Twitch Bits receipt: an HS256 JWT signed with the extension secret,
    topic bits_transaction_receipt (what onTransactionComplete hands over)."""
    b64 = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    claims = {"topic": "bits_transaction_receipt", "exp": EXPIRES, "data": {
        "transactionId": transaction_id, "time": "2026-11-25 08:00:00.000 +0000 UTC", "userId": user,
        "product": {"domainId": f"twitch.ext.{CLIENT}", "sku": sku, "displayName": "Fancy Hat",
                    "cost": {"amount": cost, "type": "bits"}, "inDevelopment": True}}}
    signed = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
    sig = hmac.new(base64.b64decode(SECRET), signed.encode(), hashlib.sha256).digest()
    return signed + "." + b64(sig)

def sqs_timer(message_id, **timer):
    """An SQS event of one message of the timers queue (what the timers
    function receives): the body is a timer's wire form (`k` kind, `at` due
    time in ms, `c` client, `ch` channel, `p` poll id, `r` run)."""
    body = json.dumps(timer, sort_keys=True, separators=(",", ":"))
    return {"Records": [{
        "messageId": message_id,
        "receiptHandle": "sample-receipt-handle",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795593600000",
                       "SenderId": "AROASAMPLE", "ApproximateFirstReceiveTimestamp": "1795593600900"},
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:medkit-TimersQueue",
        "awsRegion": "us-east-1",
    }]}

def main():
    viewer = token("viewer", user="2002")
    broadcaster = token("broadcaster", user="1001")
    admin = token("admin")
    backend = token("backend")
    stores = {
        "01-channel-state-post": event("POST", "/v1/e/channel_state", auth=broadcaster, body={"round": 1, "teams": {"red": 0}}),
        "02-channel-state-patch": event("PATCH", "/v1/e/channel_state", auth=broadcaster, body={"teams": {"red": 5}}),
        "03-channel-state-get": event("GET", "/v1/e/channel_state", auth=viewer),
        "04-viewer-state-post": event("POST", "/v1/e/viewer_state", auth=viewer, body={"seen_intro": True}),
        "05-extension-viewer-state-patch": event("PATCH", "/v1/e/extension_viewer_state", auth=viewer,
                                                 body=[{"op": "add", "path": "/xp", "value": 10}]),
        "06-all-state-get": event("GET", "/v1/e/all_state", auth=viewer),
        "07-extension-viewer-state-multi-get": event("GET", "/v1/e/extension_viewer_state", "user_ids=2002,3003", auth=admin),
        "08-extension-state-post": event("POST", "/v1/e/extension_state", auth=admin, body={"season": 4}),
        "09-hidden-state-get": event("GET", "/v1/e/extension_hidden_state", auth=admin),
        "10-config-channel-post": event("POST", "/v1/e/config/channel", auth=broadcaster, body={"theme": "dark"}),
        "11-config-get": event("GET", "/v1/e/config", auth=viewer),
        "12-json-store-post": event("POST", "/v1/e/json_store", "id=leaderboard", auth=broadcaster, body={"top": ["2002"]}),
        "13-json-store-get": event("GET", "/v1/e/json_store", "id=leaderboard", auth=viewer),
    }
    auth = {
        "01-authtoken-post": event("POST", "/v1/e/authtoken", "role=viewer",
                                   body={"app_id": CLIENT, "channel_id": "1001", "role": "viewer", "user_id": "2002"}),
        "02-user-info-get": event("GET", "/v1/e/user_info", auth=viewer),
        "03-user-ids-get": event("GET", "/v1/e/user_ids", auth=admin),
        "04-pin-post": event("POST", "/v1/e/pin", body={"identifier": CLIENT}),
        "05-pin-token-exists-get": event("GET", "/v1/e/pin_token_exists", auth=broadcaster),
        "06-pin-delete": event("DELETE", "/v1/e/pin", auth=broadcaster),
        "07-gamelink-token-post": event("POST", "/v1/e/gamelink/token", auth=broadcaster),
    }
    viewer2 = token("viewer", user="3003")
    q = {"id": "q1", "name": "Who wins?", "short_name": "q1", "description": "",
         "options": [{"id": "red", "name": "Red", "short_name": "r", "description": ""},
                     {"id": "blue", "name": "Blue", "short_name": "b", "description": ""}]}
    aggregate = {
        "01-vote-post": event("POST", "/v1/e/vote", "id=poll1", auth=viewer, body={"value": 2}),
        "02-vote-post-weighted": event("POST", "/v1/e/vote", "id=poll1", auth=viewer2, body={"value": 5, "count": 3}),
        "03-vote-get": event("GET", "/v1/e/vote", "id=poll1", auth=viewer),
        "04-vote-logs-get": event("GET", "/v1/e/vote_logs", "id=poll1", auth=admin),
        "05-rank-post": event("POST", "/v1/e/rank", "id=food", auth=viewer, body={"key": "pizza"}),
        "06-rank-get": event("GET", "/v1/e/rank", "id=food", auth=viewer),
        "07-accumulate-post": event("POST", "/v1/e/accumulate", "id=ideas", auth=viewer, body={"idea": "more cats"}),
        "08-accumulate-get": event("GET", "/v1/e/accumulate", "id=ideas&start=undefined", auth=broadcaster),
        "09-curated-poll-edit-post": event("POST", "/v1/e/curated_poll_edit", auth=broadcaster, body=q),
        "10-curated-poll-state-post": event("POST", "/v1/e/curated_poll_state", "id=q1", auth=broadcaster,
                                            body={"transition": "state-unlocked"}),
        "11-curated-poll-post": event("POST", "/v1/e/curated_poll", auth=viewer, body={"question_id": "q1", "vote": "red"}),
        "12-curated-poll-get": event("GET", "/v1/e/curated_poll", auth=viewer),
        "13-team-membership-get": event("GET", "/v1/e/team_membership", auth=viewer),
        "14-curated-poll-leaderboard-get": event("GET", "/v1/e/curated_poll_leaderboard", auth=admin),
        "15-rank-delete": event("DELETE", "/v1/e/rank", "id=food", auth=broadcaster),
        "16-vote-delete": event("DELETE", "/v1/e/vote", "id=poll1", auth=broadcaster),
    }
    backend = token("backend")
    codes = {
        "01-codes-put": event("PUT", "/v1/e/codes", auth=backend,
                              body={"codes": [["GOLD-0001", "GOLD-0002"]], "names": ["gold"], "indices": [0]}),
        "02-codes-append-put": event("PUT", "/v1/e/codes", "append=true", auth=backend,
                                     body={"codes": [["GOLD-0003"]], "names": ["gold"], "indices": [0]}),
        "03-codes-get": event("GET", "/v1/e/codes", auth=backend),
        "04-codes-mark-from-list-post": event("POST", "/v1/e/codes/mark_from_list", auth=backend,
                                              body={"users": ["2002"], "prizes": [0], "prize_limits": [2]}),
        "05-codes-mark-from-poll-post": event("POST", "/v1/e/codes/mark_from_poll", auth=backend,
                                              body={"poll_id": "poll1", "correct": 2, "cutoff_timestamp": EXPIRES,
                                                    "prizes": [0], "prize_limits": [1]}),
        "06-codes-eligible-get": event("GET", "/v1/e/codes/eligible", auth=viewer),
        "07-codes-redeem-post": event("POST", "/v1/e/codes/redeem", auth=viewer, body={"all_prizes": 0}),
        "08-codes-redeemed-get": event("GET", "/v1/e/codes/redeemed", auth=viewer),
        "09-codes-delete": event("DELETE", "/v1/e/codes", auth=backend),
    }
    socket = {
        "01-connect": ws_event("$connect", "sample-conn-1=", query={"client_id": CLIENT, "token": viewer}),
        "02-default-ping": ws_event("$default", "sample-conn-1=", body='{"type":"ping"}'),
        "03-default-other": ws_event("$default", "sample-conn-1=", body="hello"),
        "04-disconnect": ws_event("$disconnect", "sample-conn-1="),
        # A game (GameLink): no token at the handshake; it logs in with a PIN
        # the broadcaster got from POST gamelink/token (SMPL23: the test makes it).
        "05-gamelink-connect": ws_event("$connect", GAME, query={"client_id": CLIENT}),
        "06-gamelink-authenticate": ws_event("$default", GAME, body=gamelink(
            "authenticate", 1, "", {"client_id": CLIENT, "pin": "SMPL23"})),
        "07-gamelink-set-state": ws_event("$default", GAME, body=gamelink(
            "set", 2, "state", {"state": {"level": 2}, "state_id": "channel"})),
        "08-gamelink-subscribe-state": ws_event("$default", GAME, body=gamelink(
            "subscribe", 3, "state", {"topic_id": "channel"})),
        "09-gamelink-disconnect": ws_event("$disconnect", GAME),
        # A game server: logs in with a backend token the extension signed,
        # and runs a match across two channels and a poll in both.
        "10-gamelink-server-connect": ws_event("$connect", SERVER, query={"client_id": CLIENT}),
        "11-gamelink-server-authenticate": ws_event("$default", SERVER, body=gamelink(
            "authenticate", 1, "", {"client_id": CLIENT, "jwt": backend})),
        "12-gamelink-match-create": ws_event("$default", SERVER, body=gamelink(
            "create", 2, "match", {"id": "match-1"})),
        "13-gamelink-match-add-channels": ws_event("$default", SERVER, body=gamelink(
            "add_channels", 3, "match", {"channel_ids": ["1001", "1002"], "id": "match-1"})),
        "14-gamelink-match-poll-create": ws_event("$default", SERVER, body=gamelink(
            "create", 4, "match_poll", {"id": "match-1", "poll": {
                "config": {"endsIn": 600}, "options": ["left", "right"], "poll_id": "route",
                "prompt": "Which way?"}})),
        "15-gamelink-server-disconnect": ws_event("$disconnect", SERVER),
    }
    broadcast = {
        "01-broadcast-post": event("POST", "/v1/e/broadcast", auth=broadcaster,
                                   body={"target": "broadcast", "event": "score", "channel_id": "1001", "data": {"red": 5}}),
        "02-broadcast-whisper-get": event("GET", "/v1/e/broadcast", auth=broadcaster,
                                          body={"target": "whisper-U2002", "event": "hint", "user_id": "1001", "data": "psst"}),
        "03-extension-broadcast-post": event("POST", "/v1/e/extension_broadcast", auth=admin,
                                             body={"target": "broadcast", "event": "season", "data": {"n": 4}}),
        "04-whisper-self-post": event("POST", "/v1/e/whisper_self", auth=viewer, body={"event": "sync", "data": {"tab": 2}}),
        "05-pusher-broadcast-post": event("POST", "/v1/e/pusher_broadcast", auth=broadcaster,
                                          body={"target": "broadcast", "event": f"sandbox:{CLIENT}:score", "user_id": "1001", "data": 1}),
        "06-datastream-post": event("POST", "/v1/e/datastream", auth=viewer,
                                    body={"events": [{"type": "cheer", "by": "U2002"}]}),
    }
    frame = json.dumps({"topic": "global", "message": json.dumps({"event": f"sandbox:{CLIENT}:season", "data": {"n": 4}}),
                        "id": "5a3e1f0c9b7d2e4a", "seq": 1795593600000000})
    fanout = {
        "01-job-shard": stream_job(CLIENT, "s:0", frame),
        "02-job-follow-up": stream_job(CLIENT, "r", frame, to=["sample-conn-1="]),
        # A relay job (MEDKIT_TWITCH_RELAY): the frame is the envelope's
        # message string; a channel's relay jobs share partition `t:<channel>`.
        "03-job-twitch-relay": stream_job(
            CLIENT, "t:1001:broadcast",
            json.dumps({"event": f"sandbox:{CLIENT}:score", "data": {"red": 5}}), key_part="t:1001"),
    }
    purchases = {
        "01-transaction-post": event("POST", "/v1/e/bits/transactions", auth=viewer, body={
            "transactionId": "sample-tx-1", "userId": "2002", "displayName": "Sample Viewer",
            "initiator": "current_user", "transactionReceipt": receipt("sample-tx-1", "2002", "hat", 100),
            "product": {"sku": "hat", "displayName": "Fancy Hat", "cost": {"amount": 100, "type": "bits"}}}),
        "02-transactions-get": event("GET", "/v1/e/bits/transactions", auth=broadcaster),
    }
    # Due long ago (fired at once), and one due in 2100 (sent round again).
    timers = {
        "01-vote-figures": sqs_timer("sample-message-1", k="vote_figures", at=0, c=CLIENT, ch="1001", p="poll1"),
        "02-poll-ends": sqs_timer("sample-message-2", k="poll_ends", at=0, c=CLIENT, ch="1001", p="boss", r="sample-run"),
        "03-poll-starts-later": sqs_timer("sample-message-3", k="poll_starts", at=4102444800000, c=CLIENT,
                                          ch="1001", p="boss", r="sample-run"),
    }
    families = {"stores": stores, "auth": auth, "aggregate": aggregate, "codes": codes,
                "socket": socket, "broadcast": broadcast, "fanout": fanout, "timers": timers,
                "purchases": purchases}
    wanted = sys.argv[1:] or list(families)
    for family, events in ((f, families[f]) for f in wanted):
        d = os.path.join(ROOT, "events", family)
        os.makedirs(d, exist_ok=True)
        for name, ev in events.items():
            with open(os.path.join(d, name + ".json"), "w") as f:
                json.dump(ev, f, indent=2)
                f.write("\n")
    print(f"wrote the events of {', '.join(wanted)}", file=sys.stderr)

if __name__ == "__main__":
    main()
