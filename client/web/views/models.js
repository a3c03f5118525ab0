// The Models page (#/p/N/models): the built-in ImageNet classifier with its class -> label
// mapping, trained models with their versions, training (new model or new version) with live
// job progress, downloads, each version's metric charts and two versions side by side, and the
// auto-retrain setting. REST: docs/api.md "Models and predictions"; job events: docs/protocol.md.
import { h, modal } from "../dom.js";
import { href } from "../router.js";
import { jobsPanel, watchJob } from "./jobs.js";
import { barChart, lineChart, pairBars } from "./charts.js";
import { pctText, perLabelRows, quality, qualityChange, thresholdPoint } from "./review.js";

const NEW = "\u0000new";  // the mapping editor's "add as a new label" choice

export async function mount(root, ctx) {
  const pid = ctx.route.params.project;
  const project = await ctx.api.get(`/api/v1/projects/${pid}`).catch((err) => { ctx.toast(err.message); return null; });
  if (!project) { root.append(h("p", { class: "empty" }, "This project cannot be opened. ", h("a", { href: "#/" }, "Back to projects"))); return {}; }
  const can = new Set(project.privileges);
  const manage = can.has("manage_labels");
  ctx.setCrumbs([{ text: "Projects", href: "#/" }, { text: project.name, href: href("dashboard", { project: pid }) }, { text: "Models" }]);

  const state = { models: [], labels: [], retrain: null, detail: new Map(), shown: new Map(), compare: new Map(), seenClasses: [], mapping: null };
  const list = h("div", { id: "model-list" });
  const retrainEl = h("div", { class: "card retrain", id: "retrain" });
  const jobs = jobsPanel({ ctx, pid, can });

  async function load() {
    try {
      const [m, l, s] = await Promise.all([ctx.api.get(`/api/v1/projects/${pid}/models`), ctx.api.get(`/api/v1/projects/${pid}/labels`),
        ctx.api.get(`/api/v1/projects/${pid}/settings`)]);
      state.models = m.models; state.labels = l.labels; state.retrain = s.project.retrain_after_images ?? null;
      for (const x of state.models) if (x.training) watch(x.training.job);
      // Charts of the latest version show at once (a project has few models).
      await Promise.all(state.models.filter((m) => (m.versions || []).length).map((m) => loadDetail(m.id)));
    } catch (err) { ctx.toast(err.message); }
    render();
  }

  // Training jobs being waited for (their end brings a new version): id -> watchJob handle.
  const watched = new Map();
  function watch(jobId) {
    if (watched.has(jobId)) return;
    watched.set(jobId, watchJob(ctx, pid, jobId, (job) => {
      watched.get(jobId)?.stop();
      watched.delete(jobId);
      jobs.onEvent({ type: "job", job });
      if (job.status === "failed") ctx.toast(`Training failed: ${job.error || "see the job"}`);
      load();
    }));
  }

  async function loadDetail(id) {
    try { state.detail.set(id, await ctx.api.get(`/api/v1/projects/${pid}/models/${id}`)); } catch (err) { ctx.toast(err.message); }
  }

  function render() {
    renderRetrain();
    list.replaceChildren(...state.models.map((m) => (m.kind === "builtin" ? builtinCard(m) : trainedCard(m))));
  }

  function renderRetrain() {
    const input = h("input", { type: "number", id: "retrain-n", min: 1, step: 1, value: state.retrain ?? "", placeholder: "off", disabled: !manage, "aria-label": "New human-labeled images before retraining" });
    retrainEl.replaceChildren(h("label", { for: "retrain-n" }, "Retrain the newest model automatically after "), input, " new human-labeled images ",
      manage ? h("button", { type: "button", id: "retrain-save", onclick: async () => {
        const v = input.value === "" ? null : Math.round(Number(input.value));
        try {
          const res = await ctx.api.patch(`/api/v1/projects/${pid}/settings`, { retrain_after_images: v });
          state.retrain = res.project.retrain_after_images ?? null;
          ctx.toast(state.retrain ? `A new version will train after ${state.retrain} new labeled images.` : "Automatic retraining is off.", "info");
        } catch (err) { ctx.toast(err.message); }
        renderRetrain();
      } }, "Save") : "",
      h("small", { class: "muted" }, state.retrain ? ` (on: every ${state.retrain})` : " (off)"));
  }

  // --- the built-in model and its mapping ---------------------------------------------------
  function builtinCard(m) {
    if (!state.mapping) state.mapping = Object.entries(m.mapping || {}).map(([cls, label]) => ({ cls, label: typeof label === "string" ? label : label.label, fresh: "" }));
    const rows = state.mapping;
    const names = state.labels.map((l) => l.name);
    const table = h("table", { class: "mapping", id: "mapping" }, h("thead", {}, h("tr", {}, h("th", {}, "ImageNet class"), h("th", {}, "Project label"), h("th"))),
      h("tbody", {}, rows.map((r, i) => h("tr", { dataset: { cls: r.cls } },
        h("td", {}, r.cls, (m.stale_mapping || []).includes(r.cls) ? h("span", { class: "badge stale", title: "Its label was renamed or deleted" }, "stale") : null),
        h("td", {}, h("select", { disabled: !manage, "aria-label": `Label for ${r.cls}`, onchange: (e) => { r.label = e.target.value; render(); } },
          h("option", { value: "" }, "— not mapped —"), names.map((n) => h("option", { value: n, selected: r.label === n }, n)),
          r.label && r.label !== NEW && !names.includes(r.label) ? h("option", { value: r.label, selected: true }, `${r.label} (new)`) : null,
          h("option", { value: NEW, selected: r.label === NEW }, "Add as a new label…")),
        r.label === NEW ? h("input", { class: "new-label", "aria-label": `New label for ${r.cls}`, value: r.fresh || r.cls, oninput: (e) => { r.fresh = e.target.value; } }) : null),
        h("td", {}, manage ? h("button", { type: "button", class: "icon", "aria-label": `Remove ${r.cls}`, onclick: () => { rows.splice(i, 1); render(); } }, "×") : null)))));
    const listId = "imagenet-seen";
    const add = h("input", { id: "map-class", list: listId, placeholder: "ImageNet class, e.g. tabby", "aria-label": "ImageNet class to map" });
    const form = manage ? h("form", { class: "row", onsubmit: (e) => {
      e.preventDefault();
      const cls = add.value.trim();
      if (cls && !rows.some((r) => r.cls === cls)) rows.push({ cls, label: names.includes(cls) ? cls : NEW, fresh: cls });
      render();
      document.getElementById("map-class")?.focus();
    } }, add, h("datalist", { id: listId }, state.seenClasses.filter((c) => !rows.some((r) => r.cls === c)).map((c) => h("option", { value: c }))),
    h("button", { type: "submit" }, "Add class"), h("span", { class: "spacer" }),
    h("button", { type: "button", class: "primary", id: "mapping-save", onclick: () => saveMapping() }, "Save mapping")) : null;
    const unmapped = state.seenClasses.filter((c) => !rows.some((r) => r.cls === c));
    return h("section", { class: "card model", dataset: { model: m.name } },
      h("div", { class: "row" }, h("h2", {}, "ImageNet"), h("span", { class: "badge" }, "pre-trained"), h("span", { class: "badge" }, m.task),
        h("span", { class: "muted" }, `${m.classes || 1000} ImageNet-1k classes (EfficientNet-Lite0)`), h("span", { class: "spacer" }),
        h("a", { class: "button", href: href("predictions", { project: pid }, { model: m.name }) }, "Predict…")),
      h("p", { class: "muted" }, "Its predictions are ImageNet class names: map the ones you need to your labels (several classes may map to one label)."),
      unmapped.length ? h("p", { class: "muted", id: "seen-classes" }, "Predicted here but not mapped: ",
        unmapped.slice(0, 12).map((c) => h("button", { type: "button", class: "chip-btn", disabled: !manage, onclick: () => { rows.push({ cls: c, label: NEW, fresh: c }); render(); } }, `+ ${c}`))) : null,
      table, form);
  }

  async function saveMapping() {
    const mapping = {};
    for (const r of state.mapping) {
      const label = r.label === NEW ? (r.fresh || r.cls).trim() : r.label;
      if (label) mapping[r.cls] = label;
    }
    try {
      await ctx.api.put(`/api/v1/projects/${pid}/models/imagenet/mapping`, { mapping });
      state.mapping = null;
      ctx.toast("Mapping saved.", "info");
      await load();
    } catch (err) { ctx.toast(err.message); }
  }

  // --- trained models -----------------------------------------------------------------------
  function trainedCard(m) {
    const versions = m.versions || [];
    const latest = versions[versions.length - 1];
    const detail = state.detail.get(m.id);
    const shown = state.shown.get(m.id) ?? latest?.version;
    const compare = state.compare.get(m.id) ?? null;
    const training = m.training ? jobProgress(m.training.job, m.training.status) : null;
    const table = versions.length ? h("table", { class: "versions", id: `versions-${m.id}` },
      h("thead", {}, h("tr", {}, ["Version", "Images", quality(latest, m.task).name, "Change", "Threshold", "Feature", "Trained", "", "Charts", "Compare"].map((t) => h("th", {}, t)))),
      h("tbody", {}, versions.map((v, i) => h("tr", { dataset: { version: v.version }, class: v.version === shown ? "shown" : "" },
        h("td", {}, `v${v.version}`), h("td", {}, String(v.images)), h("td", { class: "quality" }, pctText(quality(v, m.task).value)),
        changeCell(i ? quality(versions[i - 1], m.task).value : null, quality(v, m.task).value, i ? `since v${versions[i - 1].version}` : ""),
        h("td", {}, v.threshold?.toFixed?.(2) ?? "—"), h("td", {}, v.feature || "—"), h("td", {}, (v.created_at || "").slice(0, 16).replace("T", " ")),
        h("td", {}, v.stale ? h("span", { class: "badge stale", title: "A label it was trained on was renamed or deleted since" }, "stale") : null),
        h("td", {}, h("input", { type: "radio", name: `shown-${m.id}`, checked: v.version === shown, "aria-label": `Charts of version ${v.version}`, onchange: () => show(m.id, v.version) })),
        h("td", {}, h("input", { type: "checkbox", class: "compare", checked: v.version === compare, disabled: v.version === shown, "aria-label": `Compare with version ${v.version}`,
          onchange: (e) => { state.compare.set(m.id, e.target.checked ? v.version : null); openCharts(m.id); } })))))) : h("p", { class: "muted" }, "No version yet.");
    return h("section", { class: "card model", dataset: { model: m.name } },
      h("div", { class: "row" }, h("h2", {}, m.name), h("span", { class: "badge" }, m.task), h("span", { class: "badge" }, m.multi_label ? "multi-label" : "single-label"),
        latest?.stale ? h("span", { class: "badge stale" }, "stale") : null,
        latest ? h("span", { class: "muted" }, `${versions.length} version${versions.length === 1 ? "" : "s"}; labels: ${latest.labels.join(", ")}`) : null,
        h("span", { class: "spacer" }),
        m.kind === "imported" ? h("span", { class: "badge", title: "Its predictions came with an import; it has no weights: no training, predicting or download" }, "imported") : null,
        manage && m.kind !== "imported" ? h("button", { type: "button", class: "retrain-btn", disabled: !!m.training, onclick: () => train({ name: m.name, task: m.task, labels: latest?.labels }),
          title: "Train again on the same labels, with every image labeled since" }, "Train a new version") : null,
        latest && m.kind !== "imported" ? h("a", { class: "button", href: `/api/v1/projects/${pid}/models/${m.id}/download`, download: `${m.name}.zip` }, "Download") : null,
        latest ? h("a", { class: "button", href: href("predictions", { project: pid }, { model: m.name }) }, m.kind === "imported" ? "Review…" : "Predict…") : null),
      training, table, detail && shown ? charts(m, detail, shown, compare) : null);
  }

  function jobProgress(jobId, status) {
    const job = jobs.get?.(jobId);
    const done = job?.progress?.done ?? 0, total = job?.progress?.total ?? 0;
    return h("div", { class: "row training", dataset: { job: jobId } }, h("span", {}, `Training (job ${jobId}): ${job?.status || status}`),
      h("progress", { max: total || null, value: total ? done : null, "aria-label": "Training progress" }));
  }

  // A version's quality change (points, coloured) since an earlier one's; empty for the first.
  function changeCell(before, after, since) {
    const c = qualityChange(before, after);
    return h("td", { class: "change" }, c ? h("span", { class: c.cls, title: since }, c.text) : "");
  }

  async function show(id, version) { state.shown.set(id, version); if (state.compare.get(id) === version) state.compare.set(id, null); await openCharts(id); }
  async function openCharts(id) { if (!state.detail.has(id)) await loadDetail(id); render(); }

  function charts(m, detail, shown, compare) {
    const v = detail.versions.find((x) => x.version === shown);
    if (!v?.metrics || !Object.keys(v.metrics).length) return null;  // an imported model has none
    const met = v.metrics;
    const q = quality(v, m.task);
    const single = h("div", { class: "charts", id: `charts-${m.id}` },
      h("h3", {}, `Version ${v.version}: ${q.name} ${pctText(q.value)}`, h("small", { class: "muted" }, ` on ${v.images} images, ${met.folds || "?"}-fold cross-validation, feature ${met.feature || v.feature}`)),
      h("div", { class: "chart-row" },
        barChart([{ label: q.name, value: q.value ?? 0 }, ...Object.entries(met.cross_validation || {}).map(([k, x]) => ({ label: `CV ${k}`, value: x }))],
          { title: "Quality", fmt: (x) => pctText(x), width: 360 }),
        pairBars((met.labels || []).map((l) => ({ label: l.label, a: l.precision, b: l.recall })), ["precision", "recall"], { title: "Per label, at the threshold" }),
        lineChart([{ label: `v${v.version}`, points: (met.pr_curve || []).map((p) => ({ x: p.recall, y: p.precision })) }],
          { title: "Precision-recall curve", xLabel: "recall", yLabel: "precision", xMax: 1, marks: [thresholdPoint(met)].filter(Boolean) }),
        lineChart([{ label: `v${v.version}`, points: (met.learning_curve || []).map((p) => ({ x: p.images, y: p.quality })) }],
          { title: "Learning curve", xLabel: "training images", yLabel: q.name })));
    const w = compare !== null ? detail.versions.find((x) => x.version === compare) : null;
    if (!w?.metrics) return single;
    const [a, b] = [w, v].sort((x, y) => x.version - y.version);
    const qa = quality(a, m.task), qb = quality(b, m.task);
    const change = qualityChange(qa.value, qb.value);
    const verdict = !change ? null : change.points === 0 ? `v${b.version} is as good as v${a.version}`
      : `v${b.version} is ${change.points > 0 ? "better" : "worse"}: ${qa.name} ${change.text}`;
    // The better version's quality is highlighted; the last column says what changed.
    const best = change && change.points ? (change.points > 0 ? "b" : "a") : null;
    const row = (name, fa, fb, diff = "", cls = "") => h("tr", { class: cls }, h("th", {}, name),
      h("td", { class: cls && best === "a" ? "best" : "" }, fa), h("td", { class: cls && best === "b" ? "best" : "" }, fb), h("td", { class: "change" }, diff));
    const more = b.images - a.images;
    return h("div", {}, single, h("div", { class: "compare-box", id: `compare-${m.id}` },
      h("h3", {}, `Compare v${a.version} and v${b.version}`, verdict ? h("span", { class: `verdict ${change.cls}` }, ` — ${verdict}`) : null),
      h("table", { class: "compare-table" }, h("tr", {}, h("th"), h("th", {}, `v${a.version}`), h("th", {}, `v${b.version}`), h("th", {}, "Change")),
        row(qa.name, pctText(qa.value), pctText(qb.value), change ? h("span", { class: change.cls }, change.text) : "", "quality"),
        row("Images", a.images, b.images, more ? `${more > 0 ? "+" : "-"}${Math.abs(more)}` : ""),
        row("Threshold", a.threshold?.toFixed?.(2) ?? "—", b.threshold?.toFixed?.(2) ?? "—"), row("Feature", a.feature || "—", b.feature || "—"),
        row("Labels", a.labels.join(", "), b.labels.join(", "))),
      h("div", { class: "chart-row" },
        pairBars(perLabelRows(a, b, "precision"), [`v${a.version}`, `v${b.version}`], { title: "Precision per label" }),
        pairBars(perLabelRows(a, b, "recall"), [`v${a.version}`, `v${b.version}`], { title: "Recall per label" }),
        lineChart([a, b].map((x) => ({ label: `v${x.version}`, points: (x.metrics.pr_curve || []).map((p) => ({ x: p.recall, y: p.precision })) })),
          { title: "Precision-recall curves", xLabel: "recall", yLabel: "precision", xMax: 1, marks: [thresholdPoint(a.metrics), thresholdPoint(b.metrics)].filter(Boolean) }),
        lineChart([a, b].map((x) => ({ label: `v${x.version}`, points: (x.metrics.learning_curve || []).map((p) => ({ x: p.images, y: p.quality })) })),
          { title: "Learning curves", xLabel: "training images", yLabel: qa.name }))));
  }

  async function train(body) {
    try {
      const res = await ctx.api.post(`/api/v1/projects/${pid}/models`, body);
      jobs.onEvent({ type: "job", job: res.job });
      watch(res.job.id);
      ctx.toast(`Training ${res.model.name}: job ${res.job.id} queued.`, "info");
      await load();
      return true;
    } catch (err) { ctx.toast(err.message); return false; }
  }

  async function openTrain() {
    // The labels as they are now (the page may have opened before they loaded, or be old).
    try { state.labels = (await ctx.api.get(`/api/v1/projects/${pid}/labels`)).labels; } catch (err) { ctx.toast(err.message); return; }
    const error = h("p", { class: "error", role: "alert" });
    const multiRow = h("label", {}, h("input", { type: "checkbox", name: "multi", id: "train-multi" }), " Multi-label (an image may get several labels)");
    const labels = h("fieldset", { class: "label-pick" }, h("legend", {}, "Labels to learn"),
      state.labels.map((l) => h("label", {}, h("input", { type: "checkbox", name: "label", value: l.name, checked: true, dataset: { label: l.name } }), ` ${l.name}`)));
    const form = h("form", { class: "train-form", onsubmit: async (e) => {
      e.preventDefault();
      const f = new FormData(form);
      const chosen = f.getAll("label").map(String);
      if (chosen.length < 2) { error.textContent = "Choose at least two labels."; return; }
      const body = { task: f.get("task"), name: String(f.get("name")).trim(), labels: chosen };
      if (body.task === "classification") body.multi_label = f.get("multi") === "on";  // a detector finds any number of boxes
      try {
        const res = await ctx.api.post(`/api/v1/projects/${pid}/models`, body);
        jobs.onEvent({ type: "job", job: res.job });
        watch(res.job.id);
        dlg.close();
        ctx.toast(`Training ${res.model.name}: job ${res.job.id} queued.`, "info");
        await load();
      } catch (err) { error.textContent = err.message; }
    } },
    h("label", {}, "Task ", h("select", { name: "task", id: "train-task", onchange: (e) => { multiRow.hidden = e.target.value !== "classification"; } }, h("option", { value: "classification" }, "Classification (labels of the whole image)"),
      h("option", { value: "detection" }, "Object detection (boxes)"))),
    h("label", {}, "Name ", h("input", { name: "name", id: "train-name", required: true, maxlength: 200, placeholder: "e.g. pets" })),
    multiRow, labels, h("p", { class: "muted" }, "Trains on the images people labeled (labels added from predictions count once someone confirms them)."),
    h("div", { class: "row" }, error, h("span", { class: "spacer" }), h("button", { type: "submit", class: "primary", id: "train-start" }, "Start training")));
    const dlg = modal(ctx.overlayRoot, "Train a new model", form);
  }

  root.append(h("div", { class: "page wide models-page" },
    h("div", { class: "row" }, h("h1", {}, "Models"), h("span", { class: "spacer" }),
      manage ? h("button", { type: "button", class: "primary", id: "train-new", onclick: openTrain }, "Train new model") : null,
      h("a", { class: "button", id: "to-predictions", href: href("predictions", { project: pid }) }, "Review predictions")),
    retrainEl, jobs.el, list));

  // Live: a train job's progress and end (a new version) and predict jobs in the jobs panel.
  let timer = null;
  const off = ctx.onHub((msg) => {
    jobs.onEvent(msg);
    for (const w of watched.values()) w.feed(msg);
    if (msg.type === "job" && msg.job.project === Number(pid) && msg.job.kind === "train") {
      if (msg.job.status === "queued" || msg.job.status === "running") render();
      else if (!watched.has(msg.job.id)) { clearTimeout(timer); timer = setTimeout(load, 100); }  // e.g. an auto-retrain
    }
    if (msg.type === "_resumed") load();
  });
  ctx.api.get(`/api/v1/projects/${pid}/predictions`, { model: "imagenet", limit: 200 }).then((res) => {
    // The classes the model was surest of first: those are the ones worth a label.
    const seen = new Map();
    for (const it of res.items) for (const c of it.classes || []) seen.set(c.label, Math.max(seen.get(c.label) || 0, c.score));
    state.seenClasses = [...seen.entries()].sort((x, y) => y[1] - x[1]).map(([c]) => c).filter(Boolean);
    render();
  }).catch(() => {});
  jobs.load();
  await load();
  return { unmount() { off(); jobs.stop(); clearTimeout(timer); for (const w of watched.values()) w.stop(); } };
}
