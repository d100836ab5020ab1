// Scans and handoffs waiting for a connection, kept in localStorage, sent in device-time order.

const KEY = "v2v.courier.pending";

export function pending() {
  try {
    return JSON.parse(localStorage.getItem(KEY) || "[]");
  } catch {
    return [];
  }
}

function save(actions) {
  localStorage.setItem(KEY, JSON.stringify(actions));
}

export function enqueue(action) {
  const actions = pending();
  actions.push(action);
  save(actions);
}

function byDeviceTime(a, b) {
  return a.body.scanned_at.localeCompare(b.body.scanned_at);
}

// Sends each waiting action once an answer comes back; stops at the first network failure
// (or server error) so that later actions never overtake earlier ones.
export async function drain(send, onAnswer) {
  let answered = 0;
  for (const action of pending().sort(byDeviceTime)) {
    const answer = await send(action); // throws when still offline
    if (answer.status >= 500) break;
    save(pending().filter((a) => a.body.idempotency_key !== action.body.idempotency_key));
    answered += 1;
    onAnswer(action, answer);
  }
  return answered;
}
