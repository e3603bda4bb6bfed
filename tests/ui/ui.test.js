// shipshape's web UI in a real browser (Debian's chromium, driven by
// playwright-core) against the real service and the private lab: real
// containers, real registries, real updates. Route mocking only for states
// the lab cannot produce (a 503 on load, version data the API does not have
// yet, no containers at all, a login brake without waiting out its minute, a
// history with a service and a container of the same name on two engines).
//
// The tests run in order on one service and one logged-in page, as a person
// would use it; each saves screenshots (desktop and phone, light and dark)
// under target/ui-screenshots/.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { App, freePort } from './lib/app.js';
import { createServer, connect } from 'node:net';
import { buildImage, containersNamed, docker, host2, loadLab, onSwarm, remove, removeImages, run } from './lib/lab.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SHOTS = join(ROOT, 'target/ui-screenshots');
const BINARY = process.env.SHIPSHAPE_BIN || join(ROOT, 'target/debug/shipshape');
const PASSWORD = 'ui-tests-correct-horse';
/** Jobs pull, recreate and verify on a vfs engine shared with other tests: generous. */
const JOB_PATIENCE = 120000;
const PATIENCE = 30000;
const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--headless',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// One name for everything this run makes, so the page can be narrowed to it
// (other tests share the lab's daemon) and it is all removed afterwards.
const RUN = `ui-${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
const lab = loadLab();
const REPO = `${lab.registry}/${RUN}`;
const IMAGES = {
  app: `${REPO}/app:1`,
  crash: `${REPO}/crash:1`,
  pair: `${REPO}/pair:1`,
  drop: `${REPO}/drop:1`,
  steady: `${REPO}/steady:1`,
  // Nothing listens on port 9: the check fails, the group shows why.
  offline: `127.0.0.1:9/${RUN}/offline:1`,
};
const NAMES = {
  app: `${RUN}-app`,
  crash: `${RUN}-crash`,
  pair1: `${RUN}-pair-1`,
  pair2: `${RUN}-pair-2`,
  drop: `${RUN}-drop`,
  steady: `${RUN}-steady`,
  offline: `${RUN}-offline`,
  live: `${RUN}-live`,
  late: `${RUN}-late`,
  ver: `${RUN}-ver`,
  verLatest: `${RUN}-ver-latest`,
  svc: `${RUN}-svc`,
};
/** A repository with version tags (built by the versions test). */
const VER = `${REPO}/ver`;

let app;
let browser;
let context;
let page;
let shotNumber = 0;
const dataDir = mkdtempSync(join(tmpdir(), 'shipshape-ui-data-'));

before(async () => {
  if (!existsSync(BINARY)) throw new Error(`no ${BINARY}: build it first (cargo build)`);
  rmSync(SHOTS, { recursive: true, force: true });
  mkdirSync(SHOTS, { recursive: true });
  // v1 of each image runs; v2 of app, crash and pair is only in the registry.
  buildImage(lab, IMAGES.app, 'COPY marker /marker', { files: { marker: 'app 1\n' } });
  buildImage(lab, IMAGES.app, 'COPY marker /marker\nCOPY blob /blob', {
    files: { marker: 'app 2\n', blob: randomBytes(6 * 1024 * 1024) },
    remoteOnly: true,
  });
  buildImage(lab, IMAGES.crash, 'CMD ["sleep", "100000"]');
  buildImage(lab, IMAGES.crash, 'CMD ["sh", "-c", "echo starting; exit 3"]', { remoteOnly: true });
  buildImage(lab, IMAGES.pair, 'COPY marker /marker', { files: { marker: 'pair 1\n' } });
  buildImage(lab, IMAGES.pair, 'COPY marker /marker', { files: { marker: 'pair 2\n' }, remoteOnly: true });
  buildImage(lab, IMAGES.drop, 'COPY marker /marker', { files: { marker: 'drop 1\n' } });
  buildImage(lab, IMAGES.drop, 'COPY marker /marker', { files: { marker: 'drop 2\n' }, remoteOnly: true });
  buildImage(lab, IMAGES.steady, 'COPY marker /marker', { files: { marker: 'steady\n' } });
  docker(lab, ['tag', lab.baseImage, IMAGES.offline]);
  run(lab, NAMES.app, IMAGES.app);
  // The crash image's own CMD runs, so its next version's CMD does too.
  run(lab, NAMES.crash, IMAGES.crash, []);
  run(lab, NAMES.pair1, IMAGES.pair);
  run(lab, NAMES.pair2, IMAGES.pair);
  run(lab, NAMES.drop, IMAGES.drop);
  run(lab, NAMES.steady, IMAGES.steady);
  run(lab, NAMES.offline, IMAGES.offline);

  app = new App({
    binary: BINARY,
    lab,
    port: await freePort(),
    dataDir,
    password: PASSWORD,
    env: { SHIPSHAPE_VERIFY_TIMEOUT: '2s' },
  });
  await app.start();
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  context = await browser.newContext({ viewport: DESKTOP, colorScheme: 'light' });
  page = await context.newPage();
  page.on('pageerror', (e) => {
    pageErrors.push(e.message);
  });
  page.on('request', (req) => {
    const url = new URL(req.url());
    if (url.host !== new URL(app.url).host) foreign.push(req.url());
  });
  // Chromium reports what the Content-Security-Policy blocked on the console.
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) cspViolations.push(message.text());
  });
});

const pageErrors = [];
const foreign = [];
const cspViolations = [];

after(async () => {
  await browser?.close().catch(() => {});
  await app?.kill().catch(() => {});
  for (const name of containersNamed(lab, RUN)) remove(lab, name);
  for (const ref of Object.values(IMAGES)) docker(lab, ['rmi', ref], { allowFail: true });
  removeImages(lab, `${REPO}/`);
  rmSync(dataDir, { recursive: true, force: true });
  if (process.exitCode && app) process.stderr.write(`\nshipshape log (tail):\n${app.log.slice(-4000)}\n`);
});

// ------------------------------------------------------------------ helpers

/** Polls `fn` until it returns something truthy; fails with `what` after `timeout`. */
async function until(what, fn, timeout = PATIENCE) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeout} ms (last: ${last?.message ?? JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const row = (p, name) => p.locator(`li.row[data-name="${name}"]`);
const card = (p, image) => p.locator(`article.card[data-image="${image}"]`);

async function badgeOf(locator) {
  return locator.locator('.badge').first().getAttribute('data-status');
}

async function waitBadge(p, name, status, timeout = PATIENCE) {
  await until(`${name} badge ${status}`, async () => (await badgeOf(row(p, name))) === status, timeout);
}

async function connState(p) {
  return p.locator('#conn').getAttribute('data-state');
}

/** Screenshots of the page as it is, at desktop and phone width, light and dark. */
async function snap(p, name, { only, full = true } = {}) {
  shotNumber += 1;
  const base = `${String(shotNumber).padStart(2, '0')}-${name}`;
  const viewport = p.viewportSize();
  const variants = only || [
    ['desktop', DESKTOP, 'light'],
    ['desktop', DESKTOP, 'dark'],
    ['phone', PHONE, 'light'],
    ['phone', PHONE, 'dark'],
  ];
  for (const [label, size, scheme] of variants) {
    await p.setViewportSize(size);
    // A whole page is taken from its top: the sticky bar stays where it belongs.
    if (full) await p.evaluate(() => window.scrollTo(0, 0));
    await p.emulateMedia({ colorScheme: scheme });
    await p.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    await p.screenshot({ path: join(SHOTS, `${base}-${label}-${scheme}.png`), fullPage: full, animations: 'disabled' });
  }
  await p.setViewportSize(viewport);
  await p.emulateMedia({ colorScheme: 'light' });
}

async function login(p) {
  await p.locator('#login').waitFor({ state: 'visible' });
  await p.fill('#user', 'admin');
  await p.fill('#pass', PASSWORD);
  await p.click('#login-submit');
  await p.locator('#dash').waitFor({ state: 'visible' });
}

/** The page narrowed to this run's containers (other tests share the daemon). */
async function narrow(p, extra = '') {
  await p.goto(`${app.url}/?q=${RUN}${extra}`);
  await p.locator('#dash').waitFor({ state: 'visible' });
  await until('live', async () => (await connState(p)) === 'live');
}

async function apiImages(p) {
  return p.evaluate(async () => (await fetch('/api/images')).json());
}

// ------------------------------------------------------------------ tests

test('serving: / and the embedded files with their types, a strong ETag, revalidation, 304; other paths 404', async () => {
  const index = await fetch(`${app.url}/`);
  assert.equal(index.status, 200);
  assert.equal(index.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.equal(index.headers.get('cache-control'), 'no-cache');
  assert.equal(index.headers.get('content-security-policy'), "default-src 'self'; frame-ancestors 'none'");
  assert.equal(index.headers.get('x-content-type-options'), 'nosniff');
  const etag = index.headers.get('etag');
  assert.match(etag, /^"[0-9a-f]{32}"$/);
  const html = await index.text();
  assert.match(html, /<script type="module" src="js\/main\.js"><\/script>/);
  assert.doesNotMatch(html, /<script>|<style|\sstyle=|\son[a-z]+=/i, 'nothing inline');
  const same = await fetch(`${app.url}/index.html`);
  assert.equal(same.headers.get('etag'), etag);
  const again = await fetch(`${app.url}/`, { headers: { 'if-none-match': etag } });
  assert.equal(again.status, 304);
  assert.equal(again.headers.get('etag'), etag);
  assert.equal(await again.text(), '');
  const types = { '/app.css': 'text/css; charset=utf-8', '/js/main.js': 'text/javascript; charset=utf-8', '/favicon.svg': 'image/svg+xml' };
  for (const [path, type] of Object.entries(types)) {
    const res = await fetch(`${app.url}${path}`);
    assert.equal(res.status, 200, path);
    assert.equal(res.headers.get('content-type'), type, path);
    assert.equal(res.headers.get('cache-control'), 'no-cache', path);
    assert.notEqual(res.headers.get('etag'), etag, path);
  }
  for (const path of ['/nope.js', '/js/', '/web/index.html', '/../Cargo.toml', '/%2e%2e/Cargo.toml']) {
    const res = await fetch(`${app.url}${path}`);
    assert.equal(res.status, 404, path);
    assert.equal(await res.text(), 'not found\n', path);
  }
  const post = await fetch(`${app.url}/app.css`, { method: 'POST' });
  assert.equal(post.status, 405);
  // The API next to it stays closed without a session.
  assert.equal((await fetch(`${app.url}/api/images`)).status, 401);
  // What `/` shows a browser without a session.
  await page.goto(app.url);
  await page.locator('#login').waitFor({ state: 'visible' });
  await snap(page, 'first-visit');
});

test('login: an anonymous visit gets the form; a wrong password says so; the right one opens the page', async () => {
  await page.goto(app.url);
  await page.locator('#login').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#dash').isVisible(), false);
  await page.fill('#user', 'admin');
  await page.fill('#pass', 'not-the-password');
  await page.click('#login-submit');
  const alert = page.locator('#login-error[role="alert"]');
  await alert.waitFor({ state: 'visible' });
  assert.equal((await alert.textContent()).trim(), 'Wrong user or password.');
  // Focus goes back to the password, selected, to type it again.
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'pass');
  await snap(page, 'login-wrong-password');
  await page.fill('#pass', PASSWORD);
  await page.press('#pass', 'Enter');
  await page.locator('#dash').waitFor({ state: 'visible' });
  await until('live', async () => (await connState(page)) === 'live');
  assert.equal(await page.locator('#login').isVisible(), false);
});

test('groups: one card per image with its badge, digests, check time and error; counts filter', async () => {
  await narrow(page);
  // The first check of every image runs at start; wait until each group has its answer.
  await until('outdated groups', async () => (await card(page, IMAGES.pair).getAttribute('data-status')) === 'outdated');
  await until('app outdated', async () => (await card(page, IMAGES.app).getAttribute('data-status')) === 'outdated');
  await until('crash outdated', async () => (await card(page, IMAGES.crash).getAttribute('data-status')) === 'outdated');
  await until('drop outdated', async () => (await card(page, IMAGES.drop).getAttribute('data-status')) === 'outdated');
  await until('steady up to date', async () => (await card(page, IMAGES.steady).getAttribute('data-status')) === 'uptodate');
  await until('offline unknown', async () => (await card(page, IMAGES.offline).getAttribute('data-status')) === 'unknown');

  // Badges carry a word as well as a colour.
  const words = {
    [IMAGES.pair]: 'Outdated',
    [IMAGES.steady]: 'Up to date',
    [IMAGES.offline]: 'Unknown',
  };
  for (const [image, word] of Object.entries(words)) {
    assert.equal((await card(page, image).locator('.badge-group .badge-word').textContent()).trim(), word, image);
  }
  // The registry that does not answer: its reason, in the card.
  const error = card(page, IMAGES.offline).locator('.card-error');
  await error.waitFor({ state: 'visible' });
  assert.match(await error.textContent(), /127\.0\.0\.1:9/);
  // An outdated row: local → newest digest, and an Update button; an up-to-date one has none.
  const images = await apiImages(page);
  const pair = images.find((g) => g.image === IMAGES.pair);
  const pairRow = row(page, NAMES.pair1);
  assert.match(await pairRow.locator('.row-digests').textContent(), new RegExp(`${pair.containers[0].local_digest.slice(7)}.*→.*${pair.remote_digest.slice(7)}`));
  assert.equal(await pairRow.locator('button.update').isVisible(), true);
  assert.equal(await row(page, NAMES.steady).locator('button.update').isVisible(), false);
  assert.match(await card(page, IMAGES.steady).locator('.card-meta time').textContent(), /ago|now/);
  assert.equal(await pairRow.locator('.id').textContent(), pair.containers[0].container_id);

  // Counts of what the search matches: 5 outdated (app, crash, drop, 2× pair), 1 up to date, 1 unknown.
  const count = async (f) => Number(await page.locator(`[data-count="${f}"]`).textContent());
  assert.deepEqual([await count('all'), await count('outdated'), await count('uptodate'), await count('unknown')], [7, 5, 1, 1]);
  // The title counts every outdated container of the host (other tests' too).
  await until('title', async () => {
    const all = await apiImages(page);
    const outdated = all.flatMap((g) => g.containers).filter((c) => c.status === 'outdated').length;
    return (await page.title()) === `${outdated} outdated · shipshape`;
  });
  // A count is a filter.
  await page.click('.chip[data-filter="uptodate"]');
  await until('only up to date rows', async () => {
    const shown = await page.locator('li.row:visible').evaluateAll((rows) => rows.map((r) => r.dataset.name));
    return shown.length === 1 && shown[0] === NAMES.steady;
  });
  await page.click('.chip[data-filter="all"]');
  await page.locator(`li.row[data-name="${NAMES.pair1}"]`).waitFor({ state: 'visible' });
  // A plain engine (no swarm manager): no Services section, and the API has none.
  assert.equal(await page.locator('#services').isVisible(), false);
  assert.deepEqual(await page.evaluate(async () => (await fetch('/api/services')).json()), []);
  assert.equal(await page.locator('#search').getAttribute('placeholder'), 'Search containers and images');
  await snap(page, 'groups');

  // Check now: spinner and busy state while it runs (a second click starts
  // nothing), then the fresh view.
  const checks = [];
  const onCheck = (req) => req.url().endsWith('/api/check') && checks.push(req.method());
  page.on('request', onCheck);
  const busy = await page.evaluate(() => {
    const button = document.getElementById('check');
    button.click();
    button.click();
    return [button.getAttribute('aria-busy'), button.classList.contains('busy'), button.textContent.trim()];
  });
  assert.deepEqual(busy, ['true', true, 'Checking…']);
  await until('check done', async () => (await page.locator('#check').textContent()).trim() === 'Check now');
  await page.locator('#toast.show').waitFor();
  assert.match(await page.locator('#toast').textContent(), /Checked \d+ images?/);
  page.off('request', onCheck);
  assert.deepEqual(checks, ['POST']);
});

test('update: the progress bar advances through the phases and the badge turns uptodate; a double click sends one request', async () => {
  await narrow(page);
  const name = NAMES.app;
  await waitBadge(page, name, 'outdated');
  const oldId = await row(page, name).getAttribute('data-id');
  const posts = [];
  page.on('request', (req) => {
    if (req.method() === 'POST' && req.url().includes(`/api/images/${oldId}/update`)) posts.push(req.url());
  });
  // Every value the bar shows, and every phase, as the page changes them.
  await page.evaluate((name) => {
    window.__bar = [];
    window.__phases = [];
    const record = () => {
      const r = document.querySelector(`li.row[data-name="${name}"]`);
      const bar = r?.querySelector('[role="progressbar"]');
      if (!bar) return;
      const v = Number(bar.getAttribute('aria-valuenow'));
      if (window.__bar.at(-1) !== v) window.__bar.push(v);
      const phase = r.querySelector('.job-phase')?.textContent;
      if (phase && window.__phases.at(-1) !== phase) window.__phases.push(phase);
    };
    new MutationObserver(record).observe(document.getElementById('list'), {
      subtree: true,
      childList: true,
      attributes: true,
      characterData: true,
    });
  }, name);
  await row(page, name).locator('button.update').dblclick();
  const bar = row(page, name).locator('[role="progressbar"]');
  await bar.waitFor({ state: 'visible' });
  assert.equal(await row(page, name).locator('.badge').getAttribute('data-status'), 'updating');
  await until('a phase after the pull', async () => (await page.evaluate(() => window.__phases)).some((p) => p !== 'Starting'), JOB_PATIENCE);
  await snap(page, 'update-in-progress', { only: [['desktop', DESKTOP, 'light']] });
  await waitBadge(page, name, 'uptodate', JOB_PATIENCE);
  await row(page, name).locator('.outcome-ok').waitFor({ state: 'visible' });

  const values = await page.evaluate(() => window.__bar);
  const phases = await page.evaluate(() => window.__phases);
  assert.ok(values.length >= 3, `bar values ${values}`);
  for (let i = 1; i < values.length; i += 1) assert.ok(values[i] >= values[i - 1], `bar went back: ${values}`);
  assert.equal(values[0], 0, `${values}`);
  assert.ok(values.at(-1) >= 75, `${values}`);
  assert.ok(phases.includes('Verifying'), `phases ${phases}`);
  assert.equal(posts.length, 1, `POSTs: ${posts}`);
  // A new container under the same name.
  assert.notEqual(await row(page, name).getAttribute('data-id'), oldId);
  assert.equal(await row(page, name).locator('button.update').isVisible(), false);
  await snap(page, 'update-done');
});

test('update that rolls back: its reason inline, with Retry; the other rows still work; all by keyboard', async () => {
  await narrow(page);
  const name = NAMES.crash;
  await waitBadge(page, name, 'outdated');
  const toggle = row(page, name).getByRole('switch');
  const focused = async (locator) => locator.evaluate((el) => el === document.activeElement);
  await row(page, name).locator('button.update').focus();
  await page.keyboard.press('Enter');
  // The button gives way to the progress; the keyboard stays in the row.
  await until('focus on the row switch', async () => focused(toggle));
  const outcome = row(page, name).locator('.outcome-rolled_back[role="alert"]');
  await outcome.waitFor({ state: 'visible', timeout: JOB_PATIENCE });
  const reason = (await outcome.locator('.reason').textContent()).trim();
  assert.ok(reason.length > 0 && reason !== 'no reason given', reason);
  assert.match(await outcome.textContent(), /Rolled back:/);
  assert.equal(await row(page, name).locator('.badge').getAttribute('data-status'), 'failed');
  const retry = outcome.getByRole('button', { name: `Retry the update of ${name}` });
  assert.equal(await retry.isEnabled(), true);
  // Nothing else is blocked by it.
  assert.equal(await row(page, NAMES.pair1).locator('button.update').isEnabled(), true);
  await snap(page, 'rolled-back');
  // The same reason is in the API's history.
  const entries = await page.evaluate(async () => (await fetch('/api/history?limit=50')).json());
  const entry = entries.find((e) => e.container_name === name);
  assert.equal(entry?.result, 'rolled_back');
  assert.ok(entry.error.includes(reason) || reason.includes(entry.error), `${reason} vs ${entry.error}`);
  // Tab from the switch reaches Retry, then Dismiss; Enter dismisses, back to
  // plain outdated (the old container runs as before), focus in the row.
  await toggle.focus();
  await page.keyboard.press('Tab');
  assert.equal(await focused(retry), true, 'Tab reaches Retry');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await waitBadge(page, name, 'outdated');
  await outcome.waitFor({ state: 'detached' });
  assert.equal(await row(page, name).locator('button.update').isVisible(), true);
  await until('focus kept in the row', async () => row(page, name).evaluate((el) => el.contains(document.activeElement)));
});

test('update all: asks first, naming the containers; Esc cancels and returns focus; then the whole group updates', async () => {
  await narrow(page);
  const group = card(page, IMAGES.pair);
  await until('pair outdated', async () => (await group.getAttribute('data-status')) === 'outdated');
  const button = group.locator('button.update-all');
  await button.click();
  const dialog = page.locator('#confirm');
  await dialog.waitFor({ state: 'visible' });
  const text = await dialog.textContent();
  assert.ok(text.includes(NAMES.pair1) && text.includes(NAMES.pair2), text);
  assert.match(await dialog.locator('[data-confirm]').textContent(), /Update 2 containers/);
  assert.ok(text.includes(IMAGES.pair), text);
  // What is on screen: a modal covers the viewport, not the whole page.
  await snap(page, 'update-all-confirm', { full: false });
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  assert.equal(await button.evaluate((b) => b === document.activeElement), true, 'focus back on Update all');
  assert.equal(await badgeOf(row(page, NAMES.pair1)), 'outdated', 'nothing started');

  await button.click();
  await dialog.waitFor({ state: 'visible' });
  await dialog.locator('[data-confirm]').click();
  await until('both rows updating', async () => {
    const a = await badgeOf(row(page, NAMES.pair1));
    const b = await badgeOf(row(page, NAMES.pair2));
    return a !== 'outdated' && b !== 'outdated';
  });
  await waitBadge(page, NAMES.pair1, 'uptodate', JOB_PATIENCE);
  await waitBadge(page, NAMES.pair2, 'uptodate', JOB_PATIENCE);
  await until('group up to date', async () => (await group.getAttribute('data-status')) === 'uptodate', JOB_PATIENCE);
  assert.equal(await button.isVisible(), false);
});

test('the socket drops in the middle of an update: the row still ends, from GET …/progress', async () => {
  // A dropped socket at an exact moment is what the lab cannot produce:
  // the page's socket goes through a relay here that cuts it at the first
  // progress of this container and refuses new ones until the job is over.
  const name = NAMES.drop;
  const p = await context.newPage();
  let id = null;
  let cut = false;
  let refused = 0;
  let relay = null;
  await p.routeWebSocket('**/api/ws', (ws) => {
    if (cut) {
      refused += 1;
      ws.close({ code: 4000, reason: 'dropped by the test' });
      return;
    }
    const server = ws.connectToServer();
    relay = { ws, server };
    server.onMessage((message) => {
      ws.send(message);
      let parsed = null;
      try {
        parsed = JSON.parse(message);
      } catch {
        // Not JSON: passed on as it is.
      }
      if (!cut && parsed?.type === 'progress' && parsed.container_id === id && !/^(done|error)/.test(parsed.data.status)) {
        cut = true;
        ws.close({ code: 4000, reason: 'dropped by the test' });
        server.close();
      }
    });
    ws.onMessage((message) => server.send(message));
  });
  const polls = [];
  p.on('request', (req) => {
    if (req.url().includes('/progress')) polls.push(req.url());
  });
  try {
    await p.goto(`${app.url}/?q=${RUN}`);
    await p.locator('#dash').waitFor({ state: 'visible' });
    await until('live', async () => (await connState(p)) === 'live');
    await waitBadge(p, name, 'outdated');
    id = await row(p, name).getAttribute('data-id');
    await row(p, name).locator('button.update').click();
    await until('socket cut mid-job', async () => cut, JOB_PATIENCE);
    await until('reconnecting', async () => (await connState(p)) === 'reconnecting');
    // Without the socket the outcome still arrives, read over REST.
    await row(p, name).locator('.outcome-ok').waitFor({ state: 'visible', timeout: JOB_PATIENCE });
    assert.ok(polls.some((u) => u.includes(`/api/images/${id}/progress`)), `progress polls: ${polls}`);
    assert.notEqual(await connState(p), 'live', 'the outcome came without the socket');
    // The page kept trying: every new socket was refused while the job ran.
    assert.ok(refused >= 1 && relay, `refused ${refused}`);
    await waitBadge(p, name, 'uptodate', JOB_PATIENCE);
    await snap(p, 'socket-dropped-mid-update', { only: [['desktop', DESKTOP, 'light'], ['phone', PHONE, 'dark']] });
  } finally {
    await p.close();
  }
});

test('auto-update: the switch is persisted and still on after a reload', async () => {
  await narrow(page);
  const toggle = row(page, NAMES.steady).getByRole('switch', { name: `Auto-update ${NAMES.steady}` });
  assert.equal(await toggle.getAttribute('aria-checked'), 'false');
  const answer = page.waitForResponse((r) => r.url().endsWith('/auto-update') && r.request().method() === 'POST');
  await toggle.click();
  assert.equal((await answer).status(), 200);
  await until('on', async () => (await toggle.getAttribute('aria-checked')) === 'true');
  await page.reload();
  await until('still on after reload', async () => (await toggle.getAttribute('aria-checked')) === 'true');
  // The keyboard works it too: Space on the focused switch.
  await toggle.focus();
  const off = page.waitForResponse((r) => r.url().endsWith('/auto-update'));
  await page.keyboard.press('Space');
  await off;
  await until('off', async () => (await toggle.getAttribute('aria-checked')) === 'false');
  // Focus stayed on the switch through the request.
  assert.equal(await toggle.evaluate((el) => el === document.activeElement), true);
  const on = page.waitForResponse((r) => r.url().endsWith('/auto-update'));
  await page.keyboard.press('Enter');
  await on;
  await until('on again', async () => (await toggle.getAttribute('aria-checked')) === 'true');
  await page.reload();
  await until('on after the second reload', async () => (await toggle.getAttribute('aria-checked')) === 'true');
  await snap(page, 'auto-update-on');
});

test('live: a container started in the lab appears without a reload, and goes when it stops', async () => {
  await narrow(page);
  await page.evaluate(() => {
    window.__sameDocument = true;
  });
  const before = Number(await page.locator('[data-count="all"]').textContent());
  run(lab, NAMES.live, IMAGES.steady);
  await row(page, NAMES.live).waitFor({ state: 'visible' });
  await until('count +1', async () => Number(await page.locator('[data-count="all"]').textContent()) === before + 1);
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload');
  await snap(page, 'live-appeared');
  remove(lab, NAMES.live);
  await row(page, NAMES.live).waitFor({ state: 'detached' });
  await until('count back', async () => Number(await page.locator('[data-count="all"]').textContent()) === before);
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload');
});

test('filters and search live in the URL and survive a reload; "/" focuses the search; no match offers Clear filters', async () => {
  await page.goto(app.url);
  await page.locator('#dash').waitFor({ state: 'visible' });
  await page.locator('body').click({ position: { x: 5, y: 300 } });
  await page.keyboard.press('/');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'search');
  await page.keyboard.type(RUN.toUpperCase());
  await page.click('.chip[data-filter="outdated"]');
  await until('URL', async () => {
    const url = new URL(page.url());
    return url.searchParams.get('status') === 'outdated' && url.searchParams.get('q') === RUN.toUpperCase();
  });
  const shown = async () => page.locator('li.row:visible').evaluateAll((rows) => rows.map((r) => [r.dataset.name, r.dataset.status]));
  // Case-insensitive: the upper-case search finds this run's outdated container (crash, rolled back).
  await until('filtered', async () => JSON.stringify(await shown()) === JSON.stringify([[NAMES.crash, 'outdated']]));
  await page.reload();
  await page.locator('#dash').waitFor({ state: 'visible' });
  await until('still filtered', async () => JSON.stringify(await shown()) === JSON.stringify([[NAMES.crash, 'outdated']]));
  assert.equal(await page.inputValue('#search'), RUN.toUpperCase());
  assert.equal(await page.locator('.chip[data-filter="outdated"]').getAttribute('aria-pressed'), 'true');
  await snap(page, 'filtered');

  await page.fill('#search', `${RUN}-nothing-like-this`);
  await page.locator('#nomatch').waitFor({ state: 'visible' });
  await snap(page, 'no-match', { only: [['desktop', DESKTOP, 'light'], ['phone', PHONE, 'dark']] });
  await page.click('#clear-filters');
  await page.locator('#nomatch').waitFor({ state: 'hidden' });
  await until('URL cleared', async () => new URL(page.url()).search === '');
  assert.ok((await page.locator('li.row:visible').count()) >= 7);
});

test('websocket: a restart of shipshape shows "reconnecting", then live again with the state read anew', async () => {
  await narrow(page);
  await app.kill();
  await until('reconnecting', async () => (await connState(page)) === 'reconnecting');
  assert.match(await page.locator('#conn').textContent(), /Reconnecting/);
  await page.locator('#stale').waitFor({ state: 'visible' });
  await snap(page, 'reconnecting', { only: [['desktop', DESKTOP, 'light'], ['phone', PHONE, 'dark']] });
  // Something changes while nobody is listening.
  run(lab, NAMES.late, IMAGES.steady);
  await app.start();
  await until('live again', async () => (await connState(page)) === 'live', PATIENCE);
  assert.match(await page.locator('#conn').textContent(), /Live/);
  await page.locator('#stale').waitFor({ state: 'hidden' });
  await row(page, NAMES.late).waitFor({ state: 'visible' });
  remove(lab, NAMES.late);
  await row(page, NAMES.late).waitFor({ state: 'detached' });
});

test('history: every update with when, container, image, from → to, result and reason', async () => {
  await narrow(page);
  const opener = page.locator('#history-open');
  await opener.click();
  const panel = page.locator('#history');
  await panel.waitFor({ state: 'visible' });
  const item = (name) => panel.locator('.history-item', { has: page.locator('.history-name', { hasText: name }) }).first();
  await item(NAMES.app).waitFor();
  assert.equal(await item(NAMES.app).getAttribute('data-result'), 'updated');
  assert.match(await item(NAMES.app).textContent(), new RegExp(`${RUN}/app:1`));
  assert.match(await item(NAMES.app).locator('.history-digests').textContent(), /[0-9a-f]{10}\s*→\s*[0-9a-f]{10}/);
  assert.equal(await item(NAMES.crash).getAttribute('data-result'), 'rolled_back');
  assert.ok((await item(NAMES.crash).locator('.history-reason').textContent()).trim().length > 0);
  assert.equal(await item(NAMES.pair1).getAttribute('data-result'), 'updated');
  assert.equal(await item(NAMES.pair2).getAttribute('data-result'), 'updated');
  assert.match(await item(NAMES.app).locator('time').textContent(), /ago|now/);
  await snap(page, 'history', { full: false });
  await page.keyboard.press('Escape');
  await panel.waitFor({ state: 'hidden' });
  assert.equal(await opener.evaluate((b) => b === document.activeElement), true, 'focus back on History');
});

test('versions: 1.0.0 → 2.0.0 (major) and latest = 1.0.0 → 1.1.0 after "Check now and refresh versions"; update to a chosen 1.1.0 moves the row to …:1.1.0', async () => {
  // Tags 1.0.1, 1.1.0 (also `latest`) and 2.0.0 only in the registry; 1.0.0
  // runs (its policy label lets auto-updates go up to minor), and a second
  // container runs the `latest` of before, which was 1.0.0.
  const label = (v) => `LABEL version=${v} org.opencontainers.image.source=https://github.com/example/ver`;
  buildImage(lab, `${VER}:1.0.1`, label('1.0.1'), { remoteOnly: true });
  buildImage(lab, `${VER}:2.0.0`, label('2.0.0'), { remoteOnly: true });
  buildImage(lab, `${VER}:1.1.0`, label('1.1.0'));
  docker(lab, ['tag', `${VER}:1.1.0`, `${VER}:latest`]);
  docker(lab, ['push', `${VER}:latest`]);
  docker(lab, ['rmi', `${VER}:latest`, `${VER}:1.1.0`]);
  buildImage(lab, `${VER}:1.0.0`, label('1.0.0'));
  docker(lab, ['tag', `${VER}:1.0.0`, `${VER}:latest`]);
  docker(lab, [
    'run', '-d', '--network', 'none', '--stop-timeout', '1', '--label', 'shipshape.update=minor',
    '--name', NAMES.ver, `${VER}:1.0.0`, 'sleep', '100000',
  ]);
  run(lab, NAMES.verLatest, `${VER}:latest`);

  await narrow(page);
  await row(page, NAMES.ver).waitFor({ state: 'visible' });
  await row(page, NAMES.verLatest).waitFor({ state: 'visible' });

  // The menu next to "Check now", by keyboard: the second item lists every
  // repository's tags again.
  const more = page.locator('#check-more');
  await more.focus();
  await page.keyboard.press('Enter');
  const checkMenu = page.locator('#check-group [role="menu"]');
  await checkMenu.waitFor({ state: 'visible' });
  assert.equal(await more.getAttribute('aria-expanded'), 'true');
  const focusedItem = () => page.evaluate(() => [document.activeElement?.getAttribute('role'), document.activeElement?.textContent]);
  assert.deepEqual((await focusedItem())[0], 'menuitem');
  assert.match((await focusedItem())[1], /^Check now/);
  const tagsCheck = page.waitForResponse((r) => r.url().endsWith('/api/check?tags=1') && r.request().method() === 'POST', { timeout: JOB_PATIENCE });
  await page.keyboard.press('ArrowDown');
  assert.match((await focusedItem())[1], /refresh versions/);
  await page.keyboard.press('Enter');
  assert.equal((await tagsCheck).status(), 200);
  await checkMenu.waitFor({ state: 'hidden' });
  assert.equal(await more.evaluate((b) => b === document.activeElement), true, 'focus back on the menu button');
  await until('check done', async () => (await page.locator('#check').textContent()).trim() === 'Check now');
  assert.match(await page.locator('#toast').textContent(), /refreshed their versions/);

  const from = card(page, `${VER}:1.0.0`);
  const versions = from.locator('.versions');
  await until('1.0.0 → 2.0.0', async () => /1\.0\.0\s*→\s*2\.0\.0/.test(await versions.textContent()), PATIENCE);
  assert.equal((await versions.locator('.kind').textContent()).trim(), 'major');
  assert.equal(await versions.locator('a.notes').getAttribute('href'), 'https://github.com/example/ver/releases');
  // Its digest is the newest of its tag: up to date, with newer versions on offer.
  assert.equal(await from.getAttribute('data-status'), 'uptodate');
  const latest = card(page, `${VER}:latest`).locator('.versions');
  await until('latest = 1.0.0 → 1.1.0', async () => /latest\s*=\s*1\.0\.0\s*→\s*1\.1\.0/.test(await latest.textContent()), PATIENCE);
  assert.equal((await latest.locator('.kind').textContent()).trim(), 'minor');
  // The policy label, next to the switch it speaks for.
  const policy = row(page, NAMES.ver).locator('.policy');
  assert.equal((await policy.textContent()).trim(), 'up to minor');
  assert.equal(await row(page, NAMES.ver).getByRole('switch').getAttribute('aria-describedby'), await policy.getAttribute('id'));
  assert.equal(await row(page, NAMES.verLatest).locator('.policy').isVisible(), false);
  // `latest` is offered no tags: it follows its own.
  assert.equal(await card(page, `${VER}:latest`).locator('button.update-to').isVisible(), false);
  await snap(page, 'versions-lab');

  // Shift-click on "Check now" lists the tags again too.
  const shifted = page.waitForRequest((r) => r.url().endsWith('/api/check?tags=1'));
  await page.locator('#check').click({ modifiers: ['Shift'] });
  await shifted;
  await until('shift check done', async () => (await page.locator('#check').textContent()).trim() === 'Check now', JOB_PATIENCE);

  // The tags on offer, smallest change first, by keyboard.
  const menuButton = from.locator('button.update-to');
  await menuButton.focus();
  await page.keyboard.press('Enter');
  const menu = from.locator('[role="menu"]');
  await menu.waitFor({ state: 'visible' });
  const offered = await menu.getByRole('menuitem').evaluateAll((items) => items.map((i) => i.getAttribute('aria-label')));
  assert.deepEqual(offered, ['Update to 1.0.1 (patch)', 'Update to 1.1.0 (minor)', 'Update to 2.0.0 (major)']);
  assert.equal(await menu.getByRole('menuitem').first().evaluate((i) => i === document.activeElement), true, 'focus on the first tag');
  await snap(page, 'update-to-menu');
  // Esc closes it onto its button.
  await page.keyboard.press('Escape');
  await menu.waitFor({ state: 'hidden' });
  assert.equal(await menuButton.evaluate((b) => b === document.activeElement), true);

  // A major version asks clearly, with the release notes; Esc starts nothing.
  await page.keyboard.press('ArrowUp');
  await menu.waitFor({ state: 'visible' });
  const majorItem = menu.getByRole('menuitem', { name: 'Update to 2.0.0 (major)' });
  assert.equal(await majorItem.evaluate((i) => i === document.activeElement), true, '↑ opens on the last');
  await page.keyboard.press('Enter');
  const dialog = page.locator('#confirm');
  await dialog.waitFor({ state: 'visible' });
  assert.match(await dialog.locator('#confirm-title').textContent(), /new major version/);
  assert.match(await dialog.textContent(), /major version change: 1\.0\.0 → 2\.0\.0/);
  assert.equal(await dialog.locator('.dialog-warn a.notes').getAttribute('href'), 'https://github.com/example/ver/releases');
  assert.equal((await dialog.locator('[data-confirm]').textContent()).trim(), 'Update to 2.0.0 (major)');
  assert.equal(await dialog.locator('[data-cancel]').evaluate((b) => b === document.activeElement), true, 'Cancel has the focus');
  await snap(page, 'update-to-major-confirm', { full: false });
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  assert.equal(await menuButton.evaluate((b) => b === document.activeElement), true, 'focus back on Update to…');
  assert.equal(await badgeOf(row(page, NAMES.ver)), 'uptodate', 'nothing started');

  // An offer gone stale before the click (the one state here the lab cannot
  // time): the request asks for a tag no longer offered and the service's
  // own 400 shows inline like any failure, with nothing changed.
  const oldId = await row(page, NAMES.ver).getAttribute('data-id');
  await page.route(`**/api/images/${oldId}/update`, (route) => route.continue({ postData: JSON.stringify({ tag: '2.0.0-rc1' }) }));
  await menuButton.click();
  await menu.getByRole('menuitem', { name: 'Update to 2.0.0 (major)' }).click();
  await dialog.waitFor({ state: 'visible' });
  await dialog.locator('[data-confirm]').click();
  const refused = row(page, NAMES.ver).locator('.outcome-failed[role="alert"]');
  await refused.waitFor({ state: 'visible' });
  assert.match(await refused.locator('.reason').textContent(), /^bad request: tag "2\.0\.0-rc1" is not offered/);
  await page.unroute(`**/api/images/${oldId}/update`);
  await snap(page, 'update-to-refused', { only: [['desktop', DESKTOP, 'light'], ['phone', PHONE, 'dark']] });
  await refused.getByRole('button', { name: `Dismiss the message about ${NAMES.ver}` }).click();
  await refused.waitFor({ state: 'detached' });

  // 1.1.0, by keyboard. The row is watched all the way: never missing, never twice.
  await page.evaluate((name) => {
    window.__rowMissing = 0;
    window.__rowTwice = 0;
    new MutationObserver(() => {
      const n = document.querySelectorAll(`li.row[data-name="${name}"]`).length;
      if (n === 0) window.__rowMissing += 1;
      if (n > 1) window.__rowTwice += 1;
    }).observe(document.getElementById('list'), { subtree: true, childList: true });
  }, NAMES.ver);
  const post = page.waitForRequest((r) => r.method() === 'POST' && r.url().includes(`/api/images/${oldId}/update`));
  await menuButton.focus();
  await page.keyboard.press('ArrowDown');
  await menu.waitFor({ state: 'visible' });
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Enter');
  await dialog.waitFor({ state: 'visible' });
  assert.match(await dialog.locator('.dialog-move').textContent(), /1\.0\.0\s*→\s*1\.1\.0\s*minor/);
  assert.equal(await dialog.locator('.dialog-warn').count(), 0, 'no major warning for a minor version');
  assert.equal((await dialog.locator('[data-confirm]').textContent()).trim(), 'Update to 1.1.0');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  assert.deepEqual(JSON.parse((await post).postData()), { tag: '1.1.0' });

  const to = card(page, `${VER}:1.1.0`);
  const moved = to.locator(`li.row[data-name="${NAMES.ver}"]`);
  await moved.locator('.outcome-ok').waitFor({ state: 'visible', timeout: JOB_PATIENCE });
  assert.match(await moved.locator('.outcome-ok').textContent(), /Updated\.\s*Now on 1\.1\.0\./);
  await from.waitFor({ state: 'detached' });
  assert.notEqual(await moved.getAttribute('data-id'), oldId);
  await until('1.1.0 → 2.0.0', async () => /1\.1\.0\s*→\s*2\.0\.0/.test(await to.locator('.versions').textContent()));
  assert.equal(docker(lab, ['inspect', '--format', '{{.Config.Image}} {{index .Config.Labels "version"}}', NAMES.ver]), `${VER}:1.1.0 1.1.0`);
  assert.deepEqual(await page.evaluate(() => [window.__rowMissing, window.__rowTwice]), [0, 0], 'the row was never lost nor doubled');
  // The keyboard moved along with the container.
  await until('focus in the moved row', async () => moved.evaluate((el) => el.contains(document.activeElement)));
  await snap(page, 'update-to-done');
  const entries = await page.evaluate(async () => (await fetch('/api/history?limit=50')).json());
  assert.equal(entries.find((e) => e.container_name === NAMES.ver)?.image, `${VER}:1.1.0`);
});

