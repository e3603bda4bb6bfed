// Swarm services (when the engine is a swarm manager): one card per service,
// in the look of the image groups. An update is Swarm's own rolling update,
// task by task, rolled back by Swarm when a new task fails; the card follows
// it from the websocket's `service_progress` (or over REST when that is
// quiet), by service id.

import { ago, h, icon, reconcile, setAttr, setText, shortDigest, when } from './dom.js';
import { arrow, badge, imageName, keepFocus, setBadge } from './list.js';

/** How long a success stays on its card (as for containers). */
export const SERVICE_SUCCESS_MS = 10000;
/** Tasks listed before "Show all": a service of 50 replicas stays a card. */
const TASKS_SHOWN = 6;

/** Whether a service matches the search text: name, image, id or a task's container id. */
export function serviceMatches(service, q) {
  if (!q) return true;
  const needle = q.toLowerCase();
  return (
    service.name.toLowerCase().includes(needle) ||
    service.image.toLowerCase().includes(needle) ||
    service.id.toLowerCase().startsWith(needle) ||
    (service.tasks || []).some((t) => t.container_id && t.container_id.toLowerCase().startsWith(needle))
  );
}

/** A final progress as an outcome: updated, rolled back (with why) or failed. */
export function serviceOutcome(data) {
  if (data.state === 'updated') return { kind: 'updated', reason: '' };
  if (data.state === 'rolled_back') return { kind: 'rolled_back', reason: data.message || '' };
  return { kind: 'failed', reason: data.message || data.state || '' };
}

/** Tasks a service wants: its replicas, or for a global one the tasks it has. */
export function wantedTasks(service) {
  const desired = service?.replicas?.desired;
  return Number.isInteger(desired) ? desired : (service?.tasks || []).length;
}

/**
 * Service updates as the page follows them, by service id: requested here,
 * or seen from the server (automatic, or from another tab).
 */
export class ServiceJobs {
  constructor() {
    /** id → {id, name, state: 'requested'|'running'|'ended', progress, since, lastEvent, outcome, endedAt, refused} */
    this.byId = new Map();
  }

  get(id) {
    return this.byId.get(id);
  }

  isActive(id) {
    const job = this.byId.get(id);
    return !!job && job.state !== 'ended';
  }

  active() {
    return [...this.byId.values()].filter((j) => j.state !== 'ended');
  }

  /** A click on Update: false when one is already on its way (a double click). */
  request(service) {
    if (this.isActive(service.id)) return false;
    const now = Date.now();
    this.byId.set(service.id, {
      id: service.id,
      name: service.name,
      state: 'requested',
      progress: { state: 'starting', updated: 0, total: wantedTasks(service), message: null, done: false },
      since: now,
      lastEvent: now,
      outcome: null,
      endedAt: 0,
      refused: false,
    });
    return true;
  }

  accepted(id) {
    const job = this.byId.get(id);
    if (job && job.state === 'requested') job.state = 'running';
  }

  /** The request itself failed: Swarm was not asked for anything. */
  refused(id, reason) {
    const job = this.byId.get(id);
    if (!job) return;
    job.state = 'ended';
    job.endedAt = Date.now();
    job.refused = true;
    job.outcome = { kind: 'failed', reason };
  }

  /** A `service_progress` (or GET …/progress) for `id`; returns the job. */
  progress(id, data) {
    if (!id || !data || typeof data.state !== 'string') return null;
    let job = this.byId.get(id);
    if (job && job.state === 'ended') {
      // How that update ended is known; anything else is a new update.
      if (data.done && (job.refused || job.progress?.image === data.image)) return job;
      job = null;
    }
    if (!job) {
      const now = Date.now();
      job = { id, name: data.service, state: 'running', progress: null, since: now, lastEvent: now, outcome: null, endedAt: 0, refused: false };
      this.byId.set(id, job);
    }
    job.lastEvent = Date.now();
    job.progress = { ...data };
    if (data.service) job.name = data.service;
    if (data.done) {
      job.state = 'ended';
      job.endedAt = Date.now();
      job.outcome = serviceOutcome(data);
    } else {
      job.state = 'running';
    }
    return job;
  }

