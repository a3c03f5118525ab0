// "Label by similarity": the images most like a label's examples (or like one image), with scores
// and checkboxes; select everything above a score and add the label in one click. Labels added
// here go through POST /suggestions/accept, so they carry source "auto". Refreshes live.
import { h } from "../dom.js";
import { href } from "../router.js";
import { acceptBody, acceptSummary, featuresText, jobProgress, keepSelected, notReady, pct, score2, selectAbove, suggestThreshold } from "./scores.js";

const LIMITS = [50, 100, 200];

export async function mount(root, ctx) {
  const pid = ctx.route.params.project;
  const q = ctx.route.query;
  const [project, labelsRes] = await Promise.all([
    ctx.api.get(`/api/v1/projects/${pid}`), ctx.api.get(`/api/v1/projects/${pid}/labels`),
  ]).catch((err) => { ctx.toast(err.message); return []; });
  if (!project) { root.append(h("p", { class: "empty" }, "This project cannot be opened. ", h("a", { href: "#/" }, "Back to projects"))); return {}; }
  const can = new Set(project.privileges);
  ctx.setCrumbs([{ text: "Projects", href: "#/" }, { text: project.name, href: href("dashboard", { project: pid }) }, { text: /^\d+$/.test(q.image || "") ? "Find similar images" : "Label by similarity" }]);

  const labels = labelsRes.labels;
  const colors = Object.fromEntries(labels.map((l) => [l.name, l.color]));
  const imageMode = /^\d+$/.test(q.image || "");
  const state = {
    label: q.label && labels.some((l) => l.name === q.label) ? q.label : (imageMode ? "" : labels[0]?.name || ""),
    image: imageMode ? Number(q.image) : null, source: null,
    labeled: ["true", "false"].includes(q.labeled) ? q.labeled : "any",
    limit: LIMITS.includes(Number(q.limit)) ? Number(q.limit) : LIMITS[0],
    items: [], selected: new Set(), loaded: false, waiting: null, error: "", retry: false, busy: false, thresholdTouched: false,
  };

  const grid = h("ul", { class: "grid sim-grid", id: "sim-grid", "aria-label": "Similar images" });
  const status = h("div", { class: "sim-status", id: "sim-status", role: "status", "aria-live": "polite" });
  const count = h("span", { class: "sel-count", id: "sim-count", "aria-live": "polite" });
  const threshold = h("input", { type: "number", id: "sim-threshold", min: 0, max: 1, step: 0.01, value: 0.8, "aria-label": "Lowest score to select",
    oninput: () => { state.thresholdTouched = true; } });
  const labelSel = h("select", { id: "sim-label", "aria-label": imageMode ? "Label to add" : "Label",
    onchange: (e) => { state.label = e.target.value; remember(); if (!imageMode) { state.thresholdTouched = false; reload(); } else render(); } },
  imageMode ? h("option", { value: "" }, "(choose a label)") : null,
  labels.map((l) => h("option", { value: l.name, selected: l.name === state.label }, l.name)));
  const limitSel = h("select", { id: "sim-limit", "aria-label": "How many images to show", onchange: (e) => { state.limit = Number(e.target.value); remember(); reload(); } },
    LIMITS.map((n) => h("option", { value: n, selected: n === state.limit }, `${n} most similar`)));
  const labeledSel = h("select", { id: "sim-labeled", "aria-label": "Which images", onchange: (e) => { state.labeled = e.target.value; remember(); reload(); } },
    [["any", "all images"], ["false", "unlabeled only"], ["true", "labeled only"]].map(([v, t]) => h("option", { value: v, selected: v === state.labeled }, t)));
  const applyBtn = h("button", { type: "button", class: "primary", id: "sim-apply", onclick: apply });
  const source = h("div", { class: "sim-source", id: "sim-source" });

  function remember() {
    // The address follows the choices (a reload or a shared link shows the same list), without a remount.
    const query = imageMode ? { image: state.image, label: state.label, labeled: state.labeled === "any" ? "" : state.labeled } : { label: state.label };
    history.replaceState(null, "", href("similar", { project: pid }, { ...query, limit: state.limit === LIMITS[0] ? "" : state.limit }));
  }

  function render() {
    const n = state.selected.size;
    count.textContent = state.loaded && !state.waiting ? `${state.items.length} shown, ${n} selected` : "";
    applyBtn.textContent = state.label ? `Add “${state.label}” to ${n} selected` : "Choose a label to add";
    applyBtn.disabled = !n || !state.label || state.busy || !can.has("label");
    applyBtn.title = can.has("label") ? "The label is added with source “auto”; the images show as auto-labeled" : "You need the label privilege";
    renderStatus();
    // A live refresh keeps the keyboard user's place (the checkbox they were on, if still listed).
    const focused = grid.contains(document.activeElement) ? document.activeElement.closest(".sim-tile")?.dataset.id : null;
    grid.replaceChildren(...state.items.map(card));
    if (focused) focusCheck(focused);
  }

  function renderStatus() {
    const w = state.waiting;
    if (w) {
      status.replaceChildren(h("p", {}, featuresText(w)),
        w.total ? h("progress", { id: "features-progress", max: w.total, value: w.done }) : h("progress", { id: "features-progress" }),
        h("p", { class: "muted" }, "The list appears by itself when the features are ready. ",
          h("button", { type: "button", onclick: reload }, "Check now")));
    } else if (state.error) {
      status.replaceChildren(h("p", { class: "error" }, state.error),
        state.retry && can.has("label") ? h("button", { type: "button", id: "compute-features", onclick: computeFeatures }, "Compute image features again") : "");
    } else if (state.loaded && !state.items.length) {
      status.replaceChildren(h("p", { class: "empty" }, imageMode ? "No similar images to show."
        : state.label ? `No more images to suggest for “${state.label}”: every image carries it, or it has no labeled examples yet.` : "Create a label and label a few images first."));
    } else status.replaceChildren();
  }

  function card(item) {
    const on = state.selected.has(item.image);
    const box = h("input", { type: "checkbox", checked: on, class: "sim-check", "aria-label": `Select ${item.name} (score ${score2(item.similarity)})`,
      onchange: (e) => { if (e.target.checked) state.selected.add(item.image); else state.selected.delete(item.image); render(); focusCheck(item.image); } });
    return h("li", { class: "tile sim-tile" + (on ? " selected" : ""), dataset: { id: String(item.image), score: String(item.similarity) },
      ondblclick: () => ctx.navigate(href("tool", { project: pid, image: item.image })),
      onclick: (e) => { if (!e.target.closest("input, button, a")) { box.checked = !box.checked; box.dispatchEvent(new Event("change")); } } },
    h("div", { class: "thumb" },
      h("img", { src: `/api/v1/images/${item.image}/thumbnail`, alt: item.name, loading: "lazy", decoding: "async", draggable: "false" }),
      h("div", { class: "badges" }, h("span", { class: "badge score", title: `Similarity ${item.similarity.toFixed(3)}` }, score2(item.similarity)))),
    h("div", { class: "sim-row" }, box, h("span", { class: "tile-name", title: item.name }, item.name),
      h("a", { class: "sim-more", href: href("similar", { project: pid }, { image: item.image }), title: "Find images similar to this one", "aria-label": `Find images similar to ${item.name}` }, "≈")),
    h("div", { class: "scorebar", "aria-hidden": "true" }, h("span", { style: { width: pct(item.similarity) } })),
    h("div", { class: "chips" }, (item.labels || []).map((name) => h("span", { class: "chip", style: { "--chip": colors[name] || "#888" } }, name))));
  }

  // Keyboard: arrows move between the images' checkboxes, Space (native) toggles one.
  grid.addEventListener("keydown", (e) => {
    const boxes = [...grid.querySelectorAll(".sim-check")];
    const at = boxes.indexOf(document.activeElement);
    if (at < 0 || e.altKey || e.ctrlKey || e.metaKey) return;
    const cols = Math.max(1, Math.round(grid.clientWidth / (grid.querySelector(".sim-tile")?.offsetWidth || 1)));
    const move = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols }[e.key];
    if (move === undefined) return;
    e.preventDefault();
    boxes[Math.min(boxes.length - 1, Math.max(0, at + move))].focus();
  });

  function focusCheck(id) { grid.querySelector(`li[data-id="${id}"] .sim-check`)?.focus(); }

  let loading = 0;
  const ended = new Set();  // ids of jobs heard finishing
  async function reload() {
    const mine = ++loading;  // a slower older answer never overwrites a newer one
    try {
      const res = imageMode
        ? await ctx.api.get(`/api/v1/projects/${pid}/images/${state.image}/similar`, { limit: state.limit, labeled: state.labeled })
        : state.label ? await ctx.api.post(`/api/v1/projects/${pid}/similar`, { label: state.label, limit: state.limit }) : { items: [] };
      if (mine !== loading) return;
      state.items = res.items || []; state.waiting = null; state.error = ""; state.retry = false;
      state.selected = keepSelected(state.selected, state.items);
      if (!state.thresholdTouched && state.items.length) threshold.value = String(suggestThreshold(state.items));
    } catch (err) {
      if (mine !== loading) return;
      const nr = notReady(err);
      state.items = [];
      // A job that ended while this request was answered is not waited for: ask again.
      if (nr && nr.job !== null && ended.delete(nr.job)) return reload();
      if (nr && nr.job !== null) { state.waiting = nr; state.error = ""; }
      else { state.waiting = null; state.error = err.message; state.retry = err.code === "not_ready"; }
    }
    state.loaded = true;
    render();
  }

  async function computeFeatures() {
    try {
      const res = await ctx.api.post(`/api/v1/projects/${pid}/embeddings`, {});
      const job = res?.job ?? res;
      state.waiting = { job: job?.id ?? null, done: job?.progress?.done ?? 0, total: job?.progress?.total ?? 0 };
      state.error = ""; state.retry = false;
      render();
    } catch (err) { ctx.toast(err.message); }
  }

  async function apply() {
    const ids = state.items.map((it) => it.image).filter((id) => state.selected.has(id));
    if (!ids.length || !state.label) return;
    state.busy = true; render();
    try {
      const res = await ctx.api.post(`/api/v1/projects/${pid}/suggestions/accept`, acceptBody(ids, state.label));
      ctx.toast(acceptSummary(res, state.label), "info");
      state.selected = new Set();
    } catch (err) { ctx.toast(err.message); }
    state.busy = false;
    await reload();
  }

  async function loadSource() {
    try { state.source = await ctx.api.get(`/api/v1/images/${state.image}`); } catch (err) { ctx.toast(err.message); return; }
    source.replaceChildren(h("img", { src: state.source.thumbnail_url, alt: state.source.name }),
      h("div", { class: "tile-name", title: state.source.name }, state.source.name),
      h("a", { href: href("tool", { project: pid, image: state.image }) }, "Open in the labeling tool"));
  }

  root.append(h("div", { class: "dashboard similar-page" },
    h("aside", { class: "sidebar", "aria-label": "Similarity controls" },
      h("h1", { class: "project-name" }, imageMode ? "Find similar images" : "Label by similarity"),
      imageMode ? [h("h3", {}, "Images like"), source, h("label", { class: "field" }, "Among", labeledSel)]
        : [h("p", { class: "muted" }, "Images not carrying the label, most like the images that carry it."), h("label", { class: "field" }, "Label", labelSel)],
      h("label", { class: "field" }, "Show", limitSel),
      h("h3", {}, "Select"),
      h("div", { class: "row" }, h("label", { for: "sim-threshold" }, "Score ≥"), threshold,
        h("button", { type: "button", id: "sim-select-above", onclick: () => { state.selected = selectAbove(state.items, threshold.value); render(); },
          title: "Select every image whose score is at least this" }, "Select")),
      h("div", { class: "row" },
        h("button", { type: "button", onclick: () => { state.selected = new Set(state.items.map((it) => it.image)); render(); } }, "Select all"),
        h("button", { type: "button", id: "sim-clear", onclick: () => { state.selected = new Set(); render(); } }, "Select none")),
      h("h3", {}, "Apply"),
      imageMode ? h("label", { class: "field" }, "Label", labelSel) : null,
      applyBtn,
      h("p", { class: "muted small" }, "Added labels are marked “auto” and the images show as auto-labeled; filter them on the dashboard to review."),
      h("p", {}, h("a", { href: href("dashboard", { project: pid }) }, "‹ Back to the dashboard"))),
    h("section", { class: "content" }, h("div", { class: "toolbar" }, count, h("span", { class: "spacer" }),
      h("span", { class: "muted" }, "Click or Space toggles an image, arrows move; double-click opens it")), status, grid)));

  // Live: labels added anywhere (here, the dashboard, the tool) change the list; feature jobs end.
  let timer = null;
  const soft = () => { clearTimeout(timer); timer = setTimeout(() => { if (!state.busy && !state.waiting) reload(); }, 500); };
  const off = ctx.onHub((msg) => {
    if (msg.type === "progress" || msg.type === "_resumed" || (msg.type === "op" && /label/.test(msg.op?.kind || ""))) soft();
    if (msg.type === "job" && jobProgress(msg, null)?.finished) ended.add(msg.job?.id);
    if (msg.type === "job" && state.waiting) {
      const p = jobProgress(msg, state.waiting.job);
      if (!p) return;
      if (p.finished) { state.waiting = null; reload(); }
      else if (p.failed) { state.waiting = null; state.error = "Computing the image features failed."; render(); }
      else { state.waiting = { ...state.waiting, done: p.done, total: p.total }; renderStatus(); }
    }
  });

  render();
  if (imageMode) await loadSource();
  await reload();
  return { unmount() { off(); clearTimeout(timer); } };
}
