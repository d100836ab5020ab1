// The courier page: log in, pick a shipment, scan bags, confirm the handoff, hand a held
// shipment over to the party who takes it next; works offline. Labels come from a
// keyboard-wedge scanner (typed into the scan field, then Enter) or the camera (camera.js),
// which fills the same field and submits it the same way.

import * as api from "./api.js";
import { setUpCamera, stopCamera } from "./camera.js";
import * as queue from "./queue.js";
import { reasonOf, sentenceFor } from "./reasons.js";

const RETRY_MS = 4000;
const ACCEPTED_SHOWN_MS = 2500;
const store = {
  get: (key) => JSON.parse(localStorage.getItem(`v2v.courier.${key}`) || "null"),
  set: (key, value) => localStorage.setItem(`v2v.courier.${key}`, JSON.stringify(value)),
  drop: (key) => localStorage.removeItem(`v2v.courier.${key}`),
};
const $ = (id) => document.getElementById(id);
const state = { token: store.get("token"), selectedId: null, syncing: false, hideTimer: 0 };

// ---- connection -------------------------------------------------------------------------

function setConnection(online) {
  const badge = $("connection");
  badge.textContent = online ? "Online" : "Offline — scans are kept on this phone";
  badge.className = `connection ${online ? "online" : "offline"}`;
}

const isOnline = () => navigator.onLine;

// ---- full-screen result -----------------------------------------------------------------

function showResult(kind, title, message, detail = "") {
  clearTimeout(state.hideTimer);
  const box = $("result");
  box.className = `result ${kind}`;
  $("result-title").textContent = title;
  $("result-message").textContent = message;
  $("result-detail").textContent = detail;
  $("result-dismiss").textContent = kind === "stop" ? "I understand" : "OK";
  box.hidden = false;
  $("announcer").textContent = `${title}. ${message}`;
  if (kind === "stop") {
    $("result-dismiss").focus();
  } else {
    state.hideTimer = setTimeout(hideResult, ACCEPTED_SHOWN_MS);
  }
}

function hideResult() {
  clearTimeout(state.hideTimer);
  $("result").hidden = true;
  focusScan();
}

function focusScan() {
  const stopShown = !$("result").hidden && $("result").classList.contains("stop");
  if (!$("shipment-view").hidden && !stopShown) $("scan-input").focus();
}

function showAnswer(action, answer) {
  if (!answer.ok) {
    const reason = reasonOf(answer.data, answer.status);
    showResult("stop", "STOP", sentenceFor(reason, answer.data.detail), answer.data.detail || "");
    if (reason === "unauthenticated" && action.token === state.token) logout();
    return;
  }
  if (action.kind === "handoff") {
    showResult("accepted", "ACCEPTED", "Handoff confirmed: you now hold this shipment.");
    return;
  }
  if (action.kind === "offer") {
    showResult("accepted", "HANDED OVER",
      `Handed over to ${answer.data.offered_to}: they take it by scanning every bag.`);
    return;
  }
  const remaining = answer.data.remaining || [];
  const message = remaining.length
    ? `Bag ${answer.data.din} checked. ${remaining.length} still to scan: ${remaining.join(", ")}`
    : `Bag ${answer.data.din} checked. Every bag is scanned: confirm the handoff.`;
  const late = answer.data.late ? "Flagged late: a later scan was already accepted." : "";
  showResult("accepted", "ACCEPTED", message, late);
}

// ---- shipments --------------------------------------------------------------------------

function cachedShipments() {
  return store.get("shipments") || [];
}

function selected() {
  return cachedShipments().find((s) => s.shipment_id === state.selectedId);
}

function myParty() {
  return `courier:${(store.get("me") || {}).courier_id || ""}`;
}

async function loadShipments() {
  try {
    const answer = await api.shipments(state.token);
    if (answer.status === 401) return logout("Your courier login is no longer valid.");
    if (!answer.ok) {
      $("shipments-note").textContent = answer.data.detail || "The shipments could not be loaded.";
      return;
    }
    setConnection(true);
    store.set("shipments", answer.data.shipments);
    $("shipments-note").textContent = "";
  } catch (error) {
    if (!(error instanceof api.Offline)) throw error;
    setConnection(false);
    $("shipments-note").textContent = "Offline: showing the shipments last loaded.";
  }
  renderShipments();
  renderShipment();
}

