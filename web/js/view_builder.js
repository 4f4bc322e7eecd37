// view_builder.js - the webhook builder's form and its answer: what to
// type into Marketo (from builder.js), and "Try it", which sends the call
// Marketo would send, with sample values, and shows which branch the
// answer takes.

import { ACTIONS, TOKENS, build, tokensOf, render, branch } from "./builder.js";
import { send } from "./api.js";
import { el, copyButton } from "./dom.js";

// What each parameter's field says, and its default for a new webhook.
const FIELDS = {
	key: ["Key (the Marketo token that names the lead)", "{{lead.Id}}"],
	id: ["Id (the Marketo token, or tokens and text with Form/Url)", "{{lead.Id}}"],
	bind: ["Bind (the token of the lead that gets one item)", "{{lead.Id}}"],
	claimant: ["Claimant (who takes it; shown as owner)", "{{campaign.name}}"],
	lease: ["Lease, seconds (empty: the claim consumes the lead)", ""],
	delay: ["Delay, seconds", ""],
	payload: ["Payload (text or a token)", ""],
	value: ["Value (text or a token)", "{{lead.Email Address}}"],
	ttl: ["TTL, seconds", ""],
	by: ["By", ""],
	mod: ["Mod (answers slot = value mod N)", ""],
};

// ack and release prove the lease by the claim's claimant, written as
// text: {{campaign.name}} there would be the sending campaign's name.
const TEXT_CLAIMANT = "Welcome: claim";

const SAMPLES = { "{{lead.Id}}": "1234", "{{lead.Email Address}}": "jo+x@example.com",
	"{{campaign.name}}": "Welcome: claim", "{{campaign.id}}": "1001" };

function field(id, label, input) {
	input.id = id;
	return el("div", { class: "field" }, el("label", { for: id }, label), input);
}

function out(label, text, id) {
	return el("div", { class: "out" },
		el("div", { class: "out-head" }, el("span", { class: "out-label" }, label), copyButton(label, text)),
		el("pre", { id }, text));
}

