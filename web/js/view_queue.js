// view_queue.js - one queue: its counters, and any item by key (status).

import { get } from "./api.js";
import { el, errorBox } from "./dom.js";

const COUNTERS = ["ready", "leased", "oldest_ready_age", "enqueued", "claimed",
	"acked", "released", "removed", "expired"];

function statusView(s) {
	const rows = Object.entries(s).filter(([k]) => k !== "queue");
	return el("dl", { class: "counts", id: "item-status" },
		rows.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, String(v)))));
}

export function show(root, { arg }) {
	const name = arg;
	const path = "/v1/queues/" + encodeURIComponent(name);
	const out = el("div", { id: "status-out" });
	const keyInput = el("input", { id: "status-key", name: "key", required: true,
		autocomplete: "off", spellcheck: "false" });
	const lookup = el("form", { class: "inline", onsubmit: async (ev) => {
		ev.preventDefault();
		try {
			out.replaceChildren(statusView(await get(path + "/status", { key: keyInput.value })));
		} catch (e) { out.replaceChildren(errorBox(e)); }
	} }, el("label", { for: "status-key" }, "Item key"), keyInput,
		el("button", { type: "submit" }, "Look up"));
	const stats = el("div", {});
	root.replaceChildren(el("p", {}, el("a", { href: "#/overview" }, "← all queues")),
		el("h1", {}, "Queue ", el("span", { class: "name" }, name)), stats,
		el("h2", {}, "One item"), lookup, out);
	get(path).then((s) => {
		stats.replaceChildren(el("dl", { class: "counts", id: "queue-stats" },
			COUNTERS.map((k) => el("div", {}, el("dt", {}, k.replace(/_/g, " ")),
				el("dd", { "data-counter": k }, String(s[k]))))));
		root.dataset.drawn = "1";
	}, (e) => { stats.replaceChildren(errorBox(e)); root.dataset.drawn = "1"; });
}