function renderShipments() {
  const list = $("shipment-list");
  list.replaceChildren();
  const shipments = cachedShipments();
  if (!shipments.length) list.append(item("No shipments assigned to you."));
  for (const s of shipments) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "shipment";
    button.dataset.shipmentId = s.shipment_id;
    button.innerHTML = "<strong></strong><span></span><span></span>";
    button.children[0].textContent = `${s.shipment_id} · ${s.coi}`;
    button.children[1].textContent = route(s);
    button.children[2].textContent = `${s.status} · ${s.manifest.length} bag(s) · ${s.condition}`;
    button.addEventListener("click", () => openShipment(s.shipment_id));
    const li = document.createElement("li");
    li.append(button);
    list.append(li);
  }
}

function route(s) {
  const from = s.origin_party || `site:${s.origin_site_id}`;
  const to = s.destination_party || `site:${s.destination_site_id}`;
  return `${from.replace(/^site:/, "")} → ${to.replace(/^site:/, "")}`;
}

function openShipment(shipmentId) {
  state.selectedId = shipmentId;
  $("from-party").value = selected()?.custodian || "";
  const s = selected();
  $("offer-to").value = s ? s.destination_party || `site:${s.destination_site_id}` : "";
  $("shipments-view").hidden = true;
  $("shipment-view").hidden = false;
  renderShipment();
  $("scan-input").focus();
}

function closeShipment() {
  stopCamera();
  state.selectedId = null;
  $("shipment-view").hidden = true;
  $("shipments-view").hidden = false;
}

function renderShipment() {
  const s = selected();
  if (!s) return;
  $("shipment-id").textContent = s.shipment_id;
  $("shipment-coi").textContent = s.coi;
  $("shipment-status").textContent = s.status;
  $("shipment-condition").textContent = s.condition;
  $("shipment-route").textContent = route(s);
  $("shipment-custodian").textContent = s.custodian;
  const holding = s.custodian === myParty();
  $("offer-form").hidden = !holding;
  $("scan-form").hidden = holding;
  $("handoff").hidden = holding;
  $("offered-note").hidden = !(holding && s.offered_to);
  $("offered-note").textContent = s.offered_to ? `Handed over to ${s.offered_to}.` : "";
  $("shipment-window").textContent = localTime(s.window_ends_at);
  const manifest = $("manifest");
  manifest.replaceChildren();
  for (const din of s.manifest) {
    const done = s.scanned.includes(din);
    const li = item(`${done ? "✓ scanned" : "○ to scan"} — ${din}`);
    li.className = done ? "done" : "todo";
    manifest.append(li);
  }
}

function noteAccepted(action, answer) {
  const shipments = cachedShipments();
  const s = shipments.find((x) => x.shipment_id === action.shipmentId);
  if (!s || !answer.ok) return;
  if (action.kind === "scans" && !s.scanned.includes(answer.data.din)) s.scanned.push(answer.data.din);
  if (action.kind === "handoff") Object.assign(s, { custodian: answer.data.custodian, status: answer.data.status });
  if (action.kind === "offer") s.offered_to = answer.data.offered_to;
  store.set("shipments", shipments);
  renderShipment();
}

// ---- scanning, handoff, offline queue ---------------------------------------------------

async function submit(action) {
  if (!isOnline() || queue.pending().length) return keep(action);
  try {
    const answer = await api.send(action);
    if (action.kind === "scans") performance.mark("v2v-scan-answered");
    setConnection(true);
    noteAccepted(action, answer);
    showAnswer(action, answer);
    if (answer.ok && action.kind !== "scans") loadShipments();
  } catch (error) {
    if (!(error instanceof api.Offline)) throw error;
    setConnection(false);
    keep(action);
  }
}

function keep(action) {
  queue.enqueue(action);
  renderPending();
  const what = { handoff: "Handoff", offer: `Handover to ${action.body.to_party}` }[action.kind]
    || `Scan of ${action.body.label}`;
  showResult("queued", "SAVED — NOT YET CHECKED", `${what} is kept on this phone.`,
    "It will be checked when the connection returns. Keep the bags apart until then.");
  if (isOnline()) sync();
}

function scanLabel(event) {
  event.preventDefault();
  const label = $("scan-input").value.trim();
  $("scan-input").value = "";
  if (!label || !state.selectedId) return focusScan();
  const fromParty = $("from-party").value.trim();
  submit(api.newAction(state.token, "scans", state.selectedId, { from_party: fromParty, label }));
}

function scanFromCamera(label) {
  $("scan-input").value = label;
  $("scan-form").requestSubmit();
}

