// chatsrv service worker: the app shell offline, and Web Push notifications.
// Plain script, no build step. It never talks to the chat server's WebSocket: what it
// knows of the page (mutes, conversation names, unread counts) the page writes into the
// STATE cache entry, and pushes (docs/protocol.md §12.3) bring the rest.

const SHELL_CACHE = 'chatsrv-shell-v1';
const STATE_CACHE = 'chatsrv-state';
const STATE_URL = '/__chatsrv_state';
// Served from the network when it answers (a new version shows at once), from here when not.
const SHELL = ['/', '/app.js', '/style.css', '/icon.svg', '/icon-192.png', '/icon-512.png',
               '/manifest.webmanifest', '/settings'];

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(SHELL_CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (e) => {
  e.waitUntil((async () => {
    for (const k of await caches.keys()) if (k !== SHELL_CACHE && k !== STATE_CACHE) await caches.delete(k);
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (e) => {
  const req = e.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  const path = req.mode === 'navigate' ? '/' : url.pathname;
  if (!SHELL.includes(path)) return;
  e.respondWith((async () => {
    const cache = await caches.open(SHELL_CACHE);
    try {
      const res = await fetch(req);
      if (res.ok) await cache.put(path, res.clone());
      return res;
    } catch (err) {
      const hit = await cache.match(path);
      if (hit) return hit;
      throw err;
    }
  })());
});

// ---------------------------------------------------------------- state shared with the page
async function readState() {
  try {
    const r = await (await caches.open(STATE_CACHE)).match(STATE_URL);
    const s = r ? await r.json() : {};
    return { mutes: s.mutes || {}, names: s.names || {}, unread: s.unread || {} };
  } catch { return { mutes: {}, names: {}, unread: {} }; }
}

async function writeState(s) {
  const c = await caches.open(STATE_CACHE);
  await c.put(STATE_URL, new Response(JSON.stringify(s), { headers: { 'Content-Type': 'application/json' } }));
}

const tagOf = (account, conv) => account + '|' + conv;

async function setBadge(state) {
  const n = Object.values(state.unread).reduce((a, b) => a + (b | 0), 0);
  try {
    if (n > 0 && self.navigator.setAppBadge) await self.navigator.setAppBadge(n);
    else if (self.navigator.clearAppBadge) await self.navigator.clearAppBadge();
  } catch { /* no badge support */ }
}

/** A window showing this chat, in front and focused: it needs no notification. */
async function chatOnScreen(account, conv) {
  const want = '#' + encodeURIComponent(account) + '/' + encodeURIComponent(conv);
  for (const c of await self.clients.matchAll({ type: 'window', includeUncontrolled: true })) {
    if (c.focused && c.visibilityState === 'visible' && new URL(c.url).hash === want) return true;
  }
  return false;
}

async function onMessagePush(p, state) {
  const tag = tagOf(p.account, p.conv);
  if ((state.mutes[tag] || 0) > Date.now()) return;
  if (await chatOnScreen(p.account, p.conv)) return;
  const prev = await self.registration.getNotifications({ tag });
  const count = prev.reduce((n, x) => Math.max(n, (x.data && x.data.count) || 0), 0) + 1;
  const name = state.names[tag] || (p.conv.startsWith('g:') ? 'Group' : p.from);
  let body = p.sys ? 'Group changed' : String(p.body ?? '');
  if (p.conv.startsWith('g:') && !p.sys) body = p.from + ': ' + body;
  const title = count > 1 ? `${name} (${count} new)` : name;
  await self.registration.showNotification(title, {
    tag, body, renotify: true, icon: '/icon-192.png', badge: '/icon-192.png', timestamp: p.ts || Date.now(),
    data: { account: p.account, conv: p.conv, seq: p.seq, count },
  });
}

async function onReadPush(p) {
  for (const n of await self.registration.getNotifications({ tag: tagOf(p.account, p.conv) })) {
    if (!n.data || !(n.data.seq > p.seq)) n.close();
  }
}

let queue = Promise.resolve();

self.addEventListener('push', (e) => {
  let p = null;
  try { p = e.data ? e.data.json() : null; } catch { p = null; }
  if (!p || typeof p.account !== 'string' || typeof p.conv !== 'string') return;
  e.waitUntil((async () => {
    const state = await readState();
    if (Number.isInteger(p.unread)) {
      state.unread[p.account] = p.unread;
      await writeState(state);
      await setBadge(state);
    }
    // pushes are handled one at a time: each replaces the notification of its chat and counts on it
    queue = queue.then(() => (p.type === 'msg' ? onMessagePush(p, state) : p.type === 'read' ? onReadPush(p) : null))
      .catch(() => {});
    await queue;
  })());
});

self.addEventListener('notificationclick', (e) => {
  const d = e.notification.data || {};
  e.notification.close();
  if (!d.account || !d.conv) return;
  const hash = '#' + encodeURIComponent(d.account) + '/' + encodeURIComponent(d.conv);
  e.waitUntil((async () => {
    const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    const win = wins.find((c) => c.focused) || wins[0];
    if (win) {
      win.postMessage({ type: 'open', account: d.account, conv: d.conv });
      await win.focus();
    } else {
      await self.clients.openWindow('/' + hash);
    }
  })());
});
