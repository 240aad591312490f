// The unread notifications count, kept live from the notifications stream (resumed with
// Last-Event-ID after a drop) while someone is logged in; pages subscribe to new ones.
import * as api from "./api.js";

let unread = 0;
let running = null;
const countListeners = new Set();
const arrivalListeners = new Set();

function announce() {
  for (const listener of countListeners) listener(unread);
}

export function unreadCount() {
  return unread;
}

export function onCount(listener) {
  countListeners.add(listener);
  return () => countListeners.delete(listener);
}

/** `listener(notification)` for each one that arrives; returns the unsubscribe function. */
export function onArrival(listener) {
  arrivalListeners.add(listener);
  return () => arrivalListeners.delete(listener);
}

/** The count again from the API (after marking some read). */
export async function recount(signal) {
  unread = (await api.api("GET", "/api/v1/notifications/unread-count", { signal })).unread;
  announce();
}

export function start(onError) {
  if (running) return;
  const controller = new AbortController();
  running = controller;
  follow(controller.signal, onError);
}

export function stop() {
  if (running) running.abort();
  running = null;
  unread = 0;
  announce();
}

async function follow(signal, onError) {
  let lastEventId = null;
  let failures = 0;
  try {
    await recount(signal);
  } catch (error) {
    if (error.name !== "AbortError") onError(error);
    return;
  }
  while (!signal.aborted) {
    try {
      await api.streamEvents("GET", "/api/v1/notifications/stream", {
        lastEventId,
        signal,
        onEvent: (event) => {
          if (event.id) lastEventId = event.id;
          failures = 0;
          if (event.event !== "notification") return;
          const notification = JSON.parse(event.data);
          if (!notification.read) {
            unread += 1;
            announce();
          }
          for (const listener of arrivalListeners) listener(notification);
        },
      });
    } catch (error) {
      if (error.name === "AbortError") return;
      if (error instanceof api.ApiError && error.status !== 0) {
        onError(error);
        return;
      }
      failures += 1;
      await new Promise((resolve) => setTimeout(resolve, Math.min(30, 2 ** failures) * 500));
    }
  }
}
