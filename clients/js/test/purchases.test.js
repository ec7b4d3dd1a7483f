// Bits purchases end to end: the official client's SandboxDev purchase(sku)
// posts the transaction (Muxy.setup({transactionsEnabled: true})), its
// onUserPurchase promise resolves with medkit's record, and GameLink games
// of the channel (a client of our own, speaking the library's frames)
// receive it until one validates it. One page per process: this file runs
// in its own.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');

const { startServer } = require('./support/server.js');
const { openPage } = require('./support/page.js');

const CHANNEL = '321';
let server;
let viewer;
const games = [];

/** A game's GameLink connection: one reply per request id, updates kept. */
class Game {
  constructor(ws) {
    this.ws = ws;
    this.nextId = 1;
    this.waiting = new Map();
    this.updates = [];
    ws.onmessage = (ev) => {
      const f = JSON.parse(ev.data);
      if (f.meta.action === 'update') {
        this.updates.push(f);
      } else if (this.waiting.has(f.meta.request_id)) {
        this.waiting.get(f.meta.request_id)(f);
        this.waiting.delete(f.meta.request_id);
      }
    };
  }

  static async login(pin) {
    const ws = new WebSocket(`${server.base.replace('http://', 'ws://')}/0.2.0/${server.clientId}`);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error('the game could not connect'));
    });
    const game = new Game(ws);
    games.push(game);
    await game.ok('authenticate', '', { client_id: server.clientId, pin });
    return game;
  }

  request(action, target, data) {
    const id = this.nextId++;
    const params = target ? { request_id: id, target } : { request_id: id };
    this.ws.send(JSON.stringify({ action, data, params }));
    return new Promise((resolve, reject) => {
      this.waiting.set(id, resolve);
      setTimeout(() => reject(new Error(`no reply to ${action} ${target}`)), 5000).unref();
    });
  }

  async ok(action, target, data) {
    const r = await this.request(action, target, data);
    assert.equal(r.errors, undefined, JSON.stringify(r));
    return r.data;
  }

  /** The purchases pushed to this game within `ms`. */
  async purchases(ms) {
    await new Promise((r) => setTimeout(r, ms));
    return this.updates.filter((u) => u.meta.target === 'twitchPurchaseBits').map((u) => u.data);
  }
}

async function token(role, user) {
  const res = await fetch(`${server.base}/v1/e/authtoken?role=${role}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ app_id: server.clientId, channel_id: CHANNEL, user_id: user }),
  });
  assert.equal(res.status, 200);
  return (await res.json()).token;
}

/** A GameLink PIN, as the broadcaster's extension asks for one. */
async function pin() {
  const t = await token('broadcaster', CHANNEL);
  const res = await fetch(`${server.base}/v1/e/gamelink/token`, {
    method: 'POST',
    headers: { Authorization: `${server.clientId} ${t}`, 'Content-Type': 'application/json' },
    body: '{}',
  });
  assert.equal(res.status, 200);
  return (await res.json()).token;
}

before(async () => {
  server = await startServer();
  // The products the SandboxDev purchase client sells.
  global.MEDKIT_PURCHASABLE_ITEMS = [
    { sku: 'hat', displayName: 'Fancy Hat', cost: { amount: 100, type: 'bits' } },
  ];
  viewer = await openPage({ server, role: 'viewer', channel: CHANNEL, user: '456', transactionsEnabled: true });
});

after(async () => {
  for (const g of games) {
    g.ws.close();
  }
  await server.stop();
});

test('purchase(sku) is recorded, reaches the games, and stops after validate', async () => {
  const first = await Game.login(await pin());
  await first.ok('subscribe', 'twitchPurchaseBits', { sku: 'hat' });
  const bought = new Promise((resolve) => viewer.sdk.onUserPurchase((tx, answer) => resolve({ tx, answer })));
  viewer.sdk.purchase('hat');
  const { tx, answer } = await bought; // the client's simulated purchase takes 3 s
  const raw = await answer;
  const recorded = typeof raw === 'string' ? JSON.parse(raw) : raw;
  assert.equal(recorded.id, tx.transactionId);
  assert.equal(recorded.sku, 'hat');
  assert.equal(recorded.cost, 100);
  assert.equal(recorded.sandbox, true, 'the sandbox does not verify receipts');

  const heard = await first.purchases(300);
  assert.deepEqual(heard.map((p) => p.id), [tx.transactionId]);
  assert.equal(heard[0].muxy_id, recorded.muxy_id);

  // A game that connects later, before anyone validated, receives it too.
  const late = await Game.login(await pin());
  await late.ok('subscribe', 'twitchPurchaseBits', { sku: '*' });
  assert.deepEqual((await late.purchases(300)).map((p) => p.id), [tx.transactionId]);

  const v = await late.ok('validate', 'transaction', { transaction_id: tx.transactionId, details: 'hat given' });
  assert.equal(v.state, 'validated');
  const after = await Game.login(await pin());
  await after.ok('subscribe', 'twitchPurchaseBits', { sku: 'hat' });
  assert.deepEqual(await after.purchases(400), [], 'validated: never delivered again');
});
