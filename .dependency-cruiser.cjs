/**
 * The layer check (`npm run lint:layers`): every import in src/ points down the layer table of
 * docs/ARCHITECTURE.md, and no file-level cycle exists. Type-only imports count too
 * (tsPreCompilationDeps), because a type that two layers need belongs in the lower one.
 *
 * LAYERS lists src/ folders (or top-level files) from the bottom up. A module may import its own
 * folder and any folder of a strictly lower rank; folders that share a rank are siblings and
 * may not import each other.
 */
const LAYERS = [
  ['errors'],
  ['util'],
  ['crypto'],
  ['protocol'],
  ['federation', 'policy', 'sources'],
  ['config'],
  ['log'],
  ['oprf', 'he'],
  ['peers'],
  ['exchange', 'audit'],
  ['node'],
  ['http'],
  ['demo'],
  ['cli'],
]

const pathOf = (name) => `^src/${name}(/|\\.ts$)`
const rankOf = new Map(LAYERS.flatMap((names, rank) => names.map((name) => [name, rank])))

const layerRules = [...rankOf].map(([name, rank]) => {
  const notBelow = [...rankOf].filter(([other, r]) => other !== name && r >= rank).map(([other]) => other)
  return {
    name: `layer-${name}`,
    comment: `src/${name} may import only folders below it in the layer table (docs/ARCHITECTURE.md)`,
    severity: 'error',
    from: { path: pathOf(name) },
    to: { path: `^src/(${notBelow.join('|')})(/|\\.ts$)` },
  }
}).filter((rule) => !rule.to.path.includes('()'))

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'a cycle between files means two concepts without one home',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'no-unknown-folder',
      comment: 'every folder of src/ has a rank in the layer table; add a new one there first',
      severity: 'error',
      from: { path: '^src/', pathNot: `^src/(${[...rankOf.keys()].join('|')})(/|\\.ts$)` },
      to: {},
    },
    {
      name: 'not-to-unresolvable',
      comment: 'node-seal ships its implementation types as .d.ts files only, which the resolver cannot map from .js; tsc checks those',
      severity: 'error',
      from: { path: '^src/' },
      to: { couldNotResolve: true, pathNot: '^node-seal/implementation/' },
    },
    ...layerRules,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: ['\\.d\\.ts$', '^src/crypto/wasm/'] },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['types', 'import', 'require', 'node', 'default'], extensions: ['.ts', '.js', '.json', '.d.ts'] },
    moduleSystems: ['es6'],
  },
}
