// Site admins: every account (create, reset a password, deactivate), invitation links, and the
// project invitations waiting for an email that has no account yet.
import { h, modal } from "../dom.js";

/** A link to hand to someone, with a copy button. */
export function linkBox(link, label = "Invitation link") {
  const url = new URL(link, location.href).href;
  const input = h("input", { class: "invite-link", readonly: true, value: url, "aria-label": label, onfocus: (e) => e.target.select() });
  return h("p", { class: "link-box" }, h("span", {}, `${label} (one use; send it to the person): `), input,
    h("button", { type: "button", onclick: async () => { input.select(); await navigator.clipboard?.writeText(url).catch(() => null); } }, "Copy"));
}

export async function mount(root, ctx) {
  ctx.setCrumbs([{ text: "Projects", href: "#/" }, { text: "Users" }]);
  if (!ctx.me.is_admin) {
    root.append(h("section", { class: "page" }, h("p", { class: "error" }, "Only site admins manage users.")));
    return {};
  }
  const error = h("p", { class: "error", role: "alert" });
  const table = h("table", { class: "data users" });
  const pending = h("div", { class: "pending-invitations" });
  const links = h("div", { "aria-live": "polite" });

  async function patch(user, body, done) {
    error.textContent = "";
    try { await ctx.api.patch(`/api/v1/users/${user.id}`, body); ctx.toast(done, "info"); } catch (err) { error.textContent = err.message; }
    await load();
  }

  function resetPassword(user) {
    const field = h("input", { type: "password", id: "reset-password", required: true, minlength: 8, autocomplete: "new-password" });
    const problem = h("p", { class: "error", role: "alert" });
    const dlg = modal(ctx.overlayRoot, `New password for ${user.name}`, h("form", { class: "narrow-form", onsubmit: async (e) => {
      e.preventDefault();
      try {
        await ctx.api.patch(`/api/v1/users/${user.id}`, { password: field.value });
        dlg.close();
        ctx.toast(`${user.name}'s password was reset; their sessions were signed out.`, "info");
      } catch (err) { problem.textContent = err.message; }
    } }, h("label", { for: "reset-password" }, "New password (at least 8 characters)"), field, problem,
    h("button", { type: "submit", class: "primary" }, "Set password")));
  }

  function row(u) {
    const self = u.id === ctx.me.id;
    return h("tr", { dataset: { user: String(u.id) } }, h("td", {}, u.name), h("td", {}, u.email),
      h("td", {}, u.is_admin ? "site admin" : ""), h("td", {}, u.is_active ? "active" : "deactivated"),
      h("td", {}, h("button", { type: "button", onclick: () => resetPassword(u) }, "Reset password"), " ",
        u.is_active
          ? h("button", { type: "button", class: "danger", disabled: self, onclick: () => {
            if (confirm(`Deactivate ${u.name} (${u.email})? They are signed out and cannot log in.`)) patch(u, { is_active: false }, `${u.name} was deactivated.`);
          } }, "Deactivate")
          : h("button", { type: "button", onclick: () => patch(u, { is_active: true }, `${u.name} can log in again.`) }, "Reactivate")));
  }

  async function newLink(email, name = "", isAdmin = false) {
    error.textContent = "";
    try {
      const res = await ctx.api.post("/api/v1/invitations", { email, name, is_admin: isAdmin });
      links.replaceChildren(linkBox(res.link, `Invitation link for ${res.email}`));
      links.querySelector("input").focus();
    } catch (err) { error.textContent = err.message; }
    await load();
  }

  async function load() {
    try {
      const [{ users }, { invitations }] = await Promise.all([ctx.api.get("/api/v1/users"), ctx.api.get("/api/v1/invitations")]);
      table.replaceChildren(h("thead", {}, h("tr", {}, ["Name", "Email", "Role", "Status", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, users.map(row)));
      pending.replaceChildren(invitations.length ? h("table", { class: "data" },
        h("thead", {}, h("tr", {}, ["Email", "For", "Invited by", "Expires", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, invitations.map((inv) => h("tr", {},
          h("td", {}, inv.email), h("td", {}, inv.project_name ? `project ${inv.project_name} (${inv.role})` : "a new account"),
          h("td", {}, inv.invited_by || ""), h("td", {}, new Date(inv.expires_at).toLocaleString()),
          h("td", {}, inv.project_id && !inv.has_account
            ? h("button", { type: "button", onclick: () => newLink(inv.email) }, "Make an account link") : null, " ",
          h("button", { type: "button", class: "danger", onclick: async () => {
            try { await ctx.api.del(`/api/v1/invitations/${inv.id}`); } catch (err) { error.textContent = err.message; }
            await load();
          } }, "Withdraw")))))) : h("p", { class: "muted" }, "No open invitations."));
    } catch (err) { error.textContent = err.message; }
  }

  const email = h("input", { type: "email", id: "user-email", required: true, placeholder: "person@example.com" });
  const name = h("input", { id: "user-name", maxlength: 200, placeholder: "their name" });
  const password = h("input", { type: "password", id: "user-password", minlength: 8, autocomplete: "new-password", placeholder: "empty: send a link" });
  const admin = h("input", { type: "checkbox", id: "user-admin" });
  const form = h("form", { class: "card inline-form", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    if (!password.value) { await newLink(email.value.trim(), name.value.trim(), admin.checked); form.reset(); return; }
    try {
      await ctx.api.post("/api/v1/users", { email: email.value.trim(), name: name.value.trim(), password: password.value, is_admin: admin.checked });
      ctx.toast(`The account for ${email.value.trim()} was created.`, "info");
      form.reset();
    } catch (err) { error.textContent = err.message; }
    await load();
  } }, h("h2", {}, "Add a person"),
  h("label", { for: "user-email" }, "Email"), email, h("label", { for: "user-name" }, "Name"), name,
  h("label", { for: "user-password" }, "Password"), password,
  h("label", { for: "user-admin" }, admin, " site admin"),
  h("button", { type: "submit", class: "primary" }, "Add"),
  h("p", { class: "muted wide-note" }, "With a password the account is made now (a name is then required); without one you get an invitation link, and they choose their name and password."));

  root.append(h("section", { class: "page" }, h("h1", {}, "Users"), error, form, links,
    h("div", { class: "scroll-x" }, table), h("h2", {}, "Open invitations"), pending));
  await load();
  return {};
}
