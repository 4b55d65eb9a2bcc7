/*! Herald inbox widget v1: <herald-inbox>. Zero dependencies, ES module.
 * Safe under a strict Content-Security-Policy: every text goes in through
 * textContent, styles come from a constructed stylesheet (no inline style, no
 * eval), action URLs other than http(s) are dropped.
 */
const ORIGIN = new URL(import.meta.url).origin;
const PAGE = 20;

/* Built-in strings. Add a locale with HeraldInbox.locales.xx = {...}; override
 * single strings on one element with el.strings = {...}. */
const locales = {
  en: {
    title: 'Notifications',
    bell: 'Notifications',
    bellUnread: 'Notifications, {n} unread',
    markAll: 'Mark all as read',
    markRead: 'Mark as read',
    markUnread: 'Mark as unread',
    archive: 'Archive',
    more: 'Load more',
    empty: 'No notifications yet',
    offline: 'Connection lost. Reconnecting…',
    error: 'Notifications could not be loaded.',
    errorOrigin: 'Notifications are not enabled for this site (origin not allowed).',
    errorProof: 'Notifications could not be loaded: the sign-in was refused.',
    errorKey: 'Notifications could not be loaded: the key was revoked or has expired.',
    fresh: 'New notification: {title}',
    unread: 'Unread',
  },
  de: {
    title: 'Benachrichtigungen',
    bell: 'Benachrichtigungen',
    bellUnread: 'Benachrichtigungen, {n} ungelesen',
    markAll: 'Alle als gelesen markieren',
    markRead: 'Als gelesen markieren',
    markUnread: 'Als ungelesen markieren',
    archive: 'Archivieren',
    more: 'Mehr laden',
    empty: 'Noch keine Benachrichtigungen',
    offline: 'Verbindung unterbrochen. Neuer Versuch…',
    error: 'Benachrichtigungen konnten nicht geladen werden.',
    errorOrigin: 'Benachrichtigungen sind für diese Website nicht freigegeben (Origin nicht erlaubt).',
    errorProof: 'Benachrichtigungen konnten nicht geladen werden: Anmeldung abgelehnt.',
    errorKey: 'Benachrichtigungen konnten nicht geladen werden: Schlüssel widerrufen oder abgelaufen.',
    fresh: 'Neue Benachrichtigung: {title}',
    unread: 'Ungelesen',
  },
  fr: {
    title: 'Notifications',
    bell: 'Notifications',
    bellUnread: 'Notifications, {n} non lues',
    markAll: 'Tout marquer comme lu',
    markRead: 'Marquer comme lu',
    markUnread: 'Marquer comme non lu',
    archive: 'Archiver',
    more: 'Charger plus',
    empty: 'Aucune notification',
    offline: 'Connexion perdue. Reconnexion…',
    error: 'Impossible de charger les notifications.',
    errorOrigin: 'Les notifications ne sont pas activées pour ce site (origine non autorisée).',
    errorProof: 'Impossible de charger les notifications : connexion refusée.',
    errorKey: 'Impossible de charger les notifications : clé révoquée ou expirée.',
    fresh: 'Nouvelle notification : {title}',
    unread: 'Non lu',
  },
};

const WHY = { origin: 'errorOrigin', proof: 'errorProof', key: 'errorKey' };

const DARK =
  '--herald-bg:#161b22;--herald-fg:#e6edf3;--herald-muted:#9ea7b3;--herald-border:#3d444d;' +
  '--herald-accent:#6cb6ff;--herald-unread:#1c2d45;--herald-hover:#21262d;';
