// "My connections": the person's web app. Hash routes, one view function per screen.
import { Api, ApiError } from "./api.js";
import { renderConnection, favourActions, nameOf, learnNames } from "./connection.js";
import { createIdentity, exportBackup, forgetIdentity, importBackup, loadIdentity, saveIdentity } from "./keystore.js";
import { LiveUpdates } from "./live.js";
import { b64url, sign } from "./protocol.js";
import { qrSvg } from "./qr.js";
import { ago, announce, busy, capFields, confirmDialog, dataChoice, download, field, grantWords, h, showError, statusChip, topicWords, when } from "./ui.js";

const PENDING_INVITES = "rapport.pending-invites";
export const app = { identity: null, api: null, live: null, liveMode: "starting" };
let rendering = 0;

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [name = "", ...rest] = hash.split("/");
  return { name, arg: rest.join("/") };
}

export function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function main() {
  return document.getElementById("main");
}

function pendingInvites() {
  return JSON.parse(localStorage.getItem(PENDING_INVITES) || "{}");
}

function setPendingInvite(token, label) {
  const all = pendingInvites();
  if (label === null) delete all[token];
  else all[token] = label;
  localStorage.setItem(PENDING_INVITES, JSON.stringify(all));
}

/** Render the current route into <main>; later renders win over slower earlier ones. */
export async function render({ quiet = false, live = false } = {}) {
  const ticket = ++rendering;
  const { name, arg } = route();
  const views = { "": viewConnections, c: viewConnection, inbox: viewInbox, invite: viewInvite, share: viewShare, account: viewAccount };
  const view = app.identity?.partyId ? views[name] || viewConnections : viewWelcome;
  let content;
  try {
    content = await view(arg);
  } catch (err) {
    content = h("section", {}, h("h1", { tabindex: "-1" }, "Something went wrong"), h("p", { class: "error" }, String(err.message || err)));
  }
  if (ticket !== rendering) return;
  if (live && (isTyping() || document.querySelector("dialog[open]"))) {
    // The person started typing (or opened a dialog) while we fetched: do not wipe it.
    refreshWhenIdle();
    return;
  }
  const target = main();
  const focusKeep = quiet && target.contains(document.activeElement) ? document.activeElement.id : null;
  target.replaceChildren(content);
  updateNav(name);
  if (focusKeep && document.getElementById(focusKeep)) document.getElementById(focusKeep).focus();
  else if (!quiet) target.querySelector("h1")?.focus();
  refreshBadge();
}

