// Classification labels in the tool, pure: the ops that change them and the state after one
// (mirrors server/classification.py). Used by toolsession.js; checked in tests/web/test_modules.py.

export const LABEL_KINDS = new Set(["add_label", "remove_label", "set_default_label", "set_labels"]);

/** Classification state after a label op (mirrors server/classification.py). Pure. */
export function applyLabelOp(labels, op) {
  const has = labels.some((l) => l.label === op.label);
  const setDefault = (list, name) => list.map((l) => ({ ...l, is_default: l.label === name }));
  switch (op.kind) {
    // The first label becomes the default; adding one the image has makes it the default.
    case "add_label": return has ? setDefault(labels, op.label) : [...labels, { label: op.label, is_default: !labels.length, source: op.source || "manual" }];
    case "remove_label": {
      const rest = labels.filter((l) => l.label !== op.label);
      const wasDefault = labels.find((l) => l.label === op.label)?.is_default;
      return wasDefault && rest.length ? setDefault(rest, rest[0].label) : rest;
    }
    case "set_default_label": return has ? setDefault(labels, op.label) : labels;
    case "set_labels": return op.labels.map((l) => ({ ...l }));
    default: return labels;
  }
}

/** Labels of a snapshot, in one shape: [{label, is_default, source}]. */
export function normalizeLabels(list) {
  return (list || []).map((l) => ({ label: l.label ?? l.name, is_default: !!l.is_default, source: l.source || "manual" }));
}
