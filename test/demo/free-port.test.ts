import t from 'tap'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { freePort } from '../../src/demo/federation.js'

t.test('freePort picks distinct listenable ports below the ephemeral range', async (t) => {
  const start = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
  const ports = await Promise.all(Array.from({ length: 8 }, () => freePort()))
  for (const p of ports) t.ok(p >= 20_000 && p < start, `${p} is below ${start}, where no outgoing connection takes it`)
  t.ok(new Set(ports).size >= 7, 'spread over the range')
  const p = ports[0] as number
  await new Promise<void>((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(p, '127.0.0.1', () => s.close(() => resolve()))
  })
})
