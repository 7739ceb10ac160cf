// The peers of bench/crdt.py, one per process: `node peers.mjs hocuspocus|yws` with PORT.
// Both keep documents in memory only (no persistence extension, no YPERSISTENCE).
import http from 'node:http'

const kind = process.argv[2]
const port = Number(process.env.PORT)

if (kind === 'hocuspocus') {
  const { Server } = await import('@hocuspocus/server')
  const server = new Server({ port, address: '127.0.0.1', quiet: true })
  await server.listen()
} else if (kind === 'yws') {
  const { WebSocketServer } = await import('ws')
  const { setupWSConnection } = await import('@y/websocket-server/utils')
  const wss = new WebSocketServer({ noServer: true })
  const server = http.createServer((req, res) => { res.writeHead(200).end('okay') })
  wss.on('connection', setupWSConnection)
  server.on('upgrade', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req))
  })
  server.listen(port, '127.0.0.1')
} else {
  throw new Error(`unknown peer ${kind}`)
}
process.on('SIGINT', () => process.exit(0))
process.on('SIGTERM', () => process.exit(0))
