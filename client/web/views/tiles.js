// One image tile of the dashboard grid.
import { h } from "../dom.js";

export function labelChip(label, { onClick } = {}) {
  return h("button", {
    type: "button",
    class: "chip" + (label.is_default ? " default" : ""),
    style: { "--chip": label.color || "#888" },
    title: label.is_default ? `${label.name} (default label)` : `${label.name} — click to make it the default`,
    "aria-pressed": label.is_default ? "true" : "false",
    onclick: (e) => { e.stopPropagation(); onClick?.(label); },
  }, label.name);
}

export function tile(image, { selected, presence = [], me, onChip } = {}) {
  const lockedBy = image.lock?.holder;
  const badges = h("div", { class: "badges" },
    image.labeled ? h("span", { class: "badge ok", title: "Labeled" }, "✓") : null,
    image.auto_labeled ? h("span", { class: "badge auto", title: "Auto-labeled" }, "auto") : null,
    lockedBy ? h("span", { class: "badge lock", title: `Being labeled by ${lockedBy.name}` },
      "locked: " + (me && lockedBy.id === me.id ? "you" : lockedBy.name)) : null,
    presence.length ? h("span", { class: "badge presence", title: "Watching: " + presence.join(", ") }, "viewing: " + presence.join(", ")) : null,
    image.object_count ? h("span", { class: "badge", title: "Objects" }, `${image.object_count} obj`) : null);
  return h("li", {
    class: "tile" + (selected ? " selected" : ""),
    role: "option",
    "aria-selected": selected ? "true" : "false",
    tabindex: "-1",
    dataset: { id: String(image.id) },
  },
  h("div", { class: "thumb" },
    h("img", { src: image.thumbnail_url, alt: image.name, loading: "lazy", decoding: "async", draggable: "false" }),
    badges),
  h("div", { class: "tile-name", title: image.name }, image.name),
  h("div", { class: "chips" }, (image.labels || []).map((l) => labelChip(l, { onClick: (lab) => onChip?.(image, lab) }))));
}
