/* The campaigns page. Vanilla JS, no build step, nothing from elsewhere.
 *
 * Talks to web/campaigns.py's JSON API with `Authorization: Bearer <token>` (the same
 * token key as the desk: logging in on one page logs this tab in on both). The list is
 * polled every 2 s, the open campaign's progress every second, its statistics and
 * chart every 5 s. Names and everything else from the server go in with textContent;
 * the one exception is the chart, an SVG the server draws from numbers only.
 */
'use strict';
(() => {
  const API = new URL('../../api/campaigns', document.currentScript.src).pathname;
  const TOKEN_KEY = 'desk-token';
  const LIST_MS = 2000, PROGRESS_MS = 1000, STATS_MS = 5000, PREVIEW_DELAY_MS = 300;
  const REASONS = {
    no_consent: 'never opted in', opted_out: 'opted out', suppressed: 'on the suppression list',
    marketing_backoff: "Meta's per-user marketing cap (24 h)", us_number: 'US number (no marketing there)',
    stopped_all: 'sent STOPALL', no_address: 'no number or user id', 'no approved template': 'no approved template',
  };
  const $ = (id) => document.getElementById(id);
  const state = {
    token: null, templates: [], selected: null, generation: 0, timers: [], previewTimer: null, previewSeq: 0,
    lastStatsAt: 0,
  };

  class ApiError extends Error {
    constructor(status, data) {
      super((data && typeof data.error === 'string' && data.error) || `The server answered ${status}`);
      this.status = status;
    }
  }

  async function api(path, options = {}) {
    const init = { method: options.method || 'GET', headers: { Authorization: `Bearer ${options.token || state.token}` }, cache: 'no-store' };
    if (options.body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(options.body);
    }
    const response = await fetch(API + path, init);
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  const { h } = window.shopDom;  // web/static/common/dom.js

  function showError(message) {
    $('error-text').textContent = message;
    $('error').hidden = false;
  }

  function percent(rate) { return rate === null || rate === undefined ? '–' : `${(rate * 100).toFixed(1)} %`; }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return '–';
    if (seconds < 60) return `${Math.round(seconds)} s`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  // ------------------------------------------------------------------ login

  async function logIn(token) {
    try {
      const data = await api('', { token });
      state.token = token;
      sessionStorage.setItem(TOKEN_KEY, token);
      $('user-name').textContent = data.user.name;
      $('user-role').textContent = `(${data.user.role})`;
      $('login-screen').hidden = true;
      $('app').hidden = false;
      renderList(data.campaigns);
      loadTemplates();
      loop(listLoop, LIST_MS);
      loop(detailLoop, PROGRESS_MS);
    } catch (error) {
      sessionStorage.removeItem(TOKEN_KEY);
      const message = error.status === 401 ? 'This token is not valid.'
        : error.status === 403 ? `${error.message}. Ask an admin for the marketing role.` : error.message;
      $('login-error').textContent = message;
      $('login-error').hidden = false;
      $('login-screen').hidden = false;
      $('app').hidden = true;
    }
  }

  function loop(fn, every) {
    const run = async () => {
      try { await fn(); } catch (error) {
        if (error.status === 401 || error.status === 403) { logOut(); return; }
        showError(error.message);
      }
      state.timers.push(setTimeout(run, every));
    };
    state.timers.push(setTimeout(run, every));
  }

  function logOut() {
    state.timers.forEach(clearTimeout);
    state.timers = [];
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $('app').hidden = true;
    $('login-screen').hidden = false;
  }

  // ------------------------------------------------------------------ the list

  async function listLoop() {
    const data = await api('');
    renderList(data.campaigns);
  }

  /** The list, updated in place: a campaign keeps its row while its counters change every
   *  poll, so a click on it is never lost to a row rebuilt between press and release. */
  function renderList(campaigns) {
    const body = $('campaign-rows');
    const existing = new Map([...body.children].map((row) => [row.dataset.name, row]));
    const rows = campaigns.map((c) => {
      const row = existing.get(c.name) || newRow(c.name);
      row.classList.toggle('selected', c.name === state.selected);
      const [, stateCell, sent, delivered, read, failed] = row.children;
      stateCell.className = `state ${c.state}`;
      stateCell.textContent = c.state;
      [[sent, c.sent], [delivered, c.delivered], [read, c.read], [failed, c.failed]].forEach(([cell, value]) => {
        cell.textContent = String(value);
      });
      return row;
    });
    if (rows.length !== body.children.length || rows.some((row, i) => body.children[i] !== row)) body.replaceChildren(...rows);
    $('no-campaigns').hidden = campaigns.length > 0;
  }

  function newRow(name) {
    return h('tr', {
      testid: 'campaign-row', 'data-name': name, tabindex: 0,
      onclick: () => select(name), onkeydown: (e) => { if (e.key === 'Enter') select(name); },
    },
      h('td', { text: name }), h('td', { testid: 'row-state' }),
      h('td', { class: 'num' }), h('td', { class: 'num' }), h('td', { class: 'num' }), h('td', { class: 'num' }));
  }

  // ------------------------------------------------------------------ a new campaign

  async function loadTemplates() {
    const data = await api('/templates');
    state.templates = data.templates;
    const select = $('template-select');
    select.replaceChildren(...data.templates.map((t) => h('option', { value: t.name, text: `${t.name} (${t.category})` })));
    if (!data.templates.length) select.append(h('option', { value: '', text: 'No approved templates: run templates sync' }));
    renderParams();
  }

  function template() { return state.templates.find((t) => t.name === $('template-select').value); }

  function renderParams() {
    const chosen = template();
    $('template-body').textContent = chosen ? chosen.body + (chosen.buttons.length ? `\n[${chosen.buttons.join('] [')}]` : '') : '';
    const inputs = [];
    for (let i = 1; chosen && i <= chosen.body_parameters; i += 1) {
      const example = chosen.examples[i - 1] || '';
      inputs.push(h('label', { class: 'param', for: `param-${i}` }, `{{${i}}}`,
        h('input', { id: `param-${i}`, testid: `param-${i}`, value: i === 1 ? '{first_name|there}' : '',
                     placeholder: example ? `e.g. ${example}` : 'fixed text or {profile_name|fallback}', oninput: schedulePreview })));
    }
    $('params').replaceChildren(...inputs);
    if (!inputs.length) $('params').append(h('span', { class: 'muted', text: 'none' }));
    schedulePreview();
  }

  function form() {
    const params = {};
    document.querySelectorAll('#params input').forEach((input, i) => { params[String(i + 1)] = input.value; });
    const days = $('days-input').value.trim();
    return {
      name: $('campaign-name').value.trim(), template: $('template-select').value, params,
      labels: $('labels-input').value, exclude_labels: $('exclude-input').value, match_all: $('match-all').checked,
      wrote_within_days: days === '' ? null : days,
    };
  }

  function schedulePreview() {
    clearTimeout(state.previewTimer);
    $('preview-state').textContent = '(updating…)';
    state.previewTimer = setTimeout(preview, PREVIEW_DELAY_MS);
  }

  async function preview() {
    const seq = ++state.previewSeq;
    try {
      const data = await api('/preview', { method: 'POST', body: form() });
      if (seq !== state.previewSeq) return;  // a newer form state is on its way
      $('preview-error').hidden = true;
      $('preview-size').textContent = data.size;
      $('preview-cost').textContent = Object.entries(data.estimated_cost).map(([cur, v]) => `${v} ${cur}`).join(', ');
      $('preview-excluded').replaceChildren(...Object.entries(data.excluded).map(([reason, n]) =>
        h('li', { testid: 'excluded-reason', 'data-reason': reason }, `${n} left out: ${REASONS[reason] || reason}`)));
      $('preview-sample').replaceChildren(...data.sample.map((s) =>
        h('li', { testid: 'sample' }, h('span', { class: 'name', text: s.name || '(no name)' }), ' ', h('span', { class: 'muted', text: s.masked }))));
      $('preview-state').textContent = '';
    } catch (error) {
      if (seq !== state.previewSeq) return;
      $('preview-error').textContent = error.message;
      $('preview-error').hidden = false;
      $('preview-state').textContent = '';
      $('preview-size').textContent = '–';
      $('preview-cost').textContent = '–';
    }
  }

  function openCreate() {
    state.selected = null;
    $('detail').hidden = true;
    $('nothing').hidden = true;
    $('create-form').hidden = false;
    $('campaign-name').focus();
    schedulePreview();
  }

  async function create(event) {
    event.preventDefault();
    try {
      const made = await api('', { method: 'POST', body: form() });
      $('create-form').hidden = true;
      $('create-form').reset();
      renderParams();
      await listLoop();
      select(made.name);
    } catch (error) {
      $('preview-error').textContent = error.message;
      $('preview-error').hidden = false;
    }
  }

  // ------------------------------------------------------------------ one campaign

  function select(name) {
    state.selected = name;
    state.generation += 1;
    state.lastStatsAt = 0;
    $('create-form').hidden = true;
    $('nothing').hidden = true;
    $('detail').hidden = false;
    $('detail-name').textContent = name;
    $('chart').replaceChildren();
    $('counters').replaceChildren();
    document.querySelectorAll('#campaign-rows tr').forEach((tr) => tr.classList.toggle('selected', tr.dataset.name === name));
    detailLoop().catch((error) => showError(error.message));
  }

  async function detailLoop() {
    const name = state.selected;
    if (!name) return;
    const generation = state.generation;
    const progress = await api(`/progress?name=${encodeURIComponent(name)}`);
    if (generation !== state.generation) return;
    renderProgress(progress);
    if (Date.now() - state.lastStatsAt >= STATS_MS) {
      state.lastStatsAt = Date.now();
      const stats = await api(`/stats?name=${encodeURIComponent(name)}`);
      if (generation !== state.generation) return;
      renderStats(stats);
    }
  }

  function renderProgress(p) {
    $('detail-template').textContent = `${p.template} (${p.category})`;
    $('detail-state').textContent = p.state;
    $('detail-state').className = `state ${p.state}`;
    $('detail-reason').textContent = p.reason ? `: ${p.reason}` : '';
    const share = p.total ? Math.round((p.finished / p.total) * 100) : 0;
    $('progress-fill').style.width = `${share}%`;
    $('progress-bar').setAttribute('aria-valuenow', String(share));
    $('progress-bar').classList.toggle('running', p.state === 'running');
    $('progress-text').textContent = p.total
      ? `${p.finished} / ${p.total} done (${share} %) · sent ${p.states.sent || 0}` + (p.states.failed ? ` · failed ${p.states.failed}` : '')
        + (p.states.skipped ? ` · skipped ${p.states.skipped}` : '') + (p.states.unknown ? ` · unknown ${p.states.unknown}` : '')
      : (p.state === 'draft' || p.state === 'scheduled' ? 'Not started: Start queues one message per recipient.' : 'No recipients.');
    const can = { start: ['draft', 'scheduled'], pause: ['running', 'scheduled'], resume: ['paused'], cancel: ['draft', 'scheduled', 'running', 'paused'] };
    document.querySelectorAll('#detail [data-action]').forEach((button) => { button.hidden = !can[button.dataset.action].includes(p.state); });
  }

  function renderStats(data) {
    const s = data.stats;
    const items = [
      ['audience', 'Audience', s.audience], ['sent', 'Sent', s.sent], ['delivered', 'Delivered', `${s.delivered} (${percent(s.delivery_rate)})`],
      ['read', 'Read', `${s.read} (${percent(s.read_rate)})`], ['failed', 'Failed', s.failed], ['replied', 'Replied ≤ 72 h', s.replied],
      ['opted_out', 'Opted out ≤ 72 h', s.opted_out], ['median', 'Median time to read', duration(s.median_seconds_to_read)],
      ['cost', 'Cost so far', `${s.cost} ${s.currency}`],
    ];
    for (const tap of s.taps) items.push([`tap`, `Tapped “${tap.button}”`, tap.count]);
    $('counters').replaceChildren(...items.map(([key, label, value]) =>
      h('div', { class: 'counter', testid: `counter-${key}` }, h('dt', { text: label }), h('dd', { text: value }))));
    $('failures').replaceChildren(...s.failures.map((f) => h('p', { class: 'failure', testid: 'failure' }, `${f.count} × ${f.code}: ${f.title}`)));
    // The server draws the SVG from numbers (web/chart.py); parsed as SVG, not as HTML.
    const svg = new DOMParser().parseFromString(data.chart_svg, 'image/svg+xml').documentElement;
    $('chart').replaceChildren(document.importNode(svg, true));
  }

  async function act(action) {
    try {
      await api(`/${action}`, { method: 'POST', body: { name: state.selected } });
      state.lastStatsAt = 0;
      await detailLoop();
      await listLoop();
    } catch (error) { showError(error.message); }
  }

  // ------------------------------------------------------------------ wiring

  $('login-form').addEventListener('submit', (e) => { e.preventDefault(); logIn($('token-input').value.trim()); });
  $('logout').addEventListener('click', logOut);
  $('error-close').addEventListener('click', () => { $('error').hidden = true; });
  $('new-campaign').addEventListener('click', openCreate);
  $('create-cancel').addEventListener('click', () => { $('create-form').hidden = true; $('nothing').hidden = !!state.selected; });
  $('create-form').addEventListener('submit', create);
  $('template-select').addEventListener('change', renderParams);
  for (const id of ['labels-input', 'exclude-input', 'days-input']) $(id).addEventListener('input', schedulePreview);
  $('match-all').addEventListener('change', schedulePreview);
  document.querySelectorAll('#detail [data-action]').forEach((b) => b.addEventListener('click', () => act(b.dataset.action)));
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) logIn(saved);
})();
