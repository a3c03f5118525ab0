// Zoom / pan / fit math. A viewport maps image pixels to screen pixels: screen = image * scale + (x, y).

export const MIN_SCALE = 0.02;
export const MAX_SCALE = 64;

export function fit(imageW, imageH, viewW, viewH, margin = 16) {
  const scale = Math.max(MIN_SCALE, Math.min((viewW - 2 * margin) / imageW, (viewH - 2 * margin) / imageH, MAX_SCALE));
  return { scale, x: (viewW - imageW * scale) / 2, y: (viewH - imageH * scale) / 2 };
}

export function toImage(vp, sx, sy) { return [(sx - vp.x) / vp.scale, (sy - vp.y) / vp.scale]; }

export function toScreen(vp, ix, iy) { return [ix * vp.scale + vp.x, iy * vp.scale + vp.y]; }

/** Zoom by `factor` keeping the image point under (sx, sy) fixed. */
export function zoomAt(vp, factor, sx, sy) {
  const scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, vp.scale * factor));
  const k = scale / vp.scale;
  return { scale, x: sx - (sx - vp.x) * k, y: sy - (sy - vp.y) * k };
}

export function pan(vp, dx, dy) { return { ...vp, x: vp.x + dx, y: vp.y + dy }; }

/** The wheel's zoom factor: smooth, and the same for mice and touchpads. */
export function wheelFactor(deltaY, deltaMode = 0) {
  const px = deltaMode === 1 ? deltaY * 16 : deltaMode === 2 ? deltaY * 400 : deltaY;
  return Math.exp(-Math.max(-300, Math.min(300, px)) * 0.0015);
}

/** Keep an image point inside the image when drawing outside is not allowed. */
export function clampPoint([x, y], w, h, allowOutside) {
  if (allowOutside) return [x, y];
  return [Math.min(w, Math.max(0, x)), Math.min(h, Math.max(0, y))];
}

export function distance([ax, ay], [bx, by]) { return Math.hypot(ax - bx, ay - by); }
