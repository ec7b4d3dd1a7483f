// Starts `medkit serve --memory --port 0` (the workspace's debug binary, or
// $MEDKIT_BIN) and reads its URL from the banner.
'use strict';

const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');

const root = path.resolve(__dirname, '../../../..');

function binary() {
  if (process.env.MEDKIT_BIN) {
    return process.env.MEDKIT_BIN;
  }
  const exe = process.platform === 'win32' ? 'medkit.exe' : 'medkit';
  return path.join(process.env.CARGO_TARGET_DIR || path.join(root, 'target'), 'debug', exe);
}

/** Resolves to {base, ws, clientId, stop()} once the server is listening. */
function startServer(args = []) {
  const env = { ...process.env, RUST_LOG: 'warn' };
  delete env.MEDKIT_EXTENSIONS;
  delete env.MEDKIT_ENV;
  const child = spawn(binary(), ['serve', '--memory', '--port', '0', ...args], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error('medkit serve did not start within 20 s'));
    }, 20000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${binary()} (build it with cargo build): ${err.message}`));
    });
    let base = null;
    let clientId = null;
    // Keep reading: the server must never write to a closed pipe.
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const url = line.match(/^medkit listening on (\S+)/);
      if (url) {
        base = url[1];
      }
      // The demo extension's id, or the first of those given with --extension.
      const id = line.match(/^\s+client id:\s+(\S+)/) || line.match(/^\s+extensions:\s+([^,\s]+)/);
      if (id) {
        clientId = id[1];
      }
      if (base && clientId) {
        clearTimeout(timer);
        const ws = base.replace(/^http/, 'ws') + '/ws';
        const stop = () =>
          new Promise((done) => {
            if (child.exitCode !== null) {
              return done();
            }
            child.once('exit', done);
            child.kill();
          });
        resolve({ base, ws, clientId, stop });
        base = null;
      }
    });
  });
}

module.exports = { startServer, root };
