import { ON_CHANGE_METADATA } from '../change-stream.constants.js';
import { ChangeStreamConfigError } from '../change-stream.errors.js';
import type { OnChangeOptions } from '../interfaces/on-change-options.interface.js';

/** What `@OnChange` records on a method; one entry per decorator on it. */
export interface OnChangeMetadata {
  collection: string;
  options: OnChangeOptions;
}

/**
 * Calls the decorated method with every change of `collection`
 * (`(change: ChangeStreamDocument<T>, context: ChangeContext) => Promise<void> | void`).
 * Stack several on one method to watch several collections.
 */
export function OnChange(collection: string, options: OnChangeOptions = {}): MethodDecorator {
  return (target, propertyKey, descriptor) => {
    const where = `${describeTarget(target)}.${String(propertyKey)}`;
    if (typeof descriptor?.value !== 'function') {
      throw new ChangeStreamConfigError(`@OnChange('${collection}') on ${where}: it decorates methods only.`);
    }
    if (typeof collection !== 'string' || collection.trim() === '') {
      throw new ChangeStreamConfigError(`@OnChange on ${where}: the collection name must be a non-empty string.`);
    }
    const method = descriptor.value as object;
    const existing: OnChangeMetadata[] = Reflect.getMetadata(ON_CHANGE_METADATA, method) ?? [];
    Reflect.defineMetadata(ON_CHANGE_METADATA, [...existing, { collection, options }], method);
    return descriptor;
  };
}

function describeTarget(target: object): string {
  return typeof target === 'function' ? target.name : target.constructor.name;
}
