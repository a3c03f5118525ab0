// REST client: one fetch wrapper, errors turned into plain words.

export class ApiError extends Error {
  constructor(status, code, message, details, error) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
    this.error = error;  // the body's whole {"error": {...}} object (e.g. a not_ready error's job)
  }
}

const PLAIN = {
  0: "Cannot reach the server. Check your network and try again.",
  401: "Your session has ended. Please log in again.",
  403: "You do not have permission to do that.",
  404: "That was not found — it may have been deleted.",
  413: "That is too large for the server to accept.",
  429: "Too many requests; please wait a moment.",
};

/** The sentence to show a person for a failed request. */
export function plainError(status, body) {
  const err = body && body.error;
  if (err && err.message) {
    const msg = err.message.charAt(0).toUpperCase() + err.message.slice(1);
    if (status === 403) return `${PLAIN[403]} (${msg})`;
    return msg.endsWith(".") ? msg : msg + ".";
  }
  if (PLAIN[status]) return PLAIN[status];
  if (status >= 500) return "The server had a problem. Please try again.";
  return `The request failed (status ${status}).`;
}

export function queryString(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === "") continue;
    q.set(k, Array.isArray(v) ? v.join(",") : String(v));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

export function createApi({ fetchImpl = (...a) => fetch(...a), base = "", onUnauthorized } = {}) {
  async function request(method, path, { json, form, query, raw } = {}) {
    const init = { method, credentials: "same-origin", headers: {} };
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    } else if (form !== undefined) {
      init.body = form;
    } else if (raw !== undefined) {
      // A file as it is; its own type may be text/plain, which the server refuses from forms.
      init.headers["Content-Type"] = "application/octet-stream";
      init.body = raw;
    }
    let resp;
    try {
      resp = await fetchImpl(base + path + queryString(query), init);
    } catch {
      throw new ApiError(0, "network", PLAIN[0]);
    }
    if (resp.status === 204) return null;
    const text = await resp.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch { body = null; }
    if (!resp.ok) {
      if (resp.status === 401 && onUnauthorized && !path.endsWith("/auth/login")) onUnauthorized();
      const e = body && body.error;
      throw new ApiError(resp.status, e?.code || "http", plainError(resp.status, body), e?.details, e);
    }
    return body;
  }
  return {
    get: (p, query) => request("GET", p, { query }),
    post: (p, json, query) => request("POST", p, { json, query }),
    patch: (p, json) => request("PATCH", p, { json }),
    put: (p, json) => request("PUT", p, { json }),
    del: (p) => request("DELETE", p),
    postForm: (p, form, query) => request("POST", p, { form, query }),
    postRaw: (p, raw, query) => request("POST", p, { raw, query }),
    upload: (p, form, onProgress) => uploadWithProgress(base + p, form, onProgress),
  };
}

/** Multipart POST with upload progress (fetch has none): resolves {status, body}. */
export function uploadWithProgress(url, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.withCredentials = true;
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress?.(e.loaded, e.total); };
    xhr.onerror = () => reject(new ApiError(0, "network", PLAIN[0]));
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { body = null; }
      if (xhr.status >= 400 && !(body && body.results)) {
        reject(new ApiError(xhr.status, body?.error?.code || "http", plainError(xhr.status, body)));
      } else {
        resolve({ status: xhr.status, body });
      }
    };
    xhr.send(form);
  });
}
