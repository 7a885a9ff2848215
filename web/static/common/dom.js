/* DOM helper shared by the pages (desk, campaigns): `h(tag, attrs, ...children)` builds
 * an element. Text always goes in as text nodes or textContent, never as HTML: customer,
 * bot and agent texts are untrusted. Attributes: class, text, testid (data-testid), on*
 * (event listeners), anything else as an attribute (true -> present, false/null -> absent).
 */
window.shopDom = (function () {
  'use strict';

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key === 'text') el.textContent = value;
      else if (key === 'testid') el.dataset.testid = value;
      else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  return { h };
})();
