// One labeling session over the hub: open / lock an image, snapshot + live ops, send edits, undo,
// next / previous image, cursors. Calls onChange() whenever something shows. Label ops' rules are
// in _labelops.js, masks and smart selection in _masks.js.
import { applyOp, asMine, fromModel, isLocal } from "../tool/ops.js";
import { newId } from "../socket.js";
import * as U from "../tool/unsaved.js";
import { withState } from "./workflow.js";
import { LABEL_KINDS, applyLabelOp, normalizeLabels } from "./_labelops.js";
import { maskMethods } from "./_masks.js";

const CURSOR_COLORS = ["#e91e63", "#9c27b0", "#00bcd4", "#ff5722", "#8bc34a", "#3f51b5"];

/** The image's item, then its file, fetched and decoded: {item, img, decoded}. The tool starts
 *  this for the image in its address before anything else (`preload`), so that the file (the
 *  largest wait) arrives while the project, the socket and the snapshot do, not after them. */
export function loadImage(api, id) {
  const loading = api.get(`/api/v1/images/${id}`).then(async (item) => ({ item, ...await decode(item.file_url) }));
  loading.catch(() => null);  // whoever awaits it hears of a failure; unawaited, it is no error
  return loading;
}

async function decode(url) {
  const img = new Image();
  img.src = url;
  return { img, decoded: await img.decode().then(() => true, () => false) };
}

