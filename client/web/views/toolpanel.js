// The labeling tool's right-hand panel: label picker, object list, properties, classification, view.
import { h, icon } from "../dom.js";
import { filterIndices, NO_LABEL } from "../tool/objview.js";
import { colorOf } from "../tool/canvas.js";
import { fromModel } from "../tool/ops.js";
import { sourceText } from "./scores.js";

const TYPE_TEXT = { bbox: "Box", polygon: "Polygon", polyline: "Polyline", point: "Point", bitmap: "Bitmap", rpy: "RPY" };

// Attributes as "name=value" lines. A value is written plainly when typing it back gives the
// same value, else as JSON (the string "42", "true", " padded ", a line break); a name likewise.
// Lines left as they were keep their attribute exactly, so editing one never loses another.

/** What a typed value means: true/false, a number, a JSON string, else the text itself. */
function typedValue(raw) {
  if (raw === "true" || raw === "false") return raw === "true";
  if (raw !== "" && !isNaN(Number(raw))) return Number(raw);
  if (raw.startsWith('"')) {
    try { const v = JSON.parse(raw); if (typeof v === "string") return v; } catch { /* plain text */ }
  }
  return raw;
}

const plain = (s) => s === s.trim() && !s.includes("\n") && !s.startsWith('"');
const nameText = (k) => (plain(k) && !k.includes("=") && k !== "" ? k : JSON.stringify(k));
const valueText = (v) => (typeof v !== "string" ? String(v) : plain(v) && typedValue(v) === v ? v : JSON.stringify(v));
export const attrLine = (k, v) => `${nameText(k)}=${valueText(v)}`;

export function attrsToText(attrs) { return Object.entries(attrs || {}).map(([k, v]) => attrLine(k, v)).join("\n"); }

function splitLine(line) {
  if (line.startsWith('"')) {  // a JSON name: its closing quote is one followed by "="
    for (let j = line.indexOf('"=', 1); j > 0; j = line.indexOf('"=', j + 1)) {
      try { return [JSON.parse(line.slice(0, j + 1)), line.slice(j + 2).trim()]; } catch { /* an escaped quote */ }
    }
  }
  const i = line.indexOf("=");
  return i > 0 ? [line.slice(0, i).trim(), line.slice(i + 1).trim()] : null;
}

/** "a=1\nb=x\nc=true" -> {a: 1, b: "x", c: true} (pure). Lines equal to a line of ``previous``
 * keep that attribute as it was; a deleted line deletes it. */
export function textToAttrs(text, previous = {}) {
  const known = new Map(Object.entries(previous || {}).map(([k, v]) => [attrLine(k, v), [k, v]]));
  const out = {};
  for (const line of text.split("\n")) {
    const same = known.get(line) ?? known.get(line.trim());
    if (same) { out[same[0]] = same[1]; continue; }
    const kv = splitLine(line.trim());
    if (!kv || !kv[0]) continue;
    out[kv[0]] = typedValue(kv[1]);
  }
  return out;
}

const MODEL_KEYS = ["objects", "selectedId", "labels", "currentLabel", "readOnly", "imageLabels", "imageName", "pending", "unsaved", "viewKey", "viewVersion"];
const TYPING = "textarea, input:not([type=checkbox]):not([type=range]):not([type=color]), select";

/** A selector that finds the same control after the panel is rebuilt (null: none to keep). */
function focusKey(node, root) {
  if (!node || node === root || !root.contains(node)) return null;
  if (node.id) return `#${CSS.escape(node.id)}`;
  const tag = node.tagName.toLowerCase();
  for (const attr of ["aria-label", "data-id", "data-name", "title"]) {
    const v = node.getAttribute(attr);
    if (v) return `${tag}[${attr}="${CSS.escape(v)}"]`;
  }
  return null;
}

const ROW = 24;           // px per row (fixed: a long list places rows by index)
const VIEW_ROWS = 16;     // rows assumed in view before the list has a size
const OVERSCAN = 8;       // rows kept in the DOM above and below the visible ones
const VIRTUAL_AFTER = 100;
const EYE = "M2 10 C5 5 15 5 18 10 C15 15 5 15 2 10 Z M10 8.2 A1.8 1.8 0 1 1 9.99 8.2 Z";
const LOCK = "M5 9 H15 V17 H5 Z M7 9 V6.5 A3 3 0 0 1 13 6.5 V9";

