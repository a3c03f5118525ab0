// A small client of the hub protocol (docs/protocol.md). No DOM access: main.js wires it.
//  - hello first (with `since` = the last seq seen, so a reconnect resumes);
//  - every request gets a promise settled by its ack / error;
//  - ops carry a client_op_id and stay queued until acked; after a reconnect they are sent again
//    with the same client_op_id (the server applies each at most once);
//  - the connection state is reported on every change;
//  - a close with 4401 (session revoked / not logged in) or 4403 (no access) is final: no
//    reconnect, queued ops are refused, and onClosed({code, reason}) lets the app move on.

export const STATES = ["connecting", "online", "reconnecting", "offline"];

export function newId() {
  const b = new Uint8Array(12);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export class HubClient {
  constructor({ url, project, WebSocketImpl = globalThis.WebSocket, onEvent, onState,
                onResume, onClosed, heartbeatMs = 15000, requestTimeoutMs = 20000 }) {
    Object.assign(this, { url, project, WebSocketImpl, onEvent, onState, onResume, onClosed,
                          heartbeatMs, requestTimeoutMs });
    this.seq = null;           // last project seq seen
    this.state = "offline";
    this.user = null;
    this.privileges = [];
    this.ws = null;
    this.nextId = 1;
    this.requests = new Map(); // id -> {resolve, reject, msg, timer}
    this.outbox = [];          // unacked ops: {msg, resolve, reject}
    this.tokens = new Map();   // image -> lock token
    this.watched = new Set();  // images subscribed
    this.closed = false;
    this.resuming = false;     // online again, the app's onResume still running
    this.attempt = 0;
    this.idleWaiters = [];
    this.lastActivity = 0;
  }

  /** Called on pointer and key input, so heartbeats can say whether the person is active. */
  touch() { this.lastActivity = Date.now(); }

  setState(state, detail) {
    if (this.state === state && !detail) return;
    this.state = state;
    this.onState?.(state, detail);
  }

  connect() {
    this.closed = false;
    this.setState(this.attempt ? "reconnecting" : "connecting");
    const ws = new this.WebSocketImpl(this.url);
    this.ws = ws;
    ws.onopen = () => this.handshake(ws);
    ws.onmessage = (e) => this.receive(e.data);
    ws.onclose = (e) => this.dropped(ws, e);
    ws.onerror = () => {};
  }

  async handshake(ws) {
    try {
      const hello = { project: this.project };
      if (this.seq !== null) hello.since = this.seq;
      // On a resume the server re-subscribes these images and replays what we missed.
      if (this.watched.size) hello.images = [...this.watched].slice(0, 100);
      const ack = await this.raw("hello", hello, ws);
      if (this.seq === null && typeof ack.seq === "number") this.seq = ack.seq;
      this.user = ack.user; this.privileges = ack.privileges || [];
      // Who was already here: told as presence events, so views treat them like any other.
      for (const p of ack.present || []) this.onEvent?.({ type: "presence", user: p.user, image: p.image ?? null, online: true });
      this.attempt = 0;
      const resumed = this.attemptedBefore;
      this.attemptedBefore = true;
      this.setState("online");
      // While the app re-takes its images (new lock tokens), a new edit waits in the outbox:
      // sent now it would carry the old token, be refused, and be sent again after.
      this.resuming = resumed;
      try {
        if (resumed) await this.onResume?.(this);
      } finally {
        this.resuming = false;
      }
      this.startHeartbeat();
      for (const item of this.outbox) this.transmit(item.msg);
    } catch (err) {
      this.setState("offline", err.message);
      ws.close();
    }
  }

  dropped(ws, event) {
    if (ws !== this.ws) return;
    for (const [id, req] of this.requests) {
      if (req.msg.type !== "op") { clearTimeout(req.timer); req.reject(hubError("disconnected", "The connection was lost before the server answered.")); this.requests.delete(id); }
    }
    if (this.closed) { this.setState("offline"); return; }
    if (event && (event.code === 4401 || event.code === 4403)) {
      // Final: the session was revoked or access was taken away. Nothing queued will be saved.
      this.closed = true;
      clearInterval(this.beat);
      const code = event.code === 4401 ? "unauthorized" : "forbidden";
      const why = event.reason || (event.code === 4401 ? "Please log in again." : "You have no access to this project.");
      const refused = this.outbox;
      this.outbox = [];
      for (const item of refused) {
        this.requests.delete(item.msg.id);
        item.reject(hubError(code, why));
      }
      this.checkIdle();
      this.setState("offline", why);
      this.onClosed?.({ code: event.code, reason: event.reason || "" });
      return;
    }
    this.attempt += 1;
    this.setState("reconnecting");
    const delay = Math.min(10000, 250 * 2 ** Math.min(this.attempt, 6));
    this.retry = setTimeout(() => { if (!this.closed) this.connect(); }, delay);
  }

  /** The network is gone (the browser says so, or a heartbeat went unanswered) though the socket
   *  looks open: stop trusting it and reconnect. Closed without a status code, so the server keeps
   *  our locks until they expire (docs/protocol.md, "Leases and closing"). */
  drop() {
    const ws = this.ws;
    if (!ws || this.closed || this.state === "reconnecting" || this.state === "offline") return;
    this.dropped(ws);
    this.ws = null;
    ws.onopen = null; ws.onmessage = null;
    try { ws.close(); } catch { /* already closing */ }
  }

  /** The network is back: try now instead of waiting out the backoff. */
  reconnectNow() {
    if (this.closed || this.state !== "reconnecting") return;
    clearTimeout(this.retry);
    const ws = this.ws;
    if (ws && ws.readyState === 0) { ws.onopen = null; ws.onclose = null; try { ws.close(); } catch { /* never opened */ } }
    this.connect();
  }

  close() {
    this.closed = true;
    clearInterval(this.beat);
    this.ws?.close(1000, "bye");
  }

  startHeartbeat() {
    clearInterval(this.beat);
    this.beat = setInterval(() => {
      if (this.state !== "online") return;
      // `active` feeds labeling time: only when the person did something since the last beat.
      const active = this.lastActivity > Date.now() - this.heartbeatMs;
      // Unanswered: the socket is dead even if it looks open (a network gone quiet).
      this.request("heartbeat", { active }).catch((err) => { if (err.code === "timeout") this.drop(); });
    }, this.heartbeatMs);
  }

  receive(text) {
    let msg;
    try { msg = JSON.parse(text); } catch { return; }
    if ((msg.type === "ack" || msg.type === "error") && this.requests.has(msg.id)) {
      const req = this.requests.get(msg.id);
      this.requests.delete(msg.id);
      clearTimeout(req.timer);
      if (msg.type === "ack") req.resolve(msg); else req.reject(hubError(msg.code, msg.message, msg));
      this.checkIdle();
      return;
    }
    // Resume point: op and lock events only (an ack's seq may run ahead of events from other processes).
    if (typeof msg.seq === "number" && (msg.type === "op" || msg.type === "lock")) this.bump(msg.seq);
    this.onEvent?.(msg);
  }

  bump(seq) { if (this.seq === null || seq > this.seq) this.seq = seq; }

  transmit(msg) {
    if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify(msg));
  }

  raw(type, fields, ws = this.ws) {
    const msg = { type, id: this.nextId++, ...fields };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.requests.delete(msg.id);
        reject(hubError("timeout", "The server did not answer in time."));
      }, this.requestTimeoutMs);
      this.requests.set(msg.id, { resolve, reject, msg, timer });
      if (ws && ws.readyState === 1) ws.send(JSON.stringify(msg));
    });
  }

  /** A request that needs the session (anything after hello). */
  request(type, fields = {}) {
    if (this.state !== "online") return Promise.reject(hubError("offline", "Not connected to the server right now."));
    return this.raw(type, fields);
  }

  async subscribe(image) { this.watched.add(image); return this.request("subscribe", { image }); }
  async unsubscribe(image) { this.watched.delete(image); return this.request("unsubscribe", { image }).catch(() => null); }

  async openImage(image, takeOver = false) {
    this.watched.add(image);
    const ack = await this.request("open_image", takeOver ? { image, take_over: true } : { image });
    if (ack.lock?.token !== undefined) this.tokens.set(image, ack.lock.token);
    return ack;
  }

  async releaseImage(image) {
    this.tokens.delete(image);
    return this.request("release_image", { image }).catch(() => null);
  }

  async nextImage(fields) {
    const ack = await this.request("next_image", fields);
    const image = ack.image && typeof ack.image === "object" ? ack.image.id : ack.image;
    if (fields.after && fields.release !== false && image !== fields.after) this.tokens.delete(fields.after);
    if (image && ack.lock?.token !== undefined) this.tokens.set(image, ack.lock.token);
    if (image) this.watched.add(image);
    return ack;
  }

  /** Send an edit; resolves with its ack. Queued (and resent after a reconnect) until acked. */
  sendOp(image, op, clientOpId = newId()) {
    return new Promise((resolve, reject) => {
      const msg = { type: "op", id: this.nextId++, image, token: this.tokens.get(image), client_op_id: clientOpId, op };
      const item = { msg, resolve, reject };
      this.outbox.push(item);
      const settle = (fn) => (value) => {
        this.outbox = this.outbox.filter((x) => x !== item);
        fn(value);
        this.checkIdle();
        this.onPending?.(this.outbox.length);
      };
      this.requests.set(msg.id, { msg, resolve: settle(resolve), reject: settle(reject), timer: null });
      if (this.state === "online" && !this.resuming) this.transmit(msg);
      this.onPending?.(this.outbox.length);
    });
  }

  /** After a reconnect the lock token may have changed: update it in queued ops. */
  retoken(image, token) {
    this.tokens.set(image, token);
    for (const item of this.outbox) if (item.msg.image === image) item.msg.token = token;
  }

  get pending() { return this.outbox.length; }

  /** Resolves once every op sent so far is acknowledged (or refused). */
  whenIdle() {
    if (!this.outbox.length) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  checkIdle() {
    if (this.outbox.length) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    waiters.forEach((w) => w());
  }
}

function hubError(code, message, msg) {
  const err = new Error(message || code);
  err.code = code;
  err.detail = msg;
  return err;
}
