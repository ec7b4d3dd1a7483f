// `npm test`: node's test runner over test/, with the WebSocket global
// enabled on Node versions that still keep it behind a flag (Node 20).
'use strict';

const { spawnSync } = require('node:child_process');
const path = require('node:path');

const flags = typeof WebSocket === 'function' ? [] : ['--experimental-websocket'];
const run = spawnSync(process.execPath, [...flags, '--test', path.join(__dirname, '..', 'test')], {
  stdio: 'inherit',
});
process.exit(run.status === null ? 1 : run.status);
