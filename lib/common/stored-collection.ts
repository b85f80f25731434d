// What a decorator records as its collection, shared by the decorators and the option validators.

/**
 * A `@nestjs/mongoose` `@Schema()` class (or any class) whose instances are the documents: the
 * collection is resolved from it at startup, the way Mongoose names the model's collection.
 */
export type SchemaClass<T = any> = abstract new (...args: any[]) => T;

/** How messages name a stored collection: `orders`, or the class name. */
export function describeCollection(stored: string | SchemaClass): string {
  return typeof stored === 'string' ? stored : stored.name || '(anonymous class)';
}
