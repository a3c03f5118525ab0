// The project dashboard: image grid (paged), filters, selection, label panel, and the dialogs.
import { h } from "../dom.js";
import { href } from "../router.js";
import { clickSelect, emptySelection, filterFromQuery, isSelected, selectAll, selectionCount, target, FILTER_KEYS } from "./selection.js";
import { tile } from "./tiles.js";
import { labelPanel } from "./labelpanel.js";
import { openUpload } from "./upload.js";
import { openSettings } from "./settings.js";
import { openExport, openImport } from "./transfer.js";
import { imageMenu, openMenuFor } from "./imagemenu.js";
import { openLabelDialog } from "./labeldialog.js";
import { jobsPanel } from "./jobs.js";
import { STATES, STATE_TEXT } from "./workflow.js";

const PAGE = 60;

export async function mount(root, ctx) {
  const pid = ctx.route.params.project;
  const project = await ctx.api.get(`/api/v1/projects/${pid}`).catch((err) => { ctx.toast(err.message); return null; });
  if (!project) { root.append(h("p", { class: "empty" }, "This project cannot be opened. ", h("a", { href: "#/" }, "Back to projects"))); return {}; }
  const can = new Set(project.privileges);
  ctx.setCrumbs([{ text: "Projects", href: "#/" }, { text: project.name }]);

  const state = { filter: filterFromQuery(ctx.route.query), page: Number(ctx.route.query.page || 0), images: [], total: 0,
                  sel: emptySelection(), labels: [], members: [], presence: new Map(), where: new Map() };
  const grid = h("ul", { class: "grid", role: "listbox", "aria-multiselectable": "true", "aria-label": "Images", tabindex: "0" });
  const status = h("span", { class: "sel-count", "aria-live": "polite" });
  const pager = h("span", { class: "pager" });
  const filters = h("form", { class: "filters", "aria-label": "Filters", onchange: () => setFilter(readFilters()) });
  const panel = labelPanel({ ctx, pid, can, getTarget: () => target(state.sel, state.filter), countSelected: () => selectionCount(state.sel, state.total), reload: () => reload(),
    onLabels: (labels) => { state.labels = labels; renderFilters(); } });
  const jobs = jobsPanel({ ctx, pid, can });

  function setFilter(filter) {
    ctx.navigate(href("dashboard", { project: pid }, { ...filter }));
  }

  function readFilters() {
    const out = {};
    for (const el of filters.elements) if (el.name && el.value !== "") out[el.name] = el.value;
    return out;
  }

  function renderFilters() {
    const f = state.filter;
    const tri = (name, text, yes, no) => h("label", {}, text, h("select", { name },
      h("option", { value: "" }, "any"),
      h("option", { value: "true", selected: f[name] === true }, yes),
      h("option", { value: "false", selected: f[name] === false }, no)));
    filters.replaceChildren(
      h("h3", {}, "Filter"),
      tri("labeled", "Labeled", "labeled", "unlabeled"),
      h("label", {}, "Label", h("select", { name: "label" }, h("option", { value: "" }, "any"),
        state.labels.map((l) => h("option", { value: l.name, selected: f.label === l.name }, l.name)))),
      tri("auto_labeled", "Auto-labeled", "yes", "no"),
      h("label", {}, "Labeled by", h("select", { name: "labeled_by" }, h("option", { value: "" }, "anyone"),
        state.members.map((m) => h("option", { value: m.user_id, selected: f.labeled_by === m.user_id }, m.name)))),
      tri("locked", "Being labeled", "now", "not now"),
      h("label", {}, "State", h("select", { name: "state", id: "state-filter" }, h("option", { value: "" }, "any"),
        STATES.map((st) => h("option", { value: st, selected: f.state === st }, STATE_TEXT[st])))),
      h("label", {}, "Assigned to", h("select", { name: "assignee" }, h("option", { value: "" }, "anyone"),
        state.members.map((m) => h("option", { value: m.user_id, selected: f.assignee === m.user_id }, m.name)))),
      Object.keys(f).length ? h("button", { type: "button", onclick: () => setFilter({}) }, "Clear filters") : "");
  }

  /** The tile menu (⋯, or a right-click on the tile): this image, or the selection it is part of. */
  function menuItems(image) {
    const n = selectionCount(state.sel, state.total);
    const many = n > 1 ? ` (${n} selected)` : "";
    return [{ text: "Open in the labeling tool", href: href("tool", { project: pid, image: image.id }, state.filter) },
      { text: "Find similar images", href: href("similar", { project: pid }, { image: image.id }) },
      can.has("label") ? { text: `Label images…${many}`, onClick: () => openLabelDialog({ ctx, pid, labels: state.labels, count: n,
        target: target(state.sel, state.filter), done: async () => { await loadLabels(); await reload(); } }) } : null,
      can.has("label") && ["new", "in_progress", "rejected"].includes(image.state || "new")
        ? { text: "Mark done", onClick: () => markDone(image) } : null,
      can.has("delete") ? { text: `Delete…${many}`, onClick: deleteSelected } : null].filter(Boolean);
  }

  /** "Done" needs the image's lock (the server's rule): take it, mark done, hand it back. */
  async function markDone(image) {
    try {
      const ack = await ctx.hub.openImage(image.id);
      try {
        await ctx.hub.request("set_state", { image: image.id, action: "done", token: ack.lock.token, expect: image.state || "new" });
        ctx.toast(`${image.name}: marked done.`, "info");
      } finally { await ctx.hub.releaseImage(image.id); }
    } catch (err) {
      ctx.toast(err.code === "locked" ? `${image.name} is being labeled by ${err.detail?.holder?.name || "someone else"}: not marked done.` : err.message);
    }
    await reload();
  }

  // Right-click on a tile opens its menu; like a file manager, a tile outside the selection
  // becomes the selection first, so the menu acts on what the person pointed at.
  grid.addEventListener("contextmenu", (e) => {
    const li = e.target.closest("li.tile");
    if (!li) return;
    e.preventDefault();
    const id = Number(li.dataset.id);
    if (!isSelected(state.sel, id)) state.sel = clickSelect(emptySelection(), state.images.map((i) => i.id), id);
    openMenuFor(id);
    renderGrid();
    grid.querySelector(`li.tile[data-id="${id}"] [role=menuitem]`)?.focus();
  });

  function renderGrid() {
    const me = ctx.me;
    // Keyboard users keep their place: the focused tile is focused again after the redraw.
    const focused = grid.contains(document.activeElement) ? document.activeElement.closest("li.tile")?.dataset.id : null;
    grid.replaceChildren(...state.images.map((img) => tile(img, {
      selected: isSelected(state.sel, img.id), me,
      presence: [...(state.presence.get(img.id) || [])],
      onChip: (image, label) => makeDefault(image, label),
      menu: (image) => imageMenu(image, menuItems(image)),
    })));
    if (focused) (grid.querySelector(`li.tile[data-id="${focused}"]`) || grid.querySelector("li.tile") || grid).focus({ preventScroll: true });
    if (!state.images.length) grid.append(h("li", { class: "empty" }, state.total === 0 && !Object.keys(state.filter).length
      ? "No images yet. Use Upload to add some." : "No images match this filter."));
    const pages = Math.max(1, Math.ceil(state.total / PAGE));
    // One page of tiles in the DOM at a time; any page is one request away (smooth at 10,000 images).
    const jump = h("input", { type: "number", id: "page-input", min: 1, max: pages, value: state.page + 1, "aria-label": "Page number",
      onchange: (e) => goPage(Math.min(pages, Math.max(1, Math.round(Number(e.target.value) || 1))) - 1) });
    pager.replaceChildren(
      h("button", { type: "button", disabled: state.page <= 0, onclick: () => goPage(0), "aria-label": "First page", title: "First page" }, "«"),
      h("button", { type: "button", disabled: state.page <= 0, onclick: () => goPage(state.page - 1), "aria-label": "Previous page", title: "Previous page (Page Up)" }, "‹"),
      " Page ", jump, ` of ${pages} (${state.total} images) `,
      h("button", { type: "button", disabled: state.page + 1 >= pages, onclick: () => goPage(state.page + 1), "aria-label": "Next page", title: "Next page (Page Down)" }, "›"),
      h("button", { type: "button", disabled: state.page + 1 >= pages, onclick: () => goPage(pages - 1), "aria-label": "Last page", title: "Last page" }, "»"));
    const n = selectionCount(state.sel, state.total);
    status.textContent = n ? `${n} selected${state.sel.all ? " (all matching)" : ""}` : "Nothing selected";
    panel.refreshCounts();
  }

  async function makeDefault(image, label) {
    if (label.is_default || !can.has("label")) return;
    try {
      await ctx.api.post(`/api/v1/projects/${pid}/labels/apply`, { op: { kind: "set_default_label", label: label.name }, image_ids: [image.id] });
      await reload();
    } catch (err) { ctx.toast(err.message); }
  }

  async function goPage(page) { state.page = page; await reload(); grid.focus(); }

  let latest = 0;  // the newest reload: an older one's answer (another page or filter) is dropped
  async function reload() {
    const mine = ++latest;
    try {
      const res = await ctx.api.get(`/api/v1/projects/${pid}/images`, { ...state.filter, offset: state.page * PAGE, limit: PAGE });
      if (mine !== latest) return;
      state.images = res.images; state.total = res.total;
      if (state.page > 0 && !res.images.length && res.total) { state.page = 0; return reload(); }
    } catch (err) { if (mine !== latest) return; ctx.toast(err.message); }
    renderGrid();
  }

  async function loadLabels() {
    state.labels = await panel.load();
    renderFilters();
  }

  function openTool() {
    const query = state.sel.all || !state.sel.ids.size ? { ...state.filter } : { ids: [...state.sel.ids].join(",") };
    ctx.navigate(href("tool", { project: pid }, query));
  }

  function openPredictions() {
    const query = !state.sel.all && state.sel.ids.size ? { ids: [...state.sel.ids].join(",") } : { ...state.filter };
    ctx.navigate(href("predictions", { project: pid }, query));
  }

  grid.addEventListener("click", (e) => {
    const li = e.target.closest("li.tile");
    if (!li) return;
    const id = Number(li.dataset.id);
    state.sel = clickSelect(state.sel, state.images.map((i) => i.id), id, { shift: e.shiftKey, ctrl: e.ctrlKey || e.metaKey });
    renderGrid();
    grid.querySelector(`li[data-id="${id}"]`)?.focus();
  });
  grid.addEventListener("dblclick", (e) => {
    const li = e.target.closest("li.tile");
    if (li) ctx.navigate(href("tool", { project: pid, image: Number(li.dataset.id) }, state.filter));
  });
  grid.addEventListener("keydown", (e) => {
    const tiles = [...grid.querySelectorAll("li.tile")];
    if (!tiles.length) return;
    const at = Math.max(0, tiles.indexOf(document.activeElement));
    const cols = Math.max(1, Math.round(grid.clientWidth / (tiles[0].offsetWidth || 1)));
    const move = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols }[e.key];
    if (move !== undefined) {
      e.preventDefault();
      const next = tiles[Math.min(tiles.length - 1, Math.max(0, at + move))];
      next.focus();
      if (e.shiftKey) { state.sel = clickSelect(state.sel, state.images.map((i) => i.id), Number(next.dataset.id), { shift: true }); renderGrid(); grid.querySelector(`li[data-id="${next.dataset.id}"]`)?.focus(); }
    } else if (e.key === " ") {
      e.preventDefault();
      const id = Number(tiles[at].dataset.id);
      state.sel = clickSelect(state.sel, state.images.map((i) => i.id), id, { ctrl: true });
      renderGrid(); grid.querySelector(`li[data-id="${id}"]`)?.focus();
    } else if (e.key === "PageDown" || e.key === "PageUp") {
      e.preventDefault();
      const page = state.page + (e.key === "PageDown" ? 1 : -1);
      if (page >= 0 && page < Math.ceil(state.total / PAGE)) goPage(page);
    } else if (e.key === "Enter") {
      ctx.navigate(href("tool", { project: pid, image: Number(tiles[at].dataset.id) }, state.filter));
    } else if (e.key === "a" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault(); state.sel = selectAll(); renderGrid();
    } else if (e.key === "Escape") {
      state.sel = emptySelection(); renderGrid();
    }
  });
  grid.addEventListener("focus", () => { if (document.activeElement === grid) grid.querySelector("li.tile")?.focus(); });

  const actions = h("div", { class: "actions" },
    h("button", { type: "button", class: "primary", id: "label-images", onclick: openTool, title: "Open the labeling tool on the selection, else the filter, else all images" }, "Label images"),
    h("a", { class: "button", id: "similar-btn", href: href("similar", { project: pid }), title: "Find images like a label's examples and label them in one click" }, "Label by similarity"),
    h("a", { class: "button", id: "models-btn", href: href("models", { project: pid }), title: "Pre-trained and trained models, training, metrics" }, "Models"),
    h("button", { type: "button", id: "predict-btn", onclick: openPredictions, title: "Predict labels for the selection (else the filter) and review them" }, "Predictions"),
    can.has("upload") ? h("button", { type: "button", id: "upload-btn", onclick: () => openUpload({ ctx, pid, labels: state.labels, done: async () => { await loadLabels(); await reload(); } }) }, "Upload") : null,
    can.has("import_export") ? h("button", { type: "button", id: "import-btn", onclick: () => openImport({ ctx, pid, done: async () => { await loadLabels(); await reload(); } }) }, "Import labels") : null,
    can.has("import_export") ? h("button", { type: "button", id: "export-btn", onclick: () => openExport({ ctx, pid, filter: state.filter, sel: state.sel }) }, "Export labels") : null,
    h("button", { type: "button", id: "settings-btn", onclick: () => openSettings({ ctx, pid, can, done: loadLabels }) }, "Settings"),
    can.has("manage_members") || can.has("view") ? h("a", { class: "button", href: href("members", { project: pid }) }, "Members") : null,
    can.has("review") ? h("a", { class: "button", id: "review-btn", href: href("tool", { project: pid }, { queue: "review" }),
      title: "Review done images one after another (not your own): accept, or reject with a comment" }, "Review") : null,
    can.has("view_stats") ? h("a", { class: "button", href: href("supervisor", { project: pid }) }, "Supervisor view") : null);

  const toolbar = h("div", { class: "toolbar" },
    status,
    h("button", { type: "button", onclick: () => { state.sel = selectAll(); renderGrid(); } , title: "Ctrl+A" }, "Select all"),
    h("button", { type: "button", onclick: () => { state.sel = emptySelection(); renderGrid(); }, title: "Esc" }, "Clear selection"),
    can.has("delete") ? h("button", { type: "button", class: "danger", onclick: deleteSelected }, "Delete") : null,
    can.has("manage_members") ? assignControl() : null,
    h("span", { class: "spacer" }), pager);

  /** Give the selection (or everything matching the filter) to a member who may label. */
  function assignControl() {
    const who = h("select", { id: "assign-to", "aria-label": "Assign to" }, h("option", { value: "" }, "Assign to…"));
    const fill = () => who.replaceChildren(h("option", { value: "" }, "Assign to…"), h("option", { value: "none" }, "nobody (take back)"),
      ...state.members.filter((m) => (m.privileges || []).includes("label")).map((m) => h("option", { value: m.user_id }, m.name)));
    state.fillAssignees = fill;
    const go = async () => {
      const n = selectionCount(state.sel, state.total);
      if (!n || !who.value) { ctx.toast(n ? "Choose whom to assign them to." : "Select some images first.", "info"); return; }
      const body = { user: who.value === "none" ? null : Number(who.value), ...(state.sel.all ? { filter: { ...state.filter } } : { images: [...state.sel.ids] }) };
      try {
        const res = await ctx.api.post(`/api/v1/projects/${pid}/assignments`, body);
        const name = who.selectedOptions[0]?.textContent;
        ctx.toast(body.user === null ? `${res.assigned} image(s) taken back.` : `${res.assigned} image(s) assigned to ${name}.`, "info");
        await reload();
      } catch (err) { ctx.toast(err.message); }
    };
    return h("span", { class: "assign" }, who, h("button", { type: "button", id: "assign-btn", onclick: go, title: "Next image serves them to that person first, and to nobody else" }, "Assign"));
  }

  async function deleteSelected() {
    // All of the selection: with "select all matching" that is every image the filter matches.
    const count = selectionCount(state.sel, state.total);
    if (!count) { ctx.toast("Select some images first.", "info"); return; }
    if (!confirm(`Delete ${count} image(s) with their labels? This cannot be undone.`)) return;
    try {
      const res = await ctx.api.post(`/api/v1/projects/${pid}/images/delete`, { ...target(state.sel, state.filter), expected: count });
      const busy = res.skipped.length ? `; ${res.skipped.length} being labeled by someone else were kept` : "";
      ctx.toast(`Deleted ${res.deleted} image(s)${busy}.`, "info");
    } catch (err) { ctx.toast(err.message); }
    state.sel = emptySelection();
    await reload();
  }

  root.append(h("div", { class: "dashboard" },
    h("aside", { class: "sidebar", "aria-label": "Project actions" }, h("h1", { class: "project-name" }, project.name), actions, jobs.el, panel.el, filters),
    h("section", { class: "content" }, toolbar, grid)));

  // Live: locks, presence and progress from the hub.
  let refreshTimer = null;
  const softReload = () => { clearTimeout(refreshTimer); refreshTimer = setTimeout(reload, 400); };
  const off = ctx.onHub((msg) => {
    jobs.onEvent(msg);
    // Also once the socket is up: a lock taken between the first load and joining the room sends us nothing.
    if (msg.type === "lock" || msg.type === "progress" || msg.type === "_resumed" || (msg.type === "_conn" && msg.state === "online")
        || (msg.type === "op" && (msg.op?.kind === "state" || msg.op?.kind === "assign"))) softReload();
    if (msg.type === "presence") {
      state.presence = presenceMap(state.where, msg, ctx.me);
      renderGrid();
    }
  });

  ctx.api.get(`/api/v1/projects/${pid}/members`).then((r) => { state.members = r.members; renderFilters(); state.fillAssignees?.(); }).catch(() => {});
  jobs.load();
  await loadLabels();
  await reload();
  if (ctx.route.name === "settings") {
    // #/p/N/settings is the dashboard with its settings open; closing them leaves the dashboard's address.
    const dlg = await openSettings({ ctx, pid, can, done: loadLabels });
    dlg?.addEventListener("close", () => history.replaceState(null, "", href("dashboard", { project: pid })));
  }
  return { unmount() { off(); jobs.stop(); clearTimeout(refreshTimer); } };
}

/** Track where each other person is (`where`: user id -> {name, image}) from one presence
 * event; returns image id -> names of people looking at it. */
export function presenceMap(where, msg, me) {
  const uid = msg.user?.id;
  if (uid !== undefined && !(me && uid === me.id)) {
    if (msg.online === false || !msg.image) where.delete(uid);
    else where.set(uid, { name: msg.user.name || "someone", image: msg.image });
  }
  const map = new Map();
  for (const { name, image } of where.values()) {
    if (!map.has(image)) map.set(image, new Set());
    map.get(image).add(name);
  }
  return map;
}

export { FILTER_KEYS };
