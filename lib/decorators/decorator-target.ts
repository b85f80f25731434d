/** The class a method decorator was applied to, by name (static methods get the class itself). */
export function describeTarget(target: object): string {
  return typeof target === 'function' ? target.name : target.constructor.name;
}
