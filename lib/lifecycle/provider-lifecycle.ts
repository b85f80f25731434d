/**
 * Our module is global, so Nest bootstraps it before the app's modules and destroys it after
 * them. Handlers must only run between their providers' bootstrap and teardown, so we follow
 * the lifecycle hooks of each handler's provider and of everything it injects (transitively):
 * dispatch waits for their `onApplicationBootstrap`, and their first teardown hook
 * (`onModuleDestroy`, `beforeApplicationShutdown`, `onApplicationShutdown`) waits for the
 * streams that use them to drain.
 */

/** The part of Nest's `InstanceWrapper` we read (stable in Nest 11 and 12). */
export interface ProviderWrapper {
  readonly instance: unknown;
  readonly isTransient?: boolean;
  isDependencyTreeStatic(): boolean;
  getCtorMetadata?(): Array<ProviderWrapper | undefined> | undefined;
  getPropertiesMetadata?(): Array<{ wrapper?: ProviderWrapper }> | undefined;
}

type Hooked = Record<string, unknown>;

const TEARDOWN_HOOKS = [
  'onModuleDestroy',
  'beforeApplicationShutdown',
  'onApplicationShutdown',
] as const;

/** Patches hooks once per instance, however many streams depend on it. */
export class ProviderLifecycle {
  private readonly ready = new Map<object, Promise<void>>();
  private readonly drains = new Map<object, Set<() => Promise<void>>>();

  /** Resolves once each owner, and every provider it injects, finished `onApplicationBootstrap`. */
  bootstrapped(owners: ProviderWrapper[]): Promise<void> {
    return Promise.all(this.instancesOf(owners).map((instance) => this.readyOf(instance))).then(
      () => undefined,
    );
  }

  /** Runs `drain` before the first teardown hook of any owner or provider it injects. */
  drainBeforeTeardown(owners: ProviderWrapper[], drain: () => Promise<void>): void {
    for (const instance of this.instancesOf(owners)) {
      let drains = this.drains.get(instance);
      if (!drains) {
        drains = new Set();
        this.drains.set(instance, drains);
        this.patchTeardown(instance as Hooked, drains);
      }
      drains.add(drain);
    }
  }

  private readyOf(instance: object): Promise<void> {
    let ready = this.ready.get(instance);
    if (!ready) {
      ready = this.patchBootstrap(instance as Hooked);
      this.ready.set(instance, ready);
    }
    return ready;
  }

  private patchBootstrap(instance: Hooked): Promise<void> {
    const original = instance.onApplicationBootstrap;
    if (typeof original !== 'function') return Promise.resolve();
    const own = Object.prototype.hasOwnProperty.call(instance, 'onApplicationBootstrap');
    return new Promise((resolve) => {
      instance.onApplicationBootstrap = async function (this: unknown, ...args: unknown[]) {
        // Put the hook back as it was (an own property, e.g. a class-field arrow function, stays one).
        if (own) instance.onApplicationBootstrap = original;
        else delete instance.onApplicationBootstrap;
        const result = await original.apply(this, args);
        // Only a provider that bootstrapped gets events: if the hook throws, app.init() fails and the gate stays shut.
        resolve();
        return result;
      };
    });
  }

  private patchTeardown(instance: Hooked, drains: Set<() => Promise<void>>): void {
    for (const hook of TEARDOWN_HOOKS) {
      const original = instance[hook];
      if (typeof original !== 'function') continue;
      instance[hook] = async function (this: unknown, ...args: unknown[]) {
        // Never let our drain fail the app's hook (Nest 11 aborts the whole shutdown on a rejection).
        await Promise.all([...drains].map((drain) => drain().catch(() => undefined)));
        return original.apply(this, args);
      };
    }
  }

  /** The owners' instances and those of their dependencies, transitively; static singletons only. */
  private instancesOf(owners: ProviderWrapper[]): object[] {
    const seen = new Set<ProviderWrapper>();
    const instances: object[] = [];
    const visit = (wrapper: ProviderWrapper | undefined) => {
      if (!wrapper || seen.has(wrapper)) return;
      seen.add(wrapper);
      const { instance } = wrapper;
      if (
        !wrapper.isTransient &&
        wrapper.isDependencyTreeStatic() &&
        typeof instance === 'object' &&
        instance !== null
      )
        instances.push(instance);
      wrapper.getCtorMetadata?.()?.forEach(visit);
      wrapper.getPropertiesMetadata?.()?.forEach((property) => visit(property?.wrapper));
    };
    owners.forEach(visit);
    return instances;
  }
}
