// The parent's handle on a child-page.js process: a second browser running
// its own official client.
'use strict';

const { fork } = require('node:child_process');
const path = require('node:path');

class Browser {
  constructor() {
    this.child = fork(path.join(__dirname, 'child-page.js'), { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    this.seq = 0;
    this.pending = new Map();
    this.events = [];
    this.errors = [];
    this.waiters = [];
    this.child.on('message', (msg) => this.receive(msg));
    this.child.on('exit', () => {
      for (const { reject } of this.pending.values()) {
        reject(new Error('browser process exited'));
      }
      this.pending.clear();
    });
  }

  receive(msg) {
    if (msg.type === 'reply') {
      const p = this.pending.get(msg.seq);
      this.pending.delete(msg.seq);
      if (p) {
        msg.error ? p.reject(new Error(msg.error)) : p.resolve(msg.result);
      }
      return;
    }
    (msg.type === 'event' ? this.events : this.errors).push(msg);
    this.waiters = this.waiters.filter((w) => !w.check());
  }

  request(msg, timeoutMs = 15000) {
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(seq);
        reject(new Error(`browser: no reply to ${msg.op} in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(seq, {
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.child.send({ ...msg, seq });
    });
  }

  open(options) {
    return this.request({ op: 'open', options });
  }
  listen(id, event, user) {
    return this.request({ op: 'listen', id, event, user });
  }
  send(event, data, user) {
    return this.request({ op: 'send', event, data, user });
  }
  call(method, ...args) {
    return this.request({ op: 'call', method, args });
  }
  outbound() {
    return this.request({ op: 'outbound' });
  }

  /** Resolves with the first event or error record matching `pred`, bounded in time. */
  waitFor(list, pred, timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
      const waiter = {
        check: () => {
          const hit = this[list].find(pred);
          if (hit) {
            clearTimeout(timer);
            resolve(hit);
          }
          return Boolean(hit);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`browser: nothing matching in ${list} after ${timeoutMs} ms`));
      }, timeoutMs);
      if (!waiter.check()) {
        this.waiters.push(waiter);
      }
    });
  }

  async close() {
    if (this.child.exitCode !== null) {
      return;
    }
    const exited = new Promise((r) => this.child.once('exit', r));
    this.request({ op: 'close' }).catch(() => {});
    const timer = setTimeout(() => this.child.kill(), 3000);
    await exited;
    clearTimeout(timer);
  }
}

module.exports = { Browser };