function offerHandoff(event) {
  event.preventDefault();
  const toParty = $("offer-to").value.trim();
  if (!state.selectedId || !toParty) return;
  submit(api.newAction(state.token, "offer", state.selectedId, { to_party: toParty }));
}

function confirmHandoff() {
  if (!state.selectedId) return;
  const fromParty = $("from-party").value.trim();
  submit(api.newAction(state.token, "handoff", state.selectedId, { from_party: fromParty }));
}

function describe(action) {
  const time = new Date(action.body.scanned_at).toLocaleTimeString();
  const what = { handoff: "handoff", offer: `hand over to ${action.body.to_party}` }[action.kind]
    || `scan ${action.body.label}`;
  return `${time} · ${action.shipmentId} · ${what}`;
}

function renderPending() {
  const actions = queue.pending();
  $("pending-title").textContent = `Pending (${actions.length})`;
  $("pending-badge").textContent = `Pending (${actions.length})`;
  $("pending-badge").hidden = actions.length === 0;
  $("pending-list").replaceChildren(...actions.map((a) => item(describe(a))));
}

async function sync() {
  if (state.syncing || !queue.pending().length) return;
  state.syncing = true;
  const answers = [];
  try {
    await queue.drain(api.send, (action, answer) => {
      answers.push([action, answer]);
      noteAccepted(action, answer);
      recordSynced(action, answer);
      renderPending();
    });
    setConnection(true);
  } catch (error) {
    if (!(error instanceof api.Offline)) throw error;
    setConnection(false);
  } finally {
    state.syncing = false;
    renderPending();
  }
  if (answers.length) announceSync(answers);
}

function recordSynced(action, answer) {
  const reason = reasonOf(answer.data, answer.status);
  const verdict = answer.ok ? "ACCEPTED" : sentenceFor(reason, answer.data.detail);
  const li = item(`${describe(action)} — ${verdict}`);
  li.className = answer.ok ? "done" : "refused";
  $("synced-list").prepend(li);
}

function announceSync(answers) {
  const refused = answers.find(([, answer]) => !answer.ok);
  if (refused) return showAnswer(...refused);
  showResult("accepted", "ACCEPTED", `${answers.length} saved scan(s) sent and accepted.`);
  loadShipments();
}

// ---- log in / out -----------------------------------------------------------------------

async function login(event) {
  event.preventDefault();
  const token = $("token-input").value.trim();
  const password = $("password-input").value;
  $("login-error").textContent = "";
  try {
    const answer = await api.login(token, password);
    $("password-input").value = "";
    if (!answer.ok) {
      $("login-error").textContent =
        "This courier token or password is not valid (wrong, revoked or expired).";
      return;
    }
    state.token = token;
    store.set("token", token);
    store.set("me", answer.data);
    $("token-input").value = "";
    showCourier();
  } catch (error) {
    if (!(error instanceof api.Offline)) throw error;
    $("login-error").textContent = "No connection: logging in needs a connection.";
  }
}

function logout(message = "") {
  state.token = null;
  for (const key of ["token", "me", "shipments"]) store.drop(key);
  closeShipment();
  $("courier-view").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = message;
  $("token-input").focus();
}

function showCourier() {
  const me = store.get("me") || {};
  $("who-name").textContent = me.printed_name || "";
  $("who-id").textContent = me.courier_id || "";
  $("who-site").textContent = me.site_id || "";
  $("login-view").hidden = true;
  $("courier-view").hidden = false;
  renderShipments();
  renderPending();
  loadShipments();
}

function localTime(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

function item(text) {
  const li = document.createElement("li");
  li.textContent = text;
  return li;
}

function start() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", () => logout());
  $("refresh").addEventListener("click", loadShipments);
  $("back").addEventListener("click", closeShipment);
  $("scan-form").addEventListener("submit", scanLabel);
  setUpCamera(scanFromCamera);
  $("handoff").addEventListener("click", confirmHandoff);
  $("offer-form").addEventListener("submit", offerHandoff);
  $("result-dismiss").addEventListener("click", hideResult);
  window.addEventListener("online", () => { setConnection(true); sync(); });
  window.addEventListener("offline", () => setConnection(false));
  setInterval(() => { if (isOnline()) sync(); }, RETRY_MS);
  setConnection(isOnline());
  if (state.token) showCourier();
  else logout();
  if (isOnline()) sync();
  navigator.serviceWorker?.register("/courier/static/sw.js", { scope: "/courier" });
}

start();
