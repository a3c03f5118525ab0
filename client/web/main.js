// Boot, routing and the one place where the hub socket is wired to the views.
import { createApi } from "./api.js";
import { clear, h } from "./dom.js";
import { HubClient } from "./socket.js";
import { href, loginHref, parseRoute } from "./router.js";
import { connText } from "./conn.js";
import { KEYS, shortcutOverlay } from "./tool/keys.js";
import * as login from "./views/login.js";
import * as projects from "./views/projects.js";
import * as dashboard from "./views/dashboard.js";
import * as members from "./views/members.js";
import * as supervisor from "./views/supervisor.js";
import * as tool from "./views/tool.js";
import * as similar from "./views/similarity.js";
import * as invite from "./views/invite.js";
import * as account from "./views/account.js";
import * as users from "./views/users.js";
import * as models from "./views/models.js";
import * as predictions from "./views/predictions.js";

const VIEWS = { login, projects, dashboard, settings: dashboard, members, supervisor, tool, similar, invite, account, users, models, predictions };
// Pages for people who are not logged in (an invitation may also be opened by its account).
const PUBLIC = new Set(["login", "invite"]);

const main = document.getElementById("main");
const overlayRoot = document.getElementById("overlay-root");
const connEl = document.getElementById("conn");
let current = null;      // the mounted view
let hub = null;          // HubClient of the open project
const listeners = new Set();

const api = createApi({ onUnauthorized: () => { if (!PUBLIC.has(parseRoute(location.hash).name)) go(loginHref(location.hash)); } });

function go(hash) { if (location.hash === hash) route(); else location.hash = hash; }

function toast(message, kind = "error") {
  const el = h("div", { class: `toast ${kind}` }, message,
    h("button", { type: "button", class: "icon", "aria-label": "Dismiss", onclick: () => el.remove() }, "×"));
  document.getElementById("toasts").append(el);
  setTimeout(() => el.remove(), kind === "error" ? 9000 : 4000);
}

let connDetail = "";
function showConn(state, detail) {
  connDetail = detail || "";
  paintConn(state);
  for (const fn of listeners) fn({ type: "_conn", state, detail });
}

/** The pill: never "Live" while the socket is down; counts the edits waiting to be sent. */
function paintConn(state = connEl.dataset.state) {
  connEl.dataset.state = state;
  connEl.hidden = !hub;  // pages without a live socket (login, the project list) have no pill
  connEl.textContent = connText(state, { detail: connDetail, pending: hub?.pending ?? 0, browserOnline: navigator.onLine });
}

function hubFor(project) {
  if (hub && hub.project === project) return hub;
  hub?.close();
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  hub = new HubClient({
    url: `${proto}//${location.host}/api/v1/ws`,
    project,
    onEvent: (msg) => { for (const fn of listeners) fn(msg); },
    onState: showConn,
    onResume: async (client) => { for (const fn of listeners) await fn({ type: "_resumed", client }); },
    onClosed: revoked,
  });
  hub.onPending = () => paintConn();
  hub.connect();
  return hub;
}

/** The server closed the socket for good (docs/protocol.md, close codes): a revoked session or
 *  a deactivated account goes back to the login page; lost access to the project, to the list. */
function revoked({ code, reason }) {
  if (code === 4401 || reason === "account no longer active") {
    toast(code !== 4401 ? "This account is no longer active."
      : reason === "session expired" ? "Your session expired. Please log in again."
      : "You were signed out (this session ended elsewhere). Please log in again.");
    me = null; dropHub(); go(loginHref(location.hash));
    return;
  }
  toast(reason ? `${reason[0].toUpperCase()}${reason.slice(1)}.` : "You no longer have access to this project.");
  dropHub(); go(href("projects"));
}

function dropHub() {
  hub?.close();
  hub = null;
  showConn("offline");
}

function setCrumbs(items) {
  const nav = clear(document.getElementById("crumbs"));
  items.forEach((item, i) => {
    if (i) nav.append(h("span", { class: "sep", "aria-hidden": "true" }, "›"));
    nav.append(item.href ? h("a", { href: item.href }, item.text) : h("span", { "aria-current": "page" }, item.text));
  });
}

async function whoAmI() {
  try { return await api.get("/api/v1/me"); } catch { return null; }
}

let me = null;
async function route() {
  const r = parseRoute(location.hash);
  if (r.name === "invite" && !me) me = await whoAmI();
  if (!PUBLIC.has(r.name) && !me) {
    me = await whoAmI();
    // (The 401 may have sent us to the login page already, remembering this page: keep that.)
    if (!me) { if (!location.hash.startsWith("#/login")) go(loginHref(location.hash)); return; }
  }
  const who = document.getElementById("who");
  who.textContent = me ? me.name : "";
  who.hidden = !me;
  document.getElementById("users-link").hidden = !me?.is_admin;
  document.getElementById("logout").hidden = !me;
  const project = r.params.project;
  if (project === undefined) dropHub();
  try { await current?.unmount?.(); } catch { /* a view failing to clean up must not block navigation */ }
  listeners.clear();
  clear(main);
  setCrumbs([]);
  const view = VIEWS[r.name];
  if (!view) { main.append(h("p", { class: "empty" }, "This page does not exist. ", h("a", { href: "#/" }, "Go to your projects"))); return; }
  const ctx = {
    api, me, route: r, navigate: go, toast, overlayRoot, setCrumbs,
    hub: project !== undefined && r.name !== "login" ? hubFor(project) : null,
    onHub: (fn) => { listeners.add(fn); return () => listeners.delete(fn); },
    loggedIn: (user) => { me = user; who.textContent = user ? user.name : ""; },
  };
  current = await view.mount(main, ctx);
  if (!main.contains(document.activeElement)) main.focus({ preventScroll: true });
}

document.getElementById("logout").addEventListener("click", async () => {
  await api.post("/api/v1/auth/logout", {}).catch(() => null);
  me = null; dropHub(); go(href("login"));
});
document.getElementById("help-btn").addEventListener("click", () => shortcutOverlay(overlayRoot, KEYS));
document.addEventListener("keydown", (e) => {
  const typing = e.target.closest?.("input, textarea, select, [contenteditable]");
  if (e.key === "?" && !typing && !overlayRoot.querySelector("dialog")) {
    e.preventDefault();
    shortcutOverlay(overlayRoot, KEYS);
  }
});
// A read-only handle for debugging from the console and for the browser tests.
Object.defineProperty(window, "labelhub", { value: Object.freeze({ get hub() { return hub; } }) });
window.addEventListener("hashchange", route);
// pagehide, not beforeunload: the tool may ask to stay (edits still waiting), and then the socket must live on.
window.addEventListener("pagehide", () => hub?.close());
// An open socket does not notice a network that went away: the browser's word drops it at once
// (edits then queue, and the pill says so), and its return reconnects without waiting out the backoff.
window.addEventListener("offline", () => { hub?.drop(); paintConn(); });
window.addEventListener("online", () => { hub?.reconnectNow(); paintConn(); });
route();
