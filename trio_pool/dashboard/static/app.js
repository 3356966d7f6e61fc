/* trio-pool dashboard: plain ES2020, no framework, no build step, nothing fetched from elsewhere.
   Sections: dom helpers · formatting · api · session & router · charts · shared widgets · pages · boot.
   All data goes into the page through textContent / attributes, never innerHTML. */
'use strict';
(() => {
  // ------------------------------------------------------------------ dom helpers
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const PROPS = new Set(['value', 'checked', 'selected', 'disabled', 'hidden']);
  const $ = (sel, root = document) => root.querySelector(sel);

  function append(el, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === null || k === undefined || k === false) continue;
      el.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return el;
  }
  function build(el, attrs, kids) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'testid') el.setAttribute('data-testid', v);
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (PROPS.has(k)) el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    return append(el, kids);
  }
  const h = (tag, attrs, ...kids) => build(document.createElement(tag), attrs, kids);
  const s = (tag, attrs, ...kids) => build(document.createElementNS(SVG_NS, tag), attrs, kids);
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

  // ------------------------------------------------------------------ formatting
  const now = () => Date.now() / 1000 + state.skew;
  const fmtInt = (n) => (n === null || n === undefined ? '–' : Math.round(n).toLocaleString('en-US'));
  function fmtNum(n) {
    if (n === null || n === undefined) return '–';
    const a = Math.abs(n);
    const one = (v) => v.toFixed(1).replace(/\.0$/, '');
    if (a >= 1e9) return one(n / 1e9) + 'B';
    if (a >= 1e6) return one(n / 1e6) + 'M';
    if (a >= 1e4) return Math.round(n / 1e3) + 'k';
    if (a >= 1e3) return one(n / 1e3) + 'k';
    return String(Math.round(n));
  }
  const fmtPct = (p, d) => (p === null || p === undefined ? '–' : p.toFixed(d === undefined ? (Number.isInteger(p) ? 0 : 1) : d) + '%');
  function fmtDur(sec) {
    sec = Math.max(0, Math.round(sec));
    if (sec < 60) return sec + 's';
    const m = Math.floor(sec / 60), hr = Math.floor(m / 60), d = Math.floor(hr / 24);
    if (hr < 1) return m + 'm ' + (sec % 60) + 's';
    if (d < 1) return hr + 'h ' + (m % 60) + 'm';
    return d + 'd ' + (hr % 24) + 'h';
  }
  const fmtClock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const fmtWhen = (t) => (t ? new Date(t * 1000).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' }) : '–');
  const fmtAgo = (t) => (t ? fmtDur(now() - t) + ' ago' : 'never');
  const fmtMs = (ms) => (ms === null || ms === undefined ? '–' : ms < 1000 ? Math.round(ms) + ' ms' : (ms / 1000).toFixed(1) + ' s');

  // ------------------------------------------------------------------ api
  class ApiError extends Error {
    constructor(status, type, message, retryAfter) {
      super(message);
      Object.assign(this, { status, type, retryAfter });
    }
  }
  // Every call sends the session cookie; mutating calls carry the CSRF header the server requires.
  async function api(path, { method = 'GET', body, quiet401 = false } = {}) {
    const headers = { accept: 'application/json' };
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (method !== 'GET') {
      headers['content-type'] = 'application/json';
      headers['x-trio-pool'] = '1';
      if (method !== 'DELETE' || body) init.body = JSON.stringify(body || {});
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'network', 'Cannot reach trio-pool (' + e.message + ')', null);
    }
    let doc = null;
    try {
      doc = JSON.parse((await res.text()) || 'null');
    } catch (e) {
      doc = null;
    }
    if (res.ok) return doc || {};
    const err = (doc && doc.error) || {};
    const retry = Number(res.headers.get('retry-after')) || null;
    if (res.status === 401 && !quiet401) signedOut();
    throw new ApiError(res.status, err.type || 'http_error', err.message || res.status + ' ' + res.statusText, retry);
  }
  const post = (path, body, opts) => api(path, { method: 'POST', body, ...opts });
  const accountPath = (name, action) => {
    const i = name.indexOf('/');
    return '/api/accounts/' + encodeURIComponent(name.slice(0, i)) + '/' + encodeURIComponent(name.slice(i + 1)) + '/' + action;
  };

  // ------------------------------------------------------------------ session & router
  const KEY_SLOT = 'trio-pool.key'; // sessionStorage only: the freshly issued key, never localStorage
  const state = { session: null, key: null, skew: 0, gen: 0, cleanups: [] };
  function setKey(key) {
    state.key = key;
    try {
      if (key) sessionStorage.setItem(KEY_SLOT, key);
      else sessionStorage.removeItem(KEY_SLOT);
    } catch (e) { /* storage off: memory only */ }
  }
  try { state.key = sessionStorage.getItem(KEY_SLOT); } catch (e) { state.key = null; }

  const user = () => (state.session && state.session.user) || null;
  const isAdmin = () => (user() || {}).role === 'admin';
  const PAGES = {
    overview: { title: 'Overview', render: pageOverview },
    accounts: { title: 'Accounts', render: pageAccounts },
    usage: { title: 'Usage', render: pageUsage },
    live: { title: 'Live', render: pageLive },
    setup: { title: 'Setup', render: pageSetup },
    try: { title: 'Try it', render: pageTry },
    users: { title: 'Users', render: pageUsers, admin: true },
    join: { title: 'Join', render: pageJoin, anon: true },
    login: { title: 'Sign in', render: pageLogin, anon: true },
  };
  function resolve(want) {
    const s = state.session || {};
    if (!user()) {
      if (want === 'login' || (want === 'join' && s.join)) return want;
      return s.join ? 'join' : 'login';
    }
    if (!PAGES[want] || want === 'join') return want === 'join' ? 'setup' : 'overview';
    if (PAGES[want].admin && !isAdmin()) return 'overview';
    return want;
  }
  function onLeave(fn) { state.cleanups.push(fn); }
  function every(ms, fn) {
    const id = setInterval(() => { if (!document.hidden) fn(); }, ms);
    onLeave(() => clearInterval(id));
  }
  async function route() {
    const m = location.hash.match(/^#\/([a-z]+)/);
    const want = m ? m[1] : 'overview';
    const page = resolve(want);
    if (page !== want || !m) history.replaceState(null, '', '#/' + page);
    state.cleanups.splice(0).forEach((fn) => fn());
    const gen = ++state.gen;
    renderNav(page);
    const main = $('#main');
    main.replaceChildren();
    document.title = PAGES[page].title + ' · trio-pool';
    try {
      await PAGES[page].render(main, () => gen === state.gen);
    } catch (e) {
      if (gen === state.gen) main.append(errorBox(e));
    }
  }
  function renderNav(page) {
    const u = user(), sess = state.session || {};
    for (const a of document.querySelectorAll('#nav a')) {
      const p = a.dataset.page;
      a.hidden = p === 'join' ? Boolean(u) || !sess.join : !u || (PAGES[p].admin && !isAdmin());
      if (p === page) {
        a.setAttribute('aria-current', 'page');
        if (!a.hidden) a.scrollIntoView({ block: 'nearest', inline: 'nearest' }); // the phone nav scrolls sideways
      } else a.removeAttribute('aria-current');
    }
    $('#nav-login').hidden = Boolean(u);
    $('#nav-logout').hidden = !u;
    $('#who').textContent = u ? (u.name || 'local admin') + ' · ' + u.role : 'not signed in';
    const named = sess.friend_name && sess.friend_name !== 'trio-pool';
    $('#pool-name').textContent = named ? '· ' + sess.friend_name : '';
  }
  function signedOut() {
    if (state.session) state.session.user = null;
    const m = location.hash.match(/^#\/([a-z]+)/);
    if (!m || (m[1] !== 'login' && m[1] !== 'join')) location.hash = '#/login';
    else renderNav(m[1]);
  }
  async function refreshSession() {
    state.session = await api('/api/session', { quiet401: true });
  }
  function flash(msg) {
    const f = $('#flash');
    f.textContent = msg;
    f.hidden = !msg;
    clearTimeout(flash.t);
    if (msg) flash.t = setTimeout(() => flash(''), 8000);
  }
  const errorBox = (e) => h('p', { class: 'error', role: 'alert' }, e.message || String(e));

  // ------------------------------------------------------------------ charts (own SVG)
  // Server time can differ from ours: every countdown reads `now()`, which applies the skew.
  function countdown(at, past = 'now') {
    const el = h('span', { class: 'cd' });
    el.dataset.at = String(at);
    el.dataset.past = past;
    tickOne(el);
    return el;
  }
  function tickOne(el) {
    const left = Number(el.dataset.at) - now();
    el.textContent = left > 0 ? fmtDur(left) : el.dataset.past;
  }
  const tick = () => document.querySelectorAll('.cd').forEach(tickOne);

  function gauge(frac, label) {
    const f = clamp(frac || 0, 0, 1);
    const level = f >= 0.9 ? 'hi' : f >= 0.7 ? 'mid' : 'lo';
    return s('svg', { class: 'gauge ' + level, viewBox: '0 0 100 10', preserveAspectRatio: 'none', role: 'img',
      'aria-label': label, testid: 'window-bar', 'data-used': (f * 100).toFixed(1) },
    s('title', {}, label),
    s('rect', { class: 'track', x: 0, y: 0, width: 100, height: 10 }),
    s('rect', { class: 'fill', x: 0, y: 0, width: (f * 100).toFixed(2), height: 10 }));
  }
  function niceMax(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }
  function hourLabel(t, span) {
    const d = new Date(t * 1000);
    if (span <= 48) return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    return d.toLocaleDateString([], { month: 'short', day: 'numeric' });
  }
  // Stacked bars: one <rect> per series per hour (zero-height ones too), tooltips via <title>.
  function stackedChart(hours, series, metric, width) {
    const W = Math.max(300, Math.round(width)), H = W < 500 ? 200 : 260;
    const pad = { l: 44, r: 8, t: 10, b: 24 };
    const n = hours.length;
    const totals = hours.map((_, i) => series.reduce((a, sr) => a + ((sr[metric] || [])[i] || 0), 0));
    const max = niceMax(Math.max(1, ...totals));
    const cw = (W - pad.l - pad.r) / Math.max(1, n), bw = Math.max(0.6, cw * (n > 200 ? 1 : 0.8));
    const y = (v) => pad.t + (H - pad.t - pad.b) * (1 - v / max);
    const svg = s('svg', { class: 'chart', testid: 'usage-chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H,
      role: 'img', 'aria-label': metric + ' per hour, stacked by series', 'shape-rendering': n > 100 ? 'crispEdges' : null });
    for (let g = 0; g <= 4; g++) {
      const v = (max * g) / 4, yy = y(v);
      svg.append(s('line', { class: 'grid', x1: pad.l, x2: W - pad.r, y1: yy, y2: yy }),
        s('text', { class: 'axis', x: pad.l - 6, y: yy + 4, 'text-anchor': 'end' }, fmtNum(v)));
    }
    const step = Math.max(1, Math.ceil(n / (W < 500 ? 4 : 8)));
    for (let i = 0; i < n; i += step) {
      svg.append(s('text', { class: 'axis', x: pad.l + i * cw + cw / 2, y: H - 6, 'text-anchor': 'middle' }, hourLabel(hours[i], n)));
    }
    series.forEach((sr, k) => {
      const g = s('g', { class: 'series s' + (k % 8), 'data-series': sr.label });
      let i = 0;
      for (const t of hours) {
        const below = series.slice(0, k).reduce((a, o) => a + ((o[metric] || [])[i] || 0), 0);
        const v = (sr[metric] || [])[i] || 0;
        const top = y(below + v);
        g.append(s('rect', { x: (pad.l + i * cw + (cw - bw) / 2).toFixed(2), y: top.toFixed(2), width: bw.toFixed(2),
          height: Math.max(0, y(below) - top).toFixed(2) },
        s('title', {}, `${sr.label} · ${hourLabel(t, 1)} ${new Date(t * 1000).toLocaleDateString()}: ${fmtInt(v)} ${metric}`)));
        i++;
      }
      svg.append(g);
    });
    if (!series.length) svg.append(s('text', { class: 'axis', x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'No requests in this range'));
    return svg;
  }
  const legend = (series, metric) => h('ul', { class: 'legend', testid: 'usage-legend' },
    series.map((sr, k) => h('li', {}, h('span', { class: 'sw s' + (k % 8), 'aria-hidden': 'true' }), h('span', {}, sr.label),
      h('span', { class: 'muted' }, fmtNum((sr[metric] || []).reduce((a, b) => a + b, 0))))));

  // ------------------------------------------------------------------ shared widgets
  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try { await navigator.clipboard.writeText(text); return true; } catch (e) { /* fall back below */ }
    }
    const ta = h('textarea', { class: 'offscreen', readonly: true, 'aria-hidden': 'true' });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
    ta.remove();
    return ok;
  }
  const copyButton = (getText, label = 'Copy') => h('button', { type: 'button', class: 'copy', testid: 'copy-button',
    onclick: async (ev) => {
      const b = ev.currentTarget, ok = await copyText(getText());
      b.textContent = ok ? 'Copied' : 'Select and copy';
      setTimeout(() => { b.textContent = label; }, 1500);
    } }, label);
  const stat = (label, value, extra) => h('div', { class: 'stat' }, h('div', { class: 'stat-v' }, value), h('div', { class: 'stat-l' }, label), extra);
  const section = (title, ...kids) => h('section', { class: 'panel' }, h('h2', {}, title), ...kids);
  const header = (title, sub, ...tools) => h('div', { class: 'page-head' }, h('div', {}, h('h1', {}, title), sub ? h('p', { class: 'muted' }, sub) : null), h('div', { class: 'tools' }, tools));
  const td = (label, ...kids) => h('td', { 'data-label': label }, h('div', { class: 'cell' }, ...kids));
  function keyBox(key, testid) {
    return h('div', { class: 'keybox' }, h('code', { testid }, key), copyButton(() => key, 'Copy key'),
      h('p', { class: 'muted small' }, 'Shown once: save it now (a password manager is a good place).'));
  }
  function field(label, input) {
    const id = 'f-' + Math.random().toString(36).slice(2, 9);
    input.id = id;
    return h('div', { class: 'field' }, h('label', { for: id }, label), input);
  }
  // Keep auto-refresh from pulling a control out from under the user's focus.
  const busy = (box) => box.contains(document.activeElement) && document.activeElement !== box;

  // ------------------------------------------------------------------ page: overview
  async function pageOverview(main, alive) {
    const body = h('div', {});
    main.append(header('Overview', 'Pooled capacity per provider and window'), body);
    const load = async () => {
      const doc = await api('/api/overview');
      state.skew = doc.now - Date.now() / 1000;
      if (!alive()) return;
      const l = doc.last_24h || {};
      body.replaceChildren(
        h('div', { class: 'cards' }, (doc.providers || []).map(providerCard)),
        section('Last 24 hours', h('div', { class: 'stats' }, stat('requests', fmtInt(l.requests)), stat('tokens', fmtNum(l.tokens)),
          stat('errors', fmtInt(l.errors)), stat('429s absorbed by failover', fmtInt(l.failovers)))));
      if (!(doc.providers || []).length) body.prepend(h('p', { class: 'empty' }, 'No accounts yet: add one with `trio-pool login`.'));
    };
    await load();
    if (alive()) every(30000, () => load().catch((e) => flash(e.message)));
  }
  function providerCard(p) {
    const windows = (p.windows || []).map((w) => {
      const runsOut = w.runs_out_at && (!w.resets_at || w.runs_out_at < w.resets_at);
      return h('div', { class: 'window', 'data-window': w.name },
        h('div', { class: 'row' }, h('strong', {}, w.name), h('span', {}, fmtPct(w.used_pct) + ' used · ', h('b', {}, fmtPct(w.left_pct) + ' left'))),
        gauge(w.used_pct / 100, `${p.provider} ${w.name}: ${fmtPct(w.used_pct, 1)} used`),
        h('dl', { class: 'facts' },
          h('dt', {}, 'resets in'), h('dd', {}, w.resets_at ? countdown(w.resets_at, 'resetting') : '–'),
          h('dt', {}, 'pace'), h('dd', {}, w.rate_pct_per_h === null || w.rate_pct_per_h === undefined ? 'idle' : fmtPct(w.rate_pct_per_h, 1) + '/h'),
          h('dt', {}, 'at this pace'), h('dd', { class: runsOut ? 'warn' : 'ok' },
            runsOut ? ['runs out in ', countdown(w.runs_out_at, 'now')] : w.rate_pct_per_h ? 'lasts past reset' : 'no recent use')));
    });
    return h('article', { class: 'card', testid: 'provider-card', 'data-provider': p.provider },
      h('div', { class: 'row' }, h('h2', {}, p.provider), h('span', { class: 'badge ' + (p.usable ? 'ok' : 'bad') }, `${p.usable} of ${p.accounts} usable`)),
      windows.length ? windows : h('p', { class: 'muted' }, 'No quota readings yet.'));
  }

  // ------------------------------------------------------------------ page: accounts
  async function pageAccounts(main, alive) {
    const body = h('div', {});
    main.append(header('Accounts', 'Quota windows, state and last error per account'), body);
    const load = async () => {
      const doc = await api('/api/pool');
      state.skew = doc.now - Date.now() / 1000;
      if (!alive()) return;
      const problems = doc.problems || [];
      // replaceChildren would write a null as the text "null": only real nodes go in.
      body.replaceChildren(...[
        problems.length ? h('ul', { class: 'problems', role: 'status' }, problems.map((p) => h('li', {}, h('strong', {}, p.account), ': ', p.reason))) : null,
        h('table', { class: 'grid-table' },
          h('thead', {}, h('tr', {}, ['Account', 'State', 'Windows', 'Today', 'Last used', isAdmin() ? 'Actions' : null].filter(Boolean).map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, (doc.accounts || []).map((a) => accountRow(a, load)))),
      ].filter(Boolean));
      if (!(doc.accounts || []).length) body.append(h('p', { class: 'empty' }, 'No accounts in the pool.'));
    };
    await load();
    if (alive()) every(15000, () => { if (!busy(body)) load().catch((e) => flash(e.message)); });
  }
  function accountRow(a, reload) {
    const name = a.name.includes('/') ? a.name : a.provider + '/' + a.name;
    const disabled = a.disabled || a.state === 'disabled';
    const act = (action) => async (ev) => {
      ev.currentTarget.disabled = true;
      try { await post(accountPath(name, action)); } catch (e) { flash(`${action} ${name}: ${e.message}`); }
      await reload().catch((e) => flash(e.message));
    };
    const t = a.tokens_today || {};
    return h('tr', { testid: 'account-row', 'data-account': name, 'data-state': a.state },
      td('Account', h('strong', {}, name), h('div', { class: 'muted small' }, [a.plan, 'priority ' + a.priority, a.in_flight ? a.in_flight + ' in flight' : null].filter(Boolean).join(' · '))),
      td('State', h('span', { class: 'badge ' + (a.state === 'ok' ? 'ok' : disabled || a.state === 'needs_relogin' || a.state === 'needs_action' ? 'bad' : 'mid') }, a.state.replace('_', ' ')),
        a.state_until && a.state_until > now() ? h('div', { class: 'small' }, 'for ', countdown(a.state_until, 'now')) : null,
        a.action ? actionNote(a.action)
          : a.state_reason ? h('div', { class: 'small reason', title: 'last error' }, a.state_reason) : null),
      td('Windows', windowList(name, a.windows || [])),
      td('Today', fmtInt(a.requests_today) + ' req', h('div', { class: 'muted small' }, fmtNum((t.input || 0) + (t.output || 0)) + ' tokens')),
      td('Last used', a.last_used ? fmtAgo(a.last_used) : 'never'),
      isAdmin() ? td('Actions', h('div', { class: 'actions' },
        disabled ? h('button', { type: 'button', testid: 'account-enable', onclick: act('enable') }, 'Enable')
          : h('button', { type: 'button', testid: 'account-disable', onclick: act('disable') }, 'Disable'),
        h('button', { type: 'button', testid: 'account-refresh', onclick: act('refresh') }, 'Refresh'))) : null);
  }

  // The account's own windows first; then its model windows (Gemini's per-model buckets,
  // Claude's weekly Opus/Sonnet, Codex's extra families), which stop only their model.
  function windowList(name, windows) {
    const win = (w) => h('div', { class: 'win', testid: w.scope ? 'model-window' : 'account-window', 'data-scope': w.scope || '' },
      h('div', { class: 'row small' }, h('span', {}, w.name + ' · ' + fmtPct(w.used * 100)), h('span', { class: 'muted' }, w.resets_at ? ['resets ', countdown(w.resets_at, 'now')] : '')),
      gauge(w.used, `${name} ${w.name}: ${fmtPct(w.used * 100, 1)} used`));
    const own = windows.filter((w) => !w.scope), models = windows.filter((w) => w.scope);
    return h('div', { class: 'wins' }, own.map(win),
      models.length ? h('details', { class: 'model-wins', open: models.some((w) => w.used >= w.ceiling) },
        h('summary', { class: 'small muted' }, `${models.length} model window${models.length > 1 ? 's' : ''} (each stops only its model)`),
        models.map(win)) : null,
      windows.length ? null : h('span', { class: 'muted' }, 'no readings'));
  }

  // What the account's owner must do: the upstream's message, and its link (https only:
  // the link comes from an upstream answer and must never become a javascript: URL).
  function actionNote(action) {
    const link = typeof action.link === 'string' && action.link.startsWith('https://') ? action.link : null;
    return h('div', { class: 'small reason', testid: 'account-action', 'data-kind': action.kind, title: 'needs your action' },
      action.message, link ? [' ', h('a', { href: link, target: '_blank', rel: 'noopener noreferrer' }, 'open')] : null);
  }

  // ------------------------------------------------------------------ page: usage
  async function pageUsage(main, alive) {
    const opts = (pairs, cur) => pairs.map(([v, t]) => h('option', { value: v, selected: v === cur }, t));
    const by = h('select', { testid: 'usage-by' }, opts([['user', 'user'], ['account', 'account'], ['model', 'model'], ['provider', 'provider']], isAdmin() ? 'account' : 'model'));
    const range = h('select', { testid: 'usage-range' }, opts([['24', '24 hours'], ['168', '7 days'], ['720', '30 days']], '24'));
    const metric = h('select', { testid: 'usage-metric' }, opts([['tokens', 'tokens'], ['requests', 'requests']], 'tokens'));
    const chartBox = h('div', { class: 'chart-box' }), legendBox = h('div', {}), totalsBox = h('div', {});
    main.append(header('Usage', 'Tokens and requests per hour', field('By', by), field('Range', range), field('Show', metric)),
      section('Per hour', chartBox, legendBox), section('Totals', totalsBox));
    let doc = null;
    const draw = () => {
      if (!doc) return;
      const series = (doc.series || []).slice().sort((a, b) => sum(b[metric.value]) - sum(a[metric.value]));
      chartBox.replaceChildren(stackedChart(doc.hours || [], series, metric.value, chartBox.clientWidth || 700));
      legendBox.replaceChildren(legend(series, metric.value));
    };
    const load = async () => {
      doc = await api(`/api/usage?hours=${range.value}&by=${encodeURIComponent(by.value)}`);
      if (!alive()) return;
      const t = doc.totals || {};
      totalsBox.replaceChildren(h('div', { class: 'stats' }, stat('requests', fmtInt(t.requests)), stat('errors', fmtInt(t.errors)),
        stat('429s absorbed by failover', fmtInt(t.failovers)), stat('input', fmtNum(t.input)), stat('cached', fmtNum(t.cached)),
        stat('output', fmtNum(t.output)), stat('reasoning', fmtNum(t.reasoning))));
      draw();
    };
    const reload = () => load().catch((e) => flash(e.message));
    by.addEventListener('change', reload);
    range.addEventListener('change', reload);
    metric.addEventListener('change', draw);
    let t = null;
    const onResize = () => { clearTimeout(t); t = setTimeout(draw, 150); };
    window.addEventListener('resize', onResize);
    onLeave(() => window.removeEventListener('resize', onResize));
    await load();
    if (alive()) every(60000, reload);
  }
  const sum = (xs) => (xs || []).reduce((a, b) => a + b, 0);

  // ------------------------------------------------------------------ page: live
  const LIVE_MAX = 200;
  async function pageLive(main, alive) {
    const status = h('span', { class: 'badge mid', role: 'status' }, 'connecting');
    const tbody = h('tbody', {});
    main.append(header('Live', 'Requests as they happen', status),
      h('table', { class: 'grid-table live', testid: 'live-table' },
        h('thead', {}, h('tr', {}, ['Time', 'User', 'Provider', 'Model', 'Account', 'Status', 'Attempts', 'TTFB', 'Duration', 'Tokens in/out'].map((t) => h('th', { scope: 'col' }, t)))),
        tbody));
    const put = (doc, kind) => {
      const old = tbody.querySelector(`tr[data-id="${CSS.escape(String(doc.id))}"]`);
      const row = liveRow(doc, kind);
      if (old) old.replaceWith(row);
      else tbody.prepend(row);
      while (tbody.children.length > LIVE_MAX) tbody.lastElementChild.remove();
    };
    const first = await api('/api/requests?limit=50');
    if (!alive()) return;
    (first.requests || []).slice().reverse().forEach((d) => put(d, 'end'));
    const read = (kind) => (ev) => { try { put(JSON.parse(ev.data), kind); } catch (e) { /* a bad event is skipped */ } };
    const show = (text, cls) => { status.textContent = text; status.className = 'badge ' + cls; };
    let es = null, retry = null;
    onLeave(() => { clearTimeout(retry); if (es) es.close(); });
    const connect = () => {
      es = new EventSource('/api/live');
      es.addEventListener('start', read('start'));
      es.addEventListener('end', read('end'));
      es.onopen = () => show('live', 'ok');
      es.onerror = () => {
        if (es.readyState !== EventSource.CLOSED) return show('reconnecting', 'mid');
        // The browser gave up (e.g. a 401): a plain API call tells us whether to sign in again.
        show('offline', 'bad');
        const recheck = () => refreshSession().then(() => {
          if (!alive()) return;
          if (user()) connect();
          else signedOut();
        }, () => { if (alive()) retry = setTimeout(recheck, 5000); });
        retry = setTimeout(recheck, 5000);
      };
    };
    connect();
  }
  function liveRow(d, kind) {
    const done = kind === 'end';
    const st = done ? String(d.status) : 'pending';
    const cls = !done ? 'pending' : d.status >= 400 ? 'err' : d.attempts > 1 ? 'failover' : '';
    const fails = (d.failures || []).join('; ');
    return h('tr', { testid: 'live-row', 'data-id': d.id, 'data-status': st, class: cls },
      td('Time', fmtClock(d.at)), td('User', d.user || '(local)'), td('Provider', d.provider || '–'), td('Model', d.model || '–'),
      td('Account', done ? d.account || '–' : '…'),
      td('Status', h('span', { class: 'badge ' + (!done ? 'mid' : d.status >= 400 ? 'bad' : 'ok') }, done ? st : 'in flight')),
      td('Attempts', done ? h('span', { title: fails || null }, String(d.attempts || 1), fails ? ' ⚠' : '') : '…'),
      td('TTFB', done ? fmtMs(d.ttfb_ms) : '…'), td('Duration', done ? fmtMs(d.duration_ms) : '…'),
      td('Tokens in/out', done ? fmtNum(d.input) + ' / ' + fmtNum(d.output) : '…'));
  }

  // ------------------------------------------------------------------ page: setup (also used by join)
  function setupBlocks(doc, key) {
    const fill = (t) => (key ? t.split('{{KEY}}').join(key) : t);
    return h('div', { class: 'setup' }, (doc.clients || []).map((c) => h('section', { class: 'panel client', 'data-client': c.client },
      h('h2', {}, c.title || c.client),
      h('ol', { class: 'steps' }, (c.steps || []).map((st) => {
        const text = fill(st.text || '');
        return h('li', {}, h('div', { class: 'step-head' }, h('span', {}, st.label), copyButton(() => text)),
          h('pre', { testid: 'setup-snippet', 'data-kind': st.kind, class: st.kind === 'text' ? 'prose' : null, tabindex: 0 }, h('code', {}, text)));
      })))));
  }
  async function pageSetup(main, alive) {
    const u = user(), sess = state.session || {};
    const note = h('div', { role: 'status', 'aria-live': 'polite' }), blocks = h('div', {});
    main.append(header('Setup', 'Point each CLI at ' + (sess.address || 'this proxy')), note, blocks);
    const doc = await api('/api/setup');
    if (!alive()) return;
    const render = () => {
      blocks.replaceChildren(setupBlocks(doc, state.key));
      note.replaceChildren();
      if (state.key) {
        note.append(h('p', { class: 'info' }, 'Filled in with your key ', h('code', {}, state.key.slice(0, 7) + '…'), ' (kept in this tab only).'));
      } else if (u && u.name) {
        note.append(h('p', { class: 'info' }, 'Your key was shown once; make a new one to fill these in. ',
          h('button', { type: 'button', class: 'primary', testid: 'setup-new-key', onclick: async (ev) => {
            ev.currentTarget.disabled = true;
            try {
              setKey((await post('/api/users/' + encodeURIComponent(u.name) + '/keys')).key);
              render();
            } catch (e) { note.append(errorBox(e)); }
          } }, 'Make a new key')));
      } else if (sess.mode === 'local') {
        note.append(h('p', { class: 'info' }, 'Local mode: the proxy needs no key, so {{KEY}} can stay as any placeholder text.'));
      } else {
        note.append(h('p', { class: 'info' }, 'Replace {{KEY}} with a pool key: issue one to a user on the Users page.'));
      }
    };
    render();
  }

  // ------------------------------------------------------------------ page: join
  async function pageJoin(main) {
    const sess = state.session || {};
    const code = h('input', { testid: 'join-code', type: 'password', autocomplete: 'off', required: true });
    const name = h('input', { testid: 'join-name', type: 'text', autocomplete: 'nickname', required: true, maxlength: 40 });
    const err = h('p', { class: 'error', testid: 'join-error', role: 'alert', 'aria-live': 'assertive' });
    const submit = h('button', { type: 'submit', class: 'primary', testid: 'join-submit' }, 'Join');
    const form = h('form', { class: 'panel narrow', onsubmit: async (ev) => {
      ev.preventDefault();
      err.textContent = '';
      submit.disabled = true;
      try {
        const doc = await post('/api/join', { code: code.value.trim(), name: name.value.trim() }, { quiet401: true });
        setKey(doc.key);
        await refreshSession().catch(() => { state.session = { ...sess, user: doc.user }; });
        renderNav('join');
        main.replaceChildren(header('Welcome, ' + doc.user.name, 'Your personal key and the setup for each CLI'),
          section('Your key', keyBox(doc.key, 'join-key')), setupBlocks(doc.setup || { clients: [] }, doc.key));
      } catch (e) {
        err.textContent = joinMessage(e);
        submit.disabled = false;
      }
    } },
    h('h2', {}, 'Join ' + (sess.friend_name || 'this pool')),
    h('p', { class: 'muted' }, 'Enter the friend code you were given and pick a name. You get a personal key and setup steps for each CLI.'),
    field('Friend code', code), field('Your name', name), submit, err,
    h('p', { class: 'small' }, 'Already have a key or the admin password? ', h('a', { href: '#/login' }, 'Sign in')));
    main.append(form);
    code.focus();
  }
  function joinMessage(e) {
    if (e.status === 401) return 'That friend code is not right.';
    if (e.status === 409) return 'That name is taken: pick another.';
    if (e.status === 404) return 'Joining is closed on this pool.';
    if (e.status === 429) return 'Too many tries. Wait ' + (e.retryAfter ? fmtDur(e.retryAfter) : 'a minute') + ' and try again.';
    return e.message;
  }

  // ------------------------------------------------------------------ page: login
  async function pageLogin(main) {
    const sess = state.session || {};
    const pw = h('input', { testid: 'login-password', type: 'password', autocomplete: 'current-password' });
    const key = h('input', { testid: 'login-key', type: 'password', autocomplete: 'off', placeholder: 'tp-…', spellcheck: 'false' });
    const err = h('p', { class: 'error', testid: 'login-error', role: 'alert', 'aria-live': 'assertive' });
    const submit = h('button', { type: 'submit', class: 'primary', testid: 'login-submit' }, 'Sign in');
    const form = h('form', { class: 'panel narrow', onsubmit: async (ev) => {
      ev.preventDefault();
      err.textContent = '';
      const k = key.value.trim(), p = pw.value;
      if (!k && !p) { err.textContent = 'Enter the admin password or your pool key.'; return; }
      submit.disabled = true;
      try {
        state.session = await post('/api/session', k ? { key: k } : { password: p }, { quiet401: true });
        setKey(k || null);
        location.hash = '#/overview';
      } catch (e) {
        err.textContent = e.status === 401 ? (k ? 'That key is not valid.' : 'Wrong password.')
          : e.status === 429 ? 'Too many tries. Wait ' + (e.retryAfter ? fmtDur(e.retryAfter) : 'a minute') + '.' : e.message;
        submit.disabled = false;
      }
    } },
    h('h2', {}, 'Sign in'),
    user() ? h('p', { class: 'info' }, 'You are signed in as ' + (user().name || 'local admin') + '; signing in again switches.') : null,
    field('Admin password', pw), h('p', { class: 'or muted' }, 'or'), field('Your pool key', key), submit, err,
    sess.join && !user() ? h('p', { class: 'small' }, 'Got a friend code? ', h('a', { href: '#/join' }, 'Join')) : null);
    main.append(form);
    (sess.password_set === false && sess.mode === 'shared' ? key : pw).focus();
  }

  // ------------------------------------------------------------------ page: try it
  async function pageTry(main) {
    const provider = h('select', { testid: 'try-provider' }, ['claude', 'codex', 'gemini'].map((p) => h('option', { value: p }, p)));
    const prompt = h('textarea', { testid: 'try-prompt', rows: 4, maxlength: 2000, required: true }, 'Say hello in five words.');
    const submit = h('button', { type: 'submit', class: 'primary', testid: 'try-submit' }, 'Send');
    const result = h('div', { testid: 'try-result', class: 'result', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Nothing sent yet.'));
    // Claude Code signs its requests (a billing block we cannot reproduce); without it a
    // subscription may be refused for most models or billed as extra usage (real-services.md).
    const note = h('p', { class: 'muted', testid: 'try-note' },
      'Claude is asked with a Haiku model: without the signature Claude Code puts on its own requests, ' +
      'Anthropic may refuse other models for a subscription or bill them as extra usage. ' +
      'Haiku has been let through so far, but Anthropic does not promise it.');
    main.append(header('Try it', 'Send a short prompt through the pool and see which account answered'),
      note,
      h('form', { class: 'panel', onsubmit: async (ev) => {
        ev.preventDefault();
        submit.disabled = true;
        result.replaceChildren(h('p', { class: 'muted' }, 'Sending…'));
        try {
          const r = await post('/api/try', { provider: provider.value, prompt: prompt.value.slice(0, 2000) });
          result.replaceChildren(h('dl', { class: 'facts wide' },
            h('dt', {}, 'account'), h('dd', {}, h('strong', { testid: 'try-account' }, r.account || '(none)')),
            h('dt', {}, 'status'), h('dd', {}, h('span', { class: 'badge ' + (r.status < 400 ? 'ok' : 'bad'), testid: 'try-status' }, String(r.status))),
            h('dt', {}, 'model'), h('dd', {}, r.model || '–'), h('dt', {}, 'time'), h('dd', {}, fmtMs(r.ms))),
          h('pre', { class: 'answer', testid: 'try-text' }, r.text || '(empty answer)'));
        } catch (e) {
          result.replaceChildren(errorBox(e));
        }
        submit.disabled = false;
      } }, field('Provider', provider), field('Prompt', prompt), submit),
      section('Answer', result));
  }

  // ------------------------------------------------------------------ page: users (admin)
  async function pageUsers(main, alive) {
    const list = h('div', {}), fresh = h('div', { 'aria-live': 'polite' });
    const limitInputs = (l = {}) => ({
      rpm: h('input', { type: 'number', min: 0, step: 1, value: l.rpm ?? '', placeholder: 'no limit', class: 'num' }),
      streams: h('input', { type: 'number', min: 0, step: 1, value: l.streams ?? '', placeholder: 'no limit', class: 'num' }),
      share_pct: h('input', { type: 'number', min: 0, max: 100, step: 'any', value: l.share_pct ?? '', placeholder: 'no limit', class: 'num' }),
    });
    const readLimits = (ins) => ({ rpm: intOrNull(ins.rpm.value), streams: intOrNull(ins.streams.value), share_pct: ins.share_pct.value === '' ? null : Number(ins.share_pct.value) });
    const showKey = (who, key) => fresh.replaceChildren(section('New key for ' + who, keyBox(key, 'user-new-key')));
    const guard = (fn) => async (ev) => {
      const b = ev.currentTarget;
      b.disabled = true;
      try { await fn(); } catch (e) { flash(e.message); }
      b.disabled = false;
    };
    const load = async () => {
      const doc = await api('/api/users');
      if (!alive()) return;
      const users = doc.users || [];
      list.replaceChildren(users.length ? h('table', { class: 'grid-table' },
        h('thead', {}, h('tr', {}, ['User', 'Limits (rpm · streams · share %)', 'Keys', 'Last 24 h', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, users.map((u) => {
          const ins = limitInputs(u.limits || {});
          const enc = encodeURIComponent(u.name);
          return h('tr', { testid: 'user-row', 'data-user': u.name },
            td('User', h('strong', {}, u.name), h('div', { class: 'muted small' }, 'since ' + fmtWhen(u.created_at))),
            td('Limits', h('div', { class: 'limits' }, field('rpm', ins.rpm), field('streams', ins.streams), field('share %', ins.share_pct),
              h('button', { type: 'button', testid: 'user-save-limits', onclick: guard(async () => { await api('/api/users/' + enc, { method: 'PATCH', body: { limits: readLimits(ins) } }); await load(); }) }, 'Save'))),
            td('Keys', h('ul', { class: 'keys' }, (u.keys || []).map((k) => h('li', { class: k.revoked ? 'revoked' : '' },
              h('code', {}, k.prefix), ' ', h('span', { class: 'muted small' }, k.revoked ? 'revoked' : 'used ' + fmtAgo(k.last_used_at)),
              k.revoked ? null : h('button', { type: 'button', class: 'small', testid: 'key-revoke', 'data-key': k.id,
                onclick: guard(async () => { await api('/api/keys/' + encodeURIComponent(k.id), { method: 'DELETE' }); await load(); }) }, 'Revoke'))))),
            td('Last 24 h', fmtInt(u.requests_24h) + ' req', h('div', { class: 'muted small' }, fmtNum(u.tokens_24h) + ' tokens')),
            td('Actions', h('div', { class: 'actions' },
              h('button', { type: 'button', testid: 'user-issue-key', onclick: guard(async () => { showKey(u.name, (await post('/api/users/' + enc + '/keys')).key); await load(); }) }, 'New key'),
              h('button', { type: 'button', class: 'danger', testid: 'user-remove', onclick: guard(async () => {
                if (!window.confirm(`Remove ${u.name} and revoke their keys?`)) return;
                await api('/api/users/' + enc, { method: 'DELETE' });
                await load();
              }) }, 'Remove'))));
        }))) : h('p', { class: 'empty' }, 'No users yet. Add one below, or share the friend code.'));
    };
    const name = h('input', { testid: 'user-add-name', type: 'text', required: true, maxlength: 40, autocomplete: 'off' });
    const addIns = limitInputs();
    const addErr = h('p', { class: 'error', role: 'alert', 'aria-live': 'assertive' });
    const addForm = h('form', { class: 'inline-form', onsubmit: async (ev) => {
      ev.preventDefault();
      addErr.textContent = '';
      try {
        const doc = await post('/api/users', { name: name.value.trim(), limits: readLimits(addIns) });
        showKey(doc.user.name, doc.key);
        name.value = '';
        await load();
      } catch (e) { addErr.textContent = e.status === 409 ? 'That name is taken.' : e.message; }
    } }, field('Name', name), field('rpm', addIns.rpm), field('streams', addIns.streams), field('share %', addIns.share_pct),
    h('button', { type: 'submit', class: 'primary', testid: 'user-add-submit' }, 'Add user'), addErr);
    main.append(header('Users', 'People who may use the pool, their keys and limits'), fresh, section('All users', list), section('Add a user', addForm), passwordForm());
    await load();
  }
  const intOrNull = (v) => (v === '' ? null : Math.max(0, Math.round(Number(v))));
  function passwordForm() {
    const sess = state.session || {};
    const cur = h('input', { type: 'password', autocomplete: 'current-password', testid: 'password-current' });
    const pw = h('input', { type: 'password', autocomplete: 'new-password', minlength: 8, required: true, testid: 'password-new' });
    const msg = h('p', { role: 'status', 'aria-live': 'polite' });
    return section(sess.password_set ? 'Change the admin password' : 'Set an admin password',
      h('form', { class: 'inline-form', onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          await post('/api/password', cur.value ? { password: pw.value, current: cur.value } : { password: pw.value }, { quiet401: true });
          msg.className = 'info';
          msg.textContent = 'Password saved.';
          pw.value = cur.value = '';
          await refreshSession();
        } catch (e) { msg.className = 'error'; msg.textContent = e.status === 401 ? 'The current password is wrong.' : e.message; }
      } }, sess.password_set ? field('Current', cur) : null, field('New password', pw), h('button', { type: 'submit' }, 'Save'), msg));
  }

  // ------------------------------------------------------------------ boot
  const THEME_SLOT = 'trio-pool.theme';
  function applyTheme(theme) {
    if (theme) document.documentElement.dataset.theme = theme;
    else delete document.documentElement.dataset.theme;
    const dark = theme ? theme === 'dark' : matchMedia('(prefers-color-scheme: dark)').matches;
    $('#theme-toggle').setAttribute('aria-label', dark ? 'Switch to light theme' : 'Switch to dark theme');
    $('#theme-toggle').dataset.theme = dark ? 'dark' : 'light';
  }
  async function boot() {
    let saved = null;
    try { saved = localStorage.getItem(THEME_SLOT); } catch (e) { saved = null; }
    applyTheme(saved === 'dark' || saved === 'light' ? saved : null);
    $('#theme-toggle').addEventListener('click', () => {
      const next = $('#theme-toggle').dataset.theme === 'dark' ? 'light' : 'dark';
      try { localStorage.setItem(THEME_SLOT, next); } catch (e) { /* not persisted */ }
      applyTheme(next);
    });
    $('#nav-logout').addEventListener('click', async () => {
      try { state.session = await api('/api/session', { method: 'DELETE', quiet401: true }); } catch (e) { flash(e.message); }
      setKey(null);
      await refreshSession().catch(() => {});
      if (location.hash === '#/login') route();
      else location.hash = '#/login';
    });
    setInterval(tick, 1000);
    try {
      await refreshSession();
    } catch (e) {
      $('#main').replaceChildren(errorBox(e));
      return;
    }
    window.addEventListener('hashchange', route);
    route();
  }
  document.addEventListener('DOMContentLoaded', boot);
})();
