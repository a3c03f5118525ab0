// Your account: the name others see, and a new password (which signs out your other sessions).
import { h } from "../dom.js";

export async function mount(root, ctx) {
  ctx.setCrumbs([{ text: "Projects", href: "#/" }, { text: "Your account" }]);
  const nameError = h("p", { class: "error", role: "alert" });
  const name = h("input", { id: "account-name", required: true, maxlength: 200, value: ctx.me.name });
  const nameForm = h("form", { class: "card inline-form", onsubmit: async (e) => {
    e.preventDefault();
    nameError.textContent = "";
    try {
      const user = await ctx.api.patch("/api/v1/me", { name: name.value.trim() });
      ctx.loggedIn(user);
      ctx.toast("Your name was changed.", "info");
    } catch (err) { nameError.textContent = err.message; }
  } }, h("h2", {}, "Name"), h("label", { for: "account-name" }, "Your name (shown to others)"), name,
  h("button", { type: "submit" }, "Save"), nameError);

  const error = h("p", { class: "error", role: "alert" });
  const current = h("input", { id: "password-current", type: "password", required: true, autocomplete: "current-password" });
  const fresh = h("input", { id: "password-new", type: "password", required: true, minlength: 8, autocomplete: "new-password" });
  const again = h("input", { id: "password-again", type: "password", required: true, minlength: 8, autocomplete: "new-password" });
  const submit = h("button", { type: "submit", class: "primary" }, "Change password");
  const form = h("form", { class: "card narrow-form", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    if (fresh.value !== again.value) { error.textContent = "The two new passwords differ."; again.select(); return; }
    submit.disabled = true;
    try {
      const res = await ctx.api.post("/api/v1/auth/password", { current: current.value, new: fresh.value });
      ctx.loggedIn(res.user);  // this tab keeps going with the fresh cookie
      form.reset();
      ctx.toast("Your password was changed. Your other sessions were signed out.", "info");
    } catch (err) {
      error.textContent = err.code === "wrong_password" ? "The current password is wrong." : err.message;
      current.select();
    } finally {
      submit.disabled = false;
    }
  } },
  h("h2", {}, "Change password"),
  h("label", { for: "password-current" }, "Current password"), current,
  h("label", { for: "password-new" }, "New password (at least 8 characters)"), fresh,
  h("label", { for: "password-again" }, "New password again"), again,
  error, submit);

  root.append(h("section", { class: "page" }, h("h1", {}, "Your account"),
    h("p", { class: "muted" }, `Logged in as ${ctx.me.email}${ctx.me.is_admin ? " (site admin)" : ""}.`),
    nameForm, form));
  return {};
}
