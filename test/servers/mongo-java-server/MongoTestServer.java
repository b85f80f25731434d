import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.AbstractCursor;
import de.bwaldvogel.mongo.backend.Utils;
import de.bwaldvogel.mongo.backend.aggregation.Aggregation;
import de.bwaldvogel.mongo.backend.CollectionOptions;
import de.bwaldvogel.mongo.backend.Cursor;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import de.bwaldvogel.mongo.backend.memory.MemoryCollection;
import de.bwaldvogel.mongo.backend.memory.MemoryDatabase;
import de.bwaldvogel.mongo.bson.BsonTimestamp;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.exception.MongoServerError;
import de.bwaldvogel.mongo.oplog.CollectionBackedOplog;
import de.bwaldvogel.mongo.oplog.Oplog;
import de.bwaldvogel.mongo.oplog.OplogCursor;
import de.bwaldvogel.mongo.oplog.OplogPosition;
import io.netty.channel.Channel;
import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.function.Predicate;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * Usage: java -cp CLASSPATH MongoTestServer.java PORT. Exits when its standard input closes.
 *
 * mongo-java-server 1.47 with one addition: database-level (`db.watch()`) and deployment-level
 * (`client.watch()`, on admin with `allChangesForCluster`) change streams, which it lacks. They
 * read the server's own oplog (`local.oplog.rs`) by its positions, so tokens (`{ _data: hex }`)
 * are interchangeable with its collection-level streams. Tokens at every level are mongod-shaped
 * (see ResumeTokens), so a client can read their cluster time. Their events are shaped as mongod's: `ns`, `wallTime`,
 * `updateDescription`, `replace`, `drop`; `fullDocument` on updates only with `updateLookup`;
 * only mongod's per-event stages ($match, $project, ...) after `$changeStream`.
 * Collection-level streams keep the server's own events, with `ns` and `wallTime` added in mongod's
 * field order (CollectionEvents), and otherwise its shapes (an update's `fullDocument` is its
 * `$set`/`$unset` delta). Every change-stream cursor reads the oplog
 * from its position on, as mongod does (OplogCollection), not the whole oplog on every getMore.
 * Not modelled: dropDatabase/rename/invalidate events (a dropped database shows as one `drop`
 * per collection), post-batch resume tokens and `operationTime`, pre/post-images, and
 * findAndModify writes (the server records none in its oplog: no event at any level).
 *
 * With the await switch on (the default; second argument or MONGO_TEST_SERVER_AWAIT "0" turns it off),
 * a `getMore` on any change-stream cursor that would answer an empty batch waits, as mongod's
 * does, until a write or its `maxTimeMS` (see AwaitingGetMores); without it, it answers at once.
 */
public class MongoTestServer {
  private static final boolean AWAIT_BY_DEFAULT = true;

  public static void main(String[] args) throws Exception {
    String awaitSwitch = args.length > 1 ? args[1] : System.getenv("MONGO_TEST_SERVER_AWAIT");
    boolean await = awaitSwitch == null ? AWAIT_BY_DEFAULT : !awaitSwitch.equals("0");
    // The built-in versions report wire version 8 at most; the Node driver 7 needs 9 or more.
    MongoVersion version = new MongoVersion() {
      public List<Integer> getVersionArray() { return List.of(6, 0, 0); }
      public int getWireVersion() { return 17; }
    };
    MongoBackend backend = new WatchableBackend(await).version(version);
    backend.enableOplog(); // change streams read the oplog
    InetSocketAddress address = new InetSocketAddress("127.0.0.1", Integer.parseInt(args[0]));
    Channel listening;
    try {
      listening = ThreadPerConnection.bind(backend, address);
    } catch (Exception e) { // e.g. the port taken (unchecked, from netty): the listener's thread would keep the JVM up
      e.printStackTrace();
      System.exit(1);
      return;
    }
    System.out.println("listening on " + listening.localAddress() + (await ? " (getMore awaits)" : ""));
    System.out.flush();
    // Our parent owns our lifetime: when it dies or closes the pipe, stop.
    while (System.in.read() != -1) { }
    System.exit(0);
  }
}

/**
 * MongoServer's pipeline, served as mongod serves connections: a thread of its own per connection
 * (a waiting getMore blocks only its own), which ends with it. MongoServer's worker group keeps
 * every thread it ever started, and each idle netty loop wakes once a second to purge its timers:
 * after a run with 200 connections the server spent that, for good, on 200 threads serving no one.
 */
