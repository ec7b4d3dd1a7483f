// The browser globals the official client touches, under Node, for a page
// served from `origin`. Every connection the page opens is checked:
// anything but loopback is refused and recorded in `outbound`.
'use strict';

const outbound = [];

function loopbackOnly(url) {
  const u = new URL(String(url), global.location.href);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) {
    outbound.push(u.href);
    throw new Error(`test page: refused a non-loopback connection to ${u.host}`);
  }
}

function installBrowserGlobals(origin) {
  // A page's timers end with its tab; under Node they must not keep the
  // process alive (the client renews sandbox tokens every 25 minutes).
  const nodeSetInterval = global.setInterval;
  global.setInterval = (...args) => {
    const timer = nodeSetInterval(...args);
    timer.unref();
    return timer;
  };
  const store = new Map();
  global.window = global;
  global.location = new URL(`${origin}/extension.html`);
  global.document = {
    location: global.location,
    referrer: '',
    title: 'medkit test page',
    characterSet: 'UTF-8',
    documentElement: {},
    body: {},
    getElementsByTagName: () => [],
    createElement: () => ({ setAttribute() {} }),
  };
  global.localStorage = {
    getItem: (k) => (store.has(k) ? store.get(k) : null),
    setItem: (k, v) => store.set(k, String(v)),
    removeItem: (k) => store.delete(k),
    clear: () => store.clear(),
  };
  if (!global.navigator || !global.navigator.userAgent) {
    Object.defineProperty(global, 'navigator', {
      value: { userAgent: 'node', language: 'en-US', platform: process.platform, onLine: true },
      configurable: true,
    });
  }
  const Xhr = require('xhr2');
  global.XMLHttpRequest = class extends Xhr {
    open(method, url, ...rest) {
      loopbackOnly(url);
      return super.open(method, url, ...rest);
    }
  };
  if (typeof global.WebSocket !== 'function') {
    throw new Error('no global WebSocket: run node with --experimental-websocket (Node 20)');
  }
  const NodeWebSocket = global.WebSocket;
  global.WebSocket = class extends NodeWebSocket {
    constructor(url, protocols) {
      loopbackOnly(url);
      super(url, protocols);
    }
  };
}

module.exports = { installBrowserGlobals, outbound };
