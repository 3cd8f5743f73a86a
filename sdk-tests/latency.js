#!/usr/bin/env node
// End-to-end latency on loopback: REST `POST /messages/users` (app token) -> the receiving
// Web SDK's onTextMessage, one message at a time, N messages. Prints one JSON object.
//
//   node latency.js <server-base-url> <org#app> <client_id> <client_secret> [N=1000]
//
// Creates two fresh users through REST, logs the receiver in with the real, unmodified
// easemob-websdk (token login), then for each message records
//   rest_ms:   request start -> REST 200 received
//   e2e_ms:    request start -> SDK callback
//   after_200: REST 200 received -> SDK callback (negative when the callback came first:
//              the server notifies the device before the HTTP response is read)
// and prints median / p90 / p99 / max of each. The server's send quotas must allow N sends
// (set limits.send_calls_per_second = 0 and limits.send_messages_per_minute = 0).
// Run against a release build for production-like figures, e.g.:
//   cargo run --release -p missive-server -- serve --data /tmp/lat   # prints client_id/secret
//   node sdk-tests/latency.js http://127.0.0.1:5280 demo#demo <client_id> <client_secret>
'use strict';

globalThis.self = globalThis;
globalThis.window = globalThis;
const WS = require('ws');
const XHR = require('xhr2');
globalThis.WebSocket = WS;
globalThis.XMLHttpRequest = XHR;
if (typeof navigator === 'undefined') globalThis.navigator = { userAgent: 'node' };
const EC = require('easemob-websdk');
EC.logger.disableAll();

const [BASE, APPKEY, CLIENT_ID, CLIENT_SECRET, N_ARG] = process.argv.slice(2);
if (!CLIENT_SECRET) {
  console.error('usage: node latency.js <base-url> <org#app> <client_id> <client_secret> [N]');
  process.exit(2);
}
if (!/^http:\/\/(127\.0\.0\.1|localhost)[:/]/.test(BASE)) {
  console.error('loopback servers only');
  process.exit(2);
}
const N = Number(N_ARG || 1000);
const [ORG, APP] = APPKEY.split('#');
const REST = `${BASE}/${ORG}/${APP}`;

async function post(path, body, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(REST + path, { method: 'POST', headers, body: JSON.stringify(body) });
  const json = await res.json();
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  const r = (x) => Math.round(x * 1000) / 1000;
  return { median: r(at(0.5)), p90: r(at(0.9)), p99: r(at(0.99)), max: r(s[s.length - 1]), min: r(s[0]) };
}

(async () => {
  const admin = (await post('/token', { grant_type: 'client_credentials', client_id: CLIENT_ID, client_secret: CLIENT_SECRET })).access_token;
  const tag = Date.now().toString(36);
  const sender = `lat_s_${tag}`;
  const receiver = `lat_r_${tag}`;
  await post('/users', [{ username: sender, password: 'pw' }, { username: receiver, password: 'pw' }], admin);
  const token = (await post('/token', { grant_type: 'password', username: receiver, password: 'pw' })).access_token;

  const conn = new EC.connection({
    appKey: APPKEY, isHttpDNS: false, https: false, url: `${BASE.replace(/^http/, 'ws')}/websocket`, apiUrl: BASE,
  });
  const waiting = new Map(); // text -> resolve(callback time)
  conn.addEventHandler('latency', {
    onTextMessage: (m) => {
      const t = performance.now();
      const w = waiting.get(m.msg);
      if (w) w(t);
    },
  });
  await conn.open({ user: receiver, accessToken: token });

  const rest = [];
  const e2e = [];
  const after200 = [];
  const warmup = Math.min(20, N);
  for (let i = 0; i < N + warmup; i++) {
    const text = `m${i}`;
    const arrived = new Promise((resolve) => waiting.set(text, resolve));
    const t0 = performance.now();
    await post('/messages/users', { from: sender, to: [receiver], type: 'txt', body: { msg: text } }, admin);
    const t200 = performance.now();
    const tEvent = await Promise.race([arrived, new Promise((_, rej) => setTimeout(() => rej(new Error(`${text} never arrived`)), 10000))]);
    waiting.delete(text);
    if (i < warmup) continue;
    rest.push(t200 - t0);
    e2e.push(tEvent - t0);
    after200.push(tEvent - t200);
  }
  conn.close();
  console.log(JSON.stringify({
    messages: N, warmup, node: process.version, sdk: require('easemob-websdk/package.json').version,
    rest_ms: stats(rest), e2e_ms: stats(e2e), after_200_ms: stats(after200),
  }));
  setTimeout(() => process.exit(0), 200);
})().catch((e) => {
  console.error(e && e.stack || e);
  process.exit(1);
});
