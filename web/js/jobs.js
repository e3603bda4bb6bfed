// Updates as the page follows them, by container name: a container keeps its
// name through an update while its id changes, and the server reports
// progress under the id the update was started with.

/** How long a success stays on its row. */
export const SUCCESS_SHOWN_MS = 10000;

/** The step a progress status belongs to; the engine's own pull words (`Downloading`, `Extracting`, …) are the pull. */
export function phaseOf(status) {
  if (!status || status === 'connecting') return 'connecting';
  if (status === 'done') return 'done';
  if (status.startsWith('error')) return 'error';
  if (status === 'recreating') return 'recreating';
  if (status === 'verifying') return 'verifying';
  return 'pulling';
}

/**
 * One bar for the whole job: the pull is most of the wait (0–70 %), then
 * recreating (75 %) and verifying (85 %), and 100 % at the end, so the bar
 * never sits full while work goes on.
 */
export function overallPercent(progress) {
  if (!progress) return 0;
  const pct = Math.max(0, Math.min(100, Number(progress.percent) || 0));
  switch (phaseOf(progress.status)) {
    case 'connecting':
    case 'pulling':
      return Math.round(pct * 0.7);
    case 'recreating':
      return 75;
    case 'verifying':
      return 85;
    case 'done':
      return 100;
    default:
      return Math.round(pct * 0.7);
  }
}

/** A final status as an outcome: updated, rolled back (with why) or failed. */
export function outcomeOf(status) {
  if (status === 'done') return { kind: 'updated', reason: '' };
  const rolled = 'error: rolled back: ';
  if (status.startsWith(rolled)) return { kind: 'rolled_back', reason: status.slice(rolled.length) };
  if (status.startsWith('error: ')) return { kind: 'failed', reason: status.slice('error: '.length) };
  return { kind: 'failed', reason: status };
}

export function isFinal(status) {
  return status === 'done' || (typeof status === 'string' && status.startsWith('error'));
}

export class Jobs {
  constructor() {
    /** name → {name, id, tag, state: 'requested'|'running'|'ended', progress, since, lastEvent, outcome, endedAt} */
    this.byName = new Map();
    /** short container id → name, for every container ever seen */
    this.names = new Map();
  }

  /** Learns the names of the ids in a view. */
  remember(groups) {
    for (const group of groups) {
      for (const c of group.containers) this.names.set(c.container_id, c.container_name);
    }
  }

  get(name) {
    return this.byName.get(name);
  }

  isActive(name) {
    const job = this.byName.get(name);
    return !!job && job.state !== 'ended';
  }

  active() {
    return [...this.byName.values()].filter((j) => j.state !== 'ended');
  }

  /**
   * A click on Update: false when one is already on its way (a double
   * click). `tag`: the update moves the container to that tag.
   */
  request(name, id, tag = null) {
    if (this.isActive(name)) return false;
    const now = Date.now();
    this.byName.set(name, {
      name,
      id,
      tag,
      state: 'requested',
      progress: { layer: '', current: 0, total: 0, percent: 0, status: 'connecting' },
      since: now,
      lastEvent: now,
      outcome: null,
      endedAt: 0,
    });
    this.names.set(id, name);
    return true;
  }

  /** The server accepted the request. */
  accepted(name) {
    const job = this.byName.get(name);
    if (job && job.state === 'requested') job.state = 'running';
  }

  /** The request itself failed (nothing was started). */
  refused(name, reason) {
    const job = this.byName.get(name);
    if (!job) return;
    job.state = 'ended';
    job.endedAt = Date.now();
    job.outcome = { kind: 'failed', reason };
  }

  /** A progress report for `id`; returns the container's name, if known. */
  progress(id, data) {
    const name = this.names.get(id);
    if (!name || !data || typeof data.status !== 'string') return null;
    const final = isFinal(data.status);
    let job = this.byName.get(name);
    if (job && job.state === 'ended') {
      // How that job ended is known; anything else is a new update.
      if (final) return name;
      job = null;
    }
    if (!job) {
      // An update this page did not start: automatic, or from another tab.
      const now = Date.now();
      job = { name, id, tag: null, state: 'running', progress: null, since: now, lastEvent: now, outcome: null, endedAt: 0 };
      this.byName.set(name, job);
    }
    job.id = id;
    job.lastEvent = Date.now();
    // Percent never goes backwards within one job.
    const before = Number(job.progress?.percent) || 0;
    job.progress = { ...data, percent: Math.max(Number(data.percent) || 0, before) };
    if (final) {
      job.state = 'ended';
      job.endedAt = Date.now();
      job.outcome = outcomeOf(data.status);
    } else {
      job.state = 'running';
    }
    return name;
  }

  /** The job's progress is gone from the server (kept only 60 s): end it. */
  lost(name, outcome) {
    const job = this.byName.get(name);
    if (!job || job.state === 'ended') return;
    job.state = 'ended';
    job.endedAt = Date.now();
    job.outcome = outcome;
  }

  dismiss(name) {
    this.byName.delete(name);
  }

  /** Forgets successes shown long enough; true when something changed. */
  expire(now = Date.now()) {
    let changed = false;
    for (const [name, job] of this.byName) {
      if (job.state === 'ended' && job.outcome?.kind === 'updated' && now - job.endedAt > SUCCESS_SHOWN_MS) {
        this.byName.delete(name);
        changed = true;
      }
    }
    return changed;
  }
}
