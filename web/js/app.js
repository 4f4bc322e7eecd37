// app.js - the console's shell: the API key gate, who is signed in (and,
// for an admin key, which tenant it acts for), and the routes of the page
// (#/overview, #/queue/NAME, #/lead, #/builder), each drawn by its view.

import { session, get, ApiError } from "./api.js";
import { el, errorBox } from "./dom.js";
import * as overview from "./view_overview.js";
import * as queue from "./view_queue.js";
import * as lead from "./view_lead.js";
import * as builder from "./view_builder.js";

const views = { overview, queue, lead, builder };
let me = null;		// the answer of /v1/tenant for the key in use
let stop = null;	// the shown view's clean-up (timers)

const $ = (id) => document.getElementById(id);

async function signIn() {
	try {
		me = await get("/v1/tenant");
	} catch (e) {
		me = null;
		if (session.tenant() && e instanceof ApiError && e.status !== 401) {
			// A tenant name the admin mistyped: back to the key's own.
			session.setTenant(null);
			await signIn();
			$("who").append(errorBox(e));
			return;
		}
		if (e instanceof ApiError && e.status === 401) session.forget();
		showKeyForm(e.message);
		return;
	}
	$("key-form").hidden = true;
	$("nav").hidden = false;
	await drawWho();
	route();
}

function showKeyForm(message) {
	$("nav").hidden = true;
	$("who").replaceChildren();
	$("view").replaceChildren();
	$("key-form").hidden = false;
	$("key-error").textContent = message || "";
	$("key-input").focus();
}

// The signed-in key, its tenant, and for an admin the tenant switcher.
async function drawWho() {
	const who = $("who");
	const parts = [el("span", {}, "key ", el("b", {}, me.key), " (" + me.scope + ")")];
	if (me.scope === "admin") {
		let names = [];
		try {
			names = (await get("/v1/tenants")).tenants.map((t) => t.tenant);
		} catch (e) { names = []; }
		if (!names.includes(me.tenant)) names.push(me.tenant);
		const list = el("datalist", { id: "tenant-names" }, names.map((n) => el("option", { value: n })));
		const input = el("input", { id: "tenant-input", list: "tenant-names", value: me.tenant,
			autocomplete: "off", spellcheck: "false", size: 12 });
		const form = el("form", { class: "tenant", onsubmit: (ev) => {
			ev.preventDefault();
			session.setTenant(input.value.trim());
			signIn();
		} }, el("label", { for: "tenant-input" }, "tenant"), input, list,
			el("button", { type: "submit" }, "Switch"));
		parts.push(form);
	} else {
		parts.push(el("span", {}, "tenant ", el("b", { id: "tenant-name" }, me.tenant)));
	}
	parts.push(el("button", { type: "button", id: "sign-out", onclick: () => {
		session.forget();
		showKeyForm("");
	} }, "Forget key"));
	who.replaceChildren(...parts);
}

function route() {
	if (me === null) return;
	if (stop) { stop(); stop = null; }
	const [, name = "overview", ...rest] = location.hash.replace(/^#/, "").split("/");
	const view = views[name] || overview;
	for (const a of document.querySelectorAll("#nav a"))
		a.setAttribute("aria-current", a.getAttribute("href") === "#/" + name ? "page" : "false");
	const root = el("div", { class: "view", id: "view-" + (views[name] ? name : "overview") });
	$("view").replaceChildren(root);
	try {
		stop = view.show(root, { me, arg: rest.map(decodeURIComponent).join("/") }) || null;
	} catch (e) {
		root.append(errorBox(e));
	}
}

document.addEventListener("DOMContentLoaded", () => {
	$("key-form").addEventListener("submit", (ev) => {
		ev.preventDefault();
		session.forget();
		session.setKey($("key-input").value.trim());
		$("key-input").value = "";
		signIn();
	});
	window.addEventListener("hashchange", route);
	if (session.key()) signIn(); else showKeyForm("");
});
