// shipshape's page: wires the API, the websocket, the list, the dialogs and
// the URL together. State lives here; the modules render it.

import { api, containerPath, describe, groupPath, onUnauthorized } from './api.js';
import { announce, h, icon, setAttr, setIcon, setText, shortDigest, toast } from './dom.js';
import { confirmDialog, Menu, nameList, openModal } from './dialogs.js';
import { History } from './history.js';
import { Jobs, SUCCESS_SHOWN_MS, keyOf } from './jobs.js';
import { kindBadge, List, matches, splitImage } from './list.js';
import { Live } from './live.js';
import { ServiceJobs, ServiceList, SERVICE_SUCCESS_MS, serviceMatches, wantedTasks } from './services.js';

const $ = (id) => document.getElementById(id);

const FILTERS = ['all', 'outdated', 'uptodate', 'unknown'];
const SESSION_ENDED = 'Your session ended. Please sign in again.';
const USER_KEY = 'shipshape.user';
/** Without a word from the websocket for this long, a running job is asked for over REST. */
const QUIET_MS = 15000;
const WATCH_MS = 2000;

const state = {
  auth: true,
  screen: 'loading',
  groups: [],
  loaded: false,
  filter: readFilter(),
  /** The Docker engines (`GET /api/hosts`); with more than one, rows show theirs and a filter picks one. */
  hosts: [],
  /** key (engine and name) → {group, item}: the last place a container was seen, for rows kept during an update */
  lastSeen: new Map(),
  /** key (engine and name, or `service:<id>`) → time of the last REST poll of its job */
  polled: new Map(),
  /** Swarm services, as the API lists them (null: none known yet) */
  services: null,
  /** The engine is a swarm manager: the Services section is shown. */
  swarm: false,
};

/** Whether the page speaks of engines at all: only when there is more than one. */
function several() {
  return state.hosts.length > 1;
}

/** How the API is told which container: `host:id` when engines could share a short id. */
function apiId(host, id) {
  return several() && host ? `${host}:${id}` : id;
}

/** A container as a person reads it: its name, and its engine when there are several. */
function label(name, host) {
  return several() && host ? `${name} on ${host}` : name;
}

/**
 * The engine whose Swarm services the page shows (each service names it:
 * the first engine that is a manager); '' with one engine.
 */
function servicesHost() {
  if (!several()) return '';
  return state.services?.find((s) => s.host)?.host || state.hosts[0].name;
}

const jobs = new Jobs();
const list = new List($('list'), { update, updateAll, updateTo, toggleAuto, retry, dismiss });
const serviceJobs = new ServiceJobs();
const serviceList = new ServiceList($('service-list'), {
  update: confirmServiceUpdate,
  toggleAuto: toggleServiceAuto,
  retry: retryService,
  dismiss: dismissService,
});
const historyPanel = new History($('history'), {
  // A service's entry is on the services' engine; a container of that name on another engine is not one.
  isService: (name, host) => !!state.services?.some((s) => s.name === name) && (!host || !servicesHost() || host === servicesHost()),
});
const live = new Live({
  message: onMessage,
  status: showConnection,
  resync,
  sessionEnded: () => showLogin(SESSION_ENDED),
});

async function boot({ afterLogin = false } = {}) {
  show('loading');
  let status;
  try {
    status = await api('/api/auth/status');
  } catch (error) {
    showFailure(error);
    return;
  }
  state.auth = status?.enabled !== false;
  let groups;
  let services;
  try {
    [groups, services] = await Promise.all([api('/api/images', { quiet401: true }), loadServices()]);
  } catch (error) {
    if (error.status === 401) showLogin();
    else showFailure(error);
    return;
  }
  await loadHosts();
  show('dash');
  setGroups(groups);
  setServices(services);
  live.start();
  // The form that had focus is gone: the list takes it (no on-screen keyboard pops up).
  if (afterLogin) $('list').focus();
}

/** One of: loading, dash, login, failure. */
function show(screen) {
  state.screen = screen;
  const inside = screen === 'dash' || screen === 'loading';
  $('dash').hidden = !inside;
  $('loading').hidden = screen !== 'loading';
  $('login').hidden = screen !== 'login';
  $('failure').hidden = screen !== 'failure';
  $('check-group').hidden = !inside;
  $('history-open').hidden = !inside;
  $('logout').hidden = !inside || !state.auth;
  $('conn').hidden = screen !== 'dash';
  // While loading, the skeleton stands in for the list (and whatever it showed before).
  $('list').hidden = screen === 'loading';
  if (screen === 'loading') {
    $('empty').hidden = true;
    $('nomatch').hidden = true;
    $('services').hidden = true;
    $('containers-head').hidden = true;
  }
  setAttr($('list'), 'aria-busy', screen === 'loading' ? 'true' : 'false');
  if (screen !== 'dash') document.title = 'shipshape';
}

function showFailure(error) {
  live.stop();
  setText($('failure-text'), describe(error));
  show('failure');
  $('failure-retry').focus();
}

// ------------------------------------------------------------ login

