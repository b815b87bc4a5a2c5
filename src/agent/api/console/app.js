// The lane console. Everything shown comes from the agent's API with the session cookie;
// text goes into the page with textContent only (never as HTML).
'use strict';

const $ = (id) => document.getElementById(id);
const EVENT_KINDS = ['reader-attached', 'reader-detached', 'swipe', 'swipe-unreadable',
  'saved', 'queued', 'failed', 'reader-prompt'];
const MAX_EVENTS = 50;
let stream = null;
let refreshTimer = null;
let capture = null;
let captureTimer = null;

class SignedOut extends Error {}

async function call(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  if (r.status === 401) {
    showSignin('Signed out: sign in again.');
    throw new SignedOut();
  }
  let data = null;
  try { data = await r.json(); } catch (_) { data = null; }
  return { status: r.status, data };
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = el('tr');
  for (const c of cells) {
    const td = el('td');
    if (c instanceof Node) td.appendChild(c); else td.textContent = c == null ? '' : String(c);
    tr.appendChild(td);
  }
  return tr;
}

function badge(node, text, cls) {
  node.textContent = text;
  node.className = 'badge ' + (cls || '');
}

function showSignin(message) {
  stopAll();
  $('app').hidden = true;
  $('signout').hidden = true;
  $('signin').hidden = false;
  $('signin-msg').textContent = message || '';
  badge($('status'), 'signed out', 'off');
  $('gateway').textContent = '';
}

function stopAll() {
  if (stream) { stream.close(); stream = null; }
  if (refreshTimer) { clearInterval(refreshTimer); refreshTimer = null; }
  if (captureTimer) { clearInterval(captureTimer); captureTimer = null; }
  badge($('live'), 'events: off', 'off');
}

function start() {
  $('signin').hidden = true;
  $('app').hidden = false;
  $('signout').hidden = false;
  openStream();
  refresh();
  refreshTimer = setInterval(refresh, 2000);
}

// --- what the page shows ------------------------------------------------------------

function showHealth(h) {
  badge($('status'), 'lane: ' + h.status, h.status);
  const gw = h.gateway || 'unknown';
  badge($('gateway'), 'gateway: ' + gw, gw === 'reachable' ? 'ok' : 'down');
  const reasons = $('reasons');
  reasons.replaceChildren();
  if (!h.reasons || h.reasons.length === 0) reasons.appendChild(el('li', 'all working'));
  for (const r of h.reasons || []) reasons.appendChild(el('li', r));
  const readers = $('readers');
  readers.replaceChildren();
  const select = $('test-reader');
  const chosen = select.value;
  const keep = new Set(['']);
  for (const r of h.readers || []) {
    readers.appendChild(row([r.id, el('span', r.state, 'state-' + r.state),
      r.profile || '', r.protocol || '', r.firmware || '']));
    keep.add(r.id);
    if (![...select.options].some((o) => o.value === r.id)) {
      select.appendChild(el('option', r.id)).value = r.id;
    }
  }
  for (const o of [...select.options]) if (!keep.has(o.value)) o.remove();
  if (keep.has(chosen)) select.value = chosen;
}

function showQueue(q) {
  $('queue-held').textContent = q.held;
  $('queue-oldest').textContent = q.oldest_age_s;
  const body = $('queue');
  body.replaceChildren();
  for (const r of q.records || []) {
    const next = r.next_attempt_in_s == null ? '-' : (r.next_attempt_in_s === 0 ? 'now' : 'in ' + r.next_attempt_in_s + ' s');
    const tr = row([r.customer_id, r.masked_pan || r.masked_account || '', r.state, r.attempts, next, r.last_error || '']);
    tr.lastChild.className = 'wrap';
    body.appendChild(tr);
  }
}

function describe(ev) {
  const parts = [];
  if (ev.reader) parts.push(ev.reader);
  if (ev.masked_pan) parts.push(ev.masked_pan);
  if (ev.masked_account) parts.push(ev.masked_account);
  if (ev.customer_id) parts.push(ev.customer_id);
  if (ev.format) parts.push(ev.format);
  if (ev.code) parts.push(ev.code);
  if (ev.error) parts.push(ev.error);
  if (ev.text) parts.push('"' + ev.text + '"');
  if (ev.profile) parts.push(ev.profile);
  if (ev.reason) parts.push(ev.reason);
  return parts.join('  ');
}

function eventItem(ev, when) {
  const li = el('li');
  li.dataset.kind = ev.type;
  if (when) li.appendChild(el('span', when + ' ', 'when'));
  li.appendChild(el('span', ev.type, 'kind kind-' + ev.type));
  li.appendChild(el('span', describe(ev), 'what'));
  return li;
}

