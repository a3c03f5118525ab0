// The labeling tool: one image at a time, live over the hub. Edits go out as ops as they happen.
import { h, icon } from "../dom.js";
import { href } from "../router.js";
import { commandFor } from "../tool/keys.js";
import * as O from "../tool/ops.js";
import * as T from "../tool/tools.js";
import { viewFilter } from "../tool/canvas.js";
import { createObjectView } from "../tool/objview.js";
import { createStage } from "./toolstage.js";
import { createPanel } from "./toolpanel.js";
import { createImageSession, loadImage } from "./toolsession.js";
import { createUnsavedBox } from "./unsavedbox.js";
import { createSuggestions } from "./suggestions.js";
import { createWorkflowBar } from "./workflow.js";

const TOOL_BUTTONS = [
  ["select", "M4 3 L4 16 L8 12 L11 18 L13 17 L10 11 L15 11 Z", "Select and move (V)"],
  ["bbox", "M3 5 H17 V15 H3 Z", "Bounding box (B)"],
  ["polygon", "M10 2 L18 8 L15 17 L5 17 L2 8 Z", "Polygon (P)"],
  ["polyline", "M2 15 L7 6 L12 13 L18 4", "Polyline (L)"],
  ["point", "M10 7 A3 3 0 1 1 9.99 7 Z", "Point (O)"],
  ["brush", "M4 16 C6 16 7 14 8 12 L15 3 L17 5 L10 13 C8 14 7 17 4 16 Z", "Bitmap brush (M)"],
  ["smart", "M3 17 L12 8 M13 2 L13 5 M16 5 L18 3 M16 8 L19 8 M10 5 L8 3", "Smart selection (W)"],
  ["keypoint", "M10 2 V18 M2 10 H18 M10 6 A4 4 0 1 1 9.99 6", "Keypoints (K)"],
  ["ruler", "M2 14 L14 2 L18 6 L6 18 Z M6 10 L8 12 M9 7 L11 9 M12 4 L14 6", "Ruler (T)"],
];

// Every mode that has a key has a button too, per tool: [command, text, tooltip, active when].
const MODE_BUTTONS = {
  bbox: [["new", "New", "New object over others (N)", (st) => st.forceNew]],
  point: [["new", "New", "New object over others (N)", (st) => st.forceNew]],
  polygon: [["new", "New", "Finish / new object (N)", (st) => st.forceNew], ["edit", "Edit vertices", "Edit vertices (E)", (st) => st.mode === "edit"],
    ["remove", "Remove points", "Remove points (R)", (st) => st.mode === "remove"], ["group", "New part", "New polygon in the group (G)", (st) => st.mode === "group"],
    ["hole", "New hole", "New hole (H)", (st) => st.mode === "hole"]],
  polyline: [["new", "New", "Finish / new object (N)", (st) => st.forceNew], ["edit", "Edit vertices", "Edit vertices (E)", (st) => st.mode === "edit"],
    ["remove", "Remove points", "Remove points (R)", (st) => st.mode === "remove"]],
  brush: [["new", "New", "New bitmap (N)", (st) => st.forceNew], ["edit", "Draw", "Draw (E)", (st) => st.mode === "edit" || st.mode === "draw"],
    ["remove", "Erase", "Erase (R)", (st) => st.mode === "erase"], ["group", "Fill", "Fill (G)", (st) => st.mode === "fill"]],
  smart: [["remove", "Erase", "Erase strokes (R)", (st) => st.mode === "erase"], ["group", "Background", "Background strokes (G)", (st) => st.mode === "background"]],
};

