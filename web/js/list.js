// The main list: one card per image group, one row per container. Cards and
// rows are keyed (image; engine and container name) and updated in place, so
// a live change touches only what changed, focus stays where it was and
// nothing jumps; 200 containers filter by toggling `hidden`. With several
// engines each row names its engine.

import { h, icon, reconcile, setAttr, setText, shortDigest, ago, when, bytes } from './dom.js';
import { Menu } from './dialogs.js';
import { keyOf, overallPercent, phaseOf } from './jobs.js';

export const STATUS = {
  uptodate: { word: 'Up to date', icon: 'check' },
  outdated: { word: 'Outdated', icon: 'up' },
  partial: { word: 'Partly outdated', icon: 'partial' },
  unknown: { word: 'Unknown', icon: 'question' },
  updating: { word: 'Updating', icon: 'refresh' },
  rolling_back: { word: 'Rolling back', icon: 'undo' },
  failed: { word: 'Update failed', icon: 'x' },
};

export function badge(status, cls = '') {
  const el = h('span', { class: `badge ${cls}`.trim() });
  setBadge(el, status);
  return el;
}

export function setBadge(el, status) {
  const info = STATUS[status] || STATUS.unknown;
  if (el.dataset.status === status) return;
  el.dataset.status = status;
  el.textContent = '';
  el.append(icon(info.icon), h('span', { class: 'badge-word' }, info.word));
}

/** Whether a container (of `group`) matches the search text. */
export function matches(group, item, q) {
  if (!q) return true;
  const needle = q.toLowerCase();
  return (
    item.container_name.toLowerCase().includes(needle) ||
    group.image.toLowerCase().includes(needle) ||
    item.container_id.toLowerCase().startsWith(needle)
  );
}

export function splitImage(image) {
  // Tag or digest after the last path segment: `host:5000/app:1.2` → `host:5000/app`, `:1.2`.
  const at = image.indexOf('@');
  if (at >= 0) return [image.slice(0, at), image.slice(at)];
  const slash = image.lastIndexOf('/');
  const colon = image.lastIndexOf(':');
  if (colon > slash) return [image.slice(0, colon), image.slice(colon)];
  return [image, ''];
}

/** The tag of a group's image (`app:1.2` → `1.2`); null for a digest pin or none. */
export function tagOf(image) {
  const [, rest] = splitImage(image);
  return rest.startsWith(':') ? rest.slice(1) : null;
}

/** Version kinds, smallest first. */
export const KINDS = ['patch', 'minor', 'major'];

/** A group's `newer`, only the kinds it names with a tag. */
export function newerOf(group) {
  const newer = group && group.newer && typeof group.newer === 'object' ? group.newer : {};
  const out = {};
  for (const kind of KINDS) if (typeof newer[kind] === 'string' && newer[kind]) out[kind] = newer[kind];
  return out;
}

const KIND_TITLES = {
  digest: 'Same tag, new image',
  patch: 'A newer patch version',
  minor: 'A newer minor version',
  major: 'A newer major version: it may need changes',
};

export function kindBadge(kind) {
  return h('span', { class: `kind kind-${kind}`, title: KIND_TITLES[kind] }, kind);
}

const POLICY_TITLES = {
  patch: 'Automatic updates may move it to newer patch versions (label shipshape.update=patch)',
  minor: 'Automatic updates may move it to newer patch and minor versions (label shipshape.update=minor)',
  major: 'Automatic updates may move it to any newer version, major ones too (label shipshape.update=major)',
};

/** The `→` between two versions or digests, read as “to”. */
export function arrow() {
  return h('span', { class: 'arrow', role: 'img', 'aria-label': 'to' }, '→');
}

/**
 * The image name in pieces that wrap only after a `/` (a long piece still
 * breaks rather than overflow); a registry host is muted, the tag too.
 */
export function imageName(image) {
  const [name, tag] = splitImage(image);
  const parts = name.split('/');
  const host = parts.length > 1 && /[.:]|^localhost$/.test(parts[0]);
  return parts.map((part, i) => {
    const last = i === parts.length - 1;
    const cls = host && i === 0 ? 'seg seg-host' : 'seg';
    return h('span', { class: cls }, last ? [part, h('span', { class: 'image-tag' }, tag)] : `${part}/`);
  });
}

