// Hash routes, parsed and built by pure functions.
//   #/login  #/invite/<token>  #/account  #/users  #/  #/p/7  #/p/7/members  #/p/7/supervisor  #/p/7/settings  #/p/7/label?ids=1,2&label=cat  #/p/7/label/12
//   #/p/7/similar?label=cat  #/p/7/similar?image=12  #/p/7/models  #/p/7/predictions?model=pets&status=pending

export function parseRoute(hash) {
  const raw = (hash || "").replace(/^#/, "");
  const [path, qs = ""] = raw.split("?");
  const query = Object.fromEntries(new URLSearchParams(qs));
  const parts = path.split("/").filter(Boolean);
  if (parts[0] === "login") return { name: "login", params: {}, query };
  if (parts[0] === "invite" && parts[1]) return { name: "invite", params: { token: parts[1] }, query };
  if ((parts[0] === "account" || parts[0] === "users") && parts.length === 1) return { name: parts[0], params: {}, query };
  if (parts[0] === "p" && /^\d+$/.test(parts[1] || "")) {
    const project = Number(parts[1]);
    const sub = parts[2];
    if (!sub) return { name: "dashboard", params: { project }, query };
    if (["members", "supervisor", "settings", "similar", "models", "predictions"].includes(sub)) {
      return { name: sub, params: { project }, query };
    }
    if (sub === "label") {
      const image = /^\d+$/.test(parts[3] || "") ? Number(parts[3]) : null;
      return { name: "tool", params: { project, image }, query };
    }
  }
  if (parts.length === 0 || parts[0] === "projects") return { name: "projects", params: {}, query };
  return { name: "notfound", params: {}, query };
}

export function href(name, params = {}, query = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, Array.isArray(v) ? v.join(",") : String(v));
  }
  const qs = q.toString() ? "?" + q.toString() : "";
  switch (name) {
    case "login": return "#/login";
    case "invite": return `#/invite/${params.token}`;
    case "account": case "users": return `#/${name}`;
    case "projects": return "#/";
    case "dashboard": return `#/p/${params.project}${qs}`;
    case "members": case "supervisor": case "settings":
      return `#/p/${params.project}/${name}`;
    case "similar": case "models": case "predictions": return `#/p/${params.project}/${name}${qs}`;
    case "tool": return `#/p/${params.project}/label${params.image ? "/" + params.image : ""}${qs}`;
    default: return "#/";
  }
}

/** The login page, remembering where to come back to (an expired session returns to the same page). */
export function loginHref(back) {
  const r = parseRoute(back);
  if (!back || r.name === "login" || r.name === "notfound" || !back.startsWith("#/")) return "#/login";
  return "#/login?next=" + encodeURIComponent(back);
}