final class ThreadPerConnection extends io.netty.util.concurrent.AbstractEventExecutorGroup
    implements io.netty.channel.EventLoopGroup {
  private final java.util.concurrent.ThreadFactory threads = new io.netty.util.concurrent.DefaultThreadFactory("mongo-connection");
  private final io.netty.channel.IoHandlerFactory nio = io.netty.channel.nio.NioIoHandler.newFactory();
  private final io.netty.util.concurrent.Promise<Void> terminated = io.netty.util.concurrent.GlobalEventExecutor.INSTANCE.newPromise();

  static Channel bind(MongoBackend backend, InetSocketAddress address) {
    io.netty.channel.group.ChannelGroup clients =
        new io.netty.channel.group.DefaultChannelGroup("mongodb-channels", io.netty.util.concurrent.GlobalEventExecutor.INSTANCE);
    return new io.netty.bootstrap.ServerBootstrap()
        .group(new io.netty.channel.MultiThreadIoEventLoopGroup(1, new io.netty.util.concurrent.DefaultThreadFactory("mongo-listener"),
            io.netty.channel.nio.NioIoHandler.newFactory()), new ThreadPerConnection())
        .channel(io.netty.channel.socket.nio.NioServerSocketChannel.class)
        .option(io.netty.channel.ChannelOption.SO_BACKLOG, 100)
        .childOption(io.netty.channel.ChannelOption.TCP_NODELAY, true)
        .childHandler(new io.netty.channel.ChannelInitializer<io.netty.channel.socket.SocketChannel>() {
          @Override
          protected void initChannel(io.netty.channel.socket.SocketChannel channel) {
            channel.pipeline().addLast(new de.bwaldvogel.mongo.wire.MongoWireReplyEncoder(),
                new de.bwaldvogel.mongo.wire.MongoWireMessageEncoder(), new de.bwaldvogel.mongo.wire.MongoWireProtocolHandler(),
                new de.bwaldvogel.mongo.wire.MongoDatabaseHandler(backend, clients), new de.bwaldvogel.mongo.wire.MongoExceptionHandler());
          }
        })
        .bind(address).syncUninterruptibly().channel();
  }

  /** A loop of its own for `channel`, shut down (its thread ends) when the channel closes. */
  private io.netty.channel.EventLoopGroup ownLoop(Channel channel) {
    io.netty.channel.EventLoopGroup own = new io.netty.channel.MultiThreadIoEventLoopGroup(1, threads, nio);
    channel.closeFuture().addListener(closed -> own.shutdownGracefully(0, 0, java.util.concurrent.TimeUnit.SECONDS));
    return own;
  }

  @Override
  public io.netty.channel.ChannelFuture register(Channel channel) {
    return ownLoop(channel).register(channel);
  }

  @Override
  public io.netty.channel.ChannelFuture register(io.netty.channel.ChannelPromise promise) {
    return ownLoop(promise.channel()).register(promise);
  }

  @Override
  @Deprecated
  public io.netty.channel.ChannelFuture register(Channel channel, io.netty.channel.ChannelPromise promise) {
    return ownLoop(promise.channel()).register(promise);
  }

  @Override
  public io.netty.channel.EventLoop next() {
    throw new UnsupportedOperationException("each connection has its own loop");
  }

  @Override
  public java.util.Iterator<io.netty.util.concurrent.EventExecutor> iterator() {
    return java.util.Collections.emptyIterator();
  }

  @Override
  public io.netty.util.concurrent.Future<?> shutdownGracefully(long quietPeriod, long timeout, java.util.concurrent.TimeUnit unit) {
    terminated.trySuccess(null); // the process exits: its connections' threads end with it
    return terminated;
  }

  @Override
  public io.netty.util.concurrent.Future<?> terminationFuture() {
    return terminated;
  }

  @Override
  @Deprecated
  public void shutdown() {
    shutdownGracefully(0, 0, java.util.concurrent.TimeUnit.SECONDS);
  }

  @Override
  public boolean isShuttingDown() {
    return terminated.isDone();
  }

  @Override
  public boolean isShutdown() {
    return terminated.isDone();
  }

  @Override
  public boolean isTerminated() {
    return terminated.isDone();
  }

  @Override
  public boolean awaitTermination(long timeout, java.util.concurrent.TimeUnit unit) throws InterruptedException {
    return terminated.await(timeout, unit);
  }
}

/**
 * mongod's resume token shape: `_data` begins with the KeyString Timestamp type byte 82, then the
 * event's cluster time (seconds, increment) as two big-endian 32-bit integers, upper-case hex as
 * mongod writes it. The server's own shape (the hex of the timestamp's 64-bit value) is accepted too.
 */
final class ResumeTokens {
  private ResumeTokens() {}

  static Document of(BsonTimestamp ts) {
    return new Document("_data", String.format("82%08X%08X", ts.getTime(), ts.getInc()));
  }

  static OplogPosition positionOf(Document token) {
    Object data = token.get("_data");
    if (data instanceof String && ((String) data).length() >= 18 && ((String) data).startsWith("82")) {
      String hex = (String) data;
      long t = Long.parseLong(hex.substring(2, 10), 16);
      long i = Long.parseLong(hex.substring(10, 18), 16);
      return new OplogPosition(new BsonTimestamp((t << 32) | i));
    }
    return OplogPosition.fromDocument(token);
  }
}

/**
 * The server's own collection-level streams read and write its own token shape: their
 * `resumeAfter`/`startAfter` are translated to it, and the tokens of their events to mongod's.
 */
class ServerStreamTokens {
  private final Set<Long> cursors = ConcurrentHashMap.newKeySet();

