// dom.js - small helpers to build the page from data without innerHTML:
// every text from casqd goes in through textContent, never as markup.

// el("a", {href: "#/x", class: "c"}, "text", child, ...)
export function el(tag, attrs, ...children) {
	const e = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs || {})) {
		if (v === false || v === null || v === undefined) continue;
		if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
		else if (v === true) e.setAttribute(k, "");
		else e.setAttribute(k, v);
	}
	for (const c of children.flat()) {
		if (c === null || c === undefined || c === false) continue;
		e.append(c instanceof Node ? c : document.createTextNode(String(c)));
	}
	return e;
}

// A table with a caption, a header row and one row of cells per entry.
export function table(caption, heads, rows, attrs) {
	return el("div", { class: "scroll" }, el("table", attrs || {},
		el("caption", {}, caption),
		el("thead", {}, el("tr", {}, heads.map((h) => el("th", { scope: "col" }, h)))),
		el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c, i) =>
			i === 0 ? el("th", { scope: "row" }, c) : el("td", {}, c)))))));
}

// "3 min" for an age in seconds.
export function age(s) {
	if (s < 60) return s + " s";
	if (s < 3600) return Math.floor(s / 60) + " min";
	if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
	return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
}

export function errorBox(err) {
	return el("p", { class: "error", role: "alert" }, String(err.message || err));
}

// A copy button for text; the result is announced to screen readers.
export function copyButton(label, text) {
	const status = el("span", { class: "copied", "aria-live": "polite" });
	const b = el("button", { type: "button", class: "copy", "aria-label": "Copy " + label,
		onclick: () => {
			navigator.clipboard.writeText(text).then(
				() => { status.textContent = "copied"; },
				() => { status.textContent = "select the text and copy it"; });
		} }, "Copy");
	return el("span", { class: "copy-wrap" }, b, status);
}

// claims per minute over the last hour (60 counts, oldest first) as a
// bar chart: an SVG drawn from data, with its numbers in its label.
export function minuteChart(counts, id) {
	const NS = "http://www.w3.org/2000/svg";
	const max = Math.max(1, ...counts);
	const total = counts.reduce((a, b) => a + b, 0);
	const svg = document.createElementNS(NS, "svg");
	svg.setAttribute("viewBox", "0 0 120 24");
	svg.setAttribute("class", "chart");
	svg.setAttribute("role", "img");
	svg.setAttribute("aria-label", "claims per minute over the last hour: " + total +
		" in all, at most " + Math.max(...counts) + " in a minute");
	svg.dataset.counts = counts.join(",");
	if (id) svg.id = id;
	counts.forEach((n, i) => {
		if (n === 0) return;
		const r = document.createElementNS(NS, "rect");
		const h = Math.max(1, Math.round(22 * n / max));
		r.setAttribute("x", String(i * 2));
		r.setAttribute("y", String(24 - h));
		r.setAttribute("width", "1.6");
		r.setAttribute("height", String(h));
		svg.append(r);
	});
	return svg;
}
