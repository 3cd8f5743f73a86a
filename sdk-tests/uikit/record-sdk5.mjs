#!/usr/bin/env node
// Records what the SDK bundled in easemob-chat-uikit ("SDK 5") does on the wire, driving its
// ChatClient directly in Node 20 (the UIKit module needs a DOM to load: jsdom provides one).
// Every MSYNC frame both ways is decoded with Missive's schema, every REST call and its
// answer is shown, and every WebSocket opened: one JSON line each on stdout. This is how the
// frames in docs/protocol.md ("SDK 5 (UIKit) vs SDK 4") were recorded.
//
//   node record-sdk5.mjs <rest base, e.g. http://127.0.0.1:8080> <appKey> <user> <token> [seconds]
//      optional env: SEND_TO=<user> SEND_TEXT=<text>  (sends one text after login)
//
// Loopback only: any other host is refused.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const [REST, APPKEY, USER, TOKEN, SECONDS = '10'] = process.argv.slice(2);
if (!REST || !APPKEY || !USER || !TOKEN) {
  out({ fatal: 'usage: node record-sdk5.mjs <rest base> <appKey> <user> <token> [seconds]' });
  process.exit(2);
}
const loopback = (url) => /^(https?|wss?):\/\/(127\.0\.0\.1|localhost|\[::1\])[:/]/.test(url);

// --- a DOM for the UIKit module ------------------------------------------------------------
const { JSDOM } = require('jsdom');
const dom = new JSDOM('<!doctype html><html><body></body></html>', { url: 'http://127.0.0.1/' });
for (const k of Object.getOwnPropertyNames(dom.window).filter((k) => !(k in globalThis) || k === 'navigator')) {
  try {
    Object.defineProperty(globalThis, k, { value: dom.window[k], configurable: true, writable: true });
  } catch {
    // a few window properties cannot be copied; the SDK does not need them
  }
}
globalThis.self = globalThis;
globalThis.addEventListener = dom.window.addEventListener.bind(dom.window);
globalThis.removeEventListener = dom.window.removeEventListener.bind(dom.window);

// --- the MSYNC schema, to decode frames ----------------------------------------------------
const pb = require('protobufjs');
const root = pb.loadSync(path.join(here, '../../crates/missive-msync/proto/easemob.proto'));
const T = (n) => root.lookupType(`easemob.pb.${n}`);
const asObject = (t, m) => t.toObject(m, { longs: String, enums: String, bytes: String });
const BODY = { STATISTIC: 'StatisticsBody', CHAT: 'MessageBody', MUC: 'MUCBody', ROSTER: 'RosterBody' };
function meta(m) {
  const o = asObject(T('Meta'), m);
  const body = BODY[o.ns || 'STATISTIC'];
  if (body && m.payload && m.payload.length) o.payload = asObject(T(body), T(body).decode(m.payload));
  return o;
}
function decode(bytes, dir) {
  const env = T('MSync').decode(bytes);
  const o = asObject(T('MSync'), env);
  const cmd = o.command || 'SYNC';
  const p = env.payload || new Uint8Array();
  delete o.payload;
  const types = {
    PROVISION: ['Provision', 'Provision'],
    UNREAD: ['CommUnreadUL', 'CommUnreadDL'],
    NOTICE: ['CommNotice', 'CommNotice'],
    LOGOUT: ['Logout', 'Logout'],
    SYNC: ['CommSyncUL', 'CommSyncDL'],
  }[cmd];
  const t = T(types[dir === 'C>S' ? 0 : 1]);
  const m = t.decode(p);
  o.body = asObject(t, m);
  if (m.meta) o.body.meta = meta(m.meta);
  if (m.metas && m.metas.length) o.body.metas = m.metas.map(meta);
  return o;
}

// --- instrumented WebSocket and fetch ------------------------------------------------------
const WS = require('ws');
globalThis.WebSocket = class extends WS {
  constructor(url, protocols) {
    if (!loopback(url)) throw new Error(`refused non-loopback WebSocket ${url}`);
    super(url, protocols);
    const where = new URL(url).pathname;
    out({ ws: where });
    const frame = (dir, data) => {
      const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data);
      let decoded;
      try {
        decoded = where === '/websocket' ? decode(bytes, dir) : { hex: bytes.toString('hex') };
      } catch (e) {
        decoded = { undecodable: e.message, hex: bytes.toString('hex') };
      }
      out({ dir, ws: where, bytes: bytes.length, frame: decoded });
    };
    this.on('message', (d) => frame('S>C', d));
    const send = this.send.bind(this);
    this.send = (d, ...rest) => {
      frame('C>S', d);
      return send(d, ...rest);
    };
  }
};
const realFetch = globalThis.fetch;
globalThis.fetch = async (url, init = {}) => {
  if (!loopback(String(url))) throw new Error(`refused non-loopback request ${url}`);
  const res = await realFetch(url, init);
  const body = await res.clone().text();
  out({ http: `${init.method || 'GET'} ${url}`, request: init.body ? String(init.body) : undefined, status: res.status, response: body.slice(0, 2000) });
  return res;
};

// --- the SDK ------------------------------------------------------------------------------
const console_ = globalThis.console;
globalThis.console = { ...console_, log() {}, info() {}, debug() {}, warn() {} }; // the SDK's own log
const uikit = await import('easemob-chat-uikit/ChatUI.esm.js');
const { ChatSDK } = uikit.useSDK();
const client = ChatSDK.ChatClient.init({
  appKey: APPKEY,
  enableSyncData: ['contact', 'group', 'conversation'],
  enableDeliveryReceipt: true,
  enableUserInfoSync: true, // as the UIKit's Provider configures it
  serviceConfig: { serverUrls: { restApiUrl: REST, wsUrl: `${REST.replace(/^http/, 'ws')}/websocket` } },
  uiKitVersion: require('easemob-chat-uikit/package.json').version,
  managers: [ChatSDK.ChatManager, ChatSDK.ContactManager, ChatSDK.GroupManager, ChatSDK.ChatRoomManager,
    ChatSDK.PresenceManager, ChatSDK.PushManager, ChatSDK.UserInfoManager, ChatSDK.ChatThreadManager],
});
const failure = (e) => ({ message: e && e.message, details: e && e.details });
try {
  await client.login({ userId: USER, token: TOKEN });
  out({ login: 'ok' });
} catch (e) {
  out({ login: 'failed', ...failure(e) });
}
if (process.env.SEND_TO) {
  try {
    const m = client.chatManager.createTextMessage({
      conversationId: process.env.SEND_TO,
      conversationType: 'singleChat',
      content: process.env.SEND_TEXT || 'hello from SDK 5',
    });
    const r = await client.chatManager.sendMessage(m);
    out({ sent: JSON.parse(JSON.stringify(r, (k, v) => (typeof v === 'bigint' ? String(v) : v))) });
  } catch (e) {
    out({ send: 'failed', ...failure(e) });
  }
}
setTimeout(() => process.exit(0), Number(SECONDS) * 1000);
