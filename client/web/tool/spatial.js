// A uniform grid over object bounding boxes: which objects can show in a rectangle of the image.
// Pure (no DOM): built once per object list, queried every frame by the canvas.

const CELLS = 64;        // the grid is at most CELLS x CELLS over the objects' extent
const MAX_SPAN = 256;    // an object over more cells than this goes to the always-returned list

/** [x0, y0, x1, y1] of what an object draws (keypoints included), or null (rpy: nothing). */
export function bounds(obj) {
  const g = obj.geometry;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  const add = (x, y) => { if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y; };
  if (obj.type === "bbox") { add(g.x, g.y); add(g.x + g.w, g.y + g.h); }
  else if (obj.type === "polygon") { for (const p of g.parts) for (const [x, y] of p.exterior) add(x, y); }
  else if (obj.type === "polyline") { for (const [x, y] of g.points) add(x, y); }
  else if (obj.type === "point") add(g.x, g.y);
  else if (obj.type === "bitmap") { add(0, 0); add(g.rle.size[1], g.rle.size[0]); }
  else return null;
  for (const k of obj.keypoints || []) add(k.x, k.y);
  return [x0, y0, x1, y1];
}

/** The index of `objects` (their positions in the array are what queries return). */
export function buildIndex(objects) {
  const boxes = new Float64Array(objects.length * 4);
  const has = new Uint8Array(objects.length);
  let ex0 = Infinity, ey0 = Infinity, ex1 = -Infinity, ey1 = -Infinity;
  objects.forEach((o, i) => {
    const b = bounds(o);
    if (!b) return;
    has[i] = 1;
    boxes.set(b, i * 4);
    ex0 = Math.min(ex0, b[0]); ey0 = Math.min(ey0, b[1]); ex1 = Math.max(ex1, b[2]); ey1 = Math.max(ey1, b[3]);
  });
  const extent = ex0 <= ex1 ? [ex0, ey0, ex1, ey1] : null;
  const index = { n: objects.length, boxes, extent, cells: [], big: [], nx: 1, ny: 1, cw: 1, ch: 1, stamp: new Uint32Array(objects.length), query: 0 };
  if (!extent) return index;
  index.nx = index.ny = CELLS;
  index.cw = Math.max((ex1 - ex0) / CELLS, 1e-9);
  index.ch = Math.max((ey1 - ey0) / CELLS, 1e-9);
  const count = new Uint32Array(CELLS * CELLS);
  const span = (i) => cellRange(index, boxes[i * 4], boxes[i * 4 + 1], boxes[i * 4 + 2], boxes[i * 4 + 3]);
  // Two passes into one flat array per cell (counts, then fill): no per-cell growing arrays.
  const spans = [];
  for (let i = 0; i < objects.length; i++) {
    if (!has[i]) { spans.push(null); continue; }
    const r = span(i);
    if ((r[2] - r[0] + 1) * (r[3] - r[1] + 1) > MAX_SPAN) { index.big.push(i); spans.push(null); continue; }
    spans.push(r);
    for (let cy = r[1]; cy <= r[3]; cy++) for (let cx = r[0]; cx <= r[2]; cx++) count[cy * CELLS + cx]++;
  }
  index.cells = Array.from(count, (c) => new Uint32Array(c));
  const fill = new Uint32Array(CELLS * CELLS);
  spans.forEach((r, i) => {
    if (!r) return;
    for (let cy = r[1]; cy <= r[3]; cy++) for (let cx = r[0]; cx <= r[2]; cx++) { const c = cy * CELLS + cx; index.cells[c][fill[c]++] = i; }
  });
  return index;
}

function cellRange(index, x0, y0, x1, y1) {
  const [ex0, ey0] = index.extent;
  const clamp = (v, n) => Math.min(n - 1, Math.max(0, v));
  return [clamp(Math.floor((x0 - ex0) / index.cw), index.nx), clamp(Math.floor((y0 - ey0) / index.ch), index.ny),
    clamp(Math.floor((x1 - ex0) / index.cw), index.nx), clamp(Math.floor((y1 - ey0) / index.ch), index.ny)];
}

/** Positions (ascending: drawing order kept) of the objects whose box meets [x0, y0, x1, y1]. */
export function query(index, x0, y0, x1, y1) {
  const out = [];
  if (!index.extent) return out;
  const [ex0, ey0, ex1, ey1] = index.extent;
  // A new stamp per query marks what was seen without clearing an array.
  const q = ++index.query;
  const { boxes, stamp } = index;
  const take = (i) => {
    if (stamp[i] === q) return;
    stamp[i] = q;
    if (boxes[i * 4] <= x1 && boxes[i * 4 + 2] >= x0 && boxes[i * 4 + 1] <= y1 && boxes[i * 4 + 3] >= y0) out.push(i);
  };
  if (x1 >= ex0 && y1 >= ey0 && x0 <= ex1 && y0 <= ey1) {
    const r = cellRange(index, x0, y0, x1, y1);
    for (let cy = r[1]; cy <= r[3]; cy++) for (let cx = r[0]; cx <= r[2]; cx++) for (const i of index.cells[cy * index.nx + cx]) take(i);
  }
  for (const i of index.big) take(i);
  return out.sort((a, b) => a - b);
}