export async function mount(root, ctx) {
  const pid = ctx.route.params.project;
  // The image in the address is fetched from the start, beside the project and the socket.
  const imageId = ctx.route.params.image;
  const preload = imageId ? { id: String(imageId), loading: loadImage(ctx.api, imageId) } : null;
  const [project, labelsRes, settingsRes] = await Promise.all([
    ctx.api.get(`/api/v1/projects/${pid}`), ctx.api.get(`/api/v1/projects/${pid}/labels`), ctx.api.get(`/api/v1/projects/${pid}/settings`),
  ]).catch((err) => { ctx.toast(err.message); return []; });
  if (!project) { root.append(h("p", { class: "empty" }, "The labeling tool cannot open this project. ", h("a", { href: "#/" }, "Back to projects"))); return {}; }
  ctx.setCrumbs([{ text: "Projects", href: "#/" }, { text: project.name, href: href("dashboard", { project: pid }) }, { text: "Labeling tool" }]);

  const settings = settingsRes.effective;
  const labels = labelsRes.labels;
  const colors = Object.fromEntries(labels.map((l) => [l.name, l.color]));
  const byShortcut = Object.fromEntries(labels.filter((l) => l.shortcut).map((l) => [String(l.shortcut), l.name]));
  const ui = { st: T.initialState(), picked: "", lastLabel: null, view: { brightness: 100, contrast: 100, saturation: 100, invert: false, noSmoothing: !!settings.disable_smoothing_when_zoomed, names: false }, keypointName: "" };
  const objView = createObjectView();  // hidden / locked objects: this viewer's own, per image

  const session = createImageSession({ ctx, pid, project, settings, query: ctx.route.query, onChange: render, say: (t) => ctx.toast(t, "info"), preload });
  const suggest = createSuggestions({ ctx, pid, colors, getImage: () => session.image, getLabels: () => session.imageLabels,
    readOnly: () => (session.readOnly ? session.readOnlyReason || "This image is read-only." : ""), canLabel: () => project.privileges.includes("label") });
  const stage = createStage({
    scene: () => session.image && {
      image: session.imageEl, imgW: session.image.width, imgH: session.image.height, objects: objView.visible(O.ordered(session.objects)), names: ui.view.names,
      colors, selectedId: ui.st.selected, st: ui.st, label: labelForNew(), filter: viewFilter(ui.view), noSmoothing: ui.view.noSmoothing,
      bitmapFor: (o) => session.bitmapCanvas(o, colors), cursors: session.cursorList(), smartPreview: session.smartCanvas,
    },
    onPointer,
    onCursor: (p) => session.sendCursor(p),
  });
  const panel = createPanel({
    pickLabel: (name) => {
      if (objView.isLocked(ui.st.selected)) { lockedHint(); return false; }  // the picker goes back to its label
      ui.picked = name; const s = selected(); if (s && s.label !== name) send(O.setLabel(s.id, name)); render(); },
    selectObject: (id) => { ui.justDrawn = null; ui.st = { ...ui.st, selected: id, forceNew: false, draft: null }; const o = selected(); if (o && !session.readOnly && !objView.isLocked(id) && !objView.isHidden(id)) bringToFront(o); render(); },
    toggleHidden: (id) => { objView.toggleHidden(id); render(); }, toggleLocked: (id) => { objView.toggleLocked(id); render(); },
    showAll: () => { objView.showAll(); render(); }, unlockAll: () => { objView.unlockAll(); render(); },
    save: () => doSave(), next: () => session.next(), prev: () => session.prev(),
    setAttributes: (id, attrs) => send(O.setAttributes(id, attrs)),
    setOccluded: (id, v) => send(O.setOccluded(id, v)),
    setRpy: (o, rpy) => send(o.type === "rpy" ? { kind: "replace_geometry", object_id: o.id, geometry: rpy } : O.setRpy(o.id, rpy)),
    removeKeypoint: (id, name) => send(O.removeKeypoint(id, name)),
    rasterize: (id) => send(O.rasterize(id)), vectorize: (id) => send(O.vectorize(id)), rasterizeAll: () => send(O.rasterizeAll()),
    toFront: (id) => bringToFront(session.objects.find((o) => o.id === id), true),
    deleteObject: (id) => { ui.st = { ...ui.st, selected: null }; send(O.remove(id)); },
    addRpy: () => send(O.create(O.objectOf("rpy", { roll: 0, pitch: 0, yaw: 0 }, labelForNew()))),
    classToggle: (name) => session.classToggle(name), classDefault: (name) => session.classDefault(name),
    confirmAuto: () => session.confirmAuto(),
    setView: (patch) => { Object.assign(ui.view, patch); stage.redraw(); },
    suggestions: suggest.el,
  });
  const toolbox = h("nav", { class: "toolbox", "aria-label": "Tools" }, TOOL_BUTTONS.map(([tool, path, title]) =>
    h("button", { type: "button", class: "toolbtn", dataset: { tool }, title, "aria-label": title, onclick: () => useTool(tool) }, icon(path))));
  const modeLine = h("div", { class: "toolbar tool-top", "aria-live": "polite" });
  const workflow = createWorkflowBar({ ctx, project, session, say: (t) => ctx.toast(t, "info"), onChange: render });
  const unsaved = createUnsavedBox({ reapply: () => session.reapply(), discard: () => session.discardUnsaved(), toast: (t) => ctx.toast(t, "info") });
  const layout = h("div", { class: "tool" }, toolbox, h("div", { class: "stage-col" }, workflow.el, modeLine, unsaved.el, stage.el), panel.el);
  root.append(layout);

  function selected() { return session.objects.find((o) => o.id === ui.st.selected) || null; }
  function labelForNew() {
    // An explicit pick (label picker, number key) wins; else the seed's "use previous label name":
    // the label of the previous new object, or the image's default classification label.
    if (ui.picked) return ui.picked;
    if (!settings.use_previous_label_name) return "";
    return ui.lastLabel ?? (session.imageLabels.find((l) => l.is_default)?.label || "");
  }
  function env() {
    const img = session.image;
    return { objects: objView.pickable(O.ordered(session.objects)), tol: stage.tol(), label: labelForNew(), aspect: settings.fixed_bbox_aspect_ratio || null,
             size: img ? [img.width, img.height] : [1, 1], masks: (o) => session.mask(o), nextKeypoint: ui.keypointName };
  }
  function send(op) {
    if (session.readOnly) { ctx.toast(session.readOnlyReason || "This image is read-only.", "info"); return; }
    if (objView.lockedBy(op)) { lockedHint(op.kind === "rasterize_all"); return; }
    session.send(op);
  }
  function lockedHint(all = false) {
    ctx.toast(all ? "Some objects are locked: “Unlock all” in the object list first." : "This object is locked: unlock it (the lock in its row of the object list) to edit it.", "info");
  }
  function bringToFront(o, always = false) {
    // Drawn last = on top: a click in the object list lifts an object that something else covers.
    if (!o || o.type === "rpy") return;
    const drawn = O.ordered(session.objects).filter((x) => x.type !== "rpy");
    if (drawn[drawn.length - 1] === o && !always) return;
    const top = Math.max(0, ...session.objects.map((x) => x.z || 0));
    send(O.setZ(o.id, top + 1));
  }
  function apply(result) {
    ui.st = result.st;
    // The rule for number keys: they relabel an object you selected (a click, the list); right
    // after you draw one, they choose the label for the next object and leave this one alone.
    for (const eff of result.effects) {
      if (eff.type === "created") ui.justDrawn = eff.id ?? null;
      if (eff.type === "selected") ui.justDrawn = null;
    }
    for (const op of result.ops) {
      if (op.kind === "create") ui.lastLabel = op.object.label;
      if (op.kind === "batch" && op.ops[0]?.kind === "create") ui.lastLabel = op.ops[0].object.label;
      send(op);
    }
    for (const eff of result.effects) {
      if (eff.type === "say") ctx.toast(eff.text, "info");
      if (eff.type === "smart-run") session.smartRun(ui.st.smart, ui.st.brushRadius).then((rle) => { if (ui.st.smart) ui.st = { ...ui.st, smart: { ...ui.st.smart, rle } }; render(); });
      if (eff.type === "smart-erase") { const rle = session.smartErase(ui.st.smart?.rle, eff.points, eff.radius); ui.st = { ...ui.st, smart: { ...ui.st.smart, rle } }; }
    }
    render();
  }
  function onPointer(kind, p, opts) {
    if (!session.image) return;
    ctx.hub.touch();
    if (session.readOnly && ui.st.tool !== "ruler") { if (kind === "down") ctx.toast(session.readOnlyReason, "info"); return; }
    if (kind === "move" && !ui.st.draft && !ui.st.hover && !(ui.st.mode === "edit")) return;
    apply(T[kind](ui.st, env(), p, opts));
  }
  function useTool(tool) { ui.st = T.setTool(ui.st, tool); render(); }

  async function doSave() {
    const n = session.pending();
    await session.flush();
    ctx.toast(n ? "Saved: the server has every edit." : "Everything was already saved.", "info");
  }

  function smartAccept() {
    const sm = ui.st.smart;
    if (!sm?.rle) { ctx.toast("Mark some foreground first.", "info"); return; }
    const obj = O.objectOf("bitmap", { rle: sm.rle }, labelForNew());
    send(O.create(obj));
    ui.st = { ...ui.st, smart: null, selected: obj.id };
    session.smartCanvas = null;
    render();
  }

  function onKey(e) {
    if (e.target.closest("input, textarea, select, dialog, [contenteditable]")) return;
    if (e.target.closest("#class-list") && e.key === "Enter") return;
    const cmd = commandFor(e);
    if (!cmd) return;
    ctx.hub.touch();
    e.preventDefault();
    if (cmd.startsWith("tool:")) return useTool(cmd.slice(5));
    if (cmd.startsWith("label:")) {
      const name = byShortcut[cmd.slice(6)];
      if (!name) { ctx.toast(`No label has the shortcut ${cmd.slice(6)} (set them in Settings).`, "info"); return; }
      ui.picked = name;
      const s = selected();
      if (s && s.id !== ui.justDrawn && s.label !== name) send(O.setLabel(s.id, name));
      return render();
    }
    switch (cmd) {
      case "undo": return session.undo();
      case "redo": return session.redo();
      case "save": return doSave();
      case "next": return session.next();
      case "prev": return session.prev();
      case "done": case "done-next":
        if (!workflow.has(cmd)) { ctx.toast(session.readOnly ? "Open the image (hold its lock) to mark it done." : "This image is done already.", "info"); return; }
        return workflow.act(cmd);
      case "fit": return stage.fit();
      case "zoom-in": return stage.zoom(1.25);
      case "zoom-out": return stage.zoom(0.8);
      case "invert": ui.view.invert = !ui.view.invert; return render();
      case "names": ui.view.names = !ui.view.names; return render();
      case "accept-suggestion": return suggest.acceptTop();
      case "confirm-auto": return session.confirmAuto();
      case "finish": if (ui.st.tool === "smart" && ui.st.smart) return smartAccept(); break;
      default: break;
    }
    runMode(cmd);
  }
  function runMode(cmd) {
    if (session.readOnly && ["finish", "new", "delete", "edit", "group", "hole", "remove"].includes(cmd)) return;
    if (["delete", "edit", "group", "hole", "remove"].includes(cmd) && objView.isLocked(ui.st.selected)) return lockedHint();
    apply(T.command(ui.st, env(), cmd));
  }
  function modeButtons() {
    if (session.readOnly) return "";
    return h("span", { class: "modes", role: "group", "aria-label": "Modes" }, (MODE_BUTTONS[ui.st.tool] || []).map(([cmd, text, title, on]) =>
      h("button", { type: "button", class: "mode-btn", dataset: { cmd }, title, "aria-pressed": String(!!on(ui.st)), onclick: () => runMode(cmd) }, text)));
  }
  document.addEventListener("keydown", onKey);
  // Closing or reloading the page with edits not yet on the server: ask first (refused ones are
  // kept in sessionStorage, but queued ones live only in this page).
  const onLeave = (e) => { if (session.pending()) { e.preventDefault(); e.returnValue = ""; } };
  window.addEventListener("beforeunload", onLeave);

  /** One line telling a first-time user what the current tool does next (no docs needed). */
  function hint() {
    if (session.readOnly) return "";
    const st = ui.st, sel = selected();
    if (st.draft?.kind === "ring") return st.tool === "polygon" ? "Click to add vertices; Enter, N or a click on the first vertex finishes." : "Click to add points; Enter or N finishes.";
    if (st.mode === "edit" && st.tool !== "brush") return "Drag a vertex to move it; click near an edge to add one. E again to stop.";
    if (st.mode === "remove") return "Click vertices to remove them. R again to stop.";
    if (st.mode === "group") return "Click the vertices of the new part; Enter finishes.";
    if (st.mode === "hole") return "Click the vertices of the hole inside the polygon; Enter finishes.";
    const label = labelForNew() ? "" : " Pick a label on the right (or 1–9) to name new objects.";
    switch (st.tool) {
      case "bbox": return "Drag to draw a box (inside another one too); click a box to select it, drag its edge to resize." + label;
      case "polygon": return (sel?.type === "polygon" ? "E edit vertices, G add a part, H cut a hole, R remove points. " : "Click on the image to start a polygon.") + label;
      case "polyline": return "Click on the image to start a line." + label;
      case "point": return "Click on the image to place a point." + label;
      case "brush": return (sel?.type === "bitmap" ? "Paint to add to the selected bitmap; R erases, G fills, [ ] size, N starts a new one." : "Paint on the image (right button erases); [ ] change the size.") + label;
      case "smart": return st.smart?.rect ? "Paint the object (foreground); Shift or right button marks background; R erases; Enter or ✓ makes the bitmap." : "Drag a rectangle around the object.";
      case "keypoint": return sel && (sel.type === "bbox" || sel.type === "polygon") ? "Click to add keypoints to the selected object." : "Select a box or polygon first (in the list on the right).";
      case "select": return sel ? "Drag to move the selected object; Delete removes it." : "Click an object to select it.";
      case "ruler": return "Drag to measure a distance in image pixels.";
      default: return "";
    }
  }

  function render() {
    if (ui.st.selected && !selected()) ui.st = { ...ui.st, selected: null };
    for (const b of toolbox.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b.dataset.tool === ui.st.tool));
    modeLine.replaceChildren(
      h("strong", {}, TOOL_BUTTONS.find((t) => t[0] === ui.st.tool)?.[2] || ui.st.tool),
      modeButtons(),
      ui.st.tool === "brush" || ui.st.tool === "smart" ? h("label", {}, " Brush ", h("input", { type: "range", min: 1, max: 100, value: ui.st.brushRadius, "aria-label": "Brush size",
        oninput: (e) => { ui.st = { ...ui.st, brushRadius: Number(e.target.value) }; } })) : "",
      ui.st.tool === "keypoint" ? h("label", {}, " Keypoint name ", h("input", { value: ui.keypointName, placeholder: "auto", size: 10, oninput: (e) => { ui.keypointName = e.target.value; } })) : "",
      session.readOnly ? "" : h("span", { class: "badge", id: "new-label", title: "The label new objects get (pick another on the right or with 1–9)" },
        labelForNew() ? `New: ${labelForNew()}` : "New: no label"),
      session.readOnly ? "" : (selected() && selected().id !== ui.justDrawn
        ? h("span", { class: "badge", id: "number-rule", title: "Number keys relabel the object you selected" }, "1–9: relabel")
        : h("span", { class: "badge", id: "number-rule", title: "Number keys choose the label for the next object (right after drawing one, too)" }, "1–9: next label")),
      h("span", { class: "muted", id: "tool-hint", title: hint() }, hint()),
      session.smartBusy ? h("span", { class: "badge", id: "smart-busy", role: "status" }, "Extracting the foreground…") : "",
      ui.st.tool === "smart" && ui.st.smart?.rle ? h("button", { type: "button", class: "primary", onclick: smartAccept, id: "smart-accept" }, "✓") : "",
      session.cursorList().length ? h("span", { class: "badge presence", id: "here", title: "Others looking at this image (their cursors show on it)" },
        "Here: " + session.cursorList().map((c) => c.name).join(", ")) : "",
      session.free ? h("button", { type: "button", class: "primary", id: "start-labeling", onclick: () => session.startLabeling(),
        title: "The person labeling this image left: take it and label it here" }, "Start labeling this image") : "",
      session.holder && project.privileges.includes("review") ? h("button", { type: "button", id: "take-over", onclick: () => session.takeOver(),
        title: `Take the image over from ${session.holder.name}` }, "Take over") : "",
      h("button", { type: "button", onclick: () => stage.fit(), title: "Fit (F)" }, "Fit"),
      h("button", { type: "button", onclick: () => session.undo(), title: "Undo (Ctrl+Z)", disabled: session.readOnly }, "Undo"),
      h("button", { type: "button", onclick: () => session.redo(), title: "Redo (Ctrl+Shift+Z)", disabled: session.readOnly }, "Redo"),
      h("a", { class: "button", href: href("dashboard", { project: pid }) }, "Close"));
    workflow.update();
    layout.dataset.image = session.image ? String(session.image.id) : ""; // the image shown, for scripts and tests
    stage.say(session.banner());
    unsaved.update(session.unsaved, session.canReapply());
    panel.update({ objects: O.ordered(session.objects), selectedId: ui.st.selected, labels, colors, currentLabel: selected()?.label ?? labelForNew(), readOnly: session.readOnly,
      imageLabels: session.imageLabels, imageName: session.image?.name, pending: session.pending(), unsaved: session.unsaved.length, view: ui.view, viewKey: JSON.stringify(ui.view),
      objView, viewVersion: objView.version });
    stage.redraw();
    suggest.sync();
  }
  session.onImage = () => { objView.load(session.image && `${pid}.${session.image.id}`); suggest.load(); ui.st = { ...T.initialState(), tool: ui.st.tool, brushRadius: ui.st.brushRadius }; ui.lastLabel = null; stage.fitted = false; stage.fit(); render(); };
  render();
  await session.start(ctx.route.params.image);
  stage.el.querySelector("canvas").focus();
  return {
    async unmount() {
      document.removeEventListener("keydown", onKey);
      window.removeEventListener("beforeunload", onLeave);
      suggest.close();
      stage.destroy();
      await session.close();
    },
  };
}
