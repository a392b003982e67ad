/**
 * The lexer of the server sources (src/sources/sql-text.ts), without a server: `:name` markers
 * translated per dialect and never inside literals, quoted identifiers or comments; the words a
 * read-only check looks at; what it refuses.
 */
import t from 'tap'
import { assertParamsAllowed, assertReadOnlyText, bindValues, translateSql } from '../../src/sources/sql-text.js'

t.test('postgres: named parameters become $n, one number per name', async (t) => {
  const r = translateSql('SELECT a FROM t WHERE id = :id AND (b = :b OR :b IS NULL)', 'postgres', 'l')
  t.equal(r.text, 'SELECT a FROM t WHERE id = $1 AND (b = $2 OR $2 IS NULL)')
  t.same(r.names, ['id', 'b'])
  t.same(r.order, ['id', 'b'])
  t.same(bindValues('postgres', r, { id: 'x', b: null, extra: 1 }), ['x', null], 'extra parameters are ignored')
})

t.test('mysql: named parameters become ?, a name used twice bound twice', async (t) => {
  const r = translateSql('SELECT a FROM t WHERE id = :id AND (b = :b OR :b IS NULL)', 'mysql', 'l')
  t.equal(r.text, 'SELECT a FROM t WHERE id = ? AND (b = ? OR ? IS NULL)')
  t.same(r.order, ['id', 'b', 'b'])
  t.same(bindValues('mysql', r, { id: 'x', b: 2 }), ['x', 2, 2])
  t.throws(() => bindValues('mysql', r, { id: 'x' }), { code: 'VN_ERR_SOURCE_QUERY', detail: 'mysql: missing named parameter "b"' })
})

t.test('a :name inside a literal, identifier or comment is text', async (t) => {
  const pgCases: Array<[string, string]> = [
    ["SELECT ':x' AS a WHERE id = :id", "SELECT ':x' AS a WHERE id = $1"],
    ["SELECT 'it''s :x' AS a WHERE id = :id", "SELECT 'it''s :x' AS a WHERE id = $1"],
    ["SELECT E'it\\'s :x' AS a WHERE id = :id", "SELECT E'it\\'s :x' AS a WHERE id = $1"],
    ['SELECT $$ :x ; $$ AS a, $q$ :y $q$ AS b WHERE id = :id', 'SELECT $$ :x ; $$ AS a, $q$ :y $q$ AS b WHERE id = $1'],
    ['SELECT a AS ":x" WHERE id = :id', 'SELECT a AS ":x" WHERE id = $1'],
    ['SELECT a -- :x ;\nWHERE id = :id', 'SELECT a -- :x ;\nWHERE id = $1'],
    ['SELECT a /* :x /* :y */ ; */ WHERE id = :id', 'SELECT a /* :x /* :y */ ; */ WHERE id = $1'],
    ['SELECT n::text AS a WHERE id = :id::text', 'SELECT n::text AS a WHERE id = $1::text'],
    ['SELECT arr[1:2] AS a WHERE id = :id', 'SELECT arr[1:2] AS a WHERE id = $1'],
  ]
  for (const [sql, text] of pgCases) {
    const r = translateSql(sql, 'postgres', 'l')
    t.equal(r.text, text, sql)
    t.same(r.names, ['id'], sql)
    t.equal(r.problem, undefined, sql)
  }
  const myCases: Array<[string, string]> = [
    ["SELECT ':x' AS a WHERE id = :id", "SELECT ':x' AS a WHERE id = ?"],
    ["SELECT 'it\\'s :x' AS a WHERE id = :id", "SELECT 'it\\'s :x' AS a WHERE id = ?"],
    ['SELECT ":x;" AS a WHERE id = :id', 'SELECT ":x;" AS a WHERE id = ?'],
    ['SELECT a AS `:x` WHERE id = :id', 'SELECT a AS `:x` WHERE id = ?'],
    ['SELECT a # :x ;\nWHERE id = :id', 'SELECT a # :x ;\nWHERE id = ?'],
    ['SELECT a -- :x ;\nWHERE id = :id', 'SELECT a -- :x ;\nWHERE id = ?'],
    ['SELECT a /* :x ; */ WHERE id = :id', 'SELECT a /* :x ; */ WHERE id = ?'],
  ]
  for (const [sql, text] of myCases) {
    const r = translateSql(sql, 'mysql', 'l')
    t.equal(r.text, text, sql)
    t.same(r.names, ['id'], sql)
    t.equal(r.problem, undefined, sql)
  }
  // MySQL: `--` starts a comment only before a blank; `1--1` is arithmetic
  t.same(translateSql('SELECT 1--1 AS a WHERE id = :id', 'mysql', 'l').names, ['id'])
})

