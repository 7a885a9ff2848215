/* WhatsApp simulator chat page. Vanilla JS, no build step, no network beyond this server.
 *
 * The page is a thin view: every customer action is a POST to /sim/api/chats/{id}/...
 * (id: the customer's phone number or business-scoped user id), and everything shown comes
 * back over Server-Sent Events (snapshot, message, status, identity...), so several tabs on
 * the same customer stay in sync.
 * All text is inserted with textContent (never innerHTML): bot messages are untrusted.
 */
'use strict';
(() => {
  const API = '/sim/api';
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const $ = (id) => document.getElementById(id);

  const state = {
    config: null,
    catalog: new Map(),
    chatId: null,          // phone number or BSUID used in API paths (follows identity changes)
    identity: null,        // {user_id, wa_id, username, profile_name}
    name: '',
    events: null,
    messages: new Map(),   // id -> message JSON from the server
    elements: new Map(),   // id -> rendered row
    reactions: new Map(),  // target message id -> {customer, bot}
    cart: new Map(),       // retailer id -> {qty, catalogId}
    pendingContext: null,  // {id, referredProduct, catalogId, label}
    seenQueue: new Set(),
    seenTimer: null,
    typingTimer: null,
  };

  // ------------------------------------------------------------------ DOM helpers

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    appendAll(el, children);
    return el;
  }

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    setAttrs(el, attrs);
    appendAll(el, children);
    return el;
  }

  function setAttrs(el, attrs) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') el.setAttribute('class', value);
      else if (key === 'text') el.textContent = value;
      else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? '' : String(value));
    }
  }

  function appendAll(el, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  async function api(path, options = {}) {
    const init = { method: options.method || 'GET', headers: {} };
    if (options.body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(options.body);
    }
    const response = await fetch(API + path, init);
    let data = null;
    try { data = await response.json(); } catch (_) { /* empty body */ }
    if (!response.ok) {
      const message = (data && data.error) || `HTTP ${response.status}`;
      throw new Error(typeof message === 'string' ? message : JSON.stringify(message));
    }
    return data;
  }

  // ------------------------------------------------------------------ formatting

  /** WhatsApp markup: *bold*, _italic_, ~strike~, ```mono```; newlines are kept by CSS. */
  function formatInto(text) {
    const fragment = document.createDocumentFragment();
    const pattern = /```([\s\S]+?)```|(?<![\w*])\*(?!\s)([^*\n]+?)\*(?![\w*])|(?<![\w_])_(?!\s)([^_\n]+?)_(?![\w_])|(?<![\w~])~(?!\s)([^~\n]+?)~(?![\w~])/g;
    let last = 0;
    let match;
    while ((match = pattern.exec(text)) !== null) {
      if (match.index > last) fragment.append(text.slice(last, match.index));
      if (match[1] !== undefined) fragment.append(h('code', {}, match[1]));
      else if (match[2] !== undefined) fragment.append(h('strong', {}, formatInto(match[2])));
      else if (match[3] !== undefined) fragment.append(h('em', {}, formatInto(match[3])));
      else fragment.append(h('s', {}, formatInto(match[4])));
      last = pattern.lastIndex;
    }
    fragment.append(text.slice(last));
    return fragment;
  }

  const formatted = (text, testid) => h('div', { class: 'text', 'data-testid': testid }, formatInto(String(text || '')));

  function clock(timestamp) {
    return new Date(timestamp * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function money(amount, currency) {
    try {
      return new Intl.NumberFormat('en-IE', { style: 'currency', currency }).format(amount);
    } catch (_) {
      return `${Number(amount).toFixed(2)} ${currency || ''}`.trim();
    }
  }

  // ------------------------------------------------------------------ products

  const COLOURS = {
    black: '#2b2b2b', white: '#f2f2f0', grey: '#9ea3a8', gray: '#9ea3a8', navy: '#24345c',
    green: '#4f7f52', sand: '#d8c3a0', beige: '#e3d3b8', natural: '#efe6d2', red: '#b8433a',
    blue: '#2e6db4', brown: '#7a5436', pink: '#e6a1b4',
  };
  const LIGHT = new Set(['white', 'sand', 'beige', 'natural', 'pink', 'grey', 'gray']);

  function hashHue(text) {
    let hash = 0;
    for (const ch of text) hash = (hash * 31 + ch.charCodeAt(0)) % 360;
    return hash;
  }

  function colourOf(name) {
    return COLOURS[name] || `hsl(${hashHue(name || 'x')}, 40%, 55%)`;
  }

  function wrapWords(text, width, maxLines) {
    const lines = [];
    let line = '';
    for (const word of text.split(/\s+/)) {
      if ((line + ' ' + word).trim().length > width && line) {
        lines.push(line);
        line = word;
      } else {
        line = (line + ' ' + word).trim();
      }
    }
    if (line) lines.push(line);
    if (lines.length > maxLines) {
      lines.length = maxLines;
      lines[maxLines - 1] += '…';
    }
    return lines;
  }

  /** Generated placeholder picture: a tile in the product's first colour with its name. */
  function productTile(product, testid = 'product-image') {
    const colours = product.colors.length ? product.colors : [product.category];
    const first = colours[0];
    const multi = first === 'multicolour' || first === 'multicolor';
    const dark = !multi && LIGHT.has(first) ? '#3b4a54' : '#ffffff';
    const svg = s('svg', {
      class: 'product-tile', viewBox: '0 0 200 150', role: 'img', 'data-testid': testid,
      'aria-label': `${product.name}, ${colours.join(', ')}`,
    });
    if (multi) {
      ['#e74c3c', '#f39c12', '#f1c40f', '#27ae60', '#2980b9', '#8e44ad'].forEach((colour, i) => {
        svg.append(s('rect', { x: i * 34, y: 0, width: 34, height: 150, fill: colour }));
      });
      svg.append(s('rect', { x: 0, y: 0, width: 200, height: 150, fill: 'rgba(0,0,0,0.25)' }));
    } else {
      svg.append(s('rect', { x: 0, y: 0, width: 200, height: 150, fill: colourOf(first) }));
    }
    svg.append(s('text', { x: 12, y: 22, 'font-size': 11, fill: dark, opacity: 0.8,
      'font-family': 'system-ui, sans-serif' }, product.category.toUpperCase()));
    wrapWords(product.name, 20, 3).forEach((line, i) => {
      svg.append(s('text', { x: 12, y: 70 + i * 20, 'font-size': 16, 'font-weight': 700, fill: dark,
        'font-family': 'system-ui, sans-serif' }, line));
    });
    colours.slice(0, 5).forEach((colour, i) => {
      svg.append(s('circle', { cx: 186 - i * 16, cy: 134, r: 6, fill: colourOf(colour),
        stroke: '#fff', 'stroke-width': 1.5 }));
    });
    return svg;
  }

  function unknownProduct(retailerId) {
    return h('div', { class: 'unknown-product', 'data-testid': 'unknown-product' }, `Unknown product ${retailerId}`);
  }

  function productCard(retailerId, catalogId, contextId) {
    const product = state.catalog.get(retailerId);
    if (!product) return unknownProduct(retailerId);
    const stock = product.stock > 0
      ? h('span', {}, `${product.stock} in stock`)
      : h('span', { class: 'stock-out' }, 'Out of stock');
    const fact = (label, value) => h('div', {}, h('dt', {}, label), h('dd', {}, value));
    return h('div', { class: 'product-card', 'data-testid': 'product-card', 'data-retailer-id': retailerId },
      productTile(product),
      h('div', { class: 'product-name', 'data-testid': 'product-name' }, product.name),
      h('div', { class: 'product-price', 'data-testid': 'product-price' }, money(product.price, product.currency)),
      h('dl', { class: 'product-facts' },
        product.sizes.length ? fact('Sizes:', product.sizes.join(', ')) : null,
        product.colors.length ? fact('Colours:', product.colors.join(', ')) : null,
        fact('Stock:', stock)),
      product.description ? h('div', { class: 'product-facts' }, product.description) : null,
      h('div', { class: 'card-actions' },
        h('button', { type: 'button', class: 'chip-button', 'data-testid': 'add-to-cart',
          disabled: product.stock <= 0, onclick: () => addToCart(retailerId, catalogId) }, 'Add to cart'),
        h('button', { type: 'button', class: 'chip-button', 'data-testid': 'ask-product',
          onclick: () => askAbout(product, catalogId, contextId) }, 'Ask about this')));
  }

  // ------------------------------------------------------------------ sheet (modal)

  function openSheet(title, ...content) {
    $('sheet-title').textContent = title;
    const body = $('sheet-body');
    body.replaceChildren(...content.flat().filter(Boolean));
    $('sheet-backdrop').hidden = false;
    $('sheet-close').focus();
  }

  function closeSheet() {
    $('sheet-backdrop').hidden = true;
    $('sheet-body').replaceChildren();
  }

  // ------------------------------------------------------------------ business profile

  const PROFILE_FIELDS = [
    ['description', 'Description'], ['address', 'Address'], ['email', 'Email'],
    ['websites', 'Websites'], ['vertical', 'Category'],
  ];

  /** Tapping the shop's name shows its business profile, as WhatsApp does (set through
   *  POST /{version}/{phone_number_id}/whatsapp_business_profile, e.g. `python -m shop profile push`). */
  async function openProfile() {
    let profile = {};
    try {
      profile = (await api('/profile')).profile || {};
    } catch (error) {
      openSheet(state.config.shop_name, h('p', { class: 'profile-about' }, `Profile unavailable: ${error.message}`));
      return;
    }
    const fields = PROFILE_FIELDS.filter(([name]) => profile[name] && profile[name].length)
      .map(([name, label]) => h('div', { class: 'profile-field', 'data-testid': `profile-${name}` },
        h('span', { class: 'label' }, label),
        h('span', { class: 'value' }, Array.isArray(profile[name]) ? profile[name].join('\n') : profile[name])));
    openSheet(state.config.shop_name,
      h('p', { class: 'profile-about', 'data-testid': 'profile-about' },
        profile.about || 'No business profile set yet (python -m shop profile push).'),
      fields);
  }

  function openListSheet(message) {
    const interactive = message.payload.interactive;
    const action = interactive.action;
    const rows = [];
    for (const section of action.sections || []) {
      if (section.title) rows.push(h('div', { class: 'sheet-section' }, section.title));
      for (const row of section.rows || []) {
        rows.push(h('button', {
          type: 'button', class: 'sheet-row', 'data-testid': 'list-row', 'data-row-id': row.id,
          onclick: () => {
            closeSheet();
            send({ type: 'list_reply', id: row.id, title: row.title, description: row.description,
              context_id: message.id });
          },
        }, h('span', { class: 'row-text' },
          h('span', { class: 'row-title' }, row.title),
          row.description ? h('span', { class: 'row-desc' }, row.description) : null),
        h('span', { class: 'radio', 'aria-hidden': 'true' })));
      }
    }
    openSheet(action.button, rows);
  }

  function productRow(retailerId, catalogId, onOpen) {
    const product = state.catalog.get(retailerId);
    if (!product) {
      return h('div', { class: 'sheet-row', 'data-testid': 'product-row' }, unknownProduct(retailerId));
    }
    return h('button', { type: 'button', class: 'sheet-row', 'data-testid': 'product-row',
      'data-retailer-id': retailerId, onclick: onOpen },
      productTile(product, 'product-thumb'),
      h('span', { class: 'row-text' },
        h('span', { class: 'row-title' }, product.name),
        h('span', { class: 'row-desc' },
          `${money(product.price, product.currency)}${product.stock > 0 ? '' : ' · out of stock'}`)));
  }

  function openProductDetail(retailerId, catalogId, contextId, back) {
    const product = state.catalog.get(retailerId);
    openSheet(product ? product.name : retailerId,
      h('div', { class: 'sheet-detail' },
        back ? h('button', { type: 'button', class: 'link-button', 'data-testid': 'sheet-back', onclick: back }, '‹ Back') : null,
        productCard(retailerId, catalogId, contextId)));
  }

  function openProductListSheet(message) {
    const interactive = message.payload.interactive;
    const action = interactive.action;
    const show = () => {
      const rows = [];
      for (const section of action.sections || []) {
        if (section.title) rows.push(h('div', { class: 'sheet-section' }, section.title));
        for (const item of section.product_items || []) {
          const id = item.product_retailer_id;
          rows.push(productRow(id, action.catalog_id, () => openProductDetail(id, action.catalog_id, message.id, show)));
        }
      }
      openSheet((interactive.header && interactive.header.text) || 'Products', rows);
    };
    show();
  }

  function openCatalogSheet(message) {
    const catalogId = message.payload.interactive.action.catalog_id || state.config.catalog_id;
    const show = () => {
      const byCategory = new Map();
      for (const product of state.catalog.values()) {
        if (!byCategory.has(product.category)) byCategory.set(product.category, []);
        byCategory.get(product.category).push(product);
      }
      const rows = [];
      for (const [category, products] of byCategory) {
        rows.push(h('div', { class: 'sheet-section' }, category));
        for (const product of products) {
          rows.push(productRow(product.retailer_id, catalogId,
            () => openProductDetail(product.retailer_id, catalogId, message.id, show)));
        }
      }
      openSheet(`${state.config.shop_name} catalog`, rows);
    };
    show();
  }

  // ------------------------------------------------------------------ cart

  function addToCart(retailerId, catalogId) {
    const line = state.cart.get(retailerId) || { qty: 0, catalogId: catalogId || state.config.catalog_id };
    line.qty += 1;
    state.cart.set(retailerId, line);
    updateCartButton();
  }

  function updateCartButton() {
    let count = 0;
    for (const line of state.cart.values()) count += line.qty;
    $('cart-count').textContent = String(count);
    $('cart-open').hidden = count === 0;
    // Inside an open product sheet, offer the cart right away.
    const body = $('sheet-body');
    let shortcut = body.querySelector('[data-testid="sheet-cart"]');
    if (!$('sheet-backdrop').hidden && count > 0 && !body.querySelector('[data-testid="cart-send"]')) {
      if (!shortcut) {
        shortcut = h('div', { class: 'sheet-footer' },
          h('button', { type: 'button', class: 'primary', 'data-testid': 'sheet-cart', onclick: openCart }, ''));
        body.append(shortcut);
        shortcut = shortcut.firstChild;
      }
      shortcut.textContent = `View cart (${count})`;
    }
  }

  function openCart() {
    const lines = [];
    let total = 0;
    let currency = 'EUR';
    for (const [retailerId, line] of state.cart) {
      const product = state.catalog.get(retailerId);
      const price = product ? product.price : 0;
      currency = product ? product.currency : currency;
      total += price * line.qty;
      const change = (delta) => {
        line.qty += delta;
        if (line.qty <= 0) state.cart.delete(retailerId);
        updateCartButton();
        if (state.cart.size) openCart(); else closeSheet();
      };
      lines.push(h('div', { class: 'cart-line', 'data-testid': 'cart-line', 'data-retailer-id': retailerId },
        h('span', { class: 'grow' }, product ? product.name : retailerId),
        h('span', { class: 'qty' },
          h('button', { type: 'button', 'aria-label': 'One less', onclick: () => change(-1) }, '−'),
          h('span', { 'data-testid': 'cart-qty' }, String(line.qty)),
          h('button', { type: 'button', 'aria-label': 'One more', onclick: () => change(1) }, '+')),
        h('span', {}, money(price * line.qty, currency))));
    }
    openSheet('Your cart', lines,
      h('div', { class: 'cart-total' }, h('span', {}, 'Subtotal'), h('span', { 'data-testid': 'cart-total' }, money(total, currency))),
      h('div', { class: 'sheet-footer' },
        h('button', { type: 'button', class: 'primary', 'data-testid': 'cart-send', onclick: sendCart }, 'Send cart')));
  }

  async function sendCart() {
    const items = [];
    let catalogId = state.config.catalog_id;
    for (const [retailerId, line] of state.cart) {
      items.push({ product_retailer_id: retailerId, quantity: line.qty });
      catalogId = line.catalogId || catalogId;
    }
    if (!items.length) return;
    state.cart.clear();
    updateCartButton();
    closeSheet();
    await send({ type: 'order', items, catalog_id: catalogId });
  }

  function askAbout(product, catalogId, contextId) {
    closeSheet();
    state.pendingContext = {
      id: contextId, referredProduct: product.retailer_id, catalogId,
      label: `🛍 ${product.name} · ${money(product.price, product.currency)}`,
    };
    const box = $('reply-context');
    box.querySelector('.reply-context-text').textContent = state.pendingContext.label;
    box.hidden = false;
    $('composer').focus();
  }

  function clearPendingContext() {
    state.pendingContext = null;
    $('reply-context').hidden = true;
  }

  // ------------------------------------------------------------------ rendering

  function tickIcon(double) {
    const svg = s('svg', { viewBox: '0 0 18 11', width: 16, height: 11, 'aria-hidden': 'true' });
    const line = (dx) => s('polyline', { points: `${1 + dx},6 ${4.5 + dx},9.5 ${11 + dx},1.5`, fill: 'none',
      stroke: 'currentColor', 'stroke-width': 1.6, 'stroke-linecap': 'round', 'stroke-linejoin': 'round' });
    svg.append(line(0));
    if (double) svg.append(line(5));
    return svg;
  }

  const TICK_LABELS = { sent: 'Sent', delivered: 'Delivered', read: 'Read', failed: 'Not delivered' };

  function ticks(status) {
    const label = TICK_LABELS[status] || status;
    const el = h('span', { class: 'ticks', 'data-testid': 'ticks', 'data-status': status, title: label,
      role: 'img', 'aria-label': label });
    if (status === 'failed') el.textContent = '!';
    else el.append(tickIcon(status !== 'sent'));
    return el;
  }

  function snippet(message) {
    if (!message) return 'Message';
    const p = message.payload || {};
    switch (message.type) {
      case 'text': return p.text && p.text.body;
      case 'interactive': {
        const i = p.interactive || {};
        if (i.button_reply) return i.button_reply.title;
        if (i.list_reply) return i.list_reply.title;
        return (i.body && i.body.text) || (i.header && i.header.text) || 'Interactive message';
      }
      case 'image': return `📷 ${(p.image && p.image.caption) || 'Photo'}`;
      case 'template': return `Template ${p.template && p.template.name}`;
      default: return message.type;
    }
  }

  function quoteFor(context) {
    if (!context) return null;
    if (context.referred_product) {
      const product = state.catalog.get(context.referred_product.product_retailer_id);
      return h('div', { class: 'quote', 'data-testid': 'quote' },
        `🛍 ${product ? product.name : context.referred_product.product_retailer_id}`);
    }
    if (context.id) {
      return h('div', { class: 'quote', 'data-testid': 'quote' }, snippet(state.messages.get(context.id)) || '');
    }
    return null;
  }

  function customerContent(message) {
    const p = message.payload;
    switch (message.type) {
      case 'text': return formatted(p.text.body);
      case 'interactive': {
        const reply = p.interactive.button_reply || p.interactive.list_reply || {};
        return h('div', {}, formatted(reply.title),
          reply.description ? h('div', { class: 'product-facts' }, reply.description) : null);
      }
      case 'button': return formatted(p.button.text);
      case 'image': case 'video': case 'audio': case 'document': case 'sticker': {
        const media = p[message.type];
        const icons = { image: '📷 Photo', video: '🎬 Video', audio: '🎤 Voice message', document: '📄 Document', sticker: '🏷 Sticker' };
        return h('div', {},
          h('div', { class: 'image-placeholder', 'data-testid': 'media-placeholder' }, icons[message.type]),
          media.caption ? formatted(media.caption) : null);
      }
      case 'location': {
        const l = p.location;
        return h('div', { class: 'text' }, `📍 ${l.name || 'Location'}\n${l.address || ''}\n${l.latitude}, ${l.longitude}`);
      }
      case 'contacts':
        return h('div', { 'data-testid': 'shared-contact' }, (p.contacts || []).map((c) => h('div', { class: 'doc' },
          `👤 ${(c.name && c.name.formatted_name) || 'Contact'} ${((c.phones || [])[0] || {}).phone || ''}`)));
      case 'order': {
        const items = p.order.product_items;
        let total = 0;
        const lines = items.map((item) => {
          total += item.item_price * item.quantity;
          const product = state.catalog.get(item.product_retailer_id);
          return h('div', {}, `${item.quantity} × ${product ? product.name : item.product_retailer_id}`);
        });
        return h('div', { 'data-testid': 'order' },
          h('div', { class: 'header-text' }, `🛒 Order · ${items.length} item${items.length === 1 ? '' : 's'}`),
          h('div', { class: 'product-facts' }, lines),
          h('div', { class: 'product-price' }, money(total, items[0].currency)));
      }
      default: return h('div', { class: 'label' }, `[${message.type}]`);
    }
  }

  function interactiveHeader(header) {
    if (!header) return null;
    if (header.type === 'text') return h('div', { class: 'header-text' }, header.text);
    return mediaView(header.type, header[header.type] || {});
  }

  function mediaView(type, media) {
    const caption = media.caption ? formatted(media.caption) : null;
    const placeholder = (label) => h('div', { class: 'image-placeholder', 'data-testid': 'image-placeholder' }, label);
    if (type === 'image' || type === 'sticker') {
      const label = media.caption || (type === 'sticker' ? 'Sticker' : 'Image');
      if (!media.link) return h('div', {}, placeholder(`🖼 ${label}`), caption);
      const img = h('img', { class: 'media-img', src: media.link, alt: media.caption || 'Image from the shop',
        'data-testid': 'media-image', loading: 'lazy', referrerpolicy: 'no-referrer' });
      img.addEventListener('error', () => img.replaceWith(placeholder(`🖼 ${label}`)), { once: true });
      return h('div', {}, img, caption);
    }
    if (type === 'document') {
      const name = media.filename || 'Document';
      const link = media.link
        ? h('a', { class: 'doc', href: media.link, target: '_blank', rel: 'noopener', 'data-testid': 'document' }, `📄 ${name}`)
        : h('div', { class: 'doc', 'data-testid': 'document' }, `📄 ${name}`);
      return h('div', {}, link, caption);
    }
    const icon = type === 'video' ? '🎬 Video' : '🎵 Audio';
    return h('div', {},
      media.link ? h('a', { class: 'doc', href: media.link, target: '_blank', rel: 'noopener' }, icon) : h('div', { class: 'doc' }, icon),
      caption);
  }

  function paramText(parameter) {
    if (parameter.text !== undefined) return parameter.text;
    if (parameter.currency) return parameter.currency.fallback_value;
    if (parameter.date_time) return parameter.date_time.fallback_value;
    if (parameter.payload !== undefined) return parameter.payload;
    return `[${parameter.type}]`;
  }

  /** Bot message bubble content; extra controls under the bubble go to `under`. */
  function botContent(message, under) {
    const p = message.payload;
    switch (message.type) {
      case 'text': return formatted(p.text.body);
      case 'interactive': return interactiveContent(message, under);
      case 'image': case 'document': case 'video': case 'audio': case 'sticker':
        return mediaView(message.type, p[message.type]);
      case 'template': {
        const t = p.template;
        if (message.rendered) return templateContent(message, under);
        const parts = [h('div', { class: 'label', 'data-testid': 'template' },
          `Template · ${t.name} (${(t.language && t.language.code) || '?'})`)];
        for (const component of t.components || []) {
          const params = (component.parameters || []).map(paramText);
          if (component.type === 'button' && component.sub_type === 'quick_reply') {
            const payload = params[0] || `button ${component.index}`;
            under.push(h('button', { type: 'button', class: 'reply-button', 'data-testid': 'reply-button',
              onclick: () => send({ type: 'button', payload, text: payload, context_id: message.id }) }, payload));
          } else if (params.length) {
            parts.push(h('div', { class: 'text', 'data-testid': 'template-params' },
              `${component.type}: ${params.join(' · ')}`));
          }
        }
        if (message.category === 'marketing') {
          under.push(h('button', { type: 'button', class: 'under-button', 'data-testid': 'stop-promotions',
            onclick: () => setPreference('stop') }, 'Stop promotions'));
        }
        return h('div', {}, parts);
      }
      case 'location': {
        const l = p.location;
        return h('div', { class: 'text' }, `📍 ${l.name || 'Location'}\n${l.address || ''}\n${l.latitude}, ${l.longitude}`);
      }
      case 'contacts':
        return h('div', {}, (p.contacts || []).map((c) => h('div', { class: 'doc' },
          `👤 ${(c.name && c.name.formatted_name) || 'Contact'} ${((c.phones || [])[0] || {}).phone || ''}`)));
      default:
        return h('div', { class: 'label' }, `[${message.type}]`);
    }
  }

  /** A template of the business account, as the phone shows it: its texts with the
   *  send's values, quick replies that send their payload back, URL buttons. */
  function templateContent(message, under) {
    const t = message.payload.template;
    const shown = message.rendered;
    for (const button of shown.buttons || []) {
      if (button.type === 'quick_reply') {
        under.push(h('button', { type: 'button', class: 'reply-button', 'data-testid': 'reply-button',
          'data-payload': button.payload,
          onclick: () => send({ type: 'button', payload: button.payload, text: button.text, context_id: message.id }) },
          button.text));
      } else {
        under.push(h('a', { class: 'reply-button', 'data-testid': 'url-button', href: button.url,
          target: '_blank', rel: 'noopener' }, `↗ ${button.text}`));
      }
    }
    if (message.category === 'marketing') {
      under.push(h('button', { type: 'button', class: 'under-button', 'data-testid': 'stop-promotions',
        onclick: () => setPreference('stop') }, 'Stop promotions (WhatsApp)'));
    }
    return h('div', {},
      shown.header ? h('div', { class: 'header-text', 'data-testid': 'template-header' }, shown.header) : null,
      h('div', { 'data-testid': 'template-body' }, formatted(shown.body)),
      shown.footer ? h('div', { class: 'footer-text' }, shown.footer) : null,
      h('div', { class: 'label', 'data-testid': 'template' }, `Template · ${t.name} (${t.language.code})`));
  }

  function interactiveContent(message, under) {
    const i = message.payload.interactive;
    const action = i.action || {};
    const body = i.body ? formatted(i.body.text) : null;
    const footer = i.footer ? h('div', { class: 'footer-text' }, i.footer.text) : null;
    switch (i.type) {
      case 'button':
        for (const button of action.buttons || []) {
          const reply = button.reply;
          under.push(h('button', { type: 'button', class: 'reply-button', 'data-testid': 'reply-button',
            'data-reply-id': reply.id,
            onclick: () => send({ type: 'button_reply', id: reply.id, title: reply.title, context_id: message.id }),
          }, reply.title));
        }
        return h('div', {}, interactiveHeader(i.header), body, footer);
      case 'list':
        return h('div', {}, interactiveHeader(i.header), body, footer,
          h('button', { type: 'button', class: 'list-open', 'data-testid': 'list-open', onclick: () => openListSheet(message) },
            '☰ ', action.button));
      case 'product':
        return h('div', {}, productCard(action.product_retailer_id, action.catalog_id, message.id), body, footer);
      case 'product_list': {
        const count = (action.sections || []).reduce((n, section) => n + (section.product_items || []).length, 0);
        under.push(h('button', { type: 'button', class: 'under-button', 'data-testid': 'product-list-open',
          onclick: () => openProductListSheet(message) }, `View items (${count})`));
        return h('div', { 'data-testid': 'product-list' }, interactiveHeader(i.header), body, footer);
      }
      case 'catalog_message': {
        const thumbId = action.parameters && action.parameters.thumbnail_product_retailer_id;
        const thumb = thumbId && state.catalog.get(thumbId);
        under.push(h('button', { type: 'button', class: 'under-button', 'data-testid': 'catalog-open',
          onclick: () => openCatalogSheet(message) }, 'View catalog'));
        return h('div', {},
          h('div', { class: 'catalog-thumb', 'data-testid': 'catalog-card' },
            thumb ? productTile(thumb, 'catalog-thumb') : null,
            h('div', {}, h('div', { class: 'header-text' }, state.config.shop_name),
              h('div', { class: 'product-facts' }, `${state.catalog.size} products`))),
          body, footer);
      }
      case 'cta_url':
        under.push(h('a', { class: 'under-button', href: action.parameters.url, target: '_blank', rel: 'noopener',
          'data-testid': 'cta-url' }, `↗ ${action.parameters.display_text}`));
        return h('div', {}, interactiveHeader(i.header), body, footer);
      default:
        return h('div', {}, body, h('div', { class: 'label' }, `[interactive ${i.type}]`));
    }
  }

  function renderRow(message) {
    if (message.type === 'system') {
      return h('div', { class: 'system-note', 'data-testid': 'msg-system', 'data-id': message.id },
        `🔄 ${(message.payload.system && message.payload.system.body) || 'Account changed'}`);
    }
    if (message.direction === 'bot' && message.status === 'failed') {
      const error = message.error || {};
      return h('div', { class: 'system-note', 'data-testid': 'msg-failed', 'data-id': message.id },
        `⚠ A message from the shop could not be delivered (${error.code || '?'} ${error.title || ''})`.trim());
    }
    const row = h('div', {
      class: `row ${message.direction}`, 'data-testid': `msg-${message.direction}`,
      'data-id': message.id, 'data-type': message.type, 'data-status': message.status,
    });
    const under = [];
    const content = message.direction === 'customer' ? customerContent(message) : botContent(message, under);
    const meta = h('span', { class: 'meta' }, h('time', {}, clock(message.timestamp)),
      message.direction === 'customer' ? ticks(message.status) : null);
    const bubble = h('div', { class: 'bubble' }, quoteFor(message.payload.context), content, meta);
    const reaction = state.reactions.get(message.id);
    const emoji = reaction && (reaction.customer || reaction.bot);
    if (emoji) {
      bubble.append(h('span', { class: 'reaction-badge', 'data-testid': 'reaction' }, emoji));
      row.classList.add('has-reaction');
    }
    row.append(bubble);
    if (under.length) row.append(h('div', { class: 'reply-buttons' }, under));
    if (message.direction === 'customer' && message.status === 'failed') {
      const error = message.error || {};
      row.append(h('div', { class: 'failed-note', 'data-testid': 'delivery-error' },
        `Not delivered to the bot: ${error.error || `HTTP ${error.response_status}`}`,
        h('button', { type: 'button', class: 'link-button', 'data-testid': 'retry',
          onclick: () => redeliver(message.id) }, 'Retry')));
    }
    return row;
  }

  function render(message) {
    const list = $('messages');
    const element = renderRow(message);
    const old = state.elements.get(message.id);
    if (old) {
      old.replaceWith(element);
    } else {
      list.append(element);
      list.scrollTop = list.scrollHeight;
    }
    state.elements.set(message.id, element);
  }

  /** A message's new status, shown without rebuilding its row: the customer's ticks
   *  change in place, and the buttons and list of a bot message stay the elements a
   *  finger may be on (a row rebuilt between the press and the release of a tap loses
   *  the tap). Only a failure, or a retry after one, changes the row itself. */
  function showStatus(message) {
    const row = state.elements.get(message.id);
    if (!row || message.status === 'failed' || row.dataset.testid === 'msg-failed'
        || row.querySelector('[data-testid="delivery-error"]')) {
      render(message);
      return;
    }
    row.dataset.status = message.status;
    const old = row.querySelector('[data-testid="ticks"]');
    if (old) old.replaceWith(ticks(message.status));
  }

  function applyReaction(message) {
    const { message_id: target, emoji } = message.payload.reaction;
    const entry = state.reactions.get(target) || {};
    entry[message.direction] = emoji;
    state.reactions.set(target, entry);
    const targetMessage = state.messages.get(target);
    if (targetMessage) render(targetMessage);
  }

  function upsert(message) {
    state.messages.set(message.id, message);
    if (message.type === 'reaction') {
      applyReaction(message);
      return;
    }
    render(message);
    if (message.direction === 'bot') {
      stopTyping();
      queueSeen(message);
    }
  }

  // ------------------------------------------------------------------ read receipts

  function queueSeen(message) {
    if (message.direction !== 'bot' || !['sent', 'delivered'].includes(message.status)) return;
    state.seenQueue.add(message.id);
    scheduleSeen();
  }

  function scheduleSeen() {
    // Only a visible tab "reads" messages, like a phone with the chat open.
    if (document.visibilityState !== 'visible' || !state.seenQueue.size) return;
    clearTimeout(state.seenTimer);
    state.seenTimer = setTimeout(flushSeen, 100);
  }

  async function flushSeen() {
    const ids = [...state.seenQueue];
    state.seenQueue.clear();
    if (!ids.length || !state.chatId) return;
    try {
      await api(`/chats/${state.chatId}/seen`, { method: 'POST', body: { ids } });
    } catch (error) {
      ids.forEach((id) => state.seenQueue.add(id));
    }
  }

  // ------------------------------------------------------------------ sending

  async function send(body) {
    try {
      return await api(`/chats/${state.chatId}/messages`, {
        method: 'POST', body: { profile_name: state.name, ...body },
      });
    } catch (error) {
      showBotError(`Could not send: ${error.message}`);
      return null;
    }
  }

  async function redeliver(id) {
    try {
      await api(`/chats/${state.chatId}/messages/${encodeURIComponent(id)}/redeliver`, { method: 'POST' });
    } catch (error) {
      showBotError(`Retry failed: ${error.message}`);
    }
  }

  async function setPreference(value) {
    try {
      await api(`/chats/${state.chatId}/preferences`, { method: 'POST', body: { value } });
    } catch (error) {
      showBotError(`Could not change preferences: ${error.message}`);
    }
  }

  function submitComposer(event) {
    if (event) event.preventDefault();
    const composer = $('composer');
    const text = composer.value;
    if (!text.trim()) return;
    composer.value = '';
    const body = { type: 'text', text };
    if (state.pendingContext) {
      const ctx = state.pendingContext;
      if (ctx.id) body.context_id = ctx.id;
      if (ctx.referredProduct) {
        body.referred_product = ctx.referredProduct;
        body.catalog_id = ctx.catalogId;
      }
      clearPendingContext();
    }
    send(body);
  }

  // ------------------------------------------------------------------ chat lifecycle

  function showBotError(text) {
    const banner = $('bot-error');
    banner.textContent = text;
    banner.hidden = false;
  }

  function hideBotError() {
    $('bot-error').hidden = true;
  }

  function setSubtitle(text) {
    $('subtitle').textContent = text;
  }

  function stopTyping() {
    clearTimeout(state.typingTimer);
    setSubtitle('Business account');
  }

  function startTyping() {
    setSubtitle('typing…');
    clearTimeout(state.typingTimer);
    // WhatsApp drops the indicator after 25 s or with the next message.
    state.typingTimer = setTimeout(stopTyping, 25000);
  }

  function resetChatView() {
    state.messages.clear();
    state.elements.clear();
    state.reactions.clear();
    $('messages').replaceChildren();
  }

  function connect() {
    if (state.events) state.events.close();
    const events = new EventSource(`${API}/chats/${state.chatId}/events`);
    state.events = events;
    events.addEventListener('snapshot', (e) => {
      const chat = JSON.parse(e.data);
      resetChatView();
      applyIdentity(chat);
      (chat.messages || []).forEach(upsert);
    });
    events.addEventListener('message', (e) => upsert(JSON.parse(e.data)));
    events.addEventListener('status', (e) => {
      const update = JSON.parse(e.data);
      const message = state.messages.get(update.id);
      if (!message) return;
      message.status = update.status;
      message.error = update.error;
      showStatus(message);
    });
    events.addEventListener('identity', (e) => applyIdentity(JSON.parse(e.data)));
    events.addEventListener('typing', startTyping);
    events.addEventListener('webhook', (e) => {
      const result = JSON.parse(e.data);
      if (result.ok) hideBotError();
      else showBotError(`The bot did not accept the webhook at ${result.url}: ${result.error || `HTTP ${result.response_status}`}`);
    });
    events.addEventListener('open', () => setSubtitle('Business account'));
    events.addEventListener('error', () => setSubtitle('reconnecting…'));
  }

  /** How the customer appears: "+491701234567" or "@kim.k". */
  function handle(identity) {
    if (identity.wa_id) return `+${identity.wa_id}`;
    return identity.username ? `@${identity.username}` : identity.user_id;
  }

  /** The customer's ids changed (or became known): relabel, and follow a new number or
   *  user id in the URL and the event stream (the old ids stop working). */
  function applyIdentity(identity) {
    if (!identity || !identity.user_id) return;
    state.identity = identity;
    $('me-label').textContent = `${state.name} (${handle(identity)})`;
    $('me-user-id').textContent = identity.user_id;
    if (state.chatId === identity.user_id || state.chatId === identity.wa_id) return;
    state.chatId = identity.wa_id || identity.user_id;
    sessionStorage.setItem(`sim.name.${state.chatId}`, state.name);
    history.replaceState(null, '', `#/chat/${state.chatId}`);
    connect();
  }

  function openChat(chatId, name) {
    state.chatId = chatId;
    state.identity = null;
    state.name = name;
    state.cart.clear();
    updateCartButton();
    clearPendingContext();
    sessionStorage.setItem(`sim.name.${chatId}`, name);
    localStorage.setItem('sim.lastName', name);
    $('me-label').textContent = `${name} (${/^\d+$/.test(chatId) ? `+${chatId}` : chatId})`;
    $('me-user-id').textContent = '';
    document.title = `${name} · ${state.config.shop_name} · WhatsApp simulator`;
    $('start').hidden = true;
    $('chat').hidden = false;
    resetChatView();
    connect();
    $('composer').focus();
  }

  function closeChat() {
    if (state.events) state.events.close();
    state.events = null;
    state.chatId = null;
    state.identity = null;
    $('chat').hidden = true;
    $('start').hidden = false;
    showStart();
  }

  function randomNumber() {
    let digits = '49170';
    for (let i = 0; i < 7; i += 1) digits += Math.floor(Math.random() * 10);
    return digits;
  }

  function showUsernameFields(on) {
    $('username-switch').checked = on;
    $('number-fields').hidden = on;
    $('username-fields').hidden = !on;
  }

  async function showStart() {
    $('name-input').value = localStorage.getItem('sim.lastName') || '';
    $('number-input').value = randomNumber();
    $('username-input').value = '';
    showUsernameFields(false);
    $('start-error').hidden = true;
    try {
      const chats = await api('/chats');
      const list = $('recent-list');
      list.replaceChildren(...chats.map((chat) => {
        const chatId = chat.wa_id || chat.user_id;
        return h('li', {},
          h('button', { type: 'button', 'data-testid': 'recent-chat',
            onclick: () => { sessionStorage.setItem(`sim.name.${chatId}`, chat.profile_name); location.hash = `#/chat/${chatId}`; } },
          `${chat.profile_name} · ${handle(chat)}`));
      }));
      $('recent').hidden = chats.length === 0;
    } catch (_) {
      $('recent').hidden = true;
    }
  }

  const CHAT_ROUTE = /^#\/chat\/(\d{5,15}|[A-Z]{2}\.[A-Za-z0-9.]{1,140})$/;

  function route() {
    const match = CHAT_ROUTE.exec(location.hash);
    if (match) {
      const chatId = match[1];
      const known = state.identity && [state.identity.user_id, state.identity.wa_id].includes(chatId);
      if (chatId !== state.chatId && !known) openChat(chatId, sessionStorage.getItem(`sim.name.${chatId}`) || 'Customer');
    } else if (state.chatId || $('start').hidden) {
      closeChat();
    }
  }

  function startError(text) {
    const error = $('start-error');
    error.textContent = text;
    error.hidden = false;
  }

  /** The start form: a phone customer, or (switch on) a username customer without a number. */
  async function onStart(event) {
    event.preventDefault();
    const name = $('name-input').value.trim();
    if (!name) {
      startError('Please enter a name.');
      return;
    }
    const body = { profile_name: name };
    if ($('username-switch').checked) {
      const username = $('username-input').value.trim().replace(/^@/, '').toLowerCase();
      if (!/^[a-z0-9._]{3,35}$/.test(username)) {
        startError('The username must be 3 to 35 letters, digits, dots or underscores, e.g. kim.k.');
        return;
      }
      Object.assign(body, { username, country: $('country-input').value });
    } else {
      const number = $('number-input').value.replace(/[\s+()-]/g, '');
      if (!/^\d{5,15}$/.test(number)) {
        startError('The number must be 5 to 15 digits including the country code, e.g. 491701234567.');
        return;
      }
      body.wa_id = number;
    }
    let chat;
    try {
      chat = await api('/chats', { method: 'POST', body });
    } catch (error) {
      startError(error.message);
      return;
    }
    const chatId = chat.wa_id || chat.user_id;
    sessionStorage.setItem(`sim.name.${chatId}`, name);
    state.name = name;
    if (location.hash === `#/chat/${chatId}`) openChat(chatId, name);
    else location.hash = `#/chat/${chatId}`;
  }

  async function boot() {
    $('start-form').addEventListener('submit', onStart);
    $('username-switch').addEventListener('change', (e) => {
      showUsernameFields(e.target.checked);
      (e.target.checked ? $('username-input') : $('number-input')).focus();
    });
    $('composer-form').addEventListener('submit', submitComposer);
    $('composer').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) submitComposer(e);
    });
    $('send-image').addEventListener('click', () => {
      const composer = $('composer');
      const caption = composer.value.trim();
      composer.value = '';
      send({ type: 'image', caption: caption || undefined });
    });
    $('send-location').addEventListener('click', () => send({ type: 'location' }));
    $('reply-cancel').addEventListener('click', clearPendingContext);
    $('back').addEventListener('click', () => { location.hash = ''; });
    $('cart-open').addEventListener('click', openCart);
    $('profile-open').addEventListener('click', openProfile);
    $('profile-open').addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); openProfile(); } });
    $('sheet-close').addEventListener('click', closeSheet);
    $('sheet-backdrop').addEventListener('click', (e) => { if (e.target === e.currentTarget) closeSheet(); });
    document.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeSheet(); });
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState !== 'visible') return;
      for (const message of state.messages.values()) queueSeen(message);
    });
    window.addEventListener('hashchange', route);

    const [config, catalog] = await Promise.all([api('/status?probe=1'), api('/catalog')]);
    state.config = config;
    for (const product of catalog.products) state.catalog.set(product.retailer_id, product);
    document.querySelectorAll('.shop-name').forEach((el) => { el.textContent = config.shop_name; });
    document.querySelector('.avatar').textContent = config.shop_name.slice(0, 1);
    document.title = `${config.shop_name} · WhatsApp simulator`;
    $('webhook-url').textContent = config.webhook_url;
    $('graph-url').textContent = `${location.origin}/v21.0/${config.phone_number_id}/messages`;
    if (config.bot_reachable === false) {
      showBotError(`The bot is not reachable at ${config.webhook_url} (${config.probe_error}). Start it, then send again.`);
    }
    document.body.dataset.ready = 'true';
    if (/^#\/chat\//.test(location.hash)) route();
    else showStart();
  }

  boot().catch((error) => {
    document.body.prepend(h('p', { class: 'banner', role: 'alert' }, `Simulator page failed to start: ${error.message}`));
  });
})();
