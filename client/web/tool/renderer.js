// The tool's renderer: a frame is the image, one cached layer of the objects that are not selected
// (an offscreen canvas drawn from the spatial index: only what can be seen, boxes batched by
// colour), the selected object and the overlays. 10,000 objects stay fluid because a layer with
// many objects is never redrawn while the view moves: zooming and panning show a cached layer
// scaled (the one holding every object when the view leaves the close-up one), and the stage asks
// for a sharp redraw once the view rests (`settle`). Only a layer of few objects (zoomed in) is
// redrawn on the way, which costs a few milliseconds.
import { NAME_LIMIT, drawBackground, drawMany, drawNames, drawOne, drawOverlays } from "./canvas.js";
import { buildIndex, query } from "./spatial.js";

const MARGIN = 0.25;   // a close-up layer reaches this fraction of the view past each side
const SETTLE_MS = 150; // the view rests this long after its last change: then the layer is redrawn sharp
const CHEAP = 1000;    // a layer of at most this many objects is redrawn while the view moves

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
 * A renderer with a cache: `draw(ctx, scene)` returns how many objects it drew, how many label
 * names it wrote and whether what it showed is stale (a layer drawn at another zoom, or the
 * every-object layer standing in for a close-up): call it again with `scene.settle = true` once
 * the view rests. `stats` counts the layer redraws (for tests).
 */
export function createRenderer() {
  let objects = null, index = null;
  // full: the last layer of every object (it fits in twice the view); part: the last close-up
  // layer (the view and a margin). Each is kept while its objects, selection and colours are.
  let full = null, part = null;
  const stats = { renders: 0, full: 0, part: 0, last: 0 };

  function view(s) {
    const vp = s.vp, pad = 4 / vp.scale;  // strokes and handles reach past an object's box
    return [-vp.x / vp.scale - pad, -vp.y / vp.scale - pad, (s.width - vp.x) / vp.scale + pad, (s.height - vp.y) / vp.scale + pad];
  }

  /** The layer to draw at this view: every object when they fit in twice the view, else the view
   *  and a margin round it; with the objects it would hold. `overview`: every object, at this
   *  zoom or less (so that they fit in twice the view). */
  function plan(s, overview = false) {
    const vp = s.vp, v = view(s), mw = (v[2] - v[0]) * MARGIN, mh = (v[3] - v[1]) * MARGIN;
    const pad = (s.names ? 18 : 4) / vp.scale, e = index.extent;  // room for the name tags above
    const all = e && [e[0] - pad, e[1] - pad, e[2] + pad, e[3] + pad];
    const most = all ? Math.min(2 * s.width / (all[2] - all[0]), 2 * s.height / (all[3] - all[1])) : Infinity;
    const fits = overview || vp.scale <= most;
    const scale = fits ? Math.min(vp.scale, most) : vp.scale;
    const area = all && (fits ? all : intersect([v[0] - mw, v[1] - mh, v[2] + mw, v[3] + mh], all));
    const shown = [];
    if (area) {
      for (const i of query(index, ...area)) {
        const o = objects[i];
        if (o.id !== s.selectedId && o.type !== "rpy" && o.type !== "bitmap") shown.push(o);
      }
    }
    return { fits, scale, area, shown };
  }

  function render(s, { fits, scale, area, shown }) {
    const old = fits ? full : part;
    old?.bitmap?.close();
    const layer = { objects, selectedId: s.selectedId, colors: s.colors, names: !!s.names, scale, area, canvas: old?.canvas || null, bitmap: null, drawn: 0, named: -1 };
    if (fits) full = layer; else part = layer;
    stats.renders++; stats[fits ? "full" : "part"]++; stats.last = shown.length;
    if (!area) return layer;
    const w = Math.max(1, Math.ceil((area[2] - area[0]) * scale * s.dpr)), h = Math.max(1, Math.ceil((area[3] - area[1]) * scale * s.dpr));
    const c = layer.canvas || (layer.canvas = new OffscreenCanvas(w, h));
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    const lc = c.getContext("2d");
    lc.setTransform(s.dpr, 0, 0, s.dpr, 0, 0);
    lc.clearRect(0, 0, w, h);
    const lvp = { scale, x: -area[0] * scale, y: -area[1] * scale };
    drawMany(lc, s, lvp, shown);
    layer.drawn = shown.length;
    // Names only when few objects are in view (a zoom in settles into a redraw with them): the
    // layer holds at most ~4 views' worth, so this stays a few thousand short texts at worst.
    if (s.names && shown.length <= 4 * NAME_LIMIT && query(index, ...view(s)).length <= NAME_LIMIT) layer.named = drawNames(lc, lvp, shown);
    // Shown as an ImageBitmap: drawing an OffscreenCanvas into the frame snapshots (copies) its
    // whole bitmap every frame in software rendering; a transferred bitmap is drawn as it is.
    layer.bitmap = c.transferToImageBitmap();
    return layer;
  }

  const fresh = (l, s) => !!l && l.objects === objects && l.colors === s.colors && l.selectedId === s.selectedId && l.names === !!s.names;

  /** The layer to show at this view, and whether it is stale (to redraw when the view rests). */
  function pick(s) {
    const vp = s.vp, e = index.extent, needed = e && intersect(view(s), e);
    const sharp = (l) => l.scale === vp.scale;
    if (fresh(part, s) && (!needed || (part.area && contains(part.area, needed))) && (sharp(part) || !s.settle)) return [part, !sharp(part)];
    if (fresh(full, s) && sharp(full)) return [full, false];  // it holds every object: it covers any view
    const p = plan(s);
    if (s.settle || p.shown.length <= CHEAP) return [render(s, p), false];
    // Many objects and the view moves: every object, shown scaled till it rests.
    if (!fresh(full, s)) render(s, plan(s, true));
    return [full, !sharp(full)];
  }

  function draw(ctx, s) {
    const vp = s.vp;
    ctx.save();
    drawBackground(ctx, s);
    if (objects !== s.objects) {
      // An edit of the selected object only (a drag) keeps the layers: it is not in them.
      const keep = sameExcept(objects, s.objects, s.selectedId);
      if (!sameExcept(objects, s.objects, null)) index = buildIndex(s.objects);
      for (const l of [full, part]) if (l && l.objects === objects) l.objects = keep ? s.objects : null;
      objects = s.objects;
    }
    // Bitmaps are image-sized pictures of their own: drawn each frame, under the layer.
    for (const o of objects) if (o.type === "bitmap" && o.id !== s.selectedId) drawOne(ctx, s, vp, o);
    const [layer, stale] = pick(s);
    if (layer.bitmap) {
      const a = layer.area;
      ctx.drawImage(layer.bitmap, a[0] * vp.scale + vp.x, a[1] * vp.scale + vp.y, (a[2] - a[0]) * vp.scale, (a[3] - a[1]) * vp.scale);
    }
    const sel = s.selectedId && objects.find((o) => o.id === s.selectedId);
    if (sel && sel.type !== "rpy") drawOne(ctx, s, vp, sel);
    const named = layer.named >= 0 && sel && sel.type !== "bitmap" ? layer.named + drawNames(ctx, vp, [sel]) : layer.named;
    drawOverlays(ctx, s);
    ctx.restore();
    // names: how many label names are written (-1: none, off or too many objects in view).
    return { drawn: layer.drawn + (sel ? 1 : 0), stale, names: named };
  }

  return { draw, settleMs: SETTLE_MS, stats };
}