function updateNav(name) {
  const nav = document.getElementById("nav");
  nav.hidden = !app.identity?.partyId;
  for (const link of nav.querySelectorAll("a")) {
    const current = link.dataset.route === name || (link.dataset.route === "" && name === "c");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const live = document.getElementById("live-mode");
  live.textContent = app.liveMode === "stream" ? "Live" : app.liveMode === "poll" ? "Live (polling)" : "";
}

async function refreshBadge() {
  if (!app.api || !app.identity?.partyId) return;
  try {
    const doc = await app.api.get("/v1/messages?unacked=true&limit=200");
    const badge = document.getElementById("inbox-count");
    badge.textContent = doc.data.length ? String(doc.data.length) : "";
    badge.hidden = !doc.data.length;
    badge.setAttribute("aria-label", `${doc.data.length} unread`);
  } catch {
    // the badge is a hint; the inbox view reports errors
  }
}

// ---------------------------------------------------------------- welcome (no key yet)

function viewWelcome() {
  const nameInput = h("input", { type: "text", required: true, autocomplete: "name", maxlength: 100 });
  const create = h("button", { type: "submit" }, "Create my key and start");
  const createForm = h(
    "form",
    {},
    field("Your name (shown to businesses you connect with)", nameInput),
    create,
  );
  createForm.addEventListener(
    "submit",
    busy(create, async () => {
      const name = nameInput.value.trim();
      if (!name) throw new Error("Please enter your name.");
      const identity = await createIdentity();
      const api = new Api(identity);
      const party = await api.register(name);
      identity.partyId = party.id;
      identity.displayName = name;
      saveIdentity(identity);
      await start(identity);
      announce("Your key was created in this browser. Back it up from Account.");
      go(location.hash.startsWith("#/invite/") ? location.hash : "#/");
    }),
  );
  const file = h("input", { type: "file", accept: ".json,application/json" });
  const pass = h("input", { type: "password", autocomplete: "current-password" });
  const restore = h("button", { type: "submit", class: "secondary" }, "Restore");
  const restoreForm = h("form", {}, field("Key backup file", file), field("Passphrase", pass), restore);
  restoreForm.addEventListener(
    "submit",
    busy(restore, async () => {
      if (!file.files[0]) throw new Error("Choose your backup file.");
      const identity = await importBackup(await file.files[0].text(), pass.value);
      const api = new Api(identity);
      const me = await api.get("/v1/parties/me");
      identity.partyId = me.id;
      identity.displayName = me.display_name;
      saveIdentity(identity);
      await start(identity);
      announce("Key restored.");
      go("#/");
    }),
  );
  return h(
    "section",
    {},
    h("h1", { tabindex: "-1" }, "Welcome to Rapport"),
    h(
      "p",
      {},
      "Rapport lets you decide who may contact you, about what, and how often. Your private key is created and kept in this browser; it never leaves it unless you export an encrypted backup.",
    ),
    location.hash.startsWith("#/invite/") && h("p", { class: "note" }, "You opened an invitation. Create your key first; the invitation opens next."),
    h("h2", {}, "New here"),
    createForm,
    h("h2", {}, "I have a key backup"),
    restoreForm,
  );
}

// ---------------------------------------------------------------- my connections

async function viewConnections() {
  const connections = await app.api.all("/v1/connections");
  await learnNames(app.api, connections);
  connections.sort((a, b) => b.updated_time - a.updated_time);
  const link = h("input", { type: "url", inputmode: "url", placeholder: "https://…/app/invite/…" });
  const open = h("button", { type: "submit", class: "secondary" }, "Open");
  const openForm = h("form", { class: "inline" }, field("Open an invitation link", link), open);
  openForm.addEventListener(
    "submit",
    busy(open, async () => {
      const token = /invite\/([A-Za-z0-9_-]{8,64})/.exec(link.value)?.[1] ?? (/^[A-Za-z0-9_-]{8,64}$/.test(link.value.trim()) ? link.value.trim() : null);
      if (!token) throw new Error("That does not look like an invitation link.");
      go(`#/invite/${token}`);
    }),
  );
  const items = connections.map((c) => {
    const name = nameOf(c.cid);
    const mine = c.grants.filter((g) => g.direction === "granted_by_me");
    return h(
      "li",
      { class: "card" },
      h("div", { class: "card-head" }, h("h2", {}, h("a", { href: `#/c/${c.cid}` }, name)), statusChip(c)),
      h("p", { class: "muted" }, `Last activity ${ago(c.updated_time)}`),
      c.status === "active"
        ? mine.length
          ? h("ul", { class: "plain", "aria-label": `What ${name} may send you` }, mine.map((g) => h("li", {}, grantWords(g, name))))
          : h("p", {}, `${name} may not send you anything.`)
        : h("p", {}, c.status === "severed" ? `You are no longer connected to ${name}.` : ""),
    );
  });
  return h(
    "section",
    {},
    h("h1", { tabindex: "-1" }, "My connections"),
    connections.length ? h("ul", { class: "cards" }, items) : h("p", {}, "No connections yet. Open an invitation link from a business to start."),
    openForm,
    h("p", {}, h("a", { href: "#/share" }, "Invite someone to connect with you")),
  );
}

async function viewConnection(cid) {
  return renderConnection(cid, { app, go, render });
}

// ---------------------------------------------------------------- inbox

async function viewInbox() {
  const [messages, connections] = await Promise.all([app.api.all("/v1/messages"), app.api.all("/v1/connections?status=active")]);
  await learnNames(app.api, connections);
  const favourLists = await Promise.all(
    connections.map(async (c) => (await app.api.get(`/v1/connections/${c.cid}/favours`)).map((f) => ({ ...f, cid: c.cid }))),
  );
  const asks = favourLists.flat().filter((f) => f.requester === "them" && (f.status === "requested" || f.status === "accepted"));
  const invites = Object.entries(pendingInvites());
  messages.sort((a, b) => b.id - a.id);
  return h(
    "section",
    {},
    h("h1", { tabindex: "-1" }, "Inbox"),
    h("h2", {}, "Invitations"),
    invites.length
      ? h("ul", { class: "cards" }, invites.map(([token, label]) => h("li", { class: "card" }, h("a", { href: `#/invite/${token}` }, `Invitation from ${label}`))))
      : h("p", { class: "muted" }, "No invitations waiting."),
    h("h2", {}, "Favour requests"),
    asks.length
      ? h(
          "ul",
          { class: "cards" },
          asks.map((f) =>
            h(
              "li",
              { class: "card" },
              h("p", {}, h("strong", {}, nameOf(f.cid)), ` asks: ${f.description}`),
              h("p", { class: "muted" }, `${f.kind} · ${f.status}${f.due_time ? ` · due ${when(f.due_time)}` : ""}`),
              favourActions(f, f.cid, { app, render }),
            ),
          ),
        )
      : h("p", { class: "muted" }, "No favour requests."),
    h("h2", {}, "Messages"),
    messages.length
      ? h("ul", { class: "cards", id: "messages" }, messages.map((m) => messageItem(m)))
      : h("p", { class: "muted" }, "No messages yet."),
  );
}

function messageItem(m) {
  const read = h("button", { type: "button", class: "secondary small" }, "Mark as read");
  read.addEventListener(
    "click",
    busy(read, async () => {
      await app.api.request("POST", `/v1/messages/${m.id}/ack`);
      await render({ quiet: true });
    }),
  );
  return h(
    "li",
    { class: `card message${m.acked_time ? "" : " unread"}` },
    h("p", { class: "muted" }, h("strong", {}, nameOf(m.cid)), ` · ${m.topic} · ${ago(m.received_time)}`, m.acked_time ? "" : " · new"),
    h("p", { class: "content" }, m.content ?? "(content erased)"),
    m.acked_time ? null : read,
  );
}

// ---------------------------------------------------------------- accept an invitation

async function viewInvite(token) {
  let invitation;
  try {
    invitation = await app.api.request("GET", `/v1/invitations/by-token/${encodeURIComponent(token)}`, undefined, { auth: false });
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      setPendingInvite(token, null);
      return h("section", {}, h("h1", { tabindex: "-1" }, "Invitation not found"), h("p", {}, "This link is not valid any more."));
    }
    throw err;
  }
  const body = invitation.object.body;
  const label = body.label;
  const link = `${location.origin}/app/invite/${token}`;
  const share = h("figure", { class: "qr" }, qrSvg(link, `QR code of this invitation link`), h("figcaption", {}, "Scan to open this invitation on another device."));
  if (invitation.status !== "open") {
    setPendingInvite(token, null);
    return h("section", {}, h("h1", { tabindex: "-1" }, `Invitation from ${label}`), h("p", {}, `This invitation is ${invitation.status}.`), h("a", { href: "#/" }, "Back to my connections"));
  }
  setPendingInvite(token, label);
  // Accepting is the person's counter-offer: each requested grant can be left out or capped.
  const toggles = (body.requested || []).map((spec, i) => {
    const box = h("input", { type: "checkbox", checked: true, id: `req-${i}`, name: `req-${i}` });
    const cap = capFields(spec, `req-${i}-cap`);
    const row = h(
      "li",
      { class: "grant" },
      h("label", { class: "check" }, box, ` ${grantWords(spec, label)}`),
      h("div", { class: "cap", role: "group", "aria-label": `Limit for ${topicWords(spec.topic)}` }, cap.elements),
    );
    return { spec, box, cap, row };
  });
  const accept = h("button", { type: "submit" }, "Accept and connect");
  const decline = h("button", { type: "button", class: "secondary" }, "Decline");
  const form = h(
    "form",
    {},
    toggles.length
      ? h("fieldset", {}, h("legend", {}, `${label} asks that:`), h("ul", { class: "plain" }, toggles.map((t) => t.row)))
      : h("p", {}, `${label} asks for nothing: it will not be able to contact you until you allow it.`),
    h("p", { class: "hint" }, "Untick what you do not want, or set a limit (leave it empty for none). You can change this at any time."),
    h("div", { class: "actions" }, decline, accept),
  );
  form.addEventListener(
    "submit",
    busy(accept, async () => {
      const grants = toggles.filter((t) => t.box.checked).map((t) => t.cap.withCap(t.spec));
      const connection = await app.api.accept(invitation.object, grants, app.identity.displayName || "me");
      setPendingInvite(token, null);
      learnNames(app.api, [], { [connection.cid]: label });
      announce(`You are now connected to ${label}.`);
      go(`#/c/${connection.cid}`);
    }),
  );
  decline.addEventListener(
    "click",
    busy(decline, async () => {
      await app.api.decline(invitation.object);
      setPendingInvite(token, null);
      announce(`You declined ${label}'s invitation.`);
      go("#/");
    }),
  );
  return h(
    "section",
    {},
    h("h1", { tabindex: "-1" }, `Invitation from ${label}`),
    body.goal && h("p", {}, body.goal),
    (body.offered || []).length > 0 &&
      h("div", {}, h("h2", {}, `${label} offers that:`), h("ul", { class: "plain" }, body.offered.map((spec) => h("li", {}, grantWords(spec, "You").replace("send you", "send them").replace("ask you", "ask them"))))),
    form,
    share,
  );
}

