// A small "⋯" menu on an image tile (Open in the labeling tool, Find similar images, ...).
// The open menu survives the grid's live redraws: which image's menu is open is kept here.
import { h } from "../dom.js";

let openFor = null;

/** Open `id`'s menu at the next draw (a right-click on its tile); the caller redraws the grid. */
export function openMenuFor(id) { openFor = id; }

/** `items`: [{text, href} | {text, onClick}]. Clicks and keys inside never reach the grid. */
export function imageMenu(image, items) {
  const open = openFor === image.id;
  const btn = h("button", { type: "button", class: "tile-menu-btn", "aria-haspopup": "menu", "aria-expanded": String(open),
    "aria-label": `More for ${image.name}`, title: "More",
    onclick: () => { openFor = openFor === image.id ? null : image.id; sync(); if (openFor !== null) menu.querySelector("a, button")?.focus(); } }, "⋯");
  const menu = h("div", { class: "menu", role: "menu", hidden: !open },
    items.map((it) => it.href
      ? h("a", { role: "menuitem", href: it.href, onclick: () => { openFor = null; } }, it.text)
      : h("button", { type: "button", role: "menuitem", onclick: () => { openFor = null; sync(); it.onClick?.(); } }, it.text)));
  const el = h("div", { class: "tile-menu" }, btn, menu);
  function sync() { menu.hidden = openFor !== image.id; btn.setAttribute("aria-expanded", String(!menu.hidden)); }
  el.addEventListener("click", (e) => e.stopPropagation());
  el.addEventListener("dblclick", (e) => e.stopPropagation());
  el.addEventListener("keydown", (e) => {
    e.stopPropagation();
    const entries = [...menu.querySelectorAll("[role=menuitem]")];
    const at = entries.indexOf(document.activeElement);
    if (e.key === "Escape") { openFor = null; sync(); btn.focus(); e.preventDefault(); }
    else if ((e.key === "ArrowDown" || e.key === "ArrowUp") && !menu.hidden) {
      e.preventDefault();
      entries[(at + (e.key === "ArrowDown" ? 1 : entries.length - 1)) % entries.length]?.focus();
    }
  });
  return el;
}

// A click anywhere else closes the open menu.
document.addEventListener("click", (e) => {
  if (openFor === null || e.target.closest?.(".tile-menu")) return;
  openFor = null;
  for (const m of document.querySelectorAll(".tile-menu .menu:not([hidden])")) {
    m.hidden = true;
    m.previousElementSibling?.setAttribute("aria-expanded", "false");
  }
});
