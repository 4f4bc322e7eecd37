// view_lead.js - "what happened to lead K?": the item K in every queue
// of the tenant as status tells it now, and its history across queues as
// a timeline (/v1/history): who enqueued, claimed, acked it, and when.

import { get, allQueues } from "./api.js";
import { el, table, errorBox } from "./dom.js";

// Where the key is now: every queue that holds it or gave it out lately.
async function statuses(key) {
	const queues = await allQueues();
	const all = await Promise.all(queues.map((q) =>
		get("/v1/queues/" + encodeURIComponent(q.queue) + "/status", { key })));
	return all.filter((s) => s.state !== "absent");
}

const VERB = {
	enqueued: "enqueued", claimed: "claimed", popped: "popped", acked: "acked",
	released: "released", expired: "lease expired", removed: "removed",
	dead: "dead (max_attempts reached)", redriven: "redriven", follow_up: "follow-up queued",
};

// One event as a line: "claimed by trigger · attempt 1 · lease fc993938".
function describe(e) {
	const parts = [];
	if (e.claimant) parts.push((e.event === "expired" ? "held by " : "by ") + e.claimant);
	if (e.attempt !== undefined) parts.push("attempt " + e.attempt);
	if (e.token) parts.push("lease " + e.token);
	if (e.request_id) parts.push("request id " + e.request_id);
	for (const [k, v] of Object.entries(e))
		if (k.startsWith("x_")) parts.push(k + " " + (typeof v === "string" ? v : JSON.stringify(v)));
	return parts.join(" · ");
}

function timeline(events) {
	return el("ol", { class: "timeline", id: "lead-timeline" }, events.map((e) =>
		el("li", { "data-event": e.event, "data-queue": e.queue, "data-at": e.at },
			el("time", { datetime: e.at }, e.at.replace("T", " ").replace("Z", " UTC")),
			el("span", { class: "queue" }, e.queue),
			el("b", { class: "event" }, VERB[e.event] || e.event),
			el("span", { class: "details" }, describe(e)))));
}

async function draw(out, key) {
	const [now, hist] = await Promise.all([statuses(key), get("/v1/history", { key, limit: 1000 })]);
	out.replaceChildren(
		el("h2", {}, "Now"),
		now.length === 0
			? el("p", { id: "lead-none" }, "No queue holds or recently gave out this key.")
			: table("Where " + key + " is", ["queue", "state", "attempts", "owner", "since"],
				now.map((s) => [s.queue, s.state, String(s.attempts), s.owner || "",
					s.claimed_at || s.lease_expires_at || s.ready_at || ""]),
				{ id: "lead-table" }),
		el("h2", {}, "History"),
		hist.events.length === 0
			? el("p", { id: "lead-no-history" }, "No event recorded for this key.")
			: timeline(hist.events));
}

// #/lead/KEY looks KEY up at once (the queue page links there).
export function show(root, { arg }) {
	const out = el("div", { id: "lead-out", "aria-live": "polite" });
	const input = el("input", { id: "lead-key", name: "key", required: true,
		autocomplete: "off", spellcheck: "false", placeholder: "1234" });
	const lookup = async () => {
		out.replaceChildren(el("p", {}, "looking…"));
		try {
			await draw(out, input.value);
		} catch (e) { out.replaceChildren(errorBox(e)); }
		root.dataset.drawn = String(Number(root.dataset.drawn || 0) + 1);
	};
	const form = el("form", { class: "inline", onsubmit: (ev) => { ev.preventDefault(); lookup(); } },
		el("label", { for: "lead-key" }, "Lead key (e.g. the lead id)"), input,
		el("button", { type: "submit" }, "Look up"));
	root.replaceChildren(el("h1", {}, "Lead lookup"),
		el("p", {}, "Everything casq did with one key, in every queue: the answer to " +
			"“did this lead get two emails, and who took it?”"), form, out);
	input.focus();
	if (arg) {
		input.value = arg;
		lookup();
	}
}
