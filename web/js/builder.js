// builder.js - what to enter in Marketo's webhook screen for one casq call,
// and what Marketo then sends. No DOM: the console (app.js) shows it, and
// tests/integration/test_ui.py runs it in the browser to check every
// action against casqd.
//
// Facts it encodes (docs/marketo.md, docs/api.md):
// - Request Token Encoding JSON puts each token's value in a JSON string
//   of its own, so a token goes into the template without quotes, and a
//   value cannot join a token with other text (use Form/Url for that).
// - Form/Url encodes each token's value (space as +); fixed text is
//   written encoded by the builder.
// - "Webhook is Called" matches the literal answer: casqd writes the
//   outcome key first and without spaces, so `{"claimed":true` is only
//   ever in a winning answer.

// The Marketo tokens offered for the key; any other token can be typed.
export const TOKENS = [
	"{{lead.Id}}",
	"{{lead.Email Address}}",
	"{{lead.casq Call Id}}",
	"{{campaign.name}}",
	"{{campaign.id}}",
	"{{my.casq Form}}",
];

// One row per action: the route below /v1, the parameters the form asks
// for (in template order), what a win means, the outcome key of casqd's
// answer and what its false means (null: it is never false), and the
// response mappings worth making.
export const ACTIONS = {
	enqueue: {
		label: "enqueue: put the lead in a queue",
		family: "queue", route: "enqueue",
		params: ["key", "payload", "delay"],
		win: "queued now",
		outcome: "enqueued", lose: "already queued: nothing changed",
		mappings: [["enqueued", "Boolean"], ["state", "String"]],
	},
	claim: {
		label: "claim: take this lead, atomically",
		family: "queue", route: "claim",
		params: ["key", "claimant", "lease"],
		win: "this call won the lead: act on it (send the email)",
		outcome: "claimed", lose: "someone else has it, or it is not queued (see reason)",
		mappings: [["claimed", "Boolean"], ["owner", "String"], ["token", "String"], ["attempt", "Integer"]],
	},
	pop: {
		label: "pop: take the next item of a queue",
		family: "queue", route: "pop",
		params: ["claimant", "lease"],
		win: "this call took an item (its key is in the answer)",
		outcome: "claimed", lose: "the queue is empty",
		mappings: [["claimed", "Boolean"], ["key", "String"], ["token", "String"]],
	},
	bound_pop: {
		label: "bound pop: one item per lead, the same on every retry",
		family: "queue", route: "pop",
		params: ["bind", "claimant", "lease"],
		win: "this lead's item: the next one the first time, the same one (\"again\":true) on every later call",
		outcome: "claimed", lose: "no item left for a lead that has none yet",
		mappings: [["claimed", "Boolean"], ["key", "String"], ["again", "Boolean"]],
	},
	ack: {
		label: "ack: the leased work is done",
		family: "queue", route: "ack",
		params: ["key", "claimant"],
		win: "acknowledged: the lead is done",
		outcome: "acked", lose: "not acked (see reason: lease_expired, claimant_mismatch, ...)",
		mappings: [],
	},
	release: {
		label: "release: give a leased lead back",
		family: "queue", route: "release",
		params: ["key", "claimant", "delay"],
		win: "the lead is back in the queue",
		outcome: "released", lose: "not released (see reason)",
		mappings: [],
	},
	kv_set: {
		label: "kv set: store a value",
		family: "kv", route: "set",
		params: ["key", "value", "ttl"],
		win: "stored",
		outcome: "ok", lose: null,
		mappings: [["version", "Integer"]],
	},
	kv_incr: {
		label: "kv incr: count, or hand out slots",
		family: "kv", route: "incr",
		params: ["key", "by", "mod"],
		win: "counted (value, slot)",
		outcome: "value", lose: null,
		mappings: [["value", "Integer"], ["slot", "Integer"]],
	},
	once: {
		label: "once: is this the first time?",
		family: "once", route: null,
		params: ["id", "ttl"],
		win: "the first time in this window: act on it",
		outcome: "first", lose: "seen before in this window",
		mappings: [["first", "Boolean"], ["count", "Integer"]],
	},
};

// Parameters whose value is a number for casqd (written bare in JSON).
const NUMERIC = new Set(["lease", "delay", "ttl", "by", "mod"]);

const TOKEN_RE = /\{\{[^{}]+\}\}/g;

// The header that carries the key; Marketo does not show custom headers in
// its activity log, so the key never appears there.
export const KEY_HEADER = "Authorization";
export const KEY_PLACEHOLDER = "Bearer YOUR-CASQ-API-KEY";

function isWholeToken(v) {
	const m = v.match(TOKEN_RE);
	return m !== null && m.length === 1 && m[0] === v;
}

// The route's path: /v1/queues/{q}/claim, /v1/kv/{ns}/set, /v1/once/{scope}.
function routePath(a, name) {
	const n = encodeURIComponent(name);
	if (a.family === "queue") return "/v1/queues/" + n + "/" + a.route;
	if (a.family === "kv") return "/v1/kv/" + n + "/" + a.route;
	return "/v1/once/" + n;
}

