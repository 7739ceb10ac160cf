// Stock Yjs clients (yjs + y-websocket) driven by the Python tests, one JSON command per line on
// stdin, one JSON answer per line on stdout: {"id", "ok", "result" | "error"}.
//
// A client keeps a spare ticket in `provider.params` (fetched with the user's access token
// after every connect and every 20 s), so y-websocket's own reconnects present a fresh one:
// the hub's tickets work once.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import readline from 'node:readline'

const clients = new Map()

async function ticket (c) {
  const res = await fetch(`${c.base}/api/realtime/ticket`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${c.token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ doc: c.docName })
  })
  if (!res.ok) throw new Error(`ticket: ${res.status} ${await res.text()}`)
  return (await res.json()).ticket
}

async function refreshTicket (c) {
  try {
    c.provider.params = { ticket: await ticket(c) }
  } catch (e) {
    c.errors.push(String(e))
  }
}

function files (c) {
  return c.ydoc.getMap('files')
}

function fileText (c, path) {
  const text = files(c).get(path)
  return text === undefined ? null : text.toString()
}

function until (c, predicate, timeout) {
  return new Promise((resolve, reject) => {
    if (predicate()) return resolve()
    const check = () => {
      if (predicate()) {
        clearTimeout(timer)
        c.ydoc.off('update', check)
        c.provider.awareness.off('change', check)
        c.provider.off('sync', check)
        resolve()
      }
    }
    const timer = setTimeout(() => {
      c.ydoc.off('update', check)
      c.provider.awareness.off('change', check)
      c.provider.off('sync', check)
      reject(new Error('timed out'))
    }, timeout)
    c.ydoc.on('update', check)
    c.provider.awareness.on('change', check)
    c.provider.on('sync', check)
  })
}

const commands = {
  async open ({ name, server, base, token, doc, user }) {
    const c = { name, base, token, docName: doc, errors: [], closes: [] }
    c.ydoc = new Y.Doc()
    c.provider = new WebsocketProvider(server, doc, c.ydoc, {
      WebSocketPolyfill: WebSocket,
      disableBc: true, // Node 20 has BroadcastChannel: clients in one process would sync directly
      params: { ticket: await ticket(c) }
    })
    c.provider.on('status', ({ status }) => {
      if (status === 'connected') refreshTicket(c)
    })
    c.provider.on('connection-close', (event) => {
      c.closes.push(event ? event.code : null)
    })
    c.timer = setInterval(() => refreshTicket(c), 20000)
    c.provider.awareness.setLocalStateField('user', { name: user || name })
    clients.set(name, c)
    await until(c, () => c.provider.synced, 10000)
    return { clientID: c.ydoc.clientID }
  },

  async insert ({ name, path, index, text }) {
    const c = clients.get(name)
    c.ydoc.transact(() => {
      let t = files(c).get(path)
      if (t === undefined) {
        t = new Y.Text()
        files(c).set(path, t)
      }
      t.insert(Math.min(index ?? t.length, t.length), text)
    })
    return fileText(c, path)
  },

  // Types `count` characters one update at a time at random positions of `path`.
  async type ({ name, path, count, alphabet, delayMs }) {
    const c = clients.get(name)
    const t = files(c).get(path)
    for (let i = 0; i < count; i++) {
      const ch = alphabet[i % alphabet.length]
      t.insert(Math.floor(Math.random() * (t.length + 1)), ch)
      if (delayMs) await new Promise((resolve) => setTimeout(resolve, delayMs))
    }
    return t.length
  },

  async delete ({ name, path, index, length }) {
    const c = clients.get(name)
    files(c).get(path).delete(index, length)
    return fileText(c, path)
  },

  async text ({ name, path }) {
    return fileText(clients.get(name), path)
  },

  async files ({ name }) {
    const c = clients.get(name)
    return Object.fromEntries(Array.from(files(c).entries()).map(([k, v]) => [k, v.toString()]))
  },

  async meta ({ name }) {
    return clients.get(name).ydoc.getMap('meta').toJSON()
  },

  async waitText ({ name, path, text, timeout }) {
    const c = clients.get(name)
    await until(c, () => fileText(c, path) === text, timeout ?? 10000)
    return text
  },

  async waitLength ({ name, path, length, timeout }) {
    const c = clients.get(name)
    await until(c, () => (fileText(c, path) ?? '').length === length, timeout ?? 10000)
    return fileText(c, path)
  },

  async awareness ({ name }) {
    const c = clients.get(name)
    const states = {}
    for (const [id, state] of c.provider.awareness.getStates()) states[id] = state
    return states
  },

  async waitAwareness ({ name, count, timeout }) {
    const c = clients.get(name)
    await until(c, () => c.provider.awareness.getStates().size === count, timeout ?? 10000)
    return c.provider.awareness.getStates().size
  },

  async setCursor ({ name, anchor }) {
    clients.get(name).provider.awareness.setLocalStateField('cursor', { anchor })
    return true
  },

  // Leave this hub and continue on another, keeping the local document (edits made meanwhile
  // are sent in the first sync).
  async move ({ name, server, base }) {
    const c = clients.get(name)
    c.provider.disconnect()
    c.base = base
    c.provider.serverUrl = server
    c.provider.params = { ticket: await ticket(c) }
    c.provider.connect()
    await until(c, () => c.provider.synced, 10000)
    return true
  },

  async disconnect ({ name }) {
    clients.get(name).provider.disconnect()
    return true
  },

  async status ({ name }) {
    const c = clients.get(name)
    return { synced: c.provider.synced, connected: c.provider.wsconnected, closes: c.closes, errors: c.errors }
  },

  async close ({ name }) {
    const c = clients.get(name)
    clearInterval(c.timer)
    c.provider.destroy()
    clients.delete(name)
    return true
  }
}

const rl = readline.createInterface({ input: process.stdin })
rl.on('line', async (line) => {
  const { id, cmd, ...args } = JSON.parse(line)
  try {
    const result = await commands[cmd](args)
    process.stdout.write(JSON.stringify({ id, ok: true, result }) + '\n')
  } catch (e) {
    process.stdout.write(JSON.stringify({ id, ok: false, error: String(e && e.stack ? e.stack : e) }) + '\n')
  }
})
rl.on('close', () => {
  for (const c of clients.values()) {
    clearInterval(c.timer)
    c.provider.destroy()
  }
  process.exit(0)
})
