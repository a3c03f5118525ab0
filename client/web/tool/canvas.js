// Drawing: the scene to 2D-context calls. The renderer (`createRenderer`) keeps 10,000 objects
// fluid: the objects that are not selected sit in an offscreen layer, drawn from a spatial index
// (only what can be seen) with one path per label colour, and redrawn only when they change, the
// view leaves the layer or the zoom settles (till then the layer is shown scaled).
import { rings } from "./geom.js";
import { bounds, buildIndex, query } from "./spatial.js";
import { toScreen } from "./viewport.js";

const FALLBACK = "#ffcc00";

export function colorOf(colors, label) { return (label && colors[label]) || FALLBACK; }

/** CSS filter string for the view adjustments (never saved). */
export function viewFilter({ brightness = 100, contrast = 100, saturation = 100, invert = false } = {}) {
  return `brightness(${brightness}%) contrast(${contrast}%) saturate(${saturation}%)${invert ? " invert(1)" : ""}`;
}

function path(ctx, vp, pts, close) {
  pts.forEach(([x, y], i) => {
    const [sx, sy] = toScreen(vp, x, y);
    if (i) ctx.lineTo(sx, sy); else ctx.moveTo(sx, sy);
  });
  if (close) ctx.closePath();
}

function handle(ctx, vp, [x, y], size = 4, fill = "#fff") {
  const [sx, sy] = toScreen(vp, x, y);
  ctx.fillStyle = fill;
  ctx.strokeStyle = "#000";
  ctx.lineWidth = 1;
  ctx.fillRect(sx - size, sy - size, size * 2, size * 2);
  ctx.strokeRect(sx - size, sy - size, size * 2, size * 2);
}

export function drawObject(ctx, vp, obj, color, { selected = false, bitmap = null, editing = false, dimmed = false } = {}) {
  const g = obj.geometry;
  ctx.save();
  ctx.globalAlpha = dimmed ? 0.5 : 1;
  ctx.strokeStyle = color;
  ctx.fillStyle = color + (selected ? "55" : "2e");
  ctx.lineWidth = selected ? 3 : 2;
  if (obj.occluded) ctx.setLineDash([6, 4]);
  if (obj.type === "bbox") {
    const [x, y] = toScreen(vp, g.x, g.y);
    ctx.fillRect(x, y, g.w * vp.scale, g.h * vp.scale);
    ctx.strokeRect(x, y, g.w * vp.scale, g.h * vp.scale);
    if (selected) for (const p of [[g.x, g.y], [g.x + g.w, g.y], [g.x, g.y + g.h], [g.x + g.w, g.y + g.h]]) handle(ctx, vp, p, 3);
  } else if (obj.type === "polygon") {
    ctx.beginPath();
    for (const r of rings(obj)) path(ctx, vp, r.ring, true);
    ctx.fill("evenodd");
    ctx.stroke();
  } else if (obj.type === "polyline") {
    ctx.beginPath();
    path(ctx, vp, g.points, false);
    ctx.stroke();
  } else if (obj.type === "point") {
    const [x, y] = toScreen(vp, g.x, g.y);
    ctx.beginPath();
    ctx.arc(x, y, selected ? 7 : 5, 0, Math.PI * 2);
    ctx.fillStyle = color;
    ctx.fill();
    ctx.strokeStyle = "#000";
    ctx.lineWidth = 1;
    ctx.stroke();
  } else if (obj.type === "bitmap" && bitmap) {
    const [x, y] = toScreen(vp, 0, 0);
    ctx.globalAlpha = (dimmed ? 0.5 : 1) * (selected ? 0.75 : 0.55);
    ctx.drawImage(bitmap, x, y, bitmap.width * vp.scale, bitmap.height * vp.scale);
  }
  ctx.setLineDash([]);
  if ((obj.type === "polygon" || obj.type === "polyline") && (selected || editing)) {
    for (const r of rings(obj)) for (const v of r.ring) handle(ctx, vp, v, editing ? 4 : 2.5);
  }
  for (const kp of obj.keypoints || []) {
    const [x, y] = toScreen(vp, kp.x, kp.y);
    ctx.beginPath();
    ctx.arc(x, y, 4, 0, Math.PI * 2);
    ctx.fillStyle = "#fff";
    ctx.fill();
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.stroke();
    if (selected) { ctx.fillStyle = "#fff"; ctx.font = "11px sans-serif"; ctx.fillText(kp.name, x + 6, y - 4); }
  }
  ctx.restore();
}

