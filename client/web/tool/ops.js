// Build edit ops in the geometry op format (server/geometry/ops.py) and apply the simple ones locally.
import { newId } from "../socket.js";
import { emptyRle } from "./rle.js";

const r2 = (v) => Math.round(v * 100) / 100;
const pt = ([x, y]) => [r2(x), r2(y)];

export function bboxFrom([ax, ay], [bx, by], aspect = null) {
  let x = Math.min(ax, bx), y = Math.min(ay, by), w = Math.abs(bx - ax), h = Math.abs(by - ay);
  if (aspect) {
    if (w / Math.max(h, 1e-9) > aspect) h = w / aspect; else w = h * aspect;
    if (bx < ax) x = ax - w;
    if (by < ay) y = ay - h;
  }
  return { x: r2(x), y: r2(y), w: r2(w), h: r2(h) };
}

export function objectOf(type, geometry, label = "", extra = {}) {
  return { id: newId(), type, label, geometry, ...extra };
}

export const create = (object) => ({ kind: "create", object });
export const remove = (id) => ({ kind: "delete", object_id: id });
export const moveBox = (id, b) => ({ kind: "move_box", object_id: id, x: r2(b.x), y: r2(b.y), w: r2(b.w), h: r2(b.h) });
export const translate = (id, dx, dy) => ({ kind: "translate", object_id: id, dx: r2(dx), dy: r2(dy) });
export const moveVertex = (id, a, [x, y]) => ({ kind: "move_vertex", object_id: id, part: a.part, hole: a.hole, index: a.index, x: r2(x), y: r2(y) });
export const insertVertex = (id, a, [x, y]) => ({ kind: "insert_vertex", object_id: id, part: a.part, hole: a.hole, index: a.index, x: r2(x), y: r2(y) });
export const removeVertex = (id, a) => ({ kind: "remove_vertex", object_id: id, part: a.part, hole: a.hole, index: a.index });
export const addPart = (id, ring) => ({ kind: "add_part", object_id: id, exterior: ring.map(pt), holes: [] });
export const addHole = (id, part, ring) => ({ kind: "add_hole", object_id: id, part, ring: ring.map(pt) });
export const setLabel = (id, label) => ({ kind: "set_label", object_id: id, label });
export const setAttributes = (id, attributes) => ({ kind: "set_attributes", object_id: id, attributes });
export const setKeypoint = (id, name, [x, y]) => ({ kind: "set_keypoint", object_id: id, keypoint: { name, x: r2(x), y: r2(y), visible: true } });
export const removeKeypoint = (id, name) => ({ kind: "remove_keypoint", object_id: id, name });
export const setRpy = (id, rpy) => ({ kind: "set_rpy", object_id: id, rpy });
export const setOccluded = (id, occluded) => ({ kind: "set_occluded", object_id: id, occluded });
export const setZ = (id, z) => ({ kind: "set_z", object_id: id, z });
export const brush = (id, points, radius, mode = "draw") => ({ kind: "brush", object_id: id, mode, points: points.map(pt), radius: r2(radius) });
export const fill = (id, [x, y]) => ({ kind: "fill", object_id: id, x: r2(x), y: r2(y) });
export const rasterize = (id) => ({ kind: "rasterize", object_id: id });
export const rasterizeAll = () => ({ kind: "rasterize_all" });
export const vectorize = (id, simplify = null) => ({ kind: "vectorize", object_id: id, simplify });
export const batch = (ops) => ({ kind: "batch", ops });

export const polygonGeometry = (ring) => ({ parts: [{ exterior: ring.map(pt), holes: [] }] });
export const polylineGeometry = (points) => ({ points: points.map(pt) });
export const pointGeometry = ([x, y]) => ({ x: r2(x), y: r2(y) });
export const bitmapGeometry = (h, w) => ({ rle: emptyRle(h, w) });

/** A new bitmap painted by its first stroke: one batch, one undo step. */
export function newBitmap(label, h, w, points, radius) {
  const obj = objectOf("bitmap", bitmapGeometry(h, w), label);
  return { object: obj, op: batch([create(obj), brush(obj.id, points, radius, "draw")]) };
}

function ringAt(geom, type, a) {
  if (type === "polyline") return geom.points;
  const part = geom.parts[a.part];
  return a.hole === null || a.hole === undefined ? part.exterior : part.holes[a.hole];
}

function withRing(geom, type, a, ring) {
  if (type === "polyline") return { points: ring };
  const parts = geom.parts.map((p, i) => {
    if (i !== a.part) return p;
    if (a.hole === null || a.hole === undefined) return { ...p, exterior: ring };
    return { ...p, holes: p.holes.map((hl, j) => (j === a.hole ? ring : hl)) };
  });
  return { parts };
}

const LOCAL = new Set(["create", "delete", "replace", "move_box", "translate", "move_vertex", "insert_vertex",
  "remove_vertex", "add_part", "add_hole", "remove_part", "remove_hole", "set_label", "set_attributes",
  "set_keypoint", "remove_keypoint", "set_rpy", "set_occluded", "set_z", "replace_geometry", "set_source"]);

/** Whether applyOp can compute this op's result here (else the server's snapshot is needed). */
export function isLocal(op) {
  return op.kind === "batch" ? op.ops.every(isLocal) : LOCAL.has(op.kind);
}

function shift(points, dx, dy) { return points.map(([x, y]) => [x + dx, y + dy]); }

