// Upload dialog: files, a folder or a ZIP, with classification labels, a progress bar and per-file results.
import { h, modal } from "../dom.js";

const BATCH_BYTES = 20 * 1024 * 1024;
const BATCH_FILES = 25;

/** Split files into request-sized batches (pure). */
export function batches(files, maxBytes = BATCH_BYTES, maxFiles = BATCH_FILES) {
  const out = [];
  let cur = [], size = 0;
  for (const f of files) {
    if (cur.length && (size + f.size > maxBytes || cur.length >= maxFiles)) { out.push(cur); cur = []; size = 0; }
    cur.push(f); size += f.size;
  }
  if (cur.length) out.push(cur);
  return out;
}

/** "a, b ,, c" -> ["a", "b", "c"] (pure). */
export function splitLabels(text) {
  return [...new Set(text.split(",").map((s) => s.trim()).filter(Boolean))];
}

export function openUpload({ ctx, pid, labels, done }) {
  const mode = h("select", { id: "upload-mode", "aria-label": "What to upload" },
    h("option", { value: "files" }, "Image files"), h("option", { value: "folder" }, "A folder"), h("option", { value: "zip" }, "A ZIP archive"));
  const picker = h("input", { type: "file", id: "upload-files", multiple: true, accept: "image/*" });
  const labelField = h("input", { id: "upload-labels", placeholder: "e.g. cat, outdoor", autocomplete: "off" });
  const fromFolders = h("input", { type: "checkbox", id: "upload-folders" });
  const folderRow = h("label", { hidden: true }, fromFolders, " Label images with the names of the folders they are in");
  const suggestions = h("div", { class: "suggestions", "aria-label": "Existing labels" },
    labels.map((l) => h("button", { type: "button", class: "chip", style: { "--chip": l.color }, onclick: () => {
      const cur = splitLabels(labelField.value);
      if (!cur.includes(l.name)) labelField.value = [...cur, l.name].join(", ");
      labelField.focus();
    } }, l.name)));
  const bar = h("progress", { max: 1, value: 0, hidden: true, "aria-label": "Upload progress" });
  const note = h("p", { class: "muted", "aria-live": "polite" });
  const results = h("ul", { class: "results" });
  const go = h("button", { type: "submit", class: "primary" }, "Upload");

  mode.addEventListener("change", () => {
    picker.value = "";
    picker.multiple = mode.value !== "zip";
    picker.accept = mode.value === "zip" ? ".zip,application/zip" : "image/*";
    picker.toggleAttribute("webkitdirectory", mode.value === "folder");
    folderRow.hidden = mode.value !== "zip";
  });

  const form = h("form", { class: "upload", onsubmit: async (e) => {
    e.preventDefault();
    const files = [...picker.files];
    if (!files.length) { note.textContent = "Choose something to upload first."; picker.focus(); return; }
    go.disabled = true; bar.hidden = false; results.replaceChildren();
    const labelText = splitLabels(labelField.value).join(",");
    let okCount = 0, failed = 0;
    try {
      if (mode.value === "zip") {
        const fd = new FormData();
        fd.append("file", files[0]);
        fd.append("labels_from_folders", fromFolders.checked ? "true" : "false");
        if (labelText) fd.append("labels", labelText);
        note.textContent = `Sending ${files[0].name}…`;
        const res = await ctx.api.upload(`/api/v1/projects/${pid}/images/zip`, fd, (a, b) => { bar.value = a / b; });
        [okCount, failed] = show(res.body);
      } else {
        const groups = batches(files);
        const total = files.reduce((s, f) => s + f.size, 0) || 1;
        let sent = 0;
        for (const group of groups) {
          const fd = new FormData();
          for (const f of group) fd.append("files", f, f.webkitRelativePath || f.name);
          if (labelText) fd.append("labels", labelText);
          const groupSize = group.reduce((s, f) => s + f.size, 0);
          note.textContent = `Uploading ${files.length} file(s)…`;
          const res = await ctx.api.upload(`/api/v1/projects/${pid}/images`, fd, (a, b) => { bar.value = (sent + groupSize * a / b) / total; });
          sent += groupSize;
          const [o, f] = show(res.body);
          okCount += o; failed += f;
        }
      }
      bar.value = 1;
      note.textContent = `Done: ${okCount} uploaded` + (failed ? `, ${failed} could not be used (see below).` : ".");
      await done();
    } catch (err) {
      note.textContent = err.message;
    } finally { go.disabled = false; }
  } },
  h("label", { for: "upload-mode" }, "Upload"), mode,
  h("label", { for: "upload-files" }, "Choose"), picker, folderRow,
  h("label", { for: "upload-labels" }, "Classification labels (comma-separated, optional)"), labelField,
  labels.length ? h("p", { class: "muted" }, "Click to add an existing label:") : null, suggestions,
  bar, note, results, h("div", { class: "row end" }, go));

  function show(body) {
    let okCount = 0, failed = 0;
    for (const r of body?.results || []) {
      if (r.ok) { okCount += 1; if (r.duplicate) results.append(h("li", { class: "muted" }, `${r.name}: already in the project (labels applied)`)); }
      else { failed += 1; results.append(h("li", { class: "error" }, `${r.name}: ${r.error?.message || "refused"}`)); }
    }
    if (body?.error) { failed += 1; results.append(h("li", { class: "error" }, body.error.message)); }
    return [okCount, failed];
  }

  modal(ctx.overlayRoot, "Upload images", form);
}