const CSS = `
:host{--herald-bg:#fff;--herald-fg:#1f2328;--herald-muted:#59636e;--herald-border:#d1d9e0;--herald-accent:#0a58ca;
--herald-unread:#eef4ff;--herald-hover:#f6f8fa;--herald-badge:#c62828;--herald-badge-fg:#fff;--herald-radius:10px;
--herald-font:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;--herald-width:min(380px,calc(100vw - 16px));
display:inline-block;position:relative;font:14px/1.4 var(--herald-font)}
:host([theme=dark]){${DARK}}
@media (prefers-color-scheme:dark){:host(:not([theme=light])){${DARK}}}
[hidden]{display:none!important}
button,a{font:inherit;color:inherit}
button{cursor:pointer;background:none;border:0;padding:0}
:focus-visible{outline:2px solid var(--herald-accent);outline-offset:2px}
.bell{position:relative;display:grid;place-items:center;width:40px;height:40px;border-radius:50%}
.bell:hover{background:rgba(127,127,127,.15)}
.bell svg{width:24px;height:24px}
.badge{position:absolute;top:2px;right:0;min-width:18px;height:18px;padding:0 5px;box-sizing:border-box;border-radius:9px;
background:var(--herald-badge);color:var(--herald-badge-fg);font-size:11px;font-weight:700;line-height:18px;text-align:center}
.panel{position:absolute;right:0;top:calc(100% + 6px);z-index:2147483000;width:var(--herald-width);max-height:min(520px,80vh);
display:flex;flex-direction:column;background:var(--herald-bg);color:var(--herald-fg);border:1px solid var(--herald-border);
border-radius:var(--herald-radius);box-shadow:0 8px 28px rgba(0,0,0,.22);overflow:hidden;text-align:start}
.panel.start{right:auto;left:0}
@media (max-width:480px){.panel{position:fixed;left:8px;right:8px;top:56px;width:auto}}
.head{display:flex;align-items:center;justify-content:space-between;gap:8px;padding:10px 14px;border-bottom:1px solid var(--herald-border)}
h2{margin:0;font-size:15px;font-weight:600}
.all,.more{color:var(--herald-accent);font-size:13px;border-radius:4px;padding:2px 4px}
.all:hover,.more:hover{text-decoration:underline}
.note{margin:0;padding:8px 14px;font-size:13px;color:var(--herald-muted);border-bottom:1px solid var(--herald-border)}
.err{color:var(--herald-fg)}
ul{list-style:none;margin:0;padding:0;overflow-y:auto;flex:1}
li{display:flex;align-items:flex-start;gap:4px;padding:4px 8px 4px 4px;border-bottom:1px solid var(--herald-border)}
li:hover{background:var(--herald-hover)}
li.unread{background:var(--herald-unread)}
.main{flex:1;min-width:0;display:block;text-align:start;text-decoration:none;padding:6px 8px;border-radius:6px}
.t,.b,.d{display:block;overflow-wrap:anywhere}
.t{font-weight:500}
.unread .t{font-weight:700}
.b{color:var(--herald-muted);margin-top:2px;white-space:pre-line}
.d{color:var(--herald-muted);font-size:12px;margin-top:4px}
a.main:hover .t{text-decoration:underline}
.tog,.arc{flex:none;display:grid;place-items:center;width:28px;height:28px;border-radius:50%;color:var(--herald-muted)}
.tog:hover,.arc:hover{background:rgba(127,127,127,.18)}
.tog::before{content:"";width:9px;height:9px;border-radius:50%;border:2px solid var(--herald-accent);box-sizing:border-box}
.unread .tog::before{background:var(--herald-accent)}
.arc svg{width:16px;height:16px}
.empty{padding:28px 14px;text-align:center;color:var(--herald-muted);margin:0}
.foot{padding:8px;text-align:center}
.sr{position:absolute;width:1px;height:1px;margin:-1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}
`;

let sheet;
const styles = () => {
  if (!sheet) {
    sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
  }
  return sheet;
};

/* Element builder: `text` goes through textContent, everything else is an attribute. */
const h = (tag, attrs = {}, ...kids) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v);
  }
  el.append(...kids.filter(Boolean));
  return el;
};

const icon = (d) => {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  const path = document.createElementNS(NS, 'path');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  path.setAttribute('d', d);
  path.setAttribute('fill', 'currentColor');
  svg.append(path);
  return svg;
};
const BELL =
  'M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3.5a1.5 1.5 0 0 0-3 0v.66A7 7 0 0 0 5 11v5l-2 2v1h18v-1Z';
