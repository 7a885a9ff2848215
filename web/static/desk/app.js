/* Agent desk page. Vanilla JS, no build step, no network beyond the Rasa server.
 *
 * Talks to the desk's JSON API (connectors/desk.py) with `Authorization: Bearer <token>`.
 * The token is kept in sessionStorage (this tab only). The queue and the open chat are
 * polled every ~2 s and re-rendered only when they changed.
 * Customer, bot and agent text is untrusted: it is always inserted with textContent,
 * never innerHTML.
 */
'use strict';
(() => {
  // This script is served at <desk>/static/app.js; the API is at <desk>/api.
  const API = new URL('../api', document.currentScript.src).pathname;
  const TOKEN_KEY = 'desk-token';
  const POLL_MS = 2000;
  const WINDOW_SECONDS = 24 * 60 * 60;
  const $ = (id) => document.getElementById(id);

  const state = {
    token: null,
    me: null,
    quickReplies: [],
    templates: [],
    running: false,
    chatsTimer: null,
    chatTimer: null,
    chats: [],
    chatsKey: null,
    chatsFetchedAt: 0,
    selected: null,        // contact_id of the open chat
    generation: 0,         // bumped when the open chat changes: stale answers are ignored
    chat: null,            // last /chats/<contact_id> answer
    chatKey: null,
    historyKeys: [],       // one key per rendered history entry
    historyRendered: false,
    refusedAt: undefined,  // last_message_at when a reply was refused as outside the 24-hour window
    chatsLoop: 0,          // only the latest poll of each kind schedules the next one
    chatLoop: 0,
    failures: 0,
    mediaUrls: new Map(),  // media id -> blob URL
  };

  class ApiError extends Error {
    constructor(status, data) {
      super((data && typeof data.error === 'string' && data.error) || `The server answered ${status}`);
      this.status = status;
      this.data = data || {};
    }
  }

  // ------------------------------------------------------------------ DOM helpers

  const { h } = window.shopDom;  // web/static/common/dom.js

  function show(el, visible) { el.hidden = !visible; }

  // ------------------------------------------------------------------ API

  async function api(path, options = {}) {
    const init = { method: options.method || 'GET', headers: { Authorization: `Bearer ${options.token || state.token}` }, cache: 'no-store' };
    if (options.body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(options.body);
    }
    const response = await fetch(API + path, init);  // a network error throws TypeError
    let data = null;
    try { data = await response.json(); } catch (_) { /* no JSON body */ }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  const chatPath = (contactId) => `/chats/${encodeURIComponent(contactId)}`;

  /** A 401 anywhere means the token is no longer good: back to the login screen. */
  function handleAuth(error) {
    if (error instanceof ApiError && error.status === 401) {
      logout('Your token is not valid (any more). Log in again.');
      return true;
    }
    return false;
  }

  // ------------------------------------------------------------------ formatting

  function duration(seconds) {
    const minutes = Math.floor(Math.max(0, seconds) / 60);
    if (minutes < 1) return 'less than a minute';
    if (minutes < 60) return `${minutes} min`;
    const hours = Math.floor(minutes / 60);
    if (hours < 24) return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
    const days = Math.floor(hours / 24);
    return hours % 24 ? `${days} d ${hours % 24} h` : `${days} d`;
  }

  function clock(epochSeconds, withDate) {
    const date = new Date(epochSeconds * 1000);
    const time = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    const today = new Date().toDateString() === date.toDateString();
    if (!withDate && today) return time;
    return `${date.toLocaleDateString([], { day: 'numeric', month: 'short' })} ${time}`;
  }

  // Customers are addressed by contact id; the phone number is shown when known (customers
  // with a WhatsApp username may have none), the username otherwise.
  const contactLine = (chat) => [chat.phone ? `+${chat.phone}` : '', chat.username ? `@${chat.username}` : '']
    .filter(Boolean).join(' · ') || 'no phone number';
  const displayName = (chat) => chat.name || (chat.username ? `@${chat.username}` : '') || (chat.phone ? `+${chat.phone}` : chat.contact_id);

  function statusText(chat) {
    if (!chat.agent) return 'queued';
    return chat.agent === state.me.name ? 'claimed by you' : `claimed by ${chat.agent}`;
  }

  // ------------------------------------------------------------------ login / logout

  async function login(token, fromStorage) {
    const error = $('login-error');
    show(error, false);
    let me;
    try {
      me = await api('/me', { token });
    } catch (e) {
      if (fromStorage) sessionStorage.removeItem(TOKEN_KEY);
      error.textContent = e instanceof ApiError && e.status === 401
        ? 'That token is not valid. Check it and try again.'
        : `Could not reach the desk: ${e.message}`;
      show(error, true);
      showLogin();
      return;
    }
    state.token = token;
    state.me = me;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token-input').value = '';
    $('agent-name').textContent = me.name;
    const labels = me.labels.includes('*') ? 'all labels' : me.labels.join(', ');
    $('agent-labels').textContent = labels ? `· ${labels}` : '';
    show($('login-screen'), false);
    show($('desk'), true);
    closeChat();
    setConnection('connecting');
    state.running = true;
    loadQuickReplies();
    pollChats();
  }

  function showLogin() {
    show($('desk'), false);
    show($('login-screen'), true);
    $('token-input').focus();
  }

  function logout(message) {
    state.running = false;
    clearTimeout(state.chatsTimer);
    clearTimeout(state.chatTimer);
    state.token = null;
    state.me = null;
    state.chats = [];
    state.chatsKey = null;
    closeChat();
    renderQueue();
    for (const url of state.mediaUrls.values()) URL.revokeObjectURL(url);
    state.mediaUrls.clear();
    sessionStorage.removeItem(TOKEN_KEY);
    hideError();
    const error = $('login-error');
    error.textContent = message || '';
    show(error, Boolean(message));
    document.title = 'Agent desk';
    showLogin();
  }

  // ------------------------------------------------------------------ banner & connection

  function showError(message) {
    $('error-text').textContent = message;
    show($('error'), true);
  }

  function hideError() { show($('error'), false); }

  function setConnection(status) {
    const el = $('connection');
    el.dataset.state = status;
    el.textContent = { live: 'Live', connecting: 'Connecting…', offline: 'Connection lost, retrying…' }[status];
  }

  function networkResult(ok) {
    if (ok) {
      state.failures = 0;
      setConnection('live');
    } else {
      state.failures += 1;
      setConnection('offline');
    }
  }

  // ------------------------------------------------------------------ quick replies & templates

  async function loadQuickReplies() {
    try {
      const data = await api('/quick-replies');
      state.quickReplies = data.quick_replies || [];
      setTemplates(data.templates || []);
      renderQuickReplies(state.chat ? state.chat.chat.language : null);
    } catch (e) {
      if (!handleAuth(e)) showError(`Could not load the quick replies: ${e.message}`);
    }
  }

  // Quick replies and templates in the customer's language come first (a reply without a
  // language fits every chat); the others follow, marked with their language.
  const languageOf = (item) => String(item.language || '').split('_')[0].toLowerCase();

  function renderQuickReplies(language) {
    const select = $('quick-replies');
    const order = state.quickReplies.map((reply, index) => ({ reply, index }))
      .sort((a, b) => Number(languageOf(b.reply) === language || !languageOf(b.reply)) - Number(languageOf(a.reply) === language || !languageOf(a.reply)));
    select.replaceChildren(h('option', { value: '', text: 'Quick replies…' }), ...order.map(({ reply, index }) => {
      const own = !languageOf(reply) || languageOf(reply) === language;
      return h('option', { value: String(index), text: (reply.title || reply.text) + (own ? '' : ` (${languageOf(reply)})`) });
    }));
  }

  function templateFor(name) {
    const language = state.chat ? state.chat.chat.language : null;
    const named = state.templates.filter((t) => t.name === name);
    return named.find((t) => languageOf(t) === language) || named.find((t) => languageOf(t) === (state.me && state.me.default_language)) || named[0];
  }

  function setTemplates(templates) {
    state.templates = templates;
    const select = $('templates');
    const previous = select.value;
    const names = [...new Set(templates.map((t) => t.name))];
    select.replaceChildren(...names.map((name) => h('option', { value: name, text: name })));
    if (names.includes(previous)) select.value = previous;
    renderTemplatePreview();
  }

  function renderTemplatePreview() {
    const chosen = templateFor($('templates').value);
    $('template-preview').textContent = chosen ? chosen.text || '' : 'No approved templates are configured.';
    $('send-template').disabled = !chosen;
  }

  function insertIntoReply(text) {
    const input = $('reply-input');
    const start = input.selectionStart ?? input.value.length;
    const end = input.selectionEnd ?? input.value.length;
    input.value = input.value.slice(0, start) + text + input.value.slice(end);
    const caret = start + text.length;
    input.focus();
    input.setSelectionRange(caret, caret);
  }

  // ------------------------------------------------------------------ queue

  async function pollChats() {
    clearTimeout(state.chatsTimer);
    const loop = ++state.chatsLoop;
    if (!state.running) return;
    try {
      const data = await api('/chats');
      if (!state.running || loop !== state.chatsLoop) return;
      networkResult(true);
      state.chats = data.chats || [];
      state.chatsFetchedAt = Date.now();
      const key = JSON.stringify(state.chats.map(({ waiting_seconds, ...rest }) => rest));
      if (key !== state.chatsKey) {
        state.chatsKey = key;
        renderQueue();
      }
      updateWaiting();
    } catch (e) {
      if (loop !== state.chatsLoop || handleAuth(e)) return;
      networkResult(false);
    }
    if (state.running && loop === state.chatsLoop) state.chatsTimer = setTimeout(pollChats, POLL_MS);
  }

  function renderQueue() {
    const queue = $('queue');
    const chats = state.chats;
    $('queue-count').textContent = String(chats.length);
    document.title = chats.length ? `(${chats.length}) Agent desk` : 'Agent desk';
    if (!chats.length) {
      queue.replaceChildren(h('p', { class: 'empty muted', testid: 'queue-empty', text: 'No chats are waiting. New ones appear here by themselves.' }));
      return;
    }
    const byLabel = new Map();
    for (const chat of chats) {
      if (!byLabel.has(chat.label)) byLabel.set(chat.label, []);
      byLabel.get(chat.label).push(chat);
    }
    const groups = [...byLabel.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([label, list]) =>
      h('section', { class: 'queue-group', testid: 'queue-group', 'data-label': label },
        h('h3', {}, h('span', { class: 'label-chip', text: label }), h('span', { class: 'count', text: String(list.length) })),
        h('ul', {}, list.map(queueItem))));
    queue.replaceChildren(...groups);
  }

  function queueItem(chat) {
    const mine = chat.agent && chat.agent === state.me.name;
    const button = h('button', {
      type: 'button',
      class: `queue-item${chat.contact_id === state.selected ? ' selected' : ''}${mine ? ' mine' : ''}`,
      testid: 'queue-item',
      'data-contact-id': chat.contact_id,
      'aria-current': chat.contact_id === state.selected ? 'true' : null,
      onclick: () => openChat(chat.contact_id),
    },
      h('span', { class: 'avatar', 'aria-hidden': 'true', text: (chat.name || '#').trim().charAt(0).toUpperCase() || '#' }),
      h('span', { class: 'item-main' },
        h('span', { class: 'item-top' },
          h('span', { class: 'item-name', testid: 'queue-name', text: displayName(chat) }),
          h('span', { class: 'item-waiting', testid: 'waiting' })),
        h('span', { class: 'item-bottom muted' },
          h('span', { class: 'item-number', text: contactLine(chat) }),
          h('span', { class: `item-status status-${chat.agent ? (mine ? 'mine' : 'other') : 'queued'}`, testid: 'queue-status', text: statusText(chat) }))));
    return h('li', {}, button);
  }

  function updateWaiting() {
    const elapsed = (Date.now() - state.chatsFetchedAt) / 1000;
    for (const chat of state.chats) {
      const el = $('queue').querySelector(`.queue-item[data-contact-id="${CSS.escape(chat.contact_id)}"] [data-testid="waiting"]`);
      if (el) el.textContent = `waiting ${duration(chat.waiting_seconds + elapsed)}`;
    }
  }

  // ------------------------------------------------------------------ the open chat

  function openChat(contactId) {
    if (state.selected === contactId) return;
    closeChat();
    state.selected = contactId;
    for (const item of $('queue').querySelectorAll('.queue-item')) {
      const selected = item.dataset.contactId === contactId;
      item.classList.toggle('selected', selected);
      if (selected) item.setAttribute('aria-current', 'true'); else item.removeAttribute('aria-current');
    }
    const summary = state.chats.find((c) => c.contact_id === contactId);
    if (summary) renderHeader(summary);
    $('history').replaceChildren(h('p', { class: 'empty muted', text: 'Loading the conversation…' }));
    show($('no-chat'), false);
    show($('chat'), true);
    pollChat();
  }

  function closeChat(message) {
    clearTimeout(state.chatTimer);
    state.generation += 1;
    state.selected = null;
    state.chat = null;
    state.chatKey = null;
    state.historyKeys = [];
    state.historyRendered = false;
    state.refusedAt = undefined;
    $('history').replaceChildren();
    $('labels').replaceChildren();
    $('reply-input').value = '';
    $('return-note').value = '';
    $('label-input').value = '';
    show($('template-box'), false);
    show($('chat'), false);
    $('no-chat').textContent = message || 'Select a chat on the left.';
    show($('no-chat'), true);
    for (const item of $('queue').querySelectorAll('.queue-item.selected')) {
      item.classList.remove('selected');
      item.removeAttribute('aria-current');
    }
  }

  async function pollChat() {
    clearTimeout(state.chatTimer);
    const contactId = state.selected;
    const generation = state.generation;
    const loop = ++state.chatLoop;
    if (!state.running || !contactId) return;
    try {
      const data = await api(chatPath(contactId));
      if (generation !== state.generation || loop !== state.chatLoop) return;
      networkResult(true);
      renderChat(data);
    } catch (e) {
      if (generation !== state.generation || loop !== state.chatLoop) return;
      if (handleAuth(e)) return;
      if (e instanceof ApiError && e.status === 404) {
        closeChat(`The chat with ${chatTitle(contactId)} is no longer waiting for people (it went back to the bot).`);
        pollChats();
        return;
      }
      if (e instanceof ApiError) showError(e.message);
      else networkResult(false);
    }
    if (generation === state.generation && loop === state.chatLoop) state.chatTimer = setTimeout(pollChat, POLL_MS);
  }

  function refreshChatSoon() {
    if (state.selected) pollChat();
  }

  function chatTitle(contactId) {
    const known = (state.chat && state.chat.chat.contact_id === contactId && state.chat.chat) || state.chats.find((c) => c.contact_id === contactId);
    return known ? displayName(known) : (/^\d+$/.test(contactId) ? `+${contactId}` : contactId);
  }

  function renderChat(data) {
    const key = JSON.stringify({ chat: { ...data.chat, waiting_seconds: 0 }, labels: data.labels, window_open: data.window_open, history: data.history });
    state.chat = data;
    if (key === state.chatKey) return;
    state.chatKey = key;
    renderHeader(data.chat);
    renderLabels(data.labels || []);
    renderWindow(data);
    renderHistory(data.history || []);
  }

  function renderHeader(chat) {
    $('chat-name').textContent = displayName(chat);
    $('chat-number').textContent = contactLine(chat);
    $('chat-label').textContent = chat.label;
    $('chat-reason').textContent = chat.reason ? `(${chat.reason.replace(/_/g, ' ')})` : '';
    const languages = (state.me && state.me.languages) || [];
    const picker = $('chat-language');
    picker.replaceChildren(...languages.map((code) => h('option', { value: code, text: code })));
    picker.value = chat.language || (state.me && state.me.default_language) || '';
    renderQuickReplies(chat.language);
    renderTemplatePreview();
    const status = $('chat-status');
    status.textContent = statusText(chat);
    status.dataset.status = chat.agent ? (chat.agent === state.me.name ? 'mine' : 'other') : 'queued';
    show($('claim'), !chat.agent);
    $('claim').disabled = false;
  }

  function renderLabels(labels) {
    const chips = labels.map((label) => h('li', { class: 'chip', testid: 'label' },
      h('span', { text: label }),
      h('button', {
        type: 'button', class: 'chip-remove', testid: 'remove-label', 'aria-label': `Remove label ${label}`, title: 'Remove',
        onclick: () => changeLabels({ remove: [label] }),
      }, '×')));
    $('labels').replaceChildren(...chips);
  }

  function renderWindow(data) {
    const chat = data.chat;
    const claimedByOther = Boolean(chat.agent && chat.agent !== state.me.name);
    // A refused reply closes the window here until the customer writes again.
    if (state.refusedAt !== undefined && state.refusedAt !== chat.last_message_at) state.refusedAt = undefined;
    const open = Boolean(data.window_open) && state.refusedAt === undefined;
    const status = $('window-status');
    status.dataset.open = String(open);
    if (open) {
      const until = chat.last_message_at ? ` until ${clock(chat.last_message_at + WINDOW_SECONDS, true)}` : '';
      status.textContent = `24-hour window open${until}`;
    } else {
      status.textContent = '24-hour window closed: the customer has not written for 24 hours, only approved templates can be sent.';
    }
    show($('template-box'), !open);
    const input = $('reply-input');
    const disabled = !open || claimedByOther;
    input.disabled = disabled;
    $('send').disabled = disabled;
    $('quick-replies').disabled = disabled;
    $('send-template').disabled = claimedByOther || !state.templates.some((t) => t.name === $('templates').value);
    input.placeholder = claimedByOther ? `${chat.agent} is answering this chat`
      : open ? 'Write a reply to the customer' : 'The 24-hour window is closed: send a template';
    $('return').disabled = claimedByOther;
  }

  function entryKey(entry) {
    return JSON.stringify([entry.who, entry.time, entry.text, entry.agent || null, entry.media_id || null, entry.buttons || []]);
  }

  function renderHistory(history) {
    const box = $('history');
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
    const keys = history.map(entryKey);
    const old = state.historyKeys;
    // New messages are appended; anything else (a first render, an edit) redraws it all.
    const incremental = state.historyRendered && old.length <= keys.length && old.every((k, i) => k === keys[i]);
    if (incremental && old.length === keys.length) return;
    const first = !state.historyRendered;
    const fresh = incremental ? history.slice(old.length) : history;
    if (!incremental) box.replaceChildren();
    box.querySelector(':scope > p.empty')?.remove();
    if (!history.length) box.append(h('p', { class: 'empty muted', text: 'No messages yet.' }));
    for (const entry of fresh) box.append(historyEntry(entry));
    state.historyKeys = keys;
    state.historyRendered = true;
    const ownNew = fresh.some((e) => e.who === 'agent' && e.agent === state.me.name);
    if (first || atBottom || ownNew) box.scrollTop = box.scrollHeight;
  }

  function historyEntry(entry) {
    const who = ['customer', 'bot', 'agent', 'system'].includes(entry.who) ? entry.who : 'system';
    if (who === 'system') {
      return h('div', { class: 'msg msg-system', testid: 'msg-system' },
        h('p', { class: 'pill' }, entry.text, entry.time ? h('time', { class: 'time', text: ` · ${clock(entry.time)}` }) : null));
    }
    const author = who === 'customer' ? chatTitle(state.selected) : who === 'bot' ? 'Bot' : (entry.agent === state.me.name ? `${entry.agent} (you)` : entry.agent || 'Agent');
    const body = [];
    if (entry.media_id) body.push(mediaLink(entry));
    if (entry.text && !(entry.media_id && /^\[\w+\]$/.test(entry.text))) body.push(h('p', { class: 'text', testid: 'msg-text', text: entry.text }));
    else if (!entry.media_id) body.push(h('p', { class: 'text muted', testid: 'msg-text', text: entry.text || '(empty message)' }));
    if (entry.buttons && entry.buttons.length) {
      body.push(h('ul', { class: 'chips bot-buttons', 'aria-label': 'Buttons the customer saw' },
        entry.buttons.map((title) => h('li', { class: 'chip small', testid: 'bot-button', text: title }))));
    }
    return h('div', { class: `msg msg-${who}`, testid: `msg-${who}` },
      h('div', { class: 'bubble' },
        h('span', { class: 'author', text: author }),
        body,
        entry.time ? h('time', { class: 'time', datetime: new Date(entry.time * 1000).toISOString(), text: clock(entry.time) }) : null));
  }

  function mediaLink(entry) {
    const kind = entry.type && entry.type !== 'text' ? entry.type : 'file';
    const label = `Open ${kind}${entry.mime_type ? ` (${entry.mime_type})` : ''}`;
    const link = h('a', { href: '#', class: 'media-link', testid: 'media-link', 'data-media-id': entry.media_id, text: label });
    const cached = state.mediaUrls.get(entry.media_id);
    if (cached) {
      link.href = cached;
      link.target = '_blank';
      link.rel = 'noopener';
    }
    link.addEventListener('click', async (event) => {
      if (link.target === '_blank') return;  // already fetched: the browser opens the blob URL
      event.preventDefault();
      link.textContent = 'Loading…';
      try {
        const response = await fetch(`${API}/media/${encodeURIComponent(entry.media_id)}`, { headers: { Authorization: `Bearer ${state.token}` } });
        if (response.status === 401) { logout('Your token is not valid (any more). Log in again.'); return; }
        if (!response.ok) {
          let message = `HTTP ${response.status}`;
          try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
          throw new Error(message);
        }
        const url = URL.createObjectURL(await response.blob());
        state.mediaUrls.set(entry.media_id, url);
        link.href = url;
        link.target = '_blank';
        link.rel = 'noopener';
        link.textContent = label;
        if ((response.headers.get('Content-Type') || '').startsWith('image/')) {
          link.replaceChildren(h('img', { src: url, alt: `${kind} from the customer`, class: 'media-preview' }));
        }
        window.open(url, '_blank', 'noopener');
      } catch (e) {
        link.textContent = label;
        showError(`Could not load the ${kind}: ${e.message}`);
      }
    });
    return link;
  }

  // ------------------------------------------------------------------ actions

  async function act(fn, button) {
    hideError();
    if (button) button.disabled = true;
    try {
      return await fn();
    } catch (e) {
      if (handleAuth(e)) return undefined;
      if (e instanceof ApiError && e.status === 404) {
        closeChat(`The chat with ${chatTitle(state.selected)} is no longer waiting for people.`);
        pollChats();
        return undefined;
      }
      showError(e instanceof ApiError ? e.message : `Could not reach the desk: ${e.message}`);
      return undefined;
    } finally {
      if (button) button.disabled = false;
      if (state.chat) renderWindow(state.chat);
    }
  }

  function claim() {
    const contactId = state.selected;
    if (!contactId) return;
    act(async () => {
      try {
        await api(`${chatPath(contactId)}/claim`, { method: 'POST' });
      } finally {
        state.chatKey = null;
        refreshChatSoon();
        pollChats();
      }
    }, $('claim'));
  }

  async function sendReply() {
    const contactId = state.selected;
    const input = $('reply-input');
    const text = input.value.trim();
    if (!contactId || !text || input.disabled) return;
    await act(async () => {
      try {
        await api(`${chatPath(contactId)}/reply`, { method: 'POST', body: { text } });
        if (state.selected === contactId) input.value = '';
      } catch (e) {
        if (e instanceof ApiError && e.status === 409 && e.data.reason === 'outside_window') {
          state.refusedAt = state.chat ? state.chat.chat.last_message_at : null;
          if (Array.isArray(e.data.templates)) setTemplates(e.data.templates);
          state.chatKey = null;
        }
        throw e;
      } finally {
        refreshChatSoon();
        pollChats();
      }
    }, $('send'));
    if (!input.disabled) input.focus();
  }

  function sendTemplate() {
    const contactId = state.selected;
    const name = $('templates').value;
    if (!contactId || !name) return;
    act(async () => {
      await api(`${chatPath(contactId)}/template`, { method: 'POST', body: { name } });
      refreshChatSoon();
      pollChats();
    }, $('send-template'));
  }

  function changeLabels(change) {
    const contactId = state.selected;
    if (!contactId) return;
    act(async () => {
      const data = await api(`${chatPath(contactId)}/labels`, { method: 'POST', body: change });
      if (state.selected === contactId) {
        renderLabels(data.labels || []);
        state.chatKey = null;
      }
    });
  }

  function giveBack() {
    const contactId = state.selected;
    if (!contactId) return;
    const note = $('return-note').value.trim();
    const name = chatTitle(contactId);
    act(async () => {
      await api(`${chatPath(contactId)}/return`, { method: 'POST', body: { note } });
      state.chats = state.chats.filter((c) => c.contact_id !== contactId);
      state.chatsKey = null;
      renderQueue();
      updateWaiting();
      if (state.selected === contactId) closeChat(`The chat with ${name} went back to the bot.`);
      pollChats();
    }, $('return'));
  }

  // ------------------------------------------------------------------ wiring

  function wire() {
    $('login-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const token = $('token-input').value.trim();
      if (!token) {
        $('login-error').textContent = 'Paste your agent token first.';
        show($('login-error'), true);
        return;
      }
      login(token, false);
    });
    $('logout').addEventListener('click', () => logout());
    $('error-close').addEventListener('click', hideError);
    $('claim').addEventListener('click', claim);
    $('reply-form').addEventListener('submit', (event) => { event.preventDefault(); sendReply(); });
    $('reply-input').addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        sendReply();
      }
    });
    $('quick-replies').addEventListener('change', (event) => {
      const reply = state.quickReplies[Number(event.target.value)];
      event.target.value = '';
      if (reply) insertIntoReply(reply.text || '');
    });
    $('templates').addEventListener('change', renderTemplatePreview);
    $('chat-language').addEventListener('change', async (event) => {
      if (!state.selected) return;
      try {
        await api(`${chatPath(state.selected)}/language`, { method: 'POST', body: { language: event.target.value } });
        if (state.chat) state.chat.chat.language = event.target.value;
        renderQuickReplies(event.target.value);
        renderTemplatePreview();
      } catch (e) {
        if (!handleAuth(e)) showError(`Could not set the language: ${e.message}`);
      }
    });
    $('send-template').addEventListener('click', sendTemplate);
    $('label-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const input = $('label-input');
      const label = input.value.trim();
      if (!label) return;
      input.value = '';
      changeLabels({ add: [label] });
    });
    $('return-form').addEventListener('submit', (event) => { event.preventDefault(); giveBack(); });
    // The waiting times tick on between polls.
    setInterval(() => { if (state.running) updateWaiting(); }, 15000);
    window.addEventListener('online', () => { if (state.running) { pollChats(); refreshChatSoon(); } });
  }

  wire();
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) login(saved, true);
  else showLogin();
})();
