// The viewer's own view of an image's objects: which are shown in the list (label filter, search),
// hidden on the canvas, locked against canvas edits. Never ops: nobody else sees it. The
// predicates are pure; `createObjectView` keeps the hidden/locked sets per image in sessionStorage.

export const NO_LABEL = "\u0000none";  // the label filter's value for objects without a label

const TYPE_WORDS = { bbox: "bbox box", polygon: "polygon", polyline: "polyline line", point: "point", bitmap: "bitmap mask", rpy: "rpy" };

const texts = new WeakMap();  // objects are replaced, never changed in place: cache by identity

/** The text a search looks through: label, id, type and every attribute as "name=value". */
export function searchText(o) {
  let text = texts.get(o);
  if (text === undefined) texts.set(o, (text = makeText(o)));
  return text;
}

function makeText(o) {
  const attrs = Object.entries(o.attributes || {}).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
  return [o.label || "", o.id, TYPE_WORDS[o.type] || o.type, ...attrs, o.occluded ? "occluded" : ""].join("\n").toLowerCase();
}

/** Whether `o` passes the filter (pure): `label` "" = any (NO_LABEL: unlabeled only); every word
 * of `text` must occur (case-insensitive) in its label, id, type or attributes. */
export function matches(o, { label = "", text = "" } = {}) {
  if (label === NO_LABEL ? !!o.label : label && o.label !== label) return false;
  const words = text.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return true;
  const hay = searchText(o);
  return words.every((w) => hay.includes(w));
}

/** Positions in `objects` of those that pass the filter (all of them when it is empty). */
export function filterIndices(objects, filter = {}) {
  const out = [];
  const any = !filter.label && !(filter.text || "").trim();
  for (let i = 0; i < objects.length; i++) if (any || matches(objects[i], filter)) out.push(i);
  return out;
}

/** The ids of existing objects an op changes (a create changes none; "*" = all of them). */
export function opTargets(op) {
  if (op.kind === "batch") return op.ops.flatMap(opTargets);
  if (op.kind === "rasterize_all") return ["*"];
  return op.object_id ? [op.object_id] : [];
}

/** Per-image hidden and locked sets. `visible`/`pickable` are memoized on (array, version) so the
 * canvas keeps one array (its cached layer and spatial index) until the sets change. */
export function createObjectView(storage = globalThis.sessionStorage) {
  let key = null, hidden = new Set(), locked = new Set(), version = 0;
  const memo = { visible: [null, -1, null], pickable: [null, -1, null] };
  const save = () => {
    if (!key || !storage) return;
    try { storage.setItem(key, JSON.stringify({ hidden: [...hidden], locked: [...locked] })); } catch { /* full or blocked: memory only */ }
  };
  const changed = () => { version++; save(); };
  function cached(name, objects, keep) {
    const m = memo[name];
    if (m[0] !== objects || m[1] !== version) memo[name] = [objects, version, hidden.size || locked.size ? objects.filter(keep) : objects];
    return memo[name][2];
  }
  return {
    /** Switch to an image's sets (as this tab left them). */
    load(imageKey) {
      key = imageKey ? `labelhub.objview.${imageKey}` : null;
      let saved = {};
      try { saved = (key && storage && JSON.parse(storage.getItem(key) || "{}")) || {}; } catch { saved = {}; }
      hidden = new Set(saved.hidden || []); locked = new Set(saved.locked || []);
      version++;
    },
    isHidden: (id) => hidden.has(id),
    isLocked: (id) => locked.has(id),
    toggleHidden(id) { if (!hidden.delete(id)) hidden.add(id); changed(); },
    toggleLocked(id) { if (!locked.delete(id)) locked.add(id); changed(); },
    showAll() { hidden.clear(); changed(); },
    unlockAll() { locked.clear(); changed(); },
    counts: () => ({ hidden: hidden.size, locked: locked.size }),
    get version() { return version; },
    /** What the canvas draws: all but the hidden. */
    visible: (objects) => cached("visible", objects, (o) => !hidden.has(o.id)),
    /** What a click on the canvas can pick or change: all but the hidden and the locked. */
    pickable: (objects) => cached("pickable", objects, (o) => !hidden.has(o.id) && !locked.has(o.id)),
    /** The first locked object `op` would change (null: none). */
    lockedBy(op) {
      for (const id of opTargets(op)) if (id === "*" ? locked.size : locked.has(id)) return id === "*" ? [...locked][0] : id;
      return null;
    },
  };
}