t.test('words outside literals and comments decide the read-only check', async (t) => {
  const ok = (sql: string, d: 'postgres' | 'mysql' = 'postgres'): void => assertReadOnlyText(sql, translateSql(sql, d, 'svc.l'), 'svc.l')
  const refused = (sql: string, re: RegExp, d: 'postgres' | 'mysql' = 'postgres'): void => {
    t.throws(() => ok(sql, d), { code: 'VN_ERR_SOURCE_NOT_READONLY', detail: re }, sql)
  }
  ok("SELECT 'DELETE' AS a, \"update\" AS b FROM t -- INSERT INTO\n WHERE id = :id")
  ok('WITH x AS (SELECT 1 AS a) SELECT a FROM x')
  ok('  (SELECT 1 AS a)')
  ok('VALUES (1)')
  ok('SELECT replace(name, :a, :b) AS n FROM t', 'mysql')
  ok('SELECT 1 AS a;')
  refused('DELETE FROM t', /it must be one SELECT, WITH, VALUES or TABLE query/)
  refused('WITH d AS (DELETE FROM t RETURNING id) SELECT id FROM d', /contains DELETE/)
  refused('SELECT id INTO newt FROM t', /contains INTO/)
  refused('SELECT id FROM t FOR UPDATE', /contains UPDATE/)
  refused('SELECT id FROM t FOR SHARE', /contains SHARE/)
  refused('SELECT id FROM t LOCK IN SHARE MODE', /contains LOCK/, 'mysql')
  refused('SELECT 1 AS a; DELETE FROM t', /more than one statement/)
  refused("SELECT ';' AS a; SELECT 2", /more than one statement/)
  refused('SET x = 1', /it must be one/)
  refused('', /empty SQL/)
  t.throws(() => translateSql("SELECT 'open", 'postgres', 'svc.l'), { code: 'VN_ERR_SOURCE_NOT_READONLY', detail: 'svc.l: unterminated quoted literal or identifier' })
  t.throws(() => translateSql('SELECT 1 /* open', 'postgres', 'svc.l'), { code: 'VN_ERR_SOURCE_NOT_READONLY', detail: 'svc.l: unterminated comment' })
  t.throws(() => translateSql('SELECT $a$ open', 'postgres', 'svc.l'), { code: 'VN_ERR_SOURCE_NOT_READONLY', detail: 'svc.l: unterminated dollar-quoted literal' })
  t.throws(() => translateSql('SELECT 1 /*! , 2 */', 'mysql', 'svc.l'), { code: 'VN_ERR_SOURCE_NOT_READONLY', detail: 'svc.l: executable comments (/*! ... */) are not accepted' })
  t.throws(() => translateSql('SELECT 1 /*M! , 2 */', 'mysql', 'svc.l'), { code: 'VN_ERR_SOURCE_NOT_READONLY' })
})

t.test('positional parameters and parameters outside the allowed list are config errors', async (t) => {
  const pgPos = translateSql('SELECT a FROM t WHERE id = $1', 'postgres', 'l')
  t.match(pgPos.problem, /positional parameters/)
  t.throws(() => assertParamsAllowed(pgPos, 'svc.l', ['id']), { code: 'VN_ERR_CONFIG_INVALID', detail: 'svc.l: positional parameters ($1) are not accepted: name them (:id)' })
  t.throws(() => bindValues('postgres', pgPos, {}), { code: 'VN_ERR_SOURCE_QUERY' })
  const myPos = translateSql('SELECT a FROM t WHERE id = ?', 'mysql', 'l')
  t.throws(() => assertParamsAllowed(myPos, 'svc.l', ['id']), { code: 'VN_ERR_CONFIG_INVALID', detail: 'svc.l: positional parameters (?) are not accepted: name them (:id)' })
  t.equal(translateSql("SELECT '?' AS q", 'mysql', 'l').problem, undefined, 'a ? in a literal is text')
  t.equal(translateSql('SELECT a ? b AS q', 'postgres', 'l').problem, undefined, 'PostgreSQL ? is an operator (jsonb)')
  const r = translateSql('SELECT a FROM t WHERE id = :id AND y = :year', 'postgres', 'l')
  assertParamsAllowed(r, 'svc.l', ['id', 'year', 'name'])
  t.throws(() => assertParamsAllowed(r, 'svc.l', ['id']), { code: 'VN_ERR_CONFIG_INVALID', detail: 'svc.l: Missing named parameter "year" (bound parameters: id)' })
  t.throws(() => assertParamsAllowed(r, 'svc.l', []), { code: 'VN_ERR_CONFIG_INVALID', detail: 'svc.l: Missing named parameter "id" (bound parameters: none)' })
})
