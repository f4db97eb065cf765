using Sandbox.Native;
using static Tmds.Linux.LibC;

namespace Sandbox.Shim.Backend;

/// <summary>
/// Waits until the client has read everything written into an output FIFO, before the shim closes the FIFO and
/// reports the process's exit.
/// Why: containerd's client library from 1.6.0 to 1.6.21 and 1.7.0 to 1.7.2 (Debian 12 ships 1.6.20) closes its FIFO
/// readers as soon as it deletes a task (task.Delete calls io.Close before io.Wait; fixed upstream by containerd
/// commit 34a93a0c2, "task: don't close() io before cancel()"). `ctr run` deletes the task as soon as Wait returns,
/// so whatever is still in the FIFO then is lost, whichever shim wrote it: containerd's own runc shim loses it too
/// (`ctr run ... seq 1 20000 | (sleep 1; cat)` keeps 69632 of 108894 bytes with io.containerd.runc.v2).
/// The shim opened the FIFO read-write, so FIONREAD on its fd is the number of bytes the reader has not taken.
/// </summary>
internal static class ContainerdFifoDrain
{
    /// <summary>
    /// How long the unread count may stay unchanged before the reader counts as gone. A client that reads takes bytes
    /// within milliseconds; one that is gone (`ctr run -d` exits after Start) never will, and its process's exit waits
    /// this long to be reported.
    /// </summary>
    public static readonly TimeSpan DefaultStallLimit = TimeSpan.FromSeconds(2);

    private const int MaxPollDelayMs = 16;

    /// <summary>
    /// Completes with null once the FIFO is empty (at once for a file), or with what was left when the reader took
    /// nothing for <paramref name="stallLimit"/> (default <see cref="DefaultStallLimit"/>).
    /// </summary>
    public static async Task<string?> WaitUntilReadAsync(OutputDestination destination, CancellationToken cancellationToken,
        TimeSpan? stallLimit = null)
    {
        if (!destination.IsFifo)
            return null;
        long limitMs = (long)(stallLimit ?? DefaultStallLimit).TotalMilliseconds;
        int lastUnread = -1;
        long lastProgress = Environment.TickCount64;
        int delayMs = 1;
        while (true)
        {
            int unread = UnreadBytes(destination.Fd, out string? problem);
            if (problem is not null)
                return problem;
            if (unread == 0)
                return null;
            if (unread != lastUnread)
            {
                lastUnread = unread;
                lastProgress = Environment.TickCount64;
            }
            else if (Environment.TickCount64 - lastProgress >= limitMs)
            {
                return $"{unread} bytes were still unread in the FIFO when its reader had taken nothing for {limitMs} ms";
            }
            await Task.Delay(delayMs, cancellationToken).ConfigureAwait(false);
            delayMs = Math.Min(delayMs * 2, MaxPollDelayMs);
        }
    }

    private static unsafe int UnreadBytes(int fd, out string? problem)
    {
        int unread = 0;
        if (ioctl(fd, FIONREAD, &unread) != 0)
        {
            problem = $"cannot tell how much of the FIFO is unread (FIONREAD on fd {fd}): {Errno.DescribeLast()}";
            return 0;
        }
        problem = null;
        return unread;
    }
}