// ---------------------------------------------------------------- share my own invitation

async function viewShare() {
  const topic = h("input", { type: "text", id: "share-topic", value: "*", required: true, maxlength: 64 });
  const multi = h("input", { type: "checkbox", id: "share-multi" });
  const create = h("button", { type: "submit" }, "Create invitation link");
  const result = h("div", { id: "share-result", "aria-live": "polite" });
  const form = h(
    "form",
    {},
    field("They may send me messages about", topic, "A topic such as “family”, or * for anything. You can change it later."),
    h("label", { class: "check" }, multi, " Several people may use this link"),
    create,
  );
  form.addEventListener(
    "submit",
    busy(create, async () => {
      const nonce = b64url(crypto.getRandomValues(new Uint8Array(12)));
      const body = {
        label: app.identity.displayName || "me",
        kind: "person",
        multi_use: multi.checked,
        offered: [{ scope: "message", topic: topic.value.trim() || "*" }],
        requested: [],
        nonce,
      };
      const obj = await sign(app.identity, "invitation", body);
      const invitation = await app.api.request("POST", "/v1/invitations", { object: obj });
      const copy = h("button", { type: "button", class: "secondary" }, "Copy link");
      copy.addEventListener(
        "click",
        busy(copy, async () => {
          await navigator.clipboard.writeText(invitation.url);
          announce("Link copied.");
        }),
      );
      result.replaceChildren(
        h("h2", {}, "Your invitation"),
        h("p", {}, "Send this link, or let them scan the code. Whoever accepts it connects with you."),
        h("p", { class: "mono", id: "share-link" }, invitation.url),
        copy,
        h("figure", { class: "qr" }, qrSvg(invitation.url, "QR code of your invitation link"), h("figcaption", {}, "Scan to accept.")),
      );
      announce("Invitation created.");
    }),
  );
  return h("section", {}, h("h1", { tabindex: "-1" }, "Invite someone"), h("p", {}, "Create a link that lets someone connect with you on your terms."), form, result);
}