function setupLogin() {
  const form = $('login-form');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const user = $('user').value.trim();
    const pass = $('pass').value;
    const error = $('login-error');
    if (!user || !pass) {
      loginError(!user ? 'Enter your user name.' : 'Enter your password.');
      (!user ? $('user') : $('pass')).focus();
      return;
    }
    const button = $('login-submit');
    button.disabled = true;
    setText(button, 'Signing in…');
    error.hidden = true;
    try {
      await api('/api/login', { method: 'POST', body: { user, pass }, quiet401: true });
      $('pass').value = '';
      remember(USER_KEY, user);
      $('login-note').hidden = true;
      await boot({ afterLogin: true });
    } catch (e) {
      if (e.status === 401) loginError('Wrong user or password.');
      else if (e.status === 429) {
        const seconds = Number(e.retryAfter) || Number((e.body.match(/(\d+)\s*s/) || [])[1]) || 60;
        loginError(`Too many attempts. Try again in ${seconds} s.`);
      } else loginError(describe(e));
      $('pass').select();
      $('pass').focus();
    } finally {
      button.disabled = false;
      setText(button, 'Sign in');
    }
  });
}

function loginError(text) {
  const error = $('login-error');
  error.textContent = '';
  error.append(icon('alert'), h('span', {}, text));
  error.hidden = false;
}

/** The login form, over whatever the URL asked for: after it, the same view. */
function showLogin(note = '') {
  live.stop();
  if (state.screen === 'login') return;
  for (const dialog of document.querySelectorAll('dialog[open]')) dialog.close();
  historyPanel.reset();
  const noteEl = $('login-note');
  noteEl.hidden = !note;
  setText(noteEl, note);
  $('login-error').hidden = true;
  if (!$('user').value) $('user').value = recall(USER_KEY) || '';
  show('login');
  ($('user').value ? $('pass') : $('user')).focus();
}

async function logout() {
  live.stop();
  try {
    await api('/api/logout', { method: 'POST', quiet401: true });
  } catch (error) {
    if (error.status !== 401) {
      toast(`Could not log out: ${describe(error)}`, 'error');
      live.start();
      return;
    }
  }
  state.groups = [];
  state.services = null;
  state.swarm = false;
  showLogin('You are logged out.');
}

// ------------------------------------------------------------ data

function setGroups(groups) {
  state.groups = Array.isArray(groups) ? groups : [];
  state.loaded = true;
  jobs.remember(state.groups);
  for (const group of state.groups) {
    for (const item of group.containers) state.lastSeen.set(keyOf(item.host, item.container_name), { group, item });
  }
  scheduleRender();
}

/**
 * The services over REST: `[]` on a plain engine (and on a manager without
 * services: the websocket tells those apart). A failure other than a lost
 * session leaves the services as they were.
 */
async function loadServices() {
  try {
    return await api('/api/services', { quiet401: true });
  } catch (error) {
    if (error.status === 401) throw error;
    return null;
  }
}

function setServices(services, fromSocket = false) {
  if (fromSocket && services === null) {
    // The engine is no longer a swarm manager.
    state.swarm = false;
    state.services = [];
    scheduleRender();
    return;
  }
  if (!Array.isArray(services)) return;
  // Only a manager sends `services`; over REST only a list with some says so.
  if (fromSocket || services.length > 0) state.swarm = true;
  state.services = services;
  adoptRunning(services);
  scheduleRender();
}

/**
 * A service Swarm is updating when the page opens (or comes back) may be
 * shipshape's update: its progress, once, over REST.
 */
function adoptRunning(services) {
  for (const service of services) {
    if (!['updating', 'rollback_started'].includes(service.update_state)) continue;
    if (serviceJobs.get(service.id)) continue;
    const key = `service:${service.id}`;
    if (Date.now() - (state.polled.get(key) || 0) < 10000) continue;
    state.polled.set(key, Date.now());
    api(`/api/services/${encodeURIComponent(service.id)}/progress`, { quiet401: true })
      .then((progress) => {
        if (progress && !progress.done && !serviceJobs.get(service.id)) {
          serviceJobs.progress(service.id, progress);
          scheduleRender();
        }
      })
      .catch(() => {});
  }
}

function findService(id) {
  return state.services?.find((s) => s.id === id) || null;
}

/** The engines, once at start and again after a reconnect; without them the page shows none. */
async function loadHosts() {
  try {
    setHosts(await api('/api/hosts', { quiet401: true }));
  } catch {
    // Not fatal: the list works without knowing the engines.
  }
}

function setHosts(hosts) {
  state.hosts = Array.isArray(hosts) ? hosts : [];
  if (state.filter.host && !state.hosts.some((h) => h.name === state.filter.host) && state.hosts.length > 0) {
    state.filter.host = '';
    writeFilter();
  }
  historyPanel.several = several();
  renderHostFilter();
  scheduleRender();
}

