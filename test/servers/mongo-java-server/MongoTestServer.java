import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import java.util.List;

/** Usage: java -cp CLASSPATH MongoTestServer.java PORT. Exits when its standard input closes. */
public class MongoTestServer {
  public static void main(String[] args) throws Exception {
    // The built-in versions report wire version 8 at most; the Node driver 7 needs 9 or more.
    MongoVersion version = new MongoVersion() {
      public List<Integer> getVersionArray() { return List.of(6, 0, 0); }
      public int getWireVersion() { return 17; }
    };
    MongoServer server = new MongoServer(new MemoryBackend().version(version));
    server.enableOplog(); // change streams read the oplog
    server.bind("127.0.0.1", Integer.parseInt(args[0]));
    System.out.println("listening on " + server.getLocalAddress());
    System.out.flush();
    // Our parent owns our lifetime: when it dies or closes the pipe, stop.
    while (System.in.read() != -1) { }
    server.shutdownNow();
    System.exit(0);
  }
}