// ------------------------------------------------------------------ Swarm services

/** What a 390 px phone would frown at: sideways scrolling, and touch targets under 44 px. */
async function phoneProblems(p) {
  const overflow = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  const small = await p.evaluate(() =>
    [...document.querySelectorAll('button, input, a[href], [role="switch"]')]
      .filter((el) => el.offsetParent !== null && !el.closest('dialog:not([open])') && !el.classList.contains('skip-link'))
      .map((el) => [el.id || el.className || el.tagName, el.getBoundingClientRect()])
      .filter(([, r]) => r.height < 44 || r.width < 44)
      .map(([n, r]) => `${n} ${Math.round(r.width)}×${Math.round(r.height)}`),
  );
  return { overflow, small };
}

/** A page of its own, logged in to `target`, whose script errors count like the main page's. */
async function ownPage(target, options = {}) {
  const ctx = await browser.newContext({ viewport: DESKTOP, colorScheme: 'light', ...options });
  const p = await ctx.newPage();
  p.on('pageerror', (e) => pageErrors.push(e.message));
  const res = await ctx.request.post(`${target.url}/api/login`, { data: { user: 'admin', pass: PASSWORD } });
  assert.equal(res.status(), 200);
  return { ctx, p };
}

const serviceCard = (p, name) => p.locator(`article.service-card[data-name="${name}"]`);