function onMessage(message) {
  switch (message?.type) {
    case 'images':
      setGroups(message.data);
      break;
    case 'services':
      setServices(message.data, true);
      break;
    case 'service_progress': {
      const id = message.service_id || message.data?.service_id;
      const before = serviceJobs.get(id)?.state;
      const job = serviceJobs.progress(id, message.data);
      if (job) {
        if (job.state === 'ended' && before !== 'ended') serviceEnded(job);
        scheduleRender();
      }
      break;
    }
    case 'hosts':
      setHosts(message.data);
      break;
    case 'progress': {
      const before = jobs.get(jobs.keyOf(message.host, message.container_id))?.state;
      const key = jobs.progress(message.host, message.container_id, message.data);
      if (key) {
        const job = jobs.get(key);
        if (job?.state === 'ended' && before !== 'ended') ended(job);
        scheduleRender();
      }
      break;
    }
    case 'history':
      historyPanel.add(message.data);
      break;
    default:
      break;
  }
}

/** A job just ended: say so, and let a success fade after a while. */
function ended(job) {
  if (job.outcome.kind === 'updated') {
    setTimeout(() => {
      if (jobs.expire()) scheduleRender();
    }, SUCCESS_SHOWN_MS + 100);
  }
  announceOutcome(job);
}

/** A service update just ended: say so, and let a success fade after a while. */
function serviceEnded(job) {
  if (job.outcome.kind === 'updated') {
    setTimeout(() => {
      if (serviceJobs.expire()) scheduleRender();
    }, SERVICE_SUCCESS_MS + 100);
    announce(`Service ${job.name} updated.`);
  } else if (job.outcome.kind === 'rolled_back') {
    announce(`Service ${job.name} rolled back: ${job.outcome.reason}`);
  } else {
    announce(`Update of service ${job.name} failed: ${job.outcome.reason}`);
  }
}

function announceOutcome(job) {
  const who = label(job.name, job.host);
  if (job.outcome.kind === 'updated') announce(`${who} updated.`);
  else if (job.outcome.kind === 'rolled_back') announce(`${who} rolled back: ${job.outcome.reason}`);
  else announce(`Update of ${who} failed: ${job.outcome.reason}`);
}

/** Before the websocket reconnects: the full state over REST (and whether we may go on). */
async function resync() {
  try {
    const [groups, services] = await Promise.all([api('/api/images', { quiet401: true }), loadServices()]);
    setGroups(groups);
    setServices(services);
  } catch (error) {
    if (error.status === 401) {
      showLogin(SESSION_ENDED);
      return false;
    }
    throw error;
  }
  await loadHosts();
  await watchJobs(true);
  return true;
}

/**
 * A row never stays "updating": while the websocket is down, or quiet about a
 * running job for too long, its progress is read over REST.
 */
async function watchJobs(now = false) {
  if (state.screen !== 'dash') return;
  const dueJob = (key) => (job) => {
    if (job.state === 'requested') return false;
    const quiet = !live.open || Date.now() - job.lastEvent > QUIET_MS;
    const recently = Date.now() - (state.polled.get(key(job)) || 0) < WATCH_MS - 100;
    return (now || quiet) && !recently;
  };
  const due = jobs.active().filter(dueJob((job) => job.key));
  const dueServices = serviceJobs.active().filter(dueJob((job) => `service:${job.id}`));
  await Promise.all([...due.map(pollJob), ...dueServices.map(pollServiceJob)]);
}

async function pollServiceJob(job) {
  state.polled.set(`service:${job.id}`, Date.now());
  try {
    const progress = await api(`/api/services/${encodeURIComponent(job.id)}/progress`);
    if (!serviceJobs.isActive(job.id)) return;
    const after = serviceJobs.progress(job.id, progress);
    if (after?.state === 'ended') serviceEnded(after);
  } catch (error) {
    if (error.status !== 404) return;
    // The server no longer knows it (restarted, or the service is gone): the history does.
    const outcome = await outcomeFromHistory(job);
    if (!serviceJobs.isActive(job.id)) return;
    serviceJobs.lost(job.id, outcome);
    const after = serviceJobs.get(job.id);
    if (after?.outcome) serviceEnded(after);
  }
  scheduleRender();
}

async function pollJob(job) {
  state.polled.set(job.key, Date.now());
  try {
    const progress = await api(containerPath(apiId(job.host, job.id), 'progress'));
    if (!jobs.isActive(job.key)) return;
    jobs.progress(job.host, job.id, progress);
    const after = jobs.get(job.key);
    if (after?.state === 'ended') ended(after);
  } catch (error) {
    if (error.status !== 404) return;
    // The server no longer follows it: how it ended is in the history.
    jobs.lost(job.key, await outcomeFromHistory(job));
    if (!jobs.get(job.key)?.outcome) jobs.dismiss(job.key);
  }
  scheduleRender();
}

async function outcomeFromHistory(job) {
  try {
    const entries = await api('/api/history?limit=50');
    const sameEngine = (e) => !e.host || !job.host || e.host === job.host;
    const entry = entries.find(
      (e) => e.container_name === job.name && sameEngine(e) && Date.parse(e.finished_at) >= job.since - 2000,
    );
    if (!entry) return null;
    if (entry.result === 'rolled_back') return { kind: 'rolled_back', reason: entry.error || '' };
    if (entry.result === 'failed') return { kind: 'failed', reason: entry.error || '' };
    return { kind: 'updated', reason: '' };
  } catch {
    return null;
  }
}

