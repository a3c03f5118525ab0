// Masks in the tool: bitmap objects decoded once per RLE and drawn once per color, and smart
// selection (GrabCut on the server, erasing here). Methods of toolsession.js's session `s`, which
// owns the state they use (s.masks, cleared and s.smartCanvas reset when another image shows).
import { decodeMask, encodeMask, paintMask } from "../tool/rle.js";
import { maskCanvas } from "../tool/canvas.js";

const SMART_COLOR = "#00e676";

export function maskMethods(s, { api, say, onChange }) {
  const mask = (o) => {
    const key = o.geometry.rle.counts;
    let e = s.masks.get(o.id);
    if (!e || e.key !== key) { e = { key, mask: decodeMask(o.geometry.rle), canvas: null, color: null }; s.masks.set(o.id, e); }
    return e.mask;
  };
  const bitmapCanvas = (o, colors) => {
    const m = mask(o), e = s.masks.get(o.id), color = colors[o.label] || "#ffcc00";
    if (!e.canvas || e.color !== color) { const [hh, ww] = o.geometry.rle.size; e.canvas = maskCanvas(m, hh, ww, color); e.color = color; }
    return e.canvas;
  };
  const smartRun = async (smart, radius) => {
    if (!smart || !s.image) return null;
    s.smartBusy += 1;
    onChange();
    try {
      const res = await api.post(`/api/v1/images/${s.image.id}/smart-select`, {
        rect: smart.rect.map(Math.round), foreground: smart.fg, background: smart.bg, brush_radius: Math.max(1, Math.round(radius)), previous: smart.rle || null });
      s.smartCanvas = maskCanvas(decodeMask(res.rle), res.rle.size[0], res.rle.size[1], SMART_COLOR);
      return res.rle;
    } catch (err) { say(err.message); return smart.rle; } finally { s.smartBusy -= 1; }
  };
  const smartErase = (rle, points, radius) => {
    if (!rle) return rle;
    const [hh, ww] = rle.size;
    const m = paintMask(decodeMask(rle), hh, ww, points, radius, 0);
    s.smartCanvas = maskCanvas(m, hh, ww, SMART_COLOR);
    return encodeMask(m, hh, ww);
  };
  return { mask, bitmapCanvas, smartRun, smartErase };
}
