// view_overview.js - the tenant at a glance: its queues with ready,
// leased, dead, the age of the oldest ready item and the claims of the
// last hour, its kv namespaces and once scopes, its counts, and the
// service's health
// from /metrics; drawn again every few seconds while it is shown.

import { get, send, allQueues } from "./api.js";
import { el, table, age, errorBox, minuteChart } from "./dom.js";

// The samples of Prometheus text (/metrics): [{name, labels, value}].
function promSamples(text) {
	const out = [];
	for (const line of text.split("\n")) {
		const m = line.match(/^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/);
		if (!m) continue;
		const labels = {};
		for (const l of (m[2] || "").matchAll(/([a-z_]+)="([^"]*)"/g)) labels[l[1]] = l[2];
		out.push({ name: m[1], labels, value: Number(m[3]) });
	}
	return out;
}

// The service's health in a few numbers: how full the database is (507
// Storage Full comes near 90%), the errors answered since casqd started,
// its workers.
function service(text) {
	const samples = promSamples(text);
	const one = (n) => (samples.find((x) => x.name === n) || { value: 0 }).value;
	const answered = (first) => samples.filter((x) => x.name === "casq_requests_total" &&
		x.labels.code.startsWith(first)).reduce((a, x) => a + x.value, 0);
	const size = one("casq_lmdb_map_size_bytes");
	const inUse = one("casq_lmdb_map_used_bytes") - one("casq_lmdb_map_free_bytes");
	const mb = (b) => (b / 1048576).toFixed(1) + " MB";
	return el("dl", { class: "counts", id: "service" },
		[["database in use", mb(inUse) + " of " + mb(size) + " (" +
			Math.round(100 * inUse / size) + "%)"],
		 ["refused (4xx) since start", String(answered("4"))],
		 ["failed (5xx) since start", String(answered("5"))],
		 ["workers", String(one("casq_workers"))],
		 ["worker restarts", String(one("casq_worker_restarts_total"))]]
			.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))));
}

// Often enough to watch a campaign drain a queue; each refresh is one
// read per queue.
const REFRESH_MS = 5000;

async function draw(root) {
	const [tenant, queues, spaces, scopes, metrics] = await Promise.all([
		get("/v1/tenant"), allQueues(), get("/v1/kv"), get("/v1/once"), send("/metrics")]);
	const stats = await Promise.all(queues.map((q) =>
		get("/v1/queues/" + encodeURIComponent(q.queue))));
	const counts = el("dl", { class: "counts", id: "tenant-counts" },
		[["queued items", tenant.items], ["values", tenant.values],
		 ["once-windows", tenant.windows], ["queues", tenant.queues],
		 ["namespaces", tenant.namespaces]]
			.concat(tenant.max_items ? [["quota (max_items)", tenant.max_items]] : [])
			.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, String(v)))));
	const qt = queues.length === 0
		? el("p", { id: "no-queues" }, "No queue yet: the first enqueue creates one.")
		: table("Queues", ["queue", "ready", "leased", "dead", "oldest ready", "claims, last hour"],
			stats.map((s) => [
				el("a", { href: "#/queue/" + encodeURIComponent(s.queue) }, s.queue),
				String(s.ready), String(s.leased), String(s.dead),
				s.oldest_ready_age ? age(s.oldest_ready_age) : "-",
				el("span", { class: "claims" }, minuteChart(s.claims_per_minute),
					" " + s.claims_per_minute.reduce((a, b) => a + b, 0))]),
			{ id: "queues" });
	const nt = spaces.namespaces.length === 0
		? el("p", { id: "no-namespaces" }, "No kv namespace yet.")
		: table("kv namespaces", ["namespace", "keys", "sets", "incrs", "deletes"],
			spaces.namespaces.map((n) => [n.namespace, String(n.keys), String(n.sets),
				String(n.incrs), String(n.deletes)]),
			{ id: "namespaces" });
	const st = scopes.scopes.length === 0
		? el("p", { id: "no-scopes" }, "No once scope yet.")
		: table("once scopes", ["scope", "windows", "opened", "expired"],
			scopes.scopes.map((o) => [o.scope, String(o.windows), String(o.opened),
				String(o.expired)]),
			{ id: "scopes" });
	// A refresh must not take the keyboard focus away from a link.
	const focused = root.contains(document.activeElement)
		? document.activeElement.getAttribute("href") : null;
	root.replaceChildren(
		el("h1", {}, "Overview of tenant ", el("span", { class: "name" }, tenant.tenant)),
		counts, qt, nt, st, el("h2", {}, "Service"),
		metrics.status === 200 ? service(metrics.text) : el("p", { class: "error" },
			"/metrics answered " + metrics.status + " " + metrics.statusText),
		el("p", { class: "updated", id: "updated" }, "updated " + new Date().toLocaleTimeString()));
	if (focused) {
		const a = root.querySelector('a[href="' + CSS.escape(focused) + '"]');
		if (a) a.focus();
	}
}

export function show(root) {
	let timer = null, live = true, n = 0;
	const tick = async () => {
		try {
			await draw(root);
		} catch (e) {
			root.replaceChildren(el("h1", {}, "Overview"), errorBox(e));
		}
		root.dataset.drawn = String(++n);	// for tests: a complete drawing
		if (live) timer = setTimeout(tick, REFRESH_MS);
	};
	tick();
	return () => { live = false; clearTimeout(timer); };
}
