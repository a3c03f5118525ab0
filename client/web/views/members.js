// Members: invite by email with a preset, change privileges, remove (manage_members). An
// invitation reads the same whether the email has an account or not; the person says yes.
import { h } from "../dom.js";
import { href } from "../router.js";
import { linkBox } from "./users.js";

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
    const role = h("select", { "aria-label": `Role of ${m.name}`, disabled: !manage, onchange: (e) => change(m, { role: e.target.value }) },
      PRESETS.map((p) => h("option", { value: p, selected: m.role === p }, p)),
      m.role === "custom" ? h("option", { value: "custom", selected: true, disabled: true }, "custom") : null);
    const flags = FLAGS.map((f) => h("td", { class: "flag" }, h("input", { type: "checkbox", checked: m.privileges.includes(f), disabled: !manage,
      "aria-label": `${m.name}: ${f.replace("_", " ")}`,
      onchange: (e) => change(m, { privileges: e.target.checked ? [...m.privileges, f] : m.privileges.filter((x) => x !== f) }) })));
    return h("tr", { dataset: { user: String(m.user_id) } }, h("td", {}, m.name), manage ? h("td", {}, m.email) : null, h("td", {}, role), flags,
      h("td", {}, manage ? h("button", { type: "button", class: "danger", onclick: async () => {
        if (!confirm(`Remove ${m.name} (${m.email}) from this project?`)) return;
        try { await ctx.api.del(`/api/v1/projects/${pid}/members/${m.user_id}`); } catch (err) { error.textContent = err.message; }
        await load();
      } }, "Remove") : null));
  }

  async function load() {
    try {
      const { members } = await ctx.api.get(`/api/v1/projects/${pid}/members`);
      table.replaceChildren(h("thead", {}, h("tr", {}, h("th", {}, "Name"), manage ? h("th", {}, "Email") : null, h("th", {}, "Role"),
        FLAGS.map((f) => h("th", { class: "flag" }, f.replace("_", " "))), h("th", {}, ""))),
      h("tbody", {}, members.map(row)));
      if (manage) await loadInvitations();
    } catch (err) { error.textContent = err.message; }
  }

  const pending = h("div", { class: "pending-invitations" });
  async function loadInvitations() {
    const { invitations } = await ctx.api.get(`/api/v1/projects/${pid}/invitations`);
    pending.replaceChildren(h("h2", {}, "Invited, not yet joined"), invitations.length ? h("table", { class: "data" },
      h("tbody", {}, invitations.map((inv) => h("tr", {}, h("td", {}, inv.email), h("td", {}, inv.role),
        h("td", { class: "muted" }, `until ${new Date(inv.expires_at).toLocaleString()}`),
        h("td", {}, h("button", { type: "button", class: "danger", onclick: async () => {
          try { await ctx.api.del(`/api/v1/invitations/${inv.id}`); } catch (err) { error.textContent = err.message; }
          await load();
        } }, "Withdraw")))))) : h("p", { class: "muted" }, "Nobody."));
  }

  const email = h("input", { type: "email", id: "member-email", required: true, placeholder: "person@example.com" });
  const preset = h("select", { id: "member-role" }, PRESETS.map((p) => h("option", { value: p, selected: p === "labeler" }, p)));
  const notice = h("div", { class: "invite-notice", role: "status" });
  const add = h("form", { class: "card inline-form", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    notice.replaceChildren();
    const who = email.value.trim();
    try {
      const res = await ctx.api.post(`/api/v1/projects/${pid}/members`, { email: who, role: preset.value });
      email.value = "";
      if (res.status === "invited") {
        notice.append(h("p", {}, `${who} is invited as ${res.role}. With an account, they will find the invitation on their projects page; `
          + "without one, a site admin makes them an account first."));
        if (res.link) notice.append(linkBox(res.link, `Link that makes ${who}'s account`));
      } else {
        notice.append(h("p", {}, `${res.name} was added as ${res.role}.`));
      }
      await load();
    } catch (err) { error.textContent = err.message; }
  } }, h("h2", {}, "Invite a member"), h("label", { for: "member-email" }, "Email"), email,
  h("label", { for: "member-role" }, "Role"), preset, h("button", { type: "submit", class: "primary" }, "Invite"), notice);

  root.append(h("section", { class: "page" }, h("h1", {}, `Members of ${project.name}`), error,
    h("div", { class: "scroll-x" }, table), manage ? [add, pending] : h("p", { class: "muted" }, "You can see the members; changing them needs the manage members privilege.")));
  await load();
  return {};
}
