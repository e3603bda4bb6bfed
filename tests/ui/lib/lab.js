// The private lab (scripts/lab up): its docker daemon and registries. Every
// docker call goes to the lab's own socket with the lab's own client config;
// the user's daemon is never used.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function loadLab() {
  const dir = process.env.LAB_DIR || '/tmp/shipshape-lab';
  let text;
  try {
    text = readFileSync(join(dir, 'env'), 'utf8');
  } catch (e) {
    throw new Error(`no lab at ${dir}: run scripts/lab up (${e.message})`);
  }
  const env = {};
  for (const line of text.split('\n')) {
    const m = line.trim().match(/^(?:export\s+)?([A-Z_]+)=(.*)$/);
    if (m) env[m[1]] = m[2].replace(/^['"]|['"]$/g, '');
  }
  const lab = {
    dir,
    dockerHost: env.DOCKER_HOST,
    dockerConfig: env.DOCKER_CONFIG,
    registry: env.LAB_REGISTRY,
    baseImage: env.LAB_BASE_IMAGE,
  };
  for (const [k, v] of Object.entries(lab)) {
    if (!v) throw new Error(`${k} missing from ${dir}/env`);
  }
  // The lab's second engine (host2), for several engines in one shipshape.
  // An env file written by an older scripts/lab lacks it: the second engine
  // is found where scripts/lab keeps it.
  lab.dockerHost2 =
    env.LAB_DOCKER_HOST2 || (existsSync(join(dir, 'host2/docker.sock')) ? `unix://${join(dir, 'host2/docker.sock')}` : null);
  if (lab.dockerHost2 && !lab.dockerHost2.includes(dir)) throw new Error(`refusing ${lab.dockerHost2}: not the lab's`);
  // The one guard that matters most: only ever the lab's private daemon.
  if (!lab.dockerHost.includes(dir)) throw new Error(`refusing ${lab.dockerHost}: not the lab's private daemon`);
  // The lab's one-node Swarm manager (a private dockerd of its own), when the lab has it.
  lab.swarmHost = env.LAB_DOCKER_SWARM || null;
  if (lab.swarmHost && !lab.swarmHost.includes(dir)) throw new Error(`refusing ${lab.swarmHost}: not the lab's Swarm engine`);
  return lab;
}

export function labEnv(lab) {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME || '/root',
    DOCKER_HOST: lab.dockerHost,
    DOCKER_CONFIG: lab.dockerConfig,
    NO_PROXY: '127.0.0.1,localhost',
    no_proxy: '127.0.0.1,localhost',
  };
}

/** Runs the docker CLI against the lab; returns stdout, throws with stderr. */
export function docker(lab, args, { allowFail = false, env = {} } = {}) {
  try {
    return execFileSync('docker', args, {
      env: { ...labEnv(lab), ...env },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 120000,
    }).trim();
  } catch (e) {
    if (allowFail) return null;
    throw new Error(`docker ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}

/** The docker CLI against the lab's Swarm manager instead (`docker service …`). */
export function onSwarm(lab, args, options = {}) {
  if (!lab.swarmHost) throw new Error('no LAB_DOCKER_SWARM in the lab env: run scripts/lab up');
  return docker(lab, args, { ...options, env: { ...options.env, DOCKER_HOST: lab.swarmHost } });
}

export function imageId(lab, ref) {
  return docker(lab, ['image', 'inspect', '--format', '{{.Id}}', ref], { allowFail: true });
}

/**
 * Builds an image FROM the lab's base image with `lines` after the FROM (and
 * `files` in the context), tags it `ref` and pushes it. `remoteOnly`: the
 * local tag goes back to where it was, so the new version exists only in
 * the registry (a running container is then outdated).
 */
export function buildImage(lab, ref, lines, { files = {}, remoteOnly = false } = {}) {
  if (!imageId(lab, lab.baseImage)) docker(lab, ['pull', '-q', lab.baseImage]);
  const previous = imageId(lab, ref);
  const ctx = mkdtempSync(join(tmpdir(), 'shipshape-ui-build-'));
  try {
    writeFileSync(join(ctx, 'Dockerfile'), `FROM ${lab.baseImage}\n${lines}\n`);
    for (const [name, content] of Object.entries(files)) writeFileSync(join(ctx, name), content);
    // The legacy builder (the lab's engine has no BuildKit); --no-cache: its
    // cache probe walks the base image's children, which parallel tests remove.
    const build = () =>
      docker(lab, ['build', '--no-cache', '--network', 'none', '-q', '-t', ref, ctx], {
        allowFail: true,
        env: { DOCKER_BUILDKIT: '0' },
      });
    if (build() === null && build() === null) throw new Error(`docker build of ${ref} failed`);
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
  const built = imageId(lab, ref);
  const pushed = docker(lab, ['push', ref]);
  const digest = (pushed.match(/digest: (sha256:[0-9a-f]{64})/) || [])[1];
  if (!digest) throw new Error(`no digest in push output: ${pushed}`);
  if (remoteOnly) {
    if (previous && previous !== built) docker(lab, ['tag', previous, ref]);
    else if (!previous) docker(lab, ['rmi', ref], { allowFail: true });
    if (imageId(lab, ref) !== built) docker(lab, ['rmi', built], { allowFail: true });
  }
  return digest;
}

/** A container without network whose stop is quick; returns its full id. */
export function run(lab, name, image, cmd = ['sleep', '100000']) {
  return docker(lab, ['run', '-d', '--network', 'none', '--stop-timeout', '1', '--name', name, image, ...cmd]);
}

export function remove(lab, name) {
  docker(lab, ['rm', '-f', name], { allowFail: true });
}

/**
 * Removes every local image of the repositories under `prefix` (as
 * `host:port/run-id/`), tagged or left untagged by an update.
 */
export function removeImages(lab, prefix) {
  const out = docker(lab, ['images', '--no-trunc', '--format', '{{.ID}} {{.Repository}}'], { allowFail: true }) || '';
  const ids = new Set(
    out
      .split('\n')
      .map((line) => line.split(' '))
      .filter(([id, repo]) => id && repo && repo.startsWith(prefix))
      .map(([id]) => id),
  );
  for (const id of ids) docker(lab, ['rmi', '-f', id], { allowFail: true });
}

/** Names of the lab's containers (any state) starting with `prefix`. */
export function containersNamed(lab, prefix) {
  const out = docker(lab, ['ps', '-a', '--format', '{{.Names}}'], { allowFail: true }) || '';
  return out.split('\n').filter((n) => n && n.startsWith(prefix));
}

/** The same lab with every docker call on its second engine (host2). */
export function host2(lab) {
  if (!lab.dockerHost2) throw new Error(`no LAB_DOCKER_HOST2 in ${lab.dir}/env: run scripts/lab up`);
  return { ...lab, dockerHost: lab.dockerHost2 };
}
