// The dashboard's label panel: create, + / − on the selection, rename inline, color, star, delete.
import { h } from "../dom.js";
import { href } from "../router.js";

export function labelPanel({ ctx, pid, can, getTarget, countSelected, reload, onLabels }) {
  const list = h("ul", { class: "labels", "aria-label": "Labels" });
  const input = h("input", { id: "new-label", placeholder: "New label", maxlength: 200, "aria-label": "New label name" });
  const form = h("form", { class: "row", onsubmit: async (e) => {
    e.preventDefault();
    const name = input.value.trim();
    if (!name) return;
    try {
      await ctx.api.post(`/api/v1/projects/${pid}/labels`, { name });
      input.value = "";
      await refresh();
    } catch (err) { ctx.toast(err.message); }
  } }, input, h("button", { type: "submit" }, "Add"));
  const el = h("section", { class: "label-panel", "aria-label": "Label panel" }, h("h3", {}, "Labels"),
    can.has("label") ? form : null, list);
  let labels = [];
  let stale = false;

  async function bulk(op) {
    if (!countSelected()) { ctx.toast("Select some images first (click, Shift+click, Ctrl+click or Select all).", "info"); return; }
    try {
      const res = await ctx.api.post(`/api/v1/projects/${pid}/labels/apply`, { op, ...getTarget() });
      ctx.toast(`${res.changed} of ${res.images} image(s) changed.`, "info");
      await refresh();
      await reload();
    } catch (err) { ctx.toast(err.message); }
  }

  async function patch(label, body) {
    try {
      await ctx.api.patch(`/api/v1/projects/${pid}/labels/${label.id}`, body);
      await refresh();
      await reload();
    } catch (err) { ctx.toast(err.message); await refresh(); }
  }

  function renameField(label, nameBtn) {
    const field = h("input", { value: label.name, "aria-label": `Rename ${label.name}`, class: "rename" });
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const value = field.value.trim();
      if (save && value && value !== label.name) await patch(label, { name: value });
      else if (stale) await refresh();
      else field.replaceWith(nameBtn);
    };
    field.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); finish(true); }
      if (e.key === "Escape") { e.preventDefault(); finish(false); nameBtn.focus(); }
    });
    field.addEventListener("blur", () => finish(false));
    nameBtn.replaceWith(field);
    field.select();
  }

  function row(label) {
    const manage = can.has("manage_labels");
    const nameBtn = h("button", { type: "button", class: "label-name", title: manage ? "Click to rename" : label.name,
      onclick: () => manage && renameField(label, nameBtn) }, label.name);
    const menu = h("div", { class: "menu", hidden: true },
      h("button", { type: "button", onclick: () => bulkStar(label), title: "Make this the default label on every image that has it" }, "★ Default everywhere"),
      h("a", { class: "button", href: href("similar", { project: pid }, { label: label.name }), title: "Images most like the ones carrying this label" }, "≈ More like this"),
      manage ? h("button", { type: "button", class: "danger", onclick: () => remove(label) }, "Delete label") : null);
    return h("li", { class: "label-row", dataset: { name: label.name } },
      h("input", { type: "color", value: label.color || "#888888", disabled: !manage, "aria-label": `Color of ${label.name}`,
        onchange: (e) => patch(label, { color: e.target.value }) }),
      nameBtn,
      label.shortcut ? h("kbd", { title: "Shortcut in the labeling tool" }, String(label.shortcut)) : null,
      h("span", { class: "count", title: "Images with this label" }, String(label.image_count)),
      can.has("label") ? h("button", { type: "button", class: "plus", "aria-label": `Add ${label.name} to the selected images`,
        onclick: () => bulk({ kind: "add_label", label: label.name }) }, "+") : null,
      can.has("label") ? h("button", { type: "button", class: "minus", "aria-label": `Remove ${label.name} from the selected images`,
        onclick: () => bulk({ kind: "remove_label", label: label.name }) }, "−") : null,
      h("button", { type: "button", class: "more", "aria-label": `More for ${label.name}`, "aria-expanded": "false",
        onclick: (e) => { menu.hidden = !menu.hidden; e.currentTarget.setAttribute("aria-expanded", String(!menu.hidden)); if (!menu.hidden) menu.querySelector("button")?.focus(); } }, "▾"),
      menu);
  }

  async function bulkStar(label) {
    try {
      const res = await ctx.api.post(`/api/v1/projects/${pid}/labels/${label.id}/star`, {});
      ctx.toast(`“${label.name}” is now the default on ${res.changed} more image(s).`, "info");
      await reload();
    } catch (err) { ctx.toast(err.message); }
  }

  async function remove(label) {
    if (!confirm(`Delete the label “${label.name}”? It is removed from every image, and objects using it lose their label name.`)) return;
    try { await ctx.api.del(`/api/v1/projects/${pid}/labels/${label.id}`); await refresh(); await reload(); }
    catch (err) { ctx.toast(err.message); }
  }

  async function refresh() {
    try {
      labels = (await ctx.api.get(`/api/v1/projects/${pid}/labels`)).labels;
    } catch (err) { ctx.toast(err.message); }
    // Never pull a rename field from under the person typing in it; redraw when they finish.
    stale = list.contains(document.activeElement) && document.activeElement.classList.contains("rename");
    if (stale) { onLabels?.(labels); return labels; }
    // A row's open menu stays open across a redraw (a live refresh must not close it under the pointer).
    const open = list.querySelector(".menu:not([hidden])")?.closest(".label-row")?.dataset.name;
    list.replaceChildren(...labels.map(row));
    const again = open && [...list.querySelectorAll(".label-row")].find((r) => r.dataset.name === open);
    if (again) { again.querySelector(".menu").hidden = false; again.querySelector(".more").setAttribute("aria-expanded", "true"); }
    if (!labels.length) list.append(h("li", { class: "muted" }, "No labels yet."));
    onLabels?.(labels);
    return labels;
  }

  return { el, load: refresh, refreshCounts() {} };
}
