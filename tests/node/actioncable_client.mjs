// The @rails/actioncable npm client under Node, on the `ws` package's WebSocket.
//
//   node actioncable_client.mjs ws://127.0.0.1:PORT/cable?token=JWT
//
// Subscribes to NotificationsChannel and prints one JSON line per event on stdout:
//   {"event":"connected","reconnected":false,"protocol":"actioncable-v1-json"}
//   {"event":"received","message":<the channel message exactly as the client got it>}
//   {"event":"disconnected","willAttemptReconnect":true} / {"event":"rejected"} / ...
// Reads one JSON command per line on stdin:
//   {"perform":"mark_read","data":{"id":42}}  ->  {"event":"performed","action":...,"sent":true}
// The client's own log (ActionCable.logger) goes to stderr.
import ActionCable from "@rails/actioncable";
import WebSocket from "ws";
import { createInterface } from "node:readline";

const url = process.argv[2];
if (!url) {
  console.error("usage: node actioncable_client.mjs ws://host/cable?token=...");
  process.exit(2);
}

const emit = (event, fields = {}) => process.stdout.write(JSON.stringify({ event, ...fields }) + "\n");

// What the browser build needs from a browser, found by running it under Node 20:
// - a WebSocket: the `ws` package (Node 20 has no global one);
// - global addEventListener/removeEventListener: ConnectionMonitor.start()/stop() listen for
//   "visibilitychange" on the window. Under Node nothing becomes visible or hidden, so
//   no-ops. (`document` is read only inside that listener and for relative URLs; this
//   script always passes an absolute ws:// URL, so it needs no `document`.)
globalThis.addEventListener ??= () => {};
globalThis.removeEventListener ??= () => {};
ActionCable.adapters.WebSocket = WebSocket;
ActionCable.adapters.logger = { log: (...args) => console.error(...args) };
ActionCable.logger.enabled = true;

const consumer = ActionCable.createConsumer(url);
const subscription = consumer.subscriptions.create(
  { channel: "NotificationsChannel" },
  {
    initialized() {
      emit("initialized");
    },
    connected({ reconnected } = {}) {
      emit("connected", { reconnected: Boolean(reconnected), protocol: consumer.connection.getProtocol() });
    },
    disconnected({ willAttemptReconnect } = {}) {
      emit("disconnected", { willAttemptReconnect: Boolean(willAttemptReconnect) });
    },
    rejected() {
      emit("rejected");
    },
    received(message) {
      emit("received", { message });
    },
  },
);

createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  const command = JSON.parse(line);
  if (command.perform) {
    const sent = subscription.perform(command.perform, command.data || {});
    emit("performed", { action: command.perform, sent: Boolean(sent) });
  } else if (command.quit) {
    consumer.disconnect();
    process.exit(0);
  }
});
