using Sandbox.Native;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Sandbox.Agent.Server;

/// <summary>
/// Copies bytes both ways between a virtio-serial port (non-blocking) and a socket (blocking), one thread per
/// direction, until either side ends: the host disconnects (the port reads end-of-file or polls POLLHUP) or Kestrel
/// closes its end. Then both descriptors are closed. A write to a port whose host has gone would block for ever, so
/// writes to the port are non-blocking and give up when the host is gone.
/// </summary>
public static unsafe class VirtioSerialBridge
{
    private const int BufferSize = 64 * 1024;
    private const int PollMs = 200;

    public static Task RunAsync(int port, int socket, string description, Action<string> log)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int running = 2;
        void Finish()
        {
            shutdown(socket, SHUT_RDWR); // wakes the other direction's blocking socket read
            if (Interlocked.Decrement(ref running) == 0)
            {
                FileDescriptors.CloseQuietly(port);
                FileDescriptors.CloseQuietly(socket);
                done.TrySetResult();
            }
        }
        Start($"serial-in", () => { try { PortToSocket(port, socket); } catch (Exception e) { log($"{description}: {e.Message}"); } finally { Finish(); } });
        Start($"serial-out", () => { try { SocketToPort(socket, port); } catch (Exception e) { log($"{description}: {e.Message}"); } finally { Finish(); } });
        return done.Task;
    }

    private static void Start(string name, Action body) => new Thread(() => body()) { IsBackground = true, Name = name }.Start();

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