// ------------------------------------------------------------ actions

/** Updates one container: to its tag's newest image, or to `tag`. */
async function update(group, item, tag = null) {
  const key = keyOf(item.host, item.container_name);
  if (!jobs.request(item, tag)) return;
  scheduleRender();
  try {
    await api(containerPath(apiId(item.host, item.container_id), 'update'), { method: 'POST', body: tag ? { tag } : undefined });
    jobs.accepted(key);
  } catch (error) {
    if (error.status === 401) return;
    jobs.refused(key, describe(error));
  }
  scheduleRender();
}

async function updateAll(group, opener) {
  const targets = group.containers.filter((c) => !jobs.isActive(keyOf(c.host, c.container_name)));
  if (targets.length === 0) return;
  const items = targets.map((c) =>
    h(
      'li',
      {},
      h('strong', {}, c.container_name),
      several() && c.host ? h('span', { class: 'host-tag' }, c.host) : null,
      ' ',
      c.status === 'outdated'
        ? h('span', { class: 'dialog-digests' }, h('code', {}, shortDigest(c.local_digest)), ' → ', h('code', {}, shortDigest(group.remote_digest)))
        : h('span', { class: 'dialog-digests muted' }, 'already on the newest image, left as it is'),
    ),
  );
  const outdated = targets.filter((c) => c.status === 'outdated').length || targets.length;
  const ok = await confirmDialog({
    title: outdated === 1 ? 'Update 1 container?' : `Update ${outdated} containers?`,
    body: [
      h(
        'p',
        {},
        h('code', { class: 'dialog-image' }, group.image),
        ' is pulled once; then each container is recreated in turn, keeping its settings. One that does not come up is rolled back.',
      ),
      nameList(items),
    ],
    confirm: outdated === 1 ? 'Update 1 container' : `Update ${outdated} containers`,
    opener,
  });
  if (!ok) return;
  const requested = targets.filter((c) => jobs.request(c));
  if (requested.length === 0) return;
  scheduleRender();
  try {
    await api(groupPath(group.image), { method: 'POST' });
    for (const c of requested) jobs.accepted(keyOf(c.host, c.container_name));
  } catch (error) {
    if (error.status === 401) return;
    for (const c of requested) jobs.refused(keyOf(c.host, c.container_name), describe(error));
  }
  scheduleRender();
}

/**
 * Moves a group's containers to one of the newer tags it is offered, after
 * saying from what to what (a major version with a clear warning and the
 * release notes). One container goes by its own update, several by the
 * group's: the image is pulled once. Each row then follows its container
 * by engine and name into the group of the new tag.
 */
async function updateTo(group, tag, kind, opener) {
  const targets = group.containers.filter((c) => !c.gone && !c.monitor_only && !jobs.isActive(keyOf(c.host, c.container_name)));
  if (targets.length === 0) {
    toast(`Nothing to update in ${group.image}: its containers are busy or monitor-only.`, 'error');
    return;
  }
  const [repo] = splitImage(group.image);
  const from = group.version || group.image.slice(repo.length + 1);
  const one = targets.length === 1;
  const who = one ? label(targets[0].container_name, targets[0].host) : `${targets.length} containers`;
  const major = kind === 'major';
  const notes = group.release_notes && /^https?:\/\//.test(group.release_notes) ? group.release_notes : null;
  const notesLink = (text) => h('a', { href: notes, target: '_blank', rel: 'noopener noreferrer', class: 'notes' }, icon('link'), text);
  const body = [
    h(
      'div',
      { class: 'dialog-move' },
      h('code', { class: 'dialog-image' }, repo),
      h(
        'span',
        { class: 'dialog-versions' },
        h('span', { class: 'version' }, from),
        h('span', { class: 'arrow', role: 'img', 'aria-label': 'to' }, '→'),
        h('span', { class: 'version' }, tag),
        kindBadge(kind),
      ),
    ),
  ];
  if (major) {
    body.push(
      h(
        'div',
        { class: 'dialog-warn' },
        icon('alert'),
        h(
          'div',
          {},
          h('p', {}, h('strong', {}, `This is a major version change: ${from} → ${tag}.`)),
          h(
            'p',
            {},
            'A new major version may change its settings, data or behaviour. ',
            notes ? 'Read what changed before you go on.' : 'Check what changed before you go on.',
          ),
          notes ? h('p', {}, notesLink('Release notes')) : null,
        ),
      ),
    );
  } else if (notes) {
    body.push(h('p', {}, notesLink('Release notes')));
  }
  body.push(
    h(
      'p',
      {},
      one
        ? `${who} is recreated on ${tag}, keeping its settings. If it does not come up, it is rolled back to ${from}.`
        : `${tag} is pulled once; then each container is recreated on it in turn, keeping its settings. One that does not come up is rolled back to ${from}.`,
    ),
  );
  if (!one) {
    body.push(
      nameList(
        targets.map((c) =>
          h('li', {}, h('strong', {}, c.container_name), several() && c.host ? h('span', { class: 'host-tag' }, c.host) : null),
        ),
      ),
    );
  }
  const ok = await confirmDialog({
    title: major
      ? `Update ${who} to a new major version?`
      : `Update ${who} to ${tag}?`,
    body,
    confirm: major ? `Update to ${tag} (major)` : `Update to ${tag}`,
    tone: major ? 'danger' : '',
    opener,
  });
  if (!ok) return;
  if (one) {
    const seen = findContainer(keyOf(targets[0].host, targets[0].container_name));
    if (seen) await update(seen.group, seen.item, tag);
    return;
  }
  const requested = targets.filter((c) => jobs.request(c, tag));
  if (requested.length === 0) return;
  scheduleRender();
  try {
    await api(groupPath(group.image), { method: 'POST', body: { tag } });
    for (const c of requested) jobs.accepted(keyOf(c.host, c.container_name));
  } catch (error) {
    if (error.status === 401) return;
    for (const c of requested) jobs.refused(keyOf(c.host, c.container_name), describe(error));
  }
  scheduleRender();
}