/**
 * A keyboard user keeps their place: when the control that had focus is
 * gone or hidden by a change (Update becomes a progress bar, Retry an
 * outcome), focus moves to `fallback` in the same row or card.
 */
export function keepFocus(focused, scope, fallback) {
  if (!focused) return;
  const gone = !scope.contains(focused) || focused.hidden || focused.disabled || focused.closest('[hidden]');
  if (gone && fallback && !fallback.disabled) fallback.focus();
}

const PHASE_WORDS = {
  connecting: 'Starting',
  pulling: 'Pulling',
  recreating: 'Recreating',
  verifying: 'Verifying',
  done: 'Updated',
  error: 'Failed',
};
const STEPS = [
  ['pulling', 'Pull'],
  ['recreating', 'Recreate'],
  ['verifying', 'Verify'],
];

export class List {
  /**
   * @param {HTMLElement} root
   * @param {object} actions  update(group, item), updateAll(group), updateTo(group, tag, kind, opener),
   *   toggleAuto(item), retry(key), dismiss(key) — a key is the container's engine and name (`keyOf`)
   */
  constructor(root, actions) {
    this.root = root;
    this.actions = actions;
    this.cards = new Map();
  }

  /**
   * @param {Array} groups   what to show (the view, plus rows kept during updates)
   * @param {Jobs} jobs
   * @param {{status: string, q: string, host: string}} filter
   * @param {{hosts: Array|null}} engines  the engines when there are several (rows then name theirs), else null
   * @returns {number} how many containers are shown
   */
  render(groups, jobs, filter, { hosts = null } = {}) {
    // A container that moves to another group (an update to another tag)
    // takes the keyboard focus along: its row is a new one in another card.
    const active = document.activeElement;
    const hadFocus = !!active && active !== this.root && this.root.contains(active);
    const focusKeys = hadFocus ? keysAround(active) : [];
    const shown = reconcile(this.root, this.cards, groups, {
      key: (group) => group.image,
      make: (group) => new Card(group.image, this.actions),
      update: (card, group) => card.update(group, jobs, filter, hosts),
      animate: this.rendered,
    });
    this.rendered = true;
    if (hadFocus && !this.root.contains(document.activeElement)) this.refocus(focusKeys);
    return shown;
  }

  refocus(keys) {
    for (const key of keys) {
      for (const card of this.cards.values()) {
        const row = card.rows.get(key);
        if (row && !row.el.hidden && !card.el.hidden) {
          row.focusTarget().focus();
          return;
        }
      }
    }
    this.root.focus({ preventScroll: true });
  }

  /** The relative times ("3 minutes ago") move on. */
  tick() {
    for (const card of this.cards.values()) card.tick();
  }
}

/** The containers a focused element speaks for: its row's, or every row of its card. */
function keysAround(el) {
  const keyOfRow = (r) => keyOf(r.dataset.host, r.dataset.name);
  const row = el.closest('li.row');
  if (row) return [keyOfRow(row)];
  const card = el.closest('article.card');
  return card ? [...card.querySelectorAll('li.row')].map(keyOfRow) : [];
}

class Card {
  constructor(image, actions) {
    this.image = image;
    this.actions = actions;
    this.rows = new Map();
    this.group = null;
    this.badge = badge('unknown', 'badge-group');
    this.digest = h('code', { class: 'digest' });
    this.checked = h('time');
    this.checkedWrap = h('span', { class: 'meta-item' }, 'checked ', this.checked);
    this.versions = h('span', { class: 'meta-item versions', hidden: true });
    this.error = h('p', { class: 'card-error', hidden: true });
    this.updateAll = h('button', { type: 'button', class: 'btn btn-secondary update-all', hidden: true });
    this.updateAll.addEventListener('click', () => this.group && actions.updateAll(this.group, this.updateAll));
    // Update to one of the newer tags the group is offered.
    this.updateTo = h('button', { type: 'button', class: 'btn btn-secondary update-to' }, h('span', {}, 'Update to…'), icon('chevron', 'chevron'));
    this.tagMenu = new Menu(this.updateTo, () => this.tagItems());
    this.tagMenu.el.hidden = true;
    this.actionsEl = h('div', { class: 'card-actions' }, this.updateAll, this.tagMenu.el);
    this.list = h('ul', { class: 'rows', role: 'list' });
    this.count = h('span', { class: 'count' });
    this.el = h(
      'article',
      { class: 'card', 'aria-label': image, dataset: { image } },
      h(
        'header',
        { class: 'card-head' },
        h(
          'div',
          { class: 'card-title' },
          icon('box', 'card-icon'),
          h('h2', { class: 'image', title: image }, imageName(image)),
          this.badge,
        ),
        h(
          'div',
          { class: 'card-meta' },
          this.versions,
          h('span', { class: 'meta-item' }, 'registry digest ', this.digest),
          this.checkedWrap,
          this.count,
        ),
        this.error,
        this.actionsEl,
      ),
      this.list,
    );
  }

