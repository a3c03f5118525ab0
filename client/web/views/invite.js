// An invitation link (#/invite/<token>): choose a name and a password, and the account is made
// (and joins the project it invites to); then you are logged in. Used once; it expires.
import { h } from "../dom.js";
import { href, loginHref } from "../router.js";

export async function mount(root, ctx) {
  const token = ctx.route.params.token;
  const path = `/api/v1/invitations/${encodeURIComponent(token)}`;
  let inv;
  try {
    inv = await ctx.api.get(path);
  } catch (err) {
    root.append(h("section", { class: "card narrow" }, h("h1", {}, "Invitation"),
      h("p", { class: "error", role: "alert" }, err.status === 404
        ? "This invitation does not exist, was used already or has expired. Ask whoever invited you for a new one."
        : err.message),
      h("a", { href: href("login") }, "Log in")));
    return {};
  }
  const what = inv.project ? `join the project “${inv.project}”` : "use Labelhub";
  const intro = h("p", {}, `${inv.invited_by || "Someone"} invited you (${inv.email}) to ${what}.`);
  if (ctx.me) {
    // Logged in already: a project invitation for this account waits on the projects page.
    root.append(h("section", { class: "card narrow" }, h("h1", {}, "Invitation"), intro,
      ctx.me.email === inv.email
        ? h("p", {}, "It is for your account: ", h("a", { href: href("projects") }, "accept it on your projects page"), ".")
        : h("p", {}, `You are logged in as ${ctx.me.email}. Log out first to use this invitation.`)));
    return {};
  }
  const error = h("p", { class: "error", role: "alert" });
  const name = h("input", { id: "invite-name", required: true, maxlength: 200, autocomplete: "name", value: inv.name || "" });
  const password = h("input", { id: "invite-password", type: "password", required: true, minlength: 8, autocomplete: "new-password" });
  const again = h("input", { id: "invite-again", type: "password", required: true, minlength: 8, autocomplete: "new-password" });
  const submit = h("button", { type: "submit", class: "primary" }, "Create my account");
  const form = h("form", { class: "card narrow", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    if (password.value !== again.value) { error.textContent = "The two passwords differ."; again.select(); return; }
    submit.disabled = true;
    try {
      const res = await ctx.api.post(`${path}/accept`, { name: name.value.trim(), password: password.value });
      ctx.loggedIn(res.user);
      ctx.toast(`Welcome, ${res.user.name}!`, "info");
      ctx.navigate(href("projects"));
    } catch (err) {
      error.replaceChildren(err.message);
      if (err.code === "exists") error.append(" ", h("a", { href: loginHref(location.hash) }, "Log in"));
    } finally {
      submit.disabled = false;
    }
  } },
  h("h1", {}, "Welcome to Labelhub"), intro,
  h("label", { for: "invite-name" }, "Your name (shown to others)"), name,
  h("label", { for: "invite-password" }, "Password (at least 8 characters)"), password,
  h("label", { for: "invite-again" }, "Password again"), again,
  error, submit);
  root.append(form);
  name.focus();
  return {};
}
