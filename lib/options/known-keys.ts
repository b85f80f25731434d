/**
 * Key lists are written as `{ name: true, … } satisfies Record<keyof Options, true>`, so the
 * compiler fails on a key the interface gained but the list forgot. Messages list them in the
 * order written.
 */
export function keyNames<K extends string>(known: Record<K, true>): K[] {
  return Object.keys(known) as K[];
}

/** The keys of `value` that `known` does not list: a misspelled one would otherwise be ignored. */
export function unknownKeys(value: object, known: Record<string, true>): string[] {
  return Object.keys(value).filter((key) => !Object.hasOwn(known, key));
}
