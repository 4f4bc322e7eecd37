// view_lead.js - "what happened to lead K?": the item K in every queue of
// the tenant, as status tells it.

import { get, allQueues } from "./api.js";
import { el, table, errorBox } from "./dom.js";

async function lookup(key) {
	const queues = await allQueues();
	const all = await Promise.all(queues.map((q) =>
		get("/v1/queues/" + encodeURIComponent(q.queue) + "/status", { key })));
	return all.filter((s) => s.state !== "absent");
}

export function show(root) {
	const out = el("div", { id: "lead-out", "aria-live": "polite" });
	const input = el("input", { id: "lead-key", name: "key", required: true,
		autocomplete: "off", spellcheck: "false", placeholder: "1234" });
	const form = el("form", { class: "inline", onsubmit: async (ev) => {
		ev.preventDefault();
		out.replaceChildren(el("p", {}, "looking…"));
		try {
			const found = await lookup(input.value);
			out.replaceChildren(found.length === 0
				? el("p", { id: "lead-none" }, "No queue holds or recently gave out this key.")
				: table("Where " + input.value + " is", ["queue", "state", "attempts", "owner", "since"],
					found.map((s) => [s.queue, s.state, String(s.attempts), s.owner || "",
						s.claimed_at || s.lease_expires_at || s.ready_at || ""]),
					{ id: "lead-table" }));
		} catch (e) { out.replaceChildren(errorBox(e)); }
		root.dataset.drawn = String(Number(root.dataset.drawn || 0) + 1);
	} }, el("label", { for: "lead-key" }, "Lead key (e.g. the lead id)"), input,
		el("button", { type: "submit" }, "Look up"));
	root.replaceChildren(el("h1", {}, "Lead lookup"), form, out);
	input.focus();
}
