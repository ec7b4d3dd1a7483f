// The messenger on its own, with a fake WebSocket: topics, decoding, order,
// reconnects. No server.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const zlib = require('node:zlib');

const { createMessenger, install, decodeEnvelope } = require('../messenger.js');

class FakeSocket {
  constructor(url) {
    this.url = new URL(url);
    this.readyState = 0;
    this.sent = [];
    FakeSocket.opened.push(this);
  }
  open() {
    this.readyState = 1;
    this.onopen();
  }
  receive(frame) {
    this.onmessage({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) });
  }
  send(text) {
    this.sent.push(text);
  }
  close() {
    this.readyState = 3;
    this.onclose({ code: 1000 });
  }
}
FakeSocket.opened = [];

function setup(tokens = ['t1', 't2', 't3']) {
  FakeSocket.opened = [];
  const errors = [];
  const queue = [...tokens];
  const m = createMessenger(null, {
    url: 'ws://127.0.0.1:9/ws',
    WebSocket: FakeSocket,
    token: () => queue[0],
    onError: (e) => errors.push(e),
  });
  m.extensionID = 'cid';
  m.channelID = '123';
  return { m, errors, nextToken: () => queue.shift() };
}

const until = async (pred, what) => {
  for (let i = 0; i < 300; i++) {
    if (pred()) {
      return;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
};

const envelope = (event, data) => JSON.stringify({ event: `sandbox:cid:${event}`, data });

test('decodes plain and base64(zlib) envelopes', async () => {
  const json = envelope('e', { n: [1, 2, 3] });
  assert.deepEqual(await decodeEnvelope(json), JSON.parse(json));
  const packed = zlib.deflateSync(Buffer.from(json)).toString('base64');
  assert.deepEqual(await decodeEnvelope(packed), JSON.parse(json));
  assert.deepEqual(await decodeEnvelope(''), {});
  await assert.rejects(decodeEnvelope('not base64 zlib!'));
});

test('connects on the first listen with client id and token, once', async () => {
  const { m } = setup();
  assert.equal(FakeSocket.opened.length, 0);
  m.listen('cid', 'broadcast', () => {});
  m.listen('cid', 'whisper-U1', () => {});
  assert.equal(FakeSocket.opened.length, 1);
  const ws = FakeSocket.opened[0];
  assert.equal(ws.url.pathname, '/ws');
  assert.equal(ws.url.searchParams.get('client_id'), 'cid');
  assert.equal(ws.url.searchParams.get('token'), 't1');
  m.close();
});

test('routes frames by topic: global to broadcast listeners, whispers to whisper listeners', async () => {
  const { m } = setup();
  const got = { broadcast: [], whisper: [] };
  m.listen('cid', 'broadcast', (p) => got.broadcast.push(p.data));
  m.listen('cid', 'whisper-U1', (p) => got.whisper.push(p.data));
  const ws = FakeSocket.opened[0];
  ws.open();
  ws.receive({ topic: 'broadcast', message: envelope('a', 1) });
  ws.receive({ topic: 'global', message: envelope('b', 2) });
  ws.receive({ topic: 'whisper-555', message: envelope('c', 3) });
  ws.receive({ type: 'pong' });
  ws.receive({ type: 'error', reason: 'sockets only receive' });
  ws.receive('not json');
  await until(() => got.whisper.length === 1 && got.broadcast.length === 2, 'the frames');
  assert.deepEqual(got, { broadcast: [1, 2], whisper: [3] });
  m.close();
});

test('a compressed frame does not overtake the plain one after it', async () => {
  const { m } = setup();
  const order = [];
  m.listen('cid', 'broadcast', (p) => order.push(p.data.n));
  const ws = FakeSocket.opened[0];
  ws.open();
  const big = zlib.deflateSync(Buffer.from(envelope('big', { n: 1, pad: 'x'.repeat(5000) })));
  ws.receive({ topic: 'broadcast', message: big.toString('base64') });
  ws.receive({ topic: 'broadcast', message: envelope('small', { n: 2 }) });
  await until(() => order.length === 2, 'both frames');
  assert.deepEqual(order, [1, 2]);
  m.close();
});

test('unlisten and a throwing listener do not disturb the others', async () => {
  const { m, errors } = setup();
  const got = [];
  const h = m.listen('cid', 'broadcast', () => got.push('removed'));
  m.listen('cid', 'broadcast', () => {
    throw new Error('page bug');
  });
  m.listen('cid', 'broadcast', (p) => got.push(p.data));
  m.unlisten('cid', h);
  const ws = FakeSocket.opened[0];
  ws.open();
  ws.receive({ topic: 'broadcast', message: envelope('a', 'kept') });
  await until(() => got.length === 1, 'the frame');
  assert.deepEqual(got, ['kept']);
  assert.equal(errors[0].message, 'page bug');
  m.close();
});

test('a dropped socket reconnects with the current token; close() stops that', async () => {
  const { m, nextToken } = setup();
  m.listen('cid', 'broadcast', () => {});
  const first = FakeSocket.opened[0];
  first.open();
  await m.ready();
  nextToken(); // the client refreshed its token
  first.close(); // dropped by the server
  await until(() => FakeSocket.opened.length === 2, 'the reconnect');
  assert.equal(FakeSocket.opened[1].url.searchParams.get('token'), 't2');
  FakeSocket.opened[1].open();
  await m.ready();
  m.close();
  assert.equal(FakeSocket.opened[1].readyState, 3);
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(FakeSocket.opened.length, 2, 'no reconnect after close()');
  await assert.rejects(m.ready(), /closed/);
});

test('reconnects with the current token before the old one expires', async () => {
  const jwt = (exp) =>
    `h.${Buffer.from(JSON.stringify({ exp, role: 'viewer' })).toString('base64url')}.s`;
  const soon = jwt(Math.floor(Date.now() / 1000) + 2);
  const later = jwt(Math.floor(Date.now() / 1000) + 3600);
  FakeSocket.opened = [];
  const tokens = [soon];
  const m = createMessenger(null, {
    url: 'ws://127.0.0.1:9/ws',
    WebSocket: FakeSocket,
    token: () => tokens[0],
    renewBeforeMs: 1500,
  });
  m.extensionID = 'cid';
  m.listen('cid', 'broadcast', () => {});
  FakeSocket.opened[0].open();
  await m.ready();
  tokens[0] = later; // the client refreshed its token meanwhile
  await until(() => FakeSocket.opened.length === 2, 'the renewal');
  assert.equal(FakeSocket.opened[0].readyState, 3, 'the old socket was closed');
  assert.equal(FakeSocket.opened[1].url.searchParams.get('token'), later);
  FakeSocket.opened[1].open();
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(FakeSocket.opened.length, 2, 'a token an hour away waits');
  m.close();
});

test('waits for a token before connecting', async () => {
  const { m, nextToken } = setup([undefined, 't9']);
  m.listen('cid', 'broadcast', () => {});
  assert.equal(FakeSocket.opened.length, 0, 'no token yet: no socket');
  nextToken(); // the client is authorized now
  await until(() => FakeSocket.opened.length === 1, 'the connection');
  assert.equal(FakeSocket.opened[0].url.searchParams.get('token'), 't9');
  m.close();
});

test('send posts a broadcast for the channel through the client', async () => {
  const { m } = setup();
  const calls = [];
  const client = {
    signedRequest: (...args) => {
      calls.push(args);
      return Promise.resolve({});
    },
  };
  await m.send('cid', 'hello', 'whisper-U1', { a: 1 }, client);
  assert.deepEqual(calls, [
    ['cid', 'POST', 'broadcast', { data: { a: 1 }, event: 'hello', target: 'whisper-U1', user_id: '123' }],
  ]);
});

test('install swaps the messenger and closes the default one', () => {
  let closed = 0;
  const Muxy = { messenger: { close: () => closed++ } };
  const m = install(Muxy, { url: 'ws://127.0.0.1:9/ws', WebSocket: FakeSocket });
  assert.equal(Muxy.messenger, m);
  assert.equal(closed, 1);
  assert.throws(() => createMessenger(Muxy, {}), /options.url/);
});

test('a frame delivered twice (a retried fan-out job) is shown once', async () => {
  const { m } = setup();
  const got = [];
  m.listen('cid', 'broadcast', (p) => got.push(p.data));
  const ws = FakeSocket.opened[0];
  ws.open();
  const frame = (id, seq, n) => ({ topic: 'broadcast', message: envelope('score', n), id, seq });
  ws.receive(frame('a1', 10, 1));
  ws.receive(frame('a2', 11, 2));
  ws.receive(frame('a1', 10, 1));
  // Messages are all shown, even one older than the last: only snapshots
  // are replaced by newer ones.
  ws.receive(frame('a0', 9, 0));
  ws.receive({ topic: 'broadcast', message: envelope('legacy', 3) });
  ws.receive({ topic: 'broadcast', message: envelope('legacy', 3) });
  await until(() => got.length === 5, 'the frames');
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(got, [1, 2, 0, 3, 3]);
  m.close();
});

test('a snapshot older than the last one shown is dropped, per event and topic', async () => {
  const { m } = setup();
  const got = [];
  m.listen('cid', 'broadcast', (p) => got.push([p.event.split(':')[2], p.data]));
  const ws = FakeSocket.opened[0];
  ws.open();
  const snap = (event, id, seq, data, topic = 'broadcast') => ({
    topic,
    message: envelope(event, data),
    id,
    seq,
    snapshot: true,
  });
  ws.receive(snap('channel_state_update', 's2', 20, 'new'));
  ws.receive(snap('channel_state_update', 's1', 10, 'old'));
  ws.receive(snap('vote_update:p', 'v1', 15, 'votes'));
  ws.receive(snap('channel_state_update', 's1b', 10, 'global', 'global'));
  ws.receive(snap('channel_state_update', 's3', 30, 'newest'));
  await until(() => got.length === 4, 'the fresh snapshots');
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(got, [
    ['channel_state_update', 'new'],
    ['vote_update', 'votes'],
    ['channel_state_update', 'global'],
    ['channel_state_update', 'newest'],
  ]);
  m.close();
});

test('the ids remembered are bounded', async () => {
  const { m } = setup();
  let n = 0;
  m.listen('cid', 'broadcast', () => n++);
  const ws = FakeSocket.opened[0];
  ws.open();
  for (let i = 0; i < 1100; i++) {
    ws.receive({ topic: 'broadcast', message: envelope('e', i), id: `id${i}`, seq: i });
  }
  // The first id was forgotten (1,024 are kept); a recent one was not.
  ws.receive({ topic: 'broadcast', message: envelope('e', 0), id: 'id0', seq: 0 });
  ws.receive({ topic: 'broadcast', message: envelope('e', 1099), id: 'id1099', seq: 1099 });
  await until(() => n >= 1101, 'the frames');
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(n, 1101);
  m.close();
});