const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;

// Form/Url encoding of one value, as Marketo encodes a token (space as +).
export function formEncode(v) {
	return encodeURIComponent(v).replace(/[!'()*]/g,
		(c) => "%" + c.charCodeAt(0).toString(16).toUpperCase()).replace(/%20/g, "+");
}

// One template member: `"key": {{lead.Id}}` in JSON, `key={{lead.Id}}` in a form.
function member(name, value, encoding) {
	if (encoding === "form") {
		// Tokens stay as typed (Marketo encodes their values); text around
		// them is encoded here.
		let out = "", last = 0;
		for (const m of value.matchAll(TOKEN_RE)) {
			out += formEncode(value.slice(last, m.index)) + m[0];
			last = m.index + m[0].length;
		}
		return name + "=" + out + formEncode(value.slice(last));
	}
	let v;
	if (isWholeToken(value)) v = value;
	else if (NUMERIC.has(name)) v = value;
	else v = JSON.stringify(value);
	return JSON.stringify(name) + ": " + v;
}

// build(o): the webhook for o = {action, base, name, key, claimant, lease,
// delay, payload, value, ttl, by, mod, encoding: "json"|"form", label}
// (strings; empty means "leave out"). Returns {errors} when the choice
// cannot work, else everything to type into Marketo.
export function build(o) {
	const a = ACTIONS[o.action];
	if (a === undefined) return { errors: ["unknown action " + o.action] };
	const errors = [];
	const encoding = o.encoding === "form" ? "form" : "json";
	const name = (o.name || "").trim();
	if (!NAME_RE.test(name))
		errors.push("the " + (a.family === "kv" ? "namespace" : a.family === "once" ? "scope" : "queue") +
			" name must be 1-64 of A-Z a-z 0-9 . _ -");
	const members = [];
	for (const p of a.params) {
		const v = (o[p] === undefined || o[p] === null) ? "" : String(o[p]).trim();
		if (v === "") {
			if (p === "key" || p === "id" || p === "bind" || (p === "value" && a.route === "set"))
				errors.push("'" + p + "' is required");
			if (p === "claimant" && (o.action === "ack" || o.action === "release"))
				errors.push("'claimant' is required: the claimant the lease was taken with");
			continue;
		}
		if (NUMERIC.has(p) && !isWholeToken(v) && !/^-?[0-9]+(\.[0-9]{1,3})?$/.test(v))
			errors.push("'" + p + "' must be a number");
		const tokens = v.match(TOKEN_RE) || [];
		if (encoding === "json" && tokens.length > 0 && !isWholeToken(v))
			errors.push("'" + p + "' joins a token with other text: with JSON encoding each " +
				"token becomes a quoted string of its own; choose Form/Url");
		members.push([p, v]);
	}
	if (o.label) members.push(["x_campaign", "{{campaign.name}}"]);
	if (errors.length) return { errors };

	const template = encoding === "form"
		? members.map(([n, v]) => member(n, v, "form")).join("&")
		: "{" + members.map(([n, v]) => member(n, v, "json")).join(", ") + "}";
	const win = "{\"" + a.outcome + "\":" + (a.outcome === "value" ? "" : "true");
	const lose = a.lose === null ? null : "{\"" + a.outcome + "\":false";
	const mappings = a.mappings.map(([attr, type]) => ({
		attribute: attr, type,
		field: "casq " + name + " " + attr.charAt(0).toUpperCase() + attr.slice(1),
	}));
	return {
		errors: [],
		url: (o.base || "") + routePath(a, name),
		method: "POST",
		template,
		encoding: encoding === "form" ? "Form/Url" : "JSON",
		contentType: encoding === "form" ? "application/x-www-form-urlencoded" : "application/json",
		responseType: "JSON",
		header: { name: KEY_HEADER, value: KEY_PLACEHOLDER },
		mappings,
		win: { contains: win, means: a.win },
		lose: lose === null ? null : { contains: lose, means: a.lose },
		// An error answer (or none: Marketo gave up after 30 s) has no outcome key.
		error: { notContains: "{\"" + a.outcome + "\":" },
	};
}

// The tokens a template uses, in order of first use.
export function tokensOf(template) {
	return [...new Set(template.match(TOKEN_RE) || [])];
}

// What Marketo sends for template once each token is replaced by
// samples[token], encoded as the webhook's Request Token Encoding says.
export function render(template, encoding, samples) {
	return template.replace(TOKEN_RE, (t) => {
		const v = samples[t] === undefined ? "" : String(samples[t]);
		return encoding === "Form/Url" ? formEncode(v) : JSON.stringify(v);
	});
}

// Which branch of the flow an answer takes: "win", "lose" or "error".
export function branch(built, answerText) {
	if (answerText.includes(built.win.contains)) return "win";
	if (built.lose !== null && answerText.includes(built.lose.contains)) return "lose";
	return "error";
}
