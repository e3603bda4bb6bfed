// The real shipshape binary on a fixed loopback port with its own data dir,
// so it can be killed and started again where the page expects it.

import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { labEnv } from './lab.js';

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export class App {
  constructor({ binary, lab, port, dataDir, password, env = {} }) {
    Object.assign(this, { binary, lab, port, dataDir, password, env });
    this.url = `http://127.0.0.1:${port}`;
    this.proc = null;
    this.log = '';
  }

  async start() {
    const env = {
      ...labEnv(this.lab),
      HOME: this.dataDir,
      SHIPSHAPE_LISTEN: `127.0.0.1:${this.port}`,
      SHIPSHAPE_DATA_DIR: this.dataDir,
      SHIPSHAPE_AUTH_PASSWORD: this.password,
      // Network safety: nothing is ever checked on the internet.
      SHIPSHAPE_IGNORE_REGISTRIES: 'docker.io',
      RUST_LOG: 'info',
      ...this.env,
    };
    const proc = spawn(this.binary, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    const onData = (chunk) => {
      this.log += chunk.toString();
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    const deadline = Date.now() + 30000;
    while (!this.log.includes('listening on http://')) {
      if (proc.exitCode !== null) throw new Error(`shipshape exited (${proc.exitCode}) before listening:\n${this.log}`);
      if (Date.now() > deadline) throw new Error(`shipshape did not start listening:\n${this.log}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** SIGKILL, as a crash would. */
  async kill() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGKILL');
    await exited;
  }

  async restart() {
    await this.kill();
    this.log += '\n---- restarted ----\n';
    await this.start();
  }
}
