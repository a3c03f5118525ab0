// Tiny DOM builder: h("button", {class: "x", onclick}, "text", child). No global state.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  let value_ = null;
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "value") {
      // A property, not an attribute: a textarea has no value attribute (setAttribute showed
      // nothing), and a select's value can only be set once its options are appended.
      value_ = value;
    } else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "style" && typeof value === "object") {
      for (const [prop, v] of Object.entries(value)) {
        if (prop.startsWith("--")) el.style.setProperty(prop, v); else el.style[prop] = v;
      }
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else if (key in el && typeof value !== "string") {
      el[key] = value;
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  if (value_ !== null) el.value = value_;
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** A modal dialog built on <dialog>; resolves when closed. Focus goes to the first field. */
export function modal(root, title, body, { onClose } = {}) {
  const dlg = h("dialog", { class: "modal", "aria-label": title },
    h("header", {}, h("h2", {}, title),
      h("button", { type: "button", class: "icon", "aria-label": "Close", onclick: () => dlg.close() }, "×")),
    body);
  root.append(dlg);
  dlg.addEventListener("close", () => { dlg.remove(); onClose?.(); });
  dlg.showModal();
  const first = dlg.querySelector("input, select, textarea, button:not(.icon)");
  first?.focus();
  return dlg;
}

export function fmtDuration(seconds) {
  const s = Math.round(seconds || 0);
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  return hh ? `${hh}h ${String(mm).padStart(2, "0")}m` : mm ? `${mm}m ${String(ss).padStart(2, "0")}s` : `${ss}s`;
}

/** A 20x20 line icon from SVG path data (no icon fonts or emoji needed). */
export function icon(d) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 20 20"); svg.setAttribute("width", "20"); svg.setAttribute("height", "20");
  svg.setAttribute("aria-hidden", "true");
  const p = document.createElementNS(ns, "path");
  p.setAttribute("d", d); p.setAttribute("fill", "none"); p.setAttribute("stroke", "currentColor");
  p.setAttribute("stroke-width", "1.8"); p.setAttribute("stroke-linejoin", "round"); p.setAttribute("stroke-linecap", "round");
  svg.append(p);
  return svg;
}
