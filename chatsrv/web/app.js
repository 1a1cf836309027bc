// chatsrv web client: plain JavaScript module, no build step.
// Protocol: docs/protocol.md (v1). One WebSocket per signed-in account.
// All user-supplied text goes through textContent (see h()); never innerHTML.
// Notifications and the offline shell: sw.js.

const WS_URL = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
const HISTORY_PAGE = 50;
const TYPING_SHOW_FOR = 3500;     // ms a received typing indicator stays
const RECONNECT_MS = [250, 750, 1500, 3000, 5000, 8000];   // then 8 s, with jitter
const MUTE_ALWAYS = 253402300799000;                       // 9999-12-31: "until I unmute"
const CACHE_CONVS = 40;           // conversations kept for the offline view, per account
const CACHE_MSGS = HISTORY_PAGE;  // newest messages kept per conversation: what one history page brings
const STATE_CACHE = 'chatsrv-state';          // shared with sw.js
const STATE_URL = '/__chatsrv_state';
const LS = {
  device: 'chatsrv.device',
  accounts: 'chatsrv.accounts',
  active: 'chatsrv.active',
  settings: 'chatsrv.settings',
  outbox: (u) => 'chatsrv.outbox.' + u,
  receipts: (u) => 'chatsrv.receipts.' + u,
  open: (u) => 'chatsrv.open.' + u,
  drafts: (u) => 'chatsrv.drafts.' + u,
  cache: (u) => 'chatsrv.cache.' + u,
  push: (u) => 'chatsrv.push.' + u,          // 'on' | 'off' (asked and declined) | absent (never asked)
};
const TRANSIENT = new Set(['unavailable', 'rate_limited', 'internal', 'timeout']);

// What the server told us at GET /settings (§5.3); these defaults until it answers.
const settings = Object.assign({ signup: true, push: false, max_message_bytes: 16384, typing_interval: 2 },
  lsGet(LS.settings, {}));

// ------------------------------------------------------------------ helpers
const $ = (sel) => document.querySelector(sel);

/** Builds an element. Strings become text nodes: safe for user data. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function randomHex(bytes) {
  const a = new Uint8Array(bytes);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

function lsGet(key, fallback) {
  try {
    const v = localStorage.getItem(key);
    return v == null ? fallback : JSON.parse(v);
  } catch { return fallback; }
}
function lsSet(key, value) {
  try { localStorage.setItem(key, JSON.stringify(value)); } catch { /* quota or disabled */ }
}
function lsDel(key) {
  try { localStorage.removeItem(key); } catch { /* disabled */ }
}

function deviceId() {
  let d = localStorage.getItem(LS.device);
  if (!d || !/^[A-Za-z0-9_.-]{1,64}$/.test(d)) {
    d = 'web-' + randomHex(8);
    localStorage.setItem(LS.device, d);
  }
  return d;
}

function protoError(code, msg) {
  const e = new Error(msg || code);
  e.code = code;
  return e;
}

function parseNames(text) {
  return [...new Set(String(text).split(/[\s,;]+/).map((s) => s.trim().toLowerCase()).filter(Boolean))];
}

const USER_RE = /^[a-z0-9_]{3,32}$/;
const isPhone = () => matchMedia('(pointer: coarse)').matches;

function hue(name) {
  let x = 0;
  for (const ch of String(name)) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return x % 360;
}

function avatar(el, name, isGroup) {
  el.textContent = (isGroup ? '#' : '') + (String(name || '?').replace(/^[^\p{L}\p{N}]+/u, '')[0] || '?').toUpperCase();
  el.style.background = `hsl(${hue(name)} 55% 30%)`;   // white text stays readable (4.5:1) at any hue
  el.setAttribute('aria-hidden', 'true');
}

