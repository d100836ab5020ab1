// The courier HTTP API. A network failure throws `Offline`; an answer (even a refusal) resolves.

export class Offline extends Error {}

export async function call(token, method, path, body) {
  const headers = { Accept: "application/json, application/problem+json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (error) {
    throw new Offline(String(error));
  }
  const data = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, data };
}

export const me = (token) => call(token, "GET", "/v1/courier/me");
export const login = (token, password) => call(token, "POST", "/v1/courier/login", { password });
export const shipments = (token) => call(token, "GET", "/v1/courier/shipments");

export function send(action) {
  const path = `/v1/courier/shipments/${encodeURIComponent(action.shipmentId)}/${action.kind}`;
  return call(action.token, "POST", path, action.body);
}

export function newAction(token, kind, shipmentId, fields) {
  return {
    token,
    kind, // "scans", "handoff" or "offer"
    shipmentId,
    body: {
      idempotency_key: crypto.randomUUID(),
      scanned_at: new Date().toISOString(),
      ...fields,
    },
  };
}
