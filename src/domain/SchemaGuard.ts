/**
 * A guard compiled from a schema's AST: `true` exactly when decoding the value would succeed and give back an equal
 * value, checked without allocating. It exists for replays, which decode every stored event: Effect's decoder builds
 * a new value and an `Either` (and, for every refinement such as `Int` or `positive`, closures and `Option`s) at every
 * node, and in a replay that allocation, and the garbage collection after it, cost more than reading the rows.
 *
 * It covers the shapes that decode to themselves: strings, numbers, booleans, literals, refinements of those, arrays
 * and tuples, structs without index signatures and unions whose members cannot overlap. Anything else (a
 * transformation, a default, a class, a record, a suspended schema) compiles to `undefined`, and the caller decodes
 * with the schema as before. A value with keys its struct does not name fails the guard, because the decoder would
 * drop them; so does everything that the decoder would refuse, whose error only the decoder can give.
 *
 * Where the guard passes, the caller uses the value itself instead of a decoded copy, so the result shares nested
 * arrays and objects with the input.
 */
import { SchemaAST as AST, Option } from "effect"

export type Guard = (value: unknown) => boolean

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** A struct's required literal property, by name, if it has one: what tells union members apart. */
const literalTags = (ast: AST.TypeLiteral): ReadonlyMap<string, AST.LiteralValue> =>
  new Map(
    ast.propertySignatures.flatMap((signature) =>
      typeof signature.name === "string" && !signature.isOptional && AST.isLiteral(signature.type)
        ? [[signature.name, signature.type.literal] as const]
        : []
    )
  )

/** True when no value can be accepted by two of these structs: they share a literal property with distinct values. */
const discriminated = (members: ReadonlyArray<AST.TypeLiteral>): boolean => {
  if (members.length <= 1) return true
  const tags = members.map(literalTags)
  const [first, ...others] = tags
  if (first === undefined) return true
  for (const name of first.keys()) {
    const values = tags.map((found) => found.get(name))
    if (others.every((found) => found.has(name)) && new Set(values).size === values.length) return true
  }
  return false
}

/** Members whose decoded value is the input itself whatever they accept: no struct that could drop keys. */
const isScalar = (ast: AST.AST): boolean => {
  switch (ast._tag) {
    case "StringKeyword":
    case "NumberKeyword":
    case "BooleanKeyword":
    case "Literal":
      return true
    case "Refinement":
      return isScalar(ast.from)
    default:
      return false
  }
}

const compileStruct = (ast: AST.TypeLiteral): Guard | undefined => {
  if (ast.indexSignatures.length > 0) return undefined
  const fields: Array<readonly [string, boolean, Guard]> = []
  for (const signature of ast.propertySignatures) {
    const guard = compile(signature.type)
    if (guard === undefined || typeof signature.name !== "string") return undefined
    fields.push([signature.name, signature.isOptional, guard])
  }
  return (value) => {
    if (!isRecord(value)) return false
    let present = 0
    for (const [name, isOptional, guard] of fields) {
      if (Object.hasOwn(value, name)) {
        if (!guard(value[name])) return false
        present++
      } else if (!isOptional) {
        return false
      }
    }
    // No other keys: the decoder would drop them, so the value would not decode to itself.
    let keys = 0
    for (const key in value) if (Object.hasOwn(value, key)) keys++
    return keys === present && Object.getPrototypeOf(value) === Object.prototype
  }
}

const compileTuple = (ast: AST.TupleType): Guard | undefined => {
  if (ast.rest.length > 1 || ast.elements.some((element) => element.isOptional)) return undefined
  const elements: Array<Guard> = []
  for (const element of ast.elements) {
    const guard = compile(element.type)
    if (guard === undefined) return undefined
    elements.push(guard)
  }
  const restType = ast.rest[0]
  const rest = restType === undefined ? undefined : compile(restType.type)
  if (restType !== undefined && rest === undefined) return undefined
  return (value) => {
    if (!Array.isArray(value)) return false
    if (rest === undefined ? value.length !== elements.length : value.length < elements.length) return false
    for (let index = 0; index < value.length; index++) {
      const guard = elements[index] ?? rest
      if (guard === undefined || !guard(value[index])) return false
    }
    return true
  }
}