/** The images the service's running task containers run, from the Swarm engine itself. */
function taskImages(name) {
  const ids = onSwarm(lab, ['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${name}`]).split(/\s+/).filter(Boolean);
  return ids.map((id) => onSwarm(lab, ['inspect', '--format', '{{.Config.Image}}', id])).sort();
}

test('swarm services (the lab’s Swarm manager): a card per service; outdated → Update → confirm → Swarm’s rolling update task by task → updated, both tasks on the new digest; history marks it', async () => {
  assert.ok(lab.swarmHost, 'LAB_DOCKER_SWARM in the lab env (scripts/lab up)');
  const image = `${REPO}/svc:1`;
  const name = NAMES.svc;
  const v1 = buildImage(lab, image, 'LABEL v=1');
  onSwarm(lab, [
    'service', 'create', '-d', '--name', name, '--replicas', '2', '--network', 'host',
    '--stop-grace-period', '1s', '--update-monitor', '2s', image, 'sleep', '100000',
  ]);
  const swarmData = mkdtempSync(join(tmpdir(), 'shipshape-ui-swarm-'));
  const swarmApp = new App({
    binary: BINARY,
    lab,
    port: await freePort(),
    dataDir: swarmData,
    password: PASSWORD,
    env: { DOCKER_HOST: lab.swarmHost, SHIPSHAPE_VERIFY_TIMEOUT: '2s' },
  });
  let ctx;
  try {
    // The tag moves on in the registry: the service pins v1, so it is outdated.
    const v2 = buildImage(lab, image, 'LABEL v=2', { remoteOnly: true });
    const short = (d) => d.slice(7, 17);
    await swarmApp.start();
    let p;
    ({ ctx, p } = await ownPage(swarmApp));
    await p.goto(`${swarmApp.url}/?q=${RUN}`);
    await p.locator('#dash').waitFor({ state: 'visible' });
    await until('live', async () => (await connState(p)) === 'live');
    const svc = serviceCard(p, name);
    // The first check may run before the services are listed: ask again now and then.
    let asked = 0;
    await until(
      'service outdated with 2/2 replicas',
      async () => {
        if (Date.now() - asked > 3000) {
          asked = Date.now();
          await p.evaluate(() => fetch('/api/check', { method: 'POST' }));
        }
        return (await svc.getAttribute('data-status')) === 'outdated' && /2\/2/.test(await svc.locator('.replicas').textContent());
      },
      JOB_PATIENCE,
    );
    await until('both tasks running', async () => (await svc.locator('li.task[data-state="running"]').count()) === 2);
    const section = p.locator('#services');
    assert.equal(await section.isVisible(), true);
    assert.match(await section.locator('#services-title').textContent(), /Swarm services/);
    assert.equal((await svc.locator('.service-name').textContent()).trim(), name);
    assert.equal((await svc.locator('.badge-group .badge-word').textContent()).trim(), 'Outdated');
    assert.equal((await svc.locator('.service-image').textContent()).trim(), image);
    assert.match(await svc.locator('.digests').textContent(), new RegExp(`${short(v1)}\\s*→\\s*${short(v2)}`));
    assert.match(await svc.locator('.replicas').textContent(), /replicas 2\/2/);
    const tasks = await svc.locator('li.task').evaluateAll((items) =>
      items.map((li) => [li.dataset.state, li.querySelector('.task-id').textContent, li.querySelector('.task-digest code').textContent]),
    );
    assert.equal(tasks.length, 2, JSON.stringify(tasks));
    for (const [state, id, digest] of tasks) {
      assert.equal(state, 'running');
      assert.match(id, /^[0-9a-f]{12}$/);
      assert.equal(digest, short(v1));
    }
    const toggle = svc.getByRole('switch', { name: `Auto-update service ${name}` });
    assert.equal(await toggle.getAttribute('aria-checked'), 'false');
    const button = svc.getByRole('button', { name: `Update service ${name}` });
    assert.equal(await button.isVisible(), true);
    // Counts and the title take services too; the search finds the service by name.
    const count = async (f) => Number(await p.locator(`[data-count="${f}"]`).textContent());
    assert.deepEqual([await count('all'), await count('outdated'), await count('uptodate')], [1, 1, 0]);
    assert.match(await p.title(), /^\d+ outdated · shipshape$/);
    assert.equal(await p.locator('#search').getAttribute('placeholder'), 'Search services and containers');
    // A status filter hides it like a container; nothing left says so.
    await p.click('.chip[data-filter="uptodate"]');
    await p.locator('#nomatch').waitFor({ state: 'visible' });
    assert.equal(await svc.isVisible(), false);
    assert.equal((await p.locator('#nomatch-title').textContent()).trim(), 'Nothing matches');
    await p.click('.chip[data-filter="all"]');
    await svc.waitFor({ state: 'visible' });
    await snap(p, 'services');

    // Update asks first: from → to, task by task, rolled back by Swarm on a failure. Esc starts nothing.
    const posts = [];
    p.on('request', (r) => r.method() === 'POST' && r.url().includes('/api/services/') && r.url().endsWith('/update') && posts.push(r.url()));
    await button.click();
    const dialog = p.locator('#confirm');
    await dialog.waitFor({ state: 'visible' });
    assert.equal((await dialog.locator('#confirm-title').textContent()).trim(), `Update service ${name}?`);
    const text = await dialog.textContent();
    assert.match(text, /task by task/);
    assert.match(text, /If a new task fails, Swarm rolls the service back/);
    assert.match(await dialog.locator('.dialog-move').textContent(), new RegExp(`${short(v1)}\\s*→\\s*${short(v2)}`));
    assert.equal((await dialog.locator('[data-confirm]').textContent()).trim(), 'Update service');
    assert.equal(await dialog.locator('[data-cancel]').evaluate((b) => b === document.activeElement), true, 'Cancel has the focus');
    await snap(p, 'service-confirm', { full: false, only: [['desktop', DESKTOP, 'light'], ['phone', PHONE, 'dark']] });
    await p.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    assert.equal(await button.evaluate((b) => b === document.activeElement), true, 'focus back on Update');
    assert.deepEqual(posts, []);

    // Every phase, detail and bar value the card shows, as it changes them.
    await p.evaluate((name) => {
      window.__svc = { phases: [], details: [], values: [] };
      const push = (list, v) => v != null && list.at(-1) !== v && list.push(v);
      new MutationObserver(() => {
        const card = document.querySelector(`article.service-card[data-name="${name}"]`);
        push(window.__svc.phases, card?.querySelector('.job-phase')?.textContent);
        push(window.__svc.details, card?.querySelector('.job-detail')?.textContent);
        const bar = card?.querySelector('[role="progressbar"]');
        if (bar) push(window.__svc.values, Number(bar.getAttribute('aria-valuenow')));
      }).observe(document.getElementById('service-list'), { subtree: true, childList: true, attributes: true, characterData: true });
    }, name);
    await button.click();
    await dialog.waitFor({ state: 'visible' });
    await dialog.locator('[data-confirm]').click();
    await svc.locator('[role="progressbar"]').waitFor({ state: 'visible' });
    assert.equal(await svc.locator('.badge-group').getAttribute('data-status'), 'updating');
    await until('Swarm updating task by task', async () => (await p.evaluate(() => window.__svc.details)).some((d) => /^[12]\/2 tasks on the new image$/.test(d)), JOB_PATIENCE);
    await snap(p, 'service-updating', { only: [['desktop', DESKTOP, 'light']] });
    const outcome = svc.locator('.outcome-ok');
    await outcome.waitFor({ state: 'visible', timeout: JOB_PATIENCE });
    assert.match(await outcome.textContent(), /Updated\.\s*All 2 tasks run the new image\./);
    const seen = await p.evaluate(() => window.__svc);
    assert.ok(seen.phases.includes('Updating'), `phases ${seen.phases}`);
    assert.ok(seen.values.some((v) => v > 0), `bar ${seen.values}`);
    assert.equal(posts.length, 1, `POSTs ${posts}`);
    // The card follows: up to date, both tasks running the new digest.
    await until('badge up to date', async () => (await svc.locator('.badge-group').getAttribute('data-status')) === 'uptodate', JOB_PATIENCE);
    await until(
      'both tasks on the new digest',
      async () => {
        const now = await svc.locator('li.task').evaluateAll((items) => items.map((li) => `${li.dataset.state} ${li.querySelector('.task-digest code').textContent}`));
        return now.length === 2 && now.every((t) => t === `running ${short(v2)}`);
      },
      JOB_PATIENCE,
    );
    assert.equal(await button.isVisible(), false);
    assert.equal(await svc.locator('.digests .arrow').isVisible(), false);
    assert.deepEqual(taskImages(name), [`${image}@${v2}`, `${image}@${v2}`]);
    await snap(p, 'service-updated');

    // The history lists it like a container's update, marked as a service.
    await p.click('#history-open');
    const panel = p.locator('#history');
    await panel.waitFor({ state: 'visible' });
    const entry = panel.locator('.history-item', { has: p.locator('.history-name', { hasText: name }) }).first();
    await entry.waitFor();
    assert.equal(await entry.getAttribute('data-result'), 'updated');
    assert.equal(await entry.getAttribute('data-kind'), 'service');
    assert.equal((await entry.locator('.history-kind').textContent()).trim(), 'service');
    assert.match(await entry.locator('.history-digests').textContent(), new RegExp(`${v1.slice(7, 19)}\\s*→\\s*${v2.slice(7, 19)}`));
    assert.equal((await entry.locator('.history-image').textContent()).trim(), `service${image}`);
    await snap(p, 'service-history', { full: false, only: [['desktop', DESKTOP, 'dark'], ['phone', PHONE, 'light']] });
    await p.keyboard.press('Escape');
    await panel.waitFor({ state: 'hidden' });

    // Auto-update: on by keyboard, persisted (still on after a reload), then off again.
    await toggle.focus();
    const on = p.waitForResponse((r) => r.url().endsWith('/auto-update') && r.request().method() === 'POST');
    await p.keyboard.press('Space');
    assert.equal((await on).status(), 200);
    await until('auto-update on', async () => (await toggle.getAttribute('aria-checked')) === 'true');
    assert.equal(await toggle.evaluate((el) => el === document.activeElement), true, 'focus stays on the switch');
    await p.reload();
    await until('still on after a reload', async () => (await toggle.getAttribute('aria-checked')) === 'true');
    const off = p.waitForResponse((r) => r.url().endsWith('/auto-update'));
    await toggle.click();
    await off;
    await until('auto-update off', async () => (await toggle.getAttribute('aria-checked')) === 'false');

    // 390 px: nothing scrolls sideways, every target is 44 px.
    await p.setViewportSize(PHONE);
    await p.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    assert.deepEqual(await phoneProblems(p), { overflow: 0, small: [] });
  } finally {
    onSwarm(lab, ['service', 'rm', name], { allowFail: true });
    await ctx?.close().catch(() => {});
    await swarmApp.kill().catch(() => {});
    if (process.exitCode) process.stderr.write(`\nshipshape (swarm) log (tail):\n${swarmApp.log.slice(-4000)}\n`);
    rmSync(swarmData, { recursive: true, force: true });
  }
});

test('swarm services (mocked over the websocket): Swarm’s rollback with its reason, Retry and a refusal inline; global and short services; an update nobody clicked', async () => {
  const now = new Date().toISOString();
  const task = (i, digest, state = 'running', error = null) => ({
    id: `task${i}`.padEnd(25, 'x'),
    container_id: state === 'running' ? `${i}`.repeat(12).slice(0, 12) : null,
    state,
    digest,
    error,
  });
  const web = {
    id: 'webservice0000000000000001',
    name: 'shop-web',
    image: 'registry.example:5000/shop/web:2',
    digest: 'sha256:1111111111',
    remote_digest: 'sha256:2222222222',
    status: 'outdated',
    replicas: { running: 3, desired: 3 },
    update_state: 'completed',
    update_message: 'update completed',
    auto_update: false,
    tasks: [task(1, 'sha256:1111111111'), task(2, 'sha256:1111111111'), task(3, 'sha256:1111111111')],
    checked_at: now,
  };
  const exporter = {
    id: 'exporter000000000000000002',
    name: 'node-exporter',
    image: 'prom/node-exporter:v1.8.2',
    digest: 'sha256:3333333333',
    remote_digest: 'sha256:3333333333',
    status: 'uptodate',
    replicas: { running: 1, desired: null },
    update_state: null,
    update_message: null,
    auto_update: true,
    tasks: [task(4, 'sha256:3333333333')],
    checked_at: now,
  };
  const worker = {
    id: 'worker00000000000000000003',
    name: 'queue-worker-with-a-rather-long-service-name',
    image: 'ghcr.io/example-organisation/queue/worker-with-a-long-name:latest',
    digest: 'sha256:4444444444',
    remote_digest: 'unknown',
    status: 'unknown',
    replicas: { running: 1, desired: 2 },
    update_state: 'rollback_completed',
    update_message: 'rollback completed',
    auto_update: false,
    tasks: [task(5, 'sha256:4444444444'), task(6, 'sha256:5555555555', 'failed', 'task: non-zero exit (1): the worker could not reach its queue')],
    checked_at: now,
    error: 'registry ghcr.io: 401 unauthorized',
  };
  const services = [exporter, worker, web].sort((a, b) => (a.name < b.name ? -1 : 1));
  // A plain container on the same manager: under its own heading, after the services.
  const groups = [
    {
      image: 'registry.example:5000/shop/backup:3',
      remote_digest: 'sha256:6666666666',
      status: 'uptodate',
      checked_at: now,
      containers: [{ container_id: 'dddddddddddd', container_name: 'shop-backup', local_digest: 'sha256:6666666666', status: 'uptodate', auto_update: false }],
    },
  ];
  const reason = 'update paused due to failure or early termination of task tdn2xk8ckdsc59ljyiehgyczy; rollback completed';
  const historyEntry = {
    id: 'op-1',
    container_name: web.name,
    image: web.image,
    from_digest: `sha256:${'1'.repeat(64)}`,
    to_digest: `sha256:${'2'.repeat(64)}`,
    started_at: now,
    finished_at: now,
    result: 'rolled_back',
    error: reason,
  };
  const { ctx, p } = await ownPage(app);
  let socket = null;
  const frames = [];
  let updateAnswer = { status: 200, json: { status: 'updating' } };
  const updates = [];
  try {
    await p.route((url) => url.pathname === '/api/images', (route) => route.fulfill({ json: groups }));
    await p.route((url) => url.pathname === '/api/services', (route) => route.fulfill({ json: services }));
    let adopted = null;
    await p.route(
      (url) => /^\/api\/services\/[^/]+\/progress$/.test(url.pathname),
      (route) => (adopted ? route.fulfill({ json: adopted }) : route.fulfill({ status: 404, contentType: 'text/plain', body: 'no progress\n' })),
    );
    await p.route((url) => url.pathname === '/api/history', (route) => route.fulfill({ json: [historyEntry] }));
    await p.route((url) => /^\/api\/services\/[^/]+\/update$/.test(url.pathname), (route) => {
      updates.push(route.request().url());
      const { status, json, body } = updateAnswer;
      return json ? route.fulfill({ status, json }) : route.fulfill({ status, contentType: 'text/plain', body });
    });
    await p.routeWebSocket('**/api/ws', (ws) => {
      socket = ws;
      ws.send(JSON.stringify({ type: 'images', data: groups }));
      ws.send(JSON.stringify({ type: 'services', data: services }));
    });
    const send = (message) => {
      frames.push(message.type);
      socket.send(JSON.stringify(message));
    };
    const progress = (service, data) =>
      send({
        type: 'service_progress',
        service_id: service.id,
        data: { service_id: service.id, service: service.name, image: `${service.image}@sha256:${'2'.repeat(64)}`, message: null, updated: 0, total: 0, done: false, ...data },
      });
    await p.goto(app.url);
    const card = serviceCard(p, web.name);
    await card.waitFor({ state: 'visible' });
    // Services in name order; counts of services alike; no empty "no containers" panel.
    const names = await p.locator('article.service-card').evaluateAll((cards) => cards.map((c) => c.dataset.name));
    assert.deepEqual(names, services.map((s) => s.name));
    const count = async (f) => Number(await p.locator(`[data-count="${f}"]`).textContent());
    assert.deepEqual([await count('all'), await count('outdated'), await count('uptodate'), await count('unknown')], [4, 1, 2, 1]);
    assert.equal(await p.locator('#empty').isVisible(), false);
    assert.equal(await p.locator('#containers-head').isVisible(), true);
    assert.equal((await p.locator('#containers-count').textContent()).trim(), '1');
    assert.equal((await p.locator('#services-count').textContent()).trim(), '3');
    // Services first, then the containers.
    assert.equal(
      await p.evaluate(() => Boolean(document.getElementById('services').compareDocumentPosition(document.getElementById('list')) & Node.DOCUMENT_POSITION_FOLLOWING)),
      true,
    );
    // The keyboard: the switch, then Update.
    await card.getByRole('switch').focus();
    await p.keyboard.press('Tab');
    assert.equal(await card.getByRole('button', { name: `Update service ${web.name}` }).evaluate((b) => b === document.activeElement), true);
    // A global service; one short of its replicas, with Swarm's last rollback and a failed task; a finished update is quiet.
    assert.match(await serviceCard(p, exporter.name).locator('.replicas').textContent(), /^global · 1 running$/);
    const workerCard = serviceCard(p, worker.name);
    assert.match(await workerCard.locator('.replicas').textContent(), /replicas 1\/2/);
    assert.equal(await workerCard.locator('.replicas').evaluate((el) => el.classList.contains('short')), true);
    assert.match(await workerCard.locator('.swarm-note').textContent(), /Swarm rolled its last update back\.\s*rollback completed/);
    assert.match(await workerCard.locator('.card-error').textContent(), /401 unauthorized/);
    assert.match(await workerCard.locator('li.task[data-state="failed"] .task-error').textContent(), /non-zero exit/);
    assert.equal(await card.locator('.swarm-note').isVisible(), false);
    assert.equal((await card.locator('.last-update').textContent()).trim(), 'last Swarm update completed');
    assert.equal(await workerCard.getByRole('button', { name: /^Update service/ }).isVisible(), false, 'unknown: no Update');
    // Search: by a task's container id too.
    await p.fill('#search', '222222');
    await until('only shop-web', async () => JSON.stringify(await p.locator('article.service-card:visible').evaluateAll((c) => c.map((x) => x.dataset.name))) === JSON.stringify([web.name]));
    assert.equal((await p.locator('#services-count').textContent()).trim(), '1 of 3');
    assert.equal(await p.locator('#containers-head').isVisible(), false, 'no heading over no containers');
    await p.fill('#search', '');
    await p.locator('#search').blur();
    await snap(p, 'services-mocked');

    // Update → confirm → Swarm's progress, then its rollback, frame by frame.
    await card.getByRole('button', { name: `Update service ${web.name}` }).click();
    await p.locator('#confirm').waitFor({ state: 'visible' });
    assert.match(await p.locator('#confirm').textContent(), /its 3 tasks are replaced one after another/);
    await p.locator('#confirm [data-confirm]').click();
    await until('POST sent', async () => updates.length === 1);
    const bar = card.locator('[role="progressbar"]');
    await bar.waitFor({ state: 'visible' });
    progress(web, { state: 'starting' });
    progress(web, { state: 'updating', updated: 1, total: 3 });
    await until('1/3', async () => (await card.locator('.job-detail').textContent()) === '1/3 tasks on the new image');
    assert.equal((await card.locator('.job-phase').textContent()).trim(), 'Updating');
    assert.equal(await bar.getAttribute('aria-valuenow'), '33');
    assert.equal(await card.locator('.badge-group').getAttribute('data-status'), 'updating');
    progress(web, { state: 'paused', updated: 1, total: 3, message: 'update paused due to failure or early termination of task tdn2xk8ckdsc59ljyiehgyczy' });
    progress(web, { state: 'rollback_started', updated: 1, total: 3, message: 'update rollback started' });
    await until('rolling back', async () => (await card.locator('.job-phase').textContent()) === 'Rolling back');
    assert.equal(await card.locator('.job').getAttribute('data-tone'), 'rollback');
    assert.equal((await card.locator('.job-detail').textContent()).trim(), 'update rollback started');
    assert.equal(await card.locator('.badge-group').getAttribute('data-status'), 'rolling_back');
    // No count while it rolls back: an indeterminate bar.
    assert.equal(await bar.getAttribute('aria-valuenow'), null);
    assert.equal((await card.locator('.job-pct').textContent()).trim(), '');
    assert.equal(await card.locator('.tasks-lag').isVisible(), true, 'the tasks say they lag behind the live progress');
    await snap(p, 'service-rolling-back', { only: [['desktop', DESKTOP, 'light'], ['phone', PHONE, 'dark']] });
    progress(web, { state: 'rolled_back', updated: 0, total: 3, message: reason, done: true });
    send({ type: 'history', data: historyEntry });
    send({ type: 'services', data: services.map((s) => (s === web ? { ...web, update_state: 'rollback_completed', update_message: 'rollback completed' } : s)) });
    const rolled = card.locator('.outcome-rolled_back[role="alert"]');
    await rolled.waitFor({ state: 'visible' });
    assert.equal((await rolled.locator('.reason').textContent()).trim(), reason);
    assert.match(await rolled.textContent(), /Rolled back:.*Swarm put the previous image back/s);
    assert.equal(await card.locator('.badge-group').getAttribute('data-status'), 'failed');
    assert.equal(await card.locator('.tasks-lag').isVisible(), false);
    // The page shows its own outcome: Swarm's note would only repeat it.
    assert.equal(await card.locator('.swarm-note').isVisible(), false);
    await until('announced', async () => /Service shop-web rolled back/.test(await p.locator('#announcer').textContent()));
    await snap(p, 'service-rolled-back');

    // Retry, refused by the API: its reason inline, "Nothing was changed"; Dismiss goes back to Update.
    updateAnswer = { status: 409, body: 'registry digest unknown: registry.example:5000/shop/web:2\n' };
    await rolled.getByRole('button', { name: `Retry the update of service ${web.name}` }).click();
    const refused = card.locator('.outcome-failed[role="alert"]');
    await refused.waitFor({ state: 'visible' });
    assert.equal((await refused.locator('.reason').textContent()).trim(), 'registry digest unknown: registry.example:5000/shop/web:2');
    assert.match(await refused.textContent(), /Nothing was changed\./);
    assert.equal(updates.length, 2);
    await refused.getByRole('button', { name: `Dismiss the message about service ${web.name}` }).focus();
    await p.keyboard.press('Enter');
    await refused.waitFor({ state: 'detached' });
    assert.equal(await card.getByRole('button', { name: `Update service ${web.name}` }).isVisible(), true);
    await until('focus kept in the card', async () => card.evaluate((el) => el.contains(document.activeElement)));
    assert.equal(await card.locator('.swarm-note').isVisible(), true, 'Swarm’s own word on its last update is back');

    // An update nobody clicked (auto-update): the card follows it all the same.
    progress(exporter, { state: 'updating', updated: 0, total: 1 });
    const other = serviceCard(p, exporter.name);
    await until('followed', async () => (await other.locator('.job-detail').textContent().catch(() => '')) === '0/1 task on the new image');
    progress(exporter, { state: 'updated', updated: 1, total: 1, done: true });
    await other.locator('.outcome-ok').waitFor({ state: 'visible' });
    assert.match(await other.locator('.outcome-ok').textContent(), /Updated\.\s*Its task runs the new image\./);

    // The history marks a service's entry as one.
    await p.click('#history-open');
    const entry = p.locator('#history .history-item').first();
    await entry.waitFor();
    assert.equal(await entry.getAttribute('data-kind'), 'service');
    assert.equal(await entry.getAttribute('data-result'), 'rolled_back');
    await p.keyboard.press('Escape');

    // 390 px, dark: nothing scrolls sideways, every target is 44 px.
    await p.setViewportSize(PHONE);
    await p.emulateMedia({ colorScheme: 'dark' });
    await p.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    assert.deepEqual(await phoneProblems(p), { overflow: 0, small: [] });
    await p.setViewportSize(DESKTOP);
    await p.emulateMedia({ colorScheme: 'light' });

    // A page opened while Swarm runs shipshape's update picks its progress up.
    adopted = { service_id: web.id, service: web.name, image: `${web.image}@sha256:${'2'.repeat(64)}`, state: 'updating', message: null, updated: 2, total: 3, done: false };
    send({ type: 'services', data: services.map((s) => (s === web ? { ...web, update_state: 'updating', update_message: 'update in progress' } : s)) });
    await until('adopted', async () => (await card.locator('.job-detail').textContent().catch(() => '')) === '2/3 tasks on the new image');
    assert.equal(await card.locator('.badge-group').getAttribute('data-status'), 'updating');
    progress(web, { state: 'updated', updated: 3, total: 3, done: true });
    await card.locator('.outcome-ok').waitFor({ state: 'visible' });

    // A manager without services says so.
    send({ type: 'services', data: [] });
    await p.locator('#services-none').waitFor({ state: 'visible' });
    assert.equal(await p.locator('article.service-card').count(), 0);
  } finally {
    await ctx.close();
  }
});

test('phone: 390×844 in dark mode nothing scrolls sideways, touch targets are 44 px, the theme choice persists', async () => {
  await page.setViewportSize(PHONE);
  await narrow(page);
  const theme = page.locator('#theme');
  try {
    await phoneDark(theme);
  } finally {
    // Back to auto and desktop for the rest.
    while ((await theme.getAttribute('data-theme')) !== 'auto') await theme.click();
    await page.setViewportSize(DESKTOP);
  }
});

async function phoneDark(theme) {
  while ((await theme.getAttribute('data-theme')) !== 'dark') await theme.click();
  await page.reload();
  await page.locator('#dash').waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'dark');
  assert.equal(await page.evaluate(() => getComputedStyle(document.body).colorScheme), 'dark');
  await until('rows', async () => (await page.locator('li.row:visible').count()) >= 7);
  const { overflow, small } = await phoneProblems(page);
  assert.equal(overflow, 0, 'horizontal overflow');
  assert.deepEqual(small, []);
  await page.screenshot({ path: join(SHOTS, `${String(++shotNumber).padStart(2, '0')}-phone-dark-chosen.png`), fullPage: true, animations: 'disabled' });
}

test('a session that ends mid-way returns to the login and, after it, to the same view', async () => {
  await narrow(page, '&status=uptodate');
  const before = page.url();
  // The session ends elsewhere (another tab logs out): the socket is closed by the server.
  await page.evaluate(() => fetch('/api/logout', { method: 'POST' }));
  await page.locator('#login').waitFor({ state: 'visible' });
  assert.match(await page.locator('#login-note').textContent(), /session ended/i);
  await snap(page, 'session-ended', { only: [['desktop', DESKTOP, 'dark'], ['phone', PHONE, 'light']] });
  await login(page);
  assert.equal(page.url(), before);
  assert.equal(await page.locator('.chip[data-filter="uptodate"]').getAttribute('aria-pressed'), 'true');
  assert.equal(await page.inputValue('#search'), RUN);
  await until('live', async () => (await connState(page)) === 'live');
});

test('log out: back to the login form, and the API is closed', async () => {
  await narrow(page);
  await page.click('#logout');
  await page.locator('#login').waitFor({ state: 'visible' });
  assert.match(await page.locator('#login-note').textContent(), /logged out/);
  const status = await page.evaluate(async () => (await fetch('/api/images')).status);
  assert.equal(status, 401);
  await snap(page, 'logged-out');
});

test('states the lab cannot produce (mocked): API down on load → error panel with Retry; no containers; version data; login brake', async (t) => {
  const ctx = await browser.newContext({ viewport: DESKTOP });
  const p = await ctx.newPage();
  try {
    const res = await ctx.request.post(`${app.url}/api/login`, { data: { user: 'admin', pass: PASSWORD } });
    assert.equal(res.status(), 200);
    let down = true;
    await p.route('**/api/images', (route) =>
      down ? route.fulfill({ status: 503, contentType: 'text/plain', body: 'service unavailable\n' }) : route.fallback(),
    );
    await p.goto(app.url);
    const failure = p.locator('#failure[role="alert"]');
    await failure.waitFor({ state: 'visible' });
    assert.match(await failure.textContent(), /503/);
    await snap(p, 'api-down');

    // Retry, into a host with no containers (the lab's daemon always has some).
    down = false;
    await p.unroute('**/api/images');
    await p.route('**/api/images', (route) => route.fulfill({ json: [] }));
    await p.routeWebSocket('**/api/ws', (ws) => ws.send(JSON.stringify({ type: 'images', data: [] })));
    await p.click('#failure-retry');
    await p.locator('#empty').waitFor({ state: 'visible' });
    assert.match(await p.locator('#empty').textContent(), /No running containers/);
    await snap(p, 'empty');
  } finally {
    await ctx.close();
  }

  // Versions, once the API reports them (current → newest, kind, release notes); 200 containers.
  const ctx2 = await browser.newContext({ viewport: DESKTOP });
  const p2 = await ctx2.newPage();
  try {
    await ctx2.request.post(`${app.url}/api/login`, { data: { user: 'admin', pass: PASSWORD } });
    const groups = [
      {
        image: 'ghcr.io/example/web:1.2.3',
        remote_digest: 'sha256:2222222222',
        status: 'outdated',
        checked_at: new Date().toISOString(),
        version: '1.2.3',
        newer: { patch: '1.2.4', minor: '1.3.0' },
        update_kind: 'minor',
        release_notes: 'https://github.com/example/web/releases',
        containers: [
          {
            container_id: 'aaaaaaaaaaaa',
            container_name: 'web',
            local_digest: 'sha256:1111111111',
            status: 'outdated',
            auto_update: true,
            update_policy: 'patch',
          },
        ],
      },
      {
        image: 'example/api:latest',
        remote_digest: 'sha256:5555555555',
        status: 'outdated',
        checked_at: new Date().toISOString(),
        version: '1.27.3',
        latest_version: '1.27.4',
        newer: {},
        update_kind: 'patch',
        release_notes: null,
        containers: [
          { container_id: 'bbbbbbbbbbbb', container_name: 'api', local_digest: 'sha256:4444444444', status: 'outdated', auto_update: false },
        ],
      },
      {
        image: 'registry.example:5000/private/db:16',
        remote_digest: 'sha256:6666666666',
        status: 'uptodate',
        checked_at: new Date().toISOString(),
        version: '16',
        newer: {},
        update_kind: null,
        release_notes: null,
        versions_error: 'tag listing: registry registry.example:5000: 401 unauthorized',
        containers: [
          { container_id: 'cccccccccccc', container_name: 'db', local_digest: 'sha256:6666666666', status: 'uptodate', auto_update: false },
        ],
      },
      {
        image: 'example/many:latest',
        remote_digest: 'sha256:3333333333',
        status: 'uptodate',
        checked_at: new Date().toISOString(),
        containers: Array.from({ length: 200 }, (_, i) => ({
          container_id: (i + 1).toString(16).padStart(12, '0'),
          container_name: `many-${String(i).padStart(3, '0')}`,
          local_digest: 'sha256:3333333333',
          status: 'uptodate',
          auto_update: i % 2 === 0,
        })),
      },
    ];
    await p2.route('**/api/images', (route) => route.fulfill({ json: groups }));
    await p2.routeWebSocket('**/api/ws', (ws) => ws.send(JSON.stringify({ type: 'images', data: groups })));
    await p2.goto(app.url);
    const versions = card(p2, groups[0].image).locator('.versions');
    await versions.waitFor({ state: 'visible' });
    assert.match(await versions.textContent(), /1\.2\.3\s*→\s*1\.3\.0/);
    assert.equal((await versions.locator('.kind').textContent()).trim(), 'minor');
    assert.equal(await versions.locator('a.notes').getAttribute('href'), groups[0].release_notes);
    assert.equal((await row(p2, 'web').locator('.policy').textContent()).trim(), 'up to patch');
    // A `latest` container: what its tag is now, and what it will be.
    const api = card(p2, 'example/api:latest').locator('.versions');
    assert.match(await api.textContent(), /latest\s*=\s*1\.27\.3\s*→\s*1\.27\.4/);
    assert.equal((await api.locator('.kind').textContent()).trim(), 'patch');
    // No version data: a quiet note with its reason, the rest as usual.
    const note = card(p2, groups[2].image).locator('.versions-note');
    assert.equal((await note.textContent()).includes('401 unauthorized'), true);
    assert.match(await note.getAttribute('title'), /^No version data: tag listing: .*401 unauthorized$/);
    assert.equal(await card(p2, groups[2].image).locator('.card-error').isVisible(), false);
    assert.equal(await card(p2, groups[2].image).locator('.badge-group').getAttribute('data-status'), 'uptodate');
    assert.equal(await p2.locator('li.row').count(), 203);
    // How long a keystroke takes to show among 200 rows: reported, not asserted.
    const ms = await p2.evaluate(
      () =>
        new Promise((resolve) => {
          const search = document.getElementById('search');
          const start = performance.now();
          search.value = 'MANY-19';
          search.dispatchEvent(new Event('input'));
          requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now() - start)));
        }),
    );
    t.diagnostic(`filtering 203 rows to 10: ${ms.toFixed(1)} ms to the next painted frame`);
    await until('filtered 200', async () => (await p2.locator('li.row:visible').count()) === 10);
    assert.equal(await p2.locator('[data-count="all"]').textContent(), '10');
    await p2.fill('#search', 'MANY-19');
    await p2.fill('#search', '');
    await snap(p2, 'versions', { only: [['desktop', DESKTOP, 'light'], ['phone', PHONE, 'dark']], full: false });
  } finally {
    await ctx2.close();
  }

  // The login brake: five wrong passwords would lock this address out for a minute.
  const ctx3 = await browser.newContext({ viewport: PHONE, colorScheme: 'dark' });
  const p3 = await ctx3.newPage();
  try {
    await p3.route('**/api/login', (route) =>
      route.fulfill({ status: 429, headers: { 'retry-after': '42' }, contentType: 'text/plain', body: 'too many login attempts; retry in 42s\n' }),
    );
    await p3.goto(app.url);
    await p3.fill('#user', 'admin');
    await p3.fill('#pass', 'whatever-it-is');
    await p3.click('#login-submit');
    await p3.locator('#login-error').waitFor({ state: 'visible' });
    assert.equal((await p3.locator('#login-error').textContent()).trim(), 'Too many attempts. Try again in 42 s.');
    await p3.screenshot({ path: join(SHOTS, `${String(++shotNumber).padStart(2, '0')}-login-brake-phone-dark.png`), fullPage: true });
  } finally {
    await ctx3.close();
  }
});