// ---------------------------------------------------------------- account

async function viewAccount() {
  const me = await app.api.get("/v1/parties/me");
  const pass = h("input", { type: "password", autocomplete: "new-password", minlength: 8 });
  const backup = h("button", { type: "submit" }, "Download encrypted key backup");
  const backupForm = h("form", {}, field("Passphrase for the backup", pass, "At least 8 characters. Without it the file cannot be opened."), backup);
  backupForm.addEventListener(
    "submit",
    busy(backup, async () => {
      const text = await exportBackup(app.identity, pass.value);
      download("rapport-key-backup.json", text);
      pass.value = "";
      announce("Backup file downloaded. Keep it and the passphrase safe.");
    }),
  );
  const exportButton = h("button", { type: "button", class: "secondary" }, "Export my data");
  exportButton.addEventListener(
    "click",
    busy(exportButton, async () => {
      const data = await app.api.get("/v1/account/export");
      download("rapport-export.json", JSON.stringify(data, null, 2));
      announce("Your data was exported.");
    }),
  );
  const deleteButton = h("button", { type: "button", class: "danger" }, "Delete my account…");
  deleteButton.addEventListener(
    "click",
    busy(deleteButton, async () => {
      const choice = await confirmDialog({
        title: "Delete your account?",
        body: [
          h("p", {}, "Every connection is cut off at once: nobody can contact you through Rapport any more, all grants end, open favours are cancelled, and your key stops working. This cannot be undone."),
          dataChoice("What should businesses do with your data?"),
        ],
        confirmLabel: "Delete my account",
        danger: true,
      });
      if (!choice) return;
      await app.api.deleteAccount(choice.get("data"));
      app.live?.stop();
      forgetIdentity();
      app.identity = null;
      app.api = null;
      announce("Your account was deleted and your key removed from this browser.");
      go("#/");
    }),
  );
  return h(
    "section",
    {},
    h("h1", { tabindex: "-1" }, "Account"),
    h("dl", {}, h("dt", {}, "Name"), h("dd", {}, me.display_name), h("dt", {}, "Your identity (DID)"), h("dd", { class: "mono" }, me.did), h("dt", {}, "Since"), h("dd", {}, when(me.created_time))),
    h("h2", {}, "Back up your key"),
    h("p", {}, "Your key exists only in this browser. If you lose it, you lose access. The backup is encrypted with your passphrase (PBKDF2 + AES-GCM) before it leaves this page."),
    backupForm,
    h("h2", {}, "Your data"),
    exportButton,
    h("h2", {}, "Delete account"),
    deleteButton,
  );
}

