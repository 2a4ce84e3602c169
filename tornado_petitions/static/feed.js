// One live WebSocket channel that survives drops: exponential backoff with
// jitter, resume with `?since=<last seq seen>`, and the close codes of docs/protocol.md:
//   1001 going away, 1011 server error, 4000 heartbeat timeout,
//   4008 too slow, and any other code                       -> reconnect (and resume)
//   4401 token expired or revoked                          -> back to sign-in, no retry
//   4403 the user's role no longer allows this channel      -> no retry; the page asks who it is now
//   4429 too many sockets for this user or address         -> back off for longer

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 30_000;
const TOO_MANY_SOCKETS_DELAY_MS = 30_000;
// A quiet socket is asked for a pong; one that stays silent is presumed dead.
const IDLE_PING_MS = 25_000;
const PONG_TIMEOUT_MS = 10_000;

export const CLOSE_TOKEN_INVALID = 4401;
export const CLOSE_FORBIDDEN = 4403;
export const CLOSE_TOO_MANY_SOCKETS = 4429;

/** Full-ish jitter: a delay between half and all of the exponential step. */
export function backoffDelay(attempt, base = BASE_DELAY_MS, cap = MAX_DELAY_MS) {
  const step = Math.min(cap, base * 2 ** attempt);
  return step / 2 + Math.random() * (step / 2);
}

/**
 * A channel kept open until stop().
 *
 * Callbacks: onMessage(message) for every JSON frame, onState(state) with
 * "connecting" | "connected" | "reconnecting" | "offline", onAuthLost() after
 * 4401 (or a handshake the server refused because the session is gone:
 * checkSession() resolving false), onForbidden() after 4403 (the role
 * changed). A signed-out page's public feed gives neither: it has no
 * session to lose, so it only ever reconnects.
 */
export class Feed {
  constructor({ name, path, onMessage, onState, onAuthLost, onForbidden, checkSession }) {
    this.name = name;
    this.path = path;
    this.onMessage = onMessage;
    this.onState = onState || (() => {});
    this.onAuthLost = onAuthLost || (() => {});
    this.onForbidden = onForbidden || (() => {});
    this.checkSession = checkSession || (async () => true);
    this.lastSeq = null;
    this.attempt = 0;
    this.state = "offline";
    this.socket = null;
    this.stopped = true;
    this.retryTimer = null;
    this.idleTimer = null;
    this.pongTimer = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  /** Close for good (sign-out); no reconnect follows. */
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.clearTimers();
    if (this.socket) {
      this.detach(this.socket);
      this.socket.close(1000, "bye");
      this.socket = null;
    }
    this.setState("offline");
  }

  /** Forget the resume point: the next connection starts fresh (after a `reset`). */
  forget() {
    this.lastSeq = null;
  }

  /** Reconnect now (the browser came back online), skipping any pending backoff. */
  nudge() {
    if (this.stopped || (this.socket && this.socket.readyState <= WebSocket.OPEN)) return;
    clearTimeout(this.retryTimer);
    this.attempt = 0;
    this.connect();
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const since = this.lastSeq === null ? "" : `?since=${this.lastSeq}`;
    return `${scheme}//${location.host}${this.path}${since}`;
  }

  connect() {
    if (this.stopped) return;
    this.setState(this.attempt === 0 && this.lastSeq === null ? "connecting" : "reconnecting");
    const socket = new WebSocket(this.url());
    this.socket = socket;
    let greeted = false;
    socket.onmessage = (frame) => {
      if (!greeted) {
        greeted = true;
        this.attempt = 0;
        this.setState("connected");
      }
      this.armIdlePing();
      let message;
      try {
        message = JSON.parse(frame.data);
      } catch {
        return;
      }
      if (message.type === "pong") return;
      if (typeof message.seq === "number" && (this.lastSeq === null || message.seq > this.lastSeq || message.type === "reset")) {
        this.lastSeq = message.seq;
      }
      this.onMessage(message);
    };
    socket.onclose = (event) => {
      if (socket !== this.socket) return;
      this.socket = null;
      this.clearTimers();
      this.closed(event.code, greeted);
    };
    socket.onerror = () => {}; // onclose follows and decides
  }

  async closed(code, greeted) {
    if (this.stopped) return;
    if (code === CLOSE_TOKEN_INVALID) {
      this.stopped = true;
      this.setState("offline");
      this.onAuthLost();
      return;
    }
    if (code === CLOSE_FORBIDDEN) {
      this.stopped = true;
      this.setState("offline");
      this.onForbidden();
      return;
    }
    // A refused handshake shows up as 1006 before any message: ask whether the session still holds.
    if (!greeted && code === 1006 && this.attempt >= 1 && navigator.onLine) {
      let valid = true;
      try {
        valid = await this.checkSession();
      } catch {
        valid = true; // the server is unreachable: keep retrying
      }
      if (this.stopped) return;
      if (!valid) {
        this.stopped = true;
        this.setState("offline");
        this.onAuthLost();
        return;
      }
    }
    let delay = backoffDelay(this.attempt);
    if (code === CLOSE_TOO_MANY_SOCKETS) delay = Math.max(delay, TOO_MANY_SOCKETS_DELAY_MS * (0.5 + Math.random() / 2));
    this.attempt += 1;
    this.setState(navigator.onLine ? "reconnecting" : "offline");
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  armIdlePing() {
    clearTimeout(this.idleTimer);
    clearTimeout(this.pongTimer);
    this.idleTimer = setTimeout(() => {
      const socket = this.socket;
      if (!socket || socket.readyState !== WebSocket.OPEN) return;
      socket.send('{"type":"ping"}');
      this.pongTimer = setTimeout(() => this.dropDead(socket), PONG_TIMEOUT_MS);
    }, IDLE_PING_MS);
  }

  /** The connection went silent (e.g. a dead network path): abandon it and reconnect. */
  dropDead(socket) {
    if (socket !== this.socket) return;
    this.detach(socket);
    socket.close(4000, "no pong");
    this.socket = null;
    this.clearTimers();
    this.closed(4000, true);
  }

  detach(socket) {
    socket.onmessage = null;
    socket.onclose = null;
    socket.onerror = null;
  }

  clearTimers() {
    clearTimeout(this.idleTimer);
    clearTimeout(this.pongTimer);
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.onState(state);
  }
}
