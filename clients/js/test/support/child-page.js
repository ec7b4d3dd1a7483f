// A second "browser": its own process, so its own copy of the official
// client. Driven by the parent over IPC (see browser.js).
'use strict';

const { openPage, outbound } = require('./page.js');

let page = null;

/** The client rejects with response objects as well as Errors. */
function describe(err) {
  if (err instanceof Error) {
    return err.message;
  }
  try {
    return JSON.stringify(err);
  } catch (e) {
    return String(err);
  }
}
const handles = new Map();

async function run(msg) {
  switch (msg.op) {
    case 'open': {
      page = await openPage({
        ...msg.options,
        onError: (err) => process.send({ type: 'error', message: describe(err) }),
      });
      return { user: page.sdk.user, extensionID: page.messenger.extensionID };
    }
    case 'listen': {
      const forward = (data, event) => process.send({ type: 'event', listen: msg.id, event, data });
      const h = msg.user
        ? page.sdk.listen(msg.event, msg.user, forward)
        : page.sdk.listen(msg.event, forward);
      handles.set(msg.id, h);
      await page.messenger.ready();
      return null;
    }
    case 'send':
      if (msg.user) {
        page.sdk.send(msg.event, msg.user, msg.data);
      } else {
        page.sdk.send(msg.event, msg.data);
      }
      return null;
    case 'call':
      return page.sdk[msg.method](...(msg.args || []));
    case 'outbound':
      return outbound;
    case 'close':
      page.messenger.close();
      setImmediate(() => process.exit(0));
      return null;
    default:
      throw new Error(`unknown op ${msg.op}`);
  }
}

process.on('message', (msg) => {
  run(msg).then(
    (result) => process.send({ type: 'reply', seq: msg.seq, result }),
    (err) => process.send({ type: 'reply', seq: msg.seq, error: String((err && err.message) || err) }),
  );
});
