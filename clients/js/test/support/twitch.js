// Twitch, as far as the relay's tests need it (issue #18): a Helix stand-in
// on loopback that checks each Send Extension PubSub Message request as
// Twitch documents it, and the Extension PubSub it feeds: `window.Twitch.ext`
// stand-ins (one per simulated viewer) whose listen() callbacks receive
// what Helix accepted, as Twitch's helper calls them: (target, contentType,
// message).
'use strict';

const crypto = require('node:crypto');
const http = require('node:http');

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** An HS256 JWT of `claims` signed with `secret` (raw bytes). */
function signJwt(claims, secret) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const mac = crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest();
  return `${head}.${body}.${b64url(mac)}`;
}

/** The claims of a verified HS256 JWT, or throws saying why not. */
function verifyJwt(token, secret) {
  const parts = String(token).split('.');
  if (parts.length !== 3) throw new Error('not a JWT');
  const header = JSON.parse(Buffer.from(parts[0], 'base64url'));
  if (header.alg !== 'HS256') throw new Error(`alg ${header.alg}`);
  const mac = crypto.createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest();
  const given = Buffer.from(parts[2], 'base64url');
  if (given.length !== mac.length || !crypto.timingSafeEqual(given, mac)) {
    throw new Error('bad signature');
  }
  const claims = JSON.parse(Buffer.from(parts[1], 'base64url'));
  if (typeof claims.exp !== 'number' || claims.exp * 1000 < Date.now()) {
    throw new Error('expired or no exp');
  }
  return claims;
}

/** One viewer's Twitch.ext: listeners by topic, on one channel. */
class ViewerExt {
  constructor({ channelId, opaqueUserId, token, clientId }) {
    this.channelId = channelId;
    this.opaqueUserId = opaqueUserId;
    this.listeners = new Map();
    this.raw = []; // every message delivered to this viewer: {target, message}
    const self = this;
    const noop = () => {};
    this.ext = {
      version: 'stand-in',
      environment: 'production',
      onAuthorized(cb) {
        setTimeout(() => cb({ channelId, clientId, token, userId: opaqueUserId, helixToken: '' }), 0);
      },
      onContext: noop,
      onError: noop,
      onVisibilityChanged: noop,
      onPositionChanged: noop,
      onHighlightChanged: noop,
      listen(topic, cb) {
        if (!self.listeners.has(topic)) self.listeners.set(topic, new Set());
        self.listeners.get(topic).add(cb);
      },
      unlisten(topic, cb) {
        const set = self.listeners.get(topic);
        if (set) set.delete(cb);
      },
      send() {
        throw new Error('Twitch.ext.send: a medkit front end never sends through Twitch');
      },
      bits: { onTransactionComplete: noop, onTransactionCancelled: noop, getProducts: async () => [], useBits: noop },
      purchases: { beginPurchase: noop, onPurchaseComplete: noop },
      actions: { requestIdShare: noop, onFollow: noop },
      features: { isBitsEnabled: true, isChatEnabled: true },
      viewer: { opaqueId: opaqueUserId, role: 'viewer', isLinked: true },
    };
  }

  /** What Twitch does with an accepted message: the viewers it is for hear it. */
  deliver(target, channel, message) {
    const forMe =
      target === 'global' ||
      (channel === this.channelId && (target === 'broadcast' || target === `whisper-${this.opaqueUserId}`));
    if (!forMe) return;
    this.raw.push({ target, message });
    for (const cb of this.listeners.get(target) || []) {
      cb(target, 'application/json', message);
    }
  }
}

/**
 * The Helix stand-in: resolves to {base, accepted, answers, refusals,
 * failNext(statuses), addViewer(opts), stop()}.
 */