const CROSS =
  'M18.3 5.71a1 1 0 0 0-1.41 0L12 10.59 7.11 5.7A1 1 0 0 0 5.7 7.11L10.59 12 5.7 16.89a1 1 0 1 0 1.41 1.41L12 13.41l4.89 4.89a1 1 0 0 0 1.41-1.41L13.41 12l4.89-4.89a1 1 0 0 0 0-1.4Z';

/* Only absolute http(s) links are followed; anything else (javascript:, data:, ...) is dropped. */
export const safeUrl = (value) => {
  try {
    const url = new URL(String(value || ''), document.baseURI);
    return value && /^https?:$/.test(url.protocol) ? url.href : '';
  } catch {
    return '';
  }
};

const fill = (s, vars) => s.replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? '');

/* The `exp` of a JWT, in ms, or 0. */
const tokenExpiry = (token) => {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part)).exp * 1000 || 0;
  } catch {
    return 0;
  }
};
const tokenSubject = (token) => {
  try {
    return JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sub || '';
  } catch {
    return '';
  }
};

export class HeraldInbox extends HTMLElement {
  static locales = locales;
  static observedAttributes = ['publishable-key', 'subscriber-id', 'subscriber-hash', 'server', 'locale'];

  constructor() {
    super();
    this._strings = {};
    this._provider = null;
    this._items = new Map(); // id -> {item, li}
    this._unread = 0;
    this._cursor = null;
    this._next = null;
    this._ws = null;
    this._tries = 0;
    this._st = 'idle';
    const root = this.attachShadow({ mode: 'open' });
    root.adoptedStyleSheets = [styles()];
    this._bell = h('button', { type: 'button', class: 'bell', part: 'bell', 'aria-expanded': 'false', 'aria-controls': 'panel' });
    this._badge = h('span', { class: 'badge', part: 'badge', 'aria-hidden': 'true', hidden: '' });
    this._bell.append(icon(BELL), this._badge);
    this._heading = h('h2', { id: 'heading', part: 'heading', tabindex: '-1' });
    this._all = h('button', { type: 'button', class: 'all', part: 'mark-all' });
    this._status = h('p', { class: 'note', part: 'status', role: 'status', hidden: '' });
    this._error = h('p', { class: 'note err', part: 'error', role: 'alert', hidden: '' });
    this._list = h('ul', { part: 'list', 'aria-labelledby': 'heading' });
    this._empty = h('p', { class: 'empty', part: 'empty', hidden: '' });
    this._more = h('button', { type: 'button', class: 'more', part: 'load-more' });
    this._foot = h('div', { class: 'foot', hidden: '' }, this._more);
    this._panel = h(
      'section',
      { id: 'panel', class: 'panel', part: 'panel', 'aria-labelledby': 'heading', hidden: '' },
      h('div', { class: 'head', part: 'header' }, this._heading, this._all),
      this._status,
      this._error,
      this._list,
      this._empty,
      this._foot,
    );
    this._live = h('div', { class: 'sr', role: 'status', 'aria-live': 'polite' });
    root.append(this._bell, this._panel, this._live);

    this._bell.addEventListener('click', () => this.toggle());
    this._all.addEventListener('click', () => this.markAllRead());
    this._more.addEventListener('click', () => this._load(this._next));
    this._panel.addEventListener('keydown', (e) => this._key(e));
    this._list.addEventListener('click', (e) => this._click(e));
    // Tabbing out of the widget closes the panel, as a click elsewhere does.
    this.addEventListener('focusout', (e) => {
      const to = e.relatedTarget;
      if (!this._panel.hidden && to && to !== this && !this.contains(to)) this.toggle(false);
    });
    this._outside = (e) => {
      if (!this._panel.hidden && !e.composedPath().includes(this)) this.toggle(false);
    };
    this._visible = () => {
      if (!document.hidden && this._paused) {
        this._paused = false;
        clearTimeout(this._timer);
        this._tries = 0;
        this._connect();
      }
    };
    this._text();
  }