function drawDraft(ctx, vp, st, color) {
  const d = st.draft;
  ctx.save();
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.setLineDash([5, 4]);
  if (d && (d.kind === "bbox" || d.kind === "smart-rect")) {
    const [ax, ay] = toScreen(vp, ...d.a), [bx, by] = toScreen(vp, ...d.b);
    ctx.strokeRect(Math.min(ax, bx), Math.min(ay, by), Math.abs(bx - ax), Math.abs(by - ay));
  } else if (d && d.kind === "resize") {
    const b = d.box, [x, y] = toScreen(vp, b.x, b.y);
    ctx.strokeRect(x, y, b.w * vp.scale, b.h * vp.scale);
  } else if (d && d.kind === "ring") {
    ctx.beginPath();
    path(ctx, vp, st.hover?.kind === "next" ? [...d.points, st.hover.point] : d.points, false);
    ctx.stroke();
    d.points.forEach((p) => handle(ctx, vp, p, 3));
  } else if (d && d.kind === "stroke") {
    ctx.setLineDash([]);
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.lineWidth = Math.max(1, st.brushRadius * 2 * vp.scale);
    ctx.strokeStyle = d.erase || d.smart === "erase" ? "rgba(255,255,255,.6)" : d.smart === "bg" ? "rgba(255,60,60,.6)" : d.smart === "fg" ? "rgba(60,220,90,.6)" : color + "99";
    ctx.beginPath();
    path(ctx, vp, d.points.length > 1 ? d.points : [d.points[0], d.points[0]], false);
    ctx.stroke();
  } else if (d && d.kind === "ruler") {
    ctx.setLineDash([]);
    ctx.strokeStyle = "#fff";
    ctx.beginPath();
    path(ctx, vp, [d.a, d.b], false);
    ctx.stroke();
    const len = Math.hypot(d.b[0] - d.a[0], d.b[1] - d.a[1]);
    const [sx, sy] = toScreen(vp, ...d.b);
    ctx.fillStyle = "#000a";
    ctx.fillRect(sx + 8, sy - 18, 90, 18);
    ctx.fillStyle = "#fff";
    ctx.font = "12px sans-serif";
    ctx.fillText(`${len.toFixed(1)} px`, sx + 12, sy - 5);
  }
  if (st.hover?.kind === "insert") handle(ctx, vp, st.hover.point, 4, "#4caf50");
  ctx.restore();
}

function drawCursor(ctx, vp, c) {
  const [x, y] = toScreen(vp, c.x, c.y);
  ctx.save();
  ctx.fillStyle = c.color || "#e91e63";
  ctx.beginPath();
  ctx.moveTo(x, y); ctx.lineTo(x + 12, y + 4); ctx.lineTo(x + 4, y + 12); ctx.closePath();
  ctx.fill();
  ctx.font = "12px sans-serif";
  const w = ctx.measureText(c.name).width + 8;
  ctx.fillRect(x + 10, y + 12, w, 16);
  ctx.fillStyle = "#fff";
  ctx.fillText(c.name, x + 14, y + 24);
  ctx.restore();
}

function drawBackground(ctx, s) {
  const vp = s.vp;
  ctx.setTransform(s.dpr, 0, 0, s.dpr, 0, 0);
  ctx.clearRect(0, 0, s.width, s.height);
  if (s.image) {
    ctx.save();
    ctx.filter = s.filter || "none";
    ctx.imageSmoothingEnabled = !(s.noSmoothing && vp.scale > 1);
    ctx.drawImage(s.image, vp.x, vp.y, s.imgW * vp.scale, s.imgH * vp.scale);
    ctx.restore();
  }
  ctx.strokeStyle = "#0008";
  ctx.strokeRect(vp.x, vp.y, s.imgW * vp.scale, s.imgH * vp.scale);
  ctx.imageSmoothingEnabled = !(s.noSmoothing && vp.scale > 1);
}

function drawOne(ctx, s, vp, obj) {
  const selected = obj.id === s.selectedId;
  drawObject(ctx, vp, obj, colorOf(s.colors, obj.label), {
    selected, bitmap: obj.type === "bitmap" ? s.bitmapFor(obj) : null,
    editing: selected && (s.st.mode === "edit" || s.st.mode === "remove"),
  });
}

function drawOverlays(ctx, s) {
  const vp = s.vp;
  if (s.smartPreview) {
    const [x, y] = toScreen(vp, 0, 0);
    ctx.globalAlpha = 0.6;
    ctx.drawImage(s.smartPreview, x, y, s.imgW * vp.scale, s.imgH * vp.scale);
    ctx.globalAlpha = 1;
  }
  if (s.st.smart?.rect) {
    const [rx, ry, rw, rh] = s.st.smart.rect, [x, y] = toScreen(vp, rx, ry);
    ctx.setLineDash([4, 3]); ctx.strokeStyle = "#fff"; ctx.lineWidth = 1.5;
    ctx.strokeRect(x, y, rw * vp.scale, rh * vp.scale);
    ctx.setLineDash([]);
  }
  drawDraft(ctx, vp, s.st, colorOf(s.colors, s.label));
  if (s.pointer && (s.st.tool === "brush" || (s.st.tool === "smart" && s.st.smart?.rect))) {
    const [x, y] = toScreen(vp, ...s.pointer);
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 1;
    ctx.beginPath(); ctx.arc(x, y, s.st.brushRadius * vp.scale, 0, Math.PI * 2); ctx.stroke();
  }
  for (const c of s.cursors || []) drawCursor(ctx, vp, c);
}

