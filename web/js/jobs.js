// Updates as the page follows them, by engine and container name: a
// container keeps its name through an update while its id changes, and the
// server reports progress under the id the update was started with. Two
// engines may each run a container of the same name, so the key is both.

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

/** A container's key: its engine and its name (names repeat across engines). */
export function keyOf(host, name) {
  return `${host || ''}/${name}`;
}

/** An id as progress comes under it: with its engine when the message names one. */
function idKey(host, id) {
  return `${host || ''}:${id}`;
}

export class Jobs {
  constructor() {
    /** key → {key, name, host, id, tag, state: 'requested'|'running'|'ended', progress, since, lastEvent, outcome, endedAt} */
    this.byName = new Map();
    /** engine and short container id → key, for every container ever seen */
    this.names = new Map();
  }

  /** Learns the keys of the ids in a view. */
  remember(groups) {
    for (const group of groups) {
      for (const c of group.containers) {
        this.names.set(idKey(c.host, c.container_id), { key: keyOf(c.host, c.container_name), name: c.container_name, host: c.host });
      }
    }
  }

  /** The key of the container with this short id on this engine, if seen. */
  keyOf(host, id) {
    return this.names.get(idKey(host, id))?.key;
  }

  get(key) {
    return this.byName.get(key);
  }

  isActive(key) {
    const job = this.byName.get(key);
    return !!job && job.state !== 'ended';
  }

  active() {
    return [...this.byName.values()].filter((j) => j.state !== 'ended');
  }

  /**
   * A click on Update: false when one is already on its way (a double
   * click). `tag`: the update moves the container to that tag.
   */
  request(item, tag = null) {
    const key = keyOf(item.host, item.container_name);
    if (this.isActive(key)) return false;
    const now = Date.now();
    this.byName.set(key, {
      key,
      name: item.container_name,
      host: item.host,
      id: item.container_id,
      tag,
      state: 'requested',
      progress: { layer: '', current: 0, total: 0, percent: 0, status: 'connecting' },
      since: now,
      lastEvent: now,
      outcome: null,
      endedAt: 0,
    });
    this.names.set(idKey(item.host, item.container_id), { key, name: item.container_name, host: item.host });
    return true;
  }

  /** The server accepted the request. */
  accepted(key) {
    const job = this.byName.get(key);
    if (job && job.state === 'requested') job.state = 'running';
  }

  /** The request itself failed (nothing was started). */
  refused(key, reason) {
    const job = this.byName.get(key);
    if (!job) return;
    job.state = 'ended';
    job.endedAt = Date.now();
    job.outcome = { kind: 'failed', reason };
  }

  /** A progress report for `id` on engine `host`; returns the container's key, if known. */
  progress(host, id, data) {
    const seen = this.names.get(idKey(host, id));
    if (!seen || !data || typeof data.status !== 'string') return null;
    const { key, name } = seen;
    const final = isFinal(data.status);
    let job = this.byName.get(key);
    if (job && job.state === 'ended') {
      // How that job ended is known; anything else is a new update.
      if (final) return key;
      job = null;
    }
    if (!job) {
      // An update this page did not start: automatic, or from another tab.
      const now = Date.now();
      job = { key, name, host: seen.host, id, tag: null, state: 'running', progress: null, since: now, lastEvent: now, outcome: null, endedAt: 0 };
      this.byName.set(key, job);
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
    return key;
  }

  /** The job's progress is gone from the server (kept only 60 s): end it. */
  lost(key, outcome) {
    const job = this.byName.get(key);
    if (!job || job.state === 'ended') return;
    job.state = 'ended';
    job.endedAt = Date.now();
    job.outcome = outcome;
  }

  dismiss(key) {
    this.byName.delete(key);
  }

  /** Forgets successes shown long enough; true when something changed. */
  expire(now = Date.now()) {
    let changed = false;
    for (const [key, job] of this.byName) {
      if (job.state === 'ended' && job.outcome?.kind === 'updated' && now - job.endedAt > SUCCESS_SHOWN_MS) {
        this.byName.delete(key);
        changed = true;
      }
    }
    return changed;
  }
}