function retry(key) {
  const seen = findContainer(key);
  if (!seen) {
    const last = state.lastSeen.get(key)?.item;
    toast(`${last ? label(last.container_name, last.host) : 'The container'} is not running any more.`, 'error');
    return;
  }
  // A failed move to another tag is tried again to that tag.
  const tag = jobs.get(key)?.tag || null;
  jobs.dismiss(key);
  update(seen.group, seen.item, tag);
}

function dismiss(key) {
  jobs.dismiss(key);
  scheduleRender();
}

async function toggleAuto(item, button) {
  // Not disabled while it waits (that would drop the keyboard focus): a
  // second press before the answer is ignored.
  if (button.dataset.pending) return;
  button.dataset.pending = '1';
  setAttr(button, 'aria-busy', 'true');
  const before = item.auto_update;
  item.auto_update = !before;
  setAttr(button, 'aria-checked', item.auto_update ? 'true' : 'false');
  try {
    const answer = await api(containerPath(apiId(item.host, item.container_id), 'auto-update'), { method: 'POST' });
    item.auto_update = !!answer?.auto_update;
    announce(`Auto-update ${item.auto_update ? 'on' : 'off'} for ${label(item.container_name, item.host)}.`);
  } catch (error) {
    item.auto_update = before;
    if (error.status !== 401) {
      toast(`Could not change auto-update of ${label(item.container_name, item.host)}: ${describe(error)}`, 'error');
    }
  } finally {
    delete button.dataset.pending;
    setAttr(button, 'aria-busy', null);
    scheduleRender();
  }
}

/** Asks first: Swarm rolls the service out task by task and rolls it back on a failure. */
async function confirmServiceUpdate(service, opener) {
  if (serviceJobs.isActive(service.id)) return;
  const n = wantedTasks(service);
  const tasks = n === 1 ? 'its task' : `its ${n} tasks`;
  const ok = await confirmDialog({
    title: `Update service ${service.name}?`,
    body: [
      h(
        'div',
        { class: 'dialog-move' },
        h('code', { class: 'dialog-image' }, service.image),
        h(
          'span',
          { class: 'dialog-digests' },
          h('code', { title: service.digest }, shortDigest(service.digest)),
          h('span', { class: 'arrow', role: 'img', 'aria-label': 'to' }, ' → '),
          h('code', { title: service.remote_digest }, shortDigest(service.remote_digest)),
        ),
      ),
      h(
        'p',
        {},
        `Swarm rolls the new image out task by task: ${tasks} are replaced one after another (or as the service’s own update settings say), each new task watched before the next.`,
      ),
      h('p', {}, h('strong', {}, 'If a new task fails, Swarm rolls the service back'), ' to the image it runs now.'),
    ],
    confirm: 'Update service',
    opener,
  });
  if (!ok) return;
  await updateService(findService(service.id) || service);
}

async function updateService(service) {
  if (!serviceJobs.request(service)) return;
  scheduleRender();
  try {
    await api(`/api/services/${encodeURIComponent(service.id)}/update`, { method: 'POST' });
    serviceJobs.accepted(service.id);
  } catch (error) {
    if (error.status === 401) return;
    serviceJobs.refused(service.id, describe(error));
  }
  scheduleRender();
}

function retryService(id) {
  const service = findService(id);
  serviceJobs.dismiss(id);
  if (!service) {
    toast('That service is gone.', 'error');
    scheduleRender();
    return;
  }
  updateService(service);
}

function dismissService(id) {
  serviceJobs.dismiss(id);
  scheduleRender();
}