  update(group, jobs, filter, hosts) {
    const current = document.activeElement;
    const focused = current === this.updateAll || current === this.updateTo ? current : null;
    this.group = group;
    setBadge(this.badge, group.status);
    this.el.dataset.status = group.status;
    setText(this.digest, shortDigest(group.remote_digest));
    setAttr(this.digest, 'title', group.remote_digest);
    this.checkedAt = group.checked_at;
    this.checkedWrap.hidden = !group.checked_at;
    this.tick();
    this.renderVersions(group);
    if (group.error) {
      this.error.hidden = false;
      if (this.error.dataset.text !== group.error) {
        this.error.dataset.text = group.error;
        this.error.textContent = '';
        this.error.append(icon('alert'), h('span', {}, group.error));
      }
    } else {
      this.error.hidden = true;
    }
    const n = group.containers.length;
    setText(this.count, `${n} container${n === 1 ? '' : 's'}`);

    const active = (c) => jobs.isActive(keyOf(c.host, c.container_name));
    const outdated = group.containers.filter((c) => c.status === 'outdated' && !active(c));
    const busy = group.containers.some(active);
    // One container: its own Update button is the same thing.
    this.updateAll.hidden = n < 2 || (outdated.length === 0 && !busy);
    if (busy && outdated.length === 0) {
      setText(this.updateAll, 'Updating…');
      this.updateAll.disabled = true;
    } else {
      setText(this.updateAll, `Update all (${n})`);
      this.updateAll.disabled = busy;
    }
    setAttr(this.updateAll, 'aria-label', `Update all containers of ${group.image}`);

    const offered = KINDS.some((kind) => newerOf(group)[kind]);
    const present = group.containers.some((c) => !c.gone);
    this.tagMenu.el.hidden = !offered || !present;
    this.updateTo.disabled = busy;
    if ((busy || this.tagMenu.el.hidden) && this.tagMenu.isOpen) this.tagMenu.close({ restore: false });
    setAttr(this.updateTo, 'aria-label', `Update to a newer version: ${group.image}`);
    this.actionsEl.hidden = this.updateAll.hidden && this.tagMenu.el.hidden;

    const q = filter.q.trim();
    const seen = new Set();
    let visible = 0;
    let previous = null;
    for (const item of group.containers) {
      const key = keyOf(item.host, item.container_name);
      seen.add(key);
      let row = this.rows.get(key);
      if (!row) {
        row = new Row(key, item, this.actions);
        this.rows.set(key, row);
        // Rows that come later fade in; the first render just appears.
        if (this.rendered) row.el.classList.add('enter');
      }
      row.update(group, item, jobs, hosts);
      const show =
        matches(group, item, q) &&
        (filter.status === 'all' || filter.status === item.status) &&
        (!filter.host || filter.host === item.host);
      row.el.hidden = !show;
      if (show) visible += 1;
      const wanted = previous ? previous.nextSibling : this.list.firstChild;
      if (wanted !== row.el) this.list.insertBefore(row.el, wanted);
      previous = row.el;
    }
    for (const [key, row] of this.rows) {
      if (!seen.has(key)) {
        row.el.remove();
        this.rows.delete(key);
      }
    }
    this.el.hidden = visible === 0;
    this.rendered = true;
    const firstSwitch = this.list.querySelector('li.row:not([hidden]) .switch');
    if (firstSwitch) keepFocus(focused, this.el, firstSwitch);
    return visible;
  }

