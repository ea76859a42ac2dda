// Small DOM helpers and the plain-words formatting of protocol terms. Untrusted text is
// only ever set as text (never as HTML), so a counterparty's label cannot inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  const hintId = hint ? `${id}-hint` : undefined;
  if (hintId) input.setAttribute("aria-describedby", hintId);
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hint && h("p", { class: "hint", id: hintId }, hint));
}

let toastTimer = null;
/** A polite status message (announced by screen readers through the live region). */
export function announce(text, kind = "info") {
  const region = document.getElementById("status");
  region.textContent = text;
  region.dataset.kind = kind;
  region.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    region.hidden = true;
  }, 6000);
}

export function showError(err) {
  const code = err?.code ? ` (${err.code})` : "";
  announce(`${err?.message || err}${code}`, "error");
}

/** Run an async action from a button: disable it meanwhile and report errors. */
export function busy(button, action) {
  return async (event) => {
    event?.preventDefault?.();
    if (button) button.disabled = true;
    try {
      await action(event);
    } catch (err) {
      showError(err);
    } finally {
      if (button && button.isConnected) button.disabled = false;
    }
  };
}

export function when(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  return new Date(seconds * 1000).toLocaleString(undefined, {
    dateStyle: "medium",
    timeStyle: "short",
  });
}

export function ago(seconds) {
  const delta = Math.max(0, Date.now() / 1000 - seconds);
  if (delta < 60) return "just now";
  if (delta < 3600) return `${Math.floor(delta / 60)} min ago`;
  if (delta < 86400) return `${Math.floor(delta / 3600)} h ago`;
  return when(seconds);
}

const UNITS = { W: ["week", 604800], D: ["day", 86400], H: ["hour", 3600], M: ["minute", 60], S: ["second", 1] };

export function periodWords(period) {
  const match = /^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/.exec(period || "");
  if (!match) return period;
  const parts = [];
  ["W", "D", "H", "M", "S"].forEach((unit, i) => {
    const n = Number(match[i + 1] || 0);
    if (n) parts.push(n === 1 ? UNITS[unit][0] : `${n} ${UNITS[unit][0]}s`);
  });
  return parts.join(" ");
}

export function topicWords(topic) {
  return topic === "*" ? "anything" : topic.replace(/[_.-]/g, " ");
}

/** What a grant lets the other party do, in plain words. */
export function grantWords(grant, name = "They") {
  const spec = grant.spec ?? grant;
  const what =
    spec.scope === "favour"
      ? `${name} may ask you favours about ${topicWords(spec.topic)}`
      : `${name} may send you messages about ${topicWords(spec.topic)}`;
  const limits = [];
  if (spec.rate) limits.push(`at most ${spec.rate.count} per ${periodWords(spec.rate.period)}`);
  if (spec.quiet_hours) {
    const q = spec.quiet_hours;
    limits.push(`never between ${q.start} and ${q.end} (${q.tz})`);
  }
  if (spec.expires_time) limits.push(`until ${when(spec.expires_time)}`);
  const purpose = spec.purpose ? ` — for ${spec.purpose}` : "";
  return `${what}${purpose}${limits.length ? `, ${limits.join(", ")}` : ""}.`;
}

/** The status chip of a connection: active / muted until … / cut off. */
export function statusChip(connection) {
  if (connection.status === "severed") return h("span", { class: "chip chip-severed" }, "cut off");
  if (connection.status === "declined") return h("span", { class: "chip chip-severed" }, "declined");
  const mute = connection.muted_by_me;
  if (connection.status === "active" && mute) {
    const text = mute.until ? `muted until ${when(mute.until)}` : "muted until you unmute";
    return h("span", { class: "chip chip-muted" }, text);
  }
  return h("span", { class: `chip chip-${connection.status}` }, connection.status);
}

/** A modal confirmation (native <dialog>: focus is trapped and Escape cancels). */
export function confirmDialog({ title, body, confirmLabel, danger = false }) {
  return new Promise((resolve) => {
    const titleId = "dlg-title";
    const dialog = h("dialog", { "aria-labelledby": titleId, class: "dialog" });
    const form = h("form", { method: "dialog" });
    const cancel = h("button", { type: "submit", value: "cancel", class: "secondary" }, "Cancel");
    const ok = h("button", { type: "submit", value: "ok", class: danger ? "danger" : "" }, confirmLabel);
    form.append(h("h2", { id: titleId }, title), ...[body].flat(), h("div", { class: "actions" }, cancel, ok));
    dialog.append(form);
    dialog.addEventListener("close", () => {
      const formData = new FormData(form);
      dialog.remove();
      resolve(dialog.returnValue === "ok" ? formData : null);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/** Offer `text` as a file download named `filename`. */
export function download(filename, text, type = "application/json") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** Radio buttons for the data instruction of a sever. */
export function dataChoice(legend) {
  const options = [
    ["delete", "Delete all my data"],
    ["export_then_delete", "Send me a copy, then delete it"],
    ["retain_legal", "Keep only what the law requires them to keep"],
  ];
  return h(
    "fieldset",
    {},
    h("legend", {}, legend),
    options.map(([value, text], i) => h("label", { class: "check" }, h("input", { type: "radio", name: "data", value, checked: i === 0, required: true }), ` ${text}`)),
  );
}

const CAP_PERIODS = [
  ["PT1H", "hour"],
  ["P1D", "day"],
  ["P1W", "week"],
  ["P30D", "30 days"],
];

/**
 * A rate-cap editor ("At most [n] [per day]") for a grant spec. `withCap(spec)` returns
 * the spec with the cap as entered (an empty count means no cap).
 */
export function capFields(spec, idPrefix) {
  const count = h("input", { type: "number", min: 1, max: 1000, inputmode: "numeric", value: spec.rate?.count ?? "", id: `${idPrefix}-count` });
  const period = h(
    "select",
    { id: `${idPrefix}-period` },
    CAP_PERIODS.map(([value, text]) => h("option", { value, selected: spec.rate ? spec.rate.period === value : value === "P1D" }, `per ${text}`)),
  );
  const elements = [
    h("label", { for: count.id }, "At most"),
    count,
    h("label", { for: period.id, class: "visually-hidden" }, "Period"),
    period,
  ];
  const withCap = (base) => {
    const next = { ...base };
    delete next.rate;
    if (count.value) next.rate = { count: Number(count.value), period: period.value };
    return next;
  };
  return { count, period, elements, withCap };
}