async function toggleServiceAuto(service, button) {
  if (button.dataset.pending) return;
  button.dataset.pending = '1';
  setAttr(button, 'aria-busy', 'true');
  const before = service.auto_update;
  service.auto_update = !before;
  setAttr(button, 'aria-checked', service.auto_update ? 'true' : 'false');
  try {
    const answer = await api(`/api/services/${encodeURIComponent(service.id)}/auto-update`, { method: 'POST' });
    service.auto_update = !!answer?.auto_update;
    // The list the websocket sends next says the same; until then this copy does.
    const current = findService(service.id);
    if (current) current.auto_update = service.auto_update;
    announce(`Auto-update ${service.auto_update ? 'on' : 'off'} for service ${service.name}.`);
  } catch (error) {
    service.auto_update = before;
    if (error.status !== 401) toast(`Could not change auto-update of service ${service.name}: ${describe(error)}`, 'error');
  } finally {
    delete button.dataset.pending;
    setAttr(button, 'aria-busy', null);
    scheduleRender();
  }
}

function findContainer(key) {
  for (const group of state.groups) {
    const item = group.containers.find((c) => keyOf(c.host, c.container_name) === key);
    if (item) return { group, item };
  }
  return null;
}

/** A check of every image now; `tags`: every repository's tags are listed again too (versions). */
async function checkNow(tags = false) {
  const button = $('check');
  // Busy, not disabled: a disabled button would drop the keyboard focus.
  if (button.getAttribute('aria-busy') === 'true') return;
  setAttr(button, 'aria-busy', 'true');
  button.classList.add('busy');
  setText(button.querySelector('.btn-word'), 'Checking…');
  try {
    setGroups(await api(tags ? '/api/check?tags=1' : '/api/check', { method: 'POST' }));
    const n = state.groups.length;
    toast(`Checked ${n} image${n === 1 ? '' : 's'}${tags ? ' and refreshed their versions' : ''}.`);
  } catch (error) {
    if (error.status !== 401) toast(`Check failed: ${describe(error)}`, 'error');
  } finally {
    setAttr(button, 'aria-busy', null);
    button.classList.remove('busy');
    setText(button.querySelector('.btn-word'), 'Check now');
  }
}

// ------------------------------------------------------------ render

let frame = 0;

function scheduleRender() {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    render();
  });
}

/**
 * The view plus, during an update, the rows of containers that are briefly
 * out of it (stopped, renamed, being replaced), so no row jumps away. That
 * holds just after a success too: the view with the new container (maybe in
 * the group of another tag) can come after the job's last word.
 */
function displayed() {
  const groups = state.groups.map((g) => ({ ...g, containers: [...g.containers] }));
  for (const job of jobs.byName.values()) {
    if (findContainer(job.key)) continue;
    const seen = state.lastSeen.get(job.key);
    if (!seen) continue;
    let group = groups.find((g) => g.image === seen.group.image);
    if (!group) {
      group = { ...seen.group, containers: [] };
      groups.push(group);
      groups.sort((a, b) => (a.image < b.image ? -1 : a.image > b.image ? 1 : 0));
    }
    const updated = job.state === 'ended' && job.outcome?.kind === 'updated';
    group.containers.push({ ...seen.item, status: updated ? 'uptodate' : seen.item.status, gone: job.state === 'ended' && !updated });
    group.containers.sort((a, b) => {
      if (a.container_name !== b.container_name) return a.container_name < b.container_name ? -1 : 1;
      return (a.host || '') < (b.host || '') ? -1 : 1;
    });
  }
  return groups;
}

