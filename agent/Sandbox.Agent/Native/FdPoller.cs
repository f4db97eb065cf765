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
        _epollFd = LibC.EpollCreate1(LibC.EPOLL_CLOEXEC);
        if (_epollFd < 0) throw new IOException($"epoll_create1 failed: {LibC.ErrorText(LibC.LastError)}");
        new Thread(Loop) { IsBackground = true, Name = "fd-poller" }.Start();
    }

    /// <summary>Completes when <paramref name="fd"/> is readable (or writable), has hung up, or has an error.</summary>
    public Task WaitAsync(int fd, bool forWrite, CancellationToken cancellationToken)
    {
        var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            if (_waiters.ContainsKey(fd)) throw new InvalidOperationException($"fd {fd} already has a waiter");
            var ev = new LibC.EpollEvent { Events = (forWrite ? LibC.EPOLLOUT : LibC.EPOLLIN) | LibC.EPOLLONESHOT, Data = (ulong)fd };
            bool known = _registered.Contains(fd);
            if (LibC.EpollCtl(_epollFd, known ? LibC.EPOLL_CTL_MOD : LibC.EPOLL_CTL_ADD, fd, &ev) != 0)
                throw new IOException($"epoll_ctl on fd {fd} failed: {LibC.ErrorText(LibC.LastError)}");
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
            if (_registered.Remove(fd)) LibC.EpollCtl(_epollFd, LibC.EPOLL_CTL_DEL, fd, null);
            _waiters.Remove(fd, out waiter);
        }
        waiter?.TrySetException(new ObjectDisposedException($"fd {fd}", "the stream was closed"));
    }

    private void Loop()
    {
        const int max = 64;
        var events = stackalloc LibC.EpollEvent[max];
        while (true)
        {
            int n = LibC.EpollWait(_epollFd, events, max, -1);
            if (n < 0) continue; // EINTR
            for (int i = 0; i < n; i++)
            {
                int fd = (int)events[i].Data;
                TaskCompletionSource? waiter;
                lock (_lock) _waiters.Remove(fd, out waiter);
                waiter?.TrySetResult();
            }
        }
    }
}
