// One extension page: the official @muxy/extensions-js client, loaded under
// Node with the few browser globals it touches, pointed at `medkit serve` in
// SandboxDev (tokens from POST authtoken), with medkit's messenger installed
// between Muxy.setup() and new Muxy.SDK(). The client is a singleton, so one
// page per process (child-page.js is a second "browser").
//
// Every connection the page opens is checked: anything but loopback is
// refused and recorded in `outbound` (the sandbox client's default
// messenger would dial pusher.com).
'use strict';

const { install } = require('../../messenger.js');

const { installBrowserGlobals, outbound } = require('./globals.js');

/**
 * Opens the page and waits for sdk.loaded().
 * @returns {Promise<{Muxy, sdk, messenger}>}
 */
async function openPage({ server, role, channel, user, onError, transactionsEnabled = false }) {
  installBrowserGlobals(server.base);
  const Muxy = require('@muxy/extensions-js').default;
  const debug = new Muxy.DebuggingOptions()
    .url(server.base)
    .environment('SandboxDev')
    .role(role)
    .channelID(channel);
  if (user) {
    debug.userID(user);
  }
  Muxy.debug(debug);
  Muxy.setup({ clientID: server.clientId, transactionsEnabled });
  const messenger = install(Muxy, { url: server.ws, onError });
  const sdk = new Muxy.SDK();
  await sdk.loaded();
  return { Muxy, sdk, messenger };
}

module.exports = { openPage, outbound };
