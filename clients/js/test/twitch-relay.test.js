// The Twitch relay end to end (issue #18): the official client, unmodified,
// in its Twitch production environment (a page served from
// <client id>.ext-twitch.tv inside Twitch's frame, window.Twitch.ext given
// by Twitch) with NO messenger.js installed: its own TwitchMessenger listens
// on Twitch's Extension PubSub, which here is fed by a Helix stand-in that
// `medkit serve --twitch-relay` posts to. One page per process: this file
// runs in its own.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { startServer } = require('./support/server.js');
const { installBrowserGlobals, outbound } = require('./support/globals.js');
const { startHelix, signJwt } = require('./support/twitch.js');

const CLIENT = 'relayjs';
const SECRET = Buffer.from('the relay test secret, loopback only');
const OWNER = '424242';
const CHANNEL = '1001';

let helix;
let server;
let sdk;
let Muxy;
let viewer; // this page's Twitch.ext
let neighbour; // another viewer on the same channel
let elsewhere; // a viewer on another channel

/** A JWT as Twitch's helper hands an extension (or as an EBS signs one). */
function twitchToken(role, channel, opaque, user) {
  const claims = {
    exp: Math.floor(Date.now() / 1000) + 3600,
    opaque_user_id: opaque,
    channel_id: channel,
    role,
    is_unlinked: false,
    pubsub_perms: { listen: ['broadcast', 'global', `whisper-${opaque}`], send: [] },
  };
  if (user) claims.user_id = user;
  return signJwt(claims, SECRET);
}

async function rest(method, path, token, body) {
  const res = await fetch(`${server.base}/v1/e/${path}`, {
    method,
    headers: { authorization: `${CLIENT} ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  assert.equal(res.status, 200, `${path}: ${text}`);
  return text ? JSON.parse(text) : null;
}

const caster = () => twitchToken('broadcaster', CHANNEL, `U${CHANNEL}`, CHANNEL);

/** Resolves with the first (data, event) sdk.listen hears, or rejects. */
function heard(event, user, ms = 15000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sdk.listen(${event}) heard nothing`)), ms);
    const cb = (data, name) => {
      clearTimeout(timer);
      resolve({ data, name, at: Date.now() });
    };
    if (user) sdk.listen(event, user, cb);
    else sdk.listen(event, cb);
  });
}

before(async () => {
  helix = await startHelix({ clientId: CLIENT, secret: SECRET, ownerId: OWNER });
  server = await startServer([
    '--env',
    'production',
    '--extension',
    `${CLIENT}:${SECRET.toString('base64')}`,
    '--twitch-relay',
    `${CLIENT}=${OWNER}`,
    '--helix-url',
    helix.base,
  ]);
  assert.equal(server.clientId, CLIENT);
  viewer = helix.addViewer({ channelId: CHANNEL, opaqueUserId: 'U2002', token: twitchToken('viewer', CHANNEL, 'U2002', '2002') });
  neighbour = helix.addViewer({ channelId: CHANNEL, opaqueUserId: 'U3003', token: twitchToken('viewer', CHANNEL, 'U3003', '3003') });
  elsewhere = helix.addViewer({ channelId: '2002', opaqueUserId: 'U4004', token: twitchToken('viewer', '2002', 'U4004', '4004') });
  // A page Twitch serves: its own origin, inside Twitch's frame.
  installBrowserGlobals(`https://${CLIENT}.ext-twitch.tv`);
  global.top = {};
  global.parent = {};
  global.Twitch = { ext: viewer.ext };
  Muxy = require('@muxy/extensions-js').default;
  // All a front end sets: the client id and medkit's URL.
  Muxy.debug(new Muxy.DebuggingOptions().url(server.base));
  Muxy.setup({ clientID: CLIENT });
  sdk = new Muxy.SDK();
  await sdk.loaded();
});

after(async () => {
  if (server) await server.stop();
  if (helix) await helix.stop();
});