// ---------------------------------------------------------------- start-up

let waitingForIdle = false;

function isTyping() {
  const active = document.activeElement;
  return Boolean(
    active &&
      main().contains(active) &&
      (["TEXTAREA", "SELECT"].includes(active.tagName) ||
        (active.tagName === "INPUT" && !["checkbox", "radio", "button", "submit", "file"].includes(active.type))),
  );
}

function refreshWhenIdle() {
  if (waitingForIdle) return;
  const active = document.activeElement;
  const typing = isTyping();
  if (document.querySelector("dialog[open]") || typing) {
    refreshBadge();
    waitingForIdle = true;
    const retry = () => {
      waitingForIdle = false;
      setTimeout(refreshWhenIdle, 50);
    };
    if (typing) active.addEventListener("blur", retry, { once: true });
    else document.querySelector("dialog[open]").addEventListener("close", retry, { once: true });
    return;
  }
  render({ quiet: true, live: true });
}

async function start(identity) {
  app.identity = identity;
  app.api = new Api(identity);
  app.live?.stop();
  let timer = null;
  app.live = new LiveUpdates(
    app.api,
    (event) => {
      if (event?.type === "message") announce(`New message from ${nameOf(event.cid)}`);
      // Coalesce bursts; re-render without stealing focus, never under an open dialog and
      // never while the person is typing (that would wipe the field): wait for them.
      clearTimeout(timer);
      timer = setTimeout(refreshWhenIdle, 150);
    },
    (mode) => {
      app.liveMode = mode;
      updateNav(route().name);
    },
  );
  app.live.start();
}

async function boot() {
  const invite = /^\/app\/invite\/([A-Za-z0-9_-]{8,64})$/.exec(location.pathname);
  if (invite) {
    history.replaceState(null, "", `/app/#/invite/${invite[1]}`);
  }
  window.addEventListener("hashchange", () => render());
  // The skip link must not touch the hash: the hash is the router's.
  document.querySelector(".skip").addEventListener("click", (event) => {
    event.preventDefault();
    main().focus();
  });
  try {
    const identity = await loadIdentity();
    if (identity?.partyId) await start(identity);
    else app.identity = identity;
  } catch (err) {
    showError(err);
  }
  await render();
}

boot();