  /* ---- public API ------------------------------------------------------------ */

  get tokenProvider() {
    return this._provider;
  }
  set tokenProvider(fn) {
    this._provider = typeof fn === 'function' ? fn : null;
    this._restart();
  }
  get strings() {
    return { ...this._base(), ...this._strings };
  }
  set strings(value) {
    this._strings = { ...(value || {}) };
    this._text();
  }
  get unreadCount() {
    return this._unread;
  }
  /* idle | connecting | live | offline | error */
  get state() {
    return this._st;
  }

  toggle(open = this._panel.hidden) {
    this._panel.hidden = !open;
    this._bell.setAttribute('aria-expanded', String(open));
    clearInterval(this._clock);
    if (open) {
      // Open towards the side with room: a bell near the left edge gets a left-anchored panel.
      this._panel.classList.toggle('start', this.getBoundingClientRect().right < this._panel.offsetWidth + 8);
      this._times();
      this._clock = setInterval(() => this._times(), 30000);
      this._heading.focus();
    } else if (this.shadowRoot.activeElement && this.shadowRoot.activeElement !== this._bell) {
      this._bell.focus();
    }
  }

  markAllRead() {
    for (const { item } of this._items.values()) this._state(item.id, { read: true });
    this._setUnread(0);
    this._emit('herald:read', { all: true });
    this._post('/v1/inbox/read-all');
  }

  /* ---- lifecycle --------------------------------------------------------------- */

  connectedCallback() {
    // A property set before the element was upgraded shadows the accessor: move it over.
    for (const name of ['tokenProvider', 'strings']) {
      if (Object.prototype.hasOwnProperty.call(this, name)) {
        const value = this[name];
        delete this[name];
        this[name] = value;
      }
    }
    document.addEventListener('click', this._outside);
    document.addEventListener('visibilitychange', this._visible);
    this._restart();
  }

  disconnectedCallback() {
    document.removeEventListener('click', this._outside);
    document.removeEventListener('visibilitychange', this._visible);
    this._stop();
  }

  attributeChangedCallback(name) {
    if (name === 'locale') this._text();
    else this._restart();
  }

  _restart() {
    if (this._pending) return;
    this._pending = true;
    queueMicrotask(() => {
      this._pending = false;
      this._stop();
      if (!this.isConnected) return;
      this._items.clear();
      this._list.replaceChildren();
      this._cursor = this._next = this._token = this._loading = null;
      this._gen = (this._gen || 0) + 1;
      this._loaded = this._dead = this._retried = false;
      this._why = null;
      this._tries = 0;
      this._st = 'idle';
      this._setUnread(0);
      this._note(this._error, '');
      this._note(this._status, '');
      this._render();
      if (this._key_() && (this._provider || (this._sid() && this.getAttribute('subscriber-hash')))) this._connect();
    });
  }

  _stop() {
    clearInterval(this._clock);
    clearTimeout(this._timer);
    clearTimeout(this._refresh);
    clearInterval(this._beat);
    const ws = this._ws;
    this._ws = null;
    if (ws) ws.close(1000);
  }

  /* ---- strings --------------------------------------------------------------- */

  _base() {
    const wanted = [this.getAttribute('locale'), document.documentElement.lang, navigator.language];
    for (const tag of wanted) {
      if (!tag) continue;
      const lower = tag.toLowerCase();
      const found = locales[lower] || locales[lower.split('-')[0]];
      if (found) return { ...locales.en, ...found };
    }
    return locales.en;
  }

  _lang() {
    return this.getAttribute('locale') || document.documentElement.lang || navigator.language || 'en';
  }

  _text() {
    const s = this.strings;
    this._heading.textContent = s.title;
    this._all.textContent = s.markAll;
    this._more.textContent = s.more;
    this._empty.textContent = s.empty;
    if (!this._status.hidden) this._status.textContent = s.offline;
    if (!this._error.hidden) this._error.textContent = this._why ? s[WHY[this._why]] || s.error : s.error;
    for (const { item, li } of this._items.values()) this._paint(item, li);
    this._setUnread(this._unread);
  }