  static Document withServerTokens(Document query, Document spec) {
    for (String option : List.of("resumeAfter", "startAfter")) {
      if (spec.get(option) instanceof Document) {
        spec.put(option, new Document("_data", ResumeTokens.positionOf((Document) spec.get(option)).toHexString()));
      }
    }
    return query;
  }

  Document opened(Document reply) {
    Document cursor = (Document) reply.get("cursor");
    long id = ((Number) cursor.get("id")).longValue();
    if (id != 0) cursors.add(id);
    return inBatch(reply, "firstBatch");
  }

  Document more(Document query, Document reply) {
    Object id = query.get("getMore");
    if (!(id instanceof Number) || !cursors.contains(((Number) id).longValue())) return reply;
    return inBatch(reply, "nextBatch");
  }

  @SuppressWarnings("unchecked")
  private static Document inBatch(Document reply, String batch) {
    Document cursor = (Document) reply.get("cursor");
    if (cursor == null || !(cursor.get(batch) instanceof List)) return reply;
    for (Document event : (List<Document>) cursor.get(batch)) {
      if (event.get("_id") instanceof Document && ((Document) event.get("_id")).get("_data") instanceof String) {
        String data = (String) ((Document) event.get("_id")).get("_data");
        event.put("_id", ResumeTokens.of(new BsonTimestamp(Long.parseLong(data, 16))));
      }
    }
    return reply;
  }
}

/** The in-memory backend, plus `aggregate: 1` pipelines that start with `$changeStream`. */
class WatchableBackend extends MemoryBackend {
  private static final Set<String> INTERNAL_DATABASES = Set.of("admin", "local", "config");
  /** The stages mongod allows after `$changeStream`: each takes one event to at most one. */
  private static final Set<String> PER_EVENT_STAGES =
      Set.of("$match", "$project", "$addFields", "$set", "$unset", "$replaceRoot", "$replaceWith", "$redact");
  /** Commands that write nothing, so wake no waiting getMore. */
  private static final Set<String> READS = Set.of("getmore", "find", "count", "distinct", "hello", "ismaster",
      "ping", "buildinfo", "serverstatus", "listcollections", "listdatabases", "listindexes", "endsessions",
      "whatsmyuri", "getparameter", "getlasterror", "dbstats", "collstats", "explain");

  private final AwaitingGetMores awaiting;
  private final ServerStreamTokens serverTokens = new ServerStreamTokens();

  WatchableBackend(boolean await) {
    this.awaiting = await ? new AwaitingGetMores() : null;
  }

  /** `local` keeps its oplog in an OplogCollection: change-stream reads start at their position, as on mongod. */
  @Override
  public MemoryDatabase openOrCreateDatabase(String databaseName) {
    if (!databaseName.equals("local")) return super.openOrCreateDatabase(databaseName);
    return new MemoryDatabase(databaseName, getCursorRegistry()) {
      @Override
      protected MemoryCollection openOrCreateCollection(String collectionName, CollectionOptions options) {
        return collectionName.equals(OPLOG_COLLECTION_NAME)
            ? new OplogCollection(this, collectionName, options, cursorRegistry)
            : super.openOrCreateCollection(collectionName, options);
      }
    };
  }

  @Override
  protected Oplog createOplog() {
    CollectionBackedOplog server = (CollectionBackedOplog) super.createOplog();
    return ResumingOplog.wrap(server, oplogCollection(), getCursorRegistry());
  }

  @Override
  public Document handleCommand(Channel channel, String databaseName, String command, Document query) {
    if (awaiting == null) return handle(channel, databaseName, command, query);
    if (command.equalsIgnoreCase("getMore")) {
      return awaiting.getMore(channel, query, () -> handle(channel, databaseName, command, query));
    }
    try {
      return handle(channel, databaseName, command, query);
    } finally {
      if (!READS.contains(command.toLowerCase())) awaiting.wake();
    }
  }

  private Document handle(Channel channel, String databaseName, String command, Document query) {
    if (command.equalsIgnoreCase("aggregate") && query.get("pipeline") instanceof List) {
      List<Document> pipeline = Aggregation.parse(query.get("pipeline"));
      if (!pipeline.isEmpty() && pipeline.get(0).get("$changeStream") instanceof Document) {
        Document reply = isNumberOne(query.get(command))
            ? openStream(databaseName, query, pipeline)
            : serverTokens.opened(super.handleCommand(channel, databaseName, command, // the server's collection-level stream
                ServerStreamTokens.withServerTokens(query, (Document) pipeline.get(0).get("$changeStream"))));
        if (awaiting != null) awaiting.add(((Number) ((Document) reply.get("cursor")).get("id")).longValue());
        return reply;
      }
    }
    Document reply = super.handleCommand(channel, databaseName, command, query);
    return command.equalsIgnoreCase("getMore") ? serverTokens.more(query, reply) : reply;
  }

  private static boolean isNumberOne(Object value) {
    return value instanceof Number && ((Number) value).doubleValue() == 1;
  }

