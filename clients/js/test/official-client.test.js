// The official @muxy/extensions-js client against `medkit serve`, with
// medkit's messenger: two "browsers" (this process, a viewer; a forked child,
// the broadcaster) plus a raw WebSocket as a second viewer that sees frames.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const zlib = require('node:zlib');

const { startServer } = require('./support/server.js');
const { openPage, outbound } = require('./support/page.js');
const { Browser } = require('./support/browser.js');

const CHANNEL = '123';
let server;
let viewer; // { Muxy, sdk, messenger } in this process
const viewerErrors = [];
let broadcaster; // Browser (child process)
let observer; // raw WebSocket of a second viewer
const observed = [];

/** Polls `pred` until true, bounded in time. */
async function until(pred, what, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const hit = pred();
    if (hit) {
      return hit;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The observer's frame carrying event `name` (plain envelopes), if any yet. */
function observedEvent(name, frames = observed) {
  return frames.find(
    (f) => f.message.startsWith('{') && JSON.parse(f.message).event === `sandbox:${server.clientId}:${name}`,
  );
}

/** A collecting `sdk.listen` callback. */
function inbox() {
  const got = [];
  const cb = (data, event) => got.push({ data, event });
  return { got, cb };
}

async function token(role, user) {
  const body = { app_id: server.clientId, channel_id: CHANNEL };
  if (user) {
    body.user_id = user;
  }
  const res = await fetch(`${server.base}/v1/e/authtoken?role=${role}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200);
  return (await res.json()).token;
}

before(async () => {
  server = await startServer();
  viewer = await openPage({
    server,
    role: 'viewer',
    channel: CHANNEL,
    user: '456',
    onError: (err) => viewerErrors.push(err),
  });
  broadcaster = new Browser();
  await broadcaster.open({ server, role: 'broadcaster', channel: CHANNEL, user: CHANNEL });
  const t = await token('viewer', '789');
  const url = `${server.ws}?client_id=${encodeURIComponent(server.clientId)}&token=${encodeURIComponent(t)}`;
  observer = new WebSocket(url);
  observer.onmessage = (ev) => observed.push(JSON.parse(ev.data));
  await new Promise((resolve, reject) => {
    observer.onopen = resolve;
    observer.onerror = () => reject(new Error('observer could not connect'));
  });
});

after(async () => {
  if (observer) {
    observer.close();
  }
  if (viewer) {
    viewer.messenger.close();
  }
  if (broadcaster) {
    await broadcaster.close();
  }
  if (server) {
    await server.stop();
  }
});

test('sandbox auth through authtoken, then loaded()', async () => {
  assert.equal(viewer.sdk.user.role, 'viewer');
  assert.ok(viewer.sdk.user.twitchOpaqueID, 'the viewer has an opaque id');
  assert.equal(viewer.messenger.extensionID, server.clientId);
  assert.equal(viewer.messenger.channelID, CHANNEL);
  const other = await broadcaster.call('getAllState');
  assert.equal(typeof other, 'object');
});

test('state round trip between the two browsers, with channel_state_update', async () => {
  const updates = inbox();
  const h = viewer.sdk.listen('channel_state_update', updates.cb);
  await viewer.messenger.ready();
  const round = Date.now();
  await broadcaster.call('setChannelState', { round, title: 'finals' });
  const all = await viewer.sdk.getAllState();
  assert.equal(all.channel.round, round);
  assert.equal(all.channel.title, 'finals');
  const got = await until(() => updates.got.find((u) => u.data && u.data.round === round), 'channel_state_update');
  assert.equal(got.event, 'channel_state_update');
  viewer.sdk.unlisten(h);
});

test('sdk.send from the broadcaster reaches sdk.listen on the viewer', async () => {
  const hello = inbox();
  const h = viewer.sdk.listen('hello', hello.cb);
  await viewer.messenger.ready();
  await broadcaster.send('hello', { song: 'My Heart Will Go On', n: 1 });
  const got = await until(() => hello.got[0], 'the broadcast');
  assert.deepEqual(got, { data: { song: 'My Heart Will Go On', n: 1 }, event: 'hello' });
  // The observer's frame names the topic and carries the envelope string.
  const frame = await until(() => observedEvent('hello'), 'the observer frame');
  assert.equal(frame.topic, 'broadcast');
  assert.deepEqual(JSON.parse(frame.message), {
    event: `sandbox:${server.clientId}:hello`,
    data: { song: 'My Heart Will Go On', n: 1 },
  });
  viewer.sdk.unlisten(h);
});

test('a whisper reaches only the viewer it names', async () => {
  const opaque = viewer.sdk.user.twitchOpaqueID;
  const secret = inbox();
  const h = viewer.sdk.listen('secret', opaque, secret.cb);
  await viewer.messenger.ready();
  const before = observed.length;
  await broadcaster.send('secret', { pin: 4242 }, opaque);
  const got = await until(() => secret.got[0], 'the whisper');
  assert.deepEqual(got, { data: { pin: 4242 }, event: 'secret' });
  // A broadcast sent after the whisper reaches the observer; the whisper never did.
  await broadcaster.send('marker', { after: 'whisper' });
  await until(() => observedEvent('marker', observed.slice(before)), 'the marker');
  assert.ok(
    !observed.slice(before).some((f) => f.message.includes('4242') || f.topic.startsWith('whisper-')),
    'the other viewer saw the whisper',
  );
  viewer.sdk.unlisten(h);
});

test('an envelope over 4 KB arrives compressed and is decoded', async () => {
  const text = 'the quick brown fox jumps over the lazy dog. '.repeat(200); // ~9 KB
  const big = inbox();
  const h = viewer.sdk.listen('big', big.cb);
  await viewer.messenger.ready();
  await broadcaster.send('big', { text });
  const got = await until(() => big.got[0], 'the compressed broadcast');
  assert.equal(got.data.text, text);
  const frame = await until(
    () => observed.find((f) => f.topic === 'broadcast' && !f.message.startsWith('{')),
    'the compressed frame',
  );
  assert.ok(frame.message.length <= 4096, `compressed envelope is ${frame.message.length} bytes`);
  const inflated = JSON.parse(zlib.inflateSync(Buffer.from(frame.message, 'base64')).toString());
  assert.equal(inflated.event, `sandbox:${server.clientId}:big`);
  assert.equal(inflated.data.text, text);
  viewer.sdk.unlisten(h);
});

test('a broadcast too large even compressed is refused (413) and delivers nothing', async () => {
  // Random bytes do not compress: ~8 KB of base64 stays over 4 KB.
  const noise = require('node:crypto').randomBytes(6000).toString('base64');
  const got = inbox();
  const h = viewer.sdk.listen('noise', got.cb);
  await viewer.messenger.ready();
  const errorsBefore = broadcaster.errors.length;
  await broadcaster.send('noise', { noise });
  const err = await broadcaster.waitFor('errors', (e, i) => i >= errorsBefore);
  // The client rejects with the response body: medkit's {"reason": …}.
  assert.match(JSON.parse(err.message).reason, /compressed; the limit is 4096/);
  await broadcaster.send('noise_marker', { after: 'noise' });
  await until(() => observedEvent('noise_marker'), 'the marker');
  assert.equal(got.got.length, 0);
  viewer.sdk.unlisten(h);
});

test('sdk.send by a viewer is refused (403)', async () => {
  const before = viewerErrors.length;
  viewer.sdk.send('viewer_says', { hi: true });
  const err = await until(() => viewerErrors[before], 'the refusal');
  assert.match(err.reason, /role viewer may not/);
});

test('an extension-wide send reaches broadcast listeners (topic global)', async () => {
  const everyone = inbox();
  const h = viewer.sdk.listen('everyone', everyone.cb);
  await viewer.messenger.ready();
  const backend = await token('backend');
  const res = await fetch(`${server.base}/v1/e/extension_broadcast`, {
    method: 'POST',
    headers: { Authorization: `${server.clientId} ${backend}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ target: 'broadcast', event: 'everyone', data: { season: 4 } }),
  });
  assert.equal(res.status, 200);
  const got = await until(() => everyone.got[0], 'the extension-wide send');
  assert.deepEqual(got, { data: { season: 4 }, event: 'everyone' });
  await until(() => observed.find((f) => f.topic === 'global'), 'the global frame');
  viewer.sdk.unlisten(h);
});

test('unlisten stops delivery', async () => {
  const late = inbox();
  const h = viewer.sdk.listen('late', late.cb);
  await viewer.messenger.ready();
  viewer.sdk.unlisten(h);
  await broadcaster.send('late', { n: 1 });
  await until(() => observedEvent('late'), 'the observer frame');
  // The viewer's socket got the frame at the same time; give its dispatch a moment.
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(late.got.length, 0);
});

test('no connection left loopback (the default Pusher messenger was refused and closed)', async () => {
  for (const list of [outbound, await broadcaster.outbound()]) {
    for (const url of list) {
      assert.match(new URL(url).hostname, /pusher\.com$/, `unexpected outbound ${url}`);
    }
  }
});