  /** The server no longer knows the update: end it with what the history says (or nothing). */
  lost(id, outcome) {
    const job = this.byId.get(id);
    if (!job || job.state === 'ended') return;
    if (!outcome) {
      this.byId.delete(id);
      return;
    }
    job.state = 'ended';
    job.endedAt = Date.now();
    job.outcome = outcome;
  }

  dismiss(id) {
    this.byId.delete(id);
  }

  /** Forgets successes shown long enough; true when something changed. */
  expire(now = Date.now()) {
    let changed = false;
    for (const [id, job] of this.byId) {
      if (job.state === 'ended' && job.outcome?.kind === 'updated' && now - job.endedAt > SERVICE_SUCCESS_MS) {
        this.byId.delete(id);
        changed = true;
      }
    }
    return changed;
  }
}

/** Swarm's update states (and shipshape's `starting`) in words, while it runs. */
const PHASES = {
  starting: { word: 'Starting', tone: 'busy' },
  updating: { word: 'Updating', tone: 'busy' },
  completed: { word: 'Finishing', tone: 'busy' },
  paused: { word: 'Paused', tone: 'rollback' },
  rollback_started: { word: 'Rolling back', tone: 'rollback' },
  rollback_paused: { word: 'Rollback paused', tone: 'rollback' },
  rollback_completed: { word: 'Rolling back', tone: 'rollback' },
};

/** Swarm's last update of a service, as the card notes it when the page follows none. */
const SWARM_NOTES = {
  updating: { tone: 'busy', icon: 'refresh', text: 'Swarm is updating this service' },
  rollback_started: { tone: 'warn', icon: 'undo', text: 'Swarm is rolling this service back' },
  paused: { tone: 'bad', icon: 'alert', text: 'Swarm paused its last update' },
  rollback_paused: { tone: 'bad', icon: 'alert', text: 'Swarm paused the rollback of its last update' },
  rollback_completed: { tone: 'warn', icon: 'undo', text: 'Swarm rolled its last update back' },
};

