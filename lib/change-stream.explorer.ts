import { Injectable, Logger, Scope } from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { ON_CHANGE_BATCH_METADATA, ON_CHANGE_METADATA } from './change-stream.constants.js';
import { messages } from './change-stream.messages.js';
import type { SchemaClass } from './decorators/collection-source.js';
import type { OnChangeBatchMetadata } from './decorators/on-change-batch.decorator.js';
import type { OnChangeMetadata } from './decorators/on-change.decorator.js';
import type { ChangeHandler } from './stream/change-handler.js';

/**
 * The collection of a handler declared with a `@Schema()` class or a model, on its connection:
 * resolved at startup, where the connection is known; throws a `ChangeStreamConfigError`.
 */
export type ModelCollectionResolver = (
  model: SchemaClass,
  connectionName: string,
  handler: string,
) => string;

/** Finds every `@OnChange` method on the application's singleton providers. */
@Injectable()
export class ChangeStreamExplorer {
  private readonly logger = new Logger(ChangeStreamExplorer.name);

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
  ) {}

  /**
   * `defaultConnection` is the connection name for handlers that name none; `resolveModel` names
   * the collection of handlers declared with a class or model.
   */
  explore(defaultConnection: string, resolveModel: ModelCollectionResolver): ChangeHandler[] {
    this.warnAboutControllers();
    const handlers: ChangeHandler[] = [];
    for (const wrapper of this.discovery.getProviders()) {
      if (wrapper.isAlias) continue;
      const isStatic = wrapper.isDependencyTreeStatic();
      // Static providers: the instance's own prototype, so factory and value providers count too.
      const instance = isStatic
        ? (wrapper.instance as Record<string, (...args: unknown[]) => unknown> | undefined)
        : undefined;
      const prototype =
        instance && typeof instance === 'object'
          ? Object.getPrototypeOf(instance)
          : classPrototype(wrapper.metatype);
      if (!prototype || prototype === Object.prototype) continue;
      const decorated = this.scanner
        .getAllMethodNames(prototype)
        .map((method) => ({ method, entries: this.read(prototype, method) }))
        .filter(({ entries }) => entries.length > 0);
      if (decorated.length === 0) continue;
      const className = (prototype.constructor as { name?: string })?.name || String(wrapper.name);
      if (!isStatic) {
        this.logger.warn(messages.requestScoped(className, requestScopeCause(wrapper)));
        continue;
      }
      if (!instance) continue;
      for (const { method, entries } of decorated) {
        for (const { collection, database, options, batch } of entries) {
          const name = `${className}.${method}`;
          const connectionName = options.connectionName ?? defaultConnection;
          handlers.push({
            ...(batch && { batch }),
            name,
            collection:
              typeof collection === 'string'
                ? collection
                : resolveModel(collection, connectionName, name),
            ...(database !== undefined && { database }),
            connectionName,
            options,
            invoke: (change, context) => instance[method](change, context),
            owner: wrapper,
          });
        }
      }
    }
    return handlers;
  }

  /** Controllers are not scanned for handlers; say so instead of ignoring a decorated method. */
  private warnAboutControllers(): void {
    for (const wrapper of this.discovery.getControllers()) {
      const prototype = classPrototype(wrapper.metatype);
      if (
        prototype &&
        this.scanner
          .getAllMethodNames(prototype)
          .some((method) => this.read(prototype, method).length > 0)
      ) {
        this.logger.warn(messages.handlerOnController(String(wrapper.name)));
      }
    }
  }

  /** The providers registered under `token` (to follow their dependencies' lifecycle). */
  providersOf(token: unknown): InstanceWrapper[] {
    return this.discovery
      .getProviders()
      .filter((wrapper) => wrapper.token === token && !wrapper.isAlias);
  }

  /** The method's `@OnChange` entries, then its `@OnChangeBatch` ones (with `batch`). */
  private read(
    prototype: object,
    method: string,
  ): Array<OnChangeMetadata & Partial<Pick<OnChangeBatchMetadata, 'batch'>>> {
    const fn = (prototype as Record<string, unknown>)[method];
    if (typeof fn !== 'function') return [];
    return [
      ...(this.reflector.get<OnChangeMetadata[]>(ON_CHANGE_METADATA, fn) ?? []),
      ...(this.reflector.get<OnChangeBatchMetadata[]>(ON_CHANGE_BATCH_METADATA, fn) ?? []),
    ];
  }
}

type InstanceWrapper = ReturnType<DiscoveryService['getProviders']>[number];

function classPrototype(metatype: unknown): object | undefined {
  return typeof metatype === 'function'
    ? (metatype as { prototype?: object }).prototype
    : undefined;
}

/** Why a provider is not a singleton: its own scope, or the dependency chain that made it request-scoped. */
function requestScopeCause(wrapper: InstanceWrapper, path: string[] = []): string {
  if (wrapper.scope === Scope.REQUEST) {
    return path.length === 0
      ? 'declared with scope: Scope.REQUEST'
      : `it injects ${path.join(' → ')}, which is request-scoped`;
  }
  const dependencies = [
    ...(wrapper.getCtorMetadata?.() ?? []),
    ...(wrapper.getPropertiesMetadata?.() ?? []).map((p) => p?.wrapper),
  ];
  for (const dependency of dependencies) {
    if (
      !dependency ||
      dependency.isDependencyTreeStatic() ||
      path.includes(String(dependency.name))
    )
      continue;
    return requestScopeCause(dependency, [...path, String(dependency.name)]);
  }
  return path.length === 0 ? 'its dependency tree is not static' : `it injects ${path.join(' → ')}`;
}