function sameDay(a, b) {
  const x = new Date(a), y = new Date(b);
  return x.getFullYear() === y.getFullYear() && x.getMonth() === y.getMonth() && x.getDate() === y.getDate();
}
function fmtTime(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}
function fmtShort(ts) {
  if (!ts) return '';
  if (sameDay(ts, Date.now())) return fmtTime(ts);
  const d = new Date(ts);
  if (Date.now() - ts < 6 * 86400e3) return d.toLocaleDateString([], { weekday: 'short' });
  return d.toLocaleDateString([], { day: 'numeric', month: 'short' });
}
function fmtDay(ts) {
  if (sameDay(ts, Date.now())) return 'Today';
  if (sameDay(ts, Date.now() - 86400e3)) return 'Yesterday';
  return new Date(ts).toLocaleDateString([], { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
}
function fmtLastSeen(p) {
  if (!p) return '';
  if (p.state === 'online') return 'online';
  if (!p.last_seen) return 'offline';
  const ago = Date.now() - p.last_seen;
  if (ago < 60e3) return 'last seen just now';
  if (ago < 3600e3) return `last seen ${Math.floor(ago / 60e3)} min ago`;
  if (sameDay(p.last_seen, Date.now())) return `last seen today at ${fmtTime(p.last_seen)}`;
  return `last seen ${fmtShort(p.last_seen)} at ${fmtTime(p.last_seen)}`;
}
function fmtMute(until) {
  if (until >= MUTE_ALWAYS) return 'Muted';
  return 'Muted until ' + (sameDay(until, Date.now()) ? fmtTime(until) : `${fmtShort(until)} ${fmtTime(until)}`);
}

/** Text of a system message (group change). */
function sysText(m) {
  const s = m.sys || {};
  const users = Array.isArray(s.users) ? s.users : [];
  const list = (xs) => xs.join(', ');
  const owner = typeof s.owner === 'string' ? ` ${s.owner} is now the owner.` : '';
  switch (s.action) {
    case 'create': {
      const others = users.filter((u) => u !== m.from);
      return `${m.from} created the group “${s.name}”` + (others.length ? ` with ${list(others)}` : '');
    }
    case 'add': return `${m.from} added ${list(users)}`;
    case 'remove': return `${m.from} removed ${list(users)}.` + owner;
    case 'leave': return `${list(users.length ? users : [m.from])} left.` + owner;
    case 'rename': return `${m.from} renamed the group to “${s.name}”`;
    default: return `${m.from} changed the group`;
  }
}

function previewText(acct, c) {
  const m = c.last;
  if (!m) return '';
  if (m.sys) return sysText(m);
  const who = m.from === acct.user ? 'You: ' : (c.kind === 'group' ? m.from + ': ' : '');
  return who + String(m.body ?? '').replace(/\s+/g, ' ');
}

// Links: http and https only; everything else stays text.
const URL_RE = /\bhttps?:\/\/[^\s<>"]+/gi;
function linkify(text) {
  const out = [];
  let at = 0;
  for (const m of String(text).matchAll(URL_RE)) {
    let url = m[0].replace(/[.,;:!?'’”)\]]+$/, '');
    if (url.endsWith(')') === false && m[0].slice(url.length).startsWith(')') && url.includes('(')) url += ')';
    let ok = false;
    try { const u = new URL(url); ok = u.protocol === 'http:' || u.protocol === 'https:'; } catch { ok = false; }
    if (!ok) continue;
    if (m.index > at) out.push(text.slice(at, m.index));
    out.push(h('a', { href: url, target: '_blank', rel: 'noopener noreferrer', text: url }));
    at = m.index + url.length;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}

/**
 * Keyed update of a container: `items` are {key, sig, build}; a node whose key and
 * signature are unchanged is left alone (so a text selection in it survives), the
 * others are built anew, and nodes are moved only where the order changed.
 */
function reconcile(box, items) {
  const old = new Map();
  for (const n of box.children) if (n.dataset.key) old.set(n.dataset.key, n);
  let cursor = box.firstElementChild;
  const keep = new Set();
  for (const it of items) {
    let node = old.get(it.key);
    if (node && node.dataset.sig !== it.sig) {
      if (cursor === node) cursor = node.nextElementSibling;
      node.remove();
      node = null;
    }
    if (!node) {
      node = it.build();
      node.dataset.key = it.key;
      node.dataset.sig = it.sig;
    }
    keep.add(node);
    if (node === cursor) cursor = cursor.nextElementSibling;
    else box.insertBefore(node, cursor);
  }
  for (const n of [...box.children]) if (!keep.has(n)) n.remove();
}

const SVG_NS = 'http://www.w3.org/2000/svg';
/** An icon from the sprite in index.html. */
function icon(name) {
  const s = document.createElementNS(SVG_NS, 'svg');
  s.setAttribute('class', 'icon');
  s.setAttribute('aria-hidden', 'true');
  const u = document.createElementNS(SVG_NS, 'use');
  u.setAttribute('href', '#i-' + name);
  s.append(u);
  return s;
}

function b64urlBytes(s) {
  const b = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(b, (ch) => ch.charCodeAt(0));
}
function sameBytes(a, b) {
  if (!a || !b) return false;
  const x = new Uint8Array(a), y = new Uint8Array(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

// ------------------------------------------------------------------ account (one WebSocket)
class Account {
  constructor(user, token) {
    this.user = user;
    this.token = token;
    this.ws = null;
    this.status = 'offline';        // offline | connecting | syncing | online
    this.retryAt = 0;
    this.retry = 0;
    this.retryTimer = null;
    this.closing = false;           // we closed on purpose: do not reconnect
    this.nextId = 1;
    this.pending = new Map();       // request id -> {resolve, reject}
    this.synced = false;
    this.convs = new Map();         // conv -> {conv, kind, peer, name, last_seq, read_seq, unread, last, left, muted_until}
    this.order = [];                // conv ids, most recent first
    this.msgs = new Map();          // conv -> {bySeq: Map(seq -> msg), loaded, hasMore, loading}
    this.outbox = lsGet(LS.outbox(user), []).filter((o) => o && o.cid && o.body);
    for (const o of this.outbox) o.inflight = false;
    this.receipts = lsGet(LS.receipts(user), {}) || {};   // conv -> {read: {user: seq}, delivered: seq}
    this.drafts = lsGet(LS.drafts(user), {}) || {};       // openKey -> text
    this.presence = new Map();      // user -> {state, last_seen}
    this.watched = new Set();
    this.typingIn = new Map();      // conv -> Map(user -> until ms)
    this.typingSent = new Map();    // conv -> ms
    this.inboxDone = 0;             // highest contiguous inbox position stored
    this.inboxSeen = new Set();     // stored positions above inboxDone
    this.acked = 0;
    this.ackTimer = null;
    this.readSent = new Map();      // conv -> seq we asked to mark read
    this.convsTimer = null;
    this.saveTimer = null;
    this.openKey = lsGet(LS.open(user), null);   // conv id or 'draft:<user>'
    this.loadCache();
  }

  get pushPref() { return lsGet(LS.push(this.user), null); }
  set pushPref(v) { if (v == null) lsDel(LS.push(this.user)); else lsSet(LS.push(this.user), v); }

  // ---------------------------------------------------------------- what is shown offline
  loadCache() {
    const c = lsGet(LS.cache(this.user), null);
    if (!c || !Array.isArray(c.convs)) return;
    for (const e of c.convs) {
      if (!e || typeof e.conv !== 'string') continue;
      this.convs.set(e.conv, e);
      this.order.push(e.conv);
      const st = this.store(e.conv);
      for (const m of e.msgs || []) st.bySeq.set(m.seq, m);
      delete e.msgs;
    }
  }

  saveCache() {
    if (this.saveTimer) return;
    this.saveTimer = setTimeout(() => this.writeCache(), 500);
  }

  writeCache() {
    clearTimeout(this.saveTimer);
    this.saveTimer = null;
    if (!this.token) return;
    const convs = this.order.slice(0, CACHE_CONVS).map((id) => this.convs.get(id)).filter(Boolean).map((c) => {
      const st = this.msgs.get(c.conv);
      const msgs = st ? [...st.bySeq.values()].sort((x, y) => x.seq - y.seq).slice(-CACHE_MSGS) : [];
      const { conv, kind, peer, name, last_seq, read_seq, unread, last, left, muted_until } = c;
      return { conv, kind, peer, name, last_seq, read_seq, unread, last, left, muted_until, msgs };
    });
    lsSet(LS.cache(this.user), { convs });
  }

  // ---------------------------------------------------------------- socket
  /** Opens the socket; resolves when it is open (for login), auths with the token if we have one. */
  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.ws) return Promise.resolve();
    this.closing = false;
    this.setStatus('connecting');
    const ws = new WebSocket(WS_URL);
    this.ws = ws;
    return new Promise((resolve, reject) => {
      ws.onopen = () => {
        resolve();
        if (this.token) this.authenticate();
      };
      ws.onmessage = (e) => { if (this.ws === ws) this.onFrame(e.data); };
      ws.onclose = (e) => {
        reject(protoError('disconnected', 'could not connect to the server'));
        if (this.ws === ws) this.onClose(e);
      };
      ws.onerror = () => { /* close follows */ };
    });
  }

  async authenticate() {
    this.setStatus('syncing');
    try {
      await this.req({ op: 'auth', token: this.token });
      this.retry = 0;
    } catch (e) {
      if (e.code === 'unauthorized') app.accountGone(this, 'Your session has ended. Please log in again.');
      else if (e.code === 'rate_limited' && this.ws) this.ws.close(4000, 'retry');
    }
  }

  close() {
    this.closing = true;
    clearTimeout(this.retryTimer);
    if (this.ws) { try { this.ws.close(1000); } catch { /* already closed */ } }
    this.ws = null;
    this.failPending();
    this.synced = false;
    this.setStatus('offline');
  }

  failPending() {
    for (const p of this.pending.values()) p.reject(protoError('disconnected', 'connection lost'));
    this.pending.clear();
  }

  onClose(e) {
    this.ws = null;
    this.synced = false;
    this.watched.clear();
    this.failPending();
    for (const o of this.outbox) o.inflight = false;
    if (e.code === 1008 && e.reason === 'logged out') {
      app.accountGone(this, null);
      return;
    }
    if (this.closing || !this.token) { this.setStatus('offline'); return; }
    const delay = RECONNECT_MS[Math.min(this.retry, RECONNECT_MS.length - 1)] * (0.8 + Math.random() * 0.4);
    this.retry += 1;
    this.retryAt = Date.now() + delay;
    this.setStatus('offline');
    this.retryTimer = setTimeout(() => this.connect().catch(() => {}), delay);
  }

  /** Reconnect now (the network came back, the page came to the front, or the user asked). */
  kick() {
    if (!this.ws && this.token && !this.closing) { this.retry = 0; this.connect().catch(() => {}); }
  }

  setStatus(s) {
    this.status = s;
    app.changed(this, 'status');
  }

  req(obj, timeout = 20000) {
    return new Promise((resolve, reject) => {
      const ws = this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) { reject(protoError('disconnected', 'not connected')); return; }
      const id = this.nextId++;
      const timer = setTimeout(() => {
        if (this.pending.delete(id)) reject(protoError('timeout', 'the server did not answer'));
      }, timeout);
      this.pending.set(id, {
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      ws.send(JSON.stringify({ id, ...obj }));
    });
  }

  onFrame(data) {
    let f;
    try { f = JSON.parse(data); } catch { return; }
    if (!f || typeof f !== 'object') return;
    if (typeof f.ev === 'string' && !('id' in f)) { this.onEvent(f); return; }
    const p = this.pending.get(f.id);
    if (!p) return;
    this.pending.delete(f.id);
    if (f.err) p.reject(protoError(f.err.code || 'internal', f.err.msg));
    else p.resolve(f.ok || {});
  }

  onEvent(ev) {
    switch (ev.ev) {
      case 'msg': this.onMsg(ev); break;
      case 'synced': this.onSynced(ev); break;
      case 'presence':
        this.presence.set(ev.user, { state: ev.state, last_seen: ev.last_seen });
        app.changed(this, 'presence');
        break;
      case 'typing': this.onTyping(ev); break;
      case 'read': this.onRead(ev); break;
      case 'delivered': {
        const r = this.receiptsFor(ev.conv);
        if (ev.seq > (r.delivered || 0)) { r.delivered = ev.seq; this.saveReceipts(); app.changed(this, 'receipt', ev.conv); }
        break;
      }
      default: break;   // unknown events are ignored (protocol §1)
    }
  }

  // ---------------------------------------------------------------- inbox and acks
  stored(pos) {
    if (!Number.isInteger(pos) || pos <= this.inboxDone) return;
    this.inboxSeen.add(pos);
    while (this.inboxSeen.has(this.inboxDone + 1)) this.inboxSeen.delete(++this.inboxDone);
    this.scheduleAck();
  }

  scheduleAck(delay = 150) {
    if (this.ackTimer) return;
    this.ackTimer = setTimeout(async () => {
      this.ackTimer = null;
      if (!this.synced || this.inboxDone <= this.acked) return;
      const upto = this.inboxDone;
      try {
        await this.req({ op: 'ack', upto });
        this.acked = Math.max(this.acked, upto);
      } catch { /* acked again after the next synced */ }
    }, delay);
  }

  /** Sends the pending ack at once, without waiting for the reply (page unload). */
  flushAck() {
    if (!this.synced || this.inboxDone <= this.acked || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    clearTimeout(this.ackTimer);
    this.ackTimer = null;
    try { this.ws.send(JSON.stringify({ id: this.nextId++, op: 'ack', upto: this.inboxDone })); } catch { /* closing */ }
    this.acked = this.inboxDone;
  }

  onSynced(ev) {
    // Everything after this device's cursor up to ev.inbox has been sent, and stored by onMsg.
    if (Number.isInteger(ev.inbox) && ev.inbox > this.inboxDone) {
      this.inboxDone = ev.inbox;
      for (const p of [...this.inboxSeen]) if (p <= this.inboxDone) this.inboxSeen.delete(p);
      while (this.inboxSeen.has(this.inboxDone + 1)) this.inboxSeen.delete(++this.inboxDone);
    }
    this.acked = 0;   // the server's cursor may be behind what we acked on an old socket: ack again
    this.synced = true;
    this.setStatus('online');
    this.scheduleAck(0);
    this.afterSync();
  }

  async afterSync() {
    await this.refreshConvs();
    this.flushOutbox();
    this.watchPeers();
    if (this.pushPref === 'on') notifier.resubscribe(this);
    // refresh the open conversation (a new device has no backlog, only history)
    const open = this.openKey;
    if (open && !open.startsWith('draft:') && this.convs.has(open)) {
      this.loadHistory(open, false);
      this.maybeRead(open);
    }
  }

  // ---------------------------------------------------------------- conversations
  async refreshConvs() {
    let r;
    try { r = await this.req({ op: 'convs', include_left: true }); } catch { return; }
    const fresh = new Map();
    const order = [];
    for (const e of r.convs || []) {
      const old = this.convs.get(e.conv);
      const c = old || {};
      const wasLeft = c.left;
      c.conv = e.conv;
      c.kind = e.kind;
      c.peer = e.peer;
      if (e.kind === 'group') c.name = e.name;
      c.left = e.left || false;
      // a fresh departure (or return) resets what we knew; otherwise never go backwards
      if (wasLeft !== c.left) { c.last_seq = e.last_seq; c.read_seq = e.read_seq; c.last = e.last; }
      c.last_seq = Math.max(e.last_seq || 0, c.last_seq || 0);
      c.read_seq = Math.max(e.read_seq || 0, c.read_seq || 0);
      if (e.last && (!c.last || e.last.seq >= c.last.seq)) c.last = e.last;
      c.muted_until = e.muted_until || 0;
      c.unread = Math.max(0, c.last_seq - c.read_seq);
      fresh.set(e.conv, c);
      order.push(e.conv);
    }
    this.convs = fresh;
    this.order = order;
    for (const id of [...this.msgs.keys()]) if (!fresh.has(id)) this.msgs.delete(id);
    if (this.openKey && !this.openKey.startsWith('draft:') && !fresh.has(this.openKey)) this.setOpen(null);
    app.changed(this, 'convs');
    notifier.shareState();
    this.saveCache();
    for (const id of order) this.maybeRead(id);
  }

  scheduleConvsRefresh() {
    clearTimeout(this.convsTimer);
    this.convsTimer = setTimeout(() => { if (this.synced) this.refreshConvs().then(() => this.watchPeers()); }, 150);
  }

  store(conv) {
    let st = this.msgs.get(conv);
    if (!st) { st = { bySeq: new Map(), loaded: false, hasMore: true, loading: false }; this.msgs.set(conv, st); }
    return st;
  }

  bump(conv) {
    const i = this.order.indexOf(conv);
    if (i === 0) return;
    if (i > 0) this.order.splice(i, 1);
    this.order.unshift(conv);
  }

  title(c) {
    if (!c) return '';
    if (c.kind === 'group') return c.name || 'Group';
    return c.peer || '';
  }

  directWith(user) {
    for (const c of this.convs.values()) if (c.kind === 'direct' && c.peer === user) return c;
    return null;
  }

  muted(c) { return !!c && (c.muted_until || 0) > Date.now(); }

  onMsg(m) {
    if (typeof m.conv !== 'string' || !Number.isInteger(m.seq)) return;
    const isNew = this.addMessage(m, true);
    this.stored(m.inbox);
    if (isNew && this.synced) notifier.onMessage(this, m);
  }

  /** Stores one message (from an event, a send reply or history); dedupes by (conv, seq). */
  addMessage(m, live) {
    const msg = { conv: m.conv, seq: m.seq, from: m.from, ts: m.ts };
    if (m.sys) msg.sys = m.sys; else { msg.body = m.body; msg.cid = m.cid; }
    const st = this.store(m.conv);
    const isNew = !st.bySeq.has(m.seq);
    if (isNew) st.bySeq.set(m.seq, msg);
    if (m.from === this.user && m.cid) this.dropOutbox(m.cid);

    let c = this.convs.get(m.conv);
    if (!c) {
      if (!live) return isNew;
      // a conversation we did not know yet: guess, then ask the server
      const isGroup = !!m.sys || m.conv.startsWith('g:');
      let peer = m.from !== this.user ? m.from : null;
      if (!isGroup && !peer && m.conv.startsWith('d:')) peer = m.conv.slice(2).split(':').find((u) => u !== this.user) || null;
      c = { conv: m.conv, kind: isGroup ? 'group' : 'direct', peer, name: m.sys ? m.sys.name : undefined,
            last_seq: 0, read_seq: 0, unread: 0, last: null, left: false, muted_until: 0 };
      this.convs.set(m.conv, c);
      this.scheduleConvsRefresh();
    }
    if (m.seq > c.last_seq || !c.last) {
      c.last_seq = Math.max(c.last_seq, m.seq);
      c.last = msg;
      if (live) this.bump(m.conv);
    }
    const leaving = m.sys && (m.sys.action === 'leave' || m.sys.action === 'remove');
    if (m.sys && live) this.applySys(c, m);
    if (m.from === this.user) c.read_seq = Math.max(c.read_seq, m.seq);   // sending implies reading
    else if (!leaving) this.peerRead(m.conv, m.from, m.seq);              // so does the peer's message
    c.unread = Math.max(0, c.last_seq - c.read_seq);
    if (m.from !== this.user) this.clearTyping(m.conv, m.from);
    app.changed(this, 'msg', m.conv);
    this.saveCache();
    if (live) this.maybeRead(m.conv);
    if (live && c.kind === 'direct' && c.peer && !this.watched.has(c.peer)) this.watchPeers();
    return isNew;
  }

  applySys(c, m) {
    const s = m.sys;
    if (typeof s.name === 'string') c.name = s.name;
    const users = Array.isArray(s.users) ? s.users : [];
    if (c.info) {
      if (s.action === 'create') c.info.members = users.slice();
      else if (s.action === 'add') c.info.members.push(...users.filter((u) => !c.info.members.includes(u)));
      else if (s.action === 'remove' || s.action === 'leave') c.info.members = c.info.members.filter((u) => !users.includes(u));
      if (typeof s.name === 'string') c.info.name = s.name;
      if ('owner' in s) c.info.owner = s.owner;
    }
    if ((s.action === 'remove' || s.action === 'leave') && users.includes(this.user)) {
      c.left = m.seq;
    } else if ((s.action === 'add' || s.action === 'create') && users.includes(this.user)) {
      c.left = false;
    }
    if (s.action === 'remove' || s.action === 'leave' || s.action === 'add') app.groupChanged(this, c.conv);
  }

  /** Loads a page of history: the newest (older=false), or the one before what we have. */
  async loadHistory(conv, older, limit = HISTORY_PAGE) {
    const st = this.store(conv);
    if (st.loading || (older && !st.hasMore)) return;
    st.loading = true;
    const args = { op: 'history', conv, limit, include_left: true };
    if (older && st.bySeq.size) args.before = Math.min(...st.bySeq.keys());
    try {
      const r = await this.req(args);
      const ms = r.messages || [];
      for (const m of ms) this.addMessage(m, false);
      if (ms.length < limit || ms.some((m) => m.seq <= 1)) st.hasMore = false;
      if (!older && !ms.length) st.hasMore = false;
      st.loaded = true;
    } catch (e) {
      if (e.code === 'forbidden') { st.hasMore = false; st.loaded = true; }
    } finally {
      st.loading = false;
      app.changed(this, 'history', conv, older);
    }
  }

  // ---------------------------------------------------------------- receipts, read, typing, presence
  receiptsFor(conv) {
    let r = this.receipts[conv];
    if (!r || typeof r !== 'object') { r = { read: {}, delivered: 0 }; this.receipts[conv] = r; }
    if (!r.read) r.read = {};
    return r;
  }

  saveReceipts() {
    clearTimeout(this.receiptsTimer);
    this.receiptsTimer = setTimeout(() => lsSet(LS.receipts(this.user), this.receipts), 300);
  }

  peerRead(conv, user, seq) {
    if (!user || user === this.user) return;
    const r = this.receiptsFor(conv);
    if ((r.read[user] || 0) < seq) { r.read[user] = seq; this.saveReceipts(); app.changed(this, 'receipt', conv); }
  }

  onRead(ev) {
    if (ev.user === this.user) {
      const c = this.convs.get(ev.conv);
      notifier.clear(this, ev.conv);
      if (c && ev.seq > c.read_seq) {
        c.read_seq = ev.seq;
        c.unread = Math.max(0, c.last_seq - c.read_seq);
        app.changed(this, 'read', ev.conv);
        this.saveCache();
      }
    } else {
      this.peerRead(ev.conv, ev.user, ev.seq);
    }
  }

  /** Sends `read` when this conversation is open, on screen and has unread messages. */
  maybeRead(conv) {
    const c = this.convs.get(conv);
    if (!c || c.left || !this.synced || !app.isVisible(this, conv)) return;
    const seq = c.last_seq;
    if (seq <= c.read_seq || (this.readSent.get(conv) || 0) >= seq) return;
    this.readSent.set(conv, seq);
    this.req({ op: 'read', conv, seq }).then(() => {
      if (seq > c.read_seq) { c.read_seq = seq; c.unread = Math.max(0, c.last_seq - c.read_seq); app.changed(this, 'read', conv); }
    }, () => { if (this.readSent.get(conv) === seq) this.readSent.delete(conv); });
  }

  onTyping(ev) {
    if (ev.user === this.user) return;
    let m = this.typingIn.get(ev.conv);
    if (!m) { m = new Map(); this.typingIn.set(ev.conv, m); }
    m.set(ev.user, Date.now() + TYPING_SHOW_FOR);
    app.changed(this, 'typing', ev.conv);
    setTimeout(() => app.changed(this, 'typing', ev.conv), TYPING_SHOW_FOR + 50);
  }

  clearTyping(conv, user) {
    const m = this.typingIn.get(conv);
    if (m && m.delete(user)) app.changed(this, 'typing', conv);
  }

  typingUsers(conv) {
    const m = this.typingIn.get(conv);
    if (!m) return [];
    const now = Date.now();
    return [...m].filter(([, until]) => until > now).map(([u]) => u);
  }

  notifyTyping(conv) {
    if (!conv || !this.synced) return;
    const now = Date.now();
    if (now - (this.typingSent.get(conv) || 0) < (settings.typing_interval || 2) * 1000) return;
    this.typingSent.set(conv, now);
    this.req({ op: 'typing', conv }).catch(() => {});
  }

  async watchPeers() {
    if (!this.synced) return;
    const users = [];
    for (const c of this.convs.values()) {
      if (c.kind === 'direct' && c.peer && !this.watched.has(c.peer)) users.push(c.peer);
    }
    if (!users.length) return;
    for (const u of users) this.watched.add(u);
    const apply = (r) => {
      for (const p of r.presence || []) this.presence.set(p.user, { state: p.state, last_seen: p.last_seen });
      app.changed(this, 'presence');
    };
    try {
      apply(await this.req({ op: 'watch', users }));
    } catch (e) {
      if (e.code !== 'forbidden') { for (const u of users) this.watched.delete(u); return; }
      // one of them is not watchable (yet): watch one by one
      for (const u of users) {
        try { apply(await this.req({ op: 'watch', users: [u] })); } catch { this.watched.delete(u); }
      }
    }
  }

  async mute(conv, until) {
    await this.req({ op: 'mute', conv, until });
    const c = this.convs.get(conv);
    if (c) c.muted_until = until;
    if (until > Date.now()) notifier.clear(this, conv);
    app.changed(this, 'convs');
    await notifier.writeState();      // at once: the page may close right after a mute
    this.saveCache();
  }

  // ---------------------------------------------------------------- drafts
  setDraft(key, text) {
    if (!key) return;
    if ((this.drafts[key] || '') === text) return;
    if (text) this.drafts[key] = text; else delete this.drafts[key];
    lsSet(LS.drafts(this.user), this.drafts);    // at once: a reload may come any moment
  }

  // ---------------------------------------------------------------- sending
  saveOutbox() {
    lsSet(LS.outbox(this.user), this.outbox.map(({ cid, conv, to, body, ts, state, error }) => ({ cid, conv, to, body, ts, state, error })));
  }

  dropOutbox(cid) {
    const i = this.outbox.findIndex((o) => o.cid === cid);
    if (i >= 0) { this.outbox.splice(i, 1); this.saveOutbox(); }
  }

  /** Queues a message; it is shown at once and resent with the same cid until the server has it. */
  send(conv, to, body) {
    const item = { cid: 'w' + Date.now().toString(36) + randomHex(8), conv: conv || null, to: conv ? null : to,
                   body, ts: Date.now(), state: 'pending' };
    this.outbox.push(item);
    this.saveOutbox();
    app.changed(this, 'outbox', conv || 'draft:' + to);
    this.trySend(item);
  }

  flushOutbox() {
    for (const o of this.outbox) if (o.state === 'pending') this.trySend(o);
  }

  retrySend(cid) {
    const o = this.outbox.find((x) => x.cid === cid);
    if (!o) return;
    o.state = 'pending';
    o.error = null;
    this.saveOutbox();
    app.changed(this, 'outbox', o.conv || 'draft:' + o.to);
    this.trySend(o);
  }

  discard(cid) {
    const o = this.outbox.find((x) => x.cid === cid);
    this.dropOutbox(cid);
    if (o) app.changed(this, 'outbox', o.conv || 'draft:' + o.to);
  }

  async trySend(item) {
    if (item.inflight || !this.synced || item.state !== 'pending') return;
    item.inflight = true;
    const args = { op: 'send', body: item.body, cid: item.cid };
    if (item.conv) args.conv = item.conv; else args.to = item.to;
    let r;
    try {
      r = await this.req(args);
    } catch (e) {
      item.inflight = false;
      if (e.code === 'disconnected') return;           // resent after the next synced
      if (TRANSIENT.has(e.code)) { setTimeout(() => this.trySend(item), 1500 + Math.random() * 1000); return; }
      item.state = 'failed';
      item.error = e.code === 'not_found' ? `No user named ${item.to}` :
                   e.code === 'forbidden' ? 'You are not a member of this conversation' :
                   e.code === 'too_large' ? 'Message too long' : (e.message || e.code);
      this.saveOutbox();
      app.changed(this, 'outbox', item.conv || 'draft:' + item.to);
      return;
    }
    item.inflight = false;
    this.dropOutbox(item.cid);
    if (!item.conv) {
      // a new direct chat: the server named the conversation
      for (const o of this.outbox) if (!o.conv && o.to === item.to) o.conv = r.conv;
      this.saveOutbox();
      if (!this.convs.has(r.conv)) {
        this.convs.set(r.conv, { conv: r.conv, kind: 'direct', peer: item.to, last_seq: 0, read_seq: 0,
                                 unread: 0, last: null, left: false, muted_until: 0 });
        this.store(r.conv).hasMore = r.seq > 1;
        this.store(r.conv).loaded = r.seq <= 1;
      }
      if (this.openKey === 'draft:' + item.to) app.adoptDraft(this, 'draft:' + item.to, r.conv);
    }
    this.addMessage({ conv: r.conv, seq: r.seq, from: this.user, body: item.body, ts: r.ts, cid: item.cid }, true);
    this.stored(r.inbox);
    if (!item.conv) { this.watchPeers(); if (this.openKey === r.conv) this.loadHistory(r.conv, false); }
  }

  setOpen(key) {
    this.openKey = key;
    lsSet(LS.open(this.user), key);
    app.changed(this, 'open');
  }

  totalUnread() {
    let n = 0;
    for (const c of this.convs.values()) if (!c.left) n += c.unread || 0;
    return n;
  }

  forget() {
    for (const k of [LS.outbox, LS.receipts, LS.open, LS.drafts, LS.cache, LS.push]) lsDel(k(this.user));
  }
}

// ------------------------------------------------------------------ notifications (Web Push, sw.js)
const notifier = {
  reg: null,

  supported() {
    return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window && window.isSecureContext;
  },

  /** Whether to offer "Turn on notifications" for this account (never asked, and it could work). */
  shouldOffer(acct) {
    return settings.push && this.supported() && Notification.permission !== 'denied' && acct.pushPref == null;
  },

  async register() {
    if (!('serviceWorker' in navigator)) return;
    try {
      this.reg = await navigator.serviceWorker.register('sw.js');
    } catch { this.reg = null; }
    navigator.serviceWorker.addEventListener('message', (e) => {
      const d = e.data || {};
      if (d.type === 'open') app.openFromLink(d.account, d.conv);
    });
  },

  async ready() {
    if (!this.reg) await this.register();
    return navigator.serviceWorker.ready;
  },

  /** Asks for permission (call from a click) and subscribes the account's connection. */
  async enable(acct) {
    if (!this.supported()) throw protoError('unsupported', 'This browser cannot show notifications from chatsrv.');
    const perm = await Notification.requestPermission();
    if (perm !== 'granted') {
      acct.pushPref = 'off';
      throw protoError('denied', 'Notifications are blocked for this site in the browser settings.');
    }
    await this.subscribe(acct);
    acct.pushPref = 'on';
    this.shareState();
  },

  async subscribe(acct) {
    const reg = await this.ready();
    const { key } = await acct.req({ op: 'push_key' });
    const appKey = b64urlBytes(key);
    let sub = await reg.pushManager.getSubscription();
    if (sub && !sameBytes(sub.options && sub.options.applicationServerKey, appKey)) {
      await sub.unsubscribe();   // made for another server key: push services would refuse it
      sub = null;
    }
    if (!sub) sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: appKey });
    const j = sub.toJSON();
    await acct.req({ op: 'push_subscribe', endpoint: j.endpoint, keys: j.keys });
  },

  /** On each connection of an account that has notifications on: the server keeps the current subscription. */
  async resubscribe(acct) {
    if (!this.supported() || Notification.permission !== 'granted') return;
    try { await this.subscribe(acct); } catch { /* tried again on the next connection */ }
  },

  /** Stops pushes to this account here; the browser subscription goes when no account uses it. */
  async disable(acct) {
    acct.pushPref = 'off';
    try { await acct.req({ op: 'push_unsubscribe' }, 5000); } catch { /* logout deletes it anyway */ }
    await this.clear(acct, null);
    const others = [...app.accounts.values()].some((a) => a !== acct && a.pushPref === 'on');
    if (!others && this.reg) {
      try { const sub = await this.reg.pushManager.getSubscription(); if (sub) await sub.unsubscribe(); } catch { /* gone */ }
    }
  },

  tag(acct, conv) { return acct.user + '|' + conv; },

  /** A live message while the page is open: notify unless that chat is on screen or muted. */
  onMessage(acct, m) {
    // one at a time: each replaces the previous notification of its chat and counts on it
    this.chain = (this.chain || Promise.resolve()).then(() => this.show(acct, m)).catch(() => {});
  },

  async show(acct, m) {
    if (m.from === acct.user || m.sys || acct.pushPref !== 'on' || !this.reg) return;
    if (!('Notification' in window) || Notification.permission !== 'granted') return;
    const c = acct.convs.get(m.conv);
    if (!c || acct.muted(c) || c.read_seq >= m.seq) return;
    if (app.isVisible(acct, m.conv) && document.hasFocus()) return;
    const tag = this.tag(acct, m.conv);
    const prev = await this.reg.getNotifications({ tag });
    const count = prev.reduce((n, x) => Math.max(n, (x.data && x.data.count) || 0), 0) + 1;
    const name = acct.title(c);
    const body = (c.kind === 'group' ? m.from + ': ' : '') + String(m.body ?? '');
    await this.reg.showNotification(count > 1 ? `${name} (${count} new)` : name, {
      tag, body, renotify: true, icon: '/icon-192.png', badge: '/icon-192.png', timestamp: m.ts,
      data: { account: acct.user, conv: m.conv, seq: m.seq, count },
    });
  },

  /** Closes the notifications of a conversation (null: of every conversation of the account). */
  async clear(acct, conv) {
    if (!this.reg || !this.reg.getNotifications) return;
    try {
      for (const n of await this.reg.getNotifications()) {
        if (conv ? n.tag === this.tag(acct, conv) : n.tag.startsWith(acct.user + '|')) n.close();
      }
    } catch { /* none */ }
  },

  /** Mutes, names and unread counts for sw.js, which sees pushes while no page is open. */
  shareState() {
    // at most 200 ms late, and never postponed again by the next event: a debounce that
    // events kept resetting could leave the worker without a mute when the page closes
    if (this.stateTimer) return;
    this.stateTimer = setTimeout(() => { this.stateTimer = null; this.writeState(); }, 200);
  },

  async writeState() {
      if (!('caches' in window)) return;
      const state = { mutes: {}, names: {}, unread: {} };
      for (const a of app.accounts.values()) {
        state.unread[a.user] = a.totalUnread();
        for (const c of a.convs.values()) {
          const t = this.tag(a, c.conv);
          state.names[t] = a.title(c);
          if (a.muted(c)) state.mutes[t] = c.muted_until;
        }
      }
      try {
        const cache = await caches.open(STATE_CACHE);
        await cache.put(STATE_URL, new Response(JSON.stringify(state), { headers: { 'Content-Type': 'application/json' } }));
      } catch { /* storage unavailable */ }
  },
};

// ------------------------------------------------------------------ the app (UI)
const app = {
  accounts: new Map(),   // user -> Account
  active: null,
  renderQueued: false,
  scrollMode: null,      // 'bottom' | 'keep-older' | 'unread' | null
  lastRenderedKey: null,
  divider: null,         // {key, seq}: the first unread message when the chat was opened
  infoConv: null,

  // ---- accounts
  saveAccounts() {
    lsSet(LS.accounts, [...this.accounts.values()].filter((a) => a.token).map((a) => ({ user: a.user, token: a.token })));
    if (this.active) localStorage.setItem(LS.active, this.active.user);
    else localStorage.removeItem(LS.active);
  },

  boot() {
    deviceId();
    for (const a of lsGet(LS.accounts, []) || []) {
      if (!a || typeof a.user !== 'string' || typeof a.token !== 'string' || this.accounts.has(a.user)) continue;
      this.accounts.set(a.user, new Account(a.user, a.token));
    }
    const want = localStorage.getItem(LS.active);
    this.active = this.accounts.get(want) || this.accounts.values().next().value || null;
    this.bindUI();
    this.applySettings();
    this.loadSettings();
    for (const a of this.accounts.values()) a.connect().catch(() => {});
    if (this.active) this.showMain(); else this.showLogin();
    this.openFromHash();
    notifier.register();
    setInterval(() => this.changed(this.active, 'tick'), 30000);
  },

  async loadSettings() {
    try {
      const r = await fetch('/settings');
      if (!r.ok) return;
      Object.assign(settings, await r.json());
      lsSet(LS.settings, settings);
      this.applySettings();
    } catch { /* offline: the last known settings */ }
  },

  applySettings() {
    const open = settings.signup !== false;
    $('#signup-btn').hidden = !open;
    $('#signup-closed').hidden = open;
    this.changed(this.active, 'settings');
  },

  switchTo(acct) {
    this.saveDraft();
    this.active = acct;
    this.saveAccounts();
    this.lastRenderedKey = null;
    this.closeMenus();
    this.showMain();
    if (acct && acct.openKey) acct.maybeRead(acct.openKey);
  },

  /** The account was logged out (here or by another tab) or its token was refused. */
  accountGone(acct, note) {
    acct.token = null;
    acct.close();
    notifier.clear(acct, null);
    acct.forget();
    this.accounts.delete(acct.user);
    if (this.active === acct) this.active = this.accounts.values().next().value || null;
    this.saveAccounts();
    notifier.shareState();
    if (this.active) this.showMain();
    else this.showLogin(note, acct.user);
    if (note && this.active) this.toast(`${acct.user}: ${note}`);
  },

  async logout(acct) {
    if (!acct) return;
    if (acct.pushPref === 'on') await notifier.disable(acct);
    try {
      await acct.req({ op: 'logout' }, 5000);
      // the server closes with 1008 "logged out"; accountGone runs from onClose
      setTimeout(() => { if (this.accounts.get(acct.user) === acct) this.accountGone(acct, null); }, 1500);
    } catch {
      this.accountGone(acct, null);   // offline: forget the token here
    }
  },

  async doLogin(signup) {
    const user = $('#login-user').value.trim().toLowerCase();
    const pass = $('#login-pass').value;
    const err = (t) => { const e = $('#login-error'); e.textContent = t; e.hidden = !t; };
    err('');
    if (!USER_RE.test(user)) { err('User names are 3 to 32 characters: a-z, 0-9 and _.'); return; }
    if (pass.length < 8 || pass.length > 256) { err('Passwords are 8 to 256 characters.'); return; }
    if (this.accounts.has(user)) { this.switchTo(this.accounts.get(user)); return; }
    const btns = [$('#login-btn'), $('#signup-btn')];
    btns.forEach((b) => { b.disabled = true; });
    const acct = new Account(user, null);
    try {
      await acct.connect();
      if (signup) await acct.req({ op: 'signup', user, password: pass });
      const r = await acct.req({ op: 'login', user, password: pass, device: deviceId() });
      acct.token = r.token;
      acct.setStatus('syncing');
      this.accounts.set(user, acct);
      $('#login-pass').value = '';
      $('#login-user').value = '';
      this.switchTo(acct);
    } catch (e) {
      acct.close();
      const msgs = {
        conflict: 'That user name is taken.',
        unauthorized: 'Wrong user name or password.',
        rate_limited: 'Too many attempts. Wait a minute and try again.',
        forbidden: 'Sign-up is closed on this server. Ask its operator for an account.',
        disconnected: 'Cannot reach the server.',
        timeout: 'The server did not answer.',
      };
      err(msgs[e.code] || e.message || 'Something went wrong.');
    } finally {
      btns.forEach((b) => { b.disabled = false; });
    }
  },

  // ---- views
  showLogin(note, user) {
    this.closeMenus();
    $('#main-view').hidden = true;
    $('#login-view').hidden = false;
    const n = $('#login-note');
    n.textContent = note || '';
    n.hidden = !note;
    $('#login-error').hidden = true;
    $('#login-cancel').hidden = this.accounts.size === 0;
    if (user) $('#login-user').value = user;
    ($('#login-user').value ? $('#login-pass') : $('#login-user')).focus();
    this.updateTitle();
  },

  showMain() {
    $('#login-view').hidden = true;
    $('#main-view').hidden = false;
    this.lastRenderedKey = null;
    this.changed(this.active, 'all');
  },

  /** Whether `conv` of `acct` is on screen now (for read markers and notifications). */
  isVisible(acct, conv) {
    return acct === this.active && acct.openKey === conv && document.visibilityState === 'visible' &&
           !$('#main-view').hidden && (!isPhoneLayout() || document.body.classList.contains('show-chat'));
  },

  /** #account/conv: a notification's link, and what sw.js looks at to know the chat on screen. */
  setHash() {
    const a = this.active;
    const key = a && a.openKey;
    const want = a && key && !key.startsWith('draft:') ? '#' + encodeURIComponent(a.user) + '/' + encodeURIComponent(key) : '';
    if (location.hash !== want) history.replaceState(null, '', want || location.pathname);
  },

  openFromHash() {
    const m = /^#([^/]+)\/(.+)$/.exec(location.hash);
    if (m) this.openFromLink(decodeURIComponent(m[1]), decodeURIComponent(m[2]));
  },

  openFromLink(user, conv) {
    const acct = this.accounts.get(user);
    if (!acct) return;
    if (this.active !== acct) this.switchTo(acct);
    this.openConv(conv);
  },

  saveDraft() {
    const a = this.active;
    if (a && a.openKey) a.setDraft(a.openKey, $('#composer-input').value);
  },

  openConv(key) {
    const acct = this.active;
    if (!acct) return;
    if (acct.openKey !== key) this.saveDraft();
    acct.setOpen(key);
    document.body.classList.add('show-chat');
    this.lastRenderedKey = null;
    this.divider = null;
    this.scrollMode = 'bottom';
    if (key && !key.startsWith('draft:')) {
      const c = acct.convs.get(key);
      const st = acct.store(key);
      if (c && c.unread > 0 && !c.left) {
        this.divider = { key, seq: c.read_seq + 1 };
        this.scrollMode = 'unread';
        // enough history to reach the first unread message in one go (bounded by the server's page)
        if (!st.bySeq.has(c.read_seq + 1)) acct.loadHistory(key, false, Math.min(settings.history_limit || 200, c.unread + 20));
      } else if (!st.loaded) {
        acct.loadHistory(key, false);
      }
      acct.maybeRead(key);
    }
    if (!isPhone()) $('#composer-input').focus();
  },

  /** A new chat got its conversation id from the server: its draft and screen follow. */
  adoptDraft(acct, oldKey, conv) {
    if (acct.drafts[oldKey]) { acct.setDraft(conv, acct.drafts[oldKey]); acct.setDraft(oldKey, ''); }
    acct.setOpen(conv);
    if (acct === this.active) this.lastRenderedKey = conv;   // the same chat: keep the composer as it is
  },

  closeConv() {
    this.saveDraft();
    document.body.classList.remove('show-chat');
    if (this.active) this.active.setOpen(null);
  },

  startChat(name) {
    const acct = this.active;
    const user = name.trim().toLowerCase();
    if (!acct || !user) return;
    if (!USER_RE.test(user)) { this.toast('User names are 3 to 32 characters: a-z, 0-9 and _.'); return; }
    if (user === acct.user) { this.toast('That is you.'); return; }
    const c = acct.directWith(user);
    this.openConv(c ? c.conv : 'draft:' + user);
    $('#new-chat-user').value = '';
  },

  groupChanged(acct, conv) {
    if (acct === this.active && this.infoConv === conv && $('#group-info-dialog').open) this.loadGroupInfo();
  },

  changed(acct, kind, conv, older) {
    if (acct && acct === this.active && kind === 'history' && older) this.scrollMode = this.scrollMode || 'keep-older';
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => { this.renderQueued = false; this.render(); });
    // a hidden tab gets no animation frames: render there too (timers still run)
    setTimeout(() => { if (this.renderQueued) { this.renderQueued = false; this.render(); } }, 100);
  },

  render() {
    this.updateTitle();
    if ($('#main-view').hidden) return;
    const acct = this.active;
    if (!acct) return;
    this.renderAccountBar(acct);
    this.renderNetBanner();
    this.renderPushOffer(acct);
    this.renderConvList(acct);
    this.renderChat(acct);
    this.setHash();
  },

  updateTitle() {
    let n = 0;
    for (const a of this.accounts.values()) n += a.totalUnread();
    document.title = (n ? `(${n}) ` : '') + 'chatsrv';
    if (n !== this.badgeShown) {
      this.badgeShown = n;
      try {
        if (n && navigator.setAppBadge) navigator.setAppBadge(n).catch(() => {});
        else if (navigator.clearAppBadge) navigator.clearAppBadge().catch(() => {});
      } catch { /* no badge support */ }
      notifier.shareState();
    }
  },

  renderAccountBar(acct) {
    avatar($('#account-avatar'), acct.user);
    $('#account-name').textContent = acct.user;
    const other = [...this.accounts.values()].some((a) => a !== acct && a.totalUnread() > 0);
    $('#account-other-unread').hidden = !other;
    const st = $('#conn-status');
    st.dataset.state = acct.status;
    const labels = { online: 'Online', syncing: 'Syncing…', connecting: 'Connecting…', offline: 'Offline' };
    st.textContent = labels[acct.status] || acct.status;
    $('#logout-btn').textContent = `Log out ${acct.user}`;
    const list = $('#account-list');
    reconcile(list, [...this.accounts.values()].map((a) => {
      const n = a.totalUnread();
      return {
        key: a.user, sig: [a === acct, n, a.status].join('|'),
        build: () => {
          const av = h('span', { class: 'avatar small' });
          avatar(av, a.user);
          return h('li', {},
            h('button', { type: 'button', role: 'menuitem', class: 'account-item' + (a === acct ? ' current' : ''),
                          dataset: { user: a.user }, onclick: () => this.switchTo(a) },
              av, h('span', { class: 'account-item-name', text: a.user }),
              h('span', { class: 'status-dot', dataset: { state: a.status }, title: a.status }),
              n ? h('span', { class: 'badge', text: String(n) }) : null));
        },
      };
    }));
  },

  renderNetBanner() {
    const down = [...this.accounts.values()].filter((a) => a.token && a.status === 'offline');
    const b = $('#net-banner');
    b.hidden = !down.length;
    if (!down.length) return;
    const next = Math.min(...down.map((a) => a.retryAt || 0));
    const secs = Math.max(0, Math.round((next - Date.now()) / 1000));
    $('#net-banner-text').textContent = 'You are offline. Messages you write are sent when the connection is back' +
      (secs > 0 ? ` (retrying in ${secs} s).` : '.');
    clearTimeout(this.netTimer);
    this.netTimer = setTimeout(() => this.changed(this.active, 'tick'), 1000);
  },

  renderPushOffer(acct) {
    const box = $('#push-offer');
    const show = notifier.shouldOffer(acct);
    box.hidden = !show;
    if (show) $('#push-offer-text').textContent = `Get a notification when ${acct.user} has a new message, also while chatsrv is closed.`;
  },

  renderConvList(acct) {
    const list = $('#conv-list');
    const ids = acct.order.filter((id) => acct.convs.has(id));
    for (const id of acct.convs.keys()) if (!ids.includes(id)) ids.push(id);
    const items = ids.map((id) => {
      const c = acct.convs.get(id);
      const title = acct.title(c);
      const p = c.kind === 'direct' ? acct.presence.get(c.peer) : null;
      const online = !!(p && p.state === 'online');
      const unread = c.left ? 0 : c.unread || 0;
      const muted = acct.muted(c);
      const preview = acct.outbox.some((o) => o.conv === id) ? 'Sending…' : previewText(acct, c);
      const time = c.last ? fmtShort(c.last.ts) : '';
      const active = acct.openKey === id;
      return {
        key: id, sig: JSON.stringify([title, online, unread, muted, preview, time, active, !!c.left]),
        build: () => {
          const av = h('span', { class: 'avatar' });
          avatar(av, title, c.kind === 'group');
          if (online) av.append(h('span', { class: 'presence-dot' }));
          const extra = [online ? 'online' : '', muted ? 'muted' : '', unread ? `${unread} unread` : ''].filter(Boolean).join(', ');
          return h('li', {},
            h('button', { type: 'button', class: 'conv-item' + (active ? ' active' : '') + (unread ? ' has-unread' : '') + (c.left ? ' left' : ''),
                          'aria-current': active ? 'true' : null,
                          dataset: { conv: id, title, kind: c.kind }, onclick: () => this.openConv(id) },
              av,
              h('span', { class: 'conv-main' },
                h('span', { class: 'conv-top' },
                  h('span', { class: 'conv-title', text: title }),
                  extra ? h('span', { class: 'sr-only', text: ` (${extra})` }) : null,
                  muted ? h('span', { class: 'muted-icon', title: fmtMute(c.muted_until) }, icon('bell-off')) : null,
                  h('span', { class: 'conv-time', text: time })),
                h('span', { class: 'conv-bottom' },
                  h('span', { class: 'conv-preview', text: preview }),
                  unread ? h('span', { class: 'badge unread-badge' + (muted ? ' quiet' : ''), 'aria-hidden': 'true', text: unread > 99 ? '99+' : String(unread) }) : null))));
        },
      };
    });
    reconcile(list, items);
    list.hidden = !items.length;
    $('#conv-empty').hidden = items.length > 0;
  },

  renderChat(acct) {
    const key = acct.openKey;
    const draft = key && key.startsWith('draft:') ? key.slice(6) : null;
    const c = key && !draft ? acct.convs.get(key) : null;
    const has = !!(draft || c);
    $('#chat-empty').hidden = has;
    $('#chat-header').hidden = !has;
    $('#messages').hidden = !has;
    $('#composer').hidden = !has || !!(c && c.left);
    document.body.classList.toggle('show-chat', has);
    const banner = $('#banner');
    const input = $('#composer-input');
    const switched = this.lastRenderedKey !== key;
    if (!has) {
      $('#typing').hidden = true; banner.hidden = true; $('#jump-latest').hidden = true; $('#jump-unread').hidden = true;
      $('#mute-btn').hidden = true; this.lastRenderedKey = null; return;
    }
    if (switched) {
      input.value = acct.drafts[key] || '';
      this.autosize();
    }

    // header
    const title = draft || acct.title(c);
    $('#chat-title').textContent = title;
    avatar($('#chat-avatar'), title, c && c.kind === 'group');
    let sub = '';
    if (draft) sub = 'New conversation';
    else if (c.kind === 'direct') sub = fmtLastSeen(acct.presence.get(c.peer));
    else if (c.left) sub = 'Former member';
    else sub = c.info ? `${c.info.members.length} members` : 'Group';
    if (c && acct.muted(c)) sub = (sub ? sub + ' · ' : '') + fmtMute(c.muted_until);
    const subEl = $('#chat-sub');
    subEl.textContent = sub;
    subEl.dataset.state = c && c.kind === 'direct' ? (acct.presence.get(c.peer) || {}).state || '' : '';
    $('#info-btn').hidden = !(c && c.kind === 'group' && !c.left);
    const mb = $('#mute-btn');
    mb.hidden = !(c && !c.left);
    if (c) {
      const name = acct.muted(c) ? 'bell-off' : 'bell';
      if (mb.dataset.icon !== name) { mb.replaceChildren(icon(name)); mb.dataset.icon = name; }
      mb.setAttribute('aria-label', acct.muted(c) ? `Notifications muted (${fmtMute(c.muted_until)})` : 'Mute notifications');
    }
    if (c && c.kind === 'group' && !c.left && !c.info && !c.infoLoading && acct.synced) this.fetchInfo(acct, c);

    // banner: membership
    let btext = '';
    if (c && c.left) {
      const how = c.last && c.last.sys && c.last.sys.action === 'remove' && c.last.from !== acct.user ? 'You were removed from this group' : 'You left this group';
      btext = `${how}. You can read what was said until then.`;
    }
    banner.textContent = btext;
    banner.hidden = !btext;

    // messages
    const box = $('#messages');
    this.lastRenderedKey = key;
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
    const firstKept = switched ? null : [...box.children].find((n) => n.dataset.key && n.dataset.key.startsWith('m:') && n.offsetTop + n.offsetHeight > box.scrollTop);
    const anchorTop = firstKept ? firstKept.offsetTop - box.scrollTop : 0;
    const st = c ? acct.store(key) : null;
    const msgs = st ? [...st.bySeq.values()].sort((a, b) => a.seq - b.seq) : [];
    const outbox = acct.outbox.filter((o) => (c ? o.conv === key : !o.conv && o.to === draft));
    if (switched) box.replaceChildren();
    reconcile(box, this.messageItems(acct, c, msgs, outbox, st));

    const divider = box.querySelector('.unread-divider');
    if (this.scrollMode === 'unread' && divider && !(st && st.loading)) {
      box.scrollTop = Math.max(0, divider.offsetTop - 8);
      this.scrollMode = null;
    } else if (this.scrollMode === 'unread') {
      box.scrollTop = box.scrollHeight;      // until the history that holds the divider is here
    } else if (switched || this.scrollMode === 'bottom' || (atBottom && this.scrollMode !== 'keep-older')) {
      box.scrollTop = box.scrollHeight;
      this.scrollMode = null;
    } else if (firstKept) {
      // older messages came in above, or something changed: the message the reader looks at stays put
      const now = firstKept.isConnected ? firstKept : [...box.children].find((n) => n.dataset.key === firstKept.dataset.key);
      if (now) box.scrollTop = now.offsetTop - anchorTop;
      this.scrollMode = null;
    } else {
      this.scrollMode = null;
    }
    this.updateJumps();
    // not enough to scroll: fetch older pages until it is
    if (st && st.loaded && st.hasMore && !st.loading && box.scrollHeight <= box.clientHeight + 10) {
      acct.loadHistory(key, true);
    }

    // typing
    const t = c ? acct.typingUsers(key) : [];
    const typ = $('#typing');
    typ.textContent = t.length === 1 ? `${t[0]} is typing…` : t.length ? `${t.join(', ')} are typing…` : '';
    typ.hidden = !t.length;
  },

  updateJumps() {
    const box = $('#messages');
    const fromBottom = box.scrollHeight - box.scrollTop - box.clientHeight;
    $('#jump-latest').hidden = box.hidden || fromBottom < 200;
    const d = box.querySelector('.unread-divider');
    $('#jump-unread').hidden = box.hidden || !d || d.offsetTop + d.offsetHeight > box.scrollTop;
  },

  messageItems(acct, c, msgs, outbox, st) {
    const out = [];
    const item = (key, sig, build) => out.push({ key, sig, build });
    if (st && st.loading && st.hasMore) item('loading', '', () => h('div', { class: 'loading-older', text: 'Loading…' }));
    else if (st && st.loaded && !st.hasMore && msgs.length) item('start', '', () => h('div', { class: 'history-start', text: 'Start of the conversation' }));
    const isDirect = !c || c.kind === 'direct';
    const r = c ? acct.receiptsFor(c.conv) : { read: {}, delivered: 0 };
    let lastOwn = null;
    for (const m of msgs) if (!m.sys && m.from === acct.user) lastOwn = m;
    const div = this.divider && c && this.divider.key === c.conv ? this.divider.seq : 0;
    let prev = null;
    const dayLine = (ts) => {
      if (prev && sameDay(prev.ts, ts)) return;
      const label = fmtDay(ts);
      item('day:' + new Date(ts).toDateString(), label, () => h('div', { class: 'day-sep' }, h('span', { text: label })));
    };
    for (const m of msgs) {
      dayLine(m.ts);
      if (div && m.seq === div) item('divider', '', () => h('div', { class: 'unread-divider', role: 'separator' }, h('span', { text: 'New messages' })));
      if (m.sys) {
        item('m:' + m.seq, 'sys', () => h('div', { class: 'msg-sys', dataset: { seq: m.seq } }, h('span', { text: sysText(m) }),
          h('time', { text: ' · ' + fmtTime(m.ts) })));
        prev = m;
        continue;
      }
      const own = m.from === acct.user;
      const cont = !!(prev && !prev.sys && prev.from === m.from && m.ts - prev.ts < 5 * 60e3 && sameDay(prev.ts, m.ts));
      const showFrom = !own && !isDirect && !cont;
      item('m:' + m.seq, [own, cont, showFrom].join('|'), () => h('div', { class: 'msg' + (own ? ' own' : '') + (cont ? ' cont' : ''), dataset: { seq: m.seq, from: m.from } },
        showFrom ? h('div', { class: 'msg-from', text: m.from }) : null,
        h('div', { class: 'bubble' }, h('span', { class: 'msg-body' }, linkify(String(m.body ?? ''))),
          h('span', { class: 'msg-meta' }, h('time', { datetime: new Date(m.ts).toISOString(), text: fmtTime(m.ts) })))));
      if (own && m === lastOwn) {
        let s = 'Sent';
        if (isDirect && c) {
          if ((r.read[c.peer] || 0) >= m.seq) s = 'Seen';
          else if ((r.delivered || 0) >= m.seq) s = 'Delivered';
        } else if (c) {
          const readers = Object.entries(r.read).filter(([u, seq]) => seq >= m.seq && u !== acct.user).map(([u]) => u);
          if (readers.length) s = 'Seen by ' + readers.sort().join(', ');
        }
        item('status', s, () => h('div', { class: 'msg-status', dataset: { status: s.split(' ')[0].toLowerCase() }, text: s }));
      }
      prev = m;
    }
    for (const o of outbox) {
      dayLine(o.ts);
      const failed = o.state === 'failed';
      item('p:' + o.cid, String(failed), () => h('div', { class: 'msg own pending' + (failed ? ' failed' : ''), dataset: { cid: o.cid } },
        h('div', { class: 'bubble' }, h('span', { class: 'msg-body' }, linkify(o.body)),
          h('span', { class: 'msg-meta' }, h('time', { text: fmtTime(o.ts) })))));
      item('ps:' + o.cid, failed ? 'failed:' + o.error : 'sending', () => (failed
        ? h('div', { class: 'msg-status failed', dataset: { status: 'failed' } }, `Not sent: ${o.error || 'error'} · `,
            h('button', { type: 'button', class: 'link', text: 'Retry', onclick: () => acct.retrySend(o.cid) }), ' · ',
            h('button', { type: 'button', class: 'link', text: 'Delete', onclick: () => acct.discard(o.cid) }))
        : h('div', { class: 'msg-status', dataset: { status: 'sending' }, text: 'Sending…' })));
      prev = { ts: o.ts, from: acct.user };
    }
    if (!msgs.length && !outbox.length && !(st && (st.loading || !st.loaded))) {
      item('empty', '', () => h('div', { class: 'history-start', text: 'No messages yet. Say hi!' }));
    }
    return out;
  },

  // ---- groups
  async fetchInfo(acct, c) {
    c.infoLoading = true;
    try {
      c.info = await acct.req({ op: 'group_info', conv: c.conv });
      if (typeof c.info.name === 'string') c.name = c.info.name;
    } catch { /* shown as "Group" */ } finally {
      c.infoLoading = false;
      this.changed(acct, 'info', c.conv);
    }
  },

  async createGroup() {
    const acct = this.active;
    const name = $('#group-name').value.trim();
    const members = parseNames($('#group-members').value);
    const err = (t) => { const e = $('#group-create-error'); e.textContent = t; e.hidden = !t; };
    err('');
    if (!name) { err('Give the group a name.'); return; }
    const bad = members.find((u) => !USER_RE.test(u));
    if (bad) { err(`“${bad}” is not a valid user name.`); return; }
    $('#group-create-submit').disabled = true;
    try {
      const r = await acct.req({ op: 'group_create', name, members });
      $('#group-create-dialog').close();
      acct.scheduleConvsRefresh();
      if (!acct.convs.has(r.conv)) {
        acct.convs.set(r.conv, { conv: r.conv, kind: 'group', name, last_seq: 0, read_seq: 0, unread: 0, last: null, left: false, muted_until: 0 });
        acct.bump(r.conv);
      }
      this.openConv(r.conv);
    } catch (e) {
      err(e.code === 'not_found' ? 'One of those users does not exist.' :
          e.code === 'too_large' ? `A group has at most ${settings.max_group_members || 'so many'} members.` :
            (e.message || 'Could not create the group.'));
    } finally {
      $('#group-create-submit').disabled = false;
    }
  },

  async loadGroupInfo() {
    const acct = this.active;
    const conv = this.infoConv;
    const c = acct && acct.convs.get(conv);
    if (!c) return;
    let info;
    try {
      info = await acct.req({ op: 'group_info', conv });
    } catch (e) {
      this.infoError(e.message || 'Could not load the group.');
      return;
    }
    c.info = info;
    c.name = info.name;
    this.changed(acct, 'info', conv);
    $('#gi-name').textContent = info.name;
    $('#gi-owner').textContent = info.owner ? `Owner: ${info.owner}` : 'No owner';
    const amOwner = info.owner === acct.user;
    $('#gi-members').replaceChildren(...info.members.map((u) => {
      const av = h('span', { class: 'avatar small' });
      avatar(av, u);
      const p = acct.presence.get(u);
      return h('li', { dataset: { user: u } }, av,
        h('span', { class: 'member-name', text: u + (u === acct.user ? ' (you)' : '') }),
        u === info.owner ? h('span', { class: 'tag', text: 'owner' }) : null,
        p && p.state === 'online' ? h('span', { class: 'tag online', text: 'online' }) : null,
        amOwner && u !== acct.user
          ? h('button', { type: 'button', class: 'link danger', text: 'Remove', 'aria-label': `Remove ${u}`,
                          onclick: () => this.groupOp({ op: 'group_remove', conv, user: u }) })
          : null);
    }));
  },

  infoError(t) {
    const e = $('#gi-error');
    e.textContent = t || '';
    e.hidden = !t;
  },

  async groupOp(args) {
    const acct = this.active;
    this.infoError('');
    try {
      await acct.req(args);
      if (args.op === 'group_leave') {
        $('#group-info-dialog').close();
        const c = acct.convs.get(args.conv);
        if (c && !c.left) c.left = c.last_seq;
        acct.scheduleConvsRefresh();
        this.changed(acct, 'convs');
        return true;
      }
      await this.loadGroupInfo();
      return true;
    } catch (e) {
      this.infoError(e.code === 'not_found' ? 'No such user.' : e.code === 'forbidden' ? 'Only the owner can do that.' :
                     (e.message || 'That did not work.'));
      return false;
    }
  },

  // ---- settings
  openSettings() {
    const acct = this.active;
    if (!acct) return;
    this.closeMenus();
    $('#set-account').textContent = acct.user;
    $('#pw-form').reset();
    this.formNote('#pw-note', '');
    this.renderPushSetting(acct);
    $('#set-logout').textContent = `Log out ${acct.user} on this device`;
    $('#settings-dialog').showModal();
  },

  renderPushSetting(acct) {
    const state = $('#set-push-state');
    const btn = $('#set-push-btn');
    let text;
    let can = true;
    if (!settings.push) { text = 'This server does not send notifications.'; can = false; }
    else if (!notifier.supported()) { text = 'This browser cannot show notifications from chatsrv.'; can = false; }
    else if (Notification.permission === 'denied') { text = 'Notifications are blocked for this site in the browser settings.'; can = false; }
    else text = acct.pushPref === 'on' ? `Notifications are on for ${acct.user} on this device.` : `Notifications are off for ${acct.user}.`;
    state.textContent = text;
    btn.hidden = !can;
    btn.textContent = acct.pushPref === 'on' ? 'Turn off notifications' : 'Turn on notifications';
  },

  async togglePush(acct, on) {
    try {
      if (on) { await notifier.enable(acct); this.toast(`Notifications are on for ${acct.user}.`); }
      else await notifier.disable(acct);
    } catch (e) {
      this.toast(e.message || 'Could not turn on notifications.');
    }
    this.renderPushSetting(acct);
    this.changed(acct, 'push');
  },

  formNote(sel, text, ok) {
    const e = $(sel);
    e.textContent = text;
    e.hidden = !text;
    e.classList.toggle('ok', !!ok);
  },

  async changePassword() {
    const acct = this.active;
    const old = $('#pw-old').value, nw = $('#pw-new').value, again = $('#pw-again').value;
    if (nw.length < 8 || nw.length > 256) { this.formNote('#pw-note', 'Passwords are 8 to 256 characters.'); return; }
    if (nw !== again) { this.formNote('#pw-note', 'The new passwords do not match.'); return; }
    $('#pw-submit').disabled = true;
    try {
      await acct.req({ op: 'password_change', old, new: nw, logout_others: $('#pw-others').checked });
      $('#pw-form').reset();
      this.formNote('#pw-note', 'Password changed.', true);
    } catch (e) {
      this.formNote('#pw-note', e.code === 'forbidden' ? 'The current password is wrong.' :
        e.code === 'rate_limited' ? 'Too many attempts. Wait a minute and try again.' :
          e.code === 'disconnected' ? 'You are offline.' : (e.message || 'That did not work.'));
    } finally {
      $('#pw-submit').disabled = false;
    }
  },

  // ---- mute
  openMuteMenu() {
    const m = $('#mute-menu');
    const acct = this.active;
    const c = acct && acct.convs.get(acct.openKey);
    if (!c) return;
    $('#mute-off').hidden = !acct.muted(c);
    m.hidden = !m.hidden;
    $('#mute-btn').setAttribute('aria-expanded', String(!m.hidden));
    if (!m.hidden) m.querySelector('button:not([hidden])').focus();
  },

  async muteFor(ms) {
    const acct = this.active;
    const conv = acct && acct.openKey;
    this.closeMenus();
    if (!conv) return;
    const until = ms === 0 ? 0 : ms === Infinity ? MUTE_ALWAYS : Date.now() + ms;
    try { await acct.mute(conv, until); } catch (e) { this.toast(e.code === 'disconnected' ? 'You are offline.' : 'Could not change the mute.'); }
  },

  // ---- misc
  toast(text) {
    const t = $('#toast');
    t.textContent = text;
    t.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
  },

  closeMenus() {
    for (const [m, b] of [['#account-menu', '#account-btn'], ['#mute-menu', '#mute-btn']]) {
      $(m).hidden = true;
      $(b).setAttribute('aria-expanded', 'false');
    }
  },

  autosize() {
    const input = $('#composer-input');
    input.style.height = 'auto';
    input.style.height = Math.min(input.scrollHeight, 160) + 'px';
  },

  sendNow() {
    const input = $('#composer-input');
    const acct = this.active;
    const key = acct && acct.openKey;
    const body = input.value;
    if (!key || !body.trim()) return;
    const limit = settings.max_message_bytes || 16384;
    const size = new TextEncoder().encode(body).length;
    if (size > limit) { this.toast(`Message too long: ${size} bytes, this server takes ${limit} at most.`); return; }
    input.value = '';
    acct.setDraft(key, '');
    this.autosize();
    this.scrollMode = 'bottom';
    this.divider = null;
    if (key.startsWith('draft:')) {
      const peer = key.slice(6);
      const c = acct.directWith(peer);
      if (c) { acct.setOpen(c.conv); this.lastRenderedKey = c.conv; acct.send(c.conv, null, body); } else acct.send(null, peer, body);
    } else {
      acct.send(key, null, body);
    }
  },

  bindUI() {
    $('#login-form').addEventListener('submit', (e) => { e.preventDefault(); this.doLogin(false); });
    $('#signup-btn').addEventListener('click', () => this.doLogin(true));
    $('#login-cancel').addEventListener('click', () => { if (this.active) this.showMain(); });

    const menu = $('#account-menu');
    $('#account-btn').addEventListener('click', (e) => {
      e.stopPropagation();
      const open = menu.hidden;
      this.closeMenus();
      menu.hidden = !open;
      $('#account-btn').setAttribute('aria-expanded', String(open));
    });
    document.addEventListener('click', (e) => {
      if (!menu.hidden && !menu.contains(e.target)) { menu.hidden = true; $('#account-btn').setAttribute('aria-expanded', 'false'); }
      const mm = $('#mute-menu');
      if (!mm.hidden && !mm.contains(e.target) && e.target !== $('#mute-btn')) { mm.hidden = true; $('#mute-btn').setAttribute('aria-expanded', 'false'); }
    });
    $('#add-account-btn').addEventListener('click', () => { this.closeMenus(); this.showLogin(); });
    $('#settings-btn').addEventListener('click', () => this.openSettings());
    $('#logout-btn').addEventListener('click', () => { this.closeMenus(); this.logout(this.active); });

    // settings panel
    $('#settings-close').addEventListener('click', () => $('#settings-dialog').close());
    $('#pw-form').addEventListener('submit', (e) => { e.preventDefault(); this.changePassword(); });
    $('#set-push-btn').addEventListener('click', () => { const a = this.active; if (a) this.togglePush(a, a.pushPref !== 'on'); });
    $('#set-logout').addEventListener('click', () => { $('#settings-dialog').close(); this.logout(this.active); });

    // the notification offer (a click is the gesture the permission prompt needs)
    $('#push-offer-yes').addEventListener('click', () => { const a = this.active; if (a) this.togglePush(a, true); });
    $('#push-offer-no').addEventListener('click', () => { const a = this.active; if (a) { a.pushPref = 'off'; this.changed(a, 'push'); } });

    // mute
    $('#mute-btn').addEventListener('click', (e) => { e.stopPropagation(); this.openMuteMenu(); });
    for (const b of document.querySelectorAll('#mute-menu [data-mute]')) {
      b.addEventListener('click', () => this.muteFor(b.dataset.mute === 'always' ? Infinity : Number(b.dataset.mute)));
    }

    $('#new-chat-form').addEventListener('submit', (e) => { e.preventDefault(); this.startChat($('#new-chat-user').value); });
    $('#new-group-btn').addEventListener('click', () => {
      $('#group-name').value = '';
      $('#group-members').value = '';
      $('#group-create-error').hidden = true;
      $('#group-create-dialog').showModal();
    });
    $('#group-create-form').addEventListener('submit', (e) => { e.preventDefault(); this.createGroup(); });
    $('#group-create-cancel').addEventListener('click', () => $('#group-create-dialog').close());

    $('#info-btn').addEventListener('click', () => {
      this.infoConv = this.active.openKey;
      this.infoError('');
      $('#gi-leave').textContent = 'Leave group';
      $('#gi-leave').dataset.confirm = '';
      const c = this.active.convs.get(this.infoConv);
      $('#gi-name').textContent = c ? this.active.title(c) : '';
      $('#gi-owner').textContent = '';
      $('#gi-members').replaceChildren();
      $('#group-info-dialog').showModal();
      this.loadGroupInfo();
    });
    $('#gi-close').addEventListener('click', () => $('#group-info-dialog').close());
    $('#gi-rename-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const name = $('#gi-rename').value.trim();
      if (!name) return;
      if (await this.groupOp({ op: 'group_rename', conv: this.infoConv, name })) $('#gi-rename').value = '';
    });
    $('#gi-add-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const users = parseNames($('#gi-add').value);
      if (!users.length) return;
      if (await this.groupOp({ op: 'group_add', conv: this.infoConv, users })) $('#gi-add').value = '';
    });
    $('#gi-leave').addEventListener('click', () => {
      const b = $('#gi-leave');
      if (!b.dataset.confirm) { b.dataset.confirm = '1'; b.textContent = 'Click again to leave'; return; }
      this.groupOp({ op: 'group_leave', conv: this.infoConv });
    });

    $('#back-btn').addEventListener('click', () => this.closeConv());
    $('#net-retry').addEventListener('click', () => { for (const a of this.accounts.values()) a.kick(); });
    $('#jump-latest').addEventListener('click', () => { const b = $('#messages'); b.scrollTop = b.scrollHeight; this.updateJumps(); });
    $('#jump-unread').addEventListener('click', () => {
      const d = $('#messages .unread-divider');
      if (d) { $('#messages').scrollTop = Math.max(0, d.offsetTop - 8); this.updateJumps(); }
    });

    const input = $('#composer-input');
    input.addEventListener('keydown', (e) => {
      // on a phone Enter is a new line and the Send button sends
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && !isPhone()) { e.preventDefault(); this.sendNow(); }
    });
    input.addEventListener('input', () => {
      this.autosize();
      const acct = this.active;
      const key = acct && acct.openKey;
      if (!key) return;
      acct.setDraft(key, input.value);
      if (!key.startsWith('draft:') && input.value) acct.notifyTyping(key);
    });
    $('#composer').addEventListener('submit', (e) => { e.preventDefault(); this.sendNow(); if (!isPhone()) input.focus(); });

    $('#messages').addEventListener('scroll', () => {
      this.updateJumps();
      const box = $('#messages');
      const acct = this.active;
      const key = acct && acct.openKey;
      if (!key || key.startsWith('draft:') || box.scrollTop > 80) return;
      const st = acct.store(key);
      if (st.loaded && st.hasMore && !st.loading) { this.scrollMode = 'keep-older'; acct.loadHistory(key, true); }
    }, { passive: true });

    const wake = () => {
      for (const a of this.accounts.values()) a.kick();
      if (this.active && this.active.openKey) this.active.maybeRead(this.active.openKey);
    };
    document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') wake(); });
    window.addEventListener('focus', wake);
    window.addEventListener('online', () => { for (const a of this.accounts.values()) a.kick(); });
    window.addEventListener('hashchange', () => this.openFromHash());
    // leaving or reloading: ack what is stored now, so the next load does not replay it
    window.addEventListener('pagehide', () => {
      this.saveDraft();
      for (const a of this.accounts.values()) { a.flushAck(); if (a.saveTimer) a.writeCache(); }
      if (notifier.stateTimer) notifier.writeState();
    });
    window.addEventListener('keydown', (e) => {
      if (e.key !== 'Escape') return;
      if (!$('#account-menu').hidden || !$('#mute-menu').hidden) { this.closeMenus(); return; }
      if (document.body.classList.contains('show-chat') && !document.querySelector('dialog[open]')) this.closeConv();
    });
  },
};

function isPhoneLayout() { return matchMedia('(max-width: 700px)').matches; }

window.chatsrvApp = app;   // for debugging in the console, and for the tests
app.boot();
