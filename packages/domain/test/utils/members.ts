import * as Schema from "effect/Schema"

export type AnySchema = Schema.Schema<any, any>

/** The members of a tagged union, flattened (unions of unions), with their tags. */
export const membersOf = (schema: AnySchema): Array<{ tag: string; schema: AnySchema }> => {
  const out: Array<{ tag: string; schema: AnySchema }> = []
  const walk = (ast: Schema.Schema.Any["ast"]) => {
    if (ast._tag === "Union") return ast.types.forEach(walk)
    const literal = ast._tag === "Transformation" ? ast.to : ast
    if (literal._tag !== "TypeLiteral") throw new Error(`not a tagged struct: ${ast._tag}`)
    const tag = literal.propertySignatures.find((p) => p.name === "_tag")
    if (tag?.type._tag !== "Literal") throw new Error("member without a literal _tag")
    out.push({ tag: String(tag.type.literal), schema: Schema.make(ast) })
  }
  walk(schema.ast)
  return out
}