  /* ---- network --------------------------------------------------------------- */

  _server() {
    return (this.getAttribute('server') || ORIGIN).replace(/\/+$/, '');
  }
  _key_() {
    return this.getAttribute('publishable-key') || '';
  }
  _sid() {
    return this.getAttribute('subscriber-id') || (this._token ? tokenSubject(this._token) : '');
  }

  /* A JWT from tokenProvider, fetched again shortly before it expires. */
  async _fresh(force) {
    if (!force && this._token && tokenExpiry(this._token) - Date.now() > 5000) return this._token;
    const token = await this._provider();
    this._token = String(token || '');
    const left = tokenExpiry(this._token) - Date.now();
    clearTimeout(this._refresh);
    // Refresh a fifth of the lifetime early (at most 30 s), and never less than 2 s early (or half a
    // short token's life): the new `auth` must reach the server before `exp` even on a busy machine.
    const early = Math.min(30000, Math.max(left / 5, Math.min(2000, left / 2)));
    if (left > 0) this._refresh = setTimeout(() => this._reauth(), Math.max(500, left - early));
    return this._token;
  }

  /* Send `auth` again with a fresh token on the open socket: the socket stays up. */
  async _reauth() {
    try {
      await this._fresh(true);
      if (this._ws && this._ws.readyState === 1) this._ws.send(JSON.stringify(await this._auth()));
    } catch {
      /* the next connect tries again */
    }
  }

  async _auth() {
    const frame = { type: 'auth', subscriber_id: this._sid(), cursor: this._cursor };
    if (this._provider) {
      frame.token = await this._fresh();
      frame.subscriber_id = this._sid();
    } else {
      frame.subscriber_hash = this.getAttribute('subscriber-hash');
    }
    return frame;
  }

  async _headers() {
    const headers = { 'X-Herald-Publishable-Key': this._key_() };
    if (this._provider) headers.Authorization = `Bearer ${await this._fresh()}`;
    else {
      headers['X-Herald-Subscriber'] = this._sid();
      headers['X-Herald-Subscriber-Hash'] = this.getAttribute('subscriber-hash');
    }
    return headers;
  }

  async _fetch(path, method = 'GET', again = false) {
    let response;
    try {
      response = await fetch(this._server() + path, {
        method,
        headers: await this._headers(),
        mode: 'cors',
        credentials: 'omit',
        keepalive: method !== 'GET',
      });
    } catch (error) {
      // A page cannot read why a CORS request failed. Herald serves this script to every origin: if it
      // answers and the request fails again, Herald is up and refused this page's origin (or the key).
      if (await this._reachable()) {
        if (!again) return this._fetch(path, method, true);
        this._fail('origin');
      }
      throw error;
    }
    if (response.status === 401 || response.status === 403) {
      const problem = await response.json().catch(() => ({}));
      this._fail(/origin-not-allowed$/.test(problem.type || '') ? 'origin' : 'proof');
      throw new Error('refused');
    }
    if (!response.ok) throw new Error(String(response.status));
    return response.status === 204 ? null : response.json();
  }

  _reachable() {
    const probe = { method: 'HEAD', mode: 'cors', credentials: 'omit', cache: 'no-store' };
    return fetch(this._server() + '/widget/v1/herald.js', probe).then((r) => r.ok, () => false);
  }

  _post(path) {
    return this._fetch(path, 'POST').catch(() => {});
  }

  /* One page of the inbox over HTTP: the first (cursor null) or the next. One at a time. */
  _load(cursor) {
    if (this._dead) return Promise.resolve();
    if (!this._loading) {
      this._more.disabled = true;
      const loading = (this._loading = this._page(cursor).finally(() => {
        if (this._loading === loading) this._loading = null;
        this._more.disabled = false;
        this._render();
      }));
    }
    return this._loading;
  }

