// The labeling tool's suggested classification labels: scores for the open image from
// POST /suggestions, one key (Y) or click to accept one. Accepting goes through
// POST /suggestions/accept: the label lands with source "auto" through the op path, so the tool
// (watching the image) receives it as a live op like anyone else's edit.
import { h } from "../dom.js";
import { href } from "../router.js";
import { acceptBody, featuresText, jobProgress, notReady, pct, pendingLabels } from "./scores.js";

const SHOWN = 3;

/** `getImage()`: the open image ({id, name} or null); `getLabels()`: its labels [{label}];
 * `readOnly()`: a reason string when the person may not label it now, else "". */
export function createSuggestions({ ctx, pid, colors, getImage, getLabels, readOnly, canLabel }) {
  const el = h("section", { class: "suggest", id: "suggestions", "aria-label": "Suggested labels" });
  const s = { image: null, item: null, examples: null, waiting: null, error: "", loading: 0, busy: false };

  async function load() {
    const image = getImage();
    const mine = ++s.loading;
    s.image = image?.id ?? null; s.item = null; s.error = "";
    if (!s.image) { render(); return; }
    try {
      const res = await ctx.api.post(`/api/v1/projects/${pid}/suggestions`, { images: [s.image] });
      if (mine !== s.loading) return;
      s.item = (res.items || []).find((it) => it.image === s.image) || null;
      s.examples = res.labeled_examples ?? null;
      // Listed as pending: this image's features are not computed yet (others' are); the embed
      // job's end (any job event that finishes) brings them.
      s.waiting = !s.item && (res.pending || []).includes(s.image) ? { job: null, done: 0, total: 0 } : null;
    } catch (err) {
      if (mine !== s.loading) return;
      const nr = notReady(err);
      s.waiting = nr && nr.job !== null ? nr : null;
      s.error = s.waiting ? "" : err.message;
    }
    render();
  }

  function pending() { return s.item ? pendingLabels(s.item, getLabels()) : []; }

  async function accept(label) {
    const image = getImage();
    if (!image || s.busy) return;
    const reason = readOnly();
    if (reason) { ctx.toast(reason, "info"); return; }
    s.busy = true; render();
    try {
      const res = await ctx.api.post(`/api/v1/projects/${pid}/suggestions/accept`, acceptBody([image.id], label));
      const skipped = (res.skipped || []).find((x) => x.image === image.id);
      if (skipped) ctx.toast(`“${label}” was not added: ${skipped.reason}.`, "info");
    } catch (err) { ctx.toast(err.message); }
    s.busy = false; render();
  }

  /** The Y key: accept the best suggestion the image does not carry yet. */
  function acceptTop() {
    const top = pending()[0];
    if (!top) { ctx.toast(s.waiting ? featuresText(s.waiting) : "No suggestion to accept for this image.", "info"); return; }
    return accept(top.label);
  }

  // replaceChildren writes a null child as the text "null": leave the absent ones out.
  const put = (...kids) => el.replaceChildren(...kids.filter((k) => k !== null && k !== undefined));

  function render() {
    const image = getImage();
    const findSimilar = image ? h("a", { href: href("similar", { project: pid }, { image: image.id }), id: "find-similar", title: "Images that look like this one" }, "Find similar images") : null;
    if (s.waiting) {
      put(h("span", { class: "muted", id: "suggest-wait" }, featuresText(s.waiting)),
        s.waiting.total ? h("progress", { max: s.waiting.total, value: s.waiting.done }) : null, findSimilar);
      return;
    }
    if (s.error) { put(h("span", { class: "muted" }, "No suggestions: " + s.error), findSimilar); return; }
    if (!s.item) { put(h("span", { class: "muted" }, s.examples === 0 ? "Label a few images to get suggestions." : s.image ? "…" : ""), findSimilar); return; }
    const list = pending().slice(0, SHOWN);
    const may = canLabel() && !readOnly();
    put(
      h("small", { class: "muted" }, "Suggested"),
      list.length ? h("ul", { id: "suggest-list" }, list.map((sg, i) => h("li", { class: i ? "" : "top", dataset: { label: sg.label, score: String(sg.score) } },
        h("span", { class: "swatch", style: { background: colors[sg.label] || "#888" } }),
        h("span", { class: "name" }, sg.label), h("span", { class: "score" }, pct(sg.score)),
        may ? h("button", { type: "button", disabled: s.busy, title: i ? "Accept this suggestion" : "Accept the top suggestion (Y)",
          "aria-label": `Accept ${sg.label}`, onclick: () => accept(sg.label) }, i ? "✓" : h("span", {}, "✓ ", h("kbd", {}, "Y"))) : h("span"),
        h("span", { class: "bar", "aria-hidden": "true" }, h("span", { style: { width: pct(sg.score) } })))))
        : h("span", { class: "muted" }, "Every suggested label is on this image."),
      h("small", { class: "muted" }, s.examples !== null ? `From ${s.examples} labeled example${s.examples === 1 ? "" : "s"}.` : ""),
      findSimilar);
  }

  /** Called on every redraw of the tool: re-renders only when the image's labels or rights change. */
  let key = "";
  function sync() {
    const next = JSON.stringify([s.image, getLabels().map((l) => l.label), readOnly(), canLabel()]);
    if (next !== key) { key = next; render(); }
  }

  // Feature jobs report progress live; when the one we wait for ends, ask again.
  const off = ctx.onHub((msg) => {
    if (msg.type !== "job" || !s.waiting) return;
    const p = jobProgress(msg, s.waiting.job);
    if (!p) return;
    if (p.finished || p.failed) { s.waiting = null; load(); } else { s.waiting = { ...s.waiting, done: p.done, total: p.total }; render(); }
  });

  return { el, load, sync, acceptTop, close: off };
}