function showReads(data) {
  const list = $('reads');
  list.replaceChildren();
  for (const ev of data.reads || []) list.appendChild(eventItem(ev));
  if (!data.reads || data.reads.length === 0) list.appendChild(el('li', 'no reads yet'));
}

async function refresh() {
  try {
    const [h, q, r] = await Promise.all([call('GET', '/v1/health'), call('GET', '/v1/queue'),
      call('GET', '/v1/reads')]);
    if (h.data) showHealth(h.data);
    if (q.data) showQueue(q.data);
    if (r.data) showReads(r.data);
  } catch (e) {
    if (!(e instanceof SignedOut)) badge($('status'), 'agent not answering', 'down');
  }
}

// --- live events ----------------------------------------------------------------------

function openStream() {
  // Same origin: the session cookie goes with it (an EventSource cannot send a header).
  stream = new EventSource('/v1/events');
  stream.onopen = () => badge($('live'), 'events: live', 'ok');
  stream.onerror = () => {
    badge($('live'), 'events: reconnecting', 'degraded');
  };
  for (const kind of EVENT_KINDS) {
    stream.addEventListener(kind, (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch (_) { return; }
      const list = $('events');
      list.insertBefore(eventItem(ev, new Date().toLocaleTimeString()), list.firstChild);
      while (list.children.length > MAX_EVENTS) list.lastChild.remove();
      if (kind !== 'reader-prompt') refresh();
    });
  }
}

// --- buttons --------------------------------------------------------------------------

async function flush() {
  const b = $('flush');
  b.disabled = true;
  $('flush-msg').textContent = 'flushing…';
  try {
    const r = await call('POST', '/v1/queue/flush');
    $('flush-msg').textContent = r.status === 200
      ? `sent ${r.data.sent}, failed ${r.data.failed}, remaining ${r.data.remaining}`
      : (r.data && r.data.error ? r.data.error.message : 'flush failed (' + r.status + ')');
  } catch (e) {
    if (!(e instanceof SignedOut)) $('flush-msg').textContent = 'flush failed';
  } finally {
    b.disabled = false;
    refresh();
  }
}

function showCapture(c) {
  const parts = ['capture ' + c.id + ': ' + c.state];
  if (c.masked_pan) parts.push(c.masked_pan);
  if (c.masked_account) parts.push(c.masked_account);
  if (c.error) parts.push(c.error);
  $('test-state').textContent = parts.join('  ');
  const waiting = c.state === 'waiting';
  $('test-cancel').disabled = !waiting;
  $('test-arm').disabled = waiting;
  if (!waiting && captureTimer) { clearInterval(captureTimer); captureTimer = null; }
}

async function arm() {
  const body = { timeout_s: 60 };
  const reader = $('test-reader').value;
  if (reader) body.reader = reader;
  try {
    const r = await call('POST', '/v1/captures', body);
    if (r.status !== 202) {
      $('test-state').textContent = r.data && r.data.error ? r.data.error.message : 'not armed (' + r.status + ')';
      return;
    }
    capture = r.data.id;
    showCapture(r.data);
    captureTimer = setInterval(async () => {
      try {
        const c = await call('GET', '/v1/captures/' + encodeURIComponent(capture));
        if (c.data && c.data.id) showCapture(c.data);
      } catch (_) { /* shown by call() */ }
    }, 1000);
  } catch (_) { /* shown by call() */ }
}

async function cancel() {
  if (!capture) return;
  try {
    const r = await call('DELETE', '/v1/captures/' + encodeURIComponent(capture));
    if (r.data && r.data.id) showCapture(r.data);
  } catch (_) { /* shown by call() */ }
}

async function signIn(ev) {
  ev.preventDefault();
  const input = $('token');
  const r = await fetch('/console/session', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: input.value }),
  });
  input.value = '';
  if (r.status === 204) start();
  else $('signin-msg').textContent = 'That token is not the agent\'s.';
}

async function signOut() {
  await fetch('/console/signout', { method: 'POST' });
  showSignin('Signed out.');
}

async function boot() {
  $('signin-form').addEventListener('submit', signIn);
  $('signout').addEventListener('click', signOut);
  $('flush').addEventListener('click', flush);
  $('test-arm').addEventListener('click', arm);
  $('test-cancel').addEventListener('click', cancel);
  const code = new URLSearchParams(location.search).get('code');
  // The code leaves the address bar and history before anything else happens.
  if (location.pathname !== '/' || location.search) history.replaceState(null, '', '/');
  if (code) {
    const r = await fetch('/console/session', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ code }),
    });
    if (r.status !== 204) {
      showSignin('That sign-in link is used or expired: run cardlane console-url again, or paste the token.');
      return;
    }
  }
  const probe = await fetch('/v1/health');
  if (probe.status === 401) showSignin('');
  else start();
}

boot();
