#!/usr/bin/env node
// Drives the UIKit test app (dist/, built with `npm run build`) in headless Debian Chromium
// through playwright-core: two browser contexts, two users, the one-to-one chat scenario of
// issue 14 against a Missive server the caller started. Used by
// crates/missive-server/tests/it/uikit.rs; usable by hand:
//
//   node driver.mjs '<config json>'
//
// config: {
//   "missive": "http://127.0.0.1:PORT", "appKey": "org#app", "admin": "<app token>",
//   "a": {"user": "alice", "token": "YWMt...", "nickname": "Alice A."},   // nickname: optional,
//   "b": {"user": "bob", "token": "YWMt...", "nickname": "Bob B."},       //   set by the caller
//   "c": {"user": "carol"},               // the REST sender of step rest_send
//   "out": "/path/for/screenshots-and-report",
//   "image": "/path/to/a.png",            // what B sends in step image
//   "steps": ["login", "open_chat", ...]  // optional: run only these (default: all, in order:
//                                         //   login contacts open_chat text image rest_send
//                                         //   reload nicknames)
// }
//
// Output: one JSON line per step on stdout, {"step", "ok", "detail", "via"?} (login adds
// "sync": {a: {conversation|contact|group: "success"|"failed"}, b: …}, as the UIKit logs its
// SDK's onSyncDataFinished), then one line
// {"report": {...}} with every REST call and WebSocket the pages made (method + path, status),
// every console error, page error, failed request and request to a host other than the app's
// and Missive's. Screenshots of both pages after every step go to `out` (NN-step-a.png,
// NN-step-b.png). The driver never decides pass/fail for the run: the Rust test does, from the
// report. Steps run in order; a step whose precondition failed falls back where it can (opening
// the chat without a contact list) and says so in "via". Exits 0 after the report, 2 on a
// driver failure (no browser, bad config).
import { createRequire } from 'node:module';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const emit = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const die = (message) => {
  emit({ fatal: message });
  process.exit(2);
};

let cfg;
try {
  cfg = JSON.parse(process.argv[2] || '');
} catch (e) {
  die(`usage: node driver.mjs '<config json>' (${e.message})`);
}
for (const k of ['missive', 'appKey', 'admin', 'a', 'b', 'c', 'out', 'image']) if (!cfg[k]) die(`config.${k} is required`);
const DIST = path.join(here, 'dist');
if (!fs.existsSync(path.join(DIST, 'index.html'))) die('dist/ is missing: run `npm ci --prefix sdk-tests/uikit && npm run build --prefix sdk-tests/uikit`');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!fs.existsSync(CHROMIUM)) die(`${CHROMIUM} is missing: apt-get install -y chromium`);
const { chromium } = require('playwright-core');
fs.mkdirSync(cfg.out, { recursive: true });
const WAIT = Number(process.env.STEP_TIMEOUT_MS || 20000);
// Whatever happens, the driver does not outlive a crashed test.
setTimeout(() => die('MAX_LIFE_MS reached'), Number(process.env.MAX_LIFE_MS || 300000)).unref();

