// view_queue.js - one queue: its counters and claims per minute, its
// items by state a page at a time (/items; a dead item with its own
// redrive), its dead letters and settings (queue_dead.js), and any item
// by key (status, history).

import { get, post } from "./api.js";
import { el, table, errorBox, minuteChart } from "./dom.js";
import { confirmStep, deadSection, redriveResult, settingsSection } from "./queue_dead.js";

const COUNTERS = ["ready", "leased", "dead", "oldest_ready_age", "enqueued", "claimed",
	"acked", "released", "removed", "expired", "redriven"];
const STATES = ["ready", "leased", "dead"];
// A screenful; the route allows up to 1000.
const PAGE = 50;

function statusView(s) {
	const rows = Object.entries(s).filter(([k]) => k !== "queue");
	return el("dl", { class: "counts", id: "item-status" },
		rows.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, String(v)))));
}

// The items of one state: a page, and buttons for the next and the first.
// onKey(key) shows an item; redrive(key) (write keys) redrives a dead one.
function itemsSection(path, onKey, redrive) {
	const out = el("div", { id: "items-out" });
	let state = "ready", after = null;
	const draw = async () => {
		const page = await get(path + "/items", Object.assign({ state, limit: PAGE },
			after === null ? {} : { after }));
		const rows = page.items.map((it) => {
			const row = [el("button", { type: "button", class: "link", onclick: () => onKey(it.key) }, it.key),
				String(it.attempts), it.since || ""];
			if (state === "dead" && redrive) {
				const slot = el("span", {});
				slot.append(el("button", { type: "button", class: "secondary", "data-key": it.key,
					onclick: () => confirmStep(slot, "Make " + it.key + " ready again?", "Redrive",
						() => redrive(it.key).then(load)) }, "Redrive"));
				row.push(slot);
			}
			return row;
		});
		const heads = ["key", "attempts", "since"].concat(state === "dead" && redrive ? [""] : []);
		out.replaceChildren(
			rows.length === 0 ? el("p", { id: "items-none" }, "No " + state + " item" +
				(after === null ? "." : " after " + after + "."))
				: table(state + " items" + (after === null ? "" : " after " + after), heads, rows,
					{ id: "items" }),
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
	return { parts: [el("h2", {}, "Items"), el("div", { class: "inline" },
		el("label", { for: "items-state" }, "State"), pick), out], reload: load };
}

export function show(root, { me, arg }) {
	const name = arg;
	const path = "/v1/queues/" + encodeURIComponent(name);
	const canWrite = me.scope !== "read";
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
	const dead = el("div", {});
	const result = redriveResult();
	let n = 0;
	// The counters and dead letters again (after a redrive or new settings).
	const redraw = () => get(path).then((s) => {
		stats.replaceChildren(el("dl", { class: "counts", id: "queue-stats" },
			COUNTERS.map((k) => el("div", {}, el("dt", {}, k.replace(/_/g, " ")),
				el("dd", { "data-counter": k }, String(s[k]))))),
			el("p", {}, "Claims per minute over the last hour, oldest first: ",
				minuteChart(s.claims_per_minute, "queue-chart")));
		dead.replaceChildren(...deadSection(path, s, canWrite, result, () => { redraw(); items.reload(); }));
	}, (e) => stats.replaceChildren(errorBox(e)))
		.finally(() => { root.dataset.drawn = String(++n); });
	// One dead item from its row of the list.
	const redriveOne = (key) => post(path + "/redrive", { key }).then((a) => {
		result.textContent = a.redriven ? key + " redriven." : key + " not redriven: " + a.reason + ".";
		redraw();
	}, (e) => result.replaceChildren(errorBox(e)));
	const items = itemsSection(path, (k) => { keyInput.value = k; lookup(); keyInput.focus(); },
		canWrite ? redriveOne : null);
	root.replaceChildren(el("p", {}, el("a", { href: "#/overview" }, "← all queues")),
		el("h1", {}, "Queue ", el("span", { class: "name" }, name)), stats,
		...items.parts, dead, result, ...settingsSection(path, canWrite, redraw),
		el("h2", {}, "One item"), form, out);
	redraw();
}