/** objects (array) + op -> new objects array. Unknown kinds leave the list unchanged. An op's
 * `sources` (docs/protocol.md, "Object sources") set where the objects it names came from. */
export function applyOp(objects, op) {
  const out = applyEdit(objects, op);
  return op.sources ? withSources(out, op.sources) : out;
}

function withSources(objects, sources) {
  return objects.map((o) => (Object.hasOwn(sources, o.id) && o.source !== sources[o.id] ? { ...o, source: sources[o.id] } : o));
}

/** What my own edit leaves here before the server answers: a model's object I change is mine
 * now (source "manual"), as the server makes it; an object I create is mine whatever I copied. */
export function asMine(objects, op) {
  const created = new Set(), changed = new Set();
  (function walk(o) {
    if (o.kind === "batch") o.ops.forEach(walk);
    else if (o.kind === "create") created.add(o.object.id);
    else if (o.object_id) changed.add(o.object_id);
  })(op);
  if (!created.size && !changed.size) return objects;
  const mine = (o) => (created.has(o.id) ? !!o.source && o.source !== "manual" : changed.has(o.id) && o.source === "auto");
  return objects.some(mine) ? objects.map((o) => (mine(o) ? { ...o, source: "manual" } : o)) : objects;
}

/** Whether an object came from a model and no person has reviewed it yet. */
export const fromModel = (o) => o.source === "auto";

function applyEdit(objects, op) {
  if (op.kind === "batch") return op.ops.reduce(applyEdit, objects);
  if (op.kind === "set_source") return objects;
  if (op.kind === "create") return [...objects.filter((o) => o.id !== op.object.id), op.object];
  if (op.kind === "delete") return objects.filter((o) => o.id !== op.object_id);
  return objects.map((o) => (o.id === op.object_id ? applyToObject(o, op) : o));
}

function applyToObject(o, op) {
  const g = o.geometry;
  const a = { part: op.part ?? 0, hole: op.hole ?? null, index: op.index };
  switch (op.kind) {
    case "replace": return op.object;
    case "replace_geometry": return { ...o, geometry: op.geometry, type: op.type || o.type };
    case "move_box": return { ...o, geometry: { x: op.x, y: op.y, w: op.w, h: op.h } };
    case "translate": {
      const kp = (o.keypoints || []).map((k) => ({ ...k, x: k.x + op.dx, y: k.y + op.dy }));
      if (o.type === "bbox" || o.type === "point") return { ...o, keypoints: kp, geometry: { ...g, x: g.x + op.dx, y: g.y + op.dy } };
      if (o.type === "polyline") return { ...o, geometry: { points: shift(g.points, op.dx, op.dy) } };
      if (o.type === "polygon") return { ...o, keypoints: kp, geometry: { parts: g.parts.map((p) => ({ exterior: shift(p.exterior, op.dx, op.dy), holes: p.holes.map((hl) => shift(hl, op.dx, op.dy)) })) } };
      return o;
    }
    case "move_vertex": { const ring = ringAt(g, o.type, a).slice(); ring[a.index] = [op.x, op.y]; return { ...o, geometry: withRing(g, o.type, a, ring) }; }
    case "insert_vertex": { const ring = ringAt(g, o.type, a).slice(); ring.splice(a.index, 0, [op.x, op.y]); return { ...o, geometry: withRing(g, o.type, a, ring) }; }
    case "remove_vertex": { const ring = ringAt(g, o.type, a).slice(); ring.splice(a.index, 1); return { ...o, geometry: withRing(g, o.type, a, ring) }; }
    case "add_part": { const parts = g.parts.slice(); parts.splice(op.index ?? parts.length, 0, { exterior: op.exterior, holes: op.holes || [] }); return { ...o, geometry: { parts } }; }
    case "add_hole": return { ...o, geometry: { parts: g.parts.map((p, i) => (i === op.part ? { ...p, holes: [...p.holes, op.ring] } : p)) } };
    case "remove_part": return { ...o, geometry: { parts: g.parts.filter((_, i) => i !== op.part) } };
    case "remove_hole": return { ...o, geometry: { parts: g.parts.map((p, i) => (i === op.part ? { ...p, holes: p.holes.filter((_, j) => j !== op.hole) } : p)) } };
    case "set_label": return { ...o, label: op.label };
    case "set_attributes": return { ...o, attributes: op.attributes };
    case "set_keypoint": {
      const kps = (o.keypoints || []).filter((k) => k.name !== op.keypoint.name);
      const at = (o.keypoints || []).findIndex((k) => k.name === op.keypoint.name);
      kps.splice(at >= 0 ? at : op.index ?? kps.length, 0, op.keypoint);
      return { ...o, keypoints: kps };
    }
    case "remove_keypoint": return { ...o, keypoints: (o.keypoints || []).filter((k) => k.name !== op.name) };
    case "set_rpy": return { ...o, rpy: op.rpy };
    case "set_occluded": return { ...o, occluded: op.occluded };
    case "set_z": return { ...o, z: op.z };
    default: return o;
  }
}

const orderedCache = new WeakMap();

/** Objects in drawing order (z, then list order). The same array for the same input (object
 * lists are never changed in place): the canvas and the panel see "no change" by identity. */
export function ordered(objects) {
  let out = orderedCache.get(objects);
  if (!out) {
    out = objects.map((o, i) => [o, i]).sort((a, b) => (a[0].z || 0) - (b[0].z || 0) || a[1] - b[1]).map(([o]) => o);
    orderedCache.set(objects, out);
  }
  return out;
}
