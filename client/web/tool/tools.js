// Drawing tools as pure reducers: (state, env, input) -> {st, ops, effects}.
// env: {objects (drawing order), tol (image px), label, aspect, size: [w, h], masks(obj), nextKeypoint}
import * as O from "./ops.js";
import { boxHandle, nearestEdge, nearestVertex, resizeBox, topHit } from "./geom.js";

export const TOOLS = ["select", "bbox", "polygon", "polyline", "point", "brush", "smart", "keypoint", "ruler"];

export function initialState() {
  return { tool: "bbox", mode: "draw", selected: null, draft: null, forceNew: false, brushRadius: 8, hover: null, smart: null };
}

const out = (st, ops = [], effects = []) => ({ st, ops, effects });
const byId = (env, id) => env.objects.find((o) => o.id === id) || null;
const selectedOf = (st, env) => (st.selected ? byId(env, st.selected) : null);

export function setTool(st, tool) {
  // Keypoints go on the selected object; other tools start fresh (a number key then only picks
  // the label for the next object instead of relabeling the last one).
  const keep = tool === "keypoint" || tool === "select";
  return { ...st, tool, mode: "draw", draft: null, forceNew: false, hover: null, selected: keep ? st.selected : null,
           smart: tool === "smart" ? st.smart : null };
}

function grab(st, env, p) {
  // Select / move / resize an existing object. After N ("new object over another") a click on
  // another object starts a new one instead, but the selected object's handles still work.
  const sel = selectedOf(st, env);
  if (sel && sel.type === "bbox") {
    const handle = boxHandle(sel.geometry, p, env.tol);
    if (handle && !(handle.left && handle.right)) return out({ ...st, draft: { kind: "resize", id: sel.id, handle, box: sel.geometry } });
  }
  if (sel && (sel.type === "polygon" || sel.type === "polyline") && st.mode === "edit") {
    const v = nearestVertex(sel, p, env.tol);
    if (v) return out({ ...st, draft: { kind: "vertex", id: sel.id, addr: v, to: p } });
    const e = nearestEdge(sel, p, env.tol);
    if (e) return out({ ...st, hover: null }, [O.insertVertex(sel.id, e, e.point)]);
  }
  if (sel && (sel.type === "polygon" || sel.type === "polyline") && st.mode === "remove") {
    const v = nearestVertex(sel, p, env.tol);
    if (v) return out(st, [O.removeVertex(sel.id, v)]);
    return out(st);
  }
  if (st.forceNew) return null;
  // The box tool draws: a drag that starts inside a box is a new box (a click still selects it,
  // see up()); moving is the select tool's job. The selected box's handles still resize it.
  if (st.tool === "bbox") return null;
  const hit = topHit(env.objects, p, env.tol, env.masks);
  if (!hit) return null;
  const allowMove = st.tool === "select" || hit.type === st.tool;
  if (!allowMove && st.tool !== "select") return null;
  return out({ ...st, selected: hit.id, draft: { kind: "move", id: hit.id, from: p, to: p } }, [], [{ type: "selected", id: hit.id }]);
}

