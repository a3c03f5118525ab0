// Every keyboard shortcut: one table used by the tool's key handler and by the `?` overlay.
import { h, modal } from "../dom.js";

// [key combo, command, description, where]
export const KEYS = [
  ["?", "help", "Show this list of shortcuts", "Everywhere"],
  ["Ctrl+A", null, "Select all images (matching the filter)", "Dashboard"],
  ["Arrows / Space / Enter", null, "Move, select, open the labeling tool", "Dashboard"],
  ["Shift+Arrows", null, "Extend the selection", "Dashboard"],
  ["Click / Shift+click / Ctrl+click", null, "Select an image / a range / add or remove one", "Dashboard"],
  ["Double-click", null, "Open the image in the labeling tool", "Dashboard"],
  ["Page Up / Page Down", null, "Previous / next page of images", "Dashboard"],
  ["Esc", null, "Clear the selection", "Dashboard"],
  ["Arrows / Space", null, "Move between images / select or unselect one", "Label by similarity"],
  ["Double-click", null, "Open the image in the labeling tool", "Label by similarity"],
  ["B", "tool:bbox", "Bounding box tool", "Labeling tool"],
  ["P", "tool:polygon", "Polygon tool", "Labeling tool"],
  ["L", "tool:polyline", "Polyline tool", "Labeling tool"],
  ["O", "tool:point", "Point tool", "Labeling tool"],
  ["M", "tool:brush", "Bitmap brush tool", "Labeling tool"],
  ["W", "tool:smart", "Smart selection tool", "Labeling tool"],
  ["K", "tool:keypoint", "Add keypoints to the selected box or polygon", "Labeling tool"],
  ["V", "tool:select", "Select / move tool", "Labeling tool"],
  ["T", "tool:ruler", "Ruler", "Labeling tool"],
  ["N", "new", "New object (finish the current one; draw over another box)", "Labeling tool"],
  ["Enter", "finish", "Finish the polygon, polyline or bitmap; apply the classification label", "Labeling tool"],
  ["E", "edit", "Edit vertices (polygon) / draw (bitmap)", "Labeling tool"],
  ["G", "group", "New polygon in group (polygon) / fill (bitmap)", "Labeling tool"],
  ["H", "hole", "New hole in the selected polygon", "Labeling tool"],
  ["R", "remove", "Remove points (polygon, polyline) / erase (bitmap)", "Labeling tool"],
  ["[ / ]", "brush", "Smaller / bigger brush", "Labeling tool"],
  ["Shift+drag / right drag", null, "Background strokes (smart tool); erase (brush)", "Labeling tool"],
  ["1 … 9", "label", "Relabel the object you selected (click or list); right after drawing one, choose the label for the next object", "Labeling tool"],
  ["Delete / Backspace", "delete", "Delete the selected object", "Labeling tool"],
  ["Esc", "cancel", "Cancel the current drawing / deselect", "Labeling tool"],
  ["Ctrl+Z", "undo", "Undo (through the server, everyone sees it)", "Labeling tool"],
  ["Ctrl+Shift+Z / Ctrl+Y", "redo", "Redo", "Labeling tool"],
  ["S / Ctrl+S", "save", "Save (waits until the server has every edit)", "Labeling tool"],
  ["D / →", "next", "Save and go to the next image", "Labeling tool"],
  ["Ctrl+Enter", "done-next", "Mark the image done and go to the next one", "Labeling tool"],
  ["Ctrl+Shift+Enter", "done", "Mark the image done (stay on it)", "Labeling tool"],
  ["A / ←", "prev", "Save and go to the previous image", "Labeling tool"],
  ["F", "fit", "Fit the image to the window", "Labeling tool"],
  ["+ / = / − / wheel", "zoom", "Zoom in / out", "Labeling tool"],
  ["Space+drag / middle drag", "pan", "Pan", "Labeling tool"],
  ["I", "invert", "Invert colors (view only)", "Labeling tool"],
  ["C", "names", "Show / hide label names on the canvas (drawn when at most 500 objects are in view: zoom in)", "Labeling tool"],
  ["Y", "accept-suggestion", "Accept the top suggested classification label (source “auto”)", "Labeling tool"],
  ["Q", "confirm-auto", "Confirm the model's labels and objects (“auto”, dashed) as reviewed", "Labeling tool"],
];

export const SIMPLE = {
  b: "tool:bbox", p: "tool:polygon", l: "tool:polyline", o: "tool:point", m: "tool:brush", w: "tool:smart",
  k: "tool:keypoint", v: "tool:select", t: "tool:ruler", n: "new", e: "edit", g: "group", h: "hole", r: "remove",
  s: "save", d: "next", a: "prev", f: "fit", i: "invert", c: "names", y: "accept-suggestion", q: "confirm-auto", "[": "brush-smaller", "]": "brush-bigger",
  "+": "zoom-in", "=": "zoom-in", "-": "zoom-out", Enter: "finish", Escape: "cancel", Delete: "delete",
  Backspace: "delete", ArrowRight: "next", ArrowLeft: "prev",
};

/** The tool command for a key event (pure): e.g. "undo", "tool:bbox", "label:3", or null. */
export function commandFor(ev) {
  const ctrl = ev.ctrlKey || ev.metaKey;
  const key = ev.key;
  if (ctrl) {
    const k = key.toLowerCase();
    if (k === "z") return ev.shiftKey ? "redo" : "undo";
    if (k === "y") return "redo";
    if (k === "s") return "save";
    if (key === "Enter") return ev.shiftKey ? "done" : "done-next";
    return null;
  }
  if (ev.altKey) return null;
  if (/^[1-9]$/.test(key)) return `label:${key}`;
  return SIMPLE[key.length === 1 ? key.toLowerCase() : key] || null;
}

export function shortcutOverlay(root, keys = KEYS) {
  const groups = new Map();
  for (const [combo, , text, where] of keys) {
    if (!groups.has(where)) groups.set(where, []);
    groups.get(where).push([combo, text]);
  }
  const table = (rows) => h("table", {}, h("tbody", {}, rows.map(([combo, text]) => h("tr", {},
    h("th", { scope: "row" }, combo.split(" / ").map((c, i) => [i ? " / " : "", h("kbd", {}, c)])), h("td", {}, text)))));
  // A long group (the tool's) spans the dialog in two columns instead of one tall narrow one.
  const body = h("div", { class: "shortcuts-list", id: "shortcuts" }, [...groups].map(([where, rows]) => rows.length > 10
    ? h("section", { class: "wide" }, h("h3", {}, where), table(rows.slice(0, Math.ceil(rows.length / 2))), table(rows.slice(Math.ceil(rows.length / 2))))
    : h("section", {}, h("h3", {}, where), table(rows))));
  return modal(root, "Keyboard shortcuts", body);
}
