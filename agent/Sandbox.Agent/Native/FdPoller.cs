using Sandbox.Native;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Sandbox.Agent.Native;

/// <summary>
/// Readiness notifications for non-blocking pipe and pty fds through one epoll thread, so that reading container
/// output never blocks a thread-pool thread. At most one waiter per fd at a time (callers guarantee it).
/// Every fd must be <see cref="Forget"/>-ed before it is closed.
/// </summary>
public sealed unsafe class FdPoller
{
    private readonly int _epollFd;
    private readonly object _lock = new();
    private readonly Dictionary<int, TaskCompletionSource> _waiters = new();
    private readonly HashSet<int> _registered = new();

    public static FdPoller Shared => s_shared.Value;
    private static readonly Lazy<FdPoller> s_shared = new(() => new FdPoller());

    private FdPoller()
    {
        _epollFd = epoll_create1(EPOLL_CLOEXEC);
        if (_epollFd < 0) throw new IOException($"epoll_create1 failed: {Errno.DescribeLast()}");
        new Thread(Loop) { IsBackground = true, Name = "fd-poller" }.Start();
    }

    /// <summary>Completes when <paramref name="fd"/> is readable (or writable), has hung up, or has an error.</summary>
    public Task WaitAsync(int fd, bool forWrite, CancellationToken cancellationToken)
    {
        var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            if (_waiters.ContainsKey(fd)) throw new InvalidOperationException($"fd {fd} already has a waiter");
            var ev = new epoll_event { events = (forWrite ? EPOLLOUT : EPOLLIN) | EPOLLONESHOT, data = new epoll_data_t { fd = fd } };
            bool known = _registered.Contains(fd);
            if (epoll_ctl(_epollFd, known ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) != 0)
                throw new IOException($"epoll_ctl on fd {fd} failed: {Errno.DescribeLast()}");
            _registered.Add(fd);
            _waiters[fd] = waiter;
        }
        if (cancellationToken.CanBeCanceled)
        {
            var registration = cancellationToken.Register(() =>
            {
                lock (_lock)
                {
                    if (_waiters.TryGetValue(fd, out var current) && current == waiter) _waiters.Remove(fd);
                }
                waiter.TrySetCanceled(cancellationToken);
            });
            waiter.Task.ContinueWith(_ => registration.Dispose(), TaskScheduler.Default);
        }
        return waiter.Task;
    }

    /// <summary>Removes <paramref name="fd"/> from epoll and cancels its waiter. Call before closing the fd.</summary>
    public void Forget(int fd)
    {
        TaskCompletionSource? waiter;
        lock (_lock)
        {
            if (_registered.Remove(fd)) epoll_ctl(_epollFd, EPOLL_CTL_DEL, fd, null);
            _waiters.Remove(fd, out waiter);
        }
        waiter?.TrySetException(new ObjectDisposedException($"fd {fd}", "the stream was closed"));
    }

    private void Loop()
    {
        const int max = 64;
        var events = stackalloc epoll_event[max];
        while (true)
        {
            int n = epoll_wait(_epollFd, events, max, -1);
            if (n < 0) continue; // EINTR
            for (int i = 0; i < n; i++)
            {
                int fd = events[i].data.fd;
                TaskCompletionSource? waiter;
                lock (_lock) _waiters.Remove(fd, out waiter);
                waiter?.TrySetResult();
            }
        }
    }
}
