// Pure helpers of the similarity views (no DOM): scores, selection above a score, suggestions,
// and the "image features are still being computed" state read from errors and job events.

/** A similarity or suggestion score as a short percentage: 0.934 -> "93%". */
export function pct(score) {
  const v = Math.max(0, Math.min(1, Number(score) || 0));
  return `${Math.round(v * 100)}%`;
}

/** A similarity score with two decimals, as the "select above" field takes it: 0.934 -> "0.93". */
export function score2(score) {
  return round2(Number(score) || 0).toFixed(2);
}

/** Ids of the items scoring at least `threshold` (the "select all above a score" action). */
export function selectAbove(items, threshold) {
  const t = Number(threshold);
  // The tolerance matches round2: an image shown as "0.94" is selected by "≥ 0.94".
  return new Set(items.filter((it) => it.similarity >= t - EPS).map((it) => it.image));
}

/** After a refresh, the selection keeps only the images still listed. */
export function keepSelected(selected, items) {
  const present = new Set(items.map((it) => it.image));
  return new Set([...selected].filter((id) => present.has(id)));
}

/** A starting threshold for "select above": the middle of the widest gap between neighbouring
 * scores in the upper part of the list (a similar group usually ends at a visible drop). */
export function suggestThreshold(items) {
  const scores = items.map((it) => it.similarity).filter((s) => typeof s === "number").sort((a, b) => b - a);
  if (scores.length < 2) return scores.length ? round2(scores[0]) : 0.8;
  let best = 0, at = 0;
  for (let i = 0; i + 1 < scores.length; i++) {
    const gap = scores[i] - scores[i + 1];
    if (gap > best) { best = gap; at = i; }
  }
  // Round down so the item just above the gap stays selected.
  return round2((scores[at] + scores[at + 1]) / 2);
}

const EPS = 1e-9;
/** Two decimals rounded down (a shown score never exceeds the real one; 0.95 stays 0.95). */
function round2(x) { return Math.floor(x * 100 + EPS * 100) / 100; }

/** The suggested labels an image does not carry yet, best first.
 * `suggestion`: {image, labels: [{label, score}]}; `imageLabels`: [{label}] or [{name}] or names. */
export function pendingLabels(suggestion, imageLabels) {
  const have = new Set((imageLabels || []).map((l) => (typeof l === "string" ? l : l.label ?? l.name)));
  return (suggestion?.labels || []).filter((s) => !have.has(s.label)).sort((a, b) => b.score - a.score);
}

/** {job, done, total} from a 409 not_ready error of the REST client (the features are being
 * computed: the error names the job), else null. */
export function notReady(err) {
  if (!err || err.status !== 409 || err.code !== "not_ready") return null;
  const job = err.error?.job ?? err.details?.job ?? null;
  // A failed or finished job is not waited for: the message says why (an image that cannot be
  // decoded, a model that cannot load); fix it, then POST .../embeddings.
  if (job?.status === "failed" || job?.status === "done" || job?.status === "cancelled") return null;
  return { job: job?.id ?? null, ...counts(job?.progress) };
}

/** Progress of job `jobId` from a hub `job` event ({type: "job", job: {id, status, progress}}):
 * {done, total, finished, failed}, or null when the event is about another job. */
export function jobProgress(msg, jobId) {
  if (!msg || msg.type !== "job") return null;
  const job = msg.job && typeof msg.job === "object" ? msg.job : msg;
  const id = job.id ?? msg.job_id;
  if (jobId !== null && jobId !== undefined && id !== jobId) return null;
  // Job statuses (docs/protocol.md): queued, running, done, failed, cancelled.
  const status = job.status ?? job.state ?? "";
  const { done, total } = counts(job.progress);
  return {
    done, total,
    finished: status === "done" || (!status && total > 0 && done >= total),
    failed: status === "failed" || status === "cancelled",
  };
}

function counts(progress) {
  return { done: Number(progress?.done ?? 0), total: Number(progress?.total ?? 0) };
}

/** The line shown while embeddings are computed. */
export function featuresText({ done = 0, total = 0 } = {}) {
  return total ? `Computing image features… ${done}/${total}` : "Computing image features…";
}

/** Body of POST /suggestions/accept adding one label to the given images. */
export function acceptBody(imageIds, label) {
  return { items: [...imageIds].map((image) => ({ image, labels: [label] })) };
}

/** A sentence for an accept response: "Added “cat” to 5 images; 1 skipped (locked)." */
export function acceptSummary(res, label) {
  const applied = (res?.applied || []).length;
  const skipped = res?.skipped || [];
  const reasons = [...new Set(skipped.map((s) => String(s.reason || "").replaceAll("_", " ")).filter(Boolean))];
  let text = `Added “${label}” to ${applied} image${applied === 1 ? "" : "s"}`;
  if (skipped.length) text += `; ${skipped.length} skipped${reasons.length ? ` (${reasons.join(", ")})` : ""}`;
  return text + ".";
}

/** How a label's source reads in titles: manual / auto / sync. */
export function sourceText(source) {
  return { auto: "added automatically by a model (suggestion or prediction), not reviewed yet", sync: "added from an object label" }[source] || "added by hand";
}