function render() {
  if (state.screen !== 'dash' || !state.loaded) return;
  const groups = displayed();
  const services = state.swarm ? state.services || [] : [];
  const q = state.filter.q.trim();
  // Counts, filters and the title take containers and services alike.
  const counts = { all: 0, outdated: 0, uptodate: 0, unknown: 0 };
  const perHost = new Map();
  let outdatedTotal = 0;
  let total = 0;
  const hostFilter = several() ? state.filter.host : '';
  for (const group of groups) {
    for (const c of group.containers) {
      if (c.gone) continue;
      total += 1;
      if (c.status === 'outdated') outdatedTotal += 1;
      if (!matches(group, c, q)) continue;
      // Each filter's counts say what picking it would show, given the other.
      if (!hostFilter || c.host === hostFilter) {
        counts.all += 1;
        if (c.status in counts) counts[c.status] += 1;
      }
      if (state.filter.status === 'all' || state.filter.status === c.status) {
        perHost.set(c.host, (perHost.get(c.host) || 0) + 1);
      }
    }
  }
  // The services are on one engine: a host filter for another hides them.
  const servicesHere = !hostFilter || hostFilter === servicesHost();
  for (const s of services) {
    if (s.status === 'outdated') outdatedTotal += 1;
    if (!serviceMatches(s, q)) continue;
    if (servicesHere) {
      counts.all += 1;
      if (s.status in counts) counts[s.status] += 1;
    }
    if (servicesHost() && (state.filter.status === 'all' || state.filter.status === s.status)) {
      perHost.set(servicesHost(), (perHost.get(servicesHost()) || 0) + 1);
    }
  }
  for (const el of document.querySelectorAll('[data-count]')) setText(el, counts[el.dataset.count]);
  for (const el of document.querySelectorAll('[data-host-count]')) {
    const name = el.dataset.hostCount;
    setText(el, name ? perHost.get(name) || 0 : [...perHost.values()].reduce((a, b) => a + b, 0));
  }
  for (const chip of document.querySelectorAll('.chip[data-host]')) {
    setAttr(chip, 'aria-pressed', chip.dataset.host === hostFilter ? 'true' : 'false');
  }
  for (const chip of document.querySelectorAll('.chip[data-filter]')) {
    setAttr(chip, 'aria-pressed', chip.dataset.filter === state.filter.status ? 'true' : 'false');
  }
  document.title = outdatedTotal > 0 ? `${outdatedTotal} outdated · shipshape` : 'shipshape';

  const shown = list.render(groups, jobs, { ...state.filter, host: hostFilter }, { hosts: several() ? state.hosts : null });
  const shownServices = servicesHere ? serviceList.render(services, serviceJobs, state.filter) : 0;
  const filtered = state.filter.status !== 'all' || q !== '' || hostFilter !== '';
  // A manager without services says so, unless a filter is what hides them.
  const servicesShown = state.swarm && servicesHere && (services.length === 0 ? !filtered : shownServices > 0);
  $('services').hidden = !servicesShown;
  $('services-none').hidden = services.length > 0;
  setText($('services-count'), services.length === 0 ? '' : sectionCount(shownServices, services.length));
  renderServicesHost();
  $('containers-head').hidden = !servicesShown || shown === 0;
  setText($('containers-count'), sectionCount(shown, total));
  // On a Swarm node with services, no other container is nothing to point out.
  $('empty').hidden = total > 0 || groups.length > 0 || services.length > 0;
  const nothing = shown === 0 && shownServices === 0 && !(total === 0 && groups.length === 0 && services.length === 0);
  $('nomatch').hidden = !nothing;
  const search = state.swarm ? 'Search services and containers' : 'Search containers and images';
  if ($('search').placeholder !== search) {
    $('search').placeholder = search;
    setText($('search-label'), search);
    setText($('nomatch-title'), state.swarm ? 'Nothing matches' : 'No containers match');
  }
  if (nothing) {
    const parts = [];
    if (state.filter.status !== 'all') parts.push(`status “${chipWord(state.filter.status)}”`);
    if (hostFilter) parts.push(`host “${hostFilter}”`);
    if (q) parts.push(`“${q}”`);
    setText($('nomatch-text'), `Nothing matches ${parts.join(' and ')}.`);
  }
}

/** With several engines the Services section names the one its services are on. */
function renderServicesHost() {
  const tag = $('services-host');
  const name = servicesHost();
  tag.hidden = !name;
  if (!name || tag.dataset.host === name) return;
  tag.dataset.host = name;
  tag.textContent = '';
  tag.append(icon('server'), name);
  setAttr(tag, 'title', `Services of the Docker engine ${name}`);
}

/** `3`, or `2 of 3` while a filter hides some. */
function sectionCount(shown, total) {
  return shown === total ? String(total) : `${shown} of ${total}`;
}

function chipWord(status) {
  return document.querySelector(`.chip[data-filter="${status}"]`)?.textContent.replace(/\d+/g, '').trim() || status;
}

function tick() {
  const expired = jobs.expire();
  if (serviceJobs.expire() || expired) scheduleRender();
  list.tick();
  serviceList.tick();
  historyPanel.tick();
}

// ------------------------------------------------------------ connection

function showConnection(connState) {
  const el = $('conn');
  el.dataset.state = connState;
  const words = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', stopped: 'Offline' };
  setText(el.querySelector('.conn-word'), words[connState] || connState);
  setAttr(el, 'title', connState === 'live' ? 'Changes show up as they happen' : 'Live updates are paused');
  $('stale').hidden = connState !== 'reconnecting';
  if (connState === 'live') watchJobs(true);
}

// ------------------------------------------------------------ toolbar, URL, keys

function readFilter() {
  const params = new URLSearchParams(location.search);
  const status = params.get('status');
  return { status: FILTERS.includes(status) ? status : 'all', q: params.get('q') || '', host: params.get('host') || '' };
}

function writeFilter() {
  const params = new URLSearchParams(location.search);
  if (state.filter.status === 'all') params.delete('status');
  else params.set('status', state.filter.status);
  if (state.filter.q) params.set('q', state.filter.q);
  else params.delete('q');
  if (state.filter.host) params.set('host', state.filter.host);
  else params.delete('host');
  const query = params.toString();
  const url = `${location.pathname}${query ? `?${query}` : ''}${location.hash}`;
  if (url !== `${location.pathname}${location.search}${location.hash}`) window.history.replaceState(null, '', url);
}

