// The connection pill's words (pure): it never says "Live" while the socket is down, and it
// says how many edits are waiting to be sent.

const TEXT = { connecting: "Connecting…", online: "Live", reconnecting: "Reconnecting…", offline: "Offline" };

export function connText(state, { detail = "", pending = 0, browserOnline = true } = {}) {
  if (state === "online") return TEXT.online;
  const waiting = pending ? `${pending} edit${pending === 1 ? "" : "s"} waiting` : "";
  if (waiting) return `Offline — ${waiting}` + (detail ? ` — ${detail}` : "");
  if (!browserOnline && state === "reconnecting") return "Offline";
  return (TEXT[state] || state) + (detail ? ` — ${detail}` : "");
}