export function createImageSession({ ctx, pid, project, settings, query, onChange, say, preload = null }) {
  const hub = ctx.hub;
  let canLabel = project.privileges.includes("label");
  const filter = {};
  for (const k of ["labeled", "label", "auto_labeled", "labeled_by", "locked", "state", "assignee"]) if (query[k] !== undefined && query[k] !== "") filter[k] = k === "labeled_by" || k === "assignee" ? Number(query[k]) : ["labeled", "auto_labeled", "locked"].includes(k) ? query[k] === "true" : query[k];
  // The review queue (from the dashboard's "Review" button): done images, not one's own.
  const queue = query.queue === "review" && project.privileges.includes("review") ? "review" : "label";
  const images = query.ids ? query.ids.split(",").map(Number).filter(Boolean) : null;
  const s = {
    image: null, imageEl: null, objects: [], imageLabels: [], readOnly: true, readOnlyReason: "", holder: null,
    seq: -1, mine: new Set(), early: new Map(), cursors: new Map(), masks: new Map(), smartCanvas: null,
    onImage: null, ended: false, lastCursor: 0, smartBusy: 0,
    unsaved: [],  // refused edits, never dropped quietly (tool/unsaved.js)
  };
  // Kept in sessionStorage too: leaving the tool or reloading the page does not lose them (and a
  // refusal that arrives after the tool was left is there when it is opened again).
  const stashKey = `labelhub.unsaved.${pid}`;
  try { s.unsaved = JSON.parse(sessionStorage.getItem(stashKey) || "[]"); } catch { s.unsaved = []; }
  function setUnsaved(list) {
    s.unsaved = list;
    try { if (list.length) sessionStorage.setItem(stashKey, JSON.stringify(list)); else sessionStorage.removeItem(stashKey); } catch { /* storage full or off: the banner still shows them */ }
  }
  const crossed = new Set();  // client_op_ids that waited through a reconnect

  const token = () => hub.tokens.get(s.image?.id);

  s.banner = () => {
    if (!s.image) return s.ended ? "No more images to label with this selection." : "Loading…";
    return s.readOnly ? s.readOnlyReason : "";
  };
  s.pending = () => hub.pending;
  s.canReapply = () => U.canReapply({ entries: s.unsaved, image: s.image?.id, online: hub.state === "online", canLabel, readOnly: s.readOnly, holder: s.holder });
  s.discardUnsaved = () => { setUnsaved([]); onChange(); };

  /** Take the image (when free) and send the refused edits again, as new ops on top of what is
   *  there now; those that no longer apply stay listed with the reason. */
  s.reapply = async () => {
    const id = s.image?.id;
    if (!s.canReapply()) return;
    if (s.readOnly) {
      const snapshot = new Promise((resolve) => {
        const off = ctx.onHub((m) => { if (m.type === "snapshot" && m.image === id) { off(); resolve(); } });
      });
      try {
        setLock(await hub.openImage(id), null);
        await snapshot;  // plan against the image as it is now
      } catch (err) {
        if (err.code === "locked") setLock(null, err.detail?.holder);
        say(plain(err)); onChange(); return;
      }
    }
    if (s.image?.id !== id) return;
    const { send, stale } = U.plan(s.unsaved.filter((e) => e.image === id), s.objects);
    setUnsaved([...s.unsaved.filter((e) => e.image !== id), ...stale]);
    for (const e of send) s.send(e.op);
    say(stale.length ? `${send.length} re-applied; ${stale.length} no longer appl${stale.length === 1 ? "ies" : "y"}.` : `${send.length} re-applied.`);
    onChange();
  };
  s.flush = () => hub.whenIdle();
  s.cursorList = () => [...s.cursors.values()].filter((c) => c.image === s.image?.id);

  async function online() {
    if (hub.state === "online") return;
    await new Promise((resolve) => {
      const off = ctx.onHub((m) => { if (m.type === "_conn" && m.state === "online") { off(); resolve(); } });
    });
  }

  async function show(id, ack) {
    const early = preload && preload.id === String(id) ? preload.loading : null;
    preload = null;
    // The item is read again after the open (which may have started the image: its state); the
    // file preloaded is the one to show unless the item now names another.
    const [item, pre] = await Promise.all([ctx.api.get(`/api/v1/images/${id}`), early?.catch(() => null)]);
    const { img, decoded } = pre && pre.item.file_url === item.file_url ? pre : await decode(item.file_url);
    if (!decoded) say("The image file could not be loaded.");
    s.image = item; s.imageEl = img; s.objects = []; s.imageLabels = normalizeLabels(item.labels); s.masks.clear(); s.smartCanvas = null;
    s.seq = -1;
    for (const msg of s.early.get(id) || []) take(msg);
    s.early.clear();
    const hashNow = `#/p/${pid}/label/${id}`;
    if (!location.hash.startsWith(hashNow)) history.replaceState(null, "", hashNow + location.hash.slice(location.hash.indexOf("?") >= 0 ? location.hash.indexOf("?") : location.hash.length));
    setLock(ack, ack?.holder);
    s.onImage?.();
  }

  function setLock(ack, holder) {
    s.free = false;
    if (!canLabel) { s.readOnly = true; s.readOnlyReason = queue === "review" ? "Reviewing: accept it, or reject it with a comment." : "Read-only: you can view this project but not label it."; return; }
    if (ack && ack.lock) { s.readOnly = false; s.readOnlyReason = ""; s.holder = null; return; }
    const who = holder?.name || "someone else";
    s.readOnly = true; s.holder = holder;
    s.readOnlyReason = `Read-only: ${who} is labeling this image right now.`;
  }

  async function release() {
    if (!s.image) return;
    const id = s.image.id;
    await hub.whenIdle();
    if (hub.tokens.has(id)) await hub.releaseImage(id); else await hub.unsubscribe(id);
  }

  s.openImage = async (id) => {
    await online();
    await release();
    if (!canLabel) { await hub.subscribe(id).catch((e) => say(e.message)); return show(id, null); }
    try {
      const ack = await hub.openImage(id);
      await show(id, ack);
    } catch (err) {
      if (err.code !== "locked") { say(err.message); return; }
      await hub.subscribe(id).catch(() => null);
      await show(id, null);
      setLock(null, err.detail?.holder);
      onChange();
    }
  };

  /** The holder left: a viewer who may label takes the image where they are, no reload. */
  s.startLabeling = async () => {
    if (!s.image) return;
    try {
      const ack = await hub.openImage(s.image.id);
      setLock(ack, null);  // its ops reached us while watching: the objects are current
    } catch (err) {
      if (err.code === "locked") setLock(null, err.detail?.holder); else say(plain(err));
    }
    onChange();
  };

  /** A reviewer takes the lock from its holder (whose next edit then fails with stale_token). */
  s.takeOver = async () => {
    if (!s.image) return;
    try {
      const ack = await hub.openImage(s.image.id, true);
      setLock(ack, null);
      say("You hold this image now.");
    } catch (err) { say(plain(err)); }
    onChange();
  };

  s.start = async (id) => {
    await online();
    if (id) return s.openImage(id);
    return s.next();
  };

  /** Next / previous through the hub's next_image (skip settings, the selection or filter). */
  async function step(direction) {
    await online();
    if (!canLabel && queue !== "review") return say("Moving between images needs the label privilege; open images from the dashboard.");
    await hub.whenIdle();
    const fields = { direction, release: false };
    if (queue === "review") fields.queue = "review";
    if (s.image) fields.after = s.image.id;
    if (images) fields.images = images; else if (Object.keys(filter).length) fields.filter = filter;
    try {
      const ack = await hub.nextImage(fields);
      const id = ack.image && typeof ack.image === "object" ? ack.image.id : ack.image;
      if (!id) {
        if (!s.image) s.ended = true;
        // A reviewer at the end of the queue lets go of the image just reviewed.
        else if (queue === "review" && direction === "next") { await release(); s.readOnly = true; s.readOnlyReason = "Nothing left to review for now."; }
        say(direction === "next" ? (queue === "review" ? "Nothing left to review." : "No more images to label with this selection.") : "There is no earlier image in this selection.");
        onChange();
        return;
      }
      if (id !== s.image?.id) await release();
      await show(id, ack);
    } catch (err) { say(plain(err)); }
  }
  s.next = () => step("next");
  /** After "Done" (staying on the image): let go of the lock, so a reviewer can take it. */
  s.handOver = async () => {
    if (!s.image || s.readOnly) return;
    await release();
    await hub.subscribe(s.image.id).catch(() => null);
    s.readOnly = true; s.holder = null;
    s.readOnlyReason = "Done: handed over for review. Open the image again (F5) to change it.";
    onChange();
  };
  s.queue = queue;
  /** The image item read again (after a workflow conflict: show the state it is in now). */
  s.refreshItem = async () => {
    const id = s.image?.id;
    const item = id ? await ctx.api.get(`/api/v1/images/${id}`).catch(() => null) : null;
    if (item && s.image?.id === id) { s.image = item; onChange(); }
  };
  s.prev = () => step("previous");

  s.close = async () => {
    await Promise.race([release(), new Promise((r) => setTimeout(r, 3000))]);
  };

  s.send = (op) => {
    if (!s.image) return;
    const id = s.image.id;
    const clientOpId = newId();
    s.mine.add(clientOpId);
    const before = s.objects;
    unacked.set(clientOpId, { image: id, op });
    showOwn(op);
    onChange();
    hub.sendOp(id, op, clientOpId).then((ack) => {
      crossed.delete(clientOpId);
      unacked.delete(clientOpId);
      if (ack.seq > s.seq && s.image?.id === id) s.seq = ack.seq;
      // The server may adjust an edit (snapping, clipping, brush results): then take its state.
      if (!LABEL_KINDS.has(op.kind) && (!isLocal(op) || (ack.op && JSON.stringify(ack.op) !== JSON.stringify(op)))) resync(id);
      onChange();
    }, (err) => {
      unacked.delete(clientOpId);
      // Refused: listed (with Re-apply / Copy as JSON) rather than lost; a plain mistake made
      // online (an invalid shape) is only told.
      if (U.keepRefusal(err.code, crossed.delete(clientOpId))) setUnsaved(U.refuse(s.unsaved, { image: id, op, code: err.code, message: err.message, clientOpId, objects: before }));
      else say(plain(err));
      if (err.code === "forbidden" || err.code === "no_privilege") { s.readOnly = true; s.readOnlyReason = "Read-only: you can no longer label in this project."; }
      if (err.code === "no_lock" || err.code === "stale_token" || err.code === "lock_expired") { s.readOnly = true; s.readOnlyReason = "Read-only: you no longer hold this image."; }
      resync(id);
      onChange();
    });
  };

  // Edits sent and not yet acknowledged, in the order made. A snapshot never holds them (the
  // server answers a socket's messages in order: an edit it committed before the snapshot was
  // acknowledged before it), so they are shown again on top of each snapshot; without that, an
  // edit made while a snapshot was on its way (a resync, the resume after a reconnect) vanished
  // from the canvas though it was saved.
  const unacked = new Map();

  function showOwn(op) {
    if (LABEL_KINDS.has(op.kind)) s.imageLabels = applyLabelOp(s.imageLabels, op);
    // What can be computed here shows at once (a new bitmap's create, before its first stroke);
    // the rest comes with the server's snapshot after the ack.
    else s.objects = asMine(applyOp(s.objects, op), op);
  }

  async function resync(id) {
    // A fresh snapshot (the server sends one after every subscribe).
    if (hub.state === "online" && s.image?.id === id) await hub.request("subscribe", { image: id }).catch(() => null);
  }

  s.undo = () => undoRedo("undo");
  s.redo = () => undoRedo("redo");
  async function undoRedo(kind) {
    if (!s.image || s.readOnly) return;
    const id = s.image.id;
    await hub.whenIdle();
    try {
      const ack = await hub.request(kind, { image: id, token: token() });
      if (ack.op && LABEL_KINDS.has(ack.op.kind)) { s.imageLabels = applyLabelOp(s.imageLabels, ack.op); onChange(); }
      else if (ack.op && isLocal(ack.op)) { s.objects = applyOp(s.objects, ack.op); onChange(); }
      else await resync(id);
    } catch (err) { say(err.code === `nothing_to_${kind}` ? `Nothing to ${kind}.` : plain(err)); }
  }

  s.classToggle = (name) => {
    if (s.readOnly) { say(s.readOnlyReason); return; }
    const has = s.imageLabels.some((l) => l.label === name);
    s.send(has ? { kind: "remove_label", label: name } : { kind: "add_label", label: name, source: "manual" });
  };
  /** Whether the image has labels or objects a model added that nobody reviewed yet. */
  s.hasModelWork = () => s.imageLabels.some((l) => l.source === "auto") || s.objects.some(fromModel);
  /** The person reviewed the labels and objects a model added: they become theirs (source
   * manual) through POST /auto-labels/confirm, a set_labels and a set_source op that reach this
   * tool (and everyone watching) live like any edit. */
  s.confirmAuto = async () => {
    if (!s.image) return;
    if (s.readOnly) { say(s.readOnlyReason); return; }
    if (!s.hasModelWork()) { say("Nothing here came from a model."); return; }
    await hub.whenIdle();  // my edits first: the confirmation covers what the server has
    try {
      const res = await ctx.api.post(`/api/v1/projects/${pid}/auto-labels/confirm`, { images: [s.image.id] });
      if (res.skipped.length) { say(`Not confirmed: ${res.skipped[0].reason.replace(/_/g, " ")}.`); return; }
      const [done] = res.confirmed, n = done.labels.length, k = (done.objects || []).length;
      say(`Confirmed ${[n ? `${n} label${n === 1 ? "" : "s"}` : "", k ? `${k} object${k === 1 ? "" : "s"}` : ""].filter(Boolean).join(" and ")}.`);
    } catch (err) { say(plain(err)); }
  };
  s.classDefault = (name) => { if (s.readOnly) { say(s.readOnlyReason); return; } s.send({ kind: "set_default_label", label: name }); };

  s.sendCursor = (p) => {
    const now = performance.now();
    if (!s.image || hub.state !== "online" || now - s.lastCursor < 100) return;
    s.lastCursor = now;
    hub.request("cursor", { image: s.image.id, x: Math.round(p[0] * 10) / 10, y: Math.round(p[1] * 10) / 10 }).catch(() => null);
  };

  Object.assign(s, maskMethods(s, { api: ctx.api, say, onChange }));

  function take(msg) {
    const cur = s.image?.id;
    if (msg.type === "snapshot") {
      s.objects = msg.objects || []; s.imageLabels = normalizeLabels(msg.labels); s.seq = msg.seq ?? s.seq;
      for (const { image, op } of unacked.values()) {
        if (image !== msg.image) continue;
        try { showOwn(op); } catch { /* it no longer applies: its ack or refusal tells */ }
      }
      const holder = msg.lock?.holder;
      if (s.readOnly && canLabel && holder && !(ctx.me && holder.id === ctx.me.id)) setLock(null, holder);
      return;
    }
    if (msg.client_op_id && s.mine.has(msg.client_op_id)) return;
    if (typeof msg.seq === "number" && msg.seq <= s.seq) return;
    s.seq = msg.seq ?? s.seq;
    const op = msg.op;
    if (op.kind === "state") { s.image = withState(s.image, msg); s.refreshItem(); return; }
    if (LABEL_KINDS.has(op.kind)) s.imageLabels = applyLabelOp(s.imageLabels, op);
    else if (isLocal(op)) s.objects = applyOp(s.objects, op);
    else resync(cur);
  }

  ctx.onHub((msg) => {
    const cur = s.image?.id;
    if ((msg.type === "snapshot" || msg.type === "op") && msg.image && msg.image !== cur) {
      // Snapshots and ops may arrive before the image is on screen (open/subscribe race): keep them.
      if (msg.type === "snapshot") s.early.set(msg.image, [msg]);
      else s.early.get(msg.image)?.push(msg);
      return;
    }
    if (msg.type === "snapshot" || msg.type === "op") {
      take(msg);
      onChange();
    } else if (msg.type === "lock" && msg.image === cur && msg.image_state && s.image) {
      s.image = withState(s.image, msg); onChange();
    }
    if (msg.type === "lock" && msg.image === cur) {
      const holder = msg.state === "released" || msg.state === "expired" ? null : msg.holder;
      const mineNow = holder && ctx.me && holder.id === ctx.me.id;
      if (!s.readOnly && holder && !mineNow) { hub.tokens.delete(cur); setLock(null, holder); say(`${holder.name || "Someone"} took over this image; it is read-only now.`); onChange(); }
      else if (s.readOnly && holder && !mineNow) { setLock(null, holder); onChange(); }
      else if (s.readOnly && canLabel && !holder && s.holder) { s.holder = null; s.free = true; s.readOnlyReason = "Read-only: the image is free now — Start labeling this image takes it."; onChange(); }
    } else if (msg.type === "presence") {
      const uid = msg.user?.id;
      if (uid === undefined || (ctx.me && uid === ctx.me.id)) return;
      if (msg.online === false || msg.image !== cur || msg.x === undefined || msg.x === null) s.cursors.delete(uid);
      else s.cursors.set(uid, { image: msg.image, x: msg.x, y: msg.y, name: msg.user.name || "someone", color: CURSOR_COLORS[uid % CURSOR_COLORS.length] });
      onChange();
    } else if (msg.type === "privileges" || msg.type === "member") {
      const privs = msg.privileges || [];
      canLabel = privs.includes("label");
      if (!privs.includes("label")) { s.readOnly = true; s.readOnlyReason = "Read-only: your role changed and you can no longer label here."; onChange(); }
    } else if (msg.type === "_resumed" && cur) {
      // Awaited by the socket before queued ops are resent: they need the new lock token.
      for (const item of hub.outbox) crossed.add(item.msg.client_op_id);
      return (async () => {
        if (!s.readOnly && canLabel) {
          try { const ack = await hub.request("open_image", { image: cur }); hub.retoken(cur, ack.lock.token); }
          catch (err) { if (err.code === "locked") { setLock(null, err.detail?.holder); onChange(); } }
        }
        // The fresh snapshot predates the resent ops: take the server's state once they land.
        if (hub.pending) hub.whenIdle().then(() => resync(cur)); else await resync(cur);
      })();
    }
  });
  return s;
}

function plain(err) {
  const m = err.message || String(err);
  return m.charAt(0).toUpperCase() + m.slice(1);
}