function setupToolbar() {
  const search = $('search');
  search.value = state.filter.q;
  search.addEventListener('input', () => {
    state.filter.q = search.value;
    writeFilter();
    scheduleRender();
  });
  search.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && search.value) {
      event.preventDefault();
      search.value = '';
      state.filter.q = '';
      writeFilter();
      scheduleRender();
    }
  });
  for (const chip of document.querySelectorAll('.chip[data-filter]')) {
    chip.addEventListener('click', () => {
      const wanted = chip.dataset.filter;
      state.filter.status = state.filter.status === wanted && wanted !== 'all' ? 'all' : wanted;
      writeFilter();
      scheduleRender();
    });
  }
  $('host-filters').addEventListener('click', (event) => {
    const chip = event.target.closest('.chip[data-host]');
    if (!chip) return;
    const wanted = chip.dataset.host;
    state.filter.host = state.filter.host === wanted ? '' : wanted;
    writeFilter();
    scheduleRender();
  });
  $('clear-filters').addEventListener('click', () => {
    state.filter = { status: 'all', q: '', host: '' };
    search.value = '';
    writeFilter();
    scheduleRender();
    search.focus();
  });
  // Shift-click, or the menu next to it: list every repository's tags again too.
  $('check').addEventListener('click', (event) => checkNow(event.shiftKey));
  const checkMenu = new Menu($('check-more'), () => [
    { label: 'Check now', hint: 'The newest image of every tag', onSelect: () => checkNow(false) },
    { label: 'Check now and refresh versions', hint: 'Also lists every repository’s tags again (slower; Shift-click)', onSelect: () => checkNow(true) },
  ]);
  $('check').after(checkMenu.el);
  $('logout').addEventListener('click', logout);
  $('failure-retry').addEventListener('click', () => boot());
  $('history-open').addEventListener('click', () => {
    openModal($('history'), $('history-open'));
    historyPanel.load();
    historyPanel.render();
    $('history').querySelector('[data-close]').focus();
  });
  $('history').querySelector('[data-close]').addEventListener('click', () => $('history').close());
  $('history').addEventListener('click', (event) => {
    if (event.target === $('history')) $('history').close();
  });
  document.addEventListener('keydown', (event) => {
    if (event.key !== '/' || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    const typing = target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement || target?.isContentEditable;
    // The toolbar is there while the list loads too: '/' works from the first paint.
    const onDashboard = state.screen === 'dash' || state.screen === 'loading';
    if (typing || !onDashboard || document.querySelector('dialog[open]')) return;
    event.preventDefault();
    search.focus();
    search.select();
  });
}

/**
 * One chip per engine, shown only when there are several; an engine that
 * does not answer says so on its chip (its rows show the last state known).
 */
function renderHostFilter() {
  const box = $('host-filters');
  box.hidden = !several();
  if (!several()) return;
  const key = JSON.stringify(state.hosts.map((h) => [h.name, h.connected, h.error]));
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.textContent = '';
  const chip = (name, word, down) =>
    h(
      'button',
      {
        type: 'button',
        class: 'chip chip-host',
        'aria-pressed': 'false',
        dataset: { host: name, ...(down ? { down: 'true' } : {}) },
        title: down ? `Docker engine ${name} does not answer: ${down}` : name ? `Containers on the Docker engine ${name}` : null,
      },
      icon(down ? 'alert' : 'server'),
      word,
      down ? h('span', { class: 'sr-only' }, ' (not answering)') : null,
      h('span', { class: 'chip-count', dataset: { hostCount: name } }, '0'),
    );
  box.append(chip('', 'All hosts', null));
  for (const host of state.hosts) box.append(chip(host.name, host.name, host.connected ? null : host.error || 'unreachable'));
}

// ------------------------------------------------------------ storage

/** localStorage, which may be off (private mode): then nothing is kept. */
function remember(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // Kept for this page only.
  }
}

function recall(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

// ------------------------------------------------------------ theme

const THEMES = ['auto', 'light', 'dark'];
const THEME_ICONS = { auto: 'auto', light: 'sun', dark: 'moon' };

function setupTheme() {
  const button = $('theme');
  const apply = (theme) => {
    if (theme === 'auto') document.documentElement.removeAttribute('data-theme');
    else document.documentElement.setAttribute('data-theme', theme);
    setText(button.querySelector('.theme-word'), theme[0].toUpperCase() + theme.slice(1));
    setIcon(button, THEME_ICONS[theme]);
    const next = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
    setAttr(button, 'aria-label', `Theme: ${theme}. Switch to ${next}.`);
    button.dataset.theme = theme;
  };
  let theme = recall('shipshape.theme') || 'auto';
  if (!THEMES.includes(theme)) theme = 'auto';
  apply(theme);
  button.addEventListener('click', () => {
    theme = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
    remember('shipshape.theme', theme);
    apply(theme);
  });
}

// ------------------------------------------------------------ start

for (const el of document.querySelectorAll('[data-icon]')) {
  el.replaceWith(icon(el.dataset.icon, el.className));
}
setupTheme();
setupToolbar();
setupLogin();
onUnauthorized(() => showLogin(SESSION_ENDED));
setInterval(tick, 30000);
setInterval(watchJobs, WATCH_MS);
boot();