// What the layer holds can be drawn in one path per colour: plain boxes and one-ring polygons.
function batchable(o) {
  if (o.occluded || (o.keypoints && o.keypoints.length)) return false;
  return o.type === "bbox" || (o.type === "polygon" && o.geometry.parts.length === 1 && !(o.geometry.parts[0].holes || []).length);
}

function addRing(path, vp, ring) {
  // Clockwise on screen whatever the ring's order, so one non-zero fill unions overlapping shapes.
  let area = 0;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) area += ring[j][0] * ring[i][1] - ring[i][0] * ring[j][1];
  const n = ring.length;
  for (let k = 0; k < n; k++) {
    const [x, y] = ring[area >= 0 ? k : n - 1 - k];
    const sx = x * vp.scale + vp.x, sy = y * vp.scale + vp.y;
    if (k) path.lineTo(sx, sy); else path.moveTo(sx, sy);
  }
  path.closePath();
}

/** Draw `objs` (in order) onto ctx at viewport vp: batched by colour where possible. */
function drawMany(ctx, s, vp, objs) {
  const paths = new Map(), single = [];
  for (const o of objs) {
    if (!batchable(o)) { single.push(o); continue; }
    const color = colorOf(s.colors, o.label);
    let path = paths.get(color);
    if (!path) paths.set(color, (path = new Path2D()));
    const g = o.geometry;
    if (o.type === "bbox") path.rect(g.x * vp.scale + vp.x, g.y * vp.scale + vp.y, g.w * vp.scale, g.h * vp.scale);
    else addRing(path, vp, g.parts[0].exterior);
  }
  ctx.lineWidth = 2;
  for (const [color, path] of paths) {
    ctx.fillStyle = color + "2e";
    ctx.fill(path);
    ctx.strokeStyle = color;
    ctx.stroke(path);
  }
  for (const o of single) drawOne(ctx, s, vp, o);
}

const NAME_LIMIT = 500;  // label names are written only when at most this many objects are in view
const NAME_FONT = "12px sans-serif";

/** Each object's label name at its top left corner (points: beside them), on a dark tag. */
function drawNames(ctx, vp, objs) {
  ctx.save();
  ctx.font = NAME_FONT;
  ctx.textBaseline = "bottom";
  const widths = new Map();  // few distinct names: measure each once
  let n = 0;
  for (const o of objs) {
    const b = o.label && bounds(o);
    if (!b) continue;
    let w = widths.get(o.label);
    if (w === undefined) widths.set(o.label, (w = ctx.measureText(o.label).width + 6));
    const point = o.type === "point";
    const x = b[0] * vp.scale + vp.x + (point ? 7 : 0), y = b[1] * vp.scale + vp.y - (point ? 5 : 1);
    ctx.fillStyle = "rgba(0,0,0,.62)";
    ctx.fillRect(x, y - 15, w, 15);
    ctx.fillStyle = "#fff";
    ctx.fillText(o.label, x + 3, y - 1);
    n++;
  }
  ctx.restore();
  return n;
}

const MARGIN = 0.25;   // the layer reaches this fraction of the view past each side
const SETTLE_MS = 150; // after the last zoom step, the layer is redrawn sharp at the new scale

function intersect(a, b) {
  const r = [Math.max(a[0], b[0]), Math.max(a[1], b[1]), Math.min(a[2], b[2]), Math.min(a[3], b[3])];
  return r[0] < r[2] && r[1] < r[3] ? r : null;
}
const contains = (a, b) => a[0] <= b[0] && a[1] <= b[1] && a[2] >= b[2] && a[3] >= b[3];

/** The same objects in the same places, whatever happened to the selected one. */
function sameExcept(a, b, id) {
  if (a === b) return true;
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !(a[i].id === id && b[i].id === id)) return false;
  return true;
}

/**
 * A renderer with a cache: `draw(ctx, scene)` returns what it drew and whether the layer is
 * stale (drawn at another zoom): call it again with `scene.settle = true` once the zoom rests.
 */
