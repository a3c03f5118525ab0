// Supervisor view (view_stats): progress, time per user per day, objects per hour, who holds what.
import { fmtDuration, h } from "../dom.js";
import { href } from "../router.js";
import { barChart, stackedDays, toCsv } from "./charts.js";
import { STATES, STATE_TEXT } from "./workflow.js";

/** Normalize the stats response into rows {user_id, name, day, active_seconds, images, objects_created, objects_edited, ops}. */
export function statRows(stats) {
  const rows = [];
  const users = new Map((stats.users || []).map((u) => [u.user_id ?? u.id, u]));
  for (const r of stats.per_user_day || stats.per_day || []) {
    const uid = r.user_id ?? r.user?.id;
    const u = users.get(uid) || r.user || {};
    rows.push({
      user_id: uid, name: u.name || r.name || `user ${uid}`, day: r.day || r.date,
      active_seconds: r.active_seconds ?? r.seconds ?? r.time_seconds ?? 0,
      images: r.images_labeled ?? r.images ?? 0, objects_created: r.objects_created ?? 0,
      objects_edited: r.objects_edited ?? 0, ops: r.ops ?? 0, objects_per_hour: r.objects_per_hour ?? null,
    });
  }
  return rows;
}

export function perUser(rows) {
  const m = new Map();
  for (const r of rows) {
    const u = m.get(r.user_id) || { user_id: r.user_id, name: r.name, active_seconds: 0, images: 0, objects_created: 0, objects_edited: 0, ops: 0 };
    for (const k of ["active_seconds", "images", "objects_created", "objects_edited", "ops"]) u[k] += r[k] || 0;
    m.set(r.user_id, u);
  }
  return [...m.values()];
}

/** Objects created per active hour; 0 until a minute of labeling time makes the rate meaningful. */
export function objectsPerHour(u) {
  return u.active_seconds >= 60 ? u.objects_created / (u.active_seconds / 3600) : 0;
}

