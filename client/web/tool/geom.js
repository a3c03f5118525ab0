// Hit testing on label objects, in image coordinates. Pure.

export function segmentProjection([px, py], [ax, ay], [bx, by]) {
  const dx = bx - ax, dy = by - ay;
  const len2 = dx * dx + dy * dy;
  const t = len2 ? Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / len2)) : 0;
  const q = [ax + t * dx, ay + t * dy];
  return { point: q, t, dist: Math.hypot(px - q[0], py - q[1]) };
}

export function pointInRing([x, y], ring) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i], [xj, yj] = ring[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Every ring of a polygon or polyline with its address {part, hole}. */
export function rings(obj) {
  if (obj.type === "polyline") return [{ part: 0, hole: null, ring: obj.geometry.points, closed: false }];
  if (obj.type !== "polygon") return [];
  const out = [];
  obj.geometry.parts.forEach((p, i) => {
    out.push({ part: i, hole: null, ring: p.exterior, closed: true });
    p.holes.forEach((hl, j) => out.push({ part: i, hole: j, ring: hl, closed: true }));
  });
  return out;
}

export function nearestVertex(obj, p, tol) {
  let best = null;
  for (const r of rings(obj)) {
    r.ring.forEach((v, index) => {
      const d = Math.hypot(v[0] - p[0], v[1] - p[1]);
      if (d <= tol && (!best || d < best.dist)) best = { part: r.part, hole: r.hole, index, dist: d, point: v };
    });
  }
  return best;
}

/** Where a vertex would be inserted on the nearest edge: {part, hole, index, point}. */
export function nearestEdge(obj, p, tol) {
  let best = null;
  for (const r of rings(obj)) {
    const n = r.ring.length;
    const last = r.closed ? n : n - 1;
    for (let i = 0; i < last; i++) {
      const pr = segmentProjection(p, r.ring[i], r.ring[(i + 1) % n]);
      if (pr.dist <= tol && (!best || pr.dist < best.dist)) best = { part: r.part, hole: r.hole, index: i + 1, point: pr.point, dist: pr.dist };
    }
  }
  return best;
}

/** Which edges/corner of a box the point grabs: {left, right, top, bottom} or null. */
export function boxHandle(g, [x, y], tol) {
  const inY = y >= g.y - tol && y <= g.y + g.h + tol, inX = x >= g.x - tol && x <= g.x + g.w + tol;
  const h = {
    left: inY && Math.abs(x - g.x) <= tol, right: inY && Math.abs(x - (g.x + g.w)) <= tol,
    top: inX && Math.abs(y - g.y) <= tol, bottom: inX && Math.abs(y - (g.y + g.h)) <= tol,
  };
  return h.left || h.right || h.top || h.bottom ? h : null;
}

export function resizeBox(g, handle, [x, y], aspect = null) {
  let x0 = g.x, y0 = g.y, x1 = g.x + g.w, y1 = g.y + g.h;
  if (handle.left) x0 = x; if (handle.right) x1 = x;
  if (handle.top) y0 = y; if (handle.bottom) y1 = y;
  let b = { x: Math.min(x0, x1), y: Math.min(y0, y1), w: Math.abs(x1 - x0), h: Math.abs(y1 - y0) };
  if (aspect) {
    if (handle.left || handle.right) b = { ...b, h: b.w / aspect }; else b = { ...b, w: b.h * aspect };
  }
  return b;
}

export function hitObject(obj, p, tol, masks) {
  const g = obj.geometry;
  switch (obj.type) {
    case "bbox": return p[0] >= g.x - tol && p[0] <= g.x + g.w + tol && p[1] >= g.y - tol && p[1] <= g.y + g.h + tol;
    case "point": return Math.hypot(p[0] - g.x, p[1] - g.y) <= tol * 1.5;
    case "polyline": return !!nearestEdge(obj, p, tol);
    case "polygon": return g.parts.some((part) => pointInRing(p, part.exterior) && !part.holes.some((hl) => pointInRing(p, hl))) || !!nearestEdge(obj, p, tol);
    case "bitmap": {
      const m = masks?.(obj);
      if (!m) return false;
      const [h, w] = g.rle.size, x = Math.floor(p[0]), y = Math.floor(p[1]);
      return x >= 0 && y >= 0 && x < w && y < h && m[y * w + x] === 1;
    }
    default: return false;
  }
}

/** The topmost object under p (objects given in drawing order). */
export function topHit(objects, p, tol, masks) {
  for (let i = objects.length - 1; i >= 0; i--) if (hitObject(objects[i], p, tol, masks)) return objects[i];
  return null;
}

export function bounds(obj) {
  const g = obj.geometry;
  if (obj.type === "bbox") return [g.x, g.y, g.x + g.w, g.y + g.h];
  if (obj.type === "point") return [g.x, g.y, g.x, g.y];
  const pts = rings(obj).flatMap((r) => r.ring);
  if (!pts.length) return null;
  const xs = pts.map((q) => q[0]), ys = pts.map((q) => q[1]);
  return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
}
