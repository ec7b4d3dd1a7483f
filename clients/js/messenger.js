/*
 * A `Muxy.messenger` for @muxy/extensions-js that receives broadcasts over
 * medkit's WebSocket API (API Gateway in AWS, `medkit serve` locally), so an
 * unmodified MEDKit front end gets `sdk.listen` events from this backend.
 *
 *   Muxy.setup({ clientID });
 *   MedkitMessenger.install(Muxy, {
 *     url: 'wss://<api>.execute-api.<region>.amazonaws.com/live', // or ws://127.0.0.1:8080/ws
 *   });
 *   const sdk = new Muxy.SDK();
 *
 * (`install` sets `Muxy.messenger = createMessenger(Muxy, options)` and
 * closes the client's default messenger.)
 *
 * The socket opens on the first `listen` (after `sdk.loaded()`, when the
 * client holds a token), authenticating with `?client_id=…&token=…`. Frames
 * are `{"topic": "broadcast" | "global" | "whisper-<id>", "message": "<envelope>",
 * "id", "seq", "snapshot"?}` where the envelope is `{"event", "data"}` JSON, or
 * base64(zlib(JSON)) when over 4 KB. A frame whose `id` was seen is dropped
 * (retried deliveries), and so is a snapshot older than the last one shown. A dropped socket reconnects with backoff and a fresh token.
 * `send` posts to the backend's `broadcast` endpoint (broadcaster role).
 *
 * Works as a browser <script> (global `MedkitMessenger`) and as a CommonJS
 * module. Needs WebSocket, DecompressionStream, atob, Blob and Response:
 * every current browser, Node 22+ (Node 20 with --experimental-websocket).
 */
