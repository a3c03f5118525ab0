// Log in with email and password; the server sets an HttpOnly cookie.
import { h } from "../dom.js";

export async function mount(root, ctx) {
  const error = h("p", { class: "error", role: "alert" });
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true, id: "login-email" });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true, id: "login-password" });
  const submit = h("button", { type: "submit", class: "primary" }, "Log in");
  const form = h("form", { class: "card narrow", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    try {
      const res = await ctx.api.post("/api/v1/auth/login", { email: email.value.trim(), password: password.value });
      ctx.loggedIn(res.user);
      const back = ctx.route.query.next;
      ctx.navigate(back && back.startsWith("#/") ? back : "#/");
    } catch (err) {
      error.textContent = err.status === 401 ? "That email and password do not match an account." : err.message;
      password.select();
    } finally {
      submit.disabled = false;
    }
  } },
  h("h1", {}, "Log in to Labelhub"),
  h("label", { for: "login-email" }, "Email"), email,
  h("label", { for: "login-password" }, "Password"), password,
  error, submit);
  root.append(form);
  email.focus();
  return {};
}