export function show(root) {
	const state = { action: "claim", name: "welcome", encoding: "json", label: true };
	for (const [p, [, d]] of Object.entries(FIELDS)) state[p] = d;
	const form = el("form", { id: "builder-form", class: "builder-form" });
	const result = el("div", { id: "builder-out" });
	root.replaceChildren(el("h1", {}, "Webhook builder"),
		el("p", {}, "Choose what the webhook does; copy each part into Marketo " +
			"(Admin › Webhooks › New Webhook, then Set Custom Header and Edit Response Mappings)."),
		el("div", { class: "builder" }, form, result));

	const drawForm = () => {
		const a = ACTIONS[state.action];
		const actions = el("select", { name: "action", onchange: (ev) => {
			state.action = ev.target.value;
			if (state.action === "ack" || state.action === "release") state.claimant = TEXT_CLAIMANT;
			else state.claimant = FIELDS.claimant[1];
			drawForm();
			document.getElementById("b-action").focus();
		} }, Object.entries(ACTIONS).map(([k, v]) =>
			el("option", { value: k, selected: k === state.action }, v.label)));
		const nameLabel = a.family === "kv" ? "Namespace" : a.family === "once" ? "Scope" : "Queue";
		const input = (p) => el("input", { name: p, value: state[p], autocomplete: "off",
			spellcheck: "false", list: ["key", "id", "bind", "claimant", "value", "payload"].includes(p)
				? "token-list" : null,
			oninput: (ev) => { state[p] = ev.target.value; drawResult(); } });
		const enc = (v, label) => el("label", { class: "radio" },
			el("input", { type: "radio", name: "encoding", value: v, checked: state.encoding === v,
				onchange: () => { state.encoding = v; drawResult(); } }), label);
		form.replaceChildren(
			field("b-action", "Action", actions),
			field("b-name", nameLabel, el("input", { name: "name", value: state.name, autocomplete: "off",
				spellcheck: "false", oninput: (ev) => { state.name = ev.target.value; drawResult(); } })),
			...a.params.map((p) => field("b-" + p, FIELDS[p][0], input(p))),
			el("fieldset", {}, el("legend", {}, "Request Token Encoding"),
				enc("json", "JSON"), enc("form", "Form/Url")),
			el("label", { class: "check" }, el("input", { type: "checkbox", id: "b-label", checked: state.label,
				onchange: (ev) => { state.label = ev.target.checked; drawResult(); } }),
				"Label each call with its campaign (x_campaign)"),
			el("datalist", { id: "token-list" }, TOKENS.map((t) => el("option", { value: t }))));
		drawResult();
	};

	const drawResult = () => {
		const b = build(Object.assign({ base: location.origin }, state));
		if (b.errors.length) {
			result.replaceChildren(el("ul", { class: "error", id: "builder-errors", role: "alert" },
				b.errors.map((e) => el("li", {}, e))));
			return;
		}
		const mappings = b.mappings.length === 0 ? el("p", {}, "No response mapping is needed.")
			: el("div", { class: "scroll" }, el("table", { id: "b-mappings" },
				el("caption", {}, "Edit Response Mappings (create the fields first; types as shown)"),
				el("thead", {}, el("tr", {}, ["Response Attribute", "Marketo Field", "type"]
					.map((h) => el("th", { scope: "col" }, h)))),
				el("tbody", {}, b.mappings.map((m) => el("tr", {},
					el("td", {}, m.attribute), el("td", {}, m.field), el("td", {}, m.type))))));
		const when = [["win", "Response contains", b.win.contains, b.win.means]];
		if (b.lose) when.push(["lose", "Response contains", b.lose.contains, b.lose.means]);
		when.push(["error", "Response not contains", b.error.notContains,
			"an error, or no answer (Marketo gave up after 30 s)"]);
		result.replaceChildren(
			el("h2", {}, "The webhook"),
			out("URL", b.url, "b-url"),
			el("dl", { class: "counts" },
				el("div", {}, el("dt", {}, "Request Type"), el("dd", { id: "b-method" }, b.method)),
				el("div", {}, el("dt", {}, "Request Token Encoding"), el("dd", { id: "b-encoding" }, b.encoding)),
				el("div", {}, el("dt", {}, "Response type"), el("dd", { id: "b-response-type" }, b.responseType))),
			out("Template", b.template, "b-template"),
			el("h2", {}, "Set Custom Header"),
			out("Header", b.header.name, "b-header-name"),
			out("Value (put your key in place of YOUR-CASQ-API-KEY)", b.header.value, "b-header-value"),
			el("h2", {}, "Response mappings"), mappings,
			el("h2", {}, "Campaigns on “Webhook is Called”"),
			el("div", { class: "branches" }, when.map(([k, how, text, means]) =>
				el("div", { class: "branch branch-" + k, id: "b-when-" + k },
					el("h3", {}, k === "win" ? "Win branch" : k === "lose" ? "Lose branch" : "Error branch"),
					el("p", {}, how), out("constraint (" + k + ")", text, "b-" + k), el("p", { class: "means" }, means)))),
			tryIt(b));
	};
	drawForm();
}

// "Try it": the call Marketo would send, tokens replaced by sample values.
function tryIt(b) {
	const samples = {};
	const inputs = tokensOf(b.template).map((t, i) => {
		samples[t] = SAMPLES[t] || "sample";
		return field("try-" + i, "sample " + t, el("input", { value: samples[t], "data-token": t,
			autocomplete: "off", oninput: (ev) => { samples[t] = ev.target.value; } }));
	});
	const answer = el("div", { id: "try-out", "aria-live": "polite" });
	const go = async (ev) => {
		ev.preventDefault();
		const body = render(b.template, b.encoding, samples);
		const path = new URL(b.url).pathname;
		answer.replaceChildren(el("p", {}, "sending…"));
		let r;
		try {
			r = await send(path, { body, contentType: b.contentType });
		} catch (e) {
			answer.replaceChildren(el("p", { class: "error" }, String(e)));
			return;
		}
		const which = branch(b, r.text);
		answer.replaceChildren(
			el("p", {}, "Sent POST " + path + " (" + b.contentType + "):"), el("pre", { id: "try-sent" }, body),
			el("p", {}, "casq answered ", el("b", { id: "try-status" }, r.status + " " + r.statusText), ":"),
			el("pre", { id: "try-answer" }, r.text.trim()),
			el("p", { class: "branch-" + which }, "This call takes the ",
				el("b", { id: "try-branch" }, which), " branch."));
	};
	return el("section", { class: "try" }, el("h2", {}, "Try it"),
		el("p", {}, "Sends this very call to casq with your key and these sample values: it really " +
			"enqueues, claims or counts."),
		el("form", { id: "try-form", onsubmit: go }, inputs, el("button", { type: "submit" }, "Send")),
		answer);
}