/**
 * A unix-socket proxy in front of a lab engine, in this process: `close()`
 * cuts every connection and removes the socket (the engine goes away).
 */
async function engineProxy(path, upstream) {
  const sockets = new Set();
  const server = createServer((client) => {
    const engine = connect(upstream.replace(/^unix:\/\//, ''));
    for (const s of [client, engine]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        engine.destroy();
      });
    }
    client.pipe(engine);
    engine.pipe(client);
  });
  await new Promise((resolve, reject) => server.once('error', reject).listen(path, resolve));
  return {
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

test('several engines: each row names its engine, a filter picks one, an engine that stops answering is marked', async () => {
  const lab2 = host2(lab);
  const twin = `${RUN}-twin`;
  if (!docker(lab2, ['image', 'inspect', lab.baseImage], { allowFail: true })) docker(lab2, ['pull', '-q', lab.baseImage]);
  run(lab, twin, lab.baseImage);
  run(lab2, twin, lab.baseImage);
  const dir = mkdtempSync(join(tmpdir(), 'shipshape-ui-hosts-'));
  const proxy = await engineProxy(join(dir, 'two.sock'), lab2.dockerHost);
  const several = new App({
    binary: BINARY,
    lab,
    port: await freePort(),
    dataDir: mkdtempSync(join(tmpdir(), 'shipshape-ui-data-')),
    password: PASSWORD,
    env: { SHIPSHAPE_DOCKER_HOSTS: `one=${lab.dockerHost},two=unix://${join(dir, 'two.sock')}` },
  });
  await several.start();
  const ctx = await browser.newContext({ viewport: DESKTOP, colorScheme: 'light' });
  const p = await ctx.newPage();
  const errors = [];
  p.on('pageerror', (e) => errors.push(e.message));
  try {
    await p.goto(`${several.url}/?q=${twin}`);
    await login(p);
    const rows = p.locator(`li.row[data-name="${twin}"]`);
    await until('a row per engine', async () => (await rows.count()) === 2);
    assert.deepEqual(await rows.evaluateAll((els) => els.map((r) => r.dataset.host)), ['one', 'two']);
    const tags = await rows.locator('.host-tag').allTextContents();
    assert.deepEqual(tags.map((t) => t.trim()), ['one', 'two']);
    assert.equal(await p.locator(`li.row[data-host="two"]`).getByRole('button', { name: `Update ${twin} on two` }).count(), 0, 'up to date: no Update button');
    const filter = p.locator('#host-filters');
    await filter.waitFor({ state: 'visible' });
    assert.deepEqual(
      (await filter.locator('.chip').allTextContents()).map((t) => t.replace(/\d+$/, '').trim()),
      ['All hosts', 'one', 'two'],
    );
    await snap(p, 'hosts', { only: [['desktop', DESKTOP, 'light'], ['phone', PHONE, 'dark']] });

    // The filter keeps engine two's row only, lives in the URL and survives a reload.
    await filter.locator('.chip[data-host="two"]').click();
    const shown = async () => p.locator('li.row:visible').evaluateAll((els) => els.map((r) => `${r.dataset.host}/${r.dataset.name}`));
    await until('only two', async () => JSON.stringify(await shown()) === JSON.stringify([`two/${twin}`]));
    assert.equal(new URL(p.url()).searchParams.get('host'), 'two');
    await p.reload();
    await p.locator('#dash').waitFor({ state: 'visible' });
    await until('still only two', async () => JSON.stringify(await shown()) === JSON.stringify([`two/${twin}`]));
    assert.equal(await filter.locator('.chip[data-host="two"]').getAttribute('aria-pressed'), 'true');

    // Engine two stops answering: its chip and its row say so; its row stays (last state known).
    await proxy.close();
    const tag = p.locator('li.row[data-host="two"] .host-tag');
    await until('marked', async () => (await tag.getAttribute('data-down')) === 'true');
    assert.match(await tag.textContent(), /not answering/);
    assert.equal(await filter.locator('.chip[data-host="two"]').getAttribute('data-down'), 'true');
    await snap(p, 'host-down', { only: [['desktop', DESKTOP, 'light']] });
    await filter.locator('.chip[data-host=""]').click();
    await until('both again', async () => (await shown()).length === 2);
  } finally {
    await ctx.close();
    await several.kill();
    await proxy.close().catch(() => {});
    remove(lab2, twin);
    remove(lab, twin);
    rmSync(dir, { recursive: true, force: true });
    rmSync(several.dataDir, { recursive: true, force: true });
  }
  assert.deepEqual(errors, []);
  // With one engine (the main service) nothing of it shows.
  const one = await browser.newContext({ viewport: DESKTOP });
  try {
    assert.equal((await one.request.post(`${app.url}/api/login`, { data: { user: 'admin', pass: PASSWORD } })).status(), 200);
    const p1 = await one.newPage();
    await p1.goto(`${app.url}/?q=${RUN}`);
    await row(p1, NAMES.steady).waitFor({ state: 'visible' });
    assert.equal(await p1.locator('#host-filters').isVisible(), false);
    assert.equal(await p1.locator('li.row .host-tag:visible').count(), 0);
  } finally {
    await one.close();
  }
});

test('several engines with the Swarm manager first: the Services section names its engine and counts on its chip, a filter for another engine hides it; history marks services and names engines', async () => {
  assert.ok(lab.swarmHost, 'LAB_DOCKER_SWARM in the lab env (scripts/lab up)');
  const image = `${REPO}/hsvc:1`;
  const name = `${RUN}-hsvc`;
  const box = `${RUN}-hbox`;
  buildImage(lab, image, 'LABEL v=1');
  onSwarm(lab, ['service', 'create', '-d', '--name', name, '--replicas', '1', '--network', 'host', '--stop-grace-period', '1s', image, 'sleep', '100000']);
  run(lab, box, lab.baseImage);
  const data = mkdtempSync(join(tmpdir(), 'shipshape-ui-data-'));
  const both = new App({
    binary: BINARY,
    lab,
    port: await freePort(),
    dataDir: data,
    password: PASSWORD,
    env: { SHIPSHAPE_DOCKER_HOSTS: `swarm=${lab.swarmHost},one=${lab.dockerHost}` },
  });
  let ctx;
  try {
    await both.start();
    let p;
    ({ ctx, p } = await ownPage(both));
    await p.goto(`${both.url}/?q=${RUN}-h`);
    await p.locator('#dash').waitFor({ state: 'visible' });
    await until('live', async () => (await connState(p)) === 'live');
    const svc = serviceCard(p, name);
    const boxRow = p.locator(`li.row[data-name="${box}"]`);
    await until('the service and the container', async () => (await svc.isVisible()) && (await boxRow.isVisible()), JOB_PATIENCE);
    const section = p.locator('#services');
    const filter = p.locator('#host-filters');
    assert.equal(await filter.isVisible(), true);
    assert.equal((await p.locator('#services-host').textContent()).trim(), 'swarm');
    assert.equal(await boxRow.getAttribute('data-host'), 'one');
    // Each engine's chip counts what is on it: the service on swarm, the container on one.
    const chipCount = async (host) => Number(await filter.locator(`.chip[data-host="${host}"] .chip-count`).textContent());
    const count = async (f) => Number(await p.locator(`[data-count="${f}"]`).textContent());
    await until('chip counts', async () => (await chipCount('swarm')) === 1 && (await chipCount('one')) === 1 && (await chipCount('')) === 2);
    assert.equal(await count('all'), 2);
    await snap(p, 'hosts-services', { only: [['desktop', DESKTOP, 'light'], ['desktop', DESKTOP, 'dark'], ['phone', PHONE, 'dark']] });

    // Engine one: its container only, no Services section.
    await filter.locator('.chip[data-host="one"]').click();
    await until('only one', async () => (await section.isHidden()) && (await boxRow.isVisible()));
    assert.equal(await count('all'), 1);
    assert.equal(await p.locator('#nomatch').isVisible(), false);
    // Engine swarm: the service only.
    await filter.locator('.chip[data-host="swarm"]').click();
    await until('only swarm', async () => (await section.isVisible()) && (await svc.isVisible()) && (await boxRow.isHidden()));
    assert.equal(await count('all'), 1);
    assert.equal(await p.locator('#containers-head').isVisible(), false);
    assert.equal(new URL(p.url()).searchParams.get('host'), 'swarm');
    await filter.locator('.chip[data-host=""]').click();
    await until('both again', async () => (await svc.isVisible()) && (await boxRow.isVisible()));

    // Engine one's versioned container (the versions test's, now on 1.1.0):
    // the version line and "Update to…" with the engine's tag on its row.
    await p.goto(`${both.url}/?q=${NAMES.ver}`);
    await p.locator('#dash').waitFor({ state: 'visible' });
    const verRow = p.locator(`li.row[data-name="${NAMES.ver}"]`);
    const verCard = p.locator('article.card', { has: verRow });
    let asked = 0;
    await until(
      'the version line',
      async () => {
        if (Date.now() - asked > 5000) {
          asked = Date.now();
          await p.evaluate(() => fetch('/api/check?tags=1', { method: 'POST' }));
        }
        return (await verCard.locator('.versions').isVisible()) && /→/.test(await verCard.locator('.versions').textContent());
      },
      JOB_PATIENCE,
    );
    assert.equal(await verCard.locator('.update-to').isVisible(), true);
    assert.equal((await verRow.locator('.host-tag').textContent()).trim(), 'one');
    assert.equal(await section.isHidden(), true, 'the search hides the service');
    await snap(p, 'hosts-versions', { only: [['desktop', DESKTOP, 'light'], ['phone', PHONE, 'dark']] });

    // The history in the API's shape: the service's update under the swarm
    // engine, a container of the same name on engine one (not a service).
    const at = new Date().toISOString();
    const entry = (id, host, image) => ({
      id, container_name: name, image, host, result: 'updated', error: null,
      from_digest: `sha256:${'a'.repeat(64)}`, to_digest: `sha256:${'b'.repeat(64)}`, started_at: at, finished_at: at,
    });
    await p.route('**/api/history*', (route) =>
      route.fulfill({ json: [entry('h1', 'swarm', image), entry('h2', 'one', `${REPO}/other:1`)] }),
    );
    await p.click('#history-open');
    const panel = p.locator('#history');
    await panel.waitFor({ state: 'visible' });
    const items = panel.locator('.history-item');
    await until('two entries', async () => (await items.count()) === 2);
    const seen = await items.evaluateAll((els) =>
      els.map((el) => [el.dataset.kind, el.querySelector('.history-head .host-tag')?.textContent.trim()]),
    );
    assert.deepEqual(seen, [['service', 'swarm'], ['container', 'one']]);
    await snap(p, 'hosts-services-history', { full: false, only: [['desktop', DESKTOP, 'light']] });
    await p.keyboard.press('Escape');
    await panel.waitFor({ state: 'hidden' });
  } finally {
    onSwarm(lab, ['service', 'rm', name], { allowFail: true });
    remove(lab, box);
    await ctx?.close().catch(() => {});
    await both.kill().catch(() => {});
    if (process.exitCode) process.stderr.write(`\nshipshape (swarm and one) log (tail):\n${both.log.slice(-4000)}\n`);
    rmSync(data, { recursive: true, force: true });
  }
});

test('the page ran without a script error, and never asked anything outside shipshape', async () => {
  await snap(page, 'last-page', { only: [['desktop', DESKTOP, 'light']] });
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(foreign, []);
  assert.deepEqual(cspViolations, []);
});
