import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Either, FastCheck as fc, Schema } from "effect"
import * as SchemaGuard from "../../src/domain/SchemaGuard.js"

const Tagged = Schema.Union(
  Schema.TaggedStruct("A", {
    n: Schema.Int.pipe(Schema.positive()),
    label: Schema.optionalWith(Schema.String, { exact: true })
  }),
  Schema.TaggedStruct("B", {
    items: Schema.Array(Schema.Literal("x", "y")),
    pair: Schema.Tuple(Schema.String, Schema.Boolean)
  })
)
const Covered = Schema.Struct({
  tagged: Schema.Array(Tagged),
  maybe: Schema.NullOr(Schema.NonEmptyString),
  rest: Schema.Tuple([Schema.Number], Schema.String)
})

const guard = SchemaGuard.compile(Covered.ast)
const decode = Schema.decodeUnknownEither(Covered)

/** Valid values, valid values with one part broken, and arbitrary JSON. */
const candidates = fc.oneof(
  Arbitrary.make(Covered).map((value): unknown => JSON.parse(JSON.stringify(value))),
  Arbitrary.make(Covered).chain((value) =>
    fc.constantFrom<unknown>(null, 0, -3, 2.5, "", "z", [], {}, { _tag: "C" }).map((broken) => {
      const copy = JSON.parse(JSON.stringify(value)) as Record<string, unknown>
      const keys = Object.keys(copy)
      const key = keys[Math.abs(JSON.stringify(broken).length) % keys.length] ?? "tagged"
      return { ...copy, [key]: broken, ...(broken === 0 ? { extra: true } : {}) } as unknown
    })
  ),
  fc.jsonValue()
)

describe("SchemaGuard", () => {
  it.prop(
    "passes exactly the values that decode to themselves",
    [candidates],
    ([value]) => {
      expect(guard).toBeDefined()
      const decoded = decode(value)
      const decodesToItself = Either.isRight(decoded) && JSON.stringify(decoded.right) === JSON.stringify(value)
      expect(guard?.(value)).toBe(decodesToItself)
    },
    { fastCheck: { numRuns: 1_000 } }
  )

  it("leaves to the schema what it cannot judge without decoding", () => {
    // Transformations and defaults change the value; records and classes are not covered.
    expect(SchemaGuard.compile(Schema.NumberFromString.ast)).toBeUndefined()
    expect(
      SchemaGuard.compile(Schema.Struct({ a: Schema.optionalWith(Schema.Number, { default: () => 1 }) }).ast)
    ).toBeUndefined()
    expect(SchemaGuard.compile(Schema.Record({ key: Schema.String, value: Schema.Number }).ast)).toBeUndefined()
    // Overlapping structs: the decoder keeps the first that accepts, dropping the keys only the second names.
    const overlapping = Schema.Union(
      Schema.Struct({ a: Schema.Number }),
      Schema.Struct({ a: Schema.Number, b: Schema.Number })
    )
    expect(SchemaGuard.compile(overlapping.ast)).toBeUndefined()
    expect(Schema.decodeUnknownSync(overlapping)({ a: 1, b: 2 })).toStrictEqual({ a: 1 })
  })

  it("refuses keys the struct does not name, which decoding would drop", () => {
    const struct = SchemaGuard.compile(Schema.Struct({ a: Schema.Number }).ast)
    expect(struct?.({ a: 1 })).toBe(true)
    expect(struct?.({ a: 1, b: 2 })).toBe(false)
    expect(struct?.(Object.assign(Object.create({ inherited: 1 }), { a: 1 }))).toBe(false)
  })
})