export function down(st, env, p, { button = 0, shift = false } = {}) {
  const sel = selectedOf(st, env);
  switch (st.tool) {
    case "ruler": return out({ ...st, draft: { kind: "ruler", a: p, b: p } });
    case "select": return grab(st, env, p) || out({ ...st, selected: null, draft: null }, [], [{ type: "selected", id: null }]);
    case "bbox": return grab(st, env, p) || out({ ...st, selected: null, draft: { kind: "bbox", a: p, b: p } });
    case "point": return out(st, [O.create(O.objectOf("point", O.pointGeometry(p), env.label))], [{ type: "created" }]);
    case "keypoint": {
      if (!sel || !(sel.type === "bbox" || sel.type === "polygon")) return out(st, [], [{ type: "say", text: "Select a box or polygon first, then click to add keypoints." }]);
      const name = env.nextKeypoint || `kp${(sel.keypoints || []).length + 1}`;
      return out(st, [O.setKeypoint(sel.id, name, p)]);
    }
    case "polygon": case "polyline": {
      if (st.draft?.kind === "ring") {
        const first = st.draft.points[0];
        if (st.tool === "polygon" && st.draft.points.length >= 3 && Math.hypot(first[0] - p[0], first[1] - p[1]) <= env.tol) return finish(st, env);
        return out({ ...st, draft: { ...st.draft, points: [...st.draft.points, p] } });
      }
      if (st.mode === "edit" || st.mode === "remove") return grab(st, env, p) || out(st);
      if (st.mode === "group" || st.mode === "hole") {
        if (!sel || sel.type !== "polygon") return out({ ...st, mode: "draw" }, [], [{ type: "say", text: "Select a polygon first." }]);
        const part = st.mode === "hole" ? Math.max(0, sel.geometry.parts.findIndex((pt) => pointInPart(pt, p))) : null;
        return out({ ...st, draft: { kind: "ring", points: [p], target: { type: st.mode, id: sel.id, part } } });
      }
      if (!st.forceNew) {
        const hit = topHit(env.objects, p, env.tol, env.masks);
        if (hit && hit.type === st.tool) return out({ ...st, selected: hit.id }, [], [{ type: "selected", id: hit.id }]);
      }
      return out({ ...st, selected: null, draft: { kind: "ring", points: [p], target: { type: "new" } } });
    }
    case "brush": {
      if (st.mode === "fill") {
        if (!sel || sel.type !== "bitmap") return out(st, [], [{ type: "say", text: "Select a bitmap to fill." }]);
        return out(st, [O.fill(sel.id, p)]);
      }
      const erase = st.mode === "erase" || button === 2;
      return out({ ...st, draft: { kind: "stroke", points: [p], erase } });
    }
    case "smart": {
      if (!st.smart?.rect) return out({ ...st, draft: { kind: "smart-rect", a: p, b: p } });
      const mode = st.mode === "erase" ? "erase" : button === 2 || shift || st.mode === "background" ? "bg" : "fg";
      return out({ ...st, draft: { kind: "stroke", points: [p], smart: mode } });
    }
    default: return out(st);
  }
}