export async function mount(root, ctx) {
  const pid = ctx.route.params.project;
  const project = await ctx.api.get(`/api/v1/projects/${pid}`).catch((err) => { ctx.toast(err.message); return null; });
  if (!project) return {};
  ctx.setCrumbs([{ text: "Projects", href: "#/" }, { text: project.name, href: href("dashboard", { project: pid }) }, { text: "Supervisor view" }]);
  const kpis = h("div", { class: "kpis", id: "kpis", "aria-live": "polite" });
  const charts = h("div", { class: "row", style: { alignItems: "flex-start" } });
  const holders = h("table", { class: "data", id: "holders" });
  const timeTable = h("table", { class: "data", id: "time-table" });
  const stateKpis = h("div", { class: "kpis", id: "state-kpis", "aria-live": "polite" });
  const reviewKpis = h("div", { class: "kpis", id: "review-kpis" });
  const peopleTable = h("table", { class: "data", id: "people-table" });
  const labelTable = h("table", { class: "data", id: "label-table" });
  const error = h("p", { class: "error", role: "alert" });
  let rows = [];

  const count = async (q) => (await ctx.api.get(`/api/v1/projects/${pid}/images`, { ...q, limit: 1 })).total;

  function showProgress({ total, labeled, in_progress: locked, untouched, states }) {
    // Labels (upload tags included) say nothing about work done: the states do.
    kpis.replaceChildren(
      h("div", { class: "kpi", dataset: { k: "labeled" }, title: "Images with objects or classification labels, labels given at upload included" }, h("b", {}, String(labeled)), "have labels"),
      h("div", { class: "kpi", dataset: { k: "progress" } }, h("b", {}, String(locked)), "open, no labels yet"),
      h("div", { class: "kpi", dataset: { k: "untouched" } }, h("b", {}, String(Math.max(0, untouched))), "without labels"));
    if (states) showStates(states, total);
  }

  function showStates(states, total) {
    const finished = (states.done || 0) + (states.accepted || 0);
    stateKpis.replaceChildren(
      ...STATES.map((st) => h("div", { class: `kpi state-${st}`, dataset: { k: st } }, h("b", {}, String(states[st] || 0)), STATE_TEXT[st].toLowerCase())),
      h("div", { class: "kpi", dataset: { k: "finished" }, title: "Done or accepted, of all images" }, h("b", {}, total ? `${Math.round((100 * finished) / total)}%` : "–"), `done of ${total}`),
      h("div", { class: "kpi", dataset: { k: "accepted-share" } }, h("b", {}, total ? `${Math.round((100 * (states.accepted || 0)) / total)}%` : "–"), "accepted"));
  }

  function showWorkflow(flow) {
    if (!flow) return;
    const rate = (r) => (r === null || r === undefined ? "–" : `${Math.round(r * 100)}%`);
    const review = flow.review;
    reviewKpis.replaceChildren(
      h("div", { class: "kpi", dataset: { k: "reviews" } }, h("b", {}, String(review.accepted + review.rejected)), "reviews"),
      h("div", { class: "kpi", dataset: { k: "rejection-rate" } }, h("b", {}, rate(review.rejection_rate)), "rejected"),
      ...review.per_day.slice(-7).map((d) => h("div", { class: "kpi", dataset: { day: d.day } }, h("b", {}, `${d.accepted} / ${d.rejected}`), `${d.day.slice(5)} accepted / rejected`)));
    const th = (t, title) => h("th", { title }, t);
    peopleTable.replaceChildren(h("thead", {}, h("tr", {}, th("Person"), th("Done", "Marked done by them, waiting for review"), th("Accepted"), th("Rejected", "Rejected, not fixed yet"),
      th("Reopened", "Marked done, reopened by a manager"), th("Reviews made"), th("Rejection rate", "Of the reviews their work received"))),
      h("tbody", {}, flow.per_user.length ? flow.per_user.map((u) => h("tr", { dataset: { user: String(u.user.id) } }, h("td", { class: "name" }, u.user.name),
        h("td", { class: "done" }, u.done), h("td", { class: "accepted" }, u.accepted), h("td", { class: "rejected" }, u.rejected), h("td", {}, u.in_progress),
        h("td", { class: "reviewed" }, u.reviewed), h("td", { class: "rate" }, rate(u.rejection_rate))))
        : h("tr", {}, h("td", { colspan: 7, class: "muted" }, "Nobody has marked an image done yet."))));
    labelTable.replaceChildren(h("thead", {}, h("tr", {}, th("Label"), th("Objects"), th("Images with objects"), th("Images classified", "Classification labels, those given at upload included"))),
      h("tbody", {}, flow.per_label.length ? flow.per_label.map((l) => h("tr", { dataset: { label: l.label } }, h("td", {}, l.label || "(no label)"),
        h("td", { class: "objects" }, l.objects), h("td", { class: "images" }, l.images), h("td", {}, l.classified)))
        : h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No labels used yet."))));
  }

  async function loadCounts() {
    const [total, labeled, lockedUnlabeled] = await Promise.all([count({}), count({ labeled: true }), count({ locked: true, labeled: false })]);
    // Same definitions as the hub's progress events: in progress = held now and not labeled yet.
    showProgress({ total, labeled, in_progress: lockedUnlabeled, untouched: total - labeled - lockedUnlabeled });
    const held = (await ctx.api.get(`/api/v1/projects/${pid}/images`, { locked: true, limit: 200 })).images;
    holders.replaceChildren(h("thead", {}, h("tr", {}, h("th", {}, "Who"), h("th", {}, "Holds image"), h("th", {}, "Until"))),
      h("tbody", {}, held.length ? held.map((i) => h("tr", {}, h("td", {}, i.lock?.holder?.name || "?"),
        h("td", {}, h("a", { href: href("tool", { project: pid, image: i.id }) }, i.name)), h("td", {}, new Date(i.lock?.expires_at).toLocaleTimeString())))
        : h("tr", {}, h("td", { colspan: 3, class: "muted" }, "Nobody is labeling right now."))));
  }

  async function loadStats() {
    try {
      const stats = await ctx.api.get(`/api/v1/projects/${pid}/stats`);
      rows = statRows(stats);
      if (stats.progress?.states) showStates(stats.progress.states, stats.progress.total);
      showWorkflow(stats.workflow);
      error.textContent = "";
    } catch (err) { error.textContent = `Labeling statistics are not available: ${err.message}`; rows = []; }
    const users = perUser(rows);
    const days = [...new Set(rows.map((r) => r.day))].sort();
    const series = users.map((u) => ({ label: u.name, values: Object.fromEntries(rows.filter((r) => r.user_id === u.user_id).map((r) => [r.day, r.active_seconds / 60])) }));
    charts.replaceChildren(
      stackedDays(days, series, { title: "Labeling time per day (minutes)", fmt: (v) => v.toFixed(1) }),
      barChart(users.map((u) => ({ label: u.name, value: u.images })), { title: "Images labeled per user" }),
      barChart(users.map((u) => ({ label: u.name, value: objectsPerHour(u) })), { title: "Objects per hour of labeling (after a minute of work)", fmt: (v) => v.toFixed(1) }));
    timeTable.replaceChildren(h("thead", {}, h("tr", {}, ["Day", "User", "Active time", "Images", "Objects created", "Objects edited", "Edits", "Objects / hour"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.map((r) => h("tr", { dataset: { user: String(r.user_id), day: r.day } }, h("td", {}, r.day), h("td", {}, r.name), h("td", {}, fmtDuration(r.active_seconds)), h("td", {}, r.images),
        h("td", { class: "created" }, r.objects_created), h("td", {}, r.objects_edited), h("td", {}, r.ops), h("td", {}, r.objects_per_hour ?? "–")))));
  }

  function downloadCsv() {
    const csv = toCsv(["day", "user", "active_seconds", "images_labeled", "objects_created", "objects_edited", "ops", "objects_per_hour"],
      rows.map((r) => [r.day, r.name, Math.round(r.active_seconds), r.images, r.objects_created, r.objects_edited, r.ops, r.objects_per_hour ?? ""]));
    const a = h("a", { href: URL.createObjectURL(new Blob([csv], { type: "text/csv" })), download: `labelhub-project-${pid}-time.csv` });
    document.body.append(a); a.click(); a.remove();
  }

  root.append(h("section", { class: "page wide" }, h("h1", {}, `Supervisor view — ${project.name}`), error,
    h("h2", {}, "Work by state"), stateKpis, h("h2", {}, "Labels"), kpis,
    h("h2", {}, "Review"), reviewKpis, h("h2", {}, "Work by person"), h("div", { class: "scroll-x" }, peopleTable),
    h("h2", {}, "By label"), h("div", { class: "scroll-x" }, labelTable),
    h("h2", {}, "Charts"), charts,
    h("h2", {}, "Who holds which image now"), holders,
    h("h2", {}, "Time per user per day ", h("button", { type: "button", id: "csv-btn", onclick: downloadCsv }, "Download CSV")), h("div", { class: "scroll-x" }, timeTable)));

  let timer = null;
  const refresh = () => { clearTimeout(timer); timer = setTimeout(() => { loadCounts().catch(() => {}); loadStats(); }, 300); };
  const off = ctx.onHub((msg) => {
    if (msg.type === "progress") showProgress(msg);
    // Also once the socket is up: an edit between the first load and joining the room sends us nothing.
    if (msg.type === "progress" || msg.type === "lock" || msg.type === "_resumed" || (msg.type === "_conn" && msg.state === "online")
        || (msg.type === "op" && msg.op?.kind === "state")) refresh();
  });
  await Promise.all([loadCounts().catch((err) => { error.textContent = err.message; }), loadStats()]);
  return { unmount() { off(); clearTimeout(timer); } };
}
