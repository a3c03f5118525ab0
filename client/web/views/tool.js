import { h } from "../dom.js";
export async function mount(root) { root.append(h("p", {}, "Labeling tool is coming.")); return {}; }