(function (root, factory) {
  if (typeof module === 'object' && module.exports) {
    module.exports = factory();
  } else {
    root.MedkitMessenger = factory();
  }
})(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  // API Gateway closes a WebSocket idle for 10 minutes: ping well before.
  const PING_MS = 5 * 60 * 1000;
  // Reconnect delays after a dropped socket (the last one repeats).
  const RETRY_MS = [500, 1000, 2000, 5000, 10000, 30000];
  // The server stops delivering to a connection when its token expires:
  // reconnect with the client's current token this long before.
  const RENEW_BEFORE_MS = 60 * 1000;
  // Frame ids remembered to drop duplicates (a retried fan-out job posts
  // again to recipients it already reached); the oldest are forgotten.
  const SEEN_IDS = 1024;

  /** A JWT's `exp` in milliseconds, or null when it has none. */
  function expiryMs(token) {
    try {
      const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const exp = JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4))).exp;
      return typeof exp === 'number' ? exp * 1000 : null;
    } catch (err) {
      return null;
    }
  }

  /** The `{event, data}` object of an envelope string. */
  async function decodeEnvelope(message) {
    if (message.length === 0) {
      return {};
    }
    if (message[0] === '{' || message[0] === '[') {
      return JSON.parse(message);
    }
    // Over 4 KB: base64 of the zlib-compressed JSON.
    const bytes = Uint8Array.from(atob(message), (c) => c.charCodeAt(0));
    const inflated = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
    return JSON.parse(await new Response(inflated).text());
  }

  /** Whether a listener registered for `listening` gets a frame on `topic`. */
  function matches(listening, topic) {
    if (listening === topic) {
      return true;
    }
    // Extension-wide sends arrive as `global`; Twitch's messenger hands
    // them to `broadcast` listeners too.
    if (listening === 'broadcast' && topic === 'global') {
      return true;
    }
    // The server sends a connection only the whispers addressed to it (by
    // opaque or Twitch user id), so every whisper listener gets them.
    return listening.startsWith('whisper-') && topic.startsWith('whisper-');
  }

  /**
   * @param Muxy the object `@muxy/extensions-js` exports, after `Muxy.setup()`.
   * @param options.url the WebSocket URL (required).
   * @param options.WebSocket a WebSocket class (default: the global one).
   * @param options.token a function returning the JWT (default: the client's).
   * @param options.onError called with send failures and socket errors.
   * @param options.renewBeforeMs reconnect this long before the token's
   *   `exp` (default 60 s), when the server would stop delivering.
   */
  function createMessenger(Muxy, options) {
    const opts = options || {};
    if (!opts.url) {
      throw new Error('createMessenger: options.url (the WebSocket URL) is required');
    }
    const WS = opts.WebSocket || (typeof WebSocket !== 'undefined' ? WebSocket : null);
    if (!WS) {
      throw new Error('createMessenger: no WebSocket class; pass options.WebSocket');
    }
    const currentToken = opts.token || (() => Muxy && Muxy.client && Muxy.client.token);
    const onError = opts.onError || ((err) => console.warn('medkit messenger:', err));
    const renewBeforeMs = opts.renewBeforeMs === undefined ? RENEW_BEFORE_MS : opts.renewBeforeMs;

    const listeners = new Set();
    let socket = null;
    let closed = false;
    let attempt = 0;
    let pinger = null;
    let renewTimer = null;
    let retryTimer = null;
    let waiting = [];
    // Frames are handled one after another: decoding is asynchronous, and a
    // compressed envelope must not overtake the plain one sent after it.
    let queue = Promise.resolve();
    // Duplicates and stale snapshots (see `fresh`).
    const seen = new Set();
    const lastSnapshot = new Map();

    /**
     * Whether a frame is new: its id not seen before, and, for a snapshot
     * (`channel_state_update`, `vote_update:<id>`, ...: only the latest
     * matters), its `seq` above the last shown for that event and topic.
     * Frames without an id (older servers) are always new.
     */
    function fresh(frame, parsed) {
      if (typeof frame.id === 'string') {
        if (seen.has(frame.id)) {
          return false;
        }
        seen.add(frame.id);
        if (seen.size > SEEN_IDS) {
          seen.delete(seen.values().next().value);
        }
      }
      if (frame.snapshot === true && typeof frame.seq === 'number' && parsed && parsed.event) {
        const key = `${frame.topic}\n${parsed.event}`;
        if (lastSnapshot.has(key) && lastSnapshot.get(key) >= frame.seq) {
          return false;
        }
        lastSnapshot.set(key, frame.seq);
        if (lastSnapshot.size > SEEN_IDS) {
          lastSnapshot.delete(lastSnapshot.keys().next().value);
        }
      }
      return true;
    }

    function settle(err) {
      const pending = waiting;
      waiting = [];
      pending.forEach(({ resolve, reject }) => (err ? reject(err) : resolve()));
    }

    function scheduleRetry() {
      if (closed || retryTimer || listeners.size === 0) {
        return;
      }
      const delay = RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)];
      attempt += 1;
      retryTimer = setTimeout(() => {
        retryTimer = null;
        connect();
      }, delay);
    }

    function connect() {
      if (socket || closed) {
        return;
      }
      const token = currentToken();
      if (!token || !messenger.extensionID) {
        // Not authorized yet: try again shortly.
        scheduleRetry();
        return;
      }
      const url = new URL(opts.url);
      url.searchParams.set('client_id', messenger.extensionID);
      url.searchParams.set('token', token);
      const ws = new WS(url.toString());
      socket = ws;
      ws.onopen = () => {
        attempt = 0;
        pinger = setInterval(() => ws.send('{"type":"ping"}'), PING_MS);
        const exp = expiryMs(token);
        if (exp !== null) {
          // Closing makes onclose reconnect with the current token.
          renewTimer = setTimeout(() => ws.close(1000), Math.max(0, exp - renewBeforeMs - Date.now()));
        }
        settle();
      };
      ws.onmessage = (ev) => {
        queue = queue.then(() => dispatch(ev.data));
      };
      ws.onerror = () => onError(new Error('WebSocket error'));
      ws.onclose = () => {
        clearInterval(pinger);
        clearTimeout(renewTimer);
        if (socket === ws) {
          socket = null;
        }
        scheduleRetry();
      };
    }

    async function dispatch(raw) {
      let frame;
      try {
        frame = JSON.parse(typeof raw === 'string' ? raw : await new Response(raw).text());
      } catch (err) {
        return;
      }
      // Pongs and error frames carry no topic.
      if (!frame || typeof frame.topic !== 'string' || typeof frame.message !== 'string') {
        return;
      }
      let parsed;
      try {
        parsed = await decodeEnvelope(frame.message);
      } catch (err) {
        onError(err);
        return;
      }
      if (!fresh(frame, parsed)) {
        return;
      }
      listeners.forEach((handle) => {
        if (matches(handle.target, frame.topic)) {
          try {
            handle.cb(parsed);
          } catch (err) {
            onError(err);
          }
        }
      });
    }

    const messenger = {
      channelID: '',
      extensionID: '',

      /** `sdk.send`: a broadcast (or whisper) to this channel's viewers. */
      send(id, event, target, body, client) {
        return client
          .signedRequest(id, 'POST', 'broadcast', {
            data: body,
            event,
            target,
            user_id: this.channelID,
          })
          .catch(onError);
      },

      listen(id, topic, callback) {
        const handle = { target: topic, cb: callback };
        listeners.add(handle);
        connect();
        return handle;
      },

      unlisten(id, handle) {
        listeners.delete(handle);
      },

      close() {
        closed = true;
        clearTimeout(retryTimer);
        clearTimeout(renewTimer);
        clearInterval(pinger);
        if (socket) {
          socket.close(1000);
          socket = null;
        }
        settle(new Error('messenger closed'));
      },

      /** Resolves once the socket is open (medkit addition, for tests and demos). */
      ready() {
        if (closed) {
          return Promise.reject(new Error('messenger closed'));
        }
        if (socket && socket.readyState === 1) {
          return Promise.resolve();
        }
        return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
      },
    };
    return messenger;
  }

  /**
   * Swaps medkit's messenger in for the client's default one (call between
   * `Muxy.setup()` and `new Muxy.SDK()`), closing the default: in sandbox
   * that is a Pusher client that would otherwise stay connected to
   * pusher.com.
   */
  function install(Muxy, options) {
    const previous = Muxy.messenger;
    const messenger = createMessenger(Muxy, options);
    Muxy.messenger = messenger;
    if (previous && typeof previous.close === 'function') {
      try {
        previous.close();
      } catch (err) {
        // The default messenger may not have connected at all.
      }
    }
    return messenger;
  }

  return { createMessenger, install, decodeEnvelope };
});
