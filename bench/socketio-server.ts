// The baseline of bench:chat: the Socket.IO chat server most Node developers would write. One process,
// websocket transport only, every connection joins the room, a `send` is broadcast to the room as `msg`
// with a sequence number, the server's time and the author. No auth, no storage, no NATS, no rate limits:
// it does less work per message than the platform's chat (which stores each message in JetStream first).
//   node --import tsx bench/socketio-server.ts --port 3000 [--room bench]
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { Server } from 'socket.io';

const { values } = parseArgs({
  options: { port: { type: 'string', default: '3000' }, room: { type: 'string', default: 'bench' } },
});
const room = values.room;

const httpServer = createServer();
const io = new Server(httpServer, { transports: ['websocket'], serveClient: false });
let seq = 0;

io.on('connection', (socket) => {
  const auth = socket.handshake.auth as { id?: unknown; name?: unknown };
  const user = { id: String(auth.id ?? socket.id), name: String(auth.name ?? 'guest'), role: 'viewer' };
  socket.join(room);
  socket.on('send', (text: unknown) => {
    if (typeof text !== 'string' || text.length === 0 || text.length > 500) return;
    io.to(room).emit('msg', { seq: ++seq, ts: Date.now(), user, text });
  });
});

httpServer.listen(Number(values.port), '127.0.0.1', () => console.log(`listening ${values.port}`));
const stop = () => {
  io.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
