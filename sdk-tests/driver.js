#!/usr/bin/env node
// Drives the real, unmodified easemob-websdk (npm, pinned in package.json) in Node 20 against
// a Missive server on loopback. Used by the Rust integration tests
// (crates/missive-server/tests/it/sdk.rs, sdk_agora.rs), and usable by hand.
//
//   node driver.js <server-base-url> <appKey> [initial-commands-json-array]
//
// SDK=agora-chat drives Agora's twin package (same API and protocol) instead; "ready" says
// which package and version was loaded.
//
// Commands are JSON objects, one per line on stdin (and optionally a JSON array in argv[4],
// run first). Every SDK event and every command result is printed as ONE JSON line on
// stdout: {"ev": "...", "c": "<client name>", ...}. Nothing else goes to stdout.
//
// One process can host several SDK connections ("clients"), each named by "c". Commands:
//   {"op":"open","c":"bob","user":"bob","token":"..."}            token login (no HTTP)
//   {"op":"open","c":"bob","user":"bob","pwd":"..."}              password login (POST /token)
//   {"op":"open","c":"bob","user":"bob","agoraToken":"..."}       agora-chat's token login
//      optional: "deviceId" (fixes the resource, as localStorage would in a browser),
//                "delivery": true (automatic delivery receipts)
//      -> {"ev":"open_ok"} or {"ev":"open_err","type","message"}; also {"ev":"connected"}
//   {"op":"send","c":"bob","tag":"t1","msg":{...message.create options...}}
//      -> {"ev":"send_ok","tag","localMsgId","serverMsgId"} or {"ev":"send_err","tag",...}
//   {"op":"sendImage","c":"bob","tag":"i1","to":"alice","path":"/tmp/x.png"}
//      optional: "filename", "filetype" (MIME, default image/png), "msg" (more create options:
//      width, height, thumbnailWidth, ext...). The SDK uploads the file, then sends the img.
//      -> {"ev":"upload_ok","tag","r"} (onFileUploadComplete: the server's answer, plus the
//         url/thumb the SDK built) or {"ev":"upload_err",...}; then send_ok/send_err, whose
//         send_ok also has "m", the message as sent
//   {"op":"recall","c":"bob","tag":"r1","to":"alice","mid":"<server id>"}
//      -> {"ev":"recall_ok","tag"} or {"ev":"recall_err","tag",...}
//   {"op":"call","c":"bob","tag":"g1","method":"getJoinedGroups","args":[{...}]}
//      any promise-returning connection method -> {"ev":"call_ok","tag","r"} or {"ev":"call_err","tag",...}
//   {"op":"state","c":"bob"}  -> {"ev":"state","logOut","reconnecting","opened","sockets",...}
//   {"op":"close","c":"bob"}  -> conn.close() (LOGOUT) -> {"ev":"closed"}
//   {"op":"exit"}             -> exits 0
// Events: connected, disconnected{reason}, error{type,message}, msg{handler,m} for every
// message callback (onTextMessage, onImageMessage, ..., onReadMessage, onDeliveredMessage,
// onRecallMessage), received{id,mid} (onReceivedMessage), offline_start, offline_finish,
// ws_new{sockets} (each WebSocket the SDK opens), fatal{message}.
//
// The process exits when stdin closes, or after MAX_LIFE_MS (env, default 120 s) in any
// case, so a crashed test never leaves it behind. Only loopback addresses are reachable.
'use strict';

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const fail = (message) => {
  out({ ev: 'fatal', message });
  process.exit(2);
};

