// "Label images…" from a tile's menu: add or remove one classification label on the selection
// (or the one image right-clicked), through the same bulk op as the label panel's + and −.
import { h, modal } from "../dom.js";

export function openLabelDialog({ ctx, pid, labels, count, target, done }) {
  const error = h("p", { class: "error", role: "alert" });
  const pick = h("select", { id: "label-dialog-label", "aria-label": "Label" },
    labels.map((l) => h("option", { value: l.name }, l.name)));
  async function apply(kind) {
    try {
      const res = await ctx.api.post(`/api/v1/projects/${pid}/labels/apply`, { op: { kind, label: pick.value }, ...target });
      ctx.toast(`${res.changed} of ${res.images} image(s) changed.`, "info");
      dlg.close();
      await done?.();
    } catch (err) { error.textContent = err.message; }
  }
  const body = labels.length
    ? h("form", { onsubmit: (e) => { e.preventDefault(); apply("add_label"); } },
      h("p", {}, `${count} image(s)`), h("label", { for: "label-dialog-label" }, "Label "), pick, error,
      h("div", { class: "row" }, h("span", { class: "spacer" }),
        h("button", { type: "button", id: "label-dialog-remove", onclick: () => apply("remove_label") }, "Remove label"),
        h("button", { type: "submit", class: "primary", id: "label-dialog-add" }, "Add label")))
    : h("p", { class: "empty" }, "This project has no labels yet: add one in the label panel first.");
  const dlg = modal(ctx.overlayRoot, "Label images", body);
  return dlg;
}
