// The Predictions page (#/p/N/predictions?model=&status=&ids= or a dashboard filter): "Predict"
// with a model over the selection, a filter or every image (a predict job, its progress live),
// then the review the product guide describes: each image with its predicted labels, scores and
// checkboxes (single-label: the top one checked; multi-label: those above a threshold slider that
// re-checks live), detection boxes drawn dashed with label and score, a checkbox each and
// draggable corners; select some or all -> Add to dataset (POST /predictions/add: labels land
// with source "auto" through the op log; images someone else holds are skipped and reported),
// dismiss, stale predictions shown and never addable, and "refresh with the newest version".
import { h } from "../dom.js";
import { href } from "../router.js";
import { filterFromQuery } from "./selection.js";
import { jobsPanel, watchJob } from "./jobs.js";
import { BUILTIN_THRESHOLD, addBody, checkedLabels, checkedObjects, dragCorner, pctText, resultText, versionThreshold } from "./review.js";

const NS = "http://www.w3.org/2000/svg";
const STATUSES = ["pending", "added", "dismissed"];
const CORNERS = ["nw", "ne", "sw", "se"];

function svgEl(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

export async function mount(root, ctx) {
  const pid = ctx.route.params.project;
  const q = ctx.route.query;
  const [project, modelsRes, labelsRes] = await Promise.all([ctx.api.get(`/api/v1/projects/${pid}`),
    ctx.api.get(`/api/v1/projects/${pid}/models`), ctx.api.get(`/api/v1/projects/${pid}/labels`)]).catch((err) => { ctx.toast(err.message); return []; });
  if (!project) { root.append(h("p", { class: "empty" }, "This project cannot be opened. ", h("a", { href: "#/" }, "Back to projects"))); return {}; }
  const can = new Set(project.privileges);
  ctx.setCrumbs([{ text: "Projects", href: "#/" }, { text: project.name, href: href("dashboard", { project: pid }) },
    { text: "Models", href: href("models", { project: pid }) }, { text: "Predictions" }]);
  const colors = Object.fromEntries(labelsRes.labels.map((l) => [l.name, l.color]));
  const ids = (q.ids || "").split(",").filter((x) => /^\d+$/.test(x)).map(Number);
  const filter = filterFromQuery(q);
  const usable = (m) => m.kind === "builtin" || (m.versions || []).length;
  const state = {
    models: modelsRes.models, model: null, status: STATUSES.includes(q.status) ? q.status : "pending",
    cards: [], next: null, threshold: null, job: null, busy: false, message: "",
  };
  state.model = state.models.find((m) => m.name === q.model) || state.models.find((m) => m.kind === "trained" && usable(m)) || state.models[0];

  const model = () => state.model;
  const multi = () => !!model()?.multi_label;
  const detection = () => model()?.task === "detection" || state.cards.some((c) => c.item.objects?.length);
  const latest = () => model()?.latest ?? 0;

  // --- loading ------------------------------------------------------------------------------
  function cardOf(item) {
    const threshold = state.threshold ?? versionThreshold(model(), item.version);
    return { item, image: item.image, selected: false, labels: new Set(checkedLabels(item, { multi: multi(), threshold, minScore: model().kind === "builtin" ? BUILTIN_THRESHOLD : 0 })),
      objects: new Set(checkedObjects(item.objects, threshold)), boxes: (item.objects || []).map((o) => ({ ...o.geometry })), size: null };
  }

  async function load(more = false) {
    try {
      const res = await ctx.api.get(`/api/v1/projects/${pid}/predictions`, { model: model().id, status: state.status, limit: 100, after: more ? state.next : "" });
      // The newest version's prediction of an image stands for it (adding or dismissing acts on all).
      const byImage = new Map((more ? state.cards : []).map((c) => [c.image, c]));
      for (const item of res.items) {
        const known = byImage.get(item.image);
        if (!known || known.item.version <= item.version) byImage.set(item.image, cardOf(item));
      }
      state.cards = [...byImage.values()];
      state.next = res.next;
    } catch (err) { ctx.toast(err.message); }
    render();
  }

  // --- actions ------------------------------------------------------------------------------
  function addable(c) { return c.item.status === "pending" && !c.item.stale; }

  async function predict() {
    const scope = scopeSel.value;
    const body = { model: model().id };
    if (scope === "ids") body.images = ids;
    else if (scope === "filter") body.filter = filter;
    else body.filter = scope === "unlabeled" ? { labeled: false } : {};
    await startJob(body);
  }

  async function startJob(body) {
    state.busy = true; render();
    try {
      const res = await ctx.api.post(`/api/v1/projects/${pid}/predictions`, body);
      jobs.onEvent({ type: "job", job: res.job });
      state.message = `Predicting ${res.images} image${res.images === 1 ? "" : "s"} with ${model().name}${res.version ? ` v${res.version}` : ""}…`;
      // A quick job may have ended (its events heard) before this answer came.
      if (ended.has(res.job.id)) finished(ended.get(res.job.id));
      else { state.job?.stop(); state.job = watchJob(ctx, pid, res.job.id, finished); }
    } catch (err) { ctx.toast(err.message); }
    state.busy = false; render();
  }

  async function refreshNewest() {
    const old = state.cards.filter((c) => c.item.status === "pending" && c.item.version < latest()).map((c) => c.image);
    if (old.length) await startJob({ model: model().id, images: old });
  }

  async function addSelected() {
    const chosen = state.cards.filter((c) => c.selected && addable(c)).map((c) => ({
      image: c.image, prediction: c.item.id, labels: [...c.labels],
      objects: [...c.objects].sort((a, b) => a - b).map((i) => ({ index: i, geometry: roundBox(c.boxes[i]) })) }));
    const body = addBody(model().name, chosen);
    if (!body.items.length) { ctx.toast("Select images with at least one checked label or box.", "info"); return; }
    state.busy = true; render();
    try {
      const res = await ctx.api.post(`/api/v1/projects/${pid}/predictions/add`, body);
      state.message = resultText(res);
      await load();
    } catch (err) { ctx.toast(err.message); }
    state.busy = false; render();
  }

  async function dismissSelected() {
    const images = state.cards.filter((c) => c.selected && c.item.status === "pending").map((c) => c.image);
    if (!images.length) return;
    try {
      const res = await ctx.api.post(`/api/v1/projects/${pid}/predictions/dismiss`, { images, model: model().id });
      state.message = `Dismissed ${res.dismissed} prediction${res.dismissed === 1 ? "" : "s"}; people's labels are untouched.`;
      await load();
    } catch (err) { ctx.toast(err.message); }
  }

  /** A dragged box in image pixels to two decimals (what the tool's own ops send). */
  const roundBox = (b) => Object.fromEntries(["x", "y", "w", "h"].map((k) => [k, Math.round(b[k] * 100) / 100]));

  function setThreshold(t) {
    state.threshold = t;
    for (const c of state.cards) {
      if (multi()) c.labels = new Set(checkedLabels(c.item, { multi: true, threshold: t }));
      c.objects = new Set(checkedObjects(c.item.objects, t));
    }
    render();
  }

  // --- drawing ------------------------------------------------------------------------------
  const modelSel = h("select", { id: "pred-model", "aria-label": "Model", onchange: (e) => {
    state.model = state.models.find((m) => String(m.id) === e.target.value); state.threshold = null; remember(); load();
  } }, state.models.map((m) => h("option", { value: m.id, selected: m === state.model, disabled: !usable(m) },
    m.kind === "builtin" ? "ImageNet (pre-trained)" : m.kind === "imported" ? `${m.name} (${m.task}, imported predictions)`
      : `${m.name} (${m.task}${m.latest ? `, v${m.latest}` : ", not trained"})`)));
  const scopeSel = h("select", { id: "pred-scope", "aria-label": "Images to predict" },
    ids.length ? h("option", { value: "ids" }, `the ${ids.length} selected image${ids.length === 1 ? "" : "s"}`) : null,
    Object.keys(filter).length ? h("option", { value: "filter" }, "images matching the dashboard filter") : null,
    h("option", { value: "unlabeled" }, "unlabeled images"), h("option", { value: "all" }, "all images"));
  const statusSel = h("select", { id: "pred-status", "aria-label": "Show", onchange: (e) => { state.status = e.target.value; remember(); load(); } },
    STATUSES.map((s) => h("option", { value: s, selected: s === state.status }, s)));
  const slider = h("input", { type: "range", id: "pred-threshold", min: 0, max: 1, step: 0.01, "aria-label": "Score threshold",
    oninput: (e) => setThreshold(Number(e.target.value)) });
  const sliderText = h("output", { for: "pred-threshold", id: "pred-threshold-value" });
  const head = h("div", { class: "card pred-head" });
  const status = h("div", { class: "sim-status", id: "pred-status-line", role: "status", "aria-live": "polite" });
  const grid = h("ul", { class: "pred-grid", id: "pred-grid", "aria-label": "Predictions" });
  const jobs = jobsPanel({ ctx, pid, can });

  function remember() {
    history.replaceState(null, "", href("predictions", { project: pid }, { ...q, model: model().name, status: state.status }));
  }

  function render() {
    const pending = state.cards.filter(addable);
    const selected = state.cards.filter((c) => c.selected);
    const older = state.cards.filter((c) => c.item.status === "pending" && c.item.version < latest()).length;
    const t = state.threshold ?? versionThreshold(model(), latest());
    slider.value = String(t); sliderText.textContent = t.toFixed(2);
    const showSlider = multi() || detection();
    head.replaceChildren(
      h("div", { class: "row" }, h("strong", {}, "Predict"), " with ", modelSel, " on ", scopeSel,
        h("button", { type: "button", class: "primary", id: "pred-run", disabled: state.busy || !can.has("label") || !usable(model()) || model().can_predict === false, onclick: predict,
          title: model().can_predict === false ? "Imported with its predictions: it has no weights and cannot predict; review them below" : null }, "Predict"),
        older && model().kind === "trained" ? h("button", { type: "button", id: "pred-refresh", disabled: state.busy, onclick: refreshNewest,
          title: "Predict these images again with the newest version" }, `Refresh ${older} with v${latest()}`) : null,
        h("span", { class: "spacer" }), h("a", { href: href("models", { project: pid }) }, "Models and metrics")),
      h("div", { class: "row" }, h("strong", {}, "Review"), " show ", statusSel,
        showSlider ? h("label", { class: "row" }, " threshold ", slider, sliderText) : null,
        h("span", { class: "spacer" }),
        h("span", { class: "sel-count", id: "pred-count" }, `${state.cards.length} shown, ${selected.length} selected`),
        h("button", { type: "button", id: "pred-select-all", onclick: () => { for (const c of pending) c.selected = true; render(); } }, "Select all"),
        h("button", { type: "button", onclick: () => { for (const c of state.cards) c.selected = false; render(); } }, "Clear"),
        h("button", { type: "button", class: "primary", id: "pred-add", disabled: state.busy || !can.has("label") || !selected.some(addable), onclick: addSelected,
          title: "Checked labels (and boxes) are added with source “auto”; people's labels are never removed" }, "Add to dataset"),
        h("button", { type: "button", id: "pred-dismiss", disabled: !can.has("label") || !selected.length, onclick: dismissSelected }, "Dismiss")));
    status.textContent = state.message;
    grid.classList.toggle("boxes", detection());
    grid.replaceChildren(...state.cards.map(card));
    if (!state.cards.length) grid.append(h("li", { class: "empty" }, state.status === "pending" ? "No predictions to review. Choose images and press Predict." : `No ${state.status} predictions.`));
    if (state.next) grid.append(h("li", { class: "empty" }, h("button", { type: "button", onclick: () => load(true) }, "Load more")));
  }

  function card(c) {
    const it = c.item;
    const ok = addable(c) && can.has("label");
    const builtinEmpty = model().kind === "builtin" && !(it.labels || []).length;
    const labels = (it.labels || []).map((l) => h("li", { class: "pred-label", dataset: { label: l.label, score: String(l.score) } },
      h("label", {}, h("input", { type: "checkbox", checked: c.labels.has(l.label), disabled: !ok, "aria-label": `${l.label} on image ${it.image}`,
        onchange: (e) => { if (!multi() && e.target.checked) c.labels.clear(); e.target.checked ? c.labels.add(l.label) : c.labels.delete(l.label); c.selected ||= e.target.checked; render(); } }),
      h("span", { class: "swatch", style: { background: colors[l.label] || "#888" } }), ` ${l.label}`),
      h("span", { class: "score" }, pctText(l.score)), h("span", { class: "bar", "aria-hidden": "true" }, h("span", { style: { width: pctText(l.score) } }))));
    const objects = (it.objects || []).map((o, i) => h("li", { class: "pred-object", dataset: { index: i } },
      h("label", {}, h("input", { type: "checkbox", checked: c.objects.has(i), disabled: !ok, "aria-label": `Box ${i + 1} ${o.label}`,
        onchange: (e) => { e.target.checked ? c.objects.add(i) : c.objects.delete(i); c.selected ||= e.target.checked; render(); } }),
      h("span", { class: "swatch", style: { background: colors[o.label] || "#888" } }), ` ${o.label}`), h("span", { class: "score" }, pctText(o.score))));
    return h("li", { class: `pred-card ${c.selected ? "selected" : ""} ${it.stale ? "stale" : ""}`, dataset: { image: it.image, status: it.status } },
      h("div", { class: "row" },
        h("input", { type: "checkbox", class: "pick", checked: c.selected, disabled: it.status !== "pending", "aria-label": `Select image ${it.image}`,
          onchange: (e) => { c.selected = e.target.checked; render(); } }),
        h("a", { href: href("tool", { project: pid, image: it.image }), title: "Open in the labeling tool" }, `Image ${it.image}`),
        h("span", { class: "badge" }, it.version ? `v${it.version}` : "pre-trained"),
        it.stale ? h("span", { class: "badge stale", title: "The model's labels were renamed or deleted since: review, it cannot be added" }, "stale") : null,
        it.status !== "pending" ? h("span", { class: `badge ${it.status}` }, it.status) : null),
      picture(c),
      objects.length ? h("ul", { class: "pred-objects" }, objects) : null,
      labels.length ? h("ul", { class: "pred-labels" }, labels) : null,
      builtinEmpty ? h("p", { class: "muted" }, "ImageNet says: ", (it.classes || []).slice(0, 3).map((x) => `${x.label} ${pctText(x.score)}`).join(", "), ". ",
        h("a", { href: href("models", { project: pid }) }, "Map classes to labels")) : null);
  }

  /** The image, with the boxes drawn dashed over it (in the image's own pixels). */
  function picture(c) {
    const boxes = (c.item.objects || []).length;
    const img = h("img", { src: `/api/v1/images/${c.image}/${boxes ? "file" : "thumbnail"}`, alt: `Image ${c.image}`, loading: "lazy",
      onload: (e) => { if (boxes && !c.size) { c.size = [e.target.naturalWidth, e.target.naturalHeight]; draw(c, svg); } } });
    const svg = svgEl("svg", { class: "pred-boxes", preserveAspectRatio: "xMidYMid meet" });
    if (boxes) { draw(c, svg); drag(c, svg); }
    return h("div", { class: "pred-pic" }, img, boxes ? svg : null);
  }

  function draw(c, svg) {
    if (!c.size) return;
    const [w, hgt] = c.size;
    svg.setAttribute("viewBox", `0 0 ${w} ${hgt}`);
    const px = Math.max(w, hgt) / 300;  // one screen pixel, about
    svg.replaceChildren();
    c.item.objects.forEach((o, i) => {
      const b = c.boxes[i], on = c.objects.has(i), color = colors[o.label] || "#ffeb3b";
      const g = svgEl("g", { class: `pred-box${on ? " on" : ""}`, "data-index": i });
      g.append(svgEl("rect", { x: b.x, y: b.y, width: b.w, height: b.h, fill: "none", stroke: color, "stroke-width": 2 * px, "stroke-dasharray": `${6 * px} ${4 * px}`, opacity: on ? 1 : 0.45 }));
      g.append(svgEl("text", { x: b.x + 2 * px, y: Math.max(13 * px, b.y - 3 * px), fill: "#fff", "font-size": 13 * px, "font-weight": 600, "paint-order": "stroke", stroke: color, "stroke-width": 3 * px }, `${o.label} ${pctText(o.score)}`));
      if (on && addable(c)) for (const k of CORNERS) {
        g.append(svgEl("rect", { class: "handle", "data-corner": k, "data-index": i, x: (k.includes("w") ? b.x : b.x + b.w) - 4 * px, y: (k.includes("n") ? b.y : b.y + b.h) - 4 * px,
          width: 8 * px, height: 8 * px, fill: "#fff", stroke: color, "stroke-width": px }));
      }
      svg.append(g);
    });
  }

  /** Corners drag with the pointer; the card is redrawn only when the drag ends. */
  function drag(c, svg) {
    let at = null;
    svg.addEventListener("pointerdown", (e) => {
      const handle = e.target.closest?.(".handle");
      if (!handle) return;
      e.preventDefault();
      at = { i: Number(handle.dataset.index), corner: handle.dataset.corner };
      svg.setPointerCapture(e.pointerId);
    });
    svg.addEventListener("pointermove", (e) => {
      if (!at) return;
      const p = new DOMPoint(e.clientX, e.clientY).matrixTransform(svg.getScreenCTM().inverse());
      const [w, hgt] = c.size;
      c.boxes[at.i] = dragCorner(c.boxes[at.i], at.corner, Math.max(0, Math.min(w, p.x)), Math.max(0, Math.min(hgt, p.y)));
      draw(c, svg);
    });
    const end = () => { if (at) { at = null; c.selected = true; render(); } };
    svg.addEventListener("pointerup", end);
    svg.addEventListener("pointercancel", end);
  }

  root.append(h("div", { class: "page wide predictions-page" }, h("h1", {}, "Predictions"), head, jobs.el, status, grid));

  // Live: the predict job's progress; its end lists the new predictions.
  const ended = new Map();  // job id -> its final state, as heard
  function finished(job) {
    state.message = job.status === "done" ? `Predicted ${job.result?.predicted ?? 0} image(s). Review them below.` : `The predict job ${job.status}: ${job.error || ""}`;
    state.job?.stop();
    state.job = null;
    jobs.onEvent({ type: "job", job });  // the panel too, if the end was read rather than heard
    load();
  }
  const off = ctx.onHub((msg) => {
    jobs.onEvent(msg);
    if (msg.type === "job" && msg.job.kind === "predict" && !["queued", "running"].includes(msg.job.status)) {
      ended.set(msg.job.id, msg.job);
      state.job?.feed(msg);
    }
    if (msg.type === "_resumed") load();
  });
  jobs.load();
  await load();
  return { unmount() { off(); jobs.stop(); state.job?.stop(); } };
}
