import t from 'tap'
import { canonicalJson, canonicalJsonBytes } from '../../src/protocol/canonical-json.js'

/** IEEE 754 double from its 16 hex digit bit pattern. */
function double(bits: string): number {
  const v = new DataView(new ArrayBuffer(8))
  v.setBigUint64(0, BigInt(`0x${bits}`))
  return v.getFloat64(0)
}

t.test('RFC 8785 Appendix B: number serialization samples', async (t) => {
  // RFC 8785 Appendix B, Table: IEEE 754 bit pattern -> JSON text.
  const vectors: [string, string][] = [
    ['0000000000000000', '0'],
    ['8000000000000000', '0'],
    ['0000000000000001', '5e-324'],
    ['8000000000000001', '-5e-324'],
    ['7fefffffffffffff', '1.7976931348623157e+308'],
    ['ffefffffffffffff', '-1.7976931348623157e+308'],
    ['4340000000000000', '9007199254740992'],
    ['c340000000000000', '-9007199254740992'],
    ['4430000000000000', '295147905179352830000'],
    ['44b52d02c7e14af5', '9.999999999999997e+22'],
    ['44b52d02c7e14af6', '1e+23'],
    ['44b52d02c7e14af7', '1.0000000000000001e+23'],
    ['444b1ae4d6e2ef4e', '999999999999999700000'],
    ['444b1ae4d6e2ef4f', '999999999999999900000'],
    ['444b1ae4d6e2ef50', '1e+21'],
    ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
    ['3eb0c6f7a0b5ed8d', '0.000001'],
    ['41b3de4355555553', '333333333.3333332'],
    ['41b3de4355555554', '333333333.33333325'],
    ['41b3de4355555555', '333333333.3333333'],
    ['41b3de4355555556', '333333333.3333334'],
    ['41b3de4355555557', '333333333.33333343'],
    ['becbf647612f3696', '-0.0000033333333333333333'],
    ['43143ff3c1cb0959', '1424953923781206.2'],
  ]
  for (const [bits, text] of vectors) t.equal(canonicalJson(double(bits)), text, bits)
  // Rows marked as errors in the same table: NaN and Infinity.
  for (const bits of ['7fffffffffffffff', '7ff0000000000000', 'fff0000000000000']) {
    t.throws(() => canonicalJson({ n: [1, double(bits)] }), { name: 'TypeError', message: /^\$\.n\[1\]: .*no JSON representation/ }, bits)
  }
})