  /**
   * What the version data says: `1.0.0 → 2.0.0 MAJOR` for a version tag,
   * `latest = 1.1.0 → 1.1.1` for a tag such as `latest`, the release notes,
   * and a quiet note (its reason as a tooltip) when the tags could not be
   * listed.
   */
  renderVersions(group) {
    const newer = newerOf(group);
    const tag = tagOf(group.image);
    const key = JSON.stringify([
      group.image,
      group.version,
      newer,
      group.update_kind,
      group.release_notes,
      group.latest_version ?? null,
      group.versions_error ?? null,
      !!group.error,
    ]);
    if (this.versions.dataset.key === key) return;
    this.versions.dataset.key = key;
    this.versions.textContent = '';
    const parts = [];
    const target = newer.major || newer.minor || newer.patch;
    const version = group.version || null;
    const latest = group.latest_version || null;
    if (tag && version === tag) {
      // The tag is a version: the title shows it, so only what is newer.
      if (target) parts.push(h('span', { class: 'version' }, version, arrow(), target));
    } else if (tag && (version || latest)) {
      const pieces = [h('span', { class: 'version-tag' }, tag)];
      if (version && latest && version !== latest) pieces.push(h('span', { class: 'eq' }, '='), version, arrow(), latest);
      else if (version || group.status !== 'outdated') pieces.push(h('span', { class: 'eq' }, '='), version || latest);
      else pieces.push(arrow(), latest);
      parts.push(h('span', { class: 'version' }, pieces));
    }
    // `digest` alone says no more than the Outdated badge and the rows' digests.
    if (group.update_kind && (group.update_kind !== 'digest' || parts.length > 0)) parts.push(kindBadge(group.update_kind));
    if (group.release_notes && /^https?:\/\//.test(group.release_notes)) {
      parts.push(
        h('a', { href: group.release_notes, target: '_blank', rel: 'noopener noreferrer', class: 'notes' }, icon('link'), 'Release notes'),
      );
    }
    // A registry that cannot be reached says so in the card already.
    if (group.versions_error && !group.error) {
      parts.push(
        h(
          'span',
          { class: 'versions-note', title: `No version data: ${group.versions_error}` },
          icon('info'),
          'no version data',
          h('span', { class: 'sr-only' }, `: ${group.versions_error}`),
        ),
      );
    }
    this.versions.hidden = parts.length === 0;
    this.versions.append(...parts);
  }

  /** The tags the group may move to, smallest change first. */
  tagItems() {
    const group = this.group;
    if (!group) return [];
    const newer = newerOf(group);
    return KINDS.filter((kind) => newer[kind]).map((kind) => ({
      label: `Update to ${newer[kind]} (${kind})`,
      content: [h('span', { class: 'menu-tag' }, newer[kind]), kindBadge(kind)],
      hint: kind === 'major' ? 'A major version: read what changed first' : null,
      onSelect: () => this.group && this.actions.updateTo(this.group, newer[kind], kind, this.updateTo),
    }));
  }

  tick() {
    if (!this.checkedAt) return;
    setText(this.checked, ago(this.checkedAt));
    setAttr(this.checked, 'datetime', this.checkedAt);
    setAttr(this.checked, 'title', when(this.checkedAt));
  }
}

let rowCount = 0;

class Row {
  constructor(key, item, actions) {
    rowCount += 1;
    const name = item.container_name;
    this.key = key;
    this.name = name;
    this.actions = actions;
    this.item = null;
    this.group = null;
    this.nameEl = h('span', { class: 'name' }, name);
    this.idEl = h('code', { class: 'id' });
    // The engine it runs on: shown only when there are several.
    this.hostEl = h('span', { class: 'host-tag', hidden: true }, icon('server'), h('span', { class: 'host-name' }, item.host || ''));
    this.local = h('code', { class: 'digest' });
    this.remote = h('code', { class: 'digest' });
    this.arrow = arrow();
    this.digests = h('div', { class: 'row-digests' }, h('span', { class: 'label' }, 'digest'), this.local, this.arrow, this.remote);
    this.badge = badge('unknown');
    // How far automatic updates may move it (the `shipshape.update` label):
    // the switch's second line, its description.
    this.policy = h('span', { class: 'policy', id: `policy-${rowCount}`, hidden: true });
    this.switchEl = h(
      'button',
      { type: 'button', role: 'switch', class: 'switch', 'aria-checked': 'false', 'aria-label': `Auto-update ${name}` },
      h('span', { class: 'switch-track' }, h('span', { class: 'switch-thumb' })),
      h('span', { class: 'switch-text' }, h('span', { class: 'switch-label' }, 'Auto-update'), this.policy),
    );
    this.switchEl.addEventListener('click', () => this.item && actions.toggleAuto(this.item, this.switchEl));
    this.button = h('button', { type: 'button', class: 'btn btn-primary update' }, 'Update');
    setAttr(this.button, 'aria-label', `Update ${name}`);
    this.button.addEventListener('click', () => this.group && this.item && actions.update(this.group, this.item));
    this.buttonSlot = h('div', { class: 'row-action' }, this.button);
    this.job = h('div', { class: 'row-job', hidden: true });
    this.el = h(
      'li',
      { class: 'row', dataset: { name, ...(item.host ? { host: item.host } : {}) } },
      h('div', { class: 'row-main' }, h('div', { class: 'row-name' }, this.nameEl, this.idEl, this.hostEl), this.digests),
      h('div', { class: 'row-status' }, this.badge),
      h('div', { class: 'row-auto' }, this.switchEl),
      this.buttonSlot,
      this.job,
    );
    this.jobKey = '';
  }

