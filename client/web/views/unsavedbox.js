// The "N edits were not saved" banner of the labeling tool: the refused edits (kind, object,
// reason) with Re-apply, Copy as JSON and Discard. The rules live in tool/unsaved.js.
import { h } from "../dom.js";
import { asJson, summary } from "../tool/unsaved.js";

export function createUnsavedBox({ reapply, discard, toast }) {
  const el = h("section", { class: "unsaved", id: "unsaved", role: "alert", hidden: true });
  let shown = "";
  let handCopy = null; // JSON shown to copy by hand; kept when the banner is drawn again

  function jsonArea() {
    const area = h("textarea", { id: "unsaved-json", rows: 8, readonly: true, "aria-label": "The edits as JSON" });
    area.value = handCopy;
    return area;
  }

  async function copy(entries) {
    const text = asJson(entries);
    try {
      await navigator.clipboard.writeText(text);
      toast("Copied the edits as JSON.");
    } catch {
      // No clipboard (permission, an insecure origin): a selected textarea to copy by hand.
      handCopy = text;
      el.querySelector("#unsaved-json")?.remove();
      const area = jsonArea();
      el.append(area);
      area.select();
    }
  }

  function update(entries, canReapply) {
    const key = JSON.stringify([entries.map((e) => [e.key, e.reason]), canReapply]);
    if (key === shown) return;
    shown = key;
    el.hidden = !entries.length;
    if (!entries.length) { handCopy = null; el.replaceChildren(); return; }
    el.replaceChildren(
      h("strong", { id: "unsaved-title" }, summary(entries.length)),
      h("ul", { id: "unsaved-list" }, entries.map((e) => h("li", { dataset: { kind: e.op.kind } },
        h("span", { class: "badge" }, e.kind), " ", e.label, " — ", h("span", { class: "muted" }, e.reason),
        ` (image ${e.image})`))),
      h("div", { class: "row" },
        h("button", { type: "button", class: "primary", id: "unsaved-reapply", disabled: !canReapply, onclick: () => reapply(),
          title: canReapply ? "Take the image and send these edits again" : "Possible when the image is free (nobody else is labeling it) and you are online" }, "Re-apply"),
        h("button", { type: "button", id: "unsaved-copy", onclick: () => copy(entries) }, "Copy as JSON"),
        h("button", { type: "button", class: "danger", id: "unsaved-discard", onclick: () => discard() }, "Discard")),
      ...(handCopy === null ? [] : [jsonArea()]));
  }

  return { el, update };
}
