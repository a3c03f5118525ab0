// Your projects, the invitations to join others, and a form to create one.
import { h } from "../dom.js";
import { href } from "../router.js";

export async function mount(root, ctx) {
  ctx.setCrumbs([{ text: "Projects" }]);
  const list = h("ul", { class: "project-list", "aria-label": "Projects" });
  const error = h("p", { class: "error", role: "alert" });
  const name = h("input", { id: "new-project-name", required: true, maxlength: 200, placeholder: "e.g. Street scenes" });
  const description = h("input", { id: "new-project-desc", maxlength: 2000, placeholder: "optional" });
  const form = h("form", { class: "card inline-form", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    try {
      const p = await ctx.api.post("/api/v1/projects", { name: name.value.trim(), description: description.value.trim() });
      ctx.navigate(href("dashboard", { project: p.id }));
    } catch (err) { error.textContent = err.message; }
  } },
  h("h2", {}, "New project"),
  h("label", { for: "new-project-name" }, "Name"), name,
  h("label", { for: "new-project-desc" }, "Description"), description,
  h("button", { type: "submit", class: "primary" }, "Create project"), error);

  const invitations = h("div", { class: "invitations", "aria-live": "polite" });

  async function answer(inv, accept) {
    error.textContent = "";
    try {
      if (accept) await ctx.api.post(`/api/v1/me/invitations/${inv.id}/accept`, {});
      else await ctx.api.del(`/api/v1/me/invitations/${inv.id}`);
    } catch (err) { error.textContent = err.message; }
    await load();
  }

  async function load() {
    try {
      const [{ projects }, pending] = await Promise.all([ctx.api.get("/api/v1/projects"), ctx.api.get("/api/v1/me/invitations")]);
      invitations.replaceChildren(...pending.invitations.map((inv) => h("p", { class: "card invitation" },
        `${inv.invited_by || "Someone"} invited you to join “${inv.project_name}” as ${inv.role}. `,
        h("button", { type: "button", class: "primary", onclick: () => answer(inv, true) }, "Join"), " ",
        h("button", { type: "button", onclick: () => answer(inv, false) }, "Decline"))));
      list.replaceChildren(...projects.map((p) => h("li", { class: "card project" },
        h("a", { href: href("dashboard", { project: p.id }), class: "project-link" }, p.name),
        h("span", { class: "muted" }, p.description || ""),
        h("span", { class: "badge" }, p.role))));
      if (!projects.length) list.append(h("li", { class: "empty" }, "No projects yet — create one to start."));
    } catch (err) { error.textContent = err.message; }
  }
  root.append(h("section", { class: "page" }, h("h1", {}, "Projects"), invitations, list, form));
  await load();
  list.querySelector("a")?.focus();
  return {};
}
