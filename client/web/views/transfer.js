// Import and export dialogs.
import { h, modal } from "../dom.js";
import { queryString } from "../api.js";

export const EXPORT_FORMATS = [
  ["json", "Labelhub JSON (everything, lossless)"], ["csv", "CSV (classification labels)"],
  ["coco", "COCO (instances)"], ["yolo", "YOLO (ZIP, ultralytics layout)"], ["voc", "Pascal VOC (ZIP of XML)"],
  ["masks", "PNG masks (ZIP)"], ["masks:bmp", "BMP masks (ZIP)"], ["labelstudio", "Label Studio JSON"],
  ["cvat", "CVAT for images 1.1 (XML)"],
];
export const IMPORT_FORMATS = [["json", "Labelhub JSON"], ["csv", "CSV"], ["coco", "COCO"], ["masks", "PNG masks (ZIP)"],
  ["yolo", "YOLO (ZIP)"], ["voc", "Pascal VOC (ZIP)"], ["labelstudio", "Label Studio JSON"], ["cvat", "CVAT for images 1.1 (XML)"]];

/** The export URL for a format and scope (pure). */
export function exportUrl(pid, format, scope, { filter = {}, ids = [], task, images = false } = {}) {
  const [name, maskFormat] = format.split(":");  // "masks:bmp": the masks as BMP files
  const q = { format: name };
  if (maskFormat) q.mask_format = maskFormat;
  if (scope === "filter") Object.assign(q, filter);
  if (scope === "selection") q.ids = ids.join(",");
  if (format === "yolo" && task) q.task = task;
  if (images) q.images = "1";
  return `/api/v1/projects/${pid}/export${queryString(q)}`;
}

export function openExport({ ctx, pid, filter, sel }) {
  const format = h("select", { id: "export-format" }, EXPORT_FORMATS.map(([v, t]) => h("option", { value: v }, t)));
  const hasSel = !sel.all && sel.ids.size > 0;
  const scope = h("select", { id: "export-scope" },
    h("option", { value: "all" }, "All images"),
    Object.keys(filter).length ? h("option", { value: "filter", selected: !hasSel }, "Images matching the filter") : null,
    hasSel ? h("option", { value: "selection", selected: true }, `The ${sel.ids.size} selected image(s)`) : null);
  const task = h("select", { id: "export-task" }, h("option", { value: "detect" }, "Detection (boxes)"), h("option", { value: "segment" }, "Segmentation (polygons)"));
  const taskRow = h("div", { hidden: true }, h("label", { for: "export-task" }, "YOLO task"), task);
  const images = h("input", { type: "checkbox", id: "export-images" });
  const link = h("a", { class: "button primary", id: "export-download", download: "" }, "Download");
  const update = () => {
    taskRow.hidden = format.value !== "yolo";
    link.href = exportUrl(pid, format.value, scope.value, { filter, ids: [...sel.ids], task: task.value, images: images.checked });
  };
  for (const el of [format, scope, task, images]) el.addEventListener("change", update);
  update();
  modal(ctx.overlayRoot, "Export labels", h("div", { class: "form" },
    h("label", { for: "export-format" }, "Format"), format, h("label", { for: "export-scope" }, "Which images"), scope, taskRow,
    h("label", {}, images, " Include the image files (ZIP)"), h("div", { class: "row end" }, link)));
}

export function openImport({ ctx, pid, done }) {
  const format = h("select", { id: "import-format" }, IMPORT_FORMATS.map(([v, t]) => h("option", { value: v }, t)));
  const file = h("input", { type: "file", id: "import-file" });
  const mode = h("select", { id: "import-mode" }, h("option", { value: "" }, "As the project setting says"),
    h("option", { value: "merge" }, "Add to existing labels"), h("option", { value: "replace" }, "Replace existing labels"));
  const report = h("div", { class: "report", "aria-live": "polite" });
  const run = async (dryRun) => {
    if (!file.files[0]) { report.textContent = "Choose a file first."; return; }
    report.textContent = dryRun ? "Checking…" : "Importing…";
    try {
      const res = await ctx.api.postRaw(`/api/v1/projects/${pid}/import`, file.files[0],
        { format: format.value, mode: mode.value, dry_run: dryRun ? "true" : "" });
      showReport(res, dryRun);
      if (!dryRun) await done?.();
    } catch (err) {
      report.replaceChildren(h("p", { class: "error" }, err.message));
      if (err.details) showRows(err.details);
    }
  };
  function showReport(res, dryRun) {
    if (res.job) {  // a big file runs as a job: its progress shows with the project's jobs
      report.replaceChildren(h("p", {}, `The file is large: it is being imported as job #${res.job.id}.`));
      return;
    }
    report.replaceChildren(h("p", {}, `${dryRun ? "Check only — nothing written. " : "Imported. "}` +
      `${res.rows ?? "?"} row(s): ${res.applied ?? "?"} applied, ${res.refused ?? 0} refused.`));
    showRows(res);
  }
  function showRows(res) {
    const rows = (res.items || res.report || res.rows_detail || []).filter((r) => r && (r.error || r.reason || r.refused));
    if (rows.length) report.append(h("ul", { class: "results" }, rows.slice(0, 200).map((r) =>
      h("li", { class: "error" }, `${r.name || r.image || r.row || "?"}: ${r.error?.message || r.reason || r.error || "refused"}`))));
  }
  modal(ctx.overlayRoot, "Import labels", h("div", { class: "form" },
    h("label", { for: "import-format" }, "Format"), format, h("label", { for: "import-file" }, "File"), file,
    h("label", { for: "import-mode" }, "Existing labels"), mode,
    h("div", { class: "row end" }, h("button", { type: "button", onclick: () => run(true) }, "Check first (dry run)"),
      h("button", { type: "button", class: "primary", onclick: () => run(false) }, "Import")), report));
}