  update(group, item, jobs, hosts) {
    const focused = this.el.contains(document.activeElement) ? document.activeElement : null;
    this.group = group;
    this.item = item;
    this.el.dataset.id = item.container_id;
    this.renderHost(item, hosts);
    setText(this.idEl, item.container_id);
    setAttr(this.idEl, 'title', `container id ${item.container_id}`);
    setText(this.local, shortDigest(item.local_digest));
    setAttr(this.local, 'title', `running ${item.local_digest}`);
    const outdated = item.status === 'outdated';
    this.arrow.hidden = !outdated;
    this.remote.hidden = !outdated;
    setText(this.remote, shortDigest(group.remote_digest));
    setAttr(this.remote, 'title', `newest ${group.remote_digest}`);
    this.el.dataset.status = item.status;
    if (item.gone) this.el.dataset.gone = 'true';
    else delete this.el.dataset.gone;

    const job = jobs.get(this.key);
    const active = !!job && job.state !== 'ended';
    const failed = !!job && job.state === 'ended' && job.outcome && job.outcome.kind !== 'updated';
    setBadge(this.badge, active ? 'updating' : failed ? 'failed' : item.status);
    this.badge.classList.toggle('spin', active);

    setAttr(this.switchEl, 'aria-checked', item.auto_update ? 'true' : 'false');
    this.switchEl.disabled = !!item.gone;
    const policy = POLICY_TITLES[item.update_policy] ? item.update_policy : null;
    this.policy.hidden = !policy;
    if (policy) {
      setText(this.policy, `up to ${policy}`);
      setAttr(this.policy, 'title', POLICY_TITLES[policy]);
    }
    setAttr(this.switchEl, 'aria-describedby', policy ? this.policy.id : null);

    // The Update button: for outdated containers, and not while the
    // progress (or a failure with its Retry) is shown below.
    this.button.hidden = !outdated || active || failed;
    this.button.disabled = !!item.gone;
    this.renderJob(job);
    keepFocus(focused, this.el, this.switchEl);
  }

  /** Where the keyboard lands when this row takes the focus. */
  focusTarget() {
    return this.switchEl.disabled ? this.el.querySelector('button:not(:disabled)') || this.switchEl : this.switchEl;
  }

  /** The engine's tag: hidden with one engine; marked while its engine does not answer. */
  renderHost(item, hosts) {
    const show = !!hosts && !!item.host;
    this.hostEl.hidden = !show;
    if (!show) return;
    const engine = hosts.find((h) => h.name === item.host);
    const down = engine && !engine.connected;
    if (down) this.hostEl.dataset.down = 'true';
    else delete this.hostEl.dataset.down;
    setAttr(
      this.hostEl,
      'title',
      down
        ? `Docker engine ${item.host} does not answer${engine.error ? `: ${engine.error}` : ''}; last state known shown`
        : `Runs on the Docker engine ${item.host}`,
    );
    const words = this.hostEl.querySelector('.host-name');
    setText(words, down ? `${item.host} · not answering` : item.host);
    // The name alone is ambiguous across engines: the buttons say which.
    setAttr(this.button, 'aria-label', `Update ${this.name} on ${item.host}`);
    setAttr(this.switchEl, 'aria-label', `Auto-update ${this.name} on ${item.host}`);
  }

