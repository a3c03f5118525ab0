import { h } from "../dom.js";
export async function mount(root) { root.append(h("p", {}, "Supervisor view is coming.")); return {}; }
