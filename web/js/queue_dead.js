// queue_dead.js - the queue page's settings (/config) and dead letters
// (redrive one or all): shown to every key, changed only by write keys,
// and a redrive only after a confirmation.

import { get, post } from "./api.js";
import { el, errorBox } from "./dom.js";

const SETTINGS = [
	["lease", "Lease, seconds (0: none)"],
	["max_attempts", "Max attempts (0: unlimited)"],
	["bind_days", "Bind days (bound pops)"],
];

// A question in place of the button that asked it:
// "Make all 3 dead items ready again? [Redrive all] [Cancel]".
export function confirmStep(slot, question, yes, run) {
	const back = slot.firstChild;
	const ok = el("button", { type: "button", class: "danger", id: "confirm-yes", onclick: () => {
		slot.replaceChildren(back);
		run();
	} }, yes);
	slot.replaceChildren(el("span", { class: "confirm", role: "group", "aria-label": "confirm" },
		question, ok, el("button", { type: "button", class: "secondary", onclick: () => {
			slot.replaceChildren(back);
			back.focus();
		} }, "Cancel")));
	ok.focus();
}

// settingsSection(path, canWrite, saved): the queue's settings as a form.
export function settingsSection(path, canWrite, saved) {
	const out = el("div", { id: "config-out" });
	const result = el("p", { class: "result", id: "config-result", "aria-live": "polite" });
	get(path + "/config").then((c) => {
		const inputs = SETTINGS.map(([k]) => el("input", { id: "config-" + k, name: k,
			inputmode: "numeric", value: String(c[k]), disabled: !canWrite }));
		const form = el("form", { class: "settings", id: "config-form", onsubmit: async (ev) => {
			ev.preventDefault();
			const params = {};
			for (const i of inputs) params[i.name] = i.value.trim();
			try {
				const a = await post(path + "/config", params);
				result.textContent = "Saved: lease " + a.lease + ", max_attempts " +
					a.max_attempts + ", bind_days " + a.bind_days + ".";
				saved();
			} catch (e) { result.replaceChildren(errorBox(e)); }
		} }, SETTINGS.map(([k, label], i) => el("div", { class: "field" },
			el("label", { for: "config-" + k }, label), inputs[i])),
			canWrite ? el("button", { type: "submit", id: "config-save" }, "Save settings") : null);
		out.replaceChildren(form, result);
	}, (e) => out.replaceChildren(errorBox(e)));
	return [el("h2", {}, "Settings"), out];
}

// The paragraph that tells how a redrive went: made once by the page, so
// that it stays while the section is drawn again.
export function redriveResult() {
	return el("p", { class: "result", id: "redrive-result", "aria-live": "polite" });
}

// deadSection(path, stats, canWrite, result, done): the dead count, and
// for a write key redrive of one key or of all (the route redrives a page
// at a time and says how many remain); the outcome goes to result, then
// done() draws the page again.
export function deadSection(path, stats, canWrite, result, done) {
	const fail = (e) => result.replaceChildren(errorBox(e));
	const parts = [el("h2", {}, "Dead letters"),
		el("p", { id: "dead-count" }, stats.dead + " dead item" + (stats.dead === 1 ? "" : "s") +
			(stats.max_attempts ? ": an item dies after " + stats.max_attempts +
				(stats.max_attempts === 1 ? " attempt." : " attempts.")
				: "; max_attempts is 0, so items never die."))];
	if (canWrite && stats.dead > 0) {
		const key = el("input", { id: "redrive-key", name: "key", required: true,
			autocomplete: "off", spellcheck: "false" });
		const oneSlot = el("span", {}, el("button", { type: "submit", id: "redrive-one" }, "Redrive"));
		const one = el("form", { class: "inline", onsubmit: (ev) => {
			ev.preventDefault();
			const k = key.value;
			confirmStep(oneSlot, "Make " + k + " ready again, its attempts reset?", "Redrive " + k,
				() => post(path + "/redrive", { key: k }).then((a) => {
					result.textContent = a.redriven ? k + " redriven." : k + " not redriven: " + a.reason + ".";
					done();
				}, fail));
		} }, el("label", { for: "redrive-key" }, "Dead item key"), key, oneSlot);
		const allSlot = el("span", {}, el("button", { type: "button", id: "redrive-all", onclick: () =>
			confirmStep(allSlot, "Make all " + stats.dead + " dead items ready again?", "Redrive all",
				async () => {
					let n = 0;
					try {
						for (;;) {
							const a = await post(path + "/redrive", { all: "true" });
							n += a.redriven;
							if (!a.remaining) break;
						}
						result.textContent = n + " redriven.";
						done();
					} catch (e) { fail(e); }
				}) }, "Redrive all " + stats.dead));
		parts.push(one, el("p", {}, allSlot));
	}
	return parts;
}