export function createRenderer() {
  let objects = null, index = null, layer = null;

  function view(s) {
    const vp = s.vp, pad = 4 / vp.scale;  // strokes and handles reach past an object's box
    return [-vp.x / vp.scale - pad, -vp.y / vp.scale - pad, (s.width - vp.x) / vp.scale + pad, (s.height - vp.y) / vp.scale + pad];
  }

  function renderLayer(s) {
    const vp = s.vp, v = view(s), mw = (v[2] - v[0]) * MARGIN, mh = (v[3] - v[1]) * MARGIN;
    const pad = (s.names ? 18 : 4) / vp.scale, e = index.extent;  // room for the name tags above
    const all = e && [e[0] - pad, e[1] - pad, e[2] + pad, e[3] + pad];
    // All the objects when they fit in twice the view: then panning, and zooming out (shown
    // scaled till it settles), never need a redraw; else the view and a margin round it.
    const fits = all && (all[2] - all[0]) * vp.scale <= 2 * s.width && (all[3] - all[1]) * vp.scale <= 2 * s.height;
    const area = all && (fits ? all : intersect([v[0] - mw, v[1] - mh, v[2] + mw, v[3] + mh], all));
    layer = { objects, selectedId: s.selectedId, colors: s.colors, names: !!s.names, scale: vp.scale, area, canvas: layer?.canvas || null, drawn: 0, named: -1 };
    if (!area) return;
    const w = Math.ceil((area[2] - area[0]) * vp.scale * s.dpr), h = Math.ceil((area[3] - area[1]) * vp.scale * s.dpr);
    const c = layer.canvas || (layer.canvas = new OffscreenCanvas(w, h));
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    const lc = c.getContext("2d");
    lc.setTransform(s.dpr, 0, 0, s.dpr, 0, 0);
    lc.clearRect(0, 0, w, h);
    const lvp = { scale: vp.scale, x: -area[0] * vp.scale, y: -area[1] * vp.scale };
    const shown = [];
    for (const i of query(index, ...area)) {
      const o = objects[i];
      if (o.id !== s.selectedId && o.type !== "rpy" && o.type !== "bitmap") shown.push(o);
    }
    drawMany(lc, s, lvp, shown);
    layer.drawn = shown.length;
    // Names only when few objects are in view (a zoom in settles into a redraw with them): the
    // layer holds at most ~4 views' worth, so this stays a few thousand short texts at worst.
    if (s.names && shown.length <= 4 * NAME_LIMIT && query(index, ...view(s)).length <= NAME_LIMIT) layer.named = drawNames(lc, lvp, shown);
  }

  function draw(ctx, s) {
    const vp = s.vp;
    ctx.save();
    drawBackground(ctx, s);
    if (!sameExcept(objects, s.objects, s.selectedId) || !layer || layer.selectedId !== s.selectedId) {
      if (!sameExcept(objects, s.objects, null)) index = buildIndex(s.objects);
      objects = s.objects;
      layer = layer && { ...layer, objects: null };  // keep the canvas, not the picture
    } else {
      objects = s.objects;
    }
    // Bitmaps are image-sized pictures of their own: drawn each frame, under the layer.
    for (const o of objects) if (o.type === "bitmap" && o.id !== s.selectedId) drawOne(ctx, s, vp, o);
    const e = index.extent, needed = e && intersect(view(s), [e[0], e[1], e[2], e[3]]);
    const fresh = layer && layer.objects === objects && layer.colors === s.colors && layer.selectedId === s.selectedId && layer.names === !!s.names;
    const covered = fresh && (!needed || (layer.area && contains(layer.area, needed)));
    if (!covered || (s.settle && layer.scale !== vp.scale)) renderLayer(s);
    if (layer.area) {
      const a = layer.area;
      ctx.drawImage(layer.canvas, a[0] * vp.scale + vp.x, a[1] * vp.scale + vp.y, (a[2] - a[0]) * vp.scale, (a[3] - a[1]) * vp.scale);
    }
    const sel = s.selectedId && objects.find((o) => o.id === s.selectedId);
    if (sel && sel.type !== "rpy") drawOne(ctx, s, vp, sel);
    const named = layer.named >= 0 && sel && sel.type !== "bitmap" ? layer.named + drawNames(ctx, vp, [sel]) : layer.named;
    drawOverlays(ctx, s);
    ctx.restore();
    // names: how many label names are written (-1: none, off or too many objects in view).
    return { drawn: layer.drawn + (sel ? 1 : 0), stale: layer.scale !== vp.scale, names: named };
  }

  return { draw, settleMs: SETTLE_MS };
}

/** An offscreen canvas of a bitmap mask in the label color (cache it by RLE counts). */
export function maskCanvas(mask, h, w, color) {
  const c = new OffscreenCanvas(w, h);
  const cx = c.getContext("2d");
  const img = cx.createImageData(w, h);
  const r = parseInt(color.slice(1, 3), 16), g = parseInt(color.slice(3, 5), 16), b = parseInt(color.slice(5, 7), 16);
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    img.data[i * 4] = r; img.data[i * 4 + 1] = g; img.data[i * 4 + 2] = b; img.data[i * 4 + 3] = 255;
  }
  cx.putImageData(img, 0, 0);
  return c;
}
