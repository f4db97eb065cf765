using Sandbox.Native;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Sandbox.Agent.Server;

/// <summary>
/// Copies bytes both ways between a virtio-serial port (non-blocking) and a socket (blocking), one thread per
/// direction, until either side ends: the host disconnects (the port reads end-of-file or polls POLLHUP) or Kestrel
/// closes its end. Then both descriptors are closed. A write to a port whose host has gone would block for ever, so
/// writes to the port are non-blocking and give up when the host is gone.
/// The two threads are started once, with the port's listener, and serve its connections one after the other: a
/// clone's threads already wait in its template, so the shim's first connection starts none (under TCG a restored
/// guest translates afresh whatever code it runs, thread creation included).
/// </summary>
public sealed unsafe class VirtioSerialBridge
{
    private const int BufferSize = 64 * 1024;
    private const int PollMs = 200;

    private readonly string _description;
    private readonly Action<string> _log;
    private readonly SemaphoreSlim _inbound = new(0);
    private readonly SemaphoreSlim _outbound = new(0);
    private Connection? _current;

    private sealed class Connection(int port, int socket)
    {
        public readonly int Port = port;
        public readonly int Socket = socket;
        public int Running = 2;
        public readonly TaskCompletionSource Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public VirtioSerialBridge(string description, Action<string> log)
    {
        _description = description;
        _log = log;
        Start("serial-in", _inbound, connection => PortToSocket(connection.Port, connection.Socket));
        Start("serial-out", _outbound, connection => SocketToPort(connection.Socket, connection.Port));
    }

    /// <summary>Joins <paramref name="port"/> and <paramref name="socket"/> until either ends, then closes both. One
    /// connection at a time: the caller awaits the returned task before it passes the next.</summary>
    public Task RunAsync(int port, int socket)
    {
        var connection = new Connection(port, socket);
        Volatile.Write(ref _current, connection);
        _inbound.Release();
        _outbound.Release();
        return connection.Done.Task;
    }

    private void Start(string name, SemaphoreSlim next, Action<Connection> copy)
    {
        new Thread(() =>
        {
            while (true)
            {
                next.Wait();
                var connection = Volatile.Read(ref _current)!;
                try
                {
                    copy(connection);
                }
                catch (Exception e)
                {
                    _log($"{_description}: {e.Message}");
                }
                finally
                {
                    Finish(connection);
                }
            }
        }) { IsBackground = true, Name = name }.Start();
    }

    private static void Finish(Connection connection)
    {
        shutdown(connection.Socket, SHUT_RDWR); // wakes the other direction's blocking socket read
        if (Interlocked.Decrement(ref connection.Running) == 0)
        {
            FileDescriptors.CloseQuietly(connection.Port);
            FileDescriptors.CloseQuietly(connection.Socket);
            connection.Done.TrySetResult();
        }
    }

    private static void PortToSocket(int port, int socket)
    {
        byte* buffer = stackalloc byte[BufferSize];
        while (true)
        {
            var entry = new pollfd { fd = port, events = POLLIN };
            int ready = poll(&entry, 1, PollMs);
            if (ready < 0 && Errno.Last == EINTR) continue;
            if (ready < 0) throw new IOException($"poll of the port failed: {Errno.DescribeLast()}");
            if (ready == 0) continue;
            long n = read(port, buffer, BufferSize);
            if (n < 0 && (Errno.Last == EINTR || Errno.Last == EAGAIN)) continue;
            if (n <= 0) return; // the host disconnected (or the port failed)
            if (!FileDescriptors.WriteAll(socket, buffer, (int)n)) return;
        }
    }

    private static void SocketToPort(int socket, int port)
    {
        byte* buffer = stackalloc byte[BufferSize];
        while (true)
        {
            long n = read(socket, buffer, BufferSize);
            if (n < 0 && Errno.Last == EINTR) continue;
            if (n <= 0) return; // Kestrel closed the connection, or the other direction ended it
            int done = 0;
            while (done < n)
            {
                long written = write(port, buffer + done, (int)n - done);
                if (written > 0) { done += (int)written; continue; }
                if (written < 0 && Errno.Last == EINTR) continue;
                if (written < 0 && Errno.Last != EAGAIN) return;
                var entry = new pollfd { fd = port, events = POLLOUT };
                poll(&entry, 1, PollMs);
                if ((entry.revents & POLLHUP) != 0 && (entry.revents & POLLOUT) == 0) return; // the host has gone
            }
        }
    }
}
