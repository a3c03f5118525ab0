// The labeling tool's canvas: pointer input (in image coordinates), zoom, pan, fit, and redraw.
import { h } from "../dom.js";
import { createRenderer } from "../tool/renderer.js";
import { fit, pan, toImage, wheelFactor, zoomAt } from "../tool/viewport.js";

export function createStage({ onPointer, onCursor, scene }) {
  const canvas = h("canvas", { tabindex: "0", "aria-label": "Image canvas. Draw with the mouse; press ? for shortcuts.", id: "tool-canvas" });
  const banner = h("div", { class: "banner", hidden: true, role: "status" });
  const hud = h("div", { class: "hud", "aria-live": "off" });
  const el = h("div", { class: "stage" }, canvas, banner, hud);
  const stage = { el, canvas, vp: { scale: 1, x: 0, y: 0 }, size: [1, 1], pointer: null, fitted: false, autoFit: true };
  let panning = null, spaceDown = false, frame = 0, settleTimer = 0, settle = false, lastVp = null, hudText = "";
  const renderer = createRenderer();
  stage.renderer = renderer;

  /** The stage's size now. Read in the frame, not only when the ResizeObserver reports: a panel
   *  that fills in as the image opens (the workflow bar) would else make the first frame draw
   *  every object at a zoom that is refitted, and drawn again, one frame later. */
  function measure() {
    const r = el.getBoundingClientRect(), size = [Math.max(1, r.width), Math.max(1, r.height)];
    if (size[0] === stage.size[0] && size[1] === stage.size[1]) return;
    stage.size = size;
    const s = scene();
    if (s?.imgW && (!stage.fitted || stage.autoFit)) { stage.vp = fit(s.imgW, s.imgH, size[0], size[1]); stage.fitted = true; }
  }

  function redraw() {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      measure();
      const dpr = window.devicePixelRatio || 1;
      const [w, hgt] = stage.size;
      if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hgt * dpr)) {
        canvas.width = Math.round(w * dpr); canvas.height = Math.round(hgt * dpr);
      }
      const s = scene();
      if (!s) return;
      const t0 = performance.now();
      const out = renderer.draw(canvas.getContext("2d"), { ...s, vp: stage.vp, width: w, height: hgt, dpr, pointer: stage.pointer, settle });
      settle = false;
      // While the view moves, cached layers are shown scaled; once it rests they are drawn sharp.
      // Only a change of the view (zoom, pan) restarts the wait: pointer moves redraw too.
      if (!out.stale) { clearTimeout(settleTimer); settleTimer = 0; }
      else if (!settleTimer || stage.vp !== lastVp) {
        clearTimeout(settleTimer);
        settleTimer = setTimeout(() => { settleTimer = 0; settle = true; redraw(); }, renderer.settleMs);
      }
      lastVp = stage.vp;
      // For tests and the browser benchmark: how many objects the last frame drew, since when
      // (performance.now() of the first frame that drew this many), and its drawing time.
      if (canvas.dataset.drawn !== String(out.drawn)) { canvas.dataset.drawn = String(out.drawn); canvas.dataset.drawnAt = performance.now().toFixed(1); }
      canvas.dataset.names = String(out.names);
      canvas.dataset.layers = String(renderer.stats.renders);  // layer redraws so far
      canvas.dataset.drawMs = (performance.now() - t0).toFixed(2);
      const text = `${Math.round(stage.vp.scale * 100)}%` + (stage.pointer ? `  x ${stage.pointer[0].toFixed(0)}, y ${stage.pointer[1].toFixed(0)}` : "");
      if (text !== hudText) hud.textContent = hudText = text;
    });
  }

  stage.fit = () => {
    const s = scene();
    if (!s || !s.imgW) return;
    stage.vp = fit(s.imgW, s.imgH, stage.size[0], stage.size[1]);
    stage.fitted = true;
    stage.autoFit = true;  // stays fitted when the window or the panels change size, until a zoom or pan
    redraw();
  };
  stage.zoom = (factor) => { stage.autoFit = false; stage.vp = zoomAt(stage.vp, factor, stage.size[0] / 2, stage.size[1] / 2); redraw(); };
  stage.redraw = redraw;
  stage.say = (text) => { banner.hidden = !text; banner.textContent = text || ""; };
  stage.tol = () => 7 / stage.vp.scale;

  const ro = new ResizeObserver(() => {
    const r = el.getBoundingClientRect();
    stage.size = [Math.max(1, r.width), Math.max(1, r.height)];
    if (!stage.fitted || stage.autoFit) stage.fit(); else redraw();
  });
  ro.observe(el);
  stage.destroy = () => { ro.disconnect(); cancelAnimationFrame(frame); clearTimeout(settleTimer); window.removeEventListener("keyup", onKeyUp); window.removeEventListener("keydown", onSpace); };

  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return toImage(stage.vp, e.clientX - r.left, e.clientY - r.top);
  };
  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  canvas.addEventListener("pointerdown", (e) => {
    canvas.focus();
    canvas.setPointerCapture(e.pointerId);
    if (e.button === 1 || spaceDown) { panning = [e.clientX, e.clientY]; return; }
    onPointer("down", at(e), { button: e.button, shift: e.shiftKey });
  });
  canvas.addEventListener("pointermove", (e) => {
    if (panning) {
      stage.autoFit = false;
      stage.vp = pan(stage.vp, e.clientX - panning[0], e.clientY - panning[1]);
      panning = [e.clientX, e.clientY];
      redraw();
      return;
    }
    stage.pointer = at(e);
    onCursor?.(stage.pointer);
    onPointer("move", stage.pointer, { buttons: e.buttons });
    redraw();
  });
  canvas.addEventListener("pointerup", (e) => {
    if (panning) { panning = null; return; }
    onPointer("up", at(e), { button: e.button });
  });
  canvas.addEventListener("pointerleave", () => { stage.pointer = null; redraw(); });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = canvas.getBoundingClientRect();
    stage.autoFit = false;
    if (e.ctrlKey || !e.shiftKey) stage.vp = zoomAt(stage.vp, wheelFactor(e.deltaY, e.deltaMode), e.clientX - r.left, e.clientY - r.top);
    else stage.vp = pan(stage.vp, -e.deltaY, 0);
    redraw();
  }, { passive: false });
  const onSpace = (e) => { if (e.code === "Space" && e.target === canvas) { spaceDown = true; e.preventDefault(); } };
  const onKeyUp = (e) => { if (e.code === "Space") spaceDown = false; };
  window.addEventListener("keydown", onSpace);
  window.addEventListener("keyup", onKeyUp);
  return stage;
}
