// Small SVG charts (bars, stacked bars by day, lines, paired bars) and the CSV of the time table. Pure builders.
const NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#1f6feb", "#e6194b", "#3cb44b", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"];

function el(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

export function colorFor(i) { return PALETTE[i % PALETTE.length]; }

/** Horizontal bars: [{label, value}] -> <svg>. */
export function barChart(rows, { title = "", unit = "", width = 460, fmt = (v) => String(v) } = {}) {
  // Names in full: the label column grows with the longest one (about 7 px a character).
  const rowH = 24, left = Math.max(130, 16 + 7 * Math.max(0, ...rows.map((r) => r.label.length))), top = title ? 24 : 6;
  width = Math.max(width, left + 200);
  const max = Math.max(1e-9, ...rows.map((r) => r.value));
  const svg = el("svg", { class: "chart", width, height: top + Math.max(1, rows.length) * rowH + 8, role: "img", "aria-label": title });
  if (title) svg.append(el("text", { x: 6, y: 16, "font-weight": "600" }, title));
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const w = ((width - left - 70) * r.value) / max;
    svg.append(el("text", { x: 6, y: y + 15 }, r.label));
    svg.append(el("rect", { x: left, y: y + 3, width: Math.max(0, w), height: rowH - 8, fill: colorFor(i), rx: 3 }));
    svg.append(el("text", { x: left + w + 6, y: y + 15 }, fmt(r.value) + unit));
  });
  if (!rows.length) svg.append(el("text", { x: 6, y: top + 16 }, "No data yet."));
  return svg;
}

/** Stacked columns per day: days = ["2025-01-01", ...], series = [{label, values: {day: number}}]. */
export function stackedDays(days, series, { title = "", width = 640, height = 220, fmt = (v) => String(v) } = {}) {
  const left = 46, bottom = 36, top = 26, right = Math.max(120, 34 + 7 * Math.max(0, ...series.map((x) => x.label.length)));
  width += right - 120;  // the legend shows names in full
  const totals = days.map((d) => series.reduce((s, x) => s + (x.values[d] || 0), 0));
  const max = Math.max(1e-9, ...totals);
  const svg = el("svg", { class: "chart", width, height, role: "img", "aria-label": title });
  svg.append(el("text", { x: 6, y: 16, "font-weight": "600" }, title));
  const plotW = width - left - right, plotH = height - top - bottom;
  const colW = days.length ? plotW / days.length : plotW;
  svg.append(el("line", { x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH, stroke: "#999" }));
  svg.append(el("text", { x: 4, y: top + 10 }, fmt(max)));
  days.forEach((d, i) => {
    let y = top + plotH;
    series.forEach((s, j) => {
      const v = s.values[d] || 0;
      const hgt = (plotH * v) / max;
      y -= hgt;
      if (hgt > 0) svg.append(el("rect", { x: left + i * colW + colW * 0.15, y, width: colW * 0.7, height: hgt, fill: colorFor(j) }, undefined));
    });
    svg.append(el("text", { x: left + i * colW + colW / 2, y: top + plotH + 14, "text-anchor": "middle" }, d.slice(5)));
  });
  series.forEach((s, j) => {
    svg.append(el("rect", { x: width - right + 10, y: top + j * 16, width: 10, height: 10, fill: colorFor(j) }));
    svg.append(el("text", { x: width - right + 24, y: top + j * 16 + 9 }, s.label));
  });
  if (!days.length) svg.append(el("text", { x: left + 10, y: top + 30 }, "No labeling time recorded yet."));
  return svg;
}