function pointInPart(part, p) {
  let inside = false;
  const ring = part.exterior;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i], [xj, yj] = ring[j];
    if ((yi > p[1]) !== (yj > p[1]) && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

export function move(st, env, p) {
  const d = st.draft;
  if (!d) {
    const sel = selectedOf(st, env);
    if (sel && st.mode === "edit" && (sel.type === "polygon" || sel.type === "polyline") && !nearestVertex(sel, p, env.tol)) {
      const e = nearestEdge(sel, p, env.tol);
      return out({ ...st, hover: e ? { kind: "insert", id: sel.id, addr: e, point: e.point } : null });
    }
    return st.hover ? out({ ...st, hover: null }) : out(st);
  }
  switch (d.kind) {
    case "ruler": case "bbox": case "smart-rect": return out({ ...st, draft: { ...d, b: p } });
    case "move": case "vertex": return out({ ...st, draft: { ...d, to: p } });
    case "resize": return out({ ...st, draft: { ...d, box: resizeBox(byId(env, d.id)?.geometry || d.box, d.handle, p, env.aspect) } });
    case "stroke": {
      const last = d.points[d.points.length - 1];
      if (Math.hypot(last[0] - p[0], last[1] - p[1]) < Math.max(0.5, st.brushRadius / 4)) return out(st);
      return out({ ...st, draft: { ...d, points: [...d.points, p] } });
    }
    case "ring": return out({ ...st, hover: { kind: "next", point: p } });
    default: return out(st);
  }
}

export function up(st, env, p) {
  const d = st.draft;
  if (!d || d.kind === "ring") return out(st);  // rings grow click by click until finished
  const done = { ...st, draft: null };
  switch (d.kind) {
    case "ruler": return out({ ...st, draft: { ...d, b: p, done: true } });
    case "bbox": {
      const g = O.bboxFrom(d.a, p, env.aspect);
      if (g.w < 2 || g.h < 2) {
        // A click, not a drag: select what is under it (nothing there: clear the selection).
        const hit = st.forceNew ? null : topHit(env.objects, d.a, env.tol, env.masks);
        return out({ ...done, selected: hit ? hit.id : null }, [], [{ type: "selected", id: hit ? hit.id : null }]);
      }
      const obj = O.objectOf("bbox", g, env.label);
      return out({ ...done, selected: obj.id, forceNew: false }, [O.create(obj)], [{ type: "created", id: obj.id }]);
    }
    case "move": {
      const dx = d.to[0] - d.from[0], dy = d.to[1] - d.from[1];
      if (Math.hypot(dx, dy) < env.tol / 3) return out(done);
      return out(done, [O.translate(d.id, dx, dy)]);
    }
    case "resize": return out(done, [O.moveBox(d.id, d.box)]);
    case "vertex": return out(done, [O.moveVertex(d.id, d.addr, d.to)]);
    case "smart-rect": {
      const g = O.bboxFrom(d.a, p);
      if (g.w < 2 || g.h < 2) return out(done);
      return out({ ...done, smart: { rect: [g.x, g.y, g.w, g.h], fg: [], bg: [], rle: null } });
    }
    case "stroke": {
      if (d.smart) {
        const sm = { ...st.smart };
        if (d.smart === "erase") return out({ ...done, smart: sm }, [], [{ type: "smart-erase", points: d.points, radius: st.brushRadius }]);
        sm[d.smart] = [...sm[d.smart], d.points];
        return out({ ...done, smart: sm }, [], [{ type: "smart-run" }]);
      }
      const sel = selectedOf(st, env);
      if (sel && sel.type === "bitmap" && !st.forceNew) return out(done, [O.brush(sel.id, d.points, st.brushRadius, d.erase ? "erase" : "draw")]);
      if (d.erase) return out(done, [], [{ type: "say", text: "Select a bitmap to erase from." }]);
      const [w, h] = env.size;
      const { object, op } = O.newBitmap(env.label, h, w, d.points, st.brushRadius);
      return out({ ...done, selected: object.id, forceNew: false }, [op], [{ type: "created", id: object.id }]);
    }
    default: return out(done);
  }
}

/** Finish the current polygon / polyline ring (Enter, N, or a click on the first vertex). */
export function finish(st, env) {
  const d = st.draft;
  if (!d || d.kind !== "ring") return out({ ...st, forceNew: st.tool === "brush" ? true : st.forceNew, selected: st.tool === "brush" ? null : st.selected });
  const pts = d.points;
  const min = st.tool === "polyline" ? 2 : 3;
  const base = { ...st, draft: null, hover: null, mode: "draw" };
  if (pts.length < min) return out(base, [], [{ type: "say", text: `A ${st.tool} needs at least ${min} points.` }]);
  if (d.target.type === "group") return out(base, [O.addPart(d.target.id, pts)]);
  if (d.target.type === "hole") return out(base, [O.addHole(d.target.id, d.target.part, pts)]);
  const obj = st.tool === "polyline" ? O.objectOf("polyline", O.polylineGeometry(pts), env.label) : O.objectOf("polygon", O.polygonGeometry(pts), env.label);
  return out({ ...base, selected: obj.id, forceNew: false }, [O.create(obj)], [{ type: "created", id: obj.id }]);
}

/** Keyboard commands for the drawing state (the view handles the others). */
export function command(st, env, cmd) {
  const sel = selectedOf(st, env);
  switch (cmd) {
    case "finish": return finish(st, env);
    case "new": {
      const f = finish(st, env);
      return out({ ...f.st, selected: null, forceNew: true, mode: "draw" }, f.ops, f.effects);
    }
    case "cancel":
      if (st.draft) return out({ ...st, draft: null, hover: null });
      if (st.smart) return out({ ...st, smart: null });
      return out({ ...st, selected: null, mode: "draw", forceNew: false }, [], [{ type: "selected", id: null }]);
    case "edit": return out({ ...st, forceNew: false, mode: st.mode === "edit" ? "draw" : "edit" });
    case "remove": return out({ ...st, forceNew: false, mode: st.tool === "brush" || st.tool === "smart" ? (st.mode === "erase" ? "draw" : "erase") : st.mode === "remove" ? "draw" : "remove" });
    case "group": {
      if (st.tool === "brush") return out({ ...st, mode: st.mode === "fill" ? "draw" : "fill" });
      if (st.tool === "smart") return out({ ...st, mode: st.mode === "background" ? "draw" : "background" });
      if (!sel || sel.type !== "polygon") return out(st, [], [{ type: "say", text: "Select a polygon to add a part to it." }]);
      return out({ ...st, tool: "polygon", mode: "group", draft: null });
    }
    case "hole":
      if (!sel || sel.type !== "polygon") return out(st, [], [{ type: "say", text: "Select a polygon to cut a hole in it." }]);
      return out({ ...st, tool: "polygon", mode: "hole", draft: null });
    case "delete": return sel ? out({ ...st, selected: null }, [O.remove(sel.id)], [{ type: "selected", id: null }]) : out(st);
    case "brush-smaller": return out({ ...st, brushRadius: Math.max(1, Math.round(st.brushRadius / 1.25)) });
    case "brush-bigger": return out({ ...st, brushRadius: Math.min(200, Math.round(st.brushRadius * 1.25) + 1) });
    default: return out(st);
  }
}