async function startHelix({ clientId, secret, ownerId }) {
  const viewers = [];
  const accepted = [];
  const answers = [];
  const refusals = [];
  const faults = [];
  const counts = new Map();

  function check(req, text) {
    if (req.method !== 'POST' || req.url !== '/helix/extensions/pubsub') return [404, 'no such endpoint'];
    if (req.headers['client-id'] !== clientId) return [401, 'Client-Id header is missing or wrong'];
    if (!String(req.headers['content-type'] || '').startsWith('application/json')) {
      return [400, 'Content-Type must be application/json'];
    }
    const auth = String(req.headers.authorization || '');
    if (!auth.startsWith('Bearer ')) return [401, 'missing bearer token'];
    let claims;
    try {
      claims = verifyJwt(auth.slice(7), secret);
    } catch (e) {
      return [401, `invalid JWT: ${e.message}`];
    }
    if (claims.role !== 'external') return [401, 'role must be external'];
    if (claims.user_id !== ownerId) return [401, 'user_id is not the extension owner'];
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      return [400, 'body is not JSON'];
    }
    const allowed = ['target', 'broadcaster_id', 'is_global_broadcast', 'message'];
    const unknown = Object.keys(body).find((k) => !allowed.includes(k));
    if (unknown) return [400, `unknown field ${unknown}`];
    if (!Array.isArray(body.target) || body.target.length !== 1 || typeof body.target[0] !== 'string') {
      return [400, 'target must hold exactly one topic'];
    }
    const target = body.target[0];
    if (!(target === 'broadcast' || target === 'global' || /^whisper-.+/.test(target))) {
      return [400, `unknown target ${target}`];
    }
    if (typeof body.is_global_broadcast !== 'boolean') return [400, 'is_global_broadcast must be a boolean'];
    if (body.is_global_broadcast !== (target === 'global')) {
      return [400, 'is_global_broadcast is true exactly for target global'];
    }
    const channel = body.is_global_broadcast ? null : body.broadcaster_id;
    if (!body.is_global_broadcast && (typeof channel !== 'string' || !channel)) {
      return [400, 'broadcaster_id is required unless global'];
    }
    if (claims.channel_id !== (channel || 'all')) return [401, 'channel_id does not match broadcaster_id'];
    const perms = claims.pubsub_perms && claims.pubsub_perms.send;
    if (!Array.isArray(perms) || !perms.includes(target)) {
      return [401, `pubsub_perms.send does not allow ${target}`];
    }
    if (typeof body.message !== 'string') return [400, 'message must be a string'];
    if (Buffer.byteLength(body.message) > 5 * 1024) return [422, 'message is over 5 KB'];
    const bucket = `${channel || 'all'}|${Math.floor(Date.now() / 60000)}`;
    const n = counts.get(bucket) || 0;
    if (n >= 100) return [429, 'rate limited'];
    counts.set(bucket, n + 1);
    return [204, { target, channel, message: body.message }];
  }

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const injected = faults.shift();
      const [status, out] = injected ? [injected, 'injected'] : check(req, Buffer.concat(chunks).toString());
      answers.push(status);
      if (status === 204) {
        accepted.push({ ...out, at: Date.now() });
        res.writeHead(204).end();
        for (const v of viewers) v.deliver(out.target, out.channel, out.message);
        return;
      }
      refusals.push([status, out]);
      const headers = { 'content-type': 'application/json' };
      if (status === 429) {
        const now = Math.floor(Date.now() / 1000);
        headers['ratelimit-reset'] = String(injected ? now + 1 : (Math.floor(now / 60) + 1) * 60);
      }
      res.writeHead(status, headers).end(JSON.stringify({ error: 'stand-in', status, message: out }));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    base: `http://127.0.0.1:${port}/helix`,
    accepted,
    answers,
    refusals,
    failNext: (statuses) => faults.push(...statuses),
    addViewer(opts) {
      const v = new ViewerExt({ clientId, ...opts });
      viewers.push(v);
      return v;
    },
    /** Resolves once `n` messages were accepted, or rejects after `ms`. */
    waitFor(n, ms = 15000) {
      const until = Date.now() + ms;
      return new Promise((resolve, reject) => {
        const poll = () => {
          if (accepted.length >= n) return resolve(accepted.slice());
          if (Date.now() > until) {
            return reject(new Error(`Helix accepted ${accepted.length} of ${n}: ${JSON.stringify(refusals)}`));
          }
          setTimeout(poll, 20).unref();
        };
        poll();
      });
    },
    stop: () => new Promise((resolve) => server.close(resolve)),
  };
}

module.exports = { startHelix, signJwt };
