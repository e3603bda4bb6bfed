// Modal dialogs on the native <dialog>: it traps focus and closes on Esc;
// here focus also goes back to whatever opened it.

import { h } from './dom.js';

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
 * cancel, Esc or a click on the backdrop.
 */
export function confirmDialog({ title, body, confirm, opener }) {
  const dialog = document.getElementById('confirm');
  const heading = dialog.querySelector('#confirm-title');
  const content = dialog.querySelector('.dialog-body');
  const ok = dialog.querySelector('[data-confirm]');
  const cancel = dialog.querySelector('[data-cancel]');
  heading.textContent = title;
  content.textContent = '';
  content.append(...(Array.isArray(body) ? body : [body]));
  ok.textContent = confirm;
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
