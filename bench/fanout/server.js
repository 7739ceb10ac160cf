// The Socket.IO peer of bench/fanout.py: one process of a Socket.IO cluster whose processes
// share rooms through Redis (@socket.io/redis-adapter), doing what a chat room does with no
// storage: `join` puts the socket in a room, `publish` adds the author, an id and the time and
// emits the message to everyone in the room (the author included, as Cohort does), and answers
// with an ack. Started by the benchmark with PORT, REDIS_URL and KEY (the adapter's channel
// prefix); it prints one JSON line per event worth knowing (ready, disconnects) on stdout.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const port = Number(process.env.PORT);
const redisUrl = process.env.REDIS_URL || "redis://127.0.0.1:6379/0";
const key = process.env.KEY || "socket.io";
const name = process.env.NAME || `node-${process.pid}`;

function say(event) {
  process.stdout.write(`${JSON.stringify({ ...event, server: name, at_ms: Date.now() })}\n`);
}

async function main() {
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  for (const client of [pub, sub]) {
    client.on("error", (err) => say({ event: "redis_error", message: String(err) }));
  }
  await Promise.all([pub.connect(), sub.connect()]);

  const httpServer = http.createServer((req, res) => {
    if (req.url === "/ready") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok");
      return;
    }
    res.writeHead(404).end();
  });
  const io = new Server(httpServer, {
    adapter: createAdapter(pub, sub, { key }),
    transports: ["websocket"],
    serveClient: false,
    cors: { origin: false },
  });

  let nextId = 0;
  io.on("connection", (socket) => {
    const userId = Number(socket.handshake.query.user) || 0;
    const author = { id: userId, display_name: `User ${userId}`, avatar_color: "#4f46e5" };
    socket.on("join", (room, ack) => {
      if (typeof room !== "string") return;
      socket.join(room);
      if (typeof ack === "function") ack({ ok: true, room });
    });
    socket.on("publish", (msg, ack) => {
      if (!msg || typeof msg.room !== "string" || typeof msg.text !== "string") return;
      nextId += 1;
      io.to(msg.room).emit("message", {
        room: msg.room,
        id: `${name}-${nextId}`,
        data: {
          type: "message",
          text: msg.text,
          author,
          reply_to: null,
          mentions: [],
          sent_at: new Date().toISOString(),
        },
      });
      if (typeof ack === "function") ack({ ok: true });
    });
    socket.on("disconnect", (reason) => {
      // A frozen reader shows here: how it went and what was still buffered for it.
      const raw = socket.conn && socket.conn.transport && socket.conn.transport.socket;
      say({
        event: "disconnect",
        user: userId,
        reason,
        buffered_bytes: raw ? raw.bufferedAmount : null,
      });
    });
  });

  httpServer.listen(port, "127.0.0.1", () => say({ event: "ready", port }));
  const stop = () => {
    io.close();
    Promise.allSettled([pub.quit(), sub.quit()]).finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  say({ event: "fatal", message: String(err && err.stack ? err.stack : err) });
  process.exit(1);
});