  private Document openStream(String databaseName, Document query, List<Document> pipeline) {
    Document spec = (Document) pipeline.get(0).get("$changeStream");
    boolean wholeDeployment = Boolean.TRUE.equals(spec.get("allChangesForCluster"));
    if (wholeDeployment != databaseName.equals("admin") || (!wholeDeployment && INTERNAL_DATABASES.contains(databaseName))) {
      throw new MongoServerError(73, "InvalidNamespace", wholeDeployment
          ? "$changeStream with allChangesForCluster:true must be run on the 'admin' database"
          : "$changeStream may not be opened on the internal " + databaseName + " database");
    }
    for (Document stage : pipeline.subList(1, pipeline.size())) {
      for (String name : stage.keySet()) {
        if (!PER_EVENT_STAGES.contains(name)) {
          throw new MongoServerError(20, "IllegalOperation", name + " is not permitted in a $changeStream pipeline");
        }
      }
    }
    MongoCollection<Document> oplogCollection = oplogCollection();
    Predicate<String> inScope = wholeDeployment
        ? db -> !INTERNAL_DATABASES.contains(db)
        : databaseName::equals;
    MongoDatabase database = wholeDeployment ? null : resolveDatabase(databaseName);
    Aggregation stages = Aggregation.fromPipeline(pipeline.subList(1, pipeline.size()), this::resolveDatabase, database, null, oplog);
    stages.validate(query);

    ChangeEvents events = new ChangeEvents(this, spec, inScope);
    OplogPosition start = startPosition(spec, oplogCollection);
    OplogCollection.checkResumable(oplogCollection, start);
    ChangeCursor cursor = new ChangeCursor(getCursorRegistry().generateCursorId(), oplogCollection, events::of, stages, start);
    getCursorRegistry().add(cursor);

    Document cursorOptions = (Document) query.get("cursor");
    int batchSize = ((Number) cursorOptions.getOrDefault("batchSize", 0)).intValue();
    Document reply = new Document("cursor", new Document("id", cursor.getId())
        .append("ns", databaseName + ".$cmd.aggregate")
        .append("firstBatch", cursor.takeDocuments(batchSize)));
    Utils.markOkay(reply);
    return reply;
  }

  @SuppressWarnings("unchecked")
  private MongoCollection<Document> oplogCollection() {
    MongoCollection<Document> collection =
        (MongoCollection<Document>) resolveDatabase("local").resolveCollection(OPLOG_COLLECTION_NAME, false);
    if (collection == null) throw new MongoServerError(40573, "The $changeStream stage is only supported on replica sets");
    return collection;
  }

  /** As the server's collection-level streams: tokens exclusive, an operation time inclusive. */
  private static OplogPosition startPosition(Document spec, MongoCollection<Document> oplogCollection) {
    Document token = (Document) (spec.get("startAfter") != null ? spec.get("startAfter") : spec.get("resumeAfter"));
    if (token != null) return ResumeTokens.positionOf(token);
    BsonTimestamp operationTime = (BsonTimestamp) spec.get("startAtOperationTime");
    if (operationTime != null) return new OplogPosition(operationTime).inclusive();
    // "Now": after the latest entry (the server's clock is private; every later entry is after it).
    return new OplogPosition(oplogCollection.queryAllAsStream()
        .map(WatchableBackend::timestampOf)
        .max(Comparator.naturalOrder())
        .orElse(new BsonTimestamp(0)));
  }

  static BsonTimestamp timestampOf(Document oplogEntry) {
    return (BsonTimestamp) oplogEntry.get("ts");
  }

  /** Only if it exists: resolving a database creates it, and it would then be listed. */
  Document currentDocument(String db, String coll, Object id) {
    if (!listDatabaseNames().contains(db)) return null;
    MongoCollection<?> collection = resolveDatabase(db).resolveCollection(coll, false);
    if (collection == null) return null;
    return collection.handleQueryAsStream(new Document("_id", id)).findFirst().map(Document::cloneDeeply).orElse(null);
  }
}

/**
 * mongod's wait on an idle tailable+awaitData cursor: a change-stream getMore that would answer
 * an empty batch waits (on a monitor every write notifies, no polling) until a write, then runs
 * again; or until its maxTimeMS (mongod's default 1 s without one), then answers empty. A killed
 * cursor ends the wait: the re-run answers as for any unknown cursor. The waiting thread cannot
 * read its own connection, so a connection closed by the client ends the wait only through the
 * checks between slices of at most CHANNEL_CHECK_MS, on the socket (readable while a reply is
 * owed means closed: drivers send nothing else on a connection until its getMore answers).
 */
class AwaitingGetMores {
  private static final long DEFAULT_MAX_TIME_MS = 1000;
  private static final long CHANNEL_CHECK_MS = 500;
  private final Set<Long> changeCursors = ConcurrentHashMap.newKeySet();
  private long writes;

  void add(long cursorId) {
    if (cursorId != 0) changeCursors.add(cursorId);
  }

  synchronized void wake() {
    writes++;
    notifyAll();
  }

