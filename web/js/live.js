// One websocket to /api/ws. When it drops, the page says so at once and
// tries again with growing pauses (0.5 s doubling to 10 s, with jitter);
// before each try it asks `resync` whether to go on (a REST read of the full
// state, which also finds out whether the session is still there).

const MIN_DELAY = 500;
const MAX_DELAY = 10000;
/** Code the server closes with when the session ended (logout, expiry). */
const POLICY = 1008;

export class Live {
  /**
   * @param {object} hooks
   * @param {(msg: object) => void} hooks.message   every parsed server message
   * @param {(state: string) => void} hooks.status   'connecting' | 'live' | 'reconnecting' | 'stopped'
   * @param {() => Promise<boolean>} hooks.resync    before a reconnect: false stops trying
   * @param {() => void} hooks.sessionEnded          the server closed for a dead session
   */
  constructor(hooks) {
    this.hooks = hooks;
    this.socket = null;
    this.attempt = 0;
    this.timer = 0;
    this.running = false;
    this.state = 'stopped';
  }

  get open() {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.attempt = 0;
    this.connect();
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onclose = null;
      socket.close();
    }
    this.setState('stopped');
  }

  /** Skips the pause before the next try (the user pressed Retry). */
  retryNow() {
    if (!this.running || this.open) return;
    clearTimeout(this.timer);
    this.attempt = 0;
    this.reconnect();
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.hooks.status(state);
  }

  connect() {
    if (!this.running) return;
    this.setState(this.attempt === 0 && this.state !== 'reconnecting' ? 'connecting' : 'reconnecting');
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    let socket;
    try {
      socket = new WebSocket(`${scheme}://${location.host}/api/ws`);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      this.setState('live');
    };
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.hooks.message(message);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (!this.running) return;
      if (event.code === POLICY) {
        this.hooks.sessionEnded();
        return;
      }
      this.setState('reconnecting');
      this.scheduleReconnect();
    };
  }

  scheduleReconnect() {
    clearTimeout(this.timer);
    const base = Math.min(MAX_DELAY, MIN_DELAY * 2 ** this.attempt);
    const delay = base * (0.75 + Math.random() * 0.5);
    this.attempt += 1;
    this.timer = setTimeout(() => this.reconnect(), delay);
  }

  async reconnect() {
    if (!this.running) return;
    let go = false;
    try {
      go = await this.hooks.resync();
    } catch {
      go = false;
      // Still unreachable: wait longer and try again.
      if (this.running) this.scheduleReconnect();
      return;
    }
    if (go && this.running) this.connect();
  }
}