  renderJob(job) {
    if (!job) {
      this.job.hidden = true;
      this.jobKey = '';
      this.job.textContent = '';
      return;
    }
    this.job.hidden = false;
    if (job.state !== 'ended') {
      this.renderProgress(job);
      return;
    }
    const key = `outcome:${job.outcome.kind}:${job.outcome.reason}:${job.endedAt}:${job.tag}`;
    if (this.jobKey === key) return;
    this.jobKey = key;
    this.job.textContent = '';
    const { kind, reason } = job.outcome;
    if (kind === 'updated') {
      this.job.append(
        h(
          'div',
          { class: 'outcome outcome-ok', role: 'status' },
          icon('check'),
          h('span', {}, h('strong', {}, 'Updated.'), job.tag ? ` Now on ${job.tag}.` : ' Now on the newest image.'),
        ),
      );
      return;
    }
    const retry = h('button', { type: 'button', class: 'btn btn-secondary' }, icon('refresh'), 'Retry');
    setAttr(retry, 'aria-label', `Retry the update of ${this.name}`);
    retry.addEventListener('click', () => this.actions.retry(this.key));
    const dismiss = h('button', { type: 'button', class: 'btn btn-ghost' }, 'Dismiss');
    setAttr(dismiss, 'aria-label', `Dismiss the message about ${this.name}`);
    dismiss.addEventListener('click', () => this.actions.dismiss(this.key));
    const title = kind === 'rolled_back' ? 'Rolled back:' : 'Update failed:';
    const after = kind === 'rolled_back' ? 'The previous container runs again, as it was.' : 'Nothing was changed.';
    this.job.append(
      h(
        'div',
        { class: `outcome outcome-error outcome-${kind}`, role: 'alert' },
        icon(kind === 'rolled_back' ? 'undo' : 'alert'),
        h(
          'div',
          { class: 'outcome-text' },
          h('p', {}, h('strong', {}, title), ' ', h('span', { class: 'reason' }, reason || 'no reason given')),
          h('p', { class: 'outcome-after' }, after),
        ),
        h('div', { class: 'outcome-actions' }, retry, dismiss),
      ),
    );
  }

  renderProgress(job) {
    if (!this.jobKey.startsWith('progress')) {
      this.jobKey = 'progress';
      this.job.textContent = '';
      this.phaseEl = h('span', { class: 'job-phase' });
      this.detailEl = h('span', { class: 'job-detail' });
      this.pctEl = h('span', { class: 'job-pct' });
      this.fill = h('div', { class: 'progress-fill' });
      this.bar = h(
        'div',
        { class: 'progress', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0', 'aria-label': `Update of ${this.name}` },
        this.fill,
      );
      this.steps = STEPS.map(([key, word]) => h('li', { dataset: { step: key } }, word));
      this.job.append(
        h('div', { class: 'job' }, h('div', { class: 'job-line' }, this.phaseEl, this.detailEl, this.pctEl), this.bar, h('ol', { class: 'steps', 'aria-label': 'Steps' }, this.steps)),
      );
    }
    const p = job.progress || {};
    const phase = phaseOf(p.status);
    const pct = overallPercent(p);
    setText(this.phaseEl, job.state === 'requested' ? 'Starting' : PHASE_WORDS[phase] || p.status);
    const details = [];
    if (phase === 'pulling' || phase === 'connecting') {
      if (p.total > 0) details.push(`${bytes(p.current)} of ${bytes(p.total)}`);
      if (p.layer) details.push(`layer ${p.layer}`);
      if (p.status && phase === 'pulling') details.unshift(p.status);
    } else if (phase === 'recreating') {
      details.push('new container from the new image');
    } else if (phase === 'verifying') {
      details.push('checking it stays up');
    }
    setText(this.detailEl, details.join(' · '));
    setText(this.pctEl, `${pct}%`);
    setAttr(this.bar, 'aria-valuenow', pct);
    setAttr(this.bar, 'aria-valuetext', `${PHASE_WORDS[phase] || p.status}, ${pct}%`);
    const width = `${pct}%`;
    if (this.fill.style.width !== width) this.fill.style.width = width;
    const order = ['connecting', 'pulling', 'recreating', 'verifying', 'done'];
    const at = order.indexOf(phase);
    for (const li of this.steps) {
      const i = order.indexOf(li.dataset.step);
      li.className = i < at ? 'done' : i === at || (at === 0 && i === 1) ? 'current' : '';
      setAttr(li, 'aria-current', li.className === 'current' ? 'step' : null);
    }
  }
}
