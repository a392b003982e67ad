/** A running node picks up a newer manifest from its file: revocation needs no restart. */
import t from 'tap'
import { join } from 'node:path'
import { writeFile } from 'node:fs/promises'
import { federationFixture } from '../helper.js'
import { removeKey, signAuthorityManifest } from '../../src/federation/authority.js'

t.test('manifest reload revokes a removed key and is logged', async (t) => {
  const f = await federationFixture(t, { start: ['fj-psb', 'fj-tax'] })
  const m = f.fed.dataset.samples.identity.matches[0]!
  const ask = () => f.verify('fj-tax', { provider: 'fj-psb', service: 'identity.match', purpose: 'taxpayer-registration', basis: 'Tax Collection Administration Law art. 15', subjects: [{ id: m.id, name: m.name }] })
  t.equal((await ask()).status, 200)
  const psb = f.nodes['fj-psb']!.node
  const kid = psb.federation.get().member('fj-tax').messageKeys.keys().next().value as string
  await removeKey(f.fed.authorityDir, 'fj-tax', kid)
  const signed = await signAuthorityManifest(f.fed.authorityDir)
  // A broken file first: the node keeps its current manifest.
  await writeFile(join(f.fed.dir, 'fj-psb', 'federation', 'manifest.jws'), 'garbage\n')
  await psb.housekeeping()
  t.equal((await ask()).status, 200, 'a bad manifest file does not replace the good one')
  await writeFile(join(f.fed.dir, 'fj-psb', 'federation', 'manifest.jws'), `${signed.jws}\n`)
  const before = await psb.log.size()
  await psb.housekeeping()
  t.equal(psb.federation.get().seq, signed.manifest.seq)
  const leaf = JSON.parse(Buffer.from(await psb.log.leaf(before)).toString())
  t.match(leaf, { t: 'key-event', event: 'manifest-loaded', manifestSeq: signed.manifest.seq })
  const r = await ask()
  // The provider's refusal reaches the consumer's application as the peer's error, its code kept.
  t.equal(r.status, 502)
  t.match(r.json, { code: 'VN_ERR_PEER_ERROR', peer: { member: 'fj-psb', status: 401, code: 'VN_ERR_JWS_UNKNOWN_KID' } }, 'the removed key is refused from then on')
})