  async _page(cursor) {
    const gen = this._gen;
    try {
      const query = `?limit=${PAGE}&archived=false` + (cursor ? `&cursor=${encodeURIComponent(cursor)}` : '');
      const page = await this._fetch(`/v1/inbox/notifications${query}`);
      if (!cursor && !this._ws) {
        const count = await this._fetch('/v1/inbox/unread-count');
        if (gen === this._gen) this._setUnread(count.count);
      }
      if (gen !== this._gen) return; // the element was pointed at another subscriber meanwhile
      for (const item of page.items) {
        this._add(item, false);
        // Loaded without the socket: resume after what is shown, so nothing newer is skipped.
        if (!cursor) this._cursor = Math.max(this._cursor || 0, item.seq);
      }
      if (!cursor) this._cursor = this._cursor || 0;
      this._next = page.has_more ? page.next_cursor : null;
      this._loaded = true;
    } catch {
      /* shown by _fail, or retried on the next connect */
    }
  }

  _connect() {
    if (this._ws || this._dead || !this.isConnected || !this._key_()) return;
    if (document.hidden) {
      this._paused = true;
      return;
    }
    const url = `${this._server().replace(/^http/, 'ws')}/v1/ws?pk=${encodeURIComponent(this._key_())}`;
    const ws = (this._ws = new WebSocket(url));
    this._st = 'connecting';
    let ready = false;
    ws.onopen = async () => {
      try {
        ws.send(JSON.stringify(await this._auth()));
      } catch {
        ws.close(4000);
      }
    };
    ws.onmessage = (event) => {
      this._seen = Date.now();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame.type === 'ready') ready = true;
      this._frame(frame);
    };
    ws.onclose = (event) => {
      if (this._ws !== ws) return;
      this._ws = null;
      clearInterval(this._beat);
      if (event.code === 4401 || event.code === 4403) {
        if (this._provider && event.code === 4401 && !this._retried) {
          this._retried = true;
          this._token = null;
        } else return this._fail(event.code === 4401 ? 'proof' : 'key');
      }
      this._st = 'offline';
      this._note(this._status, this.strings.offline);
      // Never reached the server: show what HTTP can give meanwhile (and learn of a refused proof).
      if (!ready && !this._loaded) this._load(null);
      const delay = Math.random() * Math.min(30000, 500 * 2 ** this._tries++);
      this._timer = setTimeout(() => this._connect(), delay);
    };
    this._seen = Date.now();
    clearInterval(this._beat);
    this._beat = setInterval(() => {
      if (ws.readyState !== 1) return;
      if (Date.now() - this._seen > 60000) ws.close(4000);
      else ws.send('{"type":"ping"}');
    }, 25000);
  }

  _frame(m) {
    switch (m.type) {
      case 'ready':
        this._tries = 0;
        this._retried = false;
        this._note(this._status, '');
        // Adopt the server's cursor only on a first connect (the HTTP load below covers up to it);
        // later, resume after the last item really received, so frames lost in a drop come again.
        if (this._cursor == null) this._cursor = m.cursor ?? null;
        this._setUnread(m.unread_count);
        // `live` once the inbox is shown and streaming.
        (this._loaded ? Promise.resolve() : this._load(null)).then(() => {
          if (this._ws && this._ws.readyState === 1) this._st = 'live';
        });
        break;
      case 'notification': {
        const item = m.notification;
        if (m.cursor != null) this._cursor = Math.max(this._cursor || 0, m.cursor);
        if (!item || this._items.has(item.id) || item.archived) break;
        this._add(item, true);
        if (!item.read) this._setUnread(this._unread + 1);
        this._live.textContent = fill(this.strings.fresh, { title: item.title });
        this._emit('herald:notification', { notification: item });
        this._render();
        break;
      }
      case 'update': {
        // Events only for changes this tab did not make itself (its own come back here too).
        const unread = [...this._items.values()].filter((e) => !e.item.read);
        if (m.all_read) {
          for (const { item } of unread) this._state(item.id, { read: true });
          if (unread.length) this._emit('herald:read', { all: true, remote: true });
        } else if (m.notification) {
          const u = m.notification;
          const was = unread.some((e) => e.item.id === u.id);
          if (u.archived_at) this._drop(u.id);
          else this._state(u.id, { read: !!u.read_at });
          if (u.read_at && was) this._emit('herald:read', { id: u.id, remote: true });
        }
        if (typeof m.unread_count === 'number') this._setUnread(m.unread_count);
        break;
      }
      case 'unread_count':
        this._setUnread(m.count);
        // After a catch-up (the channel layer was away) it carries the cursor to resume from: live frames sent
        // meanwhile named the outage's start, so the items above it that this tab already has are not re-sent.
        if (m.cursor != null) this._cursor = Math.max(this._cursor || 0, m.cursor);
        break;
      case 'reset':
        // The server cannot replay what was missed: start over from HTTP (a load in flight is stale).
        this._gen++;
        this._items.clear();
        this._list.replaceChildren();
        this._cursor = m.cursor ?? null;
        this._loaded = false;
        this._loading = null;
        this._load(null);
        break;
    }
  }

  /* A refusal that no retry can fix: a terminal `error` state, a message saying which, and the fix in the console. */
  _fail(why) {
    if (this._dead) return;
    this._dead = true;
    this._why = why;
    this._st = 'error';
    this._stop();
    this._items.clear();
    this._list.replaceChildren();
    this._setUnread(0);
    this._note(this._status, '');
    this._note(this._error, this.strings[WHY[why]]);
    this._render();
    const key = this._key_().slice(0, 16) + '…';
    console.warn(
      'Herald: ' +
        {
          origin:
            `this page's origin ${location.origin} is not allowed for publishable key ${key}: add it to the ` +
            `key's allowed origins (herald create_key SLUG --kind publishable --origin ${location.origin}), ` +
            'or check the publishable-key attribute',
          proof:
            `the subscriber proof for "${this._sid()}" was refused: subscriber-hash must be ` +
            "hex(HMAC-SHA256(signing secret, subscriber-id)) with your organisation's signing secret " +
            '(herald show_signing_secret SLUG); a token needs sub = the subscriber id and a future exp',
          key: `publishable key ${key} was revoked or has expired: use a live one (herald list_keys SLUG)`,
        }[why],
    );
    this._emit('herald:error', { reason: why });
  }

  /* ---- items ----------------------------------------------------------------- */

  _add(item, live) {
    if (this._items.has(item.id)) return;
    const li = h('li', { part: 'item' });
    const url = safeUrl(item.action_url);
    const main = h(url ? 'a' : 'button', { class: 'main', part: 'item-main' });
    if (url) main.href = url;
    else main.type = 'button';
    li.append(
      main,
      h('button', { type: 'button', class: 'tog', part: 'item-toggle' }),
      h('button', { type: 'button', class: 'arc', part: 'item-archive' }, icon(CROSS)),
    );
    li.dataset.id = item.id;
    this._items.set(item.id, { item, li });
    this._paint(item, li);
    // Newest first, by sequence.
    let before = null;
    if (live) for (const other of this._list.children) {
      if ((this._items.get(other.dataset.id)?.item.seq ?? 0) < item.seq) {
        before = other;
        break;
      }
    }
    this._list.insertBefore(li, before);
  }

  _paint(item, li) {
    const s = this.strings;
    const [main, tog, arc] = li.children;
    li.className = item.read ? 'read' : 'unread';
    li.setAttribute('part', item.read ? 'item item-read' : 'item item-unread');
    main.replaceChildren(
      ...[
        // Screen readers hear what the bold title and the dot show.
        item.read ? null : h('span', { class: 'sr', text: `${s.unread}: ` }),
        h('span', { class: 't', part: 'item-title', text: item.title || '' }),
        item.body ? h('span', { class: 'b', part: 'item-body', text: item.body }) : null,
        h('time', { class: 'd', part: 'item-time', datetime: item.created_at || '', text: this._ago(item.created_at) }),
      ].filter(Boolean),
    );
    tog.setAttribute('aria-label', `${item.read ? s.markUnread : s.markRead}: ${item.title || ''}`);
    arc.setAttribute('aria-label', `${s.archive}: ${item.title || ''}`);
  }

  _state(id, change) {
    const entry = this._items.get(id);
    if (!entry) return;
    Object.assign(entry.item, change);
    this._paint(entry.item, entry.li);
  }

  _drop(id) {
    const entry = this._items.get(id);
    if (!entry) return;
    const { li } = entry;
    const next = li.nextElementSibling || li.previousElementSibling;
    const focused = li.contains(this.shadowRoot.activeElement);
    this._items.delete(id);
    li.remove();
    if (focused) (next ? next.firstElementChild : this._heading).focus();
    this._render();
  }

  _click(event) {
    const button = event.target.closest('button, a');
    const li = button && button.closest('li');
    if (!li) return;
    const { item } = this._items.get(li.dataset.id) || {};
    if (!item) return;
    if (button.classList.contains('arc')) {
      if (!item.read) this._setUnread(this._unread - 1);
      this._drop(item.id);
      this._post(`/v1/inbox/notifications/${encodeURIComponent(item.id)}/archive`);
    } else if (button.classList.contains('tog') && item.read) {
      this._state(item.id, { read: false });
      this._setUnread(this._unread + 1);
      this._post(`/v1/inbox/notifications/${encodeURIComponent(item.id)}/unread`);
    } else if (!item.read) {
      // The main link or button, or the toggle of an unread item: mark read; a link then navigates.
      this._state(item.id, { read: true });
      this._setUnread(this._unread - 1);
      this._emit('herald:read', { id: item.id });
      this._post(`/v1/inbox/notifications/${encodeURIComponent(item.id)}/read`);
    }
  }

  _key(event) {
    if (event.key === 'Escape') {
      event.preventDefault();
      this.toggle(false);
      return;
    }
    const mains = [...this._list.querySelectorAll('.main')];
    if (!mains.length || !['ArrowDown', 'ArrowUp', 'Home', 'End'].includes(event.key)) return;
    event.preventDefault();
    const at = mains.indexOf(this.shadowRoot.activeElement?.closest('li')?.firstElementChild);
    const to = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: mains.length - 1 }[event.key];
    mains[Math.max(0, Math.min(mains.length - 1, to))].focus();
  }

  /* ---- view state ------------------------------------------------------------ */

  _setUnread(n) {
    this._unread = Math.max(0, Number(n) || 0);
    const s = this.strings;
    this._badge.hidden = !this._unread;
    this._badge.textContent = this._unread > 99 ? '99+' : String(this._unread);
    this._bell.setAttribute('aria-label', this._unread ? fill(s.bellUnread, { n: this._unread }) : s.bell);
    this._all.disabled = !this._unread;
  }

  _render() {
    this._empty.hidden = this._items.size > 0 || this._dead || !this._loaded;
    this._foot.hidden = !this._next || this._dead;
  }

  _note(el, text) {
    el.textContent = text;
    el.hidden = !text;
  }

  _times() {
    for (const { item, li } of this._items.values()) li.querySelector('time').textContent = this._ago(item.created_at);
  }

  _ago(iso) {
    const then = Date.parse(iso);
    if (!then) return '';
    const seconds = (then - Date.now()) / 1000;
    const lang = this._lang();
    const abs = Math.abs(seconds);
    const [value, unit] =
      abs < 45 ? [0, 'second'] : abs < 3600 ? [seconds / 60, 'minute'] : abs < 86400 ? [seconds / 3600, 'hour'] : [seconds / 86400, 'day'];
    try {
      if (abs >= 7 * 86400) return new Date(then).toLocaleDateString(lang, { dateStyle: 'medium' });
      return new Intl.RelativeTimeFormat(lang, { numeric: 'auto' }).format(Math.round(value), unit);
    } catch {
      return new Date(then).toLocaleString();
    }
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }
}

if (!customElements.get('herald-inbox')) customElements.define('herald-inbox', HeraldInbox);
