// Edits the server refused after they were queued: which ones, why, and how to apply them again.
// Pure (no DOM, no socket): the tool session records refusals here and the view lists them.
//
// An edit is never dropped quietly. A refusal is kept when the lock was lost (the lease expired
// and someone else took the image, or a reviewer took it over) or when the edit waited through a
// reconnect and no longer applies. Re-applying sends the edits again as *new* ops (new
// client_op_ids) on top of the image as it is now; one that no longer applies (its object was
// deleted meanwhile) stays listed with that reason instead of being forced.
import { applyOp } from "./ops.js";

/** Error codes meaning "you do not hold this image (any more)". */
export const LOCK_CODES = new Set(["no_lock", "stale_token", "lock_expired", "lock_lost", "locked"]);

const TYPE_TEXT = { bbox: "Box", polygon: "Polygon", polyline: "Polyline", point: "Point", bitmap: "Bitmap", rpy: "RPY" };

/** Whether a refused op goes on the "not saved" list (else a toast is enough: the person just saw it fail). */
export function keepRefusal(code, crossedReconnect) {
  return LOCK_CODES.has(code) || code === "forbidden" || !!crossedReconnect;
}

/** A sentence for the list. */
export function reasonText(code, message) {
  if (code === "gone") return message;
  if (LOCK_CODES.has(code)) return "the lock was lost while offline (someone else had the image)";
  if (code === "forbidden") return "you may no longer label in this project";
  if (code === "invalid_op") return `it no longer applies (${message || "the image changed"})`;
  return message || code;
}

/** {kind, label} of an op for the list: its kind and the object's type and label. */
export function describe(op, objects = []) {
  const first = op.kind === "batch" ? op.ops[0] || {} : op;
  const obj = first.kind === "create" ? first.object : objects.find((o) => o.id === first.object_id);
  const kind = op.kind === "batch" ? `batch of ${op.ops.length} (${first.kind || "empty"})` : op.kind;
  if (!obj) return { kind, label: first.label ?? first.object_id ?? "" };
  return { kind, label: `${TYPE_TEXT[obj.type] || obj.type} “${obj.label || "no label"}”` };
}

/** The list with one more refused op. `objects`: the image as the person saw it when sending. */
export function refuse(list, { image, op, code, message, clientOpId, objects }) {
  const { kind, label } = describe(op, objects);
  return [...list, { key: clientOpId, image, op, kind, label, code, reason: reasonText(code, message) }];
}

/** "1 edit was not saved" / "3 edits were not saved". */
export function summary(n) {
  return n === 1 ? "1 edit was not saved" : `${n} edits were not saved`;
}

/** Re-apply is offered when there is something to re-apply and the image can be taken now. */
export function canReapply({ entries, image, online, canLabel, readOnly, holder }) {
  if (!online || !canLabel || image === null || image === undefined) return false;
  if (!entries.some((e) => e.image === image)) return false;
  return !readOnly || !holder;  // I hold it, or nobody does
}

/** Why an op cannot apply to these objects ("" when it can). */
export function missing(op, objects) {
  if (op.kind === "batch") {
    let objs = objects;
    for (const sub of op.ops) {
      const why = missing(sub, objs);
      if (why) return why;
      objs = applyOp(objs, sub);
    }
    return "";
  }
  if (op.kind === "create") return objects.some((o) => o.id === op.object.id) ? "an object with its id exists already" : "";
  if (op.object_id !== undefined && !objects.some((o) => o.id === op.object_id)) return "its object was deleted meanwhile";
  return "";
}

/** Split the entries of one image into ops to send again (in order, on top of `objects`) and
 * entries that no longer apply (kept, with the reason). */
export function plan(entries, objects) {
  const send = [], stale = [];
  let objs = objects;
  for (const e of entries) {
    const why = missing(e.op, objs);
    if (why) { stale.push({ ...e, code: "gone", reason: `it no longer applies: ${why}` }); continue; }
    send.push(e);
    objs = applyOp(objs, e.op);
  }
  return { send, stale };
}

/** The list as JSON a person can keep (and a script can send again). */
export function asJson(entries) {
  return JSON.stringify(entries.map((e) => ({ image: e.image, op: e.op, reason: e.reason })), null, 2);
}