// The app's own origin: a static server for dist/ on loopback.
const TYPES = { '.js': 'text/javascript', '.css': 'text/css', '.html': 'text/html', '.svg': 'image/svg+xml', '.png': 'image/png' };
const server = http.createServer((req, res) => {
  const rel = decodeURIComponent(new URL(req.url, 'http://x').pathname).replace(/^\/+/, '');
  let file = path.join(DIST, rel);
  if (!file.startsWith(DIST) || !fs.existsSync(file) || !fs.statSync(file).isFile()) file = path.join(DIST, 'index.html');
  res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream' });
  fs.createReadStream(file).pipe(res);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const APP = `http://127.0.0.1:${server.address().port}`;
const MISSIVE = new URL(cfg.missive).origin;
const allowedHosts = new Set([new URL(APP).host, new URL(MISSIVE).host]);

const report = { rest: [], websockets: [], consoleErrors: [], pageErrors: [], failedRequests: [], foreignRequests: [], steps: [] };
let currentStep = 'load';
const browser = await chromium
  .launch({
    executablePath: CHROMIUM,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  .catch((e) => die(`cannot start ${CHROMIUM}: ${e.message}`));

/** One user's page, instrumented. */
async function openUser(who) {
  const u = cfg[who];
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  // Nothing leaves loopback: a request to any other host is recorded and refused.
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.protocol === 'data:' || url.protocol === 'blob:' || allowedHosts.has(url.host)) return route.continue();
    report.foreignRequests.push({ who, step: currentStep, url: url.href });
    return route.abort();
  });
  const page = await context.newPage();
  page.syncFinished = new Map(); // dataType -> status, from the UIKit's own console.log
  page.on('console', (m) => {
    const text = m.text();
    // "onSyncDataFinished {dataType: contact, status: success, …}" -> contact: success
    const sync = /^onSyncDataFinished \{dataType: (\w+), status: (\w+)/.exec(text);
    if (sync) page.syncFinished.set(sync[1], sync[2]);
    if (m.type() === 'error') report.consoleErrors.push({ who, step: currentStep, text: text.slice(0, 500), url: m.location().url || '' });
  });
  page.on('pageerror', (e) => report.pageErrors.push({ who, step: currentStep, message: String(e.message).slice(0, 500) }));
  page.on('requestfailed', (r) => {
    if (!allowedHosts.has(new URL(r.url()).host)) return; // already in foreignRequests
    report.failedRequests.push({ who, step: currentStep, method: r.method(), url: r.url(), error: r.failure() && r.failure().errorText });
  });
  page.on('response', (r) => {
    const url = new URL(r.url());
    if (url.origin !== MISSIVE || r.request().method() === 'OPTIONS') return;
    report.rest.push({ who, step: currentStep, method: r.request().method(), path: url.pathname, query: url.search, status: r.status() });
  });
  page.on('websocket', (ws) => {
    const url = new URL(ws.url());
    if (!allowedHosts.has(url.host)) report.foreignRequests.push({ who, step: currentStep, url: url.href });
    const entry = { who, step: currentStep, path: url.pathname, frames: 0 };
    report.websockets.push(entry);
    ws.on('framereceived', () => (entry.frames += 1));
    ws.on('socketerror', (e) => (entry.error = String(e)));
  });
  const q = new URLSearchParams({
    appKey: cfg.appKey,
    rest: MISSIVE,
    msync: `${MISSIVE.replace(/^http/, 'ws')}/websocket`,
    user: u.user,
    token: u.token,
    device: `${u.user}-uikit`,
  });
  page.appUrl = `${APP}/index.html?${q}`;
  page.who = who;
  return page;
}

async function loggedIn(page) {
  await page.goto(page.appUrl);
  await page.waitForFunction(() => window.__uikit && window.__uikit.rootStore.loginState === true, null, { timeout: WAIT });
  // The first conversation-list sync has settled (with or without a server answer): until
  // then the UIKit may replace the list and the open chat.
  const deadline = Date.now() + WAIT;
  while (!page.syncFinished.has('conversation') && Date.now() < deadline) await page.waitForTimeout(100);
}

let shot = 0;
async function screenshots(name) {
  shot += 1;
  const n = String(shot).padStart(2, '0');
  for (const p of [A, B]) await p.screenshot({ path: path.join(cfg.out, `${n}-${name}-${p.who}.png`) }).catch(() => {});
}

const STEPS = ['login', 'contacts', 'open_chat', 'text', 'image', 'rest_send', 'reload', 'nicknames'];
const only = cfg.steps || STEPS;
for (const s of only) if (!STEPS.includes(s)) die(`unknown step ${s}`);

async function step(name, fn) {
  if (!only.includes(name)) return false;
  currentStep = name;
  const result = { step: name, ok: false };
  try {
    const out = await fn();
    Object.assign(result, { ok: true }, out || {});
  } catch (e) {
    result.detail = String((e && e.message) || e).split('\n')[0].slice(0, 400);
  }
  await screenshots(name);
  report.steps.push(result);
  emit(result);
  return result.ok;
}

const chat = (p) => p.locator('[data-testid=chat]');
const conversations = (p) => p.locator('[data-testid=conversations]');
const contacts = (p) => p.locator('[data-testid=contacts]');
const escape = (t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** A user as the UIKit may show them: the nickname once it has the attributes, the id until
 * then (step nicknames checks that the nickname is what is shown). */
const names = (who) => new RegExp(`^\\s*(${[cfg[who].nickname, cfg[who].user].filter(Boolean).map(escape).join('|')})\\s*$`);
const mentions = (who) => new RegExp([cfg[who].nickname, cfg[who].user].filter(Boolean).map(escape).join('|'));
/** How a user must appear once the UIKit has their attributes: the nickname if one was set. */
const shownAs = (who) => (cfg[who].nickname ? new RegExp(`^\\s*${escape(cfg[who].nickname)}\\s*$`) : names(who));

/** Opens the chat with `peer` by clicking it in the contact list; without a contact list,
 * the way the app does it on a contact click (`__uikit.openChat`). */
async function openChatWith(p, peer, haveContacts) {
  if (haveContacts) {
    await contacts(p).getByText(names(peer)).first().click();
  } else {
    await p.evaluate((id) => window.__uikit.openChat(id), cfg[peer].user);
  }
  await chat(p).locator('.cui-header').getByText(names(peer)).first().waitFor({ timeout: WAIT });
  await chat(p).locator('.cui-textarea-input').waitFor({ timeout: WAIT });
}

const A = await openUser('a');
const B = await openUser('b');
const text = `hello ${cfg.b.user}, from ${cfg.a.user} ${Date.now()}`;

await step('login', async () => {
  await Promise.all([loggedIn(A), loggedIn(B)]);
  // Give the contact and group syncs (after the conversation sync) time to report.
  const deadline = Date.now() + WAIT;
  while ([A, B].some((p) => p.syncFinished.size < 3) && Date.now() < deadline) await A.waitForTimeout(100);
  return { sync: { a: Object.fromEntries(A.syncFinished), b: Object.fromEntries(B.syncFinished) } };
});

const haveContacts = await step('contacts', async () => {
  for (const [p, peer] of [[A, 'b'], [B, 'a']]) {
    await contacts(p).locator('.cui-contactGroup-title', { hasText: /^\s*Contacts/ }).first().click();
    // By nickname when one is set: the contact list shows the user attributes too.
    await contacts(p).getByText(shownAs(peer)).first().waitFor({ timeout: WAIT });
  }
});

await step('open_chat', async () => {
  await openChatWith(A, 'b', haveContacts);
  await openChatWith(B, 'a', haveContacts);
  return haveContacts ? {} : { via: 'window.__uikit.openChat (no contact list)' };
});

await step('text', async () => {
  const input = chat(A).locator('.cui-textarea-input');
  await input.click();
  await A.keyboard.type(text);
  await A.keyboard.press('Enter');
  await chat(A).getByText(text).first().waitFor({ timeout: WAIT });
  await chat(B).getByText(text).first().waitFor({ timeout: WAIT });
});

await step('image', async () => {
  await chat(B).locator('input[type=file][accept*="image/png"]').setInputFiles(cfg.image);
  // A renders it: an <img> with real pixels, whose bytes came from Missive — the UIKit
  // fetches the thumbnail (`chatfiles/{uuid}?size=small`) and shows it as a blob: URL, or
  // points the <img> at Missive directly. The size is taken in the same check: React may
  // replace the element right after.
  const found = await A.waitForFunction(
    (origin) => {
      const img = [...document.querySelectorAll('[data-testid=chat] img')].find(
        (i) => (i.src.startsWith(origin) || i.src.startsWith('blob:')) && i.complete && i.naturalWidth > 0,
      );
      return img ? { src: img.src, width: img.naturalWidth, height: img.naturalHeight } : false;
    },
    MISSIVE,
    { timeout: WAIT },
  );
  const img = await found.jsonValue();
  const loaded = report.rest.filter((r) => r.who === 'a' && r.method === 'GET' && r.path.includes('/chatfiles/') && r.status === 200);
  if (loaded.length === 0) throw new Error(`A shows ${img.src} but loaded no chat file from Missive`);
  if (img.src.startsWith(MISSIVE) && !loaded.some((r) => img.src.includes(r.path))) throw new Error(`A shows ${img.src}, not a file it loaded`);
  return { detail: `${loaded[0].path}${loaded[0].query}`, size: [img.width, img.height] };
});

await step('rest_send', async () => {
  const [org, app] = cfg.appKey.split('#');
  const res = await fetch(`${MISSIVE}/${org}/${app}/messages/users`, {
    method: 'POST',
    headers: { authorization: `Bearer ${cfg.admin}`, 'content-type': 'application/json' },
    body: JSON.stringify({ from: cfg.c.user, to: [cfg.b.user], type: 'txt', body: { msg: 'sent over REST' } }),
  });
  if (res.status !== 200) throw new Error(`REST send: ${res.status} ${await res.text()}`);
  const item = conversations(B).locator('.cui-conversationItem', { hasText: mentions('c') });
  await item.getByText('sent over REST').first().waitFor({ timeout: WAIT });
  const badge = (await item.locator('.cui-badge').first().textContent({ timeout: WAIT })).trim();
  if (badge !== '1') throw new Error(`unread badge ${JSON.stringify(badge)}, expected "1"`);
});

await step('reload', async () => {
  for (const k of [...B.syncFinished.keys()]) B.syncFinished.delete(k);
  await B.reload();
  await B.waitForFunction(() => window.__uikit && window.__uikit.rootStore.loginState === true, null, { timeout: WAIT });
  // The conversation list comes back from the server, and the chat with A from history.
  await conversations(B).locator('.cui-conversationItem', { hasText: mentions('a') }).first().waitFor({ timeout: WAIT });
  await conversations(B).locator('.cui-conversationItem', { hasText: mentions('c') }).first().waitFor({ timeout: WAIT });
  await conversations(B).locator('.cui-conversationItem', { hasText: mentions('a') }).first().click();
  await chat(B).getByText(text).first().waitFor({ timeout: WAIT });
});

await step('nicknames', async () => {
  if (!cfg.a.nickname || !cfg.b.nickname) throw new Error('no nicknames configured');
  await conversations(B).getByText(cfg.a.nickname, { exact: true }).first().waitFor({ timeout: WAIT });
  await chat(A).locator('.cui-header').getByText(cfg.b.nickname, { exact: true }).first().waitFor({ timeout: WAIT });
});

currentStep = 'end';
await browser.close();
server.close();
fs.writeFileSync(path.join(cfg.out, 'report.json'), JSON.stringify(report, null, 2));
emit({ report });
process.exit(0);