/** A task's state as a tone: running, on its way, failed, or gone. */
function taskTone(state) {
  if (state === 'running') return 'ok';
  if (['failed', 'rejected', 'orphaned'].includes(state)) return 'bad';
  if (['new', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting'].includes(state)) return 'busy';
  return 'quiet';
}

export class ServiceList {
  /**
   * @param {HTMLElement} root
   * @param {object} actions  update(service, opener), toggleAuto(service, button), retry(id), dismiss(id)
   */
  constructor(root, actions) {
    this.root = root;
    this.actions = actions;
    this.cards = new Map();
  }

  /** @returns {number} how many services are shown */
  render(services, jobs, filter) {
    const shown = reconcile(this.root, this.cards, services, {
      key: (service) => service.id,
      make: (service) => new ServiceCard(service, this.actions),
      update: (card, service) => card.update(service, jobs, filter),
      animate: this.rendered,
    });
    this.rendered = true;
    return shown;
  }

  tick() {
    for (const card of this.cards.values()) card.tick();
  }
}

class ServiceCard {
  constructor(service, actions) {
    this.id = service.id;
    this.actions = actions;
    this.service = null;
    this.allTasks = false;
    this.nameEl = h('h2', { class: 'service-name' }, service.name);
    this.badge = badge('unknown', 'badge-group');
    this.imageEl = h('code', { class: 'service-image' });
    this.local = h('code', { class: 'digest' });
    this.arrow = arrow();
    this.remote = h('code', { class: 'digest' });
    this.replicas = h('span', { class: 'meta-item replicas' });
    this.checked = h('time');
    this.checkedWrap = h('span', { class: 'meta-item' }, 'checked ', this.checked);
    this.lastUpdate = h('span', { class: 'meta-item last-update', hidden: true });
    this.error = h('p', { class: 'card-error', hidden: true });
    this.note = h('p', { class: 'swarm-note', role: 'note', hidden: true });
    this.switchEl = h(
      'button',
      { type: 'button', role: 'switch', class: 'switch', 'aria-checked': 'false', 'aria-label': `Auto-update service ${service.name}` },
      h('span', { class: 'switch-track' }, h('span', { class: 'switch-thumb' })),
      h('span', { class: 'switch-text' }, h('span', { class: 'switch-label' }, 'Auto-update')),
    );
    this.switchEl.addEventListener('click', () => this.service && actions.toggleAuto(this.service, this.switchEl));
    this.button = h('button', { type: 'button', class: 'btn btn-primary update', 'aria-label': `Update service ${service.name}` }, 'Update');
    this.button.addEventListener('click', () => this.service && actions.update(this.service, this.button));
    this.tasksList = h('ul', { class: 'tasks', role: 'list', 'aria-label': `Tasks of ${service.name}` });
    this.tasksNone = h('p', { class: 'tasks-none', hidden: true }, 'No tasks running.');
    this.tasksLag = h('span', { class: 'tasks-lag', hidden: true }, 'as last listed: the progress above is live');
    this.more = h('button', { type: 'button', class: 'btn btn-ghost tasks-more', 'aria-expanded': 'false', hidden: true });
    this.more.addEventListener('click', () => {
      this.allTasks = !this.allTasks;
      if (this.service) this.renderTasks(this.service);
    });
    this.job = h('div', { class: 'service-job', hidden: true });
    this.jobKey = '';
    this.el = h(
      'article',
      { class: 'card service-card', 'aria-label': `Service ${service.name}`, dataset: { service: service.id, name: service.name } },
      h(
        'header',
        { class: 'card-head' },
        h('div', { class: 'card-title' }, icon('layers', 'card-icon'), this.nameEl, this.badge),
        h(
          'div',
          { class: 'card-meta' },
          h('span', { class: 'meta-item' }, this.imageEl),
          h('span', { class: 'meta-item digests' }, 'digest ', this.local, this.arrow, this.remote),
          this.replicas,
          this.checkedWrap,
          this.lastUpdate,
        ),
        this.error,
        this.note,
        // The button keeps its place when hidden: the switches of all cards line up.
        h('div', { class: 'card-actions' }, h('div', { class: 'service-auto' }, this.switchEl), h('div', { class: 'service-action' }, this.button)),
      ),
      this.job,
      h(
        'div',
        { class: 'tasks-wrap' },
        h('div', { class: 'tasks-head' }, h('h3', { class: 'tasks-title' }, 'Tasks'), this.tasksLag),
        this.tasksList,
        this.tasksNone,
        this.more,
      ),
    );
  }

  /** @returns {0|1} whether the card is shown */
  update(service, jobs, filter) {
    const focused = this.el.contains(document.activeElement) ? document.activeElement : null;
    this.service = service;
    const job = jobs.get(service.id);
    const active = !!job && job.state !== 'ended';
    const failed = !!job && job.state === 'ended' && job.outcome && job.outcome.kind !== 'updated';
    const rollingBack = active && PHASES[job.progress?.state]?.tone === 'rollback';
    setBadge(this.badge, rollingBack ? 'rolling_back' : active ? 'updating' : failed ? 'failed' : service.status);
    this.badge.classList.toggle('spin', active && !rollingBack);
    this.el.dataset.status = service.status;

    if (this.imageEl.dataset.image !== service.image) {
      this.imageEl.dataset.image = service.image;
      this.imageEl.textContent = '';
      this.imageEl.append(...imageName(service.image));
      setAttr(this.imageEl, 'title', service.image);
    }
    const outdated = service.status === 'outdated';
    setText(this.local, shortDigest(service.digest));
    setAttr(this.local, 'title', `the service runs ${service.digest}`);
    this.arrow.hidden = !outdated;
    this.remote.hidden = !outdated;
    setText(this.remote, shortDigest(service.remote_digest));
    setAttr(this.remote, 'title', `newest ${service.remote_digest}`);
    this.renderReplicas(service);
    this.checkedAt = service.checked_at;
    this.checkedWrap.hidden = !service.checked_at;
    this.tick();
    if (service.error) {
      this.error.hidden = false;
      if (this.error.dataset.text !== service.error) {
        this.error.dataset.text = service.error;
        this.error.textContent = '';
        this.error.append(icon('alert'), h('span', {}, service.error));
      }
    } else {
      this.error.hidden = true;
    }
    // While the page follows an update, its progress says it all.
    this.renderSwarmState(service, !!job);

    setAttr(this.switchEl, 'aria-checked', service.auto_update ? 'true' : 'false');
    this.button.hidden = !outdated || active || failed;
    this.renderJob(job, service);
    this.renderTasks(service);
    // The tasks are listed every few seconds; the progress is live.
    this.tasksLag.hidden = !active;

    const q = filter.q.trim();
    const show = serviceMatches(service, q) && (filter.status === 'all' || filter.status === service.status);
    this.el.hidden = !show;
    keepFocus(focused, this.el, this.switchEl);
    return show ? 1 : 0;
  }

  renderReplicas(service) {
    const { running, desired } = service.replicas || {};
    const global = desired === null || desired === undefined;
    const key = `${running}/${desired}`;
    if (this.replicas.dataset.key === key) return;
    this.replicas.dataset.key = key;
    this.replicas.textContent = '';
    const short = !global && running < desired;
    this.replicas.classList.toggle('short', short);
    if (global) {
      this.replicas.append(h('strong', {}, 'global'), ` · ${running} running`);
      setAttr(this.replicas, 'title', `A global service: one task on every node; ${running} running`);
    } else {
      this.replicas.append('replicas ', h('strong', {}, `${running}/${desired}`));
      setAttr(this.replicas, 'title', `${running} of ${desired} replicas running`);
    }
  }

  renderSwarmState(service, following) {
    const state = service.update_state;
    const message = service.update_message || '';
    // A finished update is a quiet word in the meta line; anything else a note.
    this.lastUpdate.hidden = state !== 'completed';
    if (state === 'completed') {
      setText(this.lastUpdate, 'last Swarm update completed');
      setAttr(this.lastUpdate, 'title', message || null);
    }
    const note = !following && SWARM_NOTES[state];
    this.note.hidden = !note;
    if (!note) return;
    const key = `${state}:${message}`;
    if (this.note.dataset.key === key) return;
    this.note.dataset.key = key;
    this.note.dataset.tone = note.tone;
    this.note.textContent = '';
    this.note.append(icon(note.icon), h('span', {}, h('strong', {}, `${note.text}.`), message ? ` ${message}` : ''));
  }

  renderTasks(service) {
    const tasks = service.tasks || [];
    const mixed = new Set(tasks.map((t) => t.digest)).size > 1;
    const shown = this.allTasks ? tasks : tasks.slice(0, TASKS_SHOWN);
    const key = JSON.stringify([shown, mixed, service.remote_digest, tasks.length, this.allTasks]);
    if (this.tasksList.dataset.key === key) return;
    this.tasksList.dataset.key = key;
    this.tasksList.textContent = '';
    for (const t of shown) {
      const tone = taskTone(t.state);
      // During a rollout the tasks run two images: the newest is marked.
      const newest = mixed && t.digest === service.remote_digest && t.digest !== 'unknown';
      this.tasksList.append(
        h(
          'li',
          { class: 'task', dataset: { state: t.state, tone, task: t.id } },
          h('span', { class: 'task-state' }, h('span', { class: 'task-dot', 'aria-hidden': 'true' }), t.state),
          t.container_id
            ? h('code', { class: 'task-id', title: `container ${t.container_id} (task ${t.id})` }, t.container_id)
            : h('span', { class: 'task-id', title: `task ${t.id}: no container yet` }, 'no container'),
          h(
            'span',
            { class: `task-digest${newest ? ' is-new' : ''}` },
            h('span', { class: 'label' }, 'digest'),
            h('code', { title: t.digest }, shortDigest(t.digest)),
            newest ? h('span', { class: 'task-new' }, icon('check'), 'new') : null,
          ),
          t.error ? h('span', { class: 'task-error', title: t.error }, t.error) : null,
        ),
      );
    }
    this.tasksNone.hidden = tasks.length > 0;
    this.more.hidden = tasks.length <= TASKS_SHOWN;
    setText(this.more, this.allTasks ? 'Show fewer tasks' : `Show all ${tasks.length} tasks`);
    setAttr(this.more, 'aria-expanded', this.allTasks ? 'true' : 'false');
  }

  renderJob(job, service) {
    if (!job) {
      this.job.hidden = true;
      this.jobKey = '';
      this.job.textContent = '';
      return;
    }
    this.job.hidden = false;
    if (job.state !== 'ended') {
      this.renderProgress(job, service);
      return;
    }
    const key = `outcome:${job.outcome.kind}:${job.outcome.reason}:${job.endedAt}`;
    if (this.jobKey === key) return;
    this.jobKey = key;
    this.job.textContent = '';
    const { kind, reason } = job.outcome;
    const name = service.name;
    if (kind === 'updated') {
      const n = job.progress?.total || wantedTasks(service);
      this.job.append(
        h(
          'div',
          { class: 'outcome outcome-ok', role: 'status' },
          icon('check'),
          h('span', {}, h('strong', {}, 'Updated.'), n > 1 ? ` All ${n} tasks run the new image.` : ' Its task runs the new image.'),
        ),
      );
      return;
    }
    const retry = h('button', { type: 'button', class: 'btn btn-secondary', 'aria-label': `Retry the update of service ${name}` }, icon('refresh'), 'Retry');
    retry.addEventListener('click', () => this.actions.retry(this.id));
    const dismiss = h('button', { type: 'button', class: 'btn btn-ghost', 'aria-label': `Dismiss the message about service ${name}` }, 'Dismiss');
    dismiss.addEventListener('click', () => this.actions.dismiss(this.id));
    const rolled = kind === 'rolled_back';
    const after = rolled
      ? 'Swarm put the previous image back: the service runs as it did.'
      : job.refused
        ? 'Nothing was changed.'
        : h('span', {}, 'Its tasks: ', h('code', {}, `docker service ps ${name}`));
    this.job.append(
      h(
        'div',
        { class: `outcome outcome-error outcome-${kind}`, role: 'alert' },
        icon(rolled ? 'undo' : 'alert'),
        h(
          'div',
          { class: 'outcome-text' },
          h('p', {}, h('strong', {}, rolled ? 'Rolled back:' : 'Update failed:'), ' ', h('span', { class: 'reason' }, reason || 'no reason given')),
          h('p', { class: 'outcome-after' }, after),
        ),
        h('div', { class: 'outcome-actions' }, retry, dismiss),
      ),
    );
  }

  renderProgress(job, service) {
    if (!this.jobKey.startsWith('progress')) {
      this.jobKey = 'progress';
      this.job.textContent = '';
      this.phaseEl = h('span', { class: 'job-phase' });
      this.detailEl = h('span', { class: 'job-detail' });
      this.countEl = h('span', { class: 'job-pct' });
      this.fill = h('div', { class: 'progress-fill' });
      this.bar = h(
        'div',
        {
          class: 'progress',
          role: 'progressbar',
          'aria-valuemin': '0',
          'aria-valuemax': '100',
          'aria-valuenow': '0',
          'aria-label': `Update of service ${service.name}`,
        },
        this.fill,
      );
      this.box = h('div', { class: 'job' }, h('div', { class: 'job-line' }, this.phaseEl, this.detailEl, this.countEl), this.bar);
      this.job.append(this.box);
    }
    const p = job.progress || {};
    const state = job.state === 'requested' ? 'starting' : p.state;
    const phase = PHASES[state] || { word: state, tone: 'busy' };
    const total = p.total > 0 ? p.total : wantedTasks(service);
    const updated = Math.max(0, Math.min(Number(p.updated) || 0, total));
    let detail;
    if (state === 'starting') detail = 'Swarm replaces the tasks one by one';
    else if (phase.tone === 'rollback') detail = p.message || 'Swarm puts the previous image back';
    else detail = `${updated}/${total} task${total === 1 ? '' : 's'} on the new image`;
    const rollback = phase.tone === 'rollback';
    this.box.dataset.tone = phase.tone;
    setText(this.phaseEl, phase.word);
    setText(this.detailEl, detail);
    setAttr(this.detailEl, 'title', detail);
    // Rolling back, how many tasks are on the new image says nothing of how
    // far it is: the bar runs without a value.
    setText(this.countEl, total > 0 && !rollback ? `${updated}/${total}` : '');
    const pct = total > 0 ? Math.round((updated / total) * 100) : 0;
    setAttr(this.bar, 'aria-valuenow', rollback ? null : pct);
    setAttr(this.bar, 'aria-valuetext', rollback ? `${phase.word}: ${detail}` : `${phase.word}: ${updated} of ${total} tasks on the new image`);
    this.bar.classList.toggle('indeterminate', rollback);
    const width = rollback ? '100%' : `${pct}%`;
    if (this.fill.style.width !== width) this.fill.style.width = width;
  }

  tick() {
    if (!this.checkedAt) return;
    setText(this.checked, ago(this.checkedAt));
    setAttr(this.checked, 'datetime', this.checkedAt);
    setAttr(this.checked, 'title', when(this.checkedAt));
  }
}