function csvCell(v) {
  const s = String(v ?? "");
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** CSV text from a header and rows. */
export function toCsv(header, rows) {
  return [header, ...rows].map((r) => r.map(csvCell).join(",")).join("\n") + "\n";
}

/** Lines on 0..1 (y) against x: series = [{label, points: [{x, y}]}]; `marks`: [{x, y, label}]
 * drawn as rings (e.g. the chosen threshold on a precision-recall curve). */
export function lineChart(series, { title = "", width = 360, height = 220, xLabel = "", yLabel = "", xMax = null, marks = [] } = {}) {
  const left = 40, right = series.length > 1 ? 90 : 14, top = 24, bottom = 34;
  const plotW = width - left - right, plotH = height - top - bottom;
  const maxX = xMax ?? Math.max(1e-9, ...series.flatMap((s) => s.points.map((p) => p.x)));
  const X = (x) => left + (plotW * x) / maxX, Y = (y) => top + plotH * (1 - Math.max(0, Math.min(1, y)));
  const svg = el("svg", { class: "chart", width, height, role: "img", "aria-label": title });
  svg.append(el("text", { x: 6, y: 16, "font-weight": "600" }, title));
  for (const t of [0, 0.5, 1]) {
    svg.append(el("line", { x1: left, y1: Y(t), x2: left + plotW, y2: Y(t), stroke: t ? "#e3e5ea" : "#999" }));
    svg.append(el("text", { x: left - 4, y: Y(t) + 4, "text-anchor": "end" }, String(t)));
  }
  svg.append(el("line", { x1: left, y1: top, x2: left, y2: top + plotH, stroke: "#999" }));
  svg.append(el("text", { x: left + plotW, y: height - 4, "text-anchor": "end" }, xLabel));
  svg.append(el("text", { x: left + 6, y: top + 12, fill: "#666" }, yLabel));
  svg.append(el("text", { x: left, y: top + plotH + 14, "text-anchor": "middle" }, "0"));
  svg.append(el("text", { x: left + plotW, y: top + plotH + 14, "text-anchor": "middle" }, fmtNum(maxX)));
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
    if (pts.length) svg.append(el("polyline", { points: pts.map((p) => `${X(p.x)},${Y(p.y)}`).join(" "), fill: "none", stroke: colorFor(i), "stroke-width": 2 }));
    for (const p of pts) svg.append(el("circle", { cx: X(p.x), cy: Y(p.y), r: 2.5, fill: colorFor(i) }));
    if (series.length > 1) {
      svg.append(el("rect", { x: width - right + 8, y: top + i * 16, width: 10, height: 10, fill: colorFor(i) }));
      svg.append(el("text", { x: width - right + 22, y: top + i * 16 + 9 }, s.label.slice(0, 12)));
    }
  });
  for (const m of marks) {
    svg.append(el("circle", { class: "mark", cx: X(m.x), cy: Y(m.y), r: 6, fill: "none", stroke: "#111", "stroke-width": 2 }));
    const leftSide = X(m.x) > left + plotW / 2;  // the text stays inside the chart
    svg.append(el("text", { x: X(m.x) + (leftSide ? -8 : 8), y: Y(m.y) + 18, "text-anchor": leftSide ? "end" : "start" }, m.label || ""));
  }
  if (!series.some((s) => s.points.length)) svg.append(el("text", { x: left + 10, y: top + 30 }, "No data yet."));
  return svg;
}

/** Pairs of bars on 0..1 per row: rows = [{label, a, b}] (null: not measured), names = [a, b]. */
export function pairBars(rows, names, { title = "", width = 360 } = {}) {
  const rowH = 30, left = 110, top = 40, barW = width - left - 50;
  const svg = el("svg", { class: "chart", width, height: top + Math.max(1, rows.length) * rowH + 6, role: "img", "aria-label": title });
  svg.append(el("text", { x: 6, y: 16, "font-weight": "600" }, title));
  names.forEach((n, j) => {
    svg.append(el("rect", { x: left + j * 100, y: 24, width: 10, height: 10, fill: colorFor(j) }));
    svg.append(el("text", { x: left + j * 100 + 14, y: 33 }, n));
  });
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    svg.append(el("text", { x: 6, y: y + 18 }, r.label.length > 14 ? r.label.slice(0, 13) + "…" : r.label));
    [r.a, r.b].forEach((v, j) => {
      const w = v === null || v === undefined ? 0 : barW * Math.max(0, Math.min(1, v));
      svg.append(el("rect", { x: left, y: y + 3 + j * 12, width: w, height: 10, fill: colorFor(j), rx: 2 }));
      svg.append(el("text", { x: left + w + 4, y: y + 12 + j * 12, "font-size": 10 }, v === null || v === undefined ? "—" : fmtNum(v)));
    });
  });
  if (!rows.length) svg.append(el("text", { x: 6, y: top + 16 }, "No data yet."));
  return svg;
}

function fmtNum(v) { return Number.isInteger(v) ? String(v) : v.toFixed(2); }
