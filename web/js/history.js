// The history panel: finished updates, newest first, from GET /api/history
// and then live from the websocket's `history` messages.

import { api, describe } from './api.js';
import { h, icon, shortDigest, ago, when } from './dom.js';

const LIMIT = 100;

const RESULTS = {
  updated: { word: 'Updated', icon: 'check', status: 'uptodate' },
  rolled_back: { word: 'Rolled back', icon: 'undo', status: 'failed' },
  failed: { word: 'Failed', icon: 'x', status: 'failed' },
  unchanged: { word: 'Unchanged', icon: 'equal', status: 'unknown' },
};

export class History {
  /** @param {{isService?: (name: string, host?: string) => boolean}} options  which entries are Swarm services' */
  constructor(panel, { isService = () => false } = {}) {
    this.panel = panel;
    this.isService = isService;
    this.list = panel.querySelector('.history-list');
    this.state = panel.querySelector('.history-state');
    this.entries = null;
    this.loading = null;
    /** With several engines each entry names its container's. */
    this.several = false;
  }

  /** Reads the history once it is first wanted (and again after `reset`). */
  async load(force = false) {
    if (this.loading) return this.loading;
    if (this.entries && !force) return null;
    this.showState('Loading history…', false);
    this.loading = api(`/api/history?limit=${LIMIT}`)
      .then((entries) => {
        this.entries = Array.isArray(entries) ? entries : [];
        this.render();
      })
      .catch((error) => {
        if (error.status === 401) return;
        this.showState(`Could not load the history. ${describe(error)}`, true);
      })
      .finally(() => {
        this.loading = null;
      });
    return this.loading;
  }

  reset() {
    this.entries = null;
    this.list.textContent = '';
  }

  /** A `history` message: prepended when the list is loaded. */
  add(entry) {
    if (!this.entries || !entry) return;
    this.entries = [entry, ...this.entries.filter((e) => e.id !== entry.id)].slice(0, LIMIT);
    if (this.panel.open) this.render();
  }

  showState(text, retry) {
    this.state.hidden = false;
    this.state.textContent = '';
    this.state.append(h('p', {}, text));
    if (retry) {
      this.state.append(h('button', { type: 'button', class: 'btn btn-secondary', onclick: () => this.load(true) }, 'Retry'));
    }
  }

  render() {
    this.list.textContent = '';
    if (!this.entries || this.entries.length === 0) {
      this.showState('No updates yet. Every update, automatic or by hand, is listed here with its outcome.', false);
      return;
    }
    this.state.hidden = true;
    const now = Date.now();
    for (const e of this.entries) {
      // An entry's own `kind` says it; without one, a name among the services does.
      const service = e.kind ? e.kind === 'service' : this.isService(e.container_name, e.host);
      this.list.append(entryItem(e, now, { service, several: this.several }));
    }
  }

  tick() {
    if (this.panel.open && this.entries?.length) this.render();
  }
}

/**
 * One entry; a service's update (recorded under its name) is marked as one,
 * and with several engines each entry names its container's.
 */
function entryItem(e, now, { service, several }) {
  const result = RESULTS[e.result] || { word: e.result, icon: 'question', status: 'unknown' };
  const from = e.from_digest ? shortDigest(e.from_digest) : '—';
  const to = e.to_digest ? shortDigest(e.to_digest) : '—';
  return h(
    'li',
    { class: 'history-item', dataset: { result: e.result, kind: service ? 'service' : 'container' } },
    h(
      'div',
      { class: 'history-head' },
      h('span', { class: 'badge', dataset: { status: result.status } }, icon(result.icon), h('span', { class: 'badge-word' }, result.word)),
      h('strong', { class: 'history-name' }, e.container_name),
      several && e.host ? h('span', { class: 'host-tag' }, icon('server'), e.host) : null,
      h('time', { datetime: e.finished_at, title: when(e.finished_at), class: 'history-when' }, ago(e.finished_at, now)),
    ),
    h(
      'div',
      { class: 'history-image' },
      service ? h('span', { class: 'history-kind', title: 'A Swarm service, updated by Swarm task by task' }, icon('layers'), 'service') : null,
      e.image,
    ),
    h(
      'div',
      { class: 'history-digests' },
      h('code', { title: e.from_digest || '' }, from),
      h('span', { class: 'arrow', 'aria-label': 'to' }, '→'),
      h('code', { title: e.to_digest || '' }, to),
    ),
    e.error ? h('p', { class: 'history-reason' }, e.error) : null,
  );
}
