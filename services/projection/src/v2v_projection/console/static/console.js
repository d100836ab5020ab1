// v2v console: live alerts (server-sent events) and filtering of table rows. No dependencies.
"use strict";

function filterRows(input) {
  const table = document.getElementById(input.dataset.filterTable);
  if (!table) return;
  const wanted = input.value.trim().toLowerCase();
  for (const row of table.tBodies[0].rows) {
    row.hidden = wanted !== "" && !row.textContent.toLowerCase().includes(wanted);
  }
}

function cell(row, text, className) {
  const td = row.insertCell();
  if (className) td.className = className;
  if (text !== undefined) td.textContent = text;
  return td;
}

function hidden(form, name, value) {
  const input = document.createElement("input");
  input.type = "hidden";
  input.name = name;
  input.value = value;
  form.appendChild(input);
}

function alertRow(table, alert) {
  const base = table.dataset.base;
  const row = table.tBodies[0].insertRow(0);
  row.className = "fresh";
  row.dataset.coi = alert.coi;
  row.dataset.kind = alert.kind;
  row.dataset.eventId = alert.event_id;
  const at = document.createElement("time");
  at.dateTime = alert.at;
  at.textContent = alert.at.slice(0, 19).replace("T", " "); // UTC, as the column says
  cell(row).appendChild(at);
  const link = document.createElement("a");
  link.href = base + "/chains/" + encodeURIComponent(alert.coi);
  link.textContent = alert.coi;
  cell(row, undefined, "mono").appendChild(link);
  cell(row, alert.kind);
  const badge = document.createElement("span");
  badge.className = "badge severity severity-" + alert.severity;
  badge.textContent = alert.severity;
  cell(row).appendChild(badge);
  cell(row, alert.detail);
  const last = cell(row);
  if (alert.may_acknowledge) {
    const form = document.createElement("form");
    form.method = "post";
    form.action = base + "/alerts/ack";
    form.className = "ack-form";
    hidden(form, "coi", alert.coi);
    hidden(form, "kind", alert.kind);
    hidden(form, "at", alert.at);
    hidden(form, "event_id", alert.event_id);
    hidden(form, "next", base + "/alerts");
    const note = document.createElement("input");
    note.type = "text";
    note.name = "note";
    note.maxLength = 2000;
    note.placeholder = "note (optional)";
    note.setAttribute("aria-label", "note");
    form.appendChild(note);
    const button = document.createElement("button");
    button.type = "submit";
    button.textContent = "Acknowledge";
    form.appendChild(button);
    last.appendChild(form);
  } else {
    last.textContent = "open";
    last.className = "muted";
  }
  const empty = document.getElementById("no-alerts");
  if (empty) empty.remove();
  const filter = document.querySelector("[data-filter-table='" + table.id + "']");
  if (filter) filterRows(filter);
}

function watchAlerts(table) {
  const status = document.getElementById("live-status");
  const show = (state, text) => {
    if (!status) return;
    status.dataset.state = state;
    status.textContent = text;
  };
  const source = new EventSource(table.dataset.stream);
  source.onopen = () => show("live", "live");
  source.onerror = () => show("lost", "reconnecting…");
  source.addEventListener("alert", (event) => alertRow(table, JSON.parse(event.data)));
}

document.addEventListener("DOMContentLoaded", () => {
  for (const input of document.querySelectorAll("[data-filter-table]")) {
    input.addEventListener("input", () => filterRows(input));
  }
  for (const button of document.querySelectorAll("[data-print]")) {
    button.addEventListener("click", () => window.print());
  }
  const alerts = document.querySelector("table[data-stream]");
  if (alerts) watchAlerts(alerts);
});