const compileUnion = (ast: AST.Union): Guard | undefined => {
  const structs = ast.types.filter(AST.isTypeLiteral)
  const others = ast.types.filter((member) => !AST.isTypeLiteral(member))
  // The decoder keeps the first member that accepts the value; only where no two can accept the same value is the
  // result the value itself.
  if (!others.every(isScalar) || !discriminated(structs)) return undefined
  const guards: Array<Guard> = []
  for (const member of ast.types) {
    const guard = compile(member)
    if (guard === undefined) return undefined
    guards.push(guard)
  }
  return (value) => guards.some((guard) => guard(value))
}

/** The guard for `ast`, or `undefined` when the schema uses something the guard does not cover. */
export const compile = (ast: AST.AST): Guard | undefined => {
  switch (ast._tag) {
    case "StringKeyword":
      return (value) => typeof value === "string"
    case "NumberKeyword":
      return (value) => typeof value === "number"
    case "BooleanKeyword":
      return (value) => typeof value === "boolean"
    case "Literal": {
      const literal = ast.literal
      return typeof literal === "bigint" ? undefined : (value) => value === literal
    }
    case "Refinement": {
      const from = compile(ast.from)
      if (from === undefined) return undefined
      return (value) => from(value) && Option.isNone(ast.filter(value, AST.defaultParseOption, ast))
    }
    case "TupleType":
      return compileTuple(ast)
    case "TypeLiteral":
      return compileStruct(ast)
    case "Union":
      return compileUnion(ast)
    default:
      return undefined
  }
}

// --- Text every store keeps as it is --------------------------------------------------------------------------------

/**
 * What makes `text` unstorable, or `undefined` when it is fine: a NUL character (PostgreSQL refuses U+0000 in text and
 * JSON) or a lone UTF-16 surrogate (which SQLite would silently store as U+FFFD, and JSON cannot carry faithfully).
 * Such text is bad input, refused at the edge where it arrives (the command line, files, standard input, answers,
 * HTTP bodies, a model's output) with one clear line, so no store sees it and every store behaves alike.
 */
const surrogate = /[\uD800-\uDFFF]/

export const unstorableText = (text: string): string | undefined => {
  const nul = text.indexOf("\u0000")
  if (nul >= 0) return `a NUL character (U+0000) at character ${nul + 1}`
  if (!surrogate.test(text)) return undefined
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index)
    if (code >= 0xd800 && code <= 0xdbff) {
      const next = text.charCodeAt(index + 1)
      if (next >= 0xdc00 && next <= 0xdfff) {
        index++
        continue
      }
    } else if (code < 0xdc00 || code > 0xdfff) {
      continue
    }
    return `a lone UTF-16 surrogate (U+${code.toString(16).toUpperCase()}) at character ${index + 1}`
  }
  return undefined
}

/** Where in a JSON-like value (strings, arrays, plain objects, their keys) unstorable text is, and what it is. */
export const findUnstorableText = (
  value: unknown,
  path: ReadonlyArray<string | number> = []
): { readonly path: string; readonly problem: string } | undefined => {
  const where = () => path.map((part) => (typeof part === "number" ? `[${part}]` : `.${part}`)).join("")
  if (typeof value === "string") {
    const problem = unstorableText(value)
    return problem === undefined ? undefined : { path: where(), problem }
  }
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      const found = findUnstorableText(value[index], [...path, index])
      if (found !== undefined) return found
    }
    return undefined
  }
  if (typeof value === "object" && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      const keyProblem = unstorableText(key)
      if (keyProblem !== undefined) return { path: where(), problem: `a key with ${keyProblem}` }
      const found = findUnstorableText(item, [...path, key])
      if (found !== undefined) return found
    }
  }
  return undefined
}
