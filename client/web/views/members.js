// Members: add by email with a preset or single privileges, change, remove (manage_members).
import { h } from "../dom.js";
import { href } from "../router.js";

export const FLAGS = ["view", "label", "review", "upload", "delete", "manage_labels", "import_export", "view_stats", "manage_members"];
export const PRESETS = ["owner", "manager", "supervisor", "labeler", "viewer"];

export async function mount(root, ctx) {
  const pid = ctx.route.params.project;
  const project = await ctx.api.get(`/api/v1/projects/${pid}`).catch((err) => { ctx.toast(err.message); return null; });
  if (!project) return {};
  ctx.setCrumbs([{ text: "Projects", href: "#/" }, { text: project.name, href: href("dashboard", { project: pid }) }, { text: "Members" }]);
  const manage = project.privileges.includes("manage_members");
  const table = h("table", { class: "members" });
  const error = h("p", { class: "error", role: "alert" });

  async function change(member, body) {
    error.textContent = "";
    try { await ctx.api.patch(`/api/v1/projects/${pid}/members/${member.user_id}`, body); }
    catch (err) { error.textContent = err.message; }
    await load();
  }

  function row(m) {
    const role = h("select", { "aria-label": `Role of ${m.email}`, disabled: !manage, onchange: (e) => change(m, { role: e.target.value }) },
      PRESETS.map((p) => h("option", { value: p, selected: m.role === p }, p)),
      m.role === "custom" ? h("option", { value: "custom", selected: true, disabled: true }, "custom") : null);
    const flags = FLAGS.map((f) => h("td", { class: "flag" }, h("input", { type: "checkbox", checked: m.privileges.includes(f), disabled: !manage,
      "aria-label": `${m.email}: ${f.replace("_", " ")}`,
      onchange: (e) => change(m, { privileges: e.target.checked ? [...m.privileges, f] : m.privileges.filter((x) => x !== f) }) })));
    return h("tr", { dataset: { user: String(m.user_id) } }, h("td", {}, m.name || ""), h("td", {}, m.email), h("td", {}, role), flags,
      h("td", {}, manage ? h("button", { type: "button", class: "danger", onclick: async () => {
        if (!confirm(`Remove ${m.email} from this project?`)) return;
        try { await ctx.api.del(`/api/v1/projects/${pid}/members/${m.user_id}`); } catch (err) { error.textContent = err.message; }
        await load();
      } }, "Remove") : null));
  }

  async function load() {
    try {
      const { members } = await ctx.api.get(`/api/v1/projects/${pid}/members`);
      table.replaceChildren(h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Email"), h("th", {}, "Role"),
        FLAGS.map((f) => h("th", { class: "flag" }, f.replace("_", " "))), h("th", {}, ""))),
      h("tbody", {}, members.map(row)));
    } catch (err) { error.textContent = err.message; }
  }

  const email = h("input", { type: "email", id: "member-email", required: true, placeholder: "person@example.com" });
  const preset = h("select", { id: "member-role" }, PRESETS.map((p) => h("option", { value: p, selected: p === "labeler" }, p)));
  const add = h("form", { class: "card inline-form", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    try {
      await ctx.api.post(`/api/v1/projects/${pid}/members`, { email: email.value.trim(), role: preset.value });
      email.value = "";
      await load();
    } catch (err) { error.textContent = err.status === 404 ? `There is no account with the email ${email.value.trim()}. A site admin can create one.` : err.message; }
  } }, h("h2", {}, "Add a member"), h("label", { for: "member-email" }, "Email"), email,
  h("label", { for: "member-role" }, "Role"), preset, h("button", { type: "submit", class: "primary" }, "Add"));

  root.append(h("section", { class: "page" }, h("h1", {}, `Members of ${project.name}`), error,
    h("div", { class: "scroll-x" }, table), manage ? add : h("p", { class: "muted" }, "You can see the members; changing them needs the manage members privilege.")));
  await load();
  return {};
}
