// api.js - the console's only way to casqd: fetch() to casq's public
// routes on this origin, the API key from sessionStorage in the X-Api-Key
// header (never in a URL), the tenant an admin key acts for in
// X-Casq-Tenant.

const KEY = "casq.key";
const TENANT = "casq.tenant";

export const session = {
	key: () => sessionStorage.getItem(KEY),
	setKey: (k) => sessionStorage.setItem(KEY, k),
	tenant: () => sessionStorage.getItem(TENANT),
	setTenant: (t) => t ? sessionStorage.setItem(TENANT, t) : sessionStorage.removeItem(TENANT),
	forget: () => { sessionStorage.removeItem(KEY); sessionStorage.removeItem(TENANT); },
};

// An answer casqd refused: its status line and JSON error, for the page.
export class ApiError extends Error {
	constructor(status, reason, body) {
		super(status + " " + reason + (body && body.message ? ": " + body.message : ""));
		this.status = status;
		this.body = body;
	}
}

function headers(extra) {
	const h = { "X-Api-Key": session.key() || "" };
	const t = session.tenant();
	if (t) h["X-Casq-Tenant"] = t;
	return Object.assign(h, extra || {});
}

// send(path, {params, body, contentType}): the raw exchange, for "Try it".
// Returns {status, statusText, text}.
export async function send(path, opts = {}) {
	const q = opts.params ? "?" + new URLSearchParams(opts.params).toString() : "";
	const init = { method: opts.body === undefined ? "GET" : "POST", cache: "no-store",
		headers: headers(opts.contentType ? { "Content-Type": opts.contentType } : {}) };
	if (opts.body !== undefined) init.body = opts.body;
	const r = await fetch(path + q, init);
	return { status: r.status, statusText: r.statusText, text: await r.text() };
}

// get(path, params): the parsed answer of a read; ApiError on an error status.
export async function get(path, params) {
	const r = await send(path, { params });
	let body = null;
	try { body = JSON.parse(r.text); } catch (e) { body = null; }
	if (r.status < 200 || r.status > 299) throw new ApiError(r.status, r.statusText, body);
	return body;
}

// post(path, params): a write with a form body; the parsed answer.
export async function post(path, params) {
	const r = await send(path, { body: new URLSearchParams(params).toString(),
		contentType: "application/x-www-form-urlencoded" });
	let body = null;
	try { body = JSON.parse(r.text); } catch (e) { body = null; }
	if (r.status < 200 || r.status > 299) throw new ApiError(r.status, r.statusText, body);
	return body;
}

// Every queue of the tenant (the list pages by 1000).
export async function allQueues() {
	const out = [];
	let after = null;
	for (;;) {
		const page = await get("/v1/queues", after === null ? undefined : { after });
		out.push(...page.queues);
		if (page.queues.length < 1000) return out;
		after = page.queues[page.queues.length - 1].queue;
	}
}