  Document getMore(Channel channel, Document query, java.util.function.Supplier<Document> run) {
    long cursorId = ((Number) query.get("getMore")).longValue();
    if (!changeCursors.contains(cursorId)) return run.get();
    Object maxTime = query.get("maxTimeMS");
    long waitMs = maxTime instanceof Number && ((Number) maxTime).longValue() > 0 ? ((Number) maxTime).longValue() : DEFAULT_MAX_TIME_MS;
    long deadline = System.nanoTime() + waitMs * 1_000_000;
    ClosedConnections closed = new ClosedConnections(channel);
    try {
      while (true) {
        long seen;
        synchronized (this) { seen = writes; }
        Document reply;
        try {
          reply = run.get();
        } catch (RuntimeException e) {
          changeCursors.remove(cursorId); // killed or unknown: answer as the server does
          throw e;
        }
        Document cursor = (Document) reply.get("cursor");
        if (cursor == null || !((List<?>) cursor.get("nextBatch")).isEmpty()) return reply;
        synchronized (this) {
          while (writes == seen) {
            long left = (deadline - System.nanoTime()) / 1_000_000;
            if (left <= 0 || closed.now()) return reply;
            wait(Math.min(left, CHANNEL_CHECK_MS));
          }
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new MongoServerError(11601, "Interrupted", "getMore interrupted");
    } finally {
      closed.release();
    }
  }
}

/** Whether the client has closed a connection whose netty thread is busy (so netty cannot tell). */
class ClosedConnections {
  private final Channel channel;
  private java.nio.channels.Selector selector;

  ClosedConnections(Channel channel) {
    this.channel = channel;
    try {
      java.lang.reflect.Method javaChannel = io.netty.channel.nio.AbstractNioChannel.class.getDeclaredMethod("javaChannel");
      javaChannel.setAccessible(true);
      java.nio.channels.SelectableChannel socket = (java.nio.channels.SelectableChannel) javaChannel.invoke(channel);
      selector = java.nio.channels.Selector.open();
      socket.register(selector, java.nio.channels.SelectionKey.OP_READ);
    } catch (Exception | LinkageError e) {
      release(); // no socket to check: the wait then ends at its deadline, as without the check
    }
  }

  boolean now() {
    if (!channel.isOpen()) return true;
    try {
      return selector != null && selector.selectNow() > 0;
    } catch (java.io.IOException e) {
      return true;
    }
  }

  void release() {
    try {
      if (selector != null) selector.close();
    } catch (java.io.IOException ignored) {
    }
    selector = null;
  }
}

/**
 * As the server's OplogCursor (never exhausted; empty getMores wait only in AwaitingGetMores), but it
 * moves past entries its stream does not report, as mongod's post-batch token does, so a narrow
 * `$match` does not re-read (and re-look-up) the whole backlog on every getMore; and it reads the
 * oplog from its position on (OplogCollection), as mongod does, not the whole oplog each time.
 */
class ChangeCursor extends AbstractCursor {
  private final MongoCollection<Document> oplogCollection;
  /** An entry's event; null for one its stream does not report. */
  private final java.util.function.Function<Document, Document> events;
  private final Aggregation stages;
  private OplogPosition position;

  ChangeCursor(long id, MongoCollection<Document> oplogCollection,
      java.util.function.Function<Document, Document> events, Aggregation stages, OplogPosition start) {
    super(id);
    this.oplogCollection = oplogCollection;
    this.events = events;
    this.stages = stages;
    this.position = start;
  }

  @Override
  public boolean isEmpty() {
    return false;
  }

  @Override
  public synchronized List<Document> takeDocuments(int numberToReturn) {
    List<Document> batch = new ArrayList<>();
    for (Document entry : OplogCollection.entriesAfter(oplogCollection, position)) {
      if (numberToReturn > 0 && batch.size() >= numberToReturn) break;
      position = new OplogPosition(WatchableBackend.timestampOf(entry));
      Document event = events.apply(entry);
      // Per event: openStream admits only stages that take one event to at most one.
      if (event != null) stages.runStagesAsStream(Stream.of(event)).forEach(batch::add);
    }
    return batch;
  }
}

/** Oplog entries as mongod's change events; null for entries a stream does not report. */
class ChangeEvents {
  private final WatchableBackend backend;
  private final boolean updateLookup;

  private final Predicate<String> inScope;

  ChangeEvents(WatchableBackend backend, Document spec, Predicate<String> inScope) {
    this.backend = backend;
    this.inScope = inScope;
    this.updateLookup = "updateLookup".equals(spec.get("fullDocument"));
  }

  Document of(Document entry) {
    String namespace = (String) entry.get("ns");
    String db = Utils.getDatabaseNameFromFullName(namespace);
    String coll = Utils.getCollectionNameFromFullName(namespace);
    Document o = (Document) entry.get("o");
    boolean isCommand = coll.equals("$cmd");
    if (isCommand) {
      if (!(o.get("drop") instanceof String)) return null;
      coll = (String) o.get("drop");
    }
    if (!inScope.test(db) || coll.startsWith("system.")) return null;

    BsonTimestamp ts = WatchableBackend.timestampOf(entry);
    Document event = new Document("_id", ResumeTokens.of(ts));
    if (isCommand) {
      return head(event, "drop", ts, entry).append("ns", ns(db, coll));
    }
    switch ((String) entry.get("op")) {
      case "i":
        return head(event, "insert", ts, entry)
            .append("fullDocument", o.cloneDeeply())
            .append("ns", ns(db, coll))
            .append("documentKey", new Document("_id", o.get("_id")));
      case "d":
        return head(event, "delete", ts, entry)
            .append("ns", ns(db, coll))
            .append("documentKey", new Document("_id", o.get("_id")));
      case "u":
        Object id = ((Document) entry.get("o2")).get("_id");
        return isOperatorUpdate(o) ? update(event, ts, entry, db, coll, id, o) : replace(event, ts, entry, db, coll, id, o);
      default:
        return null;
    }
  }

  private static Document head(Document event, String operationType, BsonTimestamp ts, Document entry) {
    event.append("operationType", operationType).append("clusterTime", ts);
    if (entry.get("wall") != null) event.append("wallTime", entry.get("wall"));
    return event;
  }

  private static Document ns(String db, String coll) {
    return new Document("db", db).append("coll", coll);
  }

  private static boolean isOperatorUpdate(Document update) {
    return update.keySet().stream().anyMatch(key -> key.startsWith("$"));
  }

  private Document update(Document event, BsonTimestamp ts, Document entry, String db, String coll, Object id, Document update) {
    head(event, "update", ts, entry);
    Document current = backend.currentDocument(db, coll, id);
    if (updateLookup) event.append("fullDocument", current);
    return event
        .append("ns", ns(db, coll))
        .append("documentKey", new Document("_id", id))
        .append("updateDescription", describe(update, current));
  }

  /** `$set` values as written; other operators' fields with their value now (the oplog keeps only the operator). */
  private static Document describe(Document update, Document current) {
    Document updatedFields = new Document();
    List<String> removedFields = new ArrayList<>();
    for (String operator : update.keySet()) {
      Document fields = (Document) update.get(operator);
      for (String path : fields.keySet()) {
        if (operator.equals("$set")) {
          updatedFields.append(path, fields.get(path));
        } else if (operator.equals("$unset")) {
          removedFields.add(path);
        } else if (operator.equals("$rename")) {
          removedFields.add(path);
          String to = (String) fields.get(path);
          if (current != null) updatedFields.append(to, Utils.getSubdocumentValue(current, to));
        } else if (!operator.equals("$setOnInsert") && current != null) {
          updatedFields.append(path, Utils.getSubdocumentValue(current, path));
        }
      }
    }
    return new Document("updatedFields", updatedFields)
        .append("removedFields", removedFields)
        .append("truncatedArrays", List.of());
  }

  private Document replace(Document event, BsonTimestamp ts, Document entry, String db, String coll, Object id, Document replacement) {
    Document fullDocument = new Document("_id", id);
    for (String key : replacement.keySet()) {
      if (!key.equals("_id")) fullDocument.append(key, replacement.get(key));
    }
    return head(event, "replace", ts, entry)
        .append("fullDocument", fullDocument.cloneDeeply())
        .append("ns", ns(db, coll))
        .append("documentKey", new Document("_id", id));
  }
}

/**
 * `local.oplog.rs`, indexed by time beside its slots, so a change-stream read starts where its cursor
 * is: mongod continues its oplog scan from the cursor's position, so an idle getMore costs the same
 * whatever the oplog holds (the server's own cursors scan and sort the whole oplog on every getMore).
 * Entries with equal times keep slot order, as the server's stable sort does.
 */
class OplogCollection extends MemoryCollection {
  private record Key(long ts, int slot) implements Comparable<Key> {
    public int compareTo(Key other) {
      return ts != other.ts ? Long.compare(ts, other.ts) : Integer.compare(slot, other.slot);
    }
  }

  private final ConcurrentSkipListMap<Key, Document> byTime = new ConcurrentSkipListMap<>();
  /** MONGO_TEST_SERVER_OPLOG_MAX_ENTRIES: keep only the newest entries, as mongod's capped oplog rolls over (0: all). */
  private static final int MAX_ENTRIES = Integer.parseInt(System.getenv().getOrDefault("MONGO_TEST_SERVER_OPLOG_MAX_ENTRIES", "0"));
  private volatile boolean rolledOver;

  OplogCollection(MongoDatabase database, String name, CollectionOptions options, CursorRegistry cursors) {
    super(database, name, options, cursors);
  }

  @Override
  public void addDocument(Document document) {
    super.addDocument(document);
    java.util.Map.Entry<Key, Document> oldest;
    while (MAX_ENTRIES > 0 && byTime.size() > MAX_ENTRIES && (oldest = byTime.firstEntry()) != null) {
      rolledOver = true;
      removeDocument(oldest.getValue());
    }
  }

  /** Capped: in time order, as mongod keeps a capped collection's natural order (the memory backend reuses removed slots). */
  @Override
  protected de.bwaldvogel.mongo.backend.QueryResult matchDocuments(Document query, Document orderBy, int skip, int limit,
      int batchSize, Document projection) {
    if (MAX_ENTRIES == 0) return super.matchDocuments(query, orderBy, skip, limit, batchSize, projection);
    List<Document> inOrder = new ArrayList<>(byTime.values());
    if (isNaturalDescending(orderBy)) java.util.Collections.reverse(inOrder);
    return matchDocumentsFromStream(inOrder.stream(), query, orderBy, skip, limit, batchSize, projection);
  }

  /** As mongod: once the oplog rolled over, a stream may not start before its oldest entry (ChangeStreamHistoryLost). */
  static void checkResumable(MongoCollection<?> oplog, OplogPosition start) {
    if (!(oplog instanceof OplogCollection) || !((OplogCollection) oplog).rolledOver) return;
    java.util.Map.Entry<Key, Document> oldest = ((OplogCollection) oplog).byTime.firstEntry();
    if (oldest != null && Long.compareUnsigned(Long.parseUnsignedLong(start.toHexString(), 16), oldest.getKey().ts) < 0) {
      throw new MongoServerError(286, "ChangeStreamHistoryLost",
          "Resume of change stream was not possible, as the resume point may no longer be in the oplog.");
    }
  }

  /**
   * The entries after `from` in time order, as the server's cursors select them (`isAfter`, sorted by
   * `ts`): from the index, or by a full scan for an oplog that is not an OplogCollection.
   */
  static Iterable<Document> entriesAfter(MongoCollection<?> oplog, OplogPosition from) {
    if (!(oplog instanceof OplogCollection)) {
      return oplog.queryAllAsStream()
          .filter(entry -> isAfter(entry, from))
          .sorted(Comparator.comparing(WatchableBackend::timestampOf))
          .collect(Collectors.toList());
    }
    // From the position's own time on (an inclusive start time takes entries at it), then as the server decides.
    Key start = new Key(Long.parseUnsignedLong(from.toHexString(), 16), Integer.MIN_VALUE);
    return () -> ((OplogCollection) oplog).byTime.tailMap(start, true).values().stream()
        .filter(entry -> isAfter(entry, from))
        .iterator();
  }

  private static boolean isAfter(Document entry, OplogPosition from) {
    return new OplogPosition(WatchableBackend.timestampOf(entry)).isAfter(from);
  }

  @Override
  protected Integer addDocumentInternal(Document document) {
    Integer slot = super.addDocumentInternal(document);
    index(document, slot, true);
    return slot;
  }

  @Override
  protected void removeDocument(Integer slot) {
    index(getDocument(slot), slot, false);
    super.removeDocument(slot);
  }

  @Override
  protected void handleUpdate(Integer slot, Document oldDocument, Document newDocument) {
    index(oldDocument, slot, false);
    index(newDocument, slot, true);
    super.handleUpdate(slot, oldDocument, newDocument);
  }

  /** Entries without a timestamp `ts` are not indexed (no change stream can read them). */
  private void index(Document entry, int slot, boolean add) {
    if (!(entry.get("ts") instanceof BsonTimestamp)) return;
    Key key = new Key(WatchableBackend.timestampOf(entry).getValue(), slot);
    if (add) byTime.put(key, entry); else byTime.remove(key);
  }
}

/**
 * The server's oplog, whose collection-level change-stream cursors read from their position on
 * (ChangeCursor) instead of scanning the whole oplog on every getMore. The server opens
 * each stream (its start position, its invalidate after a dropped collection) and shapes each event;
 * a pipeline with a stage that is not per-event keeps the server's own cursor, whatever it costs.
 */
class ResumingOplog implements Oplog {
  private static final Field CURSOR_POSITION = field(OplogCursor.class, "position");
  private static final Method EVENT_OF = method(CollectionBackedOplog.class, "toChangeStreamResponseDocument",
      Document.class, Document.class);
  private static final Set<Class<?>> PER_EVENT_STAGES = Set.of(
      de.bwaldvogel.mongo.backend.aggregation.stage.MatchStage.class,
      de.bwaldvogel.mongo.backend.aggregation.stage.ProjectStage.class,
      de.bwaldvogel.mongo.backend.aggregation.stage.AddFieldsStage.class,
      de.bwaldvogel.mongo.backend.aggregation.stage.UnsetStage.class,
      de.bwaldvogel.mongo.backend.aggregation.stage.ReplaceRootStage.class,
      de.bwaldvogel.mongo.backend.aggregation.stage.RedactStage.class);

  private final CollectionBackedOplog server;
  private final MongoCollection<Document> oplogCollection;
  private final CursorRegistry cursors;

  private ResumingOplog(CollectionBackedOplog server, MongoCollection<Document> oplogCollection, CursorRegistry cursors) {
    this.server = server;
    this.oplogCollection = oplogCollection;
    this.cursors = cursors;
  }

  /** The server's oplog as it is when its internals are not the ones this reads (another version). */
  static Oplog wrap(CollectionBackedOplog server, MongoCollection<Document> oplogCollection, CursorRegistry cursors) {
    return CURSOR_POSITION == null || EVENT_OF == null ? server : new ResumingOplog(server, oplogCollection, cursors);
  }

  @Override
  public Cursor createCursor(Document spec, String namespace, Aggregation stages) {
    Cursor cursor = server.createCursor(spec, namespace, stages);
    boolean perEvent = stages.getStages().stream().allMatch(stage -> PER_EVENT_STAGES.contains(stage.getClass()));
    if (!(cursor instanceof OplogCursor) || !perEvent) return cursor;
    OplogPosition start;
    try {
      start = (OplogPosition) CURSOR_POSITION.get(cursor);
    } catch (IllegalAccessException e) {
      return cursor;
    }
    cursors.remove(cursor);
    OplogCollection.checkResumable(oplogCollection, start);
    // The server's collection-level cursor: the namespace's entries and its own drop, shaped by the server.
    ChangeCursor resuming = new ChangeCursor(cursor.getId(), oplogCollection,
        entry -> CollectionEvents.reports(namespace, entry) ? eventOf(entry, spec) : null, stages, start);
    cursors.add(resuming);
    return resuming;
  }

  private Document eventOf(Document entry, Document spec) {
    try {
      return CollectionEvents.asMongod((Document) EVENT_OF.invoke(server, entry, spec), entry);
    } catch (InvocationTargetException e) {
      if (e.getCause() instanceof RuntimeException) throw (RuntimeException) e.getCause();
      throw new IllegalStateException(e.getCause());
    } catch (IllegalAccessException e) {
      throw new IllegalStateException(e);
    }
  }

  @Override
  public void handleInsert(String namespace, List<Document> documents) {
    server.handleInsert(namespace, documents);
  }

  @Override
  public void handleUpdate(String namespace, Document selector, Document query, List<Object> modifiedIds) {
    server.handleUpdate(namespace, selector, query, modifiedIds);
  }

  @Override
  public void handleDelete(String namespace, Document query, List<Object> deletedIds) {
    server.handleDelete(namespace, query, deletedIds);
  }

  @Override
  public void handleDropCollection(String namespace) {
    server.handleDropCollection(namespace);
  }

  private static Field field(Class<?> type, String name) {
    try {
      Field found = type.getDeclaredField(name);
      found.setAccessible(true);
      return found;
    } catch (ReflectiveOperationException | RuntimeException e) {
      return null;
    }
  }

  private static Method method(Class<?> type, String name, Class<?>... parameters) {
    try {
      Method found = type.getDeclaredMethod(name, parameters);
      found.setAccessible(true);
      return found;
    } catch (ReflectiveOperationException | RuntimeException e) {
      return null;
    }
  }
}

/**
 * The server's collection-level events with what mongod's carry at every level and the server's
 * lack: `ns` and `wallTime` (from the oplog entry), in mongod's field order (`_id, operationType,
 * clusterTime, wallTime, fullDocument, ns, documentKey`, then the rest). Built before the stream's
 * stages run, so a `$match` or `$project` on them acts as on mongod. Every other field is the server's.
 */
final class CollectionEvents {
  private static final List<String> HEAD = List.of("_id", "operationType", "clusterTime");

  private CollectionEvents() {}

  static Document asMongod(Document serverEvent, Document entry) {
    Document event = new Document();
    for (String key : HEAD) {
      if (serverEvent.containsKey(key)) event.append(key, serverEvent.get(key));
    }
    if (entry.get("wall") != null) event.append("wallTime", entry.get("wall"));
    if (serverEvent.containsKey("fullDocument")) event.append("fullDocument", serverEvent.get("fullDocument"));
    event.append("ns", ns(entry));
    for (String key : serverEvent.keySet()) {
      if (!event.containsKey(key)) event.append(key, serverEvent.get(key));
    }
    return event;
  }

  /** Whether a collection-level stream on `namespace` reports the entry: its own, and of its database's commands only its own drop, as mongod's. */
  static boolean reports(String namespace, Document entry) {
    Object ns = entry.get("ns");
    if (namespace.equals(ns)) return true;
    if (!(Utils.getDatabaseNameFromFullName(namespace) + ".$cmd").equals(ns)) return false;
    Object o = entry.get("o");
    return o instanceof Document
        && Utils.getCollectionNameFromFullName(namespace).equals(((Document) o).get("drop"));
  }

  /** A command's (a drop's) namespace is its collection's, as in mongod's drop event. */
  private static Document ns(Document entry) {
    String namespace = (String) entry.get("ns");
    Document ns = new Document("db", Utils.getDatabaseNameFromFullName(namespace));
    String coll = Utils.getCollectionNameFromFullName(namespace);
    if (coll.equals("$cmd")) {
      Object dropped = ((Document) entry.get("o")).get("drop");
      return dropped instanceof String ? ns.append("coll", dropped) : ns;
    }
    return ns.append("coll", coll);
  }
}