// --- the shims Node 20 needs (PROTOCOL.md §6) ---------------------------------------------
globalThis.self = globalThis; // the UMD wrapper evaluates `self`
globalThis.window = globalThis; // platform detection: window.WebSocket => "web"
let WS;
let XHR;
try {
  WS = require('ws');
  XHR = require('xhr2');
} catch (e) {
  fail(`missing node_modules (${e.message}): run \`npm ci --prefix sdk-tests\``);
}
const loopback = (url) => /^(https?|wss?):\/\/(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(url);
const sockets = new Map(); // client name -> WebSockets opened
globalThis.WebSocket = class extends WS {
  constructor(url, protocols) {
    if (!loopback(url)) fail(`blocked non-loopback WebSocket ${url}`);
    super(url, protocols);
    // Each client gets its own URL (?c=name), so sockets can be attributed to it.
    const c = new URL(url).searchParams.get('c') || '';
    sockets.set(c, (sockets.get(c) || 0) + 1);
    out({ ev: 'ws_new', c, sockets: sockets.get(c) });
  }
};
if (typeof navigator === 'undefined') globalThis.navigator = { userAgent: 'node' };
globalThis.XMLHttpRequest = class extends XHR {
  open(method, url, ...rest) {
    // Never let the SDK leave loopback (HTTP-DNS, telemetry...).
    return super.open(method, loopback(url) ? url : 'http://127.0.0.1:9/blocked', ...rest);
  }

  // xhr2 cannot send a FormData body (the SDK's file upload): serialize it as a browser
  // would, with Node's own encoder, then send the bytes with the generated multipart type.
  send(data) {
    if (!(data instanceof FormData)) return super.send(data);
    const res = new Response(data);
    this.upload._contentType = res.headers.get('content-type'); // xhr2: used unless the caller set one
    res.arrayBuffer().then(
      (body) => super.send(Buffer.from(body)),
      (e) => out({ ev: 'fatal', message: `cannot serialize FormData: ${e.message}` }),
    );
    return undefined;
  }
};

const SDK_PACKAGE = process.env.SDK || 'easemob-websdk';
if (!['easemob-websdk', 'agora-chat'].includes(SDK_PACKAGE)) fail(`SDK must be easemob-websdk or agora-chat, not ${SDK_PACKAGE}`);
// agora-chat (web platform) watches page visibility once connected; without a `document`
// its open() rejects with "document is not defined" although the socket is up.
if (SDK_PACKAGE === 'agora-chat' && typeof document === 'undefined') {
  globalThis.document = { hidden: false, visibilityState: 'visible', addEventListener() {}, removeEventListener() {} };
}
let EC;
try {
  EC = require(SDK_PACKAGE);
  EC = EC.default || EC; // agora-chat's CommonJS build exports { default }
} catch (e) {
  fail(`cannot load ${SDK_PACKAGE} (${e.message}): run \`npm ci --prefix sdk-tests\``);
}
if (!process.env.SDK_DEBUG) EC.logger.disableAll();

const [BASE, APPKEY, INITIAL] = process.argv.slice(2);
if (!BASE || !APPKEY) fail('usage: node driver.js <server-base-url> <appKey> [commands-json]');
const WS_BASE = BASE.replace(/^http/, 'ws');

// Plain JSON copy of an SDK object (drops functions, keeps ids as strings).
const plain = (x) => {
  if (x === undefined) return null;
  try {
    return JSON.parse(JSON.stringify(x, (k, v) => (typeof v === 'bigint' ? String(v) : v)));
  } catch (e) {
    return String(x);
  }
};
const errInfo = (e) => ({ type: e && e.type, message: (e && (e.message || e.reason)) || String(e), data: plain(e && e.data) });

const clients = new Map(); // name -> connection
const MESSAGE_HANDLERS = [
  'onTextMessage', 'onImageMessage', 'onAudioMessage', 'onVideoMessage', 'onFileMessage',
  'onLocationMessage', 'onCmdMessage', 'onCustomMessage', 'onCombineMessage',
  'onReadMessage', 'onDeliveredMessage', 'onRecallMessage', 'onChannelMessage',
];
// Contact events (ROSTER metas): {"ev":"contact","c","handler","m":{type,from,to,status}}.
const CONTACT_HANDLERS = ['onContactInvited', 'onContactDeleted', 'onContactAdded', 'onContactRefuse', 'onContactAgreed'];

function client(name) {
  const conn = clients.get(name);
  if (!conn) throw new Error(`no client ${name}`);
  return conn;
}

function open(cmd) {
  const c = cmd.c || cmd.user;
  let conn = clients.get(c);
  if (!conn) {
    const opts = {
      appKey: APPKEY,
      isHttpDNS: false,
      https: false,
      url: `${WS_BASE}/websocket?c=${encodeURIComponent(c)}`,
      apiUrl: BASE,
      delivery: !!cmd.delivery,
    };
    if (cmd.deviceId) opts.deviceId = cmd.deviceId;
    conn = new EC.connection(opts);
    clients.set(c, conn);
    const handlers = {
      onConnected: () => out({ ev: 'connected', c, resource: conn.clientResource }),
      onDisconnected: (r) => out({ ev: 'disconnected', c, reason: plain(r || null) }),
      onError: (e) => out({ ev: 'error', c, ...errInfo(e) }),
      onReceivedMessage: (r) => out({ ev: 'received', c, id: String(r.id), mid: String(r.mid) }),
      onOfflineMessageSyncStart: () => out({ ev: 'offline_start', c }),
      onOfflineMessageSyncFinish: () => out({ ev: 'offline_finish', c }),
    };
    for (const h of MESSAGE_HANDLERS) handlers[h] = (m) => out({ ev: 'msg', c, handler: h, m: plain(m) });
    for (const h of CONTACT_HANDLERS) handlers[h] = (m) => out({ ev: 'contact', c, handler: h, m: plain(m) });
    conn.addEventHandler('driver', handlers);
  }
  const args =
    cmd.pwd !== undefined
      ? { user: cmd.user, pwd: cmd.pwd }
      : cmd.agoraToken !== undefined
        ? { user: cmd.user, agoraToken: cmd.agoraToken }
        : { user: cmd.user, accessToken: cmd.token };
  conn.open(args).then(
    (r) => out({ ev: 'open_ok', c, accessToken: r && r.accessToken, duration: r && r.duration }),
    (e) => out({ ev: 'open_err', c, ...errInfo(e) }),
  );
}

function send(cmd) {
  const conn = client(cmd.c);
  const { tag } = cmd;
  let m;
  try {
    m = EC.message.create({ chatType: 'singleChat', ...cmd.msg });
  } catch (e) {
    out({ ev: 'send_err', c: cmd.c, tag, ...errInfo(e) });
    return;
  }
  conn.send(m).then(
    (r) => out({ ev: 'send_ok', c: cmd.c, tag, localMsgId: String(r.localMsgId), serverMsgId: String(r.serverMsgId) }),
    (e) => out({ ev: 'send_err', c: cmd.c, tag, ...errInfo(e) }),
  );
}

// An img message whose file the SDK uploads itself (POST /chatfiles, multipart `file`).
function sendImage(cmd) {
  const conn = client(cmd.c);
  const { tag } = cmd;
  const filename = cmd.filename || require('path').basename(cmd.path);
  const data = new File([require('fs').readFileSync(cmd.path)], filename, { type: cmd.filetype || 'image/png' });
  const m = EC.message.create({
    chatType: 'singleChat',
    type: 'img',
    to: cmd.to,
    file: { data, filename, filetype: filename.split('.').pop() },
    ...cmd.msg,
    onFileUploadComplete: (r) => out({ ev: 'upload_ok', c: cmd.c, tag, r: plain(r) }),
    onFileUploadError: (e) => out({ ev: 'upload_err', c: cmd.c, tag, ...errInfo(e) }),
  });
  conn.send(m).then(
    (r) => out({ ev: 'send_ok', c: cmd.c, tag, localMsgId: String(r.localMsgId), serverMsgId: String(r.serverMsgId), m: plain(m) }),
    (e) => out({ ev: 'send_err', c: cmd.c, tag, ...errInfo(e) }),
  );
}

function recall(cmd) {
  const conn = client(cmd.c);
  conn.recallMessage({ mid: cmd.mid, to: cmd.to, chatType: 'singleChat' }).then(
    () => out({ ev: 'recall_ok', c: cmd.c, tag: cmd.tag }),
    (e) => out({ ev: 'recall_err', c: cmd.c, tag: cmd.tag, ...errInfo(e) }),
  );
}

// Calls a connection method that returns a promise (getJoinedGroups, createGroup, ...).
function call(cmd) {
  const conn = client(cmd.c);
  if (typeof conn[cmd.method] !== 'function') throw new Error(`no method ${cmd.method}`);
  Promise.resolve(conn[cmd.method](...(cmd.args || []))).then(
    (r) => out({ ev: 'call_ok', c: cmd.c, tag: cmd.tag, r: plain(r) }),
    (e) => out({ ev: 'call_err', c: cmd.c, tag: cmd.tag, ...errInfo(e) }),
  );
}

function run(cmd) {
  try {
    switch (cmd.op) {
      case 'open': return open(cmd);
      case 'send': return send(cmd);
      case 'sendImage': return sendImage(cmd);
      case 'recall': return recall(cmd);
      case 'call': return call(cmd);
      case 'state': {
        const conn = client(cmd.c);
        return out({
          ev: 'state', c: cmd.c, logOut: conn.logOut, reconnecting: !!conn.reconnecting,
          opened: conn.isOpened(), sockets: sockets.get(cmd.c) || 0,
          reconnects: conn.autoReconnectNumTotal, resource: conn.clientResource,
        });
      }
      case 'close':
        client(cmd.c).close();
        return out({ ev: 'closed', c: cmd.c });
      case 'exit':
        return process.exit(0);
      default:
        return out({ ev: 'bad_command', cmd });
    }
  } catch (e) {
    return out({ ev: 'command_err', cmd, message: String(e && e.message) });
  }
}

process.on('unhandledRejection', (e) => out({ ev: 'unhandled_rejection', message: String((e && e.message) || e) }));

if (INITIAL) for (const cmd of JSON.parse(INITIAL)) run(cmd);

let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  buf += chunk;
  let nl;
  while ((nl = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, nl).trim();
    buf = buf.slice(nl + 1);
    if (!line) continue;
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (e) {
      out({ ev: 'bad_command', line });
      continue;
    }
    run(cmd);
  }
});
process.stdin.on('end', () => process.exit(0));
setTimeout(() => {
  out({ ev: 'fatal', message: 'MAX_LIFE_MS reached' });
  process.exit(3);
}, Number(process.env.MAX_LIFE_MS || 120000)).unref();
out({ ev: 'ready', package: SDK_PACKAGE, sdk: require(`${SDK_PACKAGE}/package.json`).version, node: process.version });
