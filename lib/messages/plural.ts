/** `one` for a count of 1, else `many` (by default `one` + s): `3 ${plural(3, 'document')}`. */
export function plural(count: number, one: string, many = `${one}s`): string {
  return count === 1 ? one : many;
}