/** The objects section: its count, the label filter and search, "Show all" / "Unlock all" and
 * the list. Built once and kept (a rebuild of the panel never takes focus or scroll from it).
 * Only the list scrolls; past VIRTUAL_AFTER shown objects it holds only the rows in view (plus a
 * few) between two spacers: 10,000 objects cost a few dozen DOM rows. */
function objectList(a) {
  const el = h("ul", { class: "objects", role: "listbox", "aria-label": "Objects on this image", id: "object-list" });
  const title = h("h3", { id: "objects-title" }, "Objects");
  const filter = { label: "", text: "" };
  const labelSel = h("select", { id: "object-filter", "aria-label": "Show objects with this label", title: "Show only objects with this label",
    onchange: () => { filter.label = labelSel.value; refilter(); } });
  const search = h("input", { type: "search", id: "object-search", placeholder: "Search objects", "aria-label": "Search objects",
    title: "Search the label, id, type and attribute text (every word must match)",
    oninput: () => { filter.text = search.value; refilter(); },
    onkeydown: (e) => { if (e.key === "Escape" && search.value) { e.stopPropagation(); search.value = filter.text = ""; refilter(); } } });
  const showAll = h("button", { type: "button", id: "show-all", title: "Show every hidden object on the canvas again", onclick: () => a.showAll() }, "Show all");
  const unlockAll = h("button", { type: "button", id: "unlock-all", title: "Unlock every locked object", onclick: () => a.unlockAll() }, "Unlock all");
  const section = h("section", { class: "objects-section", "aria-label": "Objects" },
    h("div", { class: "objects-title" }, title, showAll, unlockAll), h("div", { class: "row filter-row" }, labelSel, search), el);
  let m = null, top = 0, shownSelection = null, labels = null, shown = [], shownFor = null;
  el.addEventListener("scroll", () => {
    if (Math.abs(el.scrollTop - top) < 1) return;
    top = el.scrollTop;
    paint();
  });
  const viewRows = () => Math.max(1, Math.ceil(el.clientHeight / ROW) || VIEW_ROWS);
  const toggle = (o, kind, on, path, onText, offText) => h("button", { type: "button", class: "row-toggle", dataset: { toggle: kind },
    "aria-pressed": String(on), title: on ? onText : offText, "aria-label": `${kind === "hide" ? "Hide" : "Lock"} object ${o.id}`,
    onclick: (e) => { e.stopPropagation(); if (kind === "hide") a.toggleHidden(o.id); else a.toggleLocked(o.id); } }, icon(path));
  const row = (i, pos) => {
    const o = m.objects[i], v = m.objView, hidden = v.isHidden(o.id), locked = v.isLocked(o.id);
    return h("li", { role: "option", tabindex: "0", "aria-selected": o.id === m.selectedId ? "true" : "false", dataset: { id: o.id, type: o.type },
      class: (hidden ? "hidden-obj " : "") + (locked ? "locked-obj" : ""), "aria-setsize": shown.length, "aria-posinset": pos + 1,
      onclick: () => a.selectObject(o.id),
      onkeydown: (e) => { if (e.target === e.currentTarget && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); a.selectObject(o.id); } } },
    h("span", { class: "swatch", style: { background: colorOf(m.colors, o.label) } }),
    `${i + 1}. ${TYPE_TEXT[o.type] || o.type}`, h("span", { class: "muted obj-label" }, o.label || "(no label)"),
    o.occluded ? h("span", { class: "badge" }, "occluded") : null,
    fromModel(o) ? h("span", { class: "badge model-badge", title: "A model drew this: edit it or confirm the model labels to make it reviewed" }, "model") : null,
    h("span", { class: "row-toggles" },
      toggle(o, "hide", hidden, EYE, "Hidden on the canvas: click to show it", "Hide on the canvas (not drawn, not clickable)"),
      toggle(o, "lock", locked, LOCK, "Locked: click to unlock it", "Lock: not selectable or movable on the canvas, edits refused")));
  };
  const spacer = (rows) => h("li", { "aria-hidden": "true", role: "presentation", class: "spacer", style: { height: `${rows * ROW}px` } });

  function paint() {
    const n = shown.length;
    el.dataset.virtual = n > VIRTUAL_AFTER ? "true" : "false";
    if (n <= VIRTUAL_AFTER) {
      el.replaceChildren(...shown.map(row));
      if (!n) el.append(h("li", { class: "muted" }, m.objects.length ? "No objects match." : "No objects yet."));
      return;
    }
    const rowsInView = viewRows();
    const first = Math.max(0, Math.min(n - rowsInView, Math.floor(top / ROW)) - OVERSCAN);
    const last = Math.min(n, first + rowsInView + 2 * OVERSCAN);
    const rows = [];
    for (let p = first; p < last; p++) rows.push(row(shown[p], p));
    el.replaceChildren(spacer(first), ...rows, spacer(n - last));
  }

  function refilter() { shownFor = null; top = 0; el.scrollTop = 0; if (m) update(m); }

  function update(model) {
    m = model;
    if (labels !== m.labels) {
      labels = m.labels;
      const names = new Set(labels.map((l) => l.name));
      if (filter.label && filter.label !== NO_LABEL && !names.has(filter.label)) filter.label = "";
      labelSel.replaceChildren(h("option", { value: "" }, "All labels"), ...labels.map((l) => h("option", { value: l.name }, l.name)),
        h("option", { value: NO_LABEL }, "(no label)"));
      labelSel.value = filter.label;
    }
    if (shownFor !== m.objects) { shown = filterIndices(m.objects, filter); shownFor = m.objects; }
    const total = m.objects.length, filtered = !!(filter.label || filter.text.trim());
    title.textContent = filtered ? `Objects (${shown.length} of ${total})` : `Objects (${total})`;
    const { hidden, locked } = m.objView.counts();
    // Shown while there is something to show or unlock (the rows' toggles say how to start).
    showAll.hidden = !hidden; showAll.textContent = `Show all (${hidden})`;
    unlockAll.hidden = !locked; unlockAll.textContent = `Unlock all (${locked})`;
    // A newly selected object (picked on the canvas) scrolls into the list's view.
    if (m.selectedId !== shownSelection && shown.length > VIRTUAL_AFTER) {
      const p = shown.findIndex((i) => m.objects[i].id === m.selectedId), rowsInView = viewRows();
      if (p >= 0 && (p * ROW < top || (p + 1) * ROW > top + rowsInView * ROW)) top = Math.max(0, (p - rowsInView / 2) * ROW);
    }
    shownSelection = m.selectedId;
    paint();
    if (el.scrollTop !== top) el.scrollTop = top;
  }

  return { el: section, list: el, update };
}

