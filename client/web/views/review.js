// Pure helpers of the Models and Predictions pages (no DOM): a version's quality, which predicted
// labels and boxes start checked, box corners dragged, the body of "Add to dataset", and what to
// tell the person about skipped images, how one version's quality compares with another's. Tested in the page by tests/web/test_models.py.

export const BUILTIN_THRESHOLD = 0.3;  // the built-in model's "confident" score (docs/api.md)

/** {value, name} of a version: mAP@0.5 for a detector, else its cross-validated accuracy. */
export function quality(version, task = "classification") {
  const m = version?.metrics || {};
  const map = m.map50 ?? version?.map50;
  if (task === "detection" || map !== undefined) return { value: map ?? null, name: "mAP@0.5" };
  return { value: m.accuracy ?? version?.accuracy ?? null, name: m.quality_measure === "top-1 accuracy" || !m.quality_measure ? "accuracy" : m.quality_measure };
}

/** The precision-recall point at the version's chosen threshold (the nearest listed one). */
export function thresholdPoint(metrics) {
  const curve = metrics?.pr_curve || [];
  if (!curve.length || typeof metrics.threshold !== "number") return null;
  let best = curve[0];
  for (const p of curve) if (Math.abs(p.threshold - metrics.threshold) < Math.abs(best.threshold - metrics.threshold)) best = p;
  return { x: best.recall, y: best.precision, label: `threshold ${metrics.threshold.toFixed(2)}` };
}

/** Labels checked at first: none when stale; single-label the top one (scoring at least
 * `minScore`: the built-in model's mapped labels may be a poor top); multi-label every one
 * scoring at least the threshold. `item.labels` is best first. */
export function checkedLabels(item, { multi, threshold, minScore = 0 }) {
  if (item.stale) return [];
  const labels = item.labels || [];
  if (!multi) return labels.length && labels[0].score >= minScore - 1e-9 ? [labels[0].label] : [];
  return labels.filter((l) => l.score >= threshold - 1e-9).map((l) => l.label);
}

/** Indexes of the predicted objects scoring at least the threshold. */
export function checkedObjects(objects, threshold) {
  return (objects || []).flatMap((o, i) => (o.score >= threshold - 1e-9 ? [i] : []));
}

/** A bbox geometry {x, y, w, h} with one corner ("nw", "ne", "sw", "se") moved to (px, py);
 * the opposite corner stays, the box never turns inside out (at least 1 px). */
export function dragCorner(box, corner, px, py) {
  let x0 = box.x, y0 = box.y, x1 = box.x + box.w, y1 = box.y + box.h;
  if (corner.includes("w")) x0 = Math.min(px, x1 - 1); else x1 = Math.max(px, x0 + 1);
  if (corner.includes("n")) y0 = Math.min(py, y1 - 1); else y1 = Math.max(py, y0 + 1);
  return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
}

/** POST /predictions/add's body from the chosen cards [{image, prediction, labels, objects}]:
 * cards with nothing chosen are left out; chosen boxes (detection predictions) go as the
 * prediction's id with each box's index and its geometry as the person left it (the server takes
 * the label from the prediction); labels alone go by image, as they always did. */
export function addBody(model, cards) {
  const items = [];
  for (const c of cards) {
    const labels = [...new Set(c.labels || [])];
    const objects = (c.objects || []).map((o) => ({ index: o.index, geometry: o.geometry }));
    if (!labels.length && !objects.length) continue;
    const item = objects.length ? { prediction: c.prediction } : { image: c.image };
    if (labels.length) item.labels = labels;
    if (objects.length) item.objects = objects;
    items.push(item);
  }
  return { model, items };
}

const REASONS = { locked: "someone else is labeling it", already_labeled: "it already has those labels", stale: "its prediction is stale", nothing_to_confirm: "nothing to confirm" };

/** One sentence for an add (or confirm) answer: {applied|confirmed, skipped: [{image, reason}]}. */
export function resultText(res, verb = "Added labels to") {
  const done = (res.applied || res.confirmed || []).length;
  const by = {};
  for (const s of res.skipped || []) by[s.reason] = (by[s.reason] || 0) + 1;
  const parts = Object.entries(by).map(([r, n]) => `${n} because ${REASONS[r] || r}`);
  return `${verb} ${done} image${done === 1 ? "" : "s"}.` + (parts.length ? ` Skipped ${parts.join(", ")}.` : "");
}

/** The threshold a (model, version) uses: the version's own, else the built-in model's. */
export function versionThreshold(model, version) {
  if (!model || model.kind === "builtin") return BUILTIN_THRESHOLD;
  const v = (model.versions || []).find((x) => x.version === version);
  return v?.threshold ?? v?.metrics?.threshold ?? 0.5;
}

/** Rows for side-by-side bars of two versions' per-label precision or recall. */
export function perLabelRows(a, b, key) {
  const names = [...new Set([...(a?.metrics?.labels || []), ...(b?.metrics?.labels || [])].map((l) => l.label))];
  const of = (v, n) => (v?.metrics?.labels || []).find((l) => l.label === n)?.[key] ?? null;
  return names.map((n) => ({ label: n, a: of(a, n), b: of(b, n) }));
}

/** How a later version's quality `b` compares with an earlier one's `a` (0..1 values), in the
 * whole points the page shows them in (so 50% and 92% read "+42 points"): {points, text, cls}
 * with cls "better", "worse" or "same"; null when either is missing. */
export function qualityChange(a, b) {
  if (a === null || a === undefined || b === null || b === undefined) return null;
  const points = Math.round(b * 100) - Math.round(a * 100);
  const text = points === 0 ? "no change" : `${points > 0 ? "+" : "-"}${Math.abs(points)} points`;
  return { points, text, cls: points > 0 ? "better" : points < 0 ? "worse" : "same" };
}

/** Percent text of a 0..1 value, or a dash. */
export function pctText(v) { return v === null || v === undefined ? "—" : `${Math.round(v * 100)}%`; }
