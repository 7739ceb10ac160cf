// Load generator of bench/crdt.py: `node gen.mjs <spec.json>`; JSON lines on stdout.
// Clients are stock providers: y-websocket 3 (Cohort, @y/websocket-server) or
// @hocuspocus/provider 3 (Hocuspocus). Every client inserts one character at a random position
// of the top-level Y.Text `bench`, so an update of client c with clock k is c's (k+1)-th insert:
// receivers identify arrivals from each remote transaction's before/after state vectors (no
// re-reading of the text); the parent joins send and arrival times (performance.timeOrigin +
// performance.now(), shared by the machine's processes).
import * as Y from 'yjs'
import WS from 'ws'
import fs from 'node:fs'
import crypto from 'node:crypto'
import readline from 'node:readline'

const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
// Stock clients offer permessage-deflate (ws's default); --no-deflate is a diagnostic that
// turns the offer off, to see what the server's acceptance of it costs.
globalThis.WebSocket = spec.noDeflate
  ? class extends WS { constructor (url, protocols, options) { super(url, protocols, { ...options, perMessageDeflate: false }) } }
  : WS
const now = () => performance.timeOrigin + performance.now()
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const ALPHA = 'abcdefghijklmnopqrstuvwxyz'

let WebsocketProvider, HocuspocusProvider
if (spec.system === 'hocuspocus') ({ HocuspocusProvider } = await import('@hocuspocus/provider'))
else ({ WebsocketProvider } = await import('y-websocket'))

async function ticket (doc, token) {
  const res = await fetch(`${spec.base}/api/realtime/ticket`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ doc })
  })
  if (!res.ok) throw new Error(`ticket: ${res.status} ${await res.text()}`)
  return (await res.json()).ticket
}

const clients = []
let lastRemote = 0

async function open (c) {
  c.doc = new Y.Doc()
  c.text = c.doc.getText('bench')
  c.arrivals = [] // flat: sender clientID, clock, time
  c.sends = []
  c.doc.on('afterTransaction', (tr) => {
    if (tr.local || !c.track) return
    const t = now()
    lastRemote = t
    for (const [client, after] of tr.afterState) {
      const before = tr.beforeState.get(client) || 0
      for (let k = before; k < after; k++) c.arrivals.push(client, k, t)
    }
  })
  let synced
  const done = new Promise((resolve) => { synced = resolve })
  if (spec.system === 'hocuspocus') {
    c.provider = new HocuspocusProvider({ url: spec.url, name: c.docName, document: c.doc, onSynced: () => synced() })
  } else {
    const params = spec.system === 'cohort' ? { ticket: await ticket(c.docName, c.token) } : {}
    c.provider = new WebsocketProvider(spec.url, c.docName, c.doc, { disableBc: true, params })
    c.provider.on('sync', (s) => { if (s) synced() })
  }
  await Promise.race([done, sleep(60000).then(() => { throw new Error(`no sync for ${c.docName}`) })])
}

async function pool (items, n, fn) {
  let i = 0
  await Promise.all(Array.from({ length: n }, async () => { while (i < items.length) await fn(items[i++]) }))
}

const commands = {
  async open () {
    for (const [docName, token] of spec.clients) clients.push({ docName, token })
    await pool(clients, spec.concurrency || 8, open)
    return { clientIDs: clients.map((c) => c.doc.clientID) }
  },
  // Memory scenario: each client fills its document with `bytes` characters in one transaction
  // (10 inserts at random positions), then waits until the server echoes nothing more.
  async fill ({ bytes }) {
    const chunk = Math.ceil(bytes / 10)
    for (const c of clients) {
      c.doc.transact(() => {
        for (let i = 0; i < 10; i++) {
          const s = crypto.randomBytes(chunk).toString('base64').slice(0, chunk)
          c.text.insert(Math.floor(Math.random() * (c.text.length + 1)), s)
        }
      })
      await sleep(1)
    }
    return { filled: clients.length }
  },
  async load ({ startAt, seconds, rate }) {
    for (const c of clients) c.track = true
    await sleep(Math.max(0, startAt - now()))
    const end = startAt + seconds * 1000
    const period = 1000 / rate
    await Promise.all(clients.map(async (c) => {
      let due = startAt + Math.random() * period
      while (due < end) {
        const wait = due - now()
        if (wait > 0) await sleep(wait)
        const t = now()
        c.sends.push(t, t - due)
        c.text.insert(Math.floor(Math.random() * (c.text.length + 1)), ALPHA[c.sends.length % 26])
        due += period
      }
    }))
    return { sent: clients.reduce((n, c) => n + c.sends.length / 2, 0) }
  },
  // Until no remote update for `quietMs` (or `limitMs`), then every client's text digest.
  async drain ({ quietMs, limitMs }) {
    const started = now()
    lastRemote = Math.max(lastRemote, started)
    while (now() - lastRemote < quietMs && now() - started < limitMs) await sleep(100)
    return {
      drain_ms: Math.round(now() - started),
      clients: clients.map((c) => ({
        id: c.doc.clientID,
        sends: c.sends,
        arrivals: c.arrivals,
        length: c.text.length,
        digest: crypto.createHash('sha256').update(c.text.toString()).digest('hex').slice(0, 16),
        connected: spec.system === 'hocuspocus' ? c.provider.isConnected !== false : c.provider.wsconnected
      }))
    }
  },
  async close () {
    for (const c of clients) c.provider.destroy()
    setTimeout(() => process.exit(0), 200)
    return true
  }
}

const rl = readline.createInterface({ input: process.stdin })
rl.on('line', async (line) => {
  const { cmd, ...args } = JSON.parse(line)
  try {
    say({ ok: true, result: await commands[cmd](args) })
  } catch (e) {
    say({ ok: false, error: String(e && e.stack ? e.stack : e) })
  }
})
