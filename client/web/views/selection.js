// Dashboard selection as a pure reducer. `all` means "every image matching the filter".

export function emptySelection() { return { ids: new Set(), anchor: null, all: false }; }

/** Click on image `id` among the page's `order` of ids, with modifier keys. */
export function clickSelect(sel, order, id, { shift = false, ctrl = false } = {}) {
  if (shift && sel.anchor !== null && order.includes(sel.anchor)) {
    const a = order.indexOf(sel.anchor), b = order.indexOf(id);
    const [lo, hi] = a < b ? [a, b] : [b, a];
    const ids = new Set(ctrl ? sel.ids : []);
    for (const x of order.slice(lo, hi + 1)) ids.add(x);
    return { ids, anchor: sel.anchor, all: false };
  }
  if (ctrl) {
    const ids = new Set(sel.all ? order : sel.ids);
    if (ids.has(id)) ids.delete(id); else ids.add(id);
    return { ids, anchor: id, all: false };
  }
  if (sel.ids.size === 1 && sel.ids.has(id) && !sel.all) return emptySelection();
  return { ids: new Set([id]), anchor: id, all: false };
}

export function selectAll() { return { ids: new Set(), anchor: null, all: true }; }

export function isSelected(sel, id) { return sel.all || sel.ids.has(id); }

export function selectionCount(sel, total) { return sel.all ? total : sel.ids.size; }

/** What a bulk action targets: {image_ids} or {filter}. */
export function target(sel, filter) {
  return sel.all ? { filter: { ...filter } } : { image_ids: [...sel.ids] };
}

/** The dashboard filter from the route query: only known keys, typed. */
export const FILTER_KEYS = ["labeled", "label", "auto_labeled", "labeled_by", "locked", "state", "assignee"];
export function filterFromQuery(query) {
  const out = {};
  for (const k of FILTER_KEYS) {
    const v = query[k];
    if (v === undefined || v === "") continue;
    if (k === "labeled" || k === "auto_labeled" || k === "locked") out[k] = v === "true";
    else if (k === "labeled_by" || k === "assignee") out[k] = Number(v);
    else out[k] = v;
  }
  return out;
}
