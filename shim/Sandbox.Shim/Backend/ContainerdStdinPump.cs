using Sandbox.Native;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Sandbox.Shim.Backend;

/// <summary>
/// Copies containerd's stdin for one process (opened by <see cref="ContainerdStdioDestination.OpenStdin"/>) to a
/// destination fd (a pipe to the process, a pty master, a socket to the VM backend's stdin stream) on a thread of its
/// own. The input ends (the pump stops, closing both fds, so that the destination sees end of file) when:
/// - the client closed its end of the FIFO after having opened it (POLLHUP with nothing left to read; a FIFO whose
///   writer has not come yet only waits), or a file source reached its end;
/// - containerd's CloseIO (<see cref="RequestClose"/>) and the FIFO stayed empty for <see cref="DrainQuietPeriodMs"/>
///   (the client may keep its end open);
/// - the destination refuses data (the process closed its stdin), or <see cref="Stop"/>.
/// </summary>
internal sealed unsafe class ContainerdStdinPump
{
    /// <summary>How long an empty FIFO must stay empty after CloseIO before the input counts as complete.</summary>
    public const int DrainQuietPeriodMs = 100;

    private readonly TaskCompletionSource _completed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _closeRequested;
    private volatile bool _stopped;

    private ContainerdStdinPump()
    {
    }

    /// <summary>Completes when the pump has stopped and closed both fds.</summary>
    public Task Completed => _completed.Task;

    /// <summary>Starts copying; the pump owns <paramref name="source"/> and <paramref name="destination"/> from now on.</summary>
    public static ContainerdStdinPump Start(int source, int destination, string owner)
    {
        var pump = new ContainerdStdinPump();
        var thread = new Thread(() => pump.Run(source, destination), maxStackSize: 256 * 1024)
        {
            IsBackground = true,
            Name = $"stdin of {owner}",
        };
        thread.Start();
        return pump;
    }

    /// <summary>containerd's CloseIO: deliver what is still in the FIFO, then close the destination.</summary>
    public void RequestClose() => _closeRequested = true;

    /// <summary>Stops soon (within <see cref="DrainQuietPeriodMs"/>) whatever is left in the FIFO.</summary>
    public void Stop()
    {
        _stopped = true;
        _closeRequested = true;
    }

    private void Run(int source, int destination)
    {
        byte* buffer = stackalloc byte[32 * 1024];
        var pollFd = new pollfd { fd = source, events = POLLIN };
        try
        {
            while (!_stopped)
            {
                pollFd.revents = 0;
                int ready = poll(&pollFd, 1, DrainQuietPeriodMs);
                if (ready < 0 && Errno.Last != EINTR)
                    return;
                if (ready <= 0)
                {
                    if (_closeRequested)
                        return; // nothing left in the FIFO and containerd closed stdin
                    continue;
                }
                if ((pollFd.revents & POLLIN) == 0)
                    return; // POLLHUP or POLLERR without data: the client closed its end
                int n = (int)read(source, buffer, 32 * 1024);
                if (n == 0)
                    return;
                if (n < 0)
                {
                    int errno = Errno.Last;
                    if (errno == EINTR || errno == EAGAIN)
                        continue;
                    return;
                }
                if (!FileDescriptors.WriteAll(destination, buffer, n))
                    return; // the process closed its stdin
            }
        }
        finally
        {
            close(destination);
            close(source);
            _completed.TrySetResult();
        }
    }

}
