// The Kiket seed's browser snippet (shared/seeds/kiket-authentication.txt, "Real-Time
// Notifications"), run under Node with the `ws` package as the global WebSocket.
//
//   node kiket_snippet.mjs ws://127.0.0.1:PORT/cable ACCESS_TOKEN
//
// Taken verbatim except for:
// - the address: the seed's `wss://kiket.dev/cable` is the hub's cable URL from argv;
// - the ONE code adaptation: `subscribe` is sent once the socket is open (the seed sends it
//   straight after `new WebSocket(...)`, which throws while the socket is still connecting);
// - the seed's comments inside `if (msg.action === "new_notification")` are replaced by a
//   print of exactly the values they name.
// After the seed's handler, a second listener prints {"frame": type} for every frame, so the
// test sees that the seed's handler returned normally for welcome / confirm_subscription
// (an exception in it would end this process with a stack trace on stderr instead).
import WebSocket from "ws";

globalThis.WebSocket = WebSocket;

const [cableUrl, accessToken] = process.argv.slice(2);
if (!cableUrl || !accessToken) {
  console.error("usage: node kiket_snippet.mjs ws://host/cable ACCESS_TOKEN");
  process.exit(2);
}

// ---- the seed's snippet -------------------------------------------------------------------
const ws = new WebSocket(
  `${cableUrl}?token=${accessToken}`
);

// Subscribe to notifications channel
ws.onopen = () => {
ws.send(JSON.stringify({
  command: "subscribe",
  identifier: JSON.stringify({ channel: "NotificationsChannel" })
}));
};

// Receive notifications
ws.onmessage = (event) => {
  const data = JSON.parse(event.data);
  if (data.type === "ping") return;
  const msg = JSON.parse(data.message || "{}");
  if (msg.action === "new_notification") {
    console.log(JSON.stringify({
      title: msg.notification.title,
      message: msg.notification.message,
      url: msg.notification.url,
      unread_count: msg.unread_count,
    }));
  }
};
// ---- end of the seed's snippet ------------------------------------------------------------

ws.addEventListener("message", (event) => {
  const data = JSON.parse(event.data);
  if (data.type !== "ping") console.log(JSON.stringify({ frame: data.type ?? null }));
});
ws.addEventListener("close", (event) => {
  console.log(JSON.stringify({ closed: event.code }));
});
