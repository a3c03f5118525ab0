// One image tile of the dashboard grid.
import { h } from "../dom.js";
import { sourceText } from "./scores.js";
import { stateBadge } from "./workflow.js";

export function labelChip(label, { onClick } = {}) {
  // Where the label came from shows on the chip: "auto" (an accepted suggestion) or "sync".
  const from = label.source && label.source !== "manual" ? label.source : "";
  return h("button", {
    type: "button",
    class: "chip" + (label.is_default ? " default" : "") + (from ? ` ${from}` : ""),
    style: { "--chip": label.color || "#888" },
    title: (label.is_default ? `${label.name} (default label)` : `${label.name} — click to make it the default`) + ` — ${sourceText(label.source)}`,
    "aria-pressed": label.is_default ? "true" : "false",
    dataset: { source: label.source || "manual" },
    onclick: (e) => { e.stopPropagation(); onClick?.(label); },
  }, label.name, from ? h("span", { class: "src" }, from) : null);
}

export function tile(image, { selected, presence = [], me, onChip, menu } = {}) {
  const lockedBy = image.lock?.holder;
  const badges = h("div", { class: "badges" },
    image.state ? stateBadge(image.state) : null,
    image.assignee ? h("span", { class: "badge assignee", title: `Assigned to ${image.assignee.name}` },
      "for: " + (me && image.assignee.id === me.id ? "you" : image.assignee.name)) : null,
    image.labeled ? h("span", { class: "badge ok", title: "Has labels or objects" }, "✓") : null,
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
  h("div", { class: "chips" }, (image.labels || []).map((l) => labelChip(l, { onClick: (lab) => onChip?.(image, lab) }))),
  menu ? menu(image) : null);
}