export function createPanel(a) {
  // Three parts: the head (image, Save / Next, label picker) and the objects section never scroll
  // away; the list scrolls inside its section, the rest (properties, classification, view) below.
  const list = objectList(a);
  const head = h("div", { class: "side-head" }), rest = h("div", { class: "side-rest" });
  const el = h("aside", { class: "side", "aria-label": "Labeling panel" }, head, list.el, rest);
  let last = null, next = null, timer = 0;
  // Rebuilt a tick later, coalesced: a change event fired by leaving a field must not pull out the
  // field the person is moving to. Someone typing in a field keeps it: the rebuild (a remote edit,
  // an ack) waits until they leave it.
  // The search box is exempt: the objects section is never rebuilt, only its rows.
  const typing = () => el.contains(document.activeElement) && document.activeElement.matches(TYPING) && !list.el.contains(document.activeElement);
  el.addEventListener("focusout", () => { if (next) schedule(); });
  // A press in the panel holds the rebuild until it ends: pressing a button moves the focus out of
  // a field (focusout above), and a rebuild between mouse down and up replaces the button, which
  // loses the click (seen on a loaded machine). Released: rebuilt after the click is handled.
  let pressing = false;
  el.addEventListener("pointerdown", () => {
    pressing = true;
    const release = () => {
      document.removeEventListener("pointerup", release, true);
      document.removeEventListener("pointercancel", release, true);
      pressing = false;
      if (next) schedule();
    };
    document.addEventListener("pointerup", release, true);
    document.addEventListener("pointercancel", release, true);
  });
  function schedule() { if (!timer) timer = setTimeout(flush); }
  function update(m) { next = m; schedule(); }

  function flush() {
    timer = 0;
    const m = next;
    if (!m || typing() || pressing) return;
    next = null;
    if (last && MODEL_KEYS.every((k) => last[k] === m[k])) return;
    last = m;
    const active = document.activeElement;
    const keep = focusKey(active, el);
    const viewOpen = el.querySelector("details.view-adjust")?.open;
    const labelSel = h("select", { id: "current-label", "aria-label": "Label for new and selected objects", disabled: m.readOnly,
      onchange: (e) => { if (a.pickLabel(e.target.value) === false) e.target.value = m.currentLabel || ""; } },
    h("option", { value: "" }, "(no label)"),
    m.labels.map((l) => h("option", { value: l.name, selected: m.currentLabel === l.name }, (l.shortcut ? `${l.shortcut} · ` : "") + l.name)));

    list.update(m);

    const sel = m.objects.find((o) => o.id === m.selectedId);
    const props = sel ? properties(sel, m) : h("p", { class: "muted" }, "Select an object to see its properties.");

    const cls = h("ul", { class: "objects", id: "class-list", role: "listbox", "aria-label": "Classification labels" },
      m.labels.map((l) => {
        const on = m.imageLabels.find((x) => (x.label || x.name) === l.name);
        return h("li", { role: "option", tabindex: "0", "aria-selected": on ? "true" : "false", dataset: { name: l.name },
          title: on ? (on.is_default ? "Default label" : "Click to make it the default; Enter removes") : "Press Enter to apply",
          onclick: () => on ? a.classDefault(l.name) : a.classToggle(l.name),
          onkeydown: (e) => { if (e.key === "Enter") { e.preventDefault(); e.stopPropagation(); a.classToggle(l.name); } } },
        h("span", { class: "swatch", style: { background: l.color } }), l.name,
        on ? h("span", { class: "badge" + (on.is_default ? " ok" : "") }, on.is_default ? "default" : "on") : null,
        on && on.source && on.source !== "manual" ? h("span", { class: `badge src-${on.source}`, title: sourceText(on.source) }, on.source) : null);
      }));

    head.replaceChildren(
      h("div", { class: "row" }, h("strong", { title: m.imageName }, m.imageName || "…")),
      h("div", { class: "row" },
        h("button", { type: "button", onclick: a.prev, title: "Previous image (A)" }, "‹ Prev"),
        h("button", { type: "button", onclick: a.save, id: "save-btn", title: "Save (S)", disabled: m.readOnly }, "Save"),
        h("button", { type: "button", onclick: a.next, id: "next-btn", title: "Next image (D)" }, "Next ›"),
        // "All saved" only when nothing waits and nothing was refused (refused edits: the banner).
        h("span", { class: "saved", id: "save-state", dataset: { state: m.pending ? "saving" : m.unsaved ? "unsaved" : "saved" } },
          m.pending ? `Saving ${m.pending}…` : m.unsaved ? `${m.unsaved} not saved` : "All saved")),
      h("h3", {}, "Label"), labelSel);
    rest.replaceChildren(
      h("h3", {}, "Selected object"), props,
      h("div", { class: "row" },
        h("button", { type: "button", disabled: m.readOnly, onclick: a.rasterizeAll, title: "Turn every box and polygon into a bitmap" }, "Rasterize all"),
        h("button", { type: "button", disabled: m.readOnly, onclick: a.addRpy, title: "Add a roll/pitch/yaw object for the image" }, "Add RPY")),
      h("h3", {}, "Classification"), a.suggestions || "", cls,
      m.imageLabels.some((l) => l.source === "auto") || m.objects.some(fromModel) ? h("button", { type: "button", id: "confirm-auto", disabled: m.readOnly, onclick: a.confirmAuto,
        title: "The labels marked “auto” and the objects marked “model” (dashed) came from a model: confirm them as reviewed, they then train models (Q)" }, "Confirm model labels") : "",
      viewControls(m.view, a.setView, viewOpen));
    if (keep) el.querySelector(keep)?.focus({ preventScroll: true });
  }

  function properties(o, m) {
    const locked = m.objView.isLocked(o.id), ro = m.readOnly || locked;
    const attrs = h("textarea", { rows: 3, "aria-label": "Attributes, one name=value per line", disabled: ro, value: attrsToText(o.attributes) });
    attrs.addEventListener("change", () => a.setAttributes(o.id, textToAttrs(attrs.value, o.attributes)));
    const decorated = o.type === "bbox" || o.type === "polygon";
    const rpy = o.type === "rpy" ? o.geometry : o.rpy;
    const rpyFields = (decorated || o.type === "rpy") ? h("fieldset", { class: "props" }, h("legend", {}, "Roll / pitch / yaw (°)"),
      ["roll", "pitch", "yaw"].map((k) => h("label", {}, k, h("input", { type: "number", step: "any", disabled: ro, value: rpy ? rpy[k] : "", "aria-label": k,
        onchange: (e) => {
          const cur = { roll: 0, pitch: 0, yaw: 0, ...(rpy || {}) };
          cur[k] = Number(e.target.value || 0);
          a.setRpy(o, cur);
        } }))),
      decorated && rpy ? h("button", { type: "button", disabled: ro, onclick: () => a.setRpy(o, null) }, "Remove RPY") : null) : null;
    return h("div", { class: "props", id: "props" },
      locked ? h("p", { class: "hint", id: "locked-hint", role: "note" }, "Locked: unlock it (the lock in its row) to edit it.") : null,
      m.objView.isHidden(o.id) ? h("p", { class: "hint", id: "hidden-hint" }, "Hidden on the canvas (the eye in its row shows it).") : null,
      h("label", {}, "Occluded", h("input", { type: "checkbox", checked: !!o.occluded, disabled: ro, onchange: (e) => a.setOccluded(o.id, e.target.checked) })),
      h("label", { class: "col" }, "Attributes"), attrs,
      rpyFields,
      decorated ? h("div", {}, h("small", { class: "muted" }, "Keypoints (K, then click): "),
        (o.keypoints || []).map((k) => h("button", { type: "button", class: "chip", style: { "--chip": "#555" }, disabled: ro, title: "Remove keypoint", onclick: () => a.removeKeypoint(o.id, k.name) }, `${k.name} ×`))) : null,
      h("div", { class: "row" },
        decorated ? h("button", { type: "button", disabled: ro, onclick: () => a.rasterize(o.id) }, "Rasterize") : null,
        o.type === "bitmap" ? h("button", { type: "button", disabled: ro, onclick: () => a.vectorize(o.id) }, "Convert to polygon") : null,
        h("button", { type: "button", disabled: ro, onclick: () => a.toFront(o.id) }, "Bring to front"),
        h("button", { type: "button", class: "danger", disabled: ro, onclick: () => a.deleteObject(o.id) }, "Delete")));
  }

  function viewControls(v, set, open) {
    const slider = (key, text) => h("label", {}, text, h("input", { type: "range", min: 0, max: 300, value: v[key], "aria-label": text, oninput: (e) => set({ [key]: Number(e.target.value) }) }));
    return h("details", { class: "view-adjust", open }, h("summary", {}, "View (not saved)"),
      slider("brightness", "Brightness"), slider("contrast", "Contrast"), slider("saturation", "Saturation"),
      h("label", {}, "Invert", h("input", { type: "checkbox", checked: v.invert, onchange: (e) => set({ invert: e.target.checked }) })),
      h("label", {}, "Sharp pixels", h("input", { type: "checkbox", checked: v.noSmoothing, onchange: (e) => set({ noSmoothing: e.target.checked }) })),
      h("label", { title: "Write each object's label beside it (when few enough are in view: zoom in)" }, "Label names (C)",
        h("input", { type: "checkbox", id: "show-names", checked: !!v.names, onchange: (e) => set({ names: e.target.checked }) })),
      h("button", { type: "button", onclick: () => set({ brightness: 100, contrast: 100, saturation: 100, invert: false }) }, "Reset"));
  }

  return { el, update };
}