t.test('RFC 8785 §3.2.2 sample and cyberphone/json-canonicalization testdata', async (t) => {
  // testdata/input/*.json -> testdata/output/*.json of the reference implementation.
  const cases: [string, string, string][] = [
    [
      'values',
      String.raw`{
        "numbers": [1E30, 4.50, 333333333.33333329, 2e-3, 0.000000000000000000000000001],
        "escaping": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
        "literals": [null, true, false]
      }`,
      String.raw`{"escaping":"€$\u000f\nA'B\"\\\\\"/","literals":[null,true,false],"numbers":[1e+30,4.5,333333333.3333333,0.002,1e-27]}`,
    ],
    [
      'structures',
      String.raw`{ "1": {"f": {"f": "hi","F": 5} ,"\n": 56.0}, "10": { }, "": "empty", "a": { }, "111": [ { } ], "A": { } }`,
      String.raw`{"":"empty","1":{"\n":56,"f":{"F":5,"f":"hi"}},"10":{},"111":[{}],"A":{},"a":{}}`,
    ],
    ['arrays', '[ 56, { "d": true, "10": null, "1": [ ] } ]', '[56,{"1":[],"10":null,"d":true}]'],
    [
      'french',
      '{ "peach": "This sorting order", "péché": "is wrong according to French", "pêche": "but canonicalization MUST", "sin": "ingnore locale" }',
      '{"peach":"This sorting order","péché":"is wrong according to French","pêche":"but canonicalization MUST","sin":"ingnore locale"}',
    ],
    // Unicode is not normalized: JCS leaves strings as they are.
    ['unicode', String.raw`{ "Unnormalized Unicode":"\u1e0d\u0307" }`, '{"Unnormalized Unicode":"\u1e0d\u0307"}'],
    [
      'weird',
      String.raw`{ "\u20ac": "Euro Sign", "1": "One", "\u0080": "Control\u007f", "\ud83d\ude02": "Smiley",
        "\u00f6": "Latin Small Letter O With Diaeresis", "\ufb33": "Hebrew Letter Dalet With Dagesh", "</script>": "Browser Challenge" }`,
      '{"1":"One","</script>":"Browser Challenge","\u0080":"Control\u007f","\u00f6":"Latin Small Letter O With Diaeresis",' +
        '"\u20ac":"Euro Sign","\ud83d\ude02":"Smiley","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    ],
  ]
  for (const [name, input, output] of cases) t.equal(canonicalJson(JSON.parse(input)), output, name)
})

t.test('RFC 8785 §3.2.3: members sorted by UTF-16 code units, not code points or locale', async (t) => {
  const input = {
    '\u20ac': 'Euro Sign',
    '\r': 'Carriage Return',
    '\ufb33': 'Hebrew Letter Dalet With Dagesh',
    '1': 'One',
    '\ud83d\ude00': 'Emoji: Grinning Face',
    '\u0080': 'Control',
    '\u00f6': 'Latin Small Letter O With Diaeresis',
  }
  // RFC 8785 §3.2.3 lists the expected order: \r, 1, U+0080, ö, €, 😀, דּ. (Object.keys of the
  // parsed output cannot show it: JavaScript enumerates integer-like keys such as "1" first.)
  // The emoji (surrogates D83D DE00) sorts before U+FB33 although its code point is larger.
  const expected = ['\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33']
    .map((k) => `${JSON.stringify(k)}:${JSON.stringify(input[k as keyof typeof input])}`)
    .join(',')
  t.equal(canonicalJson(input), `{${expected}}`)
})

t.test('canonical form is independent of member order and whitespace', async (t) => {
  const a = canonicalJson(JSON.parse('{"b": [1, {"y": 2, "x": 1}], "a": "z"}'))
  const b = canonicalJson({ a: 'z', b: [1, { x: 1, y: 2 }] })
  t.equal(a, b)
  t.equal(a, '{"a":"z","b":[1,{"x":1,"y":2}]}')
  t.not(canonicalJson({ a: 'z', b: [{ x: 1, y: 2 }, 1] }), a, 'array order is kept')
})

t.test('scalars, -0, shared references and null-prototype objects', async (t) => {
  t.equal(canonicalJson(-0), '0')
  t.equal(canonicalJson(null), 'null')
  t.equal(canonicalJson(true), 'true')
  t.equal(canonicalJson('\u2028\u2029'), '"\u2028\u2029"', 'line separators are not escaped')
  t.equal(canonicalJson('\u0000\u001f'), '"\\u0000\\u001f"')
  const shared = { k: 1 }
  t.equal(canonicalJson({ a: shared, b: [shared] }), '{"a":{"k":1},"b":[{"k":1}]}', 'a DAG is not a cycle')
  const bare = Object.create(null) as Record<string, unknown>
  bare.z = 1
  bare.a = 2
  t.equal(canonicalJson(bare), '{"a":2,"z":1}')
})

t.test('canonicalJsonBytes is UTF-8 of the canonical text', async (t) => {
  t.same(Buffer.from(canonicalJsonBytes({ '€': 'ö' })).toString('hex'), '7b22e282ac223a22c3b6227d')
})

t.test('rejects values with no JSON representation, naming the path', async (t) => {
  const cyclic: Record<string, unknown> = { a: 1 }
  cyclic.self = cyclic
  const cyclicArray: unknown[] = [1]
  cyclicArray.push({ back: cyclicArray })
  const cases: [string, unknown, RegExp][] = [
    ['undefined top level', undefined, /^\$: undefined/],
    ['undefined member', { a: { b: undefined } }, /^\$\.a\.b: undefined/],
    ['undefined element', [1, undefined], /^\$\[1\]: undefined/],
    ['bigint', { n: 10n }, /^\$\.n: bigint/],
    ['function', { f: () => 1 }, /^\$\.f: function/],
    ['symbol', [Symbol('s')], /^\$\[0\]: symbol/],
    ['NaN', { x: [0, NaN] }, /^\$\.x\[1\]: NaN/],
    ['Infinity', { x: -Infinity }, /^\$\.x: -Infinity/],
    ['cyclic object', cyclic, /^\$\.self: cyclic/],
    ['cyclic array', cyclicArray, /^\$\[1\]\.back: cyclic/],
    ['Date', { d: new Date(0) }, /^\$\.d: Date is not a plain object/],
    ['Map', { m: new Map() }, /^\$\.m: Map is not a plain object/],
    ['Uint8Array', [new Uint8Array(2)], /^\$\[0\]: Uint8Array is not a plain object/],
    ['object with a foreign prototype', { o: Object.create(Object.create(null) as object) as object }, /^\$\.o: non-plain object is not a plain object/],
    // eslint-disable-next-line no-sparse-arrays -- the hole is the input under test
    ['sparse array', { s: [1, , 3] }, /^\$\.s\[1\]: hole/],
    ['lone high surrogate', { s: 'a\ud800' }, /^\$\.s: .*lone surrogate/],
    ['lone low surrogate in a key', { ['\udc00x']: 1 }, /^\$\["\\udc00x"\]: .*lone surrogate/],
    ['odd key path', { 'a b': { c: NaN } }, /^\$\["a b"\]\.c: NaN/],
  ]
  for (const [name, value, message] of cases) t.throws(() => canonicalJson(value), { name: 'TypeError', message }, name)
})

t.test('rejects nesting deeper than 1000 levels instead of overflowing the stack', async (t) => {
  let deep: unknown = 1
  for (let i = 0; i < 1001; i++) deep = [deep]
  t.throws(() => canonicalJson(deep), { name: 'TypeError', message: /nesting deeper than 1000/ })
  let ok: unknown = 1
  for (let i = 0; i < 999; i++) ok = [ok]
  t.equal(canonicalJson(ok).length, 999 * 2 + 1)
})

t.test('the fast path and the careful path write the same text', async (t) => {
  // canonicalJson takes a native fast path and hands anything unusual to the careful writer; the
  // values below sit on the border between the two (index-like names, __proto__, null prototypes).
  const proto = JSON.parse('{"__proto__": {"x": 1}, "a": 2}') as unknown
  t.equal(canonicalJson(proto), '{"__proto__":{"x":1},"a":2}', 'an own __proto__ member is a member')
  t.equal(canonicalJson({ 9: 'a', 10: 'b', b: 1, 1e3: 2 }), '{"10":"b","1000":2,"9":"a","b":1}', 'index-like names sort as strings')
  t.equal(canonicalJson({ '07': 1, 7: 2 }), '{"07":1,"7":2}')
  const bare = Object.assign(Object.create(null) as object, { z: 1, y: [true, null, -0, 1e21, 'é'] })
  t.equal(canonicalJson(bare), '{"y":[true,null,0,1e+21,"é"],"z":1}')
  t.equal(canonicalJson({ s: '\u2028\u0007"\\' }), '{"s":"\u2028\\u0007\\"\\\\"}')
  const shared = { k: 1 }
  t.equal(canonicalJson({ a: shared, b: shared }), '{"a":{"k":1},"b":{"k":1}}', 'a shared (not cyclic) value is fine')
  const cyclic: Record<string, unknown> = {}
  cyclic.self = cyclic
  t.throws(() => canonicalJson(cyclic), { name: 'TypeError', message: /^\$\.self: cyclic structure/ })
})
