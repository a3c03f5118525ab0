// Labeling settings: the project's (manage_labels) and my own overrides, plus label shortcuts and sync.
import { h, modal } from "../dom.js";

/** Every setting: key, kind, text, help. */
export const SETTINGS = [
  ["override_labels_on_import", "bool", "Override labels when uploading JSON", "Imported labels replace an image's labels instead of being added to them."],
  ["use_previous_label_name", "bool", "Use previous label name", "New objects get the label of the previous object (or the image's default label)."],
  ["synchronize_labels", "bool", "Synchronize labels", "Every new object label also becomes a classification label of its image."],
  ["fixed_bbox_aspect_ratio", "number", "Fixed bounding box aspect ratio (width ÷ height)", "Empty for free boxes. Applies to new and resized boxes."],
  ["allow_labeling_outside_image", "bool", "Allow labeling outside images", "Shapes may extend past the image border."],
  ["fit_labels_to_image", "bool", "Fit labels to image", "Shapes outside the image are clipped onto it."],
  ["skip_other_users_images", "bool", "Skip other users' images", "Next image skips images labeled by someone else."],
  ["skip_images_being_labeled", "bool", "Skip images being labeled by others", "Next image skips images someone else has open."],
  ["simplify_polygons", "bool", "Simplify polygons converted from bitmaps", "Convert to polygon makes fewer vertices."],
  ["simplify_tolerance", "number", "Simplification tolerance (pixels)", ""],
  ["undo_history_length", "int", "Undo history length", "How many of your edits per image can be undone."],
  ["disable_smoothing_when_zoomed", "bool", "Disable smoothing when zoomed in", "Show sharp pixels when zoomed in."],
  ["retrain_after_images", "int", "Retrain the newest model after N new labeled images", "Empty: never. A new version trains once this many images got labels from people (see Models)."],
];

function field(key, kind, value, disabled, prefix) {
  const id = `${prefix}-${key}`;
  if (kind === "bool") return h("input", { type: "checkbox", id, name: key, checked: !!value, disabled });
  return h("input", { type: "number", id, name: key, value: value ?? "", step: kind === "int" ? 1 : "any", min: 0, disabled });
}

function readValue(input, kind) {
  if (kind === "bool") return input.checked;
  if (input.value === "") return null;
  return kind === "int" ? parseInt(input.value, 10) : Number(input.value);
}

export async function openSettings({ ctx, pid, can, done }) {
  let data, mine, labels;
  try {
    [data, mine, { labels }] = await Promise.all([ctx.api.get(`/api/v1/projects/${pid}/settings`),
      ctx.api.get("/api/v1/me/settings", { project: pid }), ctx.api.get(`/api/v1/projects/${pid}/labels`)]);
  } catch (err) { ctx.toast(err.message); return; }
  const manage = can.has("manage_labels");
  const userKeys = new Set(data.user_keys);
  const error = h("p", { class: "error", role: "alert" });

  const projectForm = h("fieldset", { class: "settings" }, h("legend", {}, "Project settings (everyone)"),
    SETTINGS.map(([key, kind, text, help]) => h("div", { class: "setting" },
      field(key, kind, data.project[key], !manage, "ps"),
      h("label", { for: `ps-${key}` }, text), help ? h("small", { class: "muted" }, help) : null)));
  const shortcuts = h("fieldset", { class: "settings shortcuts" }, h("legend", {}, "Label shortcuts (number keys in the tool)"),
    [1, 2, 3, 4, 5, 6, 7, 8, 9].map((d) => h("label", {}, h("kbd", {}, String(d)), " ",
      h("select", { name: String(d), disabled: !manage, "aria-label": `Label for key ${d}` }, h("option", { value: "" }, "—"),
        labels.map((l) => h("option", { value: l.name, selected: data.project.label_shortcuts?.[String(d)] === l.name }, l.name))))));
  const myForm = h("fieldset", { class: "settings" }, h("legend", {}, "My settings (only for me, in this project)"),
    SETTINGS.filter(([key]) => userKeys.has(key)).map(([key, kind, text]) => h("div", { class: "setting" },
      field(key, kind, mine.effective[key], false, "my"), h("label", { for: `my-${key}` }, text))));
  const syncBtn = can.has("label") ? h("button", { type: "button", onclick: async () => {
    try {
      const res = await ctx.api.post(`/api/v1/projects/${pid}/labels/sync`, {});
      ctx.toast(`Synchronized: ${res.changed} image(s) got classification labels from their objects.`, "info");
    } catch (err) { error.textContent = err.message; }
  } }, "Synchronize labels now") : null;

  const form = h("form", { onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    try {
      if (manage) {
        const patch = {};
        for (const [key, kind] of SETTINGS) {
          const v = readValue(projectForm.querySelector(`[name="${key}"]`), kind);
          if (v !== data.project[key]) patch[key] = v;
        }
        const map = {};
        for (const sel of shortcuts.querySelectorAll("select")) {
          const was = data.project.label_shortcuts?.[sel.name] || "";
          if (sel.value !== was) map[sel.name] = sel.value || null;
        }
        if (Object.keys(map).length) patch.label_shortcuts = map;
        if (Object.keys(patch).length) await ctx.api.patch(`/api/v1/projects/${pid}/settings`, patch);
      }
      const minePatch = {};
      for (const [key, kind] of SETTINGS.filter(([k]) => userKeys.has(k))) {
        const v = readValue(myForm.querySelector(`[name="${key}"]`), kind);
        if (v !== mine.effective[key]) minePatch[key] = v;
      }
      if (Object.keys(minePatch).length) {
        await ctx.api.patch(`/api/v1/me/settings?project=${pid}`, minePatch).catch(async (err) => {
          if (err.code !== "not_member") throw err;
          await ctx.api.patch("/api/v1/me/settings", minePatch);
        });
      }
      ctx.toast("Settings saved.", "info");
      dlg.close();
      await done?.();
    } catch (err) { error.textContent = err.message; }
  } }, projectForm, shortcuts, myForm, h("div", { class: "row" }, syncBtn, h("span", { class: "spacer" }), error,
    h("button", { type: "submit", class: "primary", id: "settings-save" }, "Save")));
  const dlg = modal(ctx.overlayRoot, "Labeling settings", form);
  return dlg;
}
