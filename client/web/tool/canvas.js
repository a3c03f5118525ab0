// Drawing: the scene to 2D-context calls. The renderer that caches the objects in layers (and
// keeps 10,000 of them fluid) is tool/renderer.js; it draws with the functions exported here.
import { rings } from "./geom.js";
import { bounds } from "./spatial.js";
import { toScreen } from "./viewport.js";

const FALLBACK = "#ffcc00";

export function colorOf(colors, label) { return (label && colors[label]) || FALLBACK; }

/** CSS filter string for the view adjustments (never saved); "none" when they change nothing. */
export function viewFilter({ brightness = 100, contrast = 100, saturation = 100, invert = false } = {}) {
  if (brightness === 100 && contrast === 100 && saturation === 100 && !invert) return "none";
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

/** The stroke's dash pattern: a model's object (not reviewed yet) short dashes, an occluded one long. */
export function lineDash(obj) {
  if (obj.source === "auto") return [4, 3];
  return obj.occluded ? [6, 4] : [];
}

export function drawObject(ctx, vp, obj, color, { selected = false, bitmap = null, editing = false, dimmed = false } = {}) {
  const g = obj.geometry;
  ctx.save();
  ctx.globalAlpha = dimmed ? 0.5 : 1;
  ctx.strokeStyle = color;
  ctx.fillStyle = color + (selected ? "55" : "2e");
  ctx.lineWidth = selected ? 3 : 2;
  const dash = lineDash(obj);
  if (dash.length) ctx.setLineDash(dash);
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

export function drawBackground(ctx, s) {
  const vp = s.vp;
  ctx.setTransform(s.dpr, 0, 0, s.dpr, 0, 0);
  ctx.clearRect(0, 0, s.width, s.height);
  if (s.image) {
    ctx.save();
    // Set only when it changes something: a filter costs a full-size offscreen pass per frame in
    // software rendering (2-4x the frame's raster time), even at 100%.
    if (s.filter && s.filter !== "none") ctx.filter = s.filter;
    ctx.imageSmoothingEnabled = !(s.noSmoothing && vp.scale > 1);
    ctx.drawImage(s.image, vp.x, vp.y, s.imgW * vp.scale, s.imgH * vp.scale);
    ctx.restore();
  }
  ctx.strokeStyle = "#0008";
  ctx.strokeRect(vp.x, vp.y, s.imgW * vp.scale, s.imgH * vp.scale);
  ctx.imageSmoothingEnabled = !(s.noSmoothing && vp.scale > 1);
}

export function drawOne(ctx, s, vp, obj) {
  const selected = obj.id === s.selectedId;
  drawObject(ctx, vp, obj, colorOf(s.colors, obj.label), {
    selected, bitmap: obj.type === "bitmap" ? s.bitmapFor(obj) : null,
    editing: selected && (s.st.mode === "edit" || s.st.mode === "remove"),
  });
}

export function drawOverlays(ctx, s) {
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
  if (o.occluded || o.source === "auto" || (o.keypoints && o.keypoints.length)) return false;  // dashed: drawn one by one
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

/** Draw `objs` onto ctx at viewport vp, grouped by colour where possible. Boxes are fillRect +
 * strokeRect calls (Skia's fast path for axis-aligned rectangles): one Path2D of thousands of
 * rectangles is scan-converted as one shape, 3-4x slower in software rendering. */
export function drawMany(ctx, s, vp, objs) {
  const groups = new Map(), single = [];
  for (const o of objs) {
    if (!batchable(o)) { single.push(o); continue; }
    const color = colorOf(s.colors, o.label);
    let g = groups.get(color);
    if (!g) groups.set(color, (g = { boxes: [], path: null }));
    if (o.type === "bbox") g.boxes.push(o.geometry);
    else addRing(g.path || (g.path = new Path2D()), vp, o.geometry.parts[0].exterior);
  }
  ctx.lineWidth = 2;
  const k = vp.scale, ox = vp.x, oy = vp.y;
  for (const [color, g] of groups) {
    ctx.fillStyle = color + "2e";
    ctx.strokeStyle = color;
    for (const b of g.boxes) {
      const x = b.x * k + ox, y = b.y * k + oy, w = b.w * k, h = b.h * k;
      ctx.fillRect(x, y, w, h);
      ctx.strokeRect(x, y, w, h);
    }
    if (g.path) { ctx.fill(g.path); ctx.stroke(g.path); }
  }
  for (const o of single) drawOne(ctx, s, vp, o);
}

export const NAME_LIMIT = 500;  // label names are written only when at most this many objects are in view
const NAME_FONT = "12px sans-serif";

/** Each object's label name at its top left corner (points: beside them), on a dark tag. */
export function drawNames(ctx, vp, objs) {
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
