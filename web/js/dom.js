// Small DOM and formatting helpers. Everything the page shows is built with
// these (text is always set as text, never parsed as HTML).

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Creates an element: h('button', {class: 'btn', onclick: f}, 'Text', child). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Sets an element's text only when it changed (no needless layout work). */
export function setText(el, text) {
  const value = String(text ?? '');
  if (el.textContent !== value) el.textContent = value;
}

export function setAttr(el, name, value) {
  if (value === null || value === undefined || value === false) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
    return;
  }
  const v = value === true ? '' : String(value);
  if (el.getAttribute(name) !== v) el.setAttribute(name, v);
}

// 24×24 stroke icons, drawn with paths only.
const ICONS = {
  check: 'M5 12.5l4.5 4.5L19 7.5',
  up: 'M12 19V5M6 11l6-6 6 6',
  question: 'M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18zM9.7 9.6a2.4 2.4 0 1 1 3.3 2.2c-.6.3-1 .8-1 1.5v.4M12 16.8h.01',
  partial: 'M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zm0 0v18',
  x: 'M6 6l12 12M18 6L6 18',
  refresh: 'M20 11a8 8 0 0 0-14.8-3.5M4 5v4h4M4 13a8 8 0 0 0 14.8 3.5M20 19v-4h-4',
  undo: 'M9 14L4 9l5-5M4 9h10a6 6 0 0 1 0 12h-3',
  search: 'M11 18a7 7 0 1 0 0-14 7 7 0 0 0 0 14zm5-2l4.5 4.5',
  clock: 'M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18zm0-13v4.5l3 2',
  logout: 'M15 4h3a2 2 0 0 1 2 2v12a2 2 0 0 1-2 2h-3M10 16l-4-4 4-4M6 12h10',
  sun: 'M12 16a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM12 2v2M12 20v2M4.9 4.9l1.4 1.4M17.7 17.7l1.4 1.4M2 12h2M20 12h2M4.9 19.1l1.4-1.4M17.7 6.3l1.4-1.4',
  moon: 'M20 14.5A8 8 0 0 1 9.5 4a8 8 0 1 0 10.5 10.5z',
  auto: 'M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18zm0-18v18a9 9 0 0 0 0-18z',
  alert: 'M12 9v4M12 17h.01M10.3 3.9L2.4 18a2 2 0 0 0 1.7 3h15.8a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0z',
  ship: 'M3 15h18l-2.6 4.3a2 2 0 0 1-1.7.9H7.3a2 2 0 0 1-1.7-.9zM7 13V6h4v7M13 13V9h4v4',
  box: 'M21 8l-9-5-9 5v8l9 5 9-5zM3 8l9 5 9-5M12 13v8',
  link: 'M10 14a4 4 0 0 0 5.7 0l3-3a4 4 0 0 0-5.7-5.7l-1 1M14 10a4 4 0 0 0-5.7 0l-3 3a4 4 0 0 0 5.7 5.7l1-1',
  arrow: 'M5 12h14M13 6l6 6-6 6',
  equal: 'M5 9h14M5 15h14',
  chevron: 'M7 10l5 5 5-5',
  layers: 'M12 3l9 4.5-9 4.5-9-4.5zM3 12l9 4.5 9-4.5M3 16.5l9 4.5 9-4.5',
  info: 'M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18zM12 11v5M12 7.8h.01',
  server: 'M4 4h16v6H4zM4 14h16v6H4zM8 7h.01M8 17h.01',
};

/**
 * One card per item inside `root`, in the items' order: the cards in `cards`
 * (key → card with `.el`) are reused, missing ones made by `make(item)` (and
 * marked `enter` when `animate`), unlisted ones removed. Only cards out of
 * place are moved, so focus and scroll stay put. Returns the sum of what
 * `update(card, item)` returns (the rows it shows).
 */
export function reconcile(root, cards, items, { key, make, update, animate }) {
  const seen = new Set();
  let shown = 0;
  let previous = null;
  for (const item of items) {
    const k = key(item);
    seen.add(k);
    let card = cards.get(k);
    if (!card) {
      card = make(item);
      cards.set(k, card);
      if (animate) card.el.classList.add('enter');
    }
    shown += update(card, item);
    const wanted = previous ? previous.nextSibling : root.firstChild;
    if (wanted !== card.el) root.insertBefore(card.el, wanted);
    previous = card.el;
  }
  for (const [k, card] of cards) {
    if (!seen.has(k)) {
      card.el.remove();
      cards.delete(k);
    }
  }
  return shown;
}

export function icon(name, cls = '') {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.setAttribute('class', `icon ${cls}`.trim());
  const path = document.createElementNS(SVG_NS, 'path');
  path.setAttribute('d', ICONS[name] || ICONS.question);
  svg.append(path);
  return svg;
}

/** Replaces an element's icon (its first svg child) when the name changed. */
export function setIcon(el, name, cls = '') {
  if (el.dataset.icon === name) return;
  el.dataset.icon = name;
  const old = el.querySelector(':scope > svg.icon');
  const fresh = icon(name, cls);
  if (old) old.replaceWith(fresh);
  else el.prepend(fresh);
}

/** `sha256:1234567890` → `1234567890`; `unknown` stays. */
export function shortDigest(digest) {
  if (!digest) return 'unknown';
  const i = digest.indexOf(':');
  return i >= 0 ? digest.slice(i + 1, i + 13) : digest;
}

const UNITS = [
  [60, 'second', 1],
  [3600, 'minute', 60],
  [86400, 'hour', 3600],
  [604800, 'day', 86400],
  [Infinity, 'week', 604800],
];
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/** "3 minutes ago" for an RFC 3339 time; "" when there is none. */
export function ago(iso, now = Date.now()) {
  if (!iso) return '';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const seconds = Math.round((t - now) / 1000);
  if (Math.abs(seconds) < 10) return 'just now';
  for (const [limit, unit, size] of UNITS) {
    if (Math.abs(seconds) < limit) return relative.format(Math.round(seconds / size), unit);
  }
  return '';
}

const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

export function when(iso) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? '' : absolute.format(new Date(t));
}

export function bytes(n) {
  if (!Number.isFinite(n) || n <= 0) return '0 B';
  const units = ['B', 'kB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i += 1;
  }
  return `${n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

/** A live region announcement for screen readers. */
export function announce(text) {
  const region = document.getElementById('announcer');
  if (!region) return;
  region.textContent = '';
  // A fresh text node after a tick is read even when the text repeats.
  setTimeout(() => {
    region.textContent = text;
  }, 30);
}

let toastTimer = 0;

/** A short message at the bottom of the screen; errors stay longer. */
export function toast(text, kind = 'info') {
  const box = document.getElementById('toast');
  if (!box) return;
  box.textContent = '';
  box.append(icon(kind === 'error' ? 'alert' : 'check'), h('span', {}, text));
  box.className = `toast toast-${kind} show`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.classList.remove('show'), kind === 'error' ? 8000 : 3500);
}
