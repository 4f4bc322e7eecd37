// view_queue.js - one queue: its counters, its items by state a page at
// a time (/items), and any item by key (status, history).

import { get } from "./api.js";
import { el, table, errorBox } from "./dom.js";

const COUNTERS = ["ready", "leased", "oldest_ready_age", "enqueued", "claimed",
	"acked", "released", "removed", "expired"];
const STATES = ["ready", "leased"];
// A screenful; the route allows up to 1000.
const PAGE = 50;

function statusView(s) {
	const rows = Object.entries(s).filter(([k]) => k !== "queue");
	return el("dl", { class: "counts", id: "item-status" },
		rows.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, String(v)))));
}

// The items of one state: a page, and a button for the next one.
function itemsSection(path, onKey) {
	const out = el("div", { id: "items-out" });
	let state = "ready", after = null;
	const draw = async () => {
		const page = await get(path + "/items", Object.assign({ state, limit: PAGE },
			after === null ? {} : { after }));
		const rows = page.items.map((it) => [
			el("button", { type: "button", class: "link", onclick: () => onKey(it.key) }, it.key),
			String(it.attempts), it.since || ""]);
		out.replaceChildren(
			rows.length === 0 ? el("p", { id: "items-none" }, "No " + state + " item" +
				(after === null ? "." : " after " + after + "."))
				: table(state + " items" + (after === null ? "" : " after " + after),
					["key", "attempts", "since"], rows, { id: "items" }),
			page.next === undefined ? null : el("button", { type: "button", id: "items-next",
				onclick: () => { after = page.next; load(); } }, "Next page"),
			after === null ? null : el("button", { type: "button", id: "items-first",
				onclick: () => { after = null; load(); } }, "First page"));
	};
	const load = () => draw().catch((e) => out.replaceChildren(errorBox(e)))
		.finally(() => { out.dataset.drawn = String(Number(out.dataset.drawn || 0) + 1); });
	const pick = el("select", { id: "items-state", onchange: (ev) => {
		state = ev.target.value; after = null; load();
	} }, STATES.map((s) => el("option", { value: s }, s)));
	load();
	return [el("h2", {}, "Items"), el("div", { class: "inline" },
		el("label", { for: "items-state" }, "State"), pick), out];
}

export function show(root, { arg }) {
	const name = arg;
	const path = "/v1/queues/" + encodeURIComponent(name);
	const out = el("div", { id: "status-out" });
	const keyInput = el("input", { id: "status-key", name: "key", required: true,
		autocomplete: "off", spellcheck: "false" });
	const lookup = async () => {
		try {
			out.replaceChildren(statusView(await get(path + "/status", { key: keyInput.value })));
		} catch (e) { out.replaceChildren(errorBox(e)); }
	};
	const form = el("form", { class: "inline", onsubmit: (ev) => { ev.preventDefault(); lookup(); } },
		el("label", { for: "status-key" }, "Item key"), keyInput,
		el("button", { type: "submit" }, "Look up"),
		el("a", { href: "#/lead", id: "status-history", onclick: (ev) => {
			ev.preventDefault();
			location.hash = "#/lead/" + encodeURIComponent(keyInput.value);
		} }, "its history"));
	const stats = el("div", {});
	root.replaceChildren(el("p", {}, el("a", { href: "#/overview" }, "← all queues")),
		el("h1", {}, "Queue ", el("span", { class: "name" }, name)), stats,
		...itemsSection(path, (k) => { keyInput.value = k; lookup(); keyInput.focus(); }),
		el("h2", {}, "One item"), form, out);
	get(path).then((s) => {
		stats.replaceChildren(el("dl", { class: "counts", id: "queue-stats" },
			COUNTERS.map((k) => el("div", {}, el("dt", {}, k.replace(/_/g, " ")),
				el("dd", { "data-counter": k }, String(s[k]))))));
		root.dataset.drawn = "1";
	}, (e) => { stats.replaceChildren(errorBox(e)); root.dataset.drawn = "1"; });
}