test('the client runs in its Twitch production environment with no medkit messenger', () => {
  assert.equal(Muxy.Util.currentEnvironment().environment, 'production');
  const loaded = Object.keys(require.cache).filter((p) => p.endsWith('messenger.js') && !p.includes('node_modules'));
  assert.deepEqual(loaded, [], 'messenger.js is not installed');
  assert.equal(Muxy.messenger.constructor.name, 'TwitchMessenger');
  assert.equal(sdk.user.twitchOpaqueID, 'U2002');
});

test('a channel broadcast reaches sdk.listen through Twitch, and not another channel', async () => {
  const got = heard('score');
  await rest('POST', 'broadcast', caster(), { target: 'broadcast', event: 'score', data: { red: 5 } });
  const { data } = await got;
  assert.deepEqual(data, { red: 5 });
  assert.equal(elsewhere.raw.filter((m) => m.target === 'broadcast').length, 0);
  assert.ok(neighbour.raw.some((m) => m.target === 'broadcast'));
});

test('an extension-wide broadcast arrives on global, on every channel', async () => {
  const got = heard('season');
  const backend = signJwt({ exp: Math.floor(Date.now() / 1000) + 600, role: 'backend', channel_id: CHANNEL }, SECRET);
  await rest('POST', 'extension_broadcast', backend, { target: 'broadcast', event: 'season', data: { n: 4 } });
  assert.deepEqual((await got).data, { n: 4 });
  assert.ok(elsewhere.raw.some((m) => m.target === 'global'));
});

test('a whisper reaches its viewer and no other', async () => {
  const got = heard('psst', 'U2002');
  await rest('POST', 'broadcast', caster(), { target: 'whisper-U2002', event: 'psst', data: { hint: 'left' } });
  assert.deepEqual((await got).data, { hint: 'left' });
  assert.equal(neighbour.raw.filter((m) => m.target.startsWith('whisper')).length, 0);
  assert.equal(elsewhere.raw.filter((m) => m.target.startsWith('whisper')).length, 0);
});

test('a 12 KB message arrives whole (compressed to fit Twitch 5 KB)', async () => {
  const text = 'medkit relays to twitch '.repeat(512); // 12,288 bytes
  const got = heard('big');
  const before = helix.accepted.length;
  await rest('POST', 'broadcast', caster(), { target: 'broadcast', event: 'big', data: { text } });
  assert.equal((await got).data.text, text);
  const sent = helix.accepted.slice(before).filter((a) => a.target === 'broadcast');
  assert.ok(sent.length >= 1);
  for (const m of sent) {
    assert.ok(Buffer.byteLength(m.message) <= 5 * 1024, `${Buffer.byteLength(m.message)} bytes`);
    assert.notEqual(m.message[0], '{', 'not plain JSON: over 5 KB as JSON');
  }
});

test('a REST state write is heard as channel_state_update', async () => {
  const got = heard('channel_state_update');
  await rest('POST', 'channel_state', caster(), { round: 3 });
  const { data } = await got;
  assert.equal(data.round, 3);
});

test('Twitch answering 503, 429 and 500 is retried; the WebSocket path does not wait', async () => {
  const token = twitchToken('viewer', CHANNEL, 'U5005', '5005');
  const ws = new WebSocket(`${server.ws}?client_id=${CLIENT}&token=${token}`);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error('the socket did not open'));
  });
  const onSocket = new Promise((resolve) => {
    ws.onmessage = (ev) => {
      const f = JSON.parse(ev.data);
      if (String(f.message).includes('retry')) resolve(Date.now());
    };
  });
  helix.failNext([503, 429, 500]);
  const answersBefore = helix.answers.length;
  const got = heard('retry');
  await rest('POST', 'broadcast', caster(), { target: 'broadcast', event: 'retry', data: { ok: true } });
  const socketAt = await onSocket;
  const twitch = await got;
  assert.deepEqual(twitch.data, { ok: true });
  assert.deepEqual(helix.answers.slice(answersBefore, answersBefore + 4), [503, 429, 500, 204]);
  // The retries held up Twitch only: the socket had the frame first.
  assert.ok(socketAt <= twitch.at, `socket ${socketAt}, Twitch ${twitch.at}`);
  ws.close();
});

test('the page reached nothing but loopback', () => {
  assert.deepEqual(outbound, []);
});
