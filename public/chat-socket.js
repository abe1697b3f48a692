// The connection to the gateway's /ws: JSON frames in and out, its state for the page
// ("connecting", "online", "reconnecting", "expired"), and automatic reconnects with
// exponential backoff and jitter. "online" means the gateway's welcome arrived (the session is
// ready); "expired" that the gateway closed it because its connect token ran out (4001).
//
// Events (EventTarget): "state" {state, retryAt, attempt}, "open" (before the welcome: the
// moment to send hello), "frame" (one parsed server frame), "close" {code, reason}.

export class ChatSocket extends EventTarget {
  constructor(url, { baseDelay = 500, maxDelay = 15000, welcomeTimeout = 10000,
                     protocols = [] } = {}) {
    super();
    this.url = url;
    this.protocols = protocols; // e.g. ["token.<jwt>"]: a connect token for the gateway
    this.baseDelay = baseDelay;
    this.maxDelay = maxDelay;
    this.welcomeTimeout = welcomeTimeout;
    this.state = "idle";
    this.attempt = 0;       // failed attempts since the last welcome
    this.retryAt = null;    // when the next attempt is due (ms since epoch), while waiting
    this.everOnline = false;
    this.stopped = true;
    this.ws = null;
    this.timer = null;
  }

  get online() {
    return this.state === "online";
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, "bye");
    this.setState("idle");
  }

  /** Skip the rest of the backoff delay (a button, the browser going online). */
  retryNow() {
    if (this.stopped || this.ws || this.timer === null) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.connect();
  }

  /** Send one frame; false when there is no open connection (nothing was sent). */
  send(frame) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  setState(state) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", {
      detail: { state, retryAt: this.retryAt, attempt: this.attempt },
    }));
  }

  connect() {
    this.retryAt = null;
    this.setState(this.everOnline || this.attempt > 0 ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = this.protocols.length ? new WebSocket(this.url, this.protocols)
                                 : new WebSocket(this.url);
    } catch (err) {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    let welcomed = false;
    // A connection that hangs (no answer, or no welcome) is given up and retried.
    const guard = setTimeout(() => {
      if (!welcomed && this.ws === ws) ws.close();
    }, this.welcomeTimeout);

    ws.addEventListener("open", () => {
      if (this.ws === ws) this.dispatchEvent(new Event("open"));
    });
    ws.addEventListener("message", (e) => {
      if (this.ws !== ws || typeof e.data !== "string") return;
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return; // the gateway only sends JSON; anything else is ignored
      }
      if (frame === null || typeof frame !== "object" || Array.isArray(frame)) return;
      if (frame.type === "welcome" && !welcomed) {
        welcomed = true;
        clearTimeout(guard);
        this.attempt = 0;
        this.everOnline = true;
        this.setState("online");
      }
      this.dispatchEvent(new CustomEvent("frame", { detail: frame }));
    });
    ws.addEventListener("close", (e) => {
      clearTimeout(guard);
      if (this.ws !== ws) return;
      this.ws = null;
      console.info(`chatbroker: connection closed (code ${e.code}${e.reason ? `, ${e.reason}` : ""})`);
      this.dispatchEvent(new CustomEvent("close", { detail: { code: e.code, reason: e.reason } }));
      if (e.code === 4001) {
        // The connect token expired: the same token would only be refused again.
        this.stopped = true;
        this.setState("expired");
      } else if (!this.stopped) {
        this.scheduleRetry();
      }
    });
  }

  scheduleRetry() {
    // Exponential backoff with "equal jitter": half the delay fixed, half random, so that
    // many pages cut off together do not come back in one wave.
    const cap = Math.min(this.maxDelay, this.baseDelay * 2 ** Math.min(this.attempt, 16));
    const delay = cap / 2 + Math.random() * (cap / 2);
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, delay);
    this.setState(this.everOnline || this.attempt > 0 ? "reconnecting" : "connecting");
  }
}
