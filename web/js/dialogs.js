// Modal dialogs on the native <dialog>: it traps focus and closes on Esc;
// here focus also goes back to whatever opened it. And the small menus that
// open from a button (update to a chosen tag, ways to check).

import { h, setAttr } from './dom.js';

/** Opens `dialog` modally; on close, focus returns to the opener. */
export function openModal(dialog, opener = document.activeElement) {
  if (dialog.open) return;
  dialog.addEventListener(
    'close',
    () => {
      if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
    },
    { once: true },
  );
  dialog.showModal();
}

/**
 * Asks before doing something big. Resolves true on confirm, false on
 * cancel, Esc or a click on the backdrop. `tone: 'danger'` paints the
 * confirm button as a warning (a major version change).
 */
export function confirmDialog({ title, body, confirm, opener, tone = '' }) {
  const dialog = document.getElementById('confirm');
  const heading = dialog.querySelector('#confirm-title');
  const content = dialog.querySelector('.dialog-body');
  const ok = dialog.querySelector('[data-confirm]');
  const cancel = dialog.querySelector('[data-cancel]');
  heading.textContent = title;
  content.textContent = '';
  content.append(...(Array.isArray(body) ? body : [body]));
  ok.textContent = confirm;
  ok.className = `btn ${tone === 'danger' ? 'btn-danger' : 'btn-primary'}`;
  dialog.dataset.tone = tone;
  return new Promise((resolve) => {
    let answer = false;
    const onOk = () => {
      answer = true;
      dialog.close();
    };
    const onCancel = () => dialog.close();
    const onBackdrop = (event) => {
      if (event.target === dialog) dialog.close();
    };
    ok.addEventListener('click', onOk);
    cancel.addEventListener('click', onCancel);
    dialog.addEventListener('click', onBackdrop);
    dialog.addEventListener(
      'close',
      () => {
        ok.removeEventListener('click', onOk);
        cancel.removeEventListener('click', onCancel);
        dialog.removeEventListener('click', onBackdrop);
        resolve(answer);
      },
      { once: true },
    );
    openModal(dialog, opener);
    // The safe choice has focus: Enter does not start anything by accident.
    cancel.focus();
  });
}

/** A list of names for a dialog body. */
export function nameList(items) {
  return h('ul', { class: 'dialog-list' }, items);
}

let menuCount = 0;

/**
 * A menu that opens from a button (the WAI-ARIA menu button pattern): Enter,
 * Space or ↓ open it on the first item, ↑ on the last; ↑ ↓ Home End move,
 * Esc closes it back onto the button, Tab closes it and moves on, a click
 * elsewhere closes it. Its items are made when it opens, from `items()`:
 * `[{label, content, hint, onSelect}]` (`label` is the accessible name,
 * `content` what is shown, `label` when absent).
 */
export class Menu {
  constructor(button, items) {
    this.button = button;
    this.items = items;
    this.entries = [];
    menuCount += 1;
    const id = `menu-${menuCount}`;
    this.popup = h('div', { class: 'menu', role: 'menu', id, hidden: true });
    this.el = h('div', { class: 'menu-wrap' }, button, this.popup);
    setAttr(button, 'aria-haspopup', 'menu');
    setAttr(button, 'aria-expanded', 'false');
    setAttr(button, 'aria-controls', id);
    button.addEventListener('click', () => (this.isOpen ? this.close() : this.open('first')));
    button.addEventListener('keydown', (event) => {
      if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
        event.preventDefault();
        this.open(event.key === 'ArrowUp' ? 'last' : 'first');
      }
    });
    this.popup.addEventListener('keydown', (event) => this.onKey(event));
    this.el.addEventListener('focusout', (event) => {
      if (this.isOpen && event.relatedTarget && !this.el.contains(event.relatedTarget)) this.close({ restore: false });
    });
    this.onOutside = (event) => {
      if (!this.el.contains(event.target)) this.close({ restore: false });
    };
  }

  get isOpen() {
    return !this.popup.hidden;
  }

  open(where = 'first') {
    if (this.isOpen || this.button.disabled) return;
    const specs = this.items();
    if (specs.length === 0) return;
    this.popup.textContent = '';
    this.entries = specs.map((spec) => {
      const item = h(
        'button',
        { type: 'button', role: 'menuitem', tabindex: '-1', class: 'menu-item', 'aria-label': spec.content ? spec.label : null },
        h('span', { class: 'menu-item-main' }, spec.content || spec.label),
        spec.hint ? h('span', { class: 'menu-item-hint' }, spec.hint) : null,
      );
      item.addEventListener('click', () => {
        this.close();
        spec.onSelect();
      });
      return item;
    });
    this.popup.append(...this.entries);
    this.popup.hidden = false;
    setAttr(this.button, 'aria-expanded', 'true');
    this.place();
    document.addEventListener('pointerdown', this.onOutside, true);
    (where === 'last' ? this.entries.at(-1) : this.entries[0]).focus();
  }

  /** Closes it; focus goes back to the button unless it is moving elsewhere. */
  close({ restore = true } = {}) {
    if (!this.isOpen) return;
    this.popup.hidden = true;
    setAttr(this.button, 'aria-expanded', 'false');
    document.removeEventListener('pointerdown', this.onOutside, true);
    if (restore && this.button.isConnected && !this.button.disabled) this.button.focus();
  }

  /** Under the button, its end edge on the button's; moved in where the viewport would cut it. */
  place() {
    const style = this.popup.style;
    style.right = '';
    const rect = this.popup.getBoundingClientRect();
    const room = document.documentElement.clientWidth - 8;
    if (rect.left < 8) style.right = `${rect.left - 8}px`;
    else if (rect.right > room) style.right = `${rect.right - room}px`;
  }

  onKey(event) {
    const i = this.entries.indexOf(document.activeElement);
    const n = this.entries.length;
    const go = (j) => {
      event.preventDefault();
      this.entries[(j + n) % n].focus();
    };
    switch (event.key) {
      case 'ArrowDown':
        go(i + 1);
        break;
      case 'ArrowUp':
        go(i < 0 ? n - 1 : i - 1);
        break;
      case 'Home':
        go(0);
        break;
      case 'End':
        go(n - 1);
        break;
      case 'Escape':
        event.preventDefault();
        event.stopPropagation();
        this.close();
        break;
      case 'Tab':
        // Back on the button first: the Tab then moves on from there.
        this.close();
        break;
      default:
        break;
    }
  }
}
